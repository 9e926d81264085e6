"""A lean S3 load generator for small objects: aiohttp and a SigV4 signer built for speed.

boto3 spends more CPU per request than the proxy under test (docs/benchmarks.md#clients),
so a boto3-driven small-object bench measures boto3. This client signs each request by
building the canonical request as one string, with the signing key derived once a day,
and runs on one event loop in one thread whose own CPU time (``RUSAGE_THREAD``) is
reported, so a reader sees whether the client was the bottleneck.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import aiohttp
from yarl import URL

TIMESTAMP = "%Y%m%dT%H%M%SZ"
SIGNED_HEADERS = "host;x-amz-content-sha256;x-amz-date"


class LeanSigner:
    """Header-authenticated SigV4 for path-style requests without a query."""

    def __init__(self, access_key: str, secret: str, region: str = "us-east-1") -> None:
        self._access_key = access_key
        self._secret = secret
        self._region = region
        self._day = ""
        self._key = b""
        self._second = -1
        self._stamp = ""

    def _signing_key(self, day: str) -> bytes:
        if day != self._day:  # once a day: four HMACs
            key = ("AWS4" + self._secret).encode()
            for part in (day, self._region, "s3", "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._day, self._key = day, key
        return self._key

    def _timestamp(self) -> str:
        now = int(time.time())
        if now != self._second:
            self._second, self._stamp = now, time.strftime(TIMESTAMP, time.gmtime(now))
        return self._stamp

    def headers(self, method: str, host: str, path: str, payload_hash: str) -> dict[str, str]:
        """``path``: already percent-encoded as SigV4 wants it (each segment once)."""
        stamp = self._timestamp()
        day = stamp[:8]
        canonical = (
            f"{method}\n{path}\n\nhost:{host}\nx-amz-content-sha256:{payload_hash}\n"
            f"x-amz-date:{stamp}\n\n{SIGNED_HEADERS}\n{payload_hash}"
        )
        scope = f"{day}/{self._region}/s3/aws4_request"
        to_sign = (
            f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n" + hashlib.sha256(canonical.encode()).hexdigest()
        )
        signature = hmac.new(self._signing_key(day), to_sign.encode(), hashlib.sha256).hexdigest()
        return {
            "Host": host,
            "x-amz-date": stamp,
            "x-amz-content-sha256": payload_hash,
            "Authorization": f"AWS4-HMAC-SHA256 Credential={self._access_key}/{scope}, "
            f"SignedHeaders={SIGNED_HEADERS}, Signature={signature}",
        }


@dataclass
class PhaseResult:
    """One pass of PUTs or GETs: throughput, latency and the client's own CPU."""

    count: int
    seconds: float
    latencies: list[float] = field(repr=False)
    client_cpu: float  # CPU seconds of the client's thread

    @property
    def ops(self) -> float:
        return self.count / self.seconds

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000

    @property
    def p99_ms(self) -> float:
        return statistics.quantiles(self.latencies, n=100)[98] * 1000

    @property
    def client_us(self) -> float:
        return self.client_cpu / self.count * 1e6


def thread_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


class LeanClient:
    """PUTs and GETs of small objects at a fixed concurrency, on the caller's loop."""

    def __init__(self, url: str, access_key: str, secret: str, concurrency: int) -> None:
        parts = urlsplit(url)
        self.base = f"{parts.scheme}://{parts.netloc}"
        self.host = parts.netloc
        self.signer = LeanSigner(access_key, secret)
        self.concurrency = concurrency
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> LeanClient:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.concurrency),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.session is not None
        await self.session.close()

    async def _one(self, method: str, bucket: str, key: str, body: bytes | None) -> None:
        assert self.session is not None
        path = f"/{bucket}/{quote(key, safe='/~')}"
        payload_hash = hashlib.sha256(body or b"").hexdigest()
        headers = self.signer.headers(method, self.host, path, payload_hash)
        async with self.session.request(
            method, URL(self.base + path, encoded=True), data=body, headers=headers
        ) as response:
            data = await response.read()
            if response.status != 200:
                raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
            if body is None and len(data) == 0:
                raise RuntimeError(f"GET {path}: empty body")

    async def run(
        self, method: str, bucket: str, keys: list[str], body: bytes | None
    ) -> PhaseResult:
        """Every key once, ``concurrency`` requests in flight."""
        latencies: list[float] = []
        pending = iter(keys)

        async def worker() -> None:
            for key in pending:
                started = time.perf_counter()
                await self._one(method, bucket, key, body)
                latencies.append(time.perf_counter() - started)

        cpu = thread_cpu()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        seconds = time.perf_counter() - started
        return PhaseResult(len(keys), seconds, latencies, thread_cpu() - cpu)


async def put_then_get(
    url: str,
    access_key: str,
    secret: str,
    bucket: str,
    keys: list[str],
    body: bytes,
    concurrency: int,
    between: Callable[[], object] = lambda: None,
) -> tuple[PhaseResult, PhaseResult]:
    """PUT every key, call ``between`` (e.g. to read CPU counters), GET every key."""
    async with LeanClient(url, access_key, secret, concurrency) as client:
        puts = await client.run("PUT", bucket, keys, body)
        between()
        gets = await client.run("GET", bucket, keys, None)
    return puts, gets
