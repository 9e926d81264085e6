"""HTTP semantics of every answer with a body, in one place: preconditions (412, 304),
If-Range and Range (206, 416) and HEAD.

:func:`decide` judges a request against a representation's :class:`ObjectInfo` in the
order of RFC 9110 section 13.2.2 (If-Match, If-Unmodified-Since, If-None-Match,
If-Modified-Since, then If-Range and Range). Every tier only carries out that decision:
:func:`body_response` for a body held in memory (a playlist, a hot segment),
:func:`file_response` for a file of the disk cache (aiohttp's ``FileResponse`` only sends
the bytes decided here) and :func:`stream_response` for an object relayed from the backend.
So one request gets one answer whichever tier holds the object. Ranges are parsed by
aiohttp (``request.http_range``); only the edges it cannot see are handled here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
from collections.abc import AsyncGenerator, Mapping
from typing import cast

import aiohttp
from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from multidict import CIMultiDict

from nebulacore.aiohttp_private import FileResponseFor, HeadAtPrepare, keep_body
from nebulacore.ops import STATUS_KEY
from origin.backend import CHUNK, BackendDown, ObjectInfo, RangeRefused, Store, object_info

ETAG_ANY = "*"
RANGE_UNIT = "bytes="
# A decision: the status and, for 200 and 206, the bytes [start, stop) to send.
Decision = tuple[int, int, int]
# What a request without preconditions may change; checked first so a plain GET (most
# requests of a player) costs five header lookups and no parsing.
CONDITIONAL_HEADERS = (
    hdrs.RANGE,
    hdrs.IF_NONE_MATCH,
    hdrs.IF_MODIFIED_SINCE,
    hdrs.IF_MATCH,
    hdrs.IF_UNMODIFIED_SINCE,
)
WITH_BODY = (200, 206)


def body_etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def decide(request: web.BaseRequest, info: ObjectInfo) -> Decision:
    """The answer to ``request`` about the representation ``info`` (RFC 9110 13.2.2)."""
    headers = request.headers
    for name in CONDITIONAL_HEADERS:
        if name in headers:
            break
    else:
        return 200, 0, info.size
    failed = _precondition(request, info)
    if failed:
        return failed, 0, 0
    # Range is defined for GET only (RFC 9110 14.2); If-Range naming another version, or a
    # unit other than bytes, means: the whole representation.
    if (
        hdrs.RANGE not in headers
        or request.method != hdrs.METH_GET
        or headers[hdrs.RANGE][: len(RANGE_UNIT)].lower() != RANGE_UNIT
        or not _if_range_holds(request, info)
    ):
        return 200, 0, info.size
    return _byte_range(request, info.size)


def _precondition(request: web.BaseRequest, info: ObjectInfo) -> int:
    """412 or 304 when a precondition says so, else 0. Invalid dates are ignored, and so
    are all dates for a representation without a Last-Modified."""
    if_match = request.if_match
    if if_match is not None:
        if not _etag_in(if_match, info.bare_etag, weak=False):
            return 412
    elif info.dated:
        since = request.if_unmodified_since
        if since is not None and info.last_modified > since.timestamp():
            return 412
    if_none_match = request.if_none_match
    if if_none_match is not None:
        return 304 if _etag_in(if_none_match, info.bare_etag, weak=True) else 0
    since = request.if_modified_since if info.dated else None
    return 304 if since is not None and info.last_modified <= since.timestamp() else 0


def _etag_in(candidates: tuple[aiohttp.ETag, ...], bare_etag: str, weak: bool) -> bool:
    """If-Match compares strongly (a W/ tag never matches), If-None-Match weakly."""
    if len(candidates) == 1 and candidates[0].value == ETAG_ANY:
        return True
    return any(c.value == bare_etag and (weak or not c.is_weak) for c in candidates)


def _if_range_holds(request: web.BaseRequest, info: ObjectInfo) -> bool:
    """If-Range: a strong ETag equal to ours, or a date equal to our Last-Modified."""
    value = request.headers.get(hdrs.IF_RANGE)
    if value is None:
        return True
    if value.startswith(('"', "W/")):
        return value == info.etag
    date = request.if_range
    return info.dated and date is not None and date.timestamp() == info.last_modified


def _byte_range(request: web.BaseRequest, size: int) -> Decision:
    """206 with the one range aiohttp parsed, clipped to ``size``; 416 if none of it exists."""
    try:
        wanted = request.http_range
    except ValueError:  # not one well-formed range (or a number beyond int parsing)
        return 416, 0, 0
    start, stop = wanted.start, wanted.stop
    assert start is not None  # aiohttp refuses "bytes=-"
    if _empty_suffix(request.headers[hdrs.RANGE], start):
        return 416, 0, 0
    if start < 0:  # "bytes=-N": the last N bytes
        start = max(size + start, 0)
    stop = size if stop is None else min(stop, size)
    if start >= size:
        return 416, 0, 0
    return 206, start, stop


def _empty_suffix(value: str, start: int) -> bool:
    """aiohttp reads "bytes=-0" as "bytes=0-"; a zero-length suffix is unsatisfiable."""
    return start == 0 and value[len(RANGE_UNIT)] == "-"


def _headers(
    status: int, start: int, stop: int, info: ObjectInfo, headers: Mapping[str, str]
) -> dict[str, str]:
    # A plain dict: the response copies it into its own CIMultiDict anyway.
    out = {**headers, **info.validators}
    if status == 206:
        out[hdrs.CONTENT_RANGE] = f"bytes {start}-{stop - 1}/{info.size}"
    elif status == 416:
        out[hdrs.CONTENT_RANGE] = f"bytes */{info.size}"
    return out


def _bodiless(status: int, info: ObjectInfo, headers: Mapping[str, str]) -> web.Response:
    """304, 412 and 416: the validators, no body."""
    return web.Response(status=status, headers=_headers(status, 0, 0, info, headers))


class _HeadFirst(HeadAtPrepare):
    """A large body in memory, sent after its head rather than with it, both under
    ``TCP_CORK`` (what nginx's ``tcp_nopush`` does around ``sendfile``).

    aiohttp joins a ``Response``'s head and body into one new ``bytes`` before writing
    them (on Python before 3.12.9, where it does not trust ``writelines``): a copy of the
    whole body per answer, most of a hot segment's cost. A ``StreamResponse``'s head
    leaves at ``prepare``, so its body is written as it is; this asks for that.

    Sent on its own (aiohttp sets ``TCP_NODELAY``), the head left as a segment of a few
    hundred bytes ahead of the body, and the client paid: more TCP segments, zero-window
    stalls and window updates, and each update's ``read`` ran the server's pending
    transmission inside the client (docs/benchmarks.md#origin). Corked, the head waits in
    the kernel and leaves with the body's first bytes in full segments, as one joined
    write would send them, without the copy."""

    _corked: socket.socket | None = None

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if not self.prepared:
            self._corked = _cork(request.transport)
        try:
            return await super().prepare(request)
        except BaseException:
            self._uncork()
            raise

    async def write_eof(self, data: bytes = b"") -> None:
        try:
            await super().write_eof(data)
        finally:
            self._uncork()  # pushes the last, partial segment now

    def _uncork(self) -> None:
        corked, self._corked = self._corked, None
        if corked is not None:
            _set_cork(corked, 0)


# From this size on a body goes out after its head (below it one write is cheaper).
HEAD_FIRST_BYTES = 256 * 1024
# Linux's: hold partial segments until uncorked (absent elsewhere: no cork, same bytes).
TCP_CORK: int | None = getattr(socket, "TCP_CORK", None)


def _cork(transport: asyncio.BaseTransport | None) -> socket.socket | None:
    """The connection's socket, corked; None when it has none (closed) or cannot cork."""
    sock = None if transport is None else transport.get_extra_info("socket")
    if sock is None or TCP_CORK is None or not _set_cork(sock, 1):
        return None
    return cast(socket.socket, sock)


def _set_cork(sock: socket.socket, value: int) -> bool:
    assert TCP_CORK is not None
    try:
        sock.setsockopt(socket.IPPROTO_TCP, TCP_CORK, value)
    # The viewer hung up: aiohttp finds the connection closed. Once it is, uvloop's
    # stand-in socket has no descriptor left and raises ValueError, not OSError.
    except (OSError, ValueError):
        return False
    return True


class _Part(web.Response):
    """A range of a body held in memory (a 206), kept as a view of it.

    aiohttp takes only ``bytes`` as a plain body: a ``memoryview`` becomes a payload object
    (a registry lookup, headers of its own, its own write path) and a ``bytes`` slice is a
    copy. Kept as the body as it is, a small view is joined to the head once, in one write
    (sent after the head instead, the head's own send costs more than the join saves)."""

    def __init__(self, part: memoryview, headers: Mapping[str, str]) -> None:
        super().__init__(status=206, headers=headers)
        keep_body(self, part)


class _LargePart(_Part, _HeadFirst):
    """A large range: after its head, corked, as :class:`_HeadFirst` sends a large body."""


def body_response(
    request: web.BaseRequest, body: bytes, info: ObjectInfo, headers: Mapping[str, str]
) -> web.Response:
    """A body held in memory (a playlist, a hot segment); ``info`` describes ``body``."""
    status, start, stop = decide(request, info)
    kind = _HeadFirst if stop - start >= HEAD_FIRST_BYTES else web.Response
    if status == 200:
        return kind(body=body, headers={**headers, **info.validators})
    if status == 206:
        part = _LargePart if stop - start >= HEAD_FIRST_BYTES else _Part
        return part(memoryview(body)[start:stop], _headers(206, start, stop, info, headers))
    return _bodiless(status, info, headers)


def file_response(
    request: web.BaseRequest, path: str, info: ObjectInfo, headers: Mapping[str, str]
) -> web.StreamResponse:
    """A file of the disk cache whose size and mtime ``info`` describes: sendfile."""
    status, start, stop = decide(request, info)
    if status not in WITH_BODY:
        return _bodiless(status, info, headers)
    plain = CIMultiDict(request.headers)
    for name in (*CONDITIONAL_HEADERS, hdrs.IF_RANGE, hdrs.ACCEPT_ENCODING):
        plain.popall(name, None)
    if status == 206:
        plain[hdrs.RANGE] = f"bytes={start}-{stop - 1}"
    # FileResponse is shown the request without its preconditions and with the decided
    # range only, so its own judgement of them can never differ from decide().
    return FileResponseFor(path, request.clone(headers=plain), headers)


async def stream_response(
    request: web.Request,
    backend: Store,
    bucket: str,
    key: str,
    headers: Mapping[str, str],
) -> web.StreamResponse:
    """Relay an object from the backend chunk by chunk: memory does not grow with its size.

    The backend is asked for the viewer's range at once (one round trip in the usual case);
    if its answer is not the decided one (If-Range naming another version, an edge of
    Range it reads otherwise, an unsatisfiable range), the decided bytes are asked for again.
    """
    if request.method == hdrs.METH_HEAD:
        info = await backend.head(bucket, key)
        return await _headers_only(request, decide(request, info), info, headers)
    try:
        async with backend.get(bucket, key, _upstream_hint(request)) as upstream:
            info = object_info(upstream)
            status, start, stop = decision = decide(request, info)
            if status not in WITH_BODY:
                return _bodiless(status, info, headers)
            if _delivers(upstream, decision, info):
                return await _relay(request, upstream, decision, info, headers)
    except RangeRefused:
        info = await backend.head(bucket, key)
        status, start, stop = decision = decide(request, info)
        if status not in WITH_BODY:
            return _bodiless(status, info, headers)
    exact = f"bytes={start}-{stop - 1}" if status == 206 else None
    async with backend.get(bucket, key, exact) as upstream:
        if object_info(upstream) != info or not _delivers(upstream, decision, info):
            raise BackendDown(f"{key} changed while being read")
        return await _relay(request, upstream, decision, info, headers)


def _upstream_hint(request: web.BaseRequest) -> str | None:
    """The viewer's Range for the backend when aiohttp reads it as one satisfiable-looking
    range (its exact digits, so a number aiohttp reads is the number the backend reads)."""
    value = request.headers.get(hdrs.RANGE)
    if value is None:
        return None
    try:
        wanted = request.http_range
    except ValueError:
        return None
    assert wanted.start is not None  # aiohttp refuses "bytes=-"
    return None if _empty_suffix(value, wanted.start) else value


def _delivers(upstream: aiohttp.ClientResponse, decision: Decision, info: ObjectInfo) -> bool:
    """Whether the backend's answer carries exactly the decided bytes."""
    status, start, stop = decision
    if status == 200:
        return upstream.status == 200
    expected = f"bytes {start}-{stop - 1}/{info.size}"
    return upstream.status == 206 and upstream.headers.get(hdrs.CONTENT_RANGE) == expected


async def _headers_only(
    request: web.Request, decision: Decision, info: ObjectInfo, headers: Mapping[str, str]
) -> web.StreamResponse:
    """A HEAD answer: what GET would send, without the body."""
    status, start, stop = decision
    if status not in WITH_BODY:
        return _bodiless(status, info, headers)
    response = web.StreamResponse(
        status=status, headers=_headers(status, start, stop, info, headers)
    )
    response.content_length = stop - start
    await response.prepare(request)
    # A body cut after this point is counted under the status the viewer was sent.
    request[STATUS_KEY] = status
    return response


class MidBodyFailure(ConnectionError):
    """The backend failed after the headers went out: the viewer's connection is closed."""


async def _relay(
    request: web.Request,
    upstream: aiohttp.ClientResponse,
    decision: Decision,
    info: ObjectInfo,
    headers: Mapping[str, str],
) -> web.StreamResponse:
    response = await _headers_only(request, decision, info, headers)
    # A failed write is the viewer's hangup (a ConnectionResetError, answered quietly by
    # origin.errors); only a failed read is the backend's.
    async with contextlib.aclosing(_backend_chunks(upstream)) as chunks:
        async for chunk in chunks:
            await response.write(chunk)
    await response.write_eof()
    return response


async def _backend_chunks(upstream: aiohttp.ClientResponse) -> AsyncGenerator[bytes, None]:
    try:
        async for chunk in upstream.content.iter_chunked(CHUNK):
            yield chunk
    except (TimeoutError, aiohttp.ClientError) as exc:
        # Headers are gone already: the viewer sees a short body and a closed connection.
        raise MidBodyFailure(f"backend failed mid-body: {type(exc).__name__}") from None
