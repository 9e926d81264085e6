"""The s3proxy aiohttp application: verify, authorize, re-sign, stream, announce uploads.

Two middlewares: the network allow-list (refusing with S3 XML), then the proxy's front
(:func:`front_middleware`): the request id and the access log (one structured line per
request, S3 errors rendered as XML), the request metrics of :mod:`nebulacore.ops`, CORS
(preflights answered, :mod:`s3proxy.cors`), the idle timer on request bodies, the watch
on streamed answers' readers and the per-key slots (:mod:`s3proxy.limits`).
"""

from __future__ import annotations

import gc
import logging
import time
import xml.etree.ElementTree as ET
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
from nebulacore.netguard import CLIENT_IP_KEY, allowlist_middleware, refusal_text
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
from nebulacore.web import serve_service
from nebulaqueue.metrics import queue_gauges
from nebulaqueue.relay import Enqueue
from s3proxy.addressing import Target, parse_target
from s3proxy.auth import KeyStore, authorize, identify
from s3proxy.body import upload_body
from s3proxy.claims import read_claim
from s3proxy.cors import BucketCors, add_cors_headers, after_answer, ask_for_cors, preflight
from s3proxy.errors import S3Error, error_xml, new_request_id
from s3proxy.events import UploadEvents, deleted_keys, etag_from_xml
from s3proxy.exchange import EXCHANGE, Exchange, Operation, operation
from s3proxy.forward import (
    backend_headers,
    close_if_body_unread,
    open_upstream,
    ping,
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
        target: Target | None
        try:
            target = request[TARGET] = parse_target(request.raw_path, request.host, proxy.settings)
        except S3Error:
            target = None  # the handler refuses it the same way; the limits still apply
        else:
            ask_for_cors(request, target)
        proxy.limits.arm(request)
        try:
            return await handler(request)
        finally:
            proxy.limits.release(request)
            if target is not None:
                after_answer(proxy.cors, request.method, target)

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
        self.cors = BucketCors(self.backend)
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
        x = request[EXCHANGE]
        x.headers = headers = lower_headers(request.headers)
        target = request.get(TARGET)  # parsed by the front middleware
        if target is None:
            target = parse_target(request.raw_path, request.host, self.settings)
        x.target = target
        if is_browser_post(request.method, target, headers):  # signed by its form's policy
            return await self.posts.handle(request, x)
        claim = read_claim(headers, target, self.settings.allow_sigv2)
        if claim is None:
            raise S3Error(
                "AccessDenied",
                "Anonymous access is not allowed: sign requests with a Nebula key.",
            )
        x.access_key = claim.access_key_id
        x.key = key = await identify(claim, self.keys, self.regions)
        signer = claim.verify(
            key.secret, request.method, target, request.raw_path, request.headers, headers
        )
        # What the request does is decided from what its signature covers, nothing else.
        verified = claim.verified_headers(headers)
        x.operation = operation(request.method, target, verified)
        authorize(key, request.method, target, verified.get("x-amz-copy-source"))
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
        x.body = body = upload_body(
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
        chunked = claim.payload_hash in STREAMING_MODES
        if x.operation in ACL_WRITES:  # checked, then sent as canned "private"
            upstream = await self.owners.put_acl(x)
        else:
            upstream_headers = backend_headers(headers, body, chunked)
            upstream = await open_upstream(
                self.backend, request.method, target, upstream_headers, body, body.payload_hash
            )
        try:
            return await self._answer(request, x, upstream)
        finally:
            upstream.release()

    async def _answer(
        self, request: web.Request, x: Exchange, upstream: aiohttp.ClientResponse
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
            await self._announce_streamed(x, upstream)
        return await relay_streaming(request, x, upstream)

    async def _announce_buffered(self, x: Exchange, data: bytes) -> None:
        """After a copy, a multipart completion or a multi-delete the backend answered 2xx."""
        bucket = x.target.bucket
        assert bucket is not None  # watched: a bucket the events watch
        match x.operation:
            case Operation.COPY | Operation.COMPLETE:
                etag = etag_from_xml(data)
                if etag is not None:  # None: S3's "200 with an <Error> body"
                    await self._announce_stored(x.target, etag)
            case Operation.DELETE_OBJECTS:
                await self.events.deleted(bucket, deleted_keys(data))

    async def _announce_streamed(self, x: Exchange, upstream: aiohttp.ClientResponse) -> None:
        """After an upload or a deletion the backend answered 2xx."""
        bucket = x.target.bucket
        assert bucket is not None  # watched: a bucket the events watch
        match x.operation:
            case Operation.PUT:
                await self.events.written(
                    bucket,
                    x.target.key,
                    upstream.headers.get("ETag"),
                    x.body.digests.size,
                    x.headers.get("content-type"),
                )
            case Operation.DELETE:
                await self.events.deleted(bucket, [x.target.key])

    async def _announce_stored(self, target: Target, etag: str) -> None:
        """After a copy or multipart completion: size and type come from a HEAD."""
        size, content_type = None, None
        head = Target(target.bucket, target.key, (), target.canonical_path)
        try:
            answer = await open_upstream(self.backend, "HEAD", head, {}, None, UNSIGNED_PAYLOAD)
            async with answer:
                if answer.status == 200:
                    size, content_type = answer.content_length, answer.headers.get("Content-Type")
        except S3Error:
            pass  # the asset is still worth recording without them
        await self.events.written(target.bucket or "", target.key, etag, size, content_type)

    async def start(self, _app: web.Application) -> None:
        await self.backend.start()

    async def close(self, _app: web.Application) -> None:
        self.limits.readers.close()
        await self.events.drain()
        await self.backend.close()
        self.keys.close()
        self.owners.close()
        self.events.close()
        self.catalog.dispose()


def create_app(settings: Settings, enqueue: Enqueue | None = None) -> web.Application:
    """The proxy app; ``enqueue`` relays upload events to the queue at once (None: the
    worker's reconcile relays them)."""
    proxy = S3Proxy(settings, enqueue)
    app = web.Application(
        middlewares=[allowlist_middleware(settings, refuse_outsider)],
        # Client bodies are read in the pieces the backend's answers are read in.
        handler_args={"max_field_size": 65536, "read_bufsize": proxy.backend.policy.read_bufsize},
    )
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
        partial(frozen_app, enqueue=enqueue),
    )


def frozen_app(settings: Settings, enqueue: Enqueue | None = None) -> web.Application:
    """The app, with what is allocated by now left out of the cyclic collector's passes.

    What exists at this point (modules, botocore's tables, the app) lives as long as the
    worker: full passes scanned all of it (~70 ms each, several a minute under
    small-request load). A young generation of 10,000 instead of 700 stops in-flight
    requests' objects being promoted and rescanned: the collector's share of the CPU fell
    from ~7 % to ~0.2 % (README, bench section)."""
    app = create_app(settings, enqueue)
    gc.freeze()
    gc.set_threshold(10_000)
    return app
