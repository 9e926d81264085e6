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
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from nebulacore.blocking import Offload
from nebulacore.counters import SUFFIX as COUNTERS_SUFFIX
from nebulacore.counters import CounterFile, Key, sum_files
from nebulacore.counters import file_name as counter_file_name
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


# Methods are counted by name only when standard: a client's made-up method must not grow
# the metrics without bound.
KNOWN_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH"})
# A worker's own gauges (its cache) reach the files its siblings read this often.
WORKER_GAUGE_SECONDS = 1.0
_WORKER_GAUGE = "gauge"


class Metrics:
    """Request counters of this service, summed over its workers at scrape time.

    Counts live in a :class:`nebulacore.counters.CounterFile`: private memory, or a file
    in the service's runtime directory once the worker that serves the app calls
    :meth:`share`; the slots of the per-request counters are looked up once, so a request
    costs a few dict hits and shared-memory adds.
    """

    def __init__(self, service: str) -> None:
        self.service = service
        self._directory: Path | None = None
        self._gauge_sources: list[GaugeSource] = []
        self._worker_gauges: list[Callable[[], dict[str, float]]] = []
        self._count_in(CounterFile())

    def share(self, directory: Path, worker: int) -> None:
        """Count in worker ``worker``'s file in ``directory`` and answer /metrics with
        the sum of every worker's file there (a multi-process service, before it serves)."""
        self._directory = directory
        self._count_in(CounterFile(directory / counter_file_name(worker)))

    def _count_in(self, store: CounterFile) -> None:
        self.store = store
        self._requests: dict[tuple[str, int], int] = {}
        self._errors: dict[tuple[int, str], int] = {}
        self._bytes_in = self.store.slot(("received_bytes",))
        self._bytes_out = self.store.slot(("sent_bytes",))
        self._latency = [
            self.store.slot(("latency", str(i))) for i in range(len(LATENCY_BUCKETS) + 1)
        ]
        self._latency_sum = self.store.slot(("latency_sum",))
        self._gauge_errors = self.store.slot(("gauge_errors",))

    @property
    def shared(self) -> bool:
        """Whether sibling workers read this process's counters."""
        return self._directory is not None

    def observe(
        self,
        request: web.BaseRequest,
        status: int,
        started: float,
        response: web.StreamResponse | None,
    ) -> float:
        """Count one request, answered with ``status`` (a failed one's:
        :func:`failed_status`) and ``response`` (None: its answer never became one), since
        ``started`` (``time.monotonic()``); its error code is the one the service recorded
        (``ERROR_CODE_KEY``), else the status phrase. Returns the seconds it took, for the
        access log. The one place each service's outermost layer counts a request in."""
        seconds = time.monotonic() - started
        store = self.store
        method = request.method
        if method not in KNOWN_METHODS:
            method = "OTHER"
        try:
            slot = self._requests[(method, status)]
        except KeyError:
            slot = self._requests[(method, status)] = store.slot(("requests", method, str(status)))
        store.add(slot, 1)
        if status >= 400:
            # Looked up on errors only: a missing key costs ``request.get`` an exception.
            code = request.get(ERROR_CODE_KEY) or status_code_name(status)
            try:
                slot = self._errors[(status, code)]
            except KeyError:
                slot = self._errors[(status, code)] = store.slot(("errors", str(status), code))
            store.add(slot, 1)
        bytes_in = request.content.total_bytes
        if bytes_in:
            store.add(self._bytes_in, bytes_in)
        bytes_out = sent_bytes(response)
        if bytes_out:
            store.add(self._bytes_out, bytes_out)
        store.add(self._latency[bisect.bisect_left(LATENCY_BUCKETS, seconds)], 1)
        store.add(self._latency_sum, seconds)
        return seconds

    def add_gauge_source(self, source: GaugeSource) -> None:
        """``source()`` returns ``{"metric_name{label=\"x\"}": value}`` at scrape time.
        Read once per scrape, by the answering worker: for what every worker sees alike
        (the catalog, the queue)."""
        self._gauge_sources.append(source)

    def add_worker_gauges(self, read: Callable[[], dict[str, float]]) -> None:
        """``read()`` returns this worker's own values (its cache); /metrics shows each
        name summed over the live workers, as of their last :meth:`publish_worker_gauges`."""
        self._worker_gauges.append(read)

    def publish_worker_gauges(self) -> None:
        for read in self._worker_gauges:
            for name, value in read().items():
                self.store.set(self.store.slot((_WORKER_GAUGE, name)), float(value))

    async def keep_publishing(self) -> None:
        """Publish this worker's gauges every :data:`WORKER_GAUGE_SECONDS` (a task)."""
        while True:
            self.publish_worker_gauges()
            await asyncio.sleep(WORKER_GAUGE_SECONDS)

    def totals(self) -> dict[Key, float]:
        """Every worker's counters added up (just this process's when it runs alone)."""
        if self._directory is None:
            return self.store.snapshot()
        return sum_files(self._directory.glob(f"*{COUNTERS_SUFFIX}"), live_only=_WORKER_GAUGE)

    def _request_lines(self, totals: dict[Key, float]) -> list[str]:
        prefix = f"nebula_{self.service}"
        requests: dict[tuple[str, int], int] = defaultdict(int)
        errors: dict[tuple[int, str], int] = defaultdict(int)
        for key, value in totals.items():
            if key[0] == "requests":
                requests[(key[1], int(key[2]))] += round(value)
            elif key[0] == "errors":
                errors[(int(key[1]), key[2])] += round(value)
        lines = labelled_counter(
            f"{prefix}_requests_total",
            "HTTP requests by method and status.",
            ("method", "status"),
            requests,
        )
        lines += labelled_counter(
            f"{prefix}_errors_total",
            "Error answers by status and error code.",
            ("status", "code"),
            errors,
        )
        lines += [
            f"# HELP {prefix}_received_bytes_total Request body bytes read.",
            f"# TYPE {prefix}_received_bytes_total counter",
            f"{prefix}_received_bytes_total {round(totals.get(('received_bytes',), 0))}",
            f"# HELP {prefix}_sent_bytes_total Response body bytes sent.",
            f"# TYPE {prefix}_sent_bytes_total counter",
            f"{prefix}_sent_bytes_total {round(totals.get(('sent_bytes',), 0))}",
            f"# HELP {prefix}_request_seconds Request latency (until the handler returns).",
            f"# TYPE {prefix}_request_seconds histogram",
        ]
        cumulative = 0
        for index, bound in enumerate((*LATENCY_BUCKETS, float("inf"))):
            cumulative += round(totals.get(("latency", str(index)), 0))
            label = "+Inf" if bound == float("inf") else repr(bound)
            lines.append(f'{prefix}_request_seconds_bucket{{le="{label}"}} {cumulative}')
        lines.append(f"{prefix}_request_seconds_sum {totals.get(('latency_sum',), 0.0):.6f}")
        lines.append(f"{prefix}_request_seconds_count {cumulative}")
        return lines

    async def _gauges(self) -> dict[str, float]:
        gauges: dict[str, float] = {}
        for source in self._gauge_sources:
            try:
                gauges.update(await asyncio.wait_for(source(), CHECK_TIMEOUT_SECONDS))
            except Exception as exc:  # a down dependency must not break the scrape
                self.store.add(self._gauge_errors, 1)
                log.warning("gauge source failed: %s", exc or type(exc).__name__)
        return gauges

    async def render(self) -> str:
        gauges = await self._gauges()
        self.publish_worker_gauges()  # this worker's own, as of now
        totals = self.totals()
        for key, value in totals.items():
            if key[0] == _WORKER_GAUGE:
                gauges[key[1]] = gauges.get(key[1], 0.0) + value
        lines = self._request_lines(totals)
        prefix = f"nebula_{self.service}"
        lines += [
            f"# HELP {prefix}_gauge_errors_total Gauge sources that failed during a scrape.",
            f"# TYPE {prefix}_gauge_errors_total counter",
            f"{prefix}_gauge_errors_total {round(totals.get(('gauge_errors',), 0))}",
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


def failed_status(request: web.BaseRequest, exc: Exception) -> int:
    """The status to count for a request whose handler raised ``exc``: an HTTP
    exception's own; else the status the service recorded (``STATUS_KEY``) when it sent
    the answer's head before the answer was cut; else 500."""
    if isinstance(exc, web.HTTPException):
        return exc.status
    return request.get(STATUS_KEY, 500)


def metrics_middleware(metrics: Metrics) -> Middleware:
    @web.middleware
    async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.monotonic()
        status = 500  # also when cancelled
        response: web.StreamResponse | None = None
        try:
            response = await handler(request)
            status = response.status
            return response
        except Exception as exc:
            status = failed_status(request, exc)
            raise
        finally:
            metrics.observe(request, status, started, response)

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


async def _publishing(metrics: Metrics, _app: web.Application) -> AsyncIterator[None]:
    if not metrics.shared:  # served alone: /metrics reads this worker's gauges itself
        yield
        return
    task = asyncio.create_task(metrics.keep_publishing())
    yield
    task.cancel()


def install_ops(
    app: web.Application,
    service: str,
    checks: dict[str, Check],
    *,
    gauges: Sequence[GaugeSource] = (),
    middleware: bool = True,
) -> Metrics:
    """Add /healthz (503 when a dependency is down), /metrics and the metrics middleware.

    Call before the app starts. The metrics middleware goes right after the allow-list
    (installed first by the service), outside the service's own middlewares, so it counts
    the answers they make of errors (S3 XML) with their real status. /metrics also
    carries what each of ``gauges`` returns at scrape time. ``middleware=False``: the
    service's own outermost middleware calls :meth:`Metrics.observe` as this one would
    (the s3proxy: one middleware layer fewer per request).
    """
    metrics = Metrics(service)
    if middleware:
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
    app.cleanup_ctx.append(partial(_publishing, metrics))
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
