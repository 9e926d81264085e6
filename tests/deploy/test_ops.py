"""/healthz and /metrics (nebulacore.ops) on a tiny app served on a real socket."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from catalog import Catalog
from catalog.metrics import read_gauges
from catalog.models import Asset, Job, JobStatus, Worker, utcnow
from nebulacore import ops
from nebulacore.config import load_settings
from nebulaqueue.metrics import queue_gauges
from tests.deploy.apps import serving


def get(url: str, data: bytes | None = None) -> tuple[int, bytes, str]:
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type", "")


async def _ok() -> None:
    return None


async def _down() -> None:
    raise ConnectionRefusedError("connection refused by 127.0.0.1:5")


async def _hangs() -> None:
    await asyncio.sleep(60)


def make_app(checks: dict[str, ops.Check]) -> tuple[web.Application, ops.Metrics]:
    app = web.Application()
    metrics = ops.install_ops(app, "tiny", checks)

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")  # 5 bytes

    async def upload(request: web.Request) -> web.Response:
        size = 0
        async for chunk in request.content.iter_chunked(65536):
            size += len(chunk)
        return web.Response(text=str(size))

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(4):
            await response.write(b"x" * 1000)
        await response.write_eof()
        return response

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("handler bug")

    app.router.add_get("/hello", hello)
    app.router.add_post("/upload", upload)
    app.router.add_get("/stream", stream)
    app.router.add_get("/boom", boom)
    return app, metrics


def scrape(base: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    status, body, content_type = get(base + "/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_healthz_is_200_when_every_check_passes() -> None:
    app, _ = make_app({"catalog": _ok, "storage": _ok})
    with serving(app) as base:
        status, body, _ = get(base + "/healthz")
    assert status == 200
    assert json.loads(body) == {
        "ok": True,
        "service": "tiny",
        "checks": {"catalog": "ok", "storage": "ok"},
    }


def test_healthz_is_503_and_names_the_dependency_that_is_down() -> None:
    app, _ = make_app({"catalog": _ok, "storage": _down})
    with serving(app) as base:
        status, body, _ = get(base + "/healthz")
    report = json.loads(body)
    assert status == 503 and report["ok"] is False
    assert report["checks"]["catalog"] == "ok"
    assert report["checks"]["storage"] == "down: connection refused by 127.0.0.1:5"


def test_a_check_that_hangs_counts_as_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops, "CHECK_TIMEOUT_SECONDS", 0.2)
    app, _ = make_app({"queue": _hangs})
    with serving(app) as base:
        status, body, _ = get(base + "/healthz")
    assert status == 503
    assert json.loads(body)["checks"]["queue"] == "down: no answer in 0.2s"


def test_metrics_count_requests_by_status_bytes_and_latency() -> None:
    app, _ = make_app({})
    with serving(app) as base:
        assert get(base + "/hello")[0] == 200
        assert get(base + "/hello")[0] == 200
        assert get(base + "/missing")[0] == 404
        assert get(base + "/boom")[0] == 500
        assert get(base + "/stream") == (200, b"x" * 4000, "application/octet-stream")
        assert get(base + "/upload", data=b"y" * 3000)[1] == b"3000"
        samples = scrape(base)

    requests = samples["nebula_tiny_requests_total"]
    assert requests[(("method", "GET"), ("status", "200"))] == 3
    assert requests[(("method", "GET"), ("status", "404"))] == 1
    assert requests[(("method", "GET"), ("status", "500"))] == 1
    assert requests[(("method", "POST"), ("status", "200"))] == 1
    assert samples["nebula_tiny_received_bytes_total"][()] == 3000
    # hello x2 (5 each) + the 4000 streamed + "3000" (4) answered to the upload; the 404
    # and 500 bodies are aiohttp's, counted too, so only a lower bound is exact.
    assert samples["nebula_tiny_sent_bytes_total"][()] >= 5 + 5 + 4000 + 4
    assert samples["nebula_tiny_request_seconds_count"][()] == 6
    assert samples["nebula_tiny_request_seconds_bucket"][(("le", "+Inf"),)] == 6


def test_gauge_sources_appear_and_a_failing_one_does_not_break_the_scrape() -> None:
    app, metrics = make_app({})

    async def good() -> dict[str, float]:
        return {'nebula_things{kind="a"}': 2, 'nebula_things{kind="b"}': 3}

    async def broken() -> dict[str, float]:
        raise ConnectionError("redis is down")

    metrics.add_gauge_source(good)
    metrics.add_gauge_source(broken)
    with serving(app) as base:
        samples = scrape(base)
    assert samples["nebula_things"] == {(("kind", "a"),): 2, (("kind", "b"),): 3}
    assert samples["nebula_tiny_gauge_errors_total"][()] == 1


def test_catalog_gauges_count_jobs_by_state_and_live_workers(catalog: Catalog) -> None:
    now = utcnow()
    with catalog.session() as session:
        asset = Asset(bucket="media", key="a.mp4")
        session.add(asset)
        session.add_all(
            [
                Job(asset=asset, status=JobStatus.QUEUED),
                Job(asset=asset, status=JobStatus.QUEUED),
                Job(asset=asset, status=JobStatus.RUNNING),
                Job(asset=asset, status=JobStatus.FAILED),
            ]
        )
        session.add(
            Worker(id="box:1", hostname="box", pid=1, hwaccel="qsv", jobs_done=7, current_job_id=3)
        )
        session.add(
            Worker(id="box:2", hostname="box", pid=2, heartbeat_at=now - timedelta(minutes=5))
        )
    gauges = asyncio.run(ops.blocking_gauges(partial(read_gauges, catalog))())
    assert gauges['nebula_jobs{state="queued"}'] == 2
    assert gauges['nebula_jobs{state="running"}'] == 1
    assert gauges['nebula_jobs{state="failed"}'] == 1
    assert gauges['nebula_jobs{state="done"}'] == 0
    assert gauges["nebula_workers_alive"] == 1  # box:2's heartbeat is stale
    assert gauges['nebula_worker_jobs_done{worker="box:1",hwaccel="qsv"}'] == 7
    assert gauges['nebula_worker_busy{worker="box:1",hwaccel="qsv"}'] == 1
    assert not any("box:2" in name for name in gauges)


def test_catalog_gauges_fail_loudly_when_the_catalog_is_down(tmp_path: Path) -> None:
    dead = Catalog("postgresql://postgres@127.0.0.1:1/nothing", connect_args={"connect_timeout": 2})
    with pytest.raises(Exception, match=r"127\.0\.0\.1"):
        asyncio.run(ops.blocking_gauges(partial(read_gauges, dead))())
    dead.dispose()


@pytest.mark.parametrize("engine", ["sqlite", "redis"])
def test_queue_gauges_report_the_real_queue_depth(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from nebulaqueue.huey import make_huey

    queue_url = request.getfixturevalue("redis_url") if engine == "redis" else None
    settings = load_settings({}, data_dir=str(tmp_path), queue_url=queue_url)
    huey = make_huey(settings)
    huey.flush()

    @huey.task()
    def nothing() -> None:
        return None

    nothing()
    nothing()
    gauges = asyncio.run(queue_gauges(settings)())
    assert gauges["nebula_queue_depth"] == 2
    assert gauges['nebula_queue_tasks{state="pending"}'] == 2
    huey.flush()


def test_queue_gauges_fail_when_redis_is_unreachable() -> None:
    settings = load_settings({}, queue_url="redis://127.0.0.1:1/0")
    with pytest.raises(Exception, match=r"(?i)connect"):
        asyncio.run(queue_gauges(settings)())


def test_install_ops_with_settings_serves_jobs_workers_and_queue_depth(tmp_path: Path) -> None:
    settings = load_settings({}, data_dir=str(tmp_path))
    catalog = Catalog.from_settings(settings)
    catalog.upgrade()
    with catalog.session() as session:
        asset = Asset(bucket="media", key="b.mp4")
        session.add_all([asset, Job(asset=asset, status=JobStatus.RUNNING)])
        session.add(Worker(id="w:1", hostname="w", pid=1))
    app = web.Application()
    gauges = [ops.blocking_gauges(partial(read_gauges, catalog)), queue_gauges(settings)]
    ops.install_ops(app, "tiny", {}, gauges=gauges)
    try:
        with serving(app) as base:
            samples = scrape(base)
    finally:
        catalog.dispose()
    assert samples["nebula_jobs"][(("state", "running"),)] == 1
    assert samples["nebula_jobs"][(("state", "queued"),)] == 0
    assert samples["nebula_workers_alive"][()] == 1
    assert samples["nebula_queue_depth"][()] == 0
    assert samples["nebula_tiny_gauge_errors_total"][()] == 0
