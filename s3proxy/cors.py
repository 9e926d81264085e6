"""CORS as Amazon S3 does it, from each bucket's CORS configuration.

The configuration itself lives in the backend (Put/Get/DeleteBucketCors are forwarded like
any bucket call); the proxy reads it with the backend key, keeps it a few seconds, and
forgets it when a Put/DeleteBucketCors or DeleteBucket goes through. It cannot leave CORS
to the backend: preflights carry no signature, and the proxy's own answers (a refused
signature, a busy backend) need the headers too.

- A preflight (``OPTIONS``) is answered here, never forwarded: 200 with the
  ``Access-Control-*`` headers of the first rule that matches its ``Origin``,
  ``Access-Control-Request-Method`` and every ``Access-Control-Request-Headers`` header,
  else S3's 403 ``AccessForbidden``.
- Any other request with an ``Origin`` gets the headers of the first rule matching its
  origin and method, on whatever answer it gets (errors included), as S3 does.

Hooks: :func:`preflight`, :func:`ask_for_cors` and :func:`after_answer`, called by the
proxy's front middleware (after the allow-list, before any authentication), and
:func:`add_cors_headers` (``on_response_prepare``: streamed answers send their headers
from inside the handler).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from nebulacore.backend import Backend
from nebulacore.s3 import UNSIGNED_PAYLOAD
from s3proxy.addressing import Target
from s3proxy.errors import S3Error, local_name
from s3proxy.exchange import EXCHANGE, Operation, bucket_operation
from s3proxy.forward import close_if_body_unread, open_upstream, read_limited

log = logging.getLogger(__name__)

CACHE_SECONDS = 5.0  # a configuration changed on another proxy takes effect within this
CACHE_LIMIT = 10_000  # buckets remembered (names nobody owns included); then start afresh
CONFIG_LIMIT = 1 << 20  # S3 caps a CORS configuration at 64 KiB; leave room
READ_SECONDS = 10.0  # a silent backend must not hold preflights for the proxy's long read
# What a cacheable answer may vary on (S3 sends all three on every CORS answer).
VARY = ("Origin", "Access-Control-Request-Headers", "Access-Control-Request-Method")
NOT_ALLOWED = (
    "CORSResponse: This CORS request is not allowed. This is usually because the evalution "
    "of Origin, request method / Access-Control-Request-Method or "
    "Access-Control-Request-Headers are not whitelisted by the resource's CORS spec."
)
NOT_ENABLED = "CORSResponse: CORS is not enabled for this bucket."


def wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """A CORS pattern: ``*`` stands for any characters, everything else is literal."""
    body = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.compile(body, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


@dataclass(frozen=True)
class CorsRule:
    origins: tuple[re.Pattern[str], ...]
    any_origin: bool  # an AllowedOrigin of "*": S3 answers "*", not the origin
    methods: tuple[str, ...]
    headers: tuple[re.Pattern[str], ...]
    expose: tuple[str, ...]
    max_age: str | None

    def matches(self, origin: str, method: str, requested: list[str]) -> bool:
        """S3's test: the origin matches an AllowedOrigin (case-sensitive), the method is
        an AllowedMethod, and each requested header matches an AllowedHeader (any case)."""
        return (
            method in self.methods
            and any(p.fullmatch(origin) for p in self.origins)
            and all(any(p.fullmatch(h) for p in self.headers) for h in requested)
        )


def parse_rules(body: bytes) -> tuple[CorsRule, ...]:
    """The rules of a ``CORSConfiguration`` document, in order (the first match wins)."""
    rules = []
    for node in ET.fromstring(body):
        if local_name(node.tag) != "CORSRule":
            continue
        values: dict[str, list[str]] = {}
        for child in node:
            values.setdefault(local_name(child.tag), []).append((child.text or "").strip())
        origins = values.get("AllowedOrigin", [])
        rules.append(
            CorsRule(
                origins=tuple(wildcard(o, ignore_case=False) for o in origins),
                any_origin="*" in origins,
                methods=tuple(values.get("AllowedMethod", [])),
                headers=tuple(
                    wildcard(h, ignore_case=True) for h in values.get("AllowedHeader", [])
                ),
                expose=tuple(values.get("ExposeHeader", [])),
                max_age=next(iter(values.get("MaxAgeSeconds", [])), None),
            )
        )
    return tuple(rules)


def requested_headers(value: str | None) -> list[str]:
    """``Access-Control-Request-Headers: Content-Type, x-amz-meta-a`` as lower-case names."""
    return [h.strip().lower() for h in (value or "").split(",") if h.strip()]


def first_match(
    rules: tuple[CorsRule, ...], origin: str, method: str, requested: list[str]
) -> CorsRule | None:
    return next((rule for rule in rules if rule.matches(origin, method, requested)), None)


def rule_headers(rule: CorsRule, origin: str, requested: list[str]) -> dict[str, str]:
    """The ``Access-Control-*`` headers S3 answers for a matched rule."""
    headers = {"Access-Control-Allow-Methods": ", ".join(rule.methods)}
    if rule.any_origin:
        headers["Access-Control-Allow-Origin"] = "*"
    else:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Allow-Credentials"] = "true"
    if requested:
        headers["Access-Control-Allow-Headers"] = ", ".join(requested)
    if rule.expose:
        headers["Access-Control-Expose-Headers"] = ", ".join(rule.expose)
    if rule.max_age and rule.max_age != "0":  # SeaweedFS stores an absent one as 0
        headers["Access-Control-Max-Age"] = rule.max_age
    return headers


def merge_vary(headers: CIMultiDict[str], names: tuple[str, ...]) -> None:
    present = [v.strip() for v in headers.get("Vary", "").split(",") if v.strip()]
    lower = {v.lower() for v in present}
    present += [n for n in names if n.lower() not in lower]
    headers["Vary"] = ", ".join(present)


class BucketCors:
    """Each bucket's CORS rules as the backend holds them, cached for a few seconds.

    Concurrent misses for one bucket share one backend read; an entry dropped by
    :meth:`forget` is never written back by a read that started before.
    """

    def __init__(self, backend: Backend, ttl: float = CACHE_SECONDS) -> None:
        self._backend = backend
        self._ttl = ttl
        self._cache: dict[str, tuple[float, asyncio.Future[tuple[CorsRule, ...] | None]]] = {}

    async def rules(self, bucket: str) -> tuple[CorsRule, ...] | None:
        """The bucket's rules; None when it has no configuration (or does not exist).
        Raises S3Error when the backend cannot say."""
        now = time.monotonic()
        cached = self._cache.get(bucket)
        if cached is None or cached[0] <= now:
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            read = asyncio.ensure_future(self._read_within(bucket))
            # Its waiters may all be gone (clients hung up): its failure is still seen here.
            read.add_done_callback(lambda done: done.cancelled() or done.exception())
            cached = (now + self._ttl, read)
            self._cache[bucket] = cached
        try:
            return await asyncio.shield(cached[1])
        except S3Error:
            if self._cache.get(bucket) is cached:  # a failure is not remembered
                del self._cache[bucket]
            raise

    def forget(self, bucket: str) -> None:
        self._cache.pop(bucket, None)

    async def _read_within(self, bucket: str) -> tuple[CorsRule, ...] | None:
        try:
            return await asyncio.wait_for(self._read(bucket), READ_SECONDS)
        except TimeoutError as exc:
            raise S3Error("ServiceUnavailable", "The storage backend failed to answer.") from exc

    async def _read(self, bucket: str) -> tuple[CorsRule, ...] | None:
        target = Target(bucket, "", (("cors", ""),), f"/{bucket}")
        answer = await open_upstream(self._backend, "GET", target, {}, None, UNSIGNED_PAYLOAD)
        try:
            if answer.status >= 500:
                raise S3Error("ServiceUnavailable", "The storage backend failed to answer.")
            if answer.status != 200:  # NoSuchCORSConfiguration, NoSuchBucket, NotImplemented
                return None
            body = await read_limited(answer, CONFIG_LIMIT)
        except (aiohttp.ClientError, TimeoutError) as exc:  # cut mid-answer
            raise S3Error("ServiceUnavailable", "The storage backend failed to answer.") from exc
        finally:
            answer.release()
        try:
            return parse_rules(body)
        except ET.ParseError:
            log.warning("bucket %s: the backend's CORS configuration is not XML", bucket)
            return None


@dataclass(frozen=True)
class CorsAsk:
    """A request with an ``Origin``, waiting for its answer's CORS headers."""

    bucket: str
    origin: str
    method: str


