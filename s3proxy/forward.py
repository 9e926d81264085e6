"""Talking to the backend: re-signed requests, streamed bodies, answers relayed as they are."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp
from aiohttp import web
from aiohttp.payload import AsyncIterablePayload
from multidict import CIMultiDict

from nebulacore.backend import Backend, BackendBusy, BackendFailed, BackendUnreachable
from nebulacore.s3 import BackendSigner
from s3proxy.addressing import Target
from s3proxy.body import UploadBody
from s3proxy.chunked import PIECE
from s3proxy.errors import S3Error, with_request_id
from s3proxy.exchange import Exchange, answer_started
from s3proxy.sigv4 import AMZ_PREFIX

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# The request headers S3 defines that the backend receives (besides x-amz-*, below);
# anything else (Forwarded, X-Forwarded-*, Via, cookies, hop-by-hop) stays here. Origin
# does too: the proxy answers CORS itself (s3proxy.cors), whatever the backend would.
# X-Forwarded-Host, for one, makes SeaweedFS verify our signature against another host.
S3_REQUEST_HEADERS = frozenset(
    {
        "cache-control",
        "content-disposition",
        "content-encoding",
        "content-language",
        "content-md5",
        "content-type",
        "expires",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-unmodified-since",
        "range",
    }
)
# x-amz-* headers that authenticate the client's request, not ours to the backend.
AMZ_AUTH = frozenset({"x-amz-date", "x-amz-content-sha256", "x-amz-security-token"})
# Headers describing the aws-chunked framing, which the backend does not receive.
CHUNKED_DROP = frozenset(
    {"x-amz-decoded-content-length", "x-amz-trailer", "x-amz-sdk-checksum-algorithm"}
)
# The service root: ListBuckets, and the health probe.
ROOT = Target(None, "", (), "/")
RESPONSE_DROP = HOP_BY_HOP | {"content-length", "x-amz-request-id", "x-amz-id-2", "server"}
# Response headers that describe the backend, not the object: its own (SeaweedFS's
# ``Seaweed-X-Amz-Owner`` names the backend identity, ``Seaweed-X-Amz-ETag`` and
# ``X-Seaweedfs-*`` its internals; MinIO's ``X-Minio-*``) and CORS, which the proxy
# answers itself (s3proxy.cors).
BACKEND_ONLY_PREFIXES = ("seaweed-", "x-seaweedfs-", "x-minio-", "access-control-")
BUFFERED_BODY_LIMIT = 16 << 20  # DeleteObjects answers for 1,000 long keys fit
# Bodies up to this size, either way, are read whole and sent as one piece: the
# per-piece machinery of a stream costs more CPU than the copy of a few KiB.
SMALL_BODY = 64 << 10


# Server-side encryption asked of a write: SSE-S3/KMS, SSE-C, and SSE-C of a copy's source.
ENCRYPTION_HEADERS = frozenset(
    {
        "x-amz-server-side-encryption",
        "x-amz-server-side-encryption-customer-algorithm",
        "x-amz-copy-source-server-side-encryption-customer-algorithm",
    }
)


def refuse_encryption(
    method: str, headers: Mapping[str, str], query: tuple[tuple[str, str], ...]
) -> None:
    """Refuse a write that asks for server-side encryption: SeaweedFS (4.48) whose volume
    servers speak HTTPS reads an encrypted object of more than 4 MiB back as other bytes
    or a 500, and the proxy cannot tell how a backend serves its volumes (docs/s3.md).
    Reads still pass (SSE-C keys included)."""
    if method not in ("PUT", "POST"):
        return
    asked = ENCRYPTION_HEADERS.intersection(headers) or ENCRYPTION_HEADERS.intersection(
        name.lower() for name, _ in query
    )
    if asked:
        raise S3Error(
            "NotImplemented",
            "Server-side encryption is not supported by this storage (docs/s3.md).",
            Header=sorted(asked)[0],
        )


def forwarded_header(name: str, chunked: bool) -> bool:
    """Whether the backend receives this (lower-case) client header."""
    if name.startswith(AMZ_PREFIX):  # all of them signed: verify() refused the rest
        return name not in AMZ_AUTH and not (chunked and name in CHUNKED_DROP)
    return name in S3_REQUEST_HEADERS


def backend_headers(
    client: Mapping[str, str], body: UploadBody | None, chunked: bool
) -> dict[str, str]:
    """The allow-listed client headers (lower-case names), framed for the backend."""
    headers: dict[str, str] = {}
    for name, value in client.items():
        if not forwarded_header(name, chunked):
            continue
        if name == "content-encoding" and chunked:
            value = ",".join(v.strip() for v in value.split(",") if v.strip() != "aws-chunked")
            if not value:
                continue
        headers[name] = value
    if body is not None and body.length is not None:
        headers["content-length"] = str(body.length)
    return headers


def backend_url(signer: BackendSigner, target: Target) -> str:
    query = target.backend_query()
    if target.bucket is None:
        return f"{signer.endpoint}/" + (f"?{query}" if query else "")
    return signer.url(target.bucket, target.key, query)


async def body_data(body: UploadBody) -> bytes | AsyncIterablePayload | None:
    """What aiohttp sends for ``body``: a small one read whole, else a stream."""
    if body.length is not None and 0 < body.length <= SMALL_BODY:
        return await body.read_whole()
    return None if body.length == 0 else AsyncIterablePayload(body.stream())


async def open_upstream(
    backend: Backend,
    method: str,
    target: Target,
    headers: Mapping[str, str],
    body: UploadBody | None,
    payload_hash: str,
    whole: bytes | None = None,
) -> aiohttp.ClientResponse:
    """Re-sign the request for the backend and send it; the caller must release the
    response. ``whole``: ``body``, already read whole and verified. Raises S3Error."""
    url = backend_url(backend.signer, target)
    signed = backend.signer.sign(method, url, headers, payload_hash)
    data: bytes | AsyncIterablePayload | None = whole
    if data is None and body is not None:
        data = await body_data(body)
    try:
        response = await backend.send(method, url, signed, data)
    except BackendBusy as exc:  # every backend connection is busy: the client should back off
        raise S3Error("SlowDown", "Please reduce your request rate.") from exc
    except BackendUnreachable as exc:
        raise S3Error("ServiceUnavailable", "The storage backend is unreachable.") from exc
    except BackendFailed as exc:
        if body is not None and body.error is not None:
            raise body.error from exc.__cause__
        raise S3Error("ServiceUnavailable", "The storage backend failed to answer.") from exc
    if body is not None and body.error is not None:  # never relay an answer to a bad body
        response.close()
        raise body.error
    return response


async def ping(backend: Backend) -> None:
    """The /healthz check: the backend answers ``GET /`` with anything but a 5xx."""
    status = await backend.probe("GET", backend_url(backend.signer, ROOT))
    if status >= 500:
        raise RuntimeError(f"backend answered {status}")


def response_headers(upstream: aiohttp.ClientResponse, request_id: str) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in upstream.headers.items():
        lower = name.lower()
        if lower not in RESPONSE_DROP and not lower.startswith(BACKEND_ONLY_PREFIXES):
            headers.add(name, value)
    headers["x-amz-request-id"] = request_id
    return headers


async def read_limited(upstream: aiohttp.ClientResponse, limit: int) -> bytes:
    """The backend's whole answer body, refused past ``limit`` bytes.

    Not ``content.read(limit + 1)``: that returns what has arrived so far, which for an
    answer that comes in several pieces is only its start (a long ListBuckets reached
    s3cmd cut off mid-element that way)."""
    too_large = S3Error("InternalError", "The backend's answer is larger than expected.")
    if upstream.content_length is not None and upstream.content_length > limit:
        raise too_large
    body = bytearray()
    async for piece in upstream.content.iter_any():
        body += piece
        if len(body) > limit:
            raise too_large
    return bytes(body)


async def send_continue(request: web.Request, headers: Mapping[str, str]) -> None:
    """Answer ``Expect: 100-continue`` (the app sends none by itself): call it once the
    request may send its body."""
    if headers.get("expect", "").lower() == "100-continue" and request.version >= (1, 1):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0


def close_if_body_unread(request: web.Request, response: web.StreamResponse) -> None:
    """An answer given before the client's body was read (the backend refused early, or
    Expect: 100-continue held it back) must close the connection, or the unread bytes
    would be parsed as the next request."""
    if request.body_exists and not request.content.at_eof():
        response.force_close()


def has_body(method: str, status: int) -> bool:
    return method != "HEAD" and status not in (204, 304) and status >= 200


async def relay_buffered(
    upstream: aiohttp.ClientResponse, method: str, request_id: str, limit: int = BUFFERED_BODY_LIMIT
) -> tuple[web.Response, bytes]:
    """A small answer (errors, multipart completion, copy, multi-delete), read whole."""
    body = await read_limited(upstream, limit) if has_body(method, upstream.status) else b""
    if upstream.status >= 300 or (body.lstrip().startswith(b"<?xml") and b"<Error>" in body[:512]):
        body = with_request_id(body, request_id)
    response = web.Response(
        status=upstream.status,
        reason=upstream.reason,
        headers=response_headers(upstream, request_id),
    )
    if has_body(method, upstream.status):
        response.body = body
    elif upstream.content_length is not None:
        response.headers["Content-Length"] = str(upstream.content_length)
    return response, body


async def relay_small(
    request: web.Request, x: Exchange, upstream: aiohttp.ClientResponse, length: int
) -> web.Response:
    """An answer of at most SMALL_BODY bytes, read whole and sent in one write."""
    try:
        body = await upstream.content.readexactly(length)
    except (aiohttp.ClientError, asyncio.IncompleteReadError, TimeoutError) as exc:
        raise S3Error("ServiceUnavailable", "The storage backend failed to answer.") from exc
    response = web.Response(
        status=upstream.status,
        reason=upstream.reason,
        headers=response_headers(upstream, x.request_id),
        body=body,
    )
    close_if_body_unread(request, response)
    return response


async def relay_streaming(
    request: web.Request, x: Exchange, upstream: aiohttp.ClientResponse
) -> web.StreamResponse:
    """Stream the backend's answer to the client as it arrives; memory stays flat.
    Small answers are relayed whole (:func:`relay_small`)."""
    length = upstream.content_length
    # Not an empty answer: a Response would give it a Content-Type the backend did not.
    if length and length <= SMALL_BODY and has_body(request.method, upstream.status):
        return await relay_small(request, x, upstream, length)
    response = web.StreamResponse(
        status=upstream.status,
        reason=upstream.reason,
        headers=response_headers(upstream, x.request_id),
    )
    if upstream.content_length is not None:
        response.content_length = upstream.content_length
    close_if_body_unread(request, response)
    await response.prepare(request)
    answer_started(request, x, response)
    if has_body(request.method, upstream.status):
        async for piece in upstream.content.iter_chunked(PIECE):
            await response.write(piece)
    await response.write_eof()
    return response
