"""CORS as Amazon S3 does it, from each bucket's CORS configuration.

The configuration lives in the catalog, as bucket owners do (:mod:`catalog.cors`):
Put/Get/DeleteBucketCors are answered here and never forwarded (MinIO's community edition
keeps no per-bucket CORS), and every worker and replica reads the rules' revision per
request, so a change applies at once everywhere. DeleteBucket drops them. The proxy
cannot leave CORS to the backend anyway: preflights carry no signature, and the proxy's
own answers (a refused signature, a busy backend) need the headers too.

- A preflight (``OPTIONS``) is answered here, never forwarded: 200 with the
  ``Access-Control-*`` headers of the first rule that matches its ``Origin``,
  ``Access-Control-Request-Method`` and every ``Access-Control-Request-Headers`` header,
  else S3's 403 ``AccessForbidden``.
- Any other request with an ``Origin`` gets the headers of the first rule matching its
  origin and method, on whatever answer it gets (errors included), as S3 does.

Hooks: :func:`preflight` and :func:`ask_for_cors`, called by the proxy's front middleware (after the allow-list, before any authentication), and
:func:`add_cors_headers` (``on_response_prepare``: streamed answers send their headers
from inside the handler).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from multidict import CIMultiDict

from catalog import Catalog
from catalog.cors import cors_revision, cors_rules, delete_cors, put_cors
from nebulacore.blocking import Offload
from s3proxy.addressing import Target
from s3proxy.body import UploadBody
from s3proxy.cors_config import (
    MAX_DOCUMENT,
    configuration_xml,
    no_configuration,
    read_configuration,
    too_large,
)
from s3proxy.errors import S3Error
from s3proxy.exchange import EXCHANGE, AuthenticatedExchange, Operation
from s3proxy.forward import close_if_body_unread

T = TypeVar("T")
CACHE_LIMIT = 10_000  # buckets whose parsed rules are kept; then start afresh
READ_SECONDS = 10.0  # a stalled catalog must not hold preflights for the proxy's long read
READ_THREADS = 2
# The bucket calls answered here from the catalog.
CORS_CALLS = frozenset(
    {Operation.PUT_BUCKET_CORS, Operation.GET_BUCKET_CORS, Operation.DELETE_BUCKET_CORS}
)
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


def compile_rules(rules: list[dict[str, Any]]) -> tuple[CorsRule, ...]:
    """The catalog's rules (:mod:`s3proxy.cors_config`'s dicts), ready to match, in order
    (the first match wins)."""
    return tuple(
        CorsRule(
            origins=tuple(wildcard(o, ignore_case=False) for o in rule["AllowedOrigins"]),
            any_origin="*" in rule["AllowedOrigins"],
            methods=tuple(rule["AllowedMethods"]),
            headers=tuple(wildcard(h, ignore_case=True) for h in rule.get("AllowedHeaders", [])),
            expose=tuple(rule.get("ExposeHeaders", [])),
            max_age=None if rule.get("MaxAgeSeconds") is None else str(rule["MaxAgeSeconds"]),
        )
        for rule in rules
    )


def parse_rules(body: bytes) -> tuple[CorsRule, ...]:
    """The rules of a ``CORSConfiguration`` document (S3Error when S3 would refuse it)."""
    return compile_rules(read_configuration(body))


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
    if rule.max_age is not None:
        headers["Access-Control-Max-Age"] = rule.max_age
    return headers


def merge_vary(headers: CIMultiDict[str], names: tuple[str, ...]) -> None:
    present = [v.strip() for v in headers.get("Vary", "").split(",") if v.strip()]
    lower = {v.lower() for v in present}
    present += [n for n in names if n.lower() not in lower]
    headers["Vary"] = ", ".join(present)


class BucketCors:
    """Each bucket's CORS rules, kept in the catalog (:mod:`catalog.cors`).

    Per request it reads only the rules' revision; rules parsed at that revision are
    reused, so a change made through any worker or replica applies to the next request
    everywhere. Reads run on threads of their own (a busy catalog must not hold the loop).
    """

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._parsed: dict[str, tuple[str, tuple[CorsRule, ...]]] = {}
        self._threads = Offload(READ_THREADS, "bucket-cors")

    def close(self) -> None:
        self._threads.close()

    async def _in_catalog(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` on the threads; ServiceUnavailable if the catalog fails or stalls."""
        try:
            return await self._threads.run_within(READ_SECONDS, fn, *args)
        except Exception as exc:
            raise S3Error("ServiceUnavailable", "The catalog is unavailable.") from exc

    async def rules(self, bucket: str) -> tuple[CorsRule, ...] | None:
        """The bucket's rules; None when it has none. S3Error when the catalog cannot say."""
        return await self._in_catalog(self._current, bucket)

    def _current(self, bucket: str) -> tuple[CorsRule, ...] | None:
        with self._catalog.session() as session:
            revision = cors_revision(session, bucket)
            if revision is None:
                self._parsed.pop(bucket, None)
                return None
            parsed = self._parsed.get(bucket)
            if parsed is not None and parsed[0] == revision:
                return parsed[1]
            found = cors_rules(session, bucket)
        if found is None:  # deleted between the two reads
            return None
        rules = compile_rules(found[1])
        if len(self._parsed) >= CACHE_LIMIT:
            self._parsed.clear()
        self._parsed[bucket] = (found[0], rules)
        return rules

    async def write(self, bucket: str, rules: list[dict[str, Any]] | None) -> None:
        """Put (``rules``) or delete (None) the bucket's configuration."""
        await self._in_catalog(self._write, bucket, rules)

    def _write(self, bucket: str, rules: list[dict[str, Any]] | None) -> None:
        with self._catalog.session() as session:
            if rules is None:
                delete_cors(session, bucket)
            else:
                put_cors(session, bucket, rules)

    async def stored(self, bucket: str) -> list[dict[str, Any]] | None:
        found = await self._in_catalog(self._stored, bucket)
        return None if found is None else found[1]

    def _stored(self, bucket: str) -> tuple[str, list[dict[str, Any]]] | None:
        with self._catalog.session() as session:
            return cors_rules(session, bucket)

    async def answer(
        self,
        request: web.Request,
        x: AuthenticatedExchange,
        body: UploadBody,
        exists: Callable[[str], Awaitable[None]],
    ) -> web.Response:
        """Put/Get/DeleteBucketCors, answered from the catalog, never forwarded: the
        backend's own CORS (if it has any) plays no part. ``exists`` raises NoSuchBucket."""
        bucket = x.target.bucket
        assert bucket is not None  # a bucket sub-resource
        headers = {"x-amz-request-id": x.request_id}
        match x.operation:
            case Operation.PUT_BUCKET_CORS:
                if body.length is None:
                    raise S3Error("MissingContentLength", "You must provide the Content-Length.")
                if body.length > MAX_DOCUMENT:
                    raise too_large()
                rules = read_configuration(await body.read_whole())
                await exists(bucket)
                await self.write(bucket, rules)
                response = web.Response(status=200, headers=headers)
            case Operation.DELETE_BUCKET_CORS:
                await exists(bucket)
                await self.write(bucket, None)
                response = web.Response(status=204, headers=headers)
            case _:  # GetBucketCors
                stored = await self.stored(bucket)
                if stored is None:
                    await exists(bucket)
                    raise no_configuration(bucket)
                headers["Content-Type"] = "application/xml"
                response = web.Response(status=200, headers=headers, body=configuration_xml(stored))
        close_if_body_unread(request, response)
        return response


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
