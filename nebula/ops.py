"""``/healthz`` and ``/metrics`` for the aiohttp services, and the request metrics middleware.

A service calls :func:`install_ops` with its dependency checks; each check is an async
callable that raises when its dependency is down. Metrics are Prometheus text format,
written by hand here because the set is small (requests by status, bytes, a latency
histogram) plus gauges a service adds with :meth:`Metrics.add_gauge_source`.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

Check = Callable[[], Awaitable[object]]
GaugeSource = Callable[[], Awaitable[dict[str, float]]]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CHECK_TIMEOUT_SECONDS = 3.0
METRICS_KEY = web.AppKey("nebula.metrics", object)


class Metrics:
    def __init__(self, service: str) -> None:
        self.service = service
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.bytes_in = 0
        self.bytes_out = 0
        self.latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self._gauge_sources: list[GaugeSource] = []

    def observe(
        self, method: str, status: int, seconds: float, bytes_in: int, bytes_out: int
    ) -> None:
        self.requests[(method, status)] += 1
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out
        self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def add_gauge_source(self, source: GaugeSource) -> None:
        """``source()`` returns ``{"metric_name{label=\"x\"}": value}`` at scrape time."""
        self._gauge_sources.append(source)

    async def render(self) -> str:
        prefix = f"nebula_{self.service}"
        lines = [
            f"# HELP {prefix}_requests_total HTTP requests by method and status.",
            f"# TYPE {prefix}_requests_total counter",
        ]
        for (method, status), count in sorted(self.requests.items()):
            lines.append(f'{prefix}_requests_total{{method="{method}",status="{status}"}} {count}')
        lines += [
            f"# TYPE {prefix}_received_bytes_total counter",
            f"{prefix}_received_bytes_total {self.bytes_in}",
            f"# TYPE {prefix}_sent_bytes_total counter",
            f"{prefix}_sent_bytes_total {self.bytes_out}",
            f"# HELP {prefix}_request_seconds Request latency.",
            f"# TYPE {prefix}_request_seconds histogram",
        ]
        cumulative = 0
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), self.latency_counts, strict=True):
            cumulative += count
            label = "+Inf" if bound == float("inf") else repr(bound)
            lines.append(f'{prefix}_request_seconds_bucket{{le="{label}"}} {cumulative}')
        lines.append(f"{prefix}_request_seconds_sum {self.latency_sum:.6f}")
        lines.append(f"{prefix}_request_seconds_count {cumulative}")
        for source in self._gauge_sources:
            try:
                gauges = await source()
            except Exception:  # a down dependency must not break the scrape
                continue
            for name, value in sorted(gauges.items()):
                lines.append(f"{name} {value}")
        return "\n".join(lines) + "\n"


def metrics_middleware(metrics: Metrics) -> Middleware:
    @web.middleware
    async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.monotonic()
        status = 500
        response: web.StreamResponse | None = None
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            sent = (response.body_length if response is not None and response.prepared else 0) or 0
            metrics.observe(
                request.method,
                status,
                time.monotonic() - started,
                request.content_length or 0,
                sent,
            )

    return measure


async def run_checks(checks: dict[str, Check]) -> tuple[bool, dict[str, str]]:
    async def one(check: Check) -> str:
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
            return "ok"
        except Exception as exc:
            return f"down: {exc or type(exc).__name__}"

    names = list(checks)
    results = await asyncio.gather(*(one(checks[name]) for name in names))
    report = dict(zip(names, results, strict=True))
    return all(r == "ok" for r in results), report


def install_ops(app: web.Application, service: str, checks: dict[str, Check]) -> Metrics:
    """Add /healthz (503 when a dependency is down), /metrics and the metrics middleware.

    Call before the app starts; the middleware is appended, so the allow-list (installed
    first by the service) still runs before it.
    """
    metrics = Metrics(service)
    app.middlewares.append(metrics_middleware(metrics))
    app[METRICS_KEY] = metrics

    async def healthz(request: web.Request) -> web.Response:
        ok, report = await run_checks(checks)
        return web.json_response({"ok": ok, "checks": report}, status=200 if ok else 503)

    async def metrics_handler(request: web.Request) -> web.Response:
        return web.Response(text=await metrics.render(), content_type="text/plain", charset="utf-8")

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_handler)
    return metrics
