"""HTTP semantics shared by every answer: validators (ETag, Last-Modified, 304), Range (206,
416) and HEAD, for bodies held in memory and for bodies streamed from the backend.

Segments from the memory tier go through :func:`body_response` too; a file sent from the
disk cache goes through aiohttp's ``FileResponse``, which applies the same rules itself.
Ranges are parsed by aiohttp (``request.http_range``) everywhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import aiohttp
from aiohttp import hdrs, web
from multidict import CIMultiDict

from origin.backend import CHUNK, Backend, ObjectInfo, RangeRefused, object_info

ETAG_ANY = "*"


class Unsatisfiable(Exception):
    """The Range cannot be served from a representation of this size (answered 416)."""


def body_etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def not_modified(request: web.BaseRequest, etag: str, last_modified: float) -> bool:
    """RFC 9110 13.2.2: If-None-Match wins over If-Modified-Since (weak comparison)."""
    candidates = request.if_none_match
    if candidates is not None:
        bare = etag.strip('"')
        return any(c.value in (ETAG_ANY, bare) for c in candidates)
    since = request.if_modified_since
    return since is not None and last_modified <= since.timestamp()


def range_applies(request: web.BaseRequest, etag: str, last_modified: float) -> bool:
    """A Range is honoured unless an If-Range names another version (then: the whole body)."""
    if hdrs.RANGE not in request.headers:
        return False
    if_range = request.headers.get(hdrs.IF_RANGE)
    if not if_range:
        return True
    if if_range.startswith(('"', "W/")):
        return if_range == etag
    date = request.if_range
    return date is not None and last_modified <= date.timestamp()


def _wanted(request: web.BaseRequest) -> tuple[int | None, int | None]:
    """aiohttp's parse of the Range header as (start, stop); a malformed one is Unsatisfiable."""
    try:
        wanted = request.http_range
    except ValueError:
        raise Unsatisfiable from None
    return wanted.start, wanted.stop


def resolve_range(request: web.BaseRequest, size: int) -> tuple[int, int]:
    """``[start, stop)`` of the requested range in a body of ``size`` bytes; raises Unsatisfiable."""
    start, stop = _wanted(request)
    if start is None:
        return 0, size
    if start < 0 and stop is None:  # "bytes=-N": the last N bytes
        start = max(size + start, 0)
    stop = size if stop is None else min(stop, size)
    if start >= size or start >= stop:
        raise Unsatisfiable
    return start, stop


def validators(etag: str, last_modified: float) -> dict[str, str]:
    from email.utils import formatdate

    return {
        hdrs.ETAG: etag,
        hdrs.LAST_MODIFIED: formatdate(last_modified, usegmt=True),
        hdrs.ACCEPT_RANGES: "bytes",
    }


def unsatisfiable(size: int | None, headers: Mapping[str, str]) -> web.Response:
    extra: dict[str, str] = {hdrs.CONTENT_RANGE: f"bytes */{size}"} if size is not None else {}
    return web.Response(status=416, headers={**headers, **extra})


def body_response(
    request: web.BaseRequest,
    body: bytes,
    last_modified: float,
    headers: Mapping[str, str],
    etag: str | None = None,
) -> web.Response:
    """A body held in memory (a playlist, a hot segment) with every HTTP rule."""
    etag = etag or body_etag(body)
    common = {**headers, **validators(etag, last_modified)}
    if not_modified(request, etag, last_modified):
        return web.Response(status=304, headers=common)
    if not range_applies(request, etag, last_modified):
        return web.Response(body=body, headers=common)
    try:
        start, stop = resolve_range(request, len(body))
    except Unsatisfiable:
        return unsatisfiable(len(body), common)
    common[hdrs.CONTENT_RANGE] = f"bytes {start}-{stop - 1}/{len(body)}"
    return web.Response(status=206, body=memoryview(body)[start:stop], headers=common)


def upstream_range(request: web.BaseRequest) -> str | None:
    """The viewer's single range, re-written from aiohttp's parse for the backend."""
    start, stop = _wanted(request)
    if start is None:
        return None
    if start < 0:
        return f"bytes={start}"  # suffix range, "-N"
    return f"bytes={start}-" + (str(stop - 1) if stop is not None else "")


async def stream_response(
    request: web.Request,
    backend: Backend,
    bucket: str,
    key: str,
    headers: Mapping[str, str],
) -> web.StreamResponse:
    """Relay an object from the backend chunk by chunk: memory does not grow with its size."""
    try:
        byte_range = upstream_range(request) if hdrs.RANGE in request.headers else None
    except Unsatisfiable:
        info = await backend.head(bucket, key)
        return unsatisfiable(info.size, headers)
    method = "HEAD" if request.method == hdrs.METH_HEAD else "GET"
    try:
        async with backend.get(bucket, key, byte_range, method=method) as upstream:
            info = object_info(upstream)
            if byte_range and not range_applies(request, info.etag, info.last_modified):
                raise _Refetch  # If-Range names another version: send it whole
            return await _relay(request, upstream, info, headers)
    except RangeRefused:
        info = await backend.head(bucket, key)
        return unsatisfiable(info.size, headers)
    except _Refetch:
        async with backend.get(bucket, key, None, method=method) as upstream:
            return await _relay(request, upstream, object_info(upstream), headers)


class _Refetch(Exception):
    pass


class MidBodyFailure(ConnectionError):
    """The backend failed after the headers went out: the viewer's connection is closed."""


async def _relay(
    request: web.Request,
    upstream: aiohttp.ClientResponse,
    info: ObjectInfo,
    headers: Mapping[str, str],
) -> web.StreamResponse:
    out = CIMultiDict(headers)
    out.update(validators(info.etag, info.last_modified))
    if not_modified(request, info.etag, info.last_modified):
        return web.Response(status=304, headers=out)
    if upstream.status == 206:
        out[hdrs.CONTENT_RANGE] = upstream.headers[hdrs.CONTENT_RANGE]
    response = web.StreamResponse(status=upstream.status, headers=out)
    response.content_length = int(upstream.headers.get(hdrs.CONTENT_LENGTH, "0"))
    await response.prepare(request)
    if request.method == hdrs.METH_HEAD:
        return response
    try:
        async for chunk in upstream.content.iter_chunked(CHUNK):
            await response.write(chunk)
    except (TimeoutError, aiohttp.ClientError) as exc:
        # Headers are gone already: the viewer sees a short body and a closed connection.
        raise MidBodyFailure(f"backend failed mid-body: {type(exc).__name__}") from None
    await response.write_eof()
    return response
