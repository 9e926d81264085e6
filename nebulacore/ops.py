"""``/healthz`` and ``/metrics`` for the aiohttp services, and the request metrics middleware.

A service calls :func:`install_ops` with its dependency checks; each check is an async
callable that raises when its dependency is down. Metrics are Prometheus text format,
written by hand here because the set is small (requests by status, bytes, a latency
histogram) plus the gauge sources a service passes (``gauges``) or adds with
:meth:`Metrics.add_gauge_source`. This module knows no catalog and no queue: a service
wraps their blocking readers with :func:`blocking_check` and :func:`blocking_gauges`
(``catalog.metrics.read_gauges``, ``nebulaqueue.metrics.queue_gauges``).
"""

from __future__ import annotations

import asyncio
import bisect
import http
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from nebulacore.blocking import Offload
from nebulacore.netguard import guard_is_first
from nebulacore.prometheus import labelled_counter

log = logging.getLogger(__name__)

# A check raises when its dependency is down; a gauge source returns {"name{labels}": value}.
Check = Callable[[], Coroutine[Any, Any, object]]
GaugeSource = Callable[[], Coroutine[Any, Any, dict[str, float]]]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CHECK_TIMEOUT_SECONDS = 3.0
# What a service's own middleware decided about a request, for /metrics: the error code of
# its answer (an S3 code such as ``AccessDenied``), and the status it sent when the answer
# ended in an exception after it had started.
ERROR_CODE_KEY = web.RequestKey("nebula.error_code", str)
STATUS_KEY = web.RequestKey("nebula.status", int)


def _family(sample_name: str) -> str:
    return sample_name.split("{", 1)[0]


class Metrics:
    def __init__(self, service: str) -> None:
        self.service = service
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.errors: dict[tuple[int, str], int] = defaultdict(int)
        self.bytes_in = 0
        self.bytes_out = 0
        self.latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.gauge_errors = 0
        self._gauge_sources: list[GaugeSource] = []

    def observe(
        self,
        method: str,
        status: int,
        seconds: float,
        bytes_in: int,
        bytes_out: int,
        error_code: str | None = None,
    ) -> None:
        self.requests[(method, status)] += 1
        if status >= 400:
            self.errors[(status, error_code or status_code_name(status))] += 1
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out
        self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def add_gauge_source(self, source: GaugeSource) -> None:
        """``source()`` returns ``{"metric_name{label=\"x\"}": value}`` at scrape time."""
        self._gauge_sources.append(source)

    def _request_lines(self) -> list[str]:
        prefix = f"nebula_{self.service}"
        lines = labelled_counter(
            f"{prefix}_requests_total",
            "HTTP requests by method and status.",
            ("method", "status"),
            self.requests,
        )
        lines += labelled_counter(
            f"{prefix}_errors_total",
            "Error answers by status and error code.",
            ("status", "code"),
            self.errors,
        )
        lines += [
            f"# HELP {prefix}_received_bytes_total Request body bytes read.",
            f"# TYPE {prefix}_received_bytes_total counter",
            f"{prefix}_received_bytes_total {self.bytes_in}",
            f"# HELP {prefix}_sent_bytes_total Response body bytes sent.",
            f"# TYPE {prefix}_sent_bytes_total counter",
            f"{prefix}_sent_bytes_total {self.bytes_out}",
            f"# HELP {prefix}_request_seconds Request latency (until the handler returns).",
            f"# TYPE {prefix}_request_seconds histogram",
        ]
        cumulative = 0
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), self.latency_counts, strict=True):
            cumulative += count
            label = "+Inf" if bound == float("inf") else repr(bound)
            lines.append(f'{prefix}_request_seconds_bucket{{le="{label}"}} {cumulative}')
        lines.append(f"{prefix}_request_seconds_sum {self.latency_sum:.6f}")
        lines.append(f"{prefix}_request_seconds_count {cumulative}")
        return lines

    async def _gauges(self) -> dict[str, float]:
        gauges: dict[str, float] = {}
        for source in self._gauge_sources:
            try:
                gauges.update(await asyncio.wait_for(source(), CHECK_TIMEOUT_SECONDS))
            except Exception as exc:  # a down dependency must not break the scrape
                self.gauge_errors += 1
                log.warning("gauge source failed: %s", exc or type(exc).__name__)
        return gauges

    async def render(self) -> str:
        lines = self._request_lines()
        gauges = await self._gauges()
        prefix = f"nebula_{self.service}"
        lines += [
            f"# HELP {prefix}_gauge_errors_total Gauge sources that failed during a scrape.",
            f"# TYPE {prefix}_gauge_errors_total counter",
            f"{prefix}_gauge_errors_total {self.gauge_errors}",
        ]
        # The format wants each family's samples together, under one TYPE line.
        families: dict[str, list[str]] = defaultdict(list)
        for name, value in sorted(gauges.items()):
            families[_family(name)].append(f"{name} {float(value)}")
        for family, samples in families.items():
            lines.append(f"# TYPE {family} gauge")
            lines += samples
        return "\n".join(lines) + "\n"


