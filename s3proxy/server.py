"""The s3proxy aiohttp application: verify, authorize, re-sign, stream, announce uploads.

Two middlewares: the network allow-list (refusing with S3 XML), then the proxy's front
(:func:`front_middleware`): the request id and the access log (one structured line per
request, S3 errors rendered as XML), the request metrics of :mod:`nebulacore.ops`, CORS
(preflights answered, :mod:`s3proxy.cors`), the idle timer on request bodies, the watch
on streamed answers' readers and the per-key slots (:mod:`s3proxy.limits`).
"""

from __future__ import annotations

import logging
import time
import xml.etree.ElementTree as ET
from dataclasses import replace
from functools import partial

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from multidict import CIMultiDictProxy

from catalog import Catalog
from catalog.keys import SecretBox
from catalog.metrics import read_gauges
from nebulacore.backend import Backend, BackendPolicy
from nebulacore.config import Settings
from nebulacore.netguard import (
    CLIENT_IP_KEY,
    allowlist_middleware,
    host_middleware,
    refusal_text,
    s3proxy_hosts,
)
from nebulacore.ops import (
    ERROR_CODE_KEY,
    Check,
    Metrics,
    blocking_check,
    blocking_gauges,
    failed_status,
    install_ops,
    sent_bytes,
    status_code_name,
)
from nebulacore.s3 import UNSIGNED_PAYLOAD
from nebulacore.web import LONG_LIVED_HEAP, serve_service
from nebulaqueue.metrics import queue_gauges
from nebulaqueue.relay import Enqueue
from s3proxy.addressing import Target, check_object_key, parse_target
from s3proxy.auth import KeyStore, authorize, identify, never_overwrite
from s3proxy.body import UploadBody, upload_body
from s3proxy.bucket_operations import check_bucket_operation, check_object_operation
from s3proxy.claims import read_claim
from s3proxy.cors import CORS_CALLS, BucketCors, add_cors_headers, ask_for_cors, preflight
from s3proxy.errors import S3Error, error_xml, new_request_id
from s3proxy.events import (
    UploadEvents,
    deleted_keys,
    etag_from_xml,
    malformed_xml,
    requested_keys,
)
from s3proxy.exchange import EXCHANGE, AuthenticatedExchange, Exchange, Operation, operation
from s3proxy.forward import (
    backend_headers,
    close_if_body_unread,
    open_upstream,
    ping,
    refuse_encryption,
    relay_buffered,
    relay_streaming,
    send_continue,
)
from s3proxy.limits import READERS, Limits
from s3proxy.owners import ACL_WRITES, LISTINGS, OWNED, BucketOwners, names_acl
from s3proxy.post_form import BrowserUploads, is_browser_post
from s3proxy.sigv4 import STREAMING_MODES

log = logging.getLogger(__name__ + ".access")

# Answers read whole, for the proxy to act on after a 2xx: an ETag or the deleted keys.
BUFFERED = frozenset({Operation.COPY, Operation.COMPLETE, Operation.DELETE_OBJECTS})

ERROR_CODE = ERROR_CODE_KEY  # one key: the access log and /metrics report the same code