CORS_ASK = web.RequestKey("s3proxy.cors_ask", CorsAsk)


async def preflight(request: web.Request, target: Target, cors: BucketCors) -> web.Response:
    origin = request.headers.get("Origin")
    if not origin:
        raise S3Error("BadRequest", "Insufficient information. Origin request header needed.")
    method = request.headers.get("Access-Control-Request-Method", "")
    rules = await cors.rules(target.bucket) if target.bucket else None
    if rules is None:  # also for a bucket that does not exist: preflights are anonymous
        raise S3Error("AccessForbidden", NOT_ENABLED, Method=method, ResourceType="BUCKET")
    requested = requested_headers(request.headers.get("Access-Control-Request-Headers"))
    rule = first_match(rules, origin, method, requested)
    if rule is None:
        kind = "OBJECT" if target.key else "BUCKET"
        raise S3Error("AccessForbidden", NOT_ALLOWED, Method=method, ResourceType=kind)
    headers = CIMultiDict(rule_headers(rule, origin, requested))
    merge_vary(headers, VARY)
    headers["x-amz-request-id"] = request[EXCHANGE].request_id
    response = web.Response(status=200, headers=headers)
    close_if_body_unread(request, response)
    return response


def ask_for_cors(request: web.Request, target: Target) -> None:
    """Mark a request with an ``Origin`` for :func:`add_cors_headers` (the proxy's front
    middleware calls it before any authentication, preflights aside)."""
    origin = request.headers.get("Origin")
    if origin and target.bucket:
        request[CORS_ASK] = CorsAsk(target.bucket, origin, request.method)


def after_answer(cors: BucketCors, method: str, target: Target) -> None:
    """Forget a bucket's rules once a request that may change them is answered."""
    if target.bucket and changes_cors(method, target):
        cors.forget(target.bucket)


def changes_cors(method: str, target: Target) -> bool:
    """Put/DeleteBucketCors, or DeleteBucket (a new bucket of that name starts bare)."""
    if target.key:
        return False
    if method in ("PUT", "DELETE") and target.has("cors"):
        return True
    return bucket_operation(method, target) is Operation.DELETE_BUCKET


def add_cors_headers(
    cors: BucketCors,
) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """The ``on_response_prepare`` hook: the matched rule's headers on any answer."""

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        ask = request.get(CORS_ASK)
        if ask is None:
            return
        try:
            rules = await cors.rules(ask.bucket)
        except S3Error:
            return  # the answer goes out without CORS headers rather than not at all
        rule = first_match(rules or (), ask.origin, ask.method, [])
        if rule is None:
            return
        response.headers.update(rule_headers(rule, ask.origin, []))
        merge_vary(response.headers, VARY)

    return on_prepare