METRICS_KEY = web.AppKey("nebula.metrics", Metrics)


def status_code_name(status: int) -> str:
    """An error code for an answer that carries none (a HEAD, a plain HTTP error):
    the status phrase without spaces, e.g. ``NotFound``, ``PreconditionFailed``."""
    try:
        return http.HTTPStatus(status).phrase.replace(" ", "").replace("-", "")
    except ValueError:
        return f"HTTP{status}"


def sent_bytes(response: web.StreamResponse | None) -> int:
    """Bytes of body a handler's answer carried, for logs and metrics."""
    if response is None:
        return 0
    if response.prepared:  # streamed by the handler: what was written
        return response.body_length or 0
    # A plain Response is sent after the middleware returns; its body length is known.
    return response.content_length or 0


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
        except Exception:
            # An answer cut after its status was sent: the service recorded that status.
            status = request.get(STATUS_KEY, 500)
            raise
        finally:
            metrics.observe(
                request.method,
                status,
                time.monotonic() - started,
                request.content.total_bytes,
                sent_bytes(response),
                request.get(ERROR_CODE_KEY),
            )

    return measure


async def run_checks(checks: dict[str, Check]) -> tuple[bool, dict[str, str]]:
    async def one(check: Check) -> str:
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
            return "ok"
        except TimeoutError:
            return f"down: no answer in {CHECK_TIMEOUT_SECONDS:g}s"
        except Exception as exc:
            return f"down: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"

    names = list(checks)
    results = await asyncio.gather(*(one(checks[name]) for name in names))
    report = dict(zip(names, results, strict=True))
    return all(r == "ok" for r in results), report


def install_ops(
    app: web.Application,
    service: str,
    checks: dict[str, Check],
    *,
    gauges: Sequence[GaugeSource] = (),
) -> Metrics:
    """Add /healthz (503 when a dependency is down), /metrics and the metrics middleware.

    Call before the app starts. The metrics middleware goes right after the allow-list
    (installed first by the service), outside the service's own middlewares, so it counts
    the answers they make of errors (S3 XML) with their real status. /metrics also
    carries what each of ``gauges`` returns at scrape time.
    """
    metrics = Metrics(service)
    app.middlewares.insert(1 if guard_is_first(app) else 0, metrics_middleware(metrics))
    app[METRICS_KEY] = metrics
    for source in gauges:
        metrics.add_gauge_source(source)

    async def healthz(request: web.Request) -> web.Response:
        ok, report = await run_checks(checks)
        body = {"ok": ok, "service": service, "checks": report}
        if not ok:
            log.warning("unhealthy", extra={"checks": report})
        return web.json_response(body, status=200 if ok else 503)

    async def metrics_handler(request: web.Request) -> web.Response:
        text = await metrics.render()
        # text/plain; version=0.0.4 is the Prometheus exposition format's content type.
        response = web.Response(text=text, content_type="text/plain", charset="utf-8")
        response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
        return response

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_handler)
    return metrics


# ----- blocking dependencies ----------------------------------------------------------


def blocking_check(probe: Callable[[], object]) -> Check:
    """A check that runs the blocking ``probe`` (e.g. ``catalog.ping``) off the loop."""
    offload = Offload.default()

    async def check() -> None:
        await offload.run(probe)

    return check


def blocking_gauges(read: Callable[[], dict[str, float]]) -> GaugeSource:
    """A gauge source that runs the blocking ``read`` off the loop at scrape time."""
    offload = Offload.default()

    async def source() -> dict[str, float]:
        return await offload.run(read)

    return source