def lower_headers(headers: CIMultiDictProxy[str]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        merged[lower] = f"{merged[lower]},{value}" if lower in merged else value
    return merged


def error_response(
    request: web.Request, error: S3Error, request_id: str, resource: str
) -> web.Response:
    headers = {"x-amz-request-id": request_id, "Content-Type": "application/xml"}
    if request.method == "HEAD":  # HEAD answers carry no body, as S3's
        return web.Response(status=error.status, headers=headers)
    return web.Response(
        status=error.status, headers=headers, body=error_xml(error, resource, request_id)
    )


def refuse_outsider(request: web.Request) -> web.StreamResponse:
    text = refusal_text(request[CLIENT_IP_KEY])
    error = S3Error("AccessDenied", f"{text[0].upper()}{text[1:]}.")
    return error_response(request, error, new_request_id(), request.path)


def refuse_other_host(request: web.Request, reason: str) -> web.StreamResponse:
    error = S3Error("AccessDenied", reason[0].upper() + reason[1:] + ".")
    return error_response(request, error, new_request_id(), request.path)


def answer_error_code(response: web.StreamResponse) -> str:
    """The S3 error code of an error answer relayed from the backend: its XML ``Code``,
    or, for a body-less answer (HEAD), the status phrase."""
    body = response.body if isinstance(response, web.Response) else None
    if isinstance(body, bytes) and body:
        try:
            code = ET.fromstring(body).findtext("Code")
        except ET.ParseError:
            code = None
        if code:
            return code
    return status_code_name(response.status)


# The request's address, when the front middleware could parse it (else the handler
# parses it again and refuses the request with the same error).
TARGET = web.RequestKey("s3proxy.target", Target)


def write_access_log(
    request: web.Request,
    x: Exchange,
    status: int,
    response: web.StreamResponse | None,
    seconds: float,
) -> None:
    """One structured line per request. The record is made and handed to the handlers
    directly: ``Logger.info`` would also look up the caller's frame, which no formatter
    prints."""
    if not log.isEnabledFor(logging.INFO):
        return
    client = request.get(CLIENT_IP_KEY)  # the guard's; request.remote costs a lookup
    method, path = request.method, request.path  # never the query: presigned URLs carry signatures
    extra = {
        "request_id": x.request_id,
        "method": method,
        "path": path,
        "status": status,
        "operation": x.operation,
        "error": request.get(ERROR_CODE),
        "access_key": x.access_key,
        "client": request.remote if client is None else client,
        "bytes_in": request.content_length,
        "bytes_out": sent_bytes(response),
        "duration_ms": round(seconds * 1000, 1),
    }
    record = log.makeRecord(
        log.name, logging.INFO, "", 0, "%s %s %d", (method, path, status), None, extra=extra
    )
    log.handle(record)


def front_middleware(proxy: S3Proxy, metrics: Metrics) -> Middleware:
    """Everything around the handler, in one layer (each middleware costs every request a
    coroutine and its frames), in this order: the request id and the access log, with
    S3 errors rendered as XML; the request metrics (:mod:`nebulacore.ops`, as its own
    middleware would count them); CORS (:mod:`s3proxy.cors`: preflights answered, other
    requests marked); the idle timer on the request body, and the release of the request's
    slot and watch (:mod:`s3proxy.limits`)."""

    async def within(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS":
            request[EXCHANGE].operation = Operation.PREFLIGHT
            asked = parse_target(request.raw_path, request.host, proxy.settings)
            return await preflight(request, asked, proxy.cors)
        try:
            target = request[TARGET] = parse_target(request.raw_path, request.host, proxy.settings)
        except S3Error:
            pass  # the handler refuses it the same way; the limits still apply
        else:
            ask_for_cors(request, target)
        proxy.limits.arm(request)
        try:
            return await handler(request)
        finally:
            proxy.limits.release(request)

    @web.middleware
    async def front(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = new_request_id()
        x = request[EXCHANGE] = Exchange(request_id)
        started = time.monotonic()
        status = 500
        response: web.StreamResponse | None = None
        try:
            response = await within(request, handler)
            status = response.status
            if status >= 400 and ERROR_CODE not in request:  # the backend's own error
                request[ERROR_CODE] = answer_error_code(response)
            return response
        except S3Error as error:
            request[ERROR_CODE] = error.code
            if x.answer_started is not None:
                raise
            status = error.status
            response = error_response(request, error, request_id, request.path)
            close_if_body_unread(request, response)
            return response
        except web.HTTPException as exc:
            status = failed_status(request, exc)
            raise
        except Exception as exc:
            if x.answer_started is not None:
                # The backend or the client broke the stream after the status was sent
                # (and recorded: answer_started); aiohttp closes the connection, so the
                # client sees a cut answer.
                status = failed_status(request, exc)
                # RequestTimeout if its client stopped reading (s3proxy.limits.cut).
                request.setdefault(ERROR_CODE, "StreamInterrupted")
                log.warning("answer cut: %r", exc, extra={"request_id": request_id})
                raise
            log.exception("request failed", extra={"request_id": request_id})
            request[ERROR_CODE] = "InternalError"
            internal = S3Error(
                "InternalError", "We encountered an internal error. Please try again."
            )
            response = error_response(request, internal, request_id, request.path)
            return response
        finally:
            seconds = metrics.observe(request, status, started, response)
            write_access_log(request, x, status, response, seconds)

    return front


# S3 takes 1,000 keys of at most 1,024 bytes each in one DeleteObjects request.
DELETE_REQUEST_LIMIT = 2 << 20


async def checked_delete_request(x: AuthenticatedExchange, body: UploadBody) -> bytes:
    """A DeleteObjects body, read whole (it is small) and verified, each key named in it
    held to the rules of a key in a path (:func:`s3proxy.addressing.check_object_key`):
    a key ``/`` deleted the bucket. Notes the keys it deletes one version of."""
    if body.length is None or body.length > DELETE_REQUEST_LIMIT:
        raise malformed_xml()
    document = await body.read_whole()
    keys = requested_keys(document)
    for key, _ in keys:
        check_object_key(key)
    x.versioned_keys = frozenset(key for key, versioned in keys if versioned)
    return document


async def no_early_continue(request: web.Request) -> None:
    """Send ``100 Continue`` only after authentication (see :meth:`S3Proxy.handle`)."""


class S3Proxy:
    def __init__(self, settings: Settings, enqueue: Enqueue | None = None) -> None:
        self.settings = settings
        self.catalog = Catalog.from_settings(settings)
        self.keys = KeyStore(self.catalog, SecretBox.from_settings(settings))
        self.backend = Backend(settings, BackendPolicy.proxy(settings))
        self.events = UploadEvents(settings, self.catalog, enqueue)
        self.limits = Limits(settings)
        self.cors = BucketCors(self.catalog)
        self.owners = BucketOwners(self.catalog, self.backend)
        self.regions = list(dict.fromkeys([settings.region, "us-east-1"]))
        self.posts = BrowserUploads(
            self.keys,
            self.backend,
            self.events,
            self.limits,
            self.regions,
            self.owners,
            settings.allow_sigv2,
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        exchange = request[EXCHANGE]
        headers = lower_headers(request.headers)
        target = request.get(TARGET)  # parsed by the front middleware
        if target is None:
            target = parse_target(request.raw_path, request.host, self.settings)
        if is_browser_post(request.method, target, headers):  # signed by its form's policy
            return await self.posts.handle(request, exchange, target, headers)
        claim = read_claim(headers, target, self.settings.allow_sigv2)
        if claim is None:
            raise S3Error(
                "AccessDenied",
                "Anonymous access is not allowed: sign requests with a Nebula key.",
            )
        exchange.access_key = claim.access_key_id
        key = await identify(claim, self.keys, self.regions)
        signer = claim.verify(
            key.secret, request.method, target, request.raw_path, request.headers, headers
        )
        # What the request does is decided from what its signature covers, nothing else.
        verified = claim.verified_headers(headers)
        x = AuthenticatedExchange(
            exchange, operation(request.method, target, verified), target, headers, key
        )
        if target.key:
            check_object_operation(request.method, target)
        elif target.bucket is not None:
            check_bucket_operation(request.method, target)
        if authorize(key, request.method, target, verified.get("x-amz-copy-source")):
            never_overwrite(headers)  # the key may only create objects
        refuse_encryption(request.method, verified, target.query)
        # Before anything that may take a backend connection.
        self.limits.take(request, key.record.access_key_id)
        if self.owners.expects_owner(verified, target.query):  # S3's bucket owner condition
            target = await self.owners.check_expected(x, request.method, verified)
        if x.operation is Operation.CREATE_BUCKET:
            await self.owners.before_create(x)
        if names_acl(verified):  # owner-only ACLs alone (s3proxy.owners)
            await self.owners.refuse_foreign_acl(x)
        await send_continue(request, headers)
        length = request.content_length if request.body_exists else 0
        body = upload_body(
            request.content,
            headers,
            length,
            claim.payload_hash,
            signer,
            # On CompleteMultipartUpload they describe the object, not the XML body.
            header_checksums=x.operation is not Operation.COMPLETE,
        )
        if body.length == 0:
            await body.verify_whole()
        if x.operation in CORS_CALLS:  # kept in the catalog (s3proxy.cors)
            return await self.cors.answer(request, x, body, self.owners.refuse_if_missing)
        chunked = claim.payload_hash in STREAMING_MODES
        if x.operation in ACL_WRITES:  # checked, then sent as canned "private"
            upstream = await self.owners.put_acl(x, body)
        else:
            upstream_headers = backend_headers(headers, body, chunked)
            whole = None
            if x.operation is Operation.DELETE_OBJECTS:
                whole = await checked_delete_request(x, body)
            upstream = await open_upstream(
                self.backend,
                request.method,
                target,
                upstream_headers,
                body,
                body.payload_hash,
                whole,
            )
        try:
            return await self._answer(request, x, body, upstream)
        finally:
            upstream.release()

    async def _answer(
        self,
        request: web.Request,
        x: AuthenticatedExchange,
        body: UploadBody,
        upstream: aiohttp.ClientResponse,
    ) -> web.StreamResponse:
        target, op = x.target, x.operation
        ok = 200 <= upstream.status < 300
        if op in OWNED:
            response, data = await relay_buffered(upstream, request.method, x.request_id)
            close_if_body_unread(request, response)
            return await self.owners.answer(x, response, data)
        if ok and op in LISTINGS:
            return await self.owners.relay_listing(request, x, upstream)
        if op is Operation.COPY and upstream.status >= 500 and target.bucket:
            # SeaweedFS answers a copy into a missing bucket 500 InternalError.
            await self.owners.refuse_if_missing(target.bucket)
        watched = ok and self.events.watches(target.bucket)
        if upstream.status >= 300 or op in BUFFERED:
            response, data = await relay_buffered(upstream, request.method, x.request_id)
            close_if_body_unread(request, response)
            if watched:
                await self._announce_buffered(x, data)
            return response
        if watched:
            await self._announce_streamed(x, body, upstream)
        return await relay_streaming(request, x.exchange, upstream)

    async def _announce_buffered(self, x: AuthenticatedExchange, data: bytes) -> None:
        """After a copy, a multipart completion or a multi-delete the backend answered 2xx."""
        bucket = x.target.bucket
        assert bucket is not None  # watched: a bucket the events watch
        match x.operation:
            case Operation.COPY | Operation.COMPLETE:
                etag = etag_from_xml(data)
                if etag is not None:  # None: S3's "200 with an <Error> body"
                    await self._announce_stored(x.target, etag)
            case Operation.DELETE_OBJECTS:
                keys = deleted_keys(data)
                await self.events.deleted(bucket, [k for k in keys if k not in x.versioned_keys])
                for key in x.versioned_keys.intersection(keys):
                    await self._announce_version_removed(replace(x.target, key=key, query=()))

    async def _announce_streamed(
        self, x: AuthenticatedExchange, body: UploadBody, upstream: aiohttp.ClientResponse
    ) -> None:
        """After an upload or a deletion the backend answered 2xx."""
        bucket = x.target.bucket
        assert bucket is not None  # watched: a bucket the events watch
        match x.operation:
            case Operation.PUT:
                await self.events.written(
                    bucket,
                    x.target.key,
                    upstream.headers.get("ETag"),
                    body.digests.size,
                    x.headers.get("content-type"),
                )
            case Operation.DELETE if x.target.has("versionId"):
                await self._announce_version_removed(x.target)
            case Operation.DELETE:
                await self.events.deleted(bucket, [x.target.key])

    async def _head(self, target: Target) -> aiohttp.ClientResponse:
        """A HEAD of ``target``'s current version on the backend (the caller releases it)."""
        head = Target(target.bucket, target.key, (), target.canonical_path)
        return await open_upstream(self.backend, "HEAD", head, {}, None, UNSIGNED_PAYLOAD)

    async def _announce_stored(self, target: Target, etag: str) -> None:
        """After a copy or multipart completion: size and type come from a HEAD."""
        size, content_type = None, None
        try:
            async with await self._head(target) as answer:
                if answer.status == 200:
                    size, content_type = answer.content_length, answer.headers.get("Content-Type")
        except S3Error:
            pass  # the asset is still worth recording without them
        await self.events.written(target.bucket or "", target.key, etag, size, content_type)

    async def _announce_version_removed(self, target: Target) -> None:
        """After deleting one version of an object (``versionId``): the object is gone only
        if no version is left current, which only the backend knows. Unknown (the HEAD
        failed): the reconcile sets the catalog right."""
        bucket = target.bucket or ""
        try:
            async with await self._head(target) as answer:
                status, etag = answer.status, answer.headers.get("ETag")
                size, content_type = answer.content_length, answer.headers.get("Content-Type")
        except S3Error:
            return
        if status == 404:
            await self.events.deleted(bucket, [target.key])
        elif status == 200:
            await self.events.version_removed(bucket, target.key, etag, size, content_type)

    async def start(self, _app: web.Application) -> None:
        await self.backend.start()

    async def close(self, _app: web.Application) -> None:
        self.limits.readers.close()
        await self.events.drain()
        await self.backend.close()
        self.keys.close()
        self.owners.close()
        self.cors.close()
        self.events.close()
        self.catalog.dispose()


def create_app(settings: Settings, enqueue: Enqueue | None = None) -> web.Application:
    """The proxy app; ``enqueue`` relays upload events to the queue at once (None: the
    worker's reconcile relays them)."""
    proxy = S3Proxy(settings, enqueue)
    app = web.Application(
        middlewares=[
            allowlist_middleware(settings, refuse_outsider),
            host_middleware(s3proxy_hosts(settings), refuse_other_host),
        ],
        # Client bodies are read in the pieces the backend's answers are read in, and never
        # decoded: a body sent with Content-Encoding: gzip is stored as sent (S3 keeps the
        # header as the object's metadata), and its signature covers those bytes.
        handler_args={
            "max_field_size": 65536,
            "read_bufsize": proxy.backend.policy.read_bufsize,
            "auto_decompress": False,
        },
    )
    app[LONG_LIVED_HEAP] = True  # many small requests: the collector's passes cost (serve)
    checks: dict[str, Check] = {
        "backend": partial(ping, proxy.backend),
        "catalog": blocking_check(proxy.catalog.ping),
    }
    gauges = [blocking_gauges(partial(read_gauges, proxy.catalog)), queue_gauges(settings)]
    metrics = install_ops(app, "s3proxy", checks, gauges=gauges, middleware=False)
    app.middlewares.append(front_middleware(proxy, metrics))
    app.router.add_route("*", "/{path:.*}", proxy.handle, expect_handler=no_early_continue)
    app[READERS] = proxy.limits.readers
    app.on_response_prepare.append(add_cors_headers(proxy.cors))
    app.on_startup.append(proxy.start)
    app.on_cleanup.append(proxy.close)
    return app


def run(settings: Settings, enqueue: Enqueue | None = None) -> None:
    """Serve in ``s3proxy_workers`` processes (:func:`nebulacore.web.serve_service`).

    What each worker holds alone: its key cache (a revoked key stops within
    :data:`s3proxy.auth.CACHE_SECONDS` in each), its slots (``uploads_per_key`` and
    ``downloads_per_key`` are per worker) and its outbox relays (concurrent relays are
    harmless: see :mod:`nebulaqueue.relay`). Request metrics are summed over the workers."""
    serve_service(
        "s3proxy",
        settings,
        settings.s3proxy_port,
        settings.s3proxy_workers,
        partial(create_app, enqueue=enqueue),
    )
