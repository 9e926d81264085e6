"""The origin as several processes on one port: /metrics sums them, a dead worker's
counts stay, the dead worker is replaced, and a second copy on the port is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from nebulacore.config import load_settings
from nebulacore.web import MIN_WORKER_UPTIME_SECONDS, runtime_dir
from tests.harness import nebula_argv
from tests.origin.conftest import Published
from tests.origin.http import request
from tests.services import counters_by_worker, descendants, environ_without, metric_sample
from tests.stacks import OriginUnderTest

WORKERS = 2
NO_CONTENT = ("requests", "GET", "204")


def icons(origin: OriginUnderTest, count: int) -> None:
    for _ in range(count):  # a new connection each: the kernel spreads them over workers
        assert request(origin.url, "/favicon.ico").status == 204


def assert_scrapes_report(origin: OriginUnderTest, expected: int) -> None:
    for _ in range(6):  # whichever worker answers the scrape
        got = metric_sample(origin.url, "nebula_origin_requests_total", method="GET", status="204")
        assert got == expected


def test_metrics_sum_every_worker_and_keep_a_dead_ones_counts(
    launch: Callable[..., OriginUnderTest], published: Published
) -> None:
    pooled = launch(NEBULA_ORIGIN_WORKERS=str(WORKERS))
    directory = runtime_dir(load_settings(published.env), "origin", pooled.port)
    icons(pooled, 40)
    assert_scrapes_report(pooled, 40)
    files = counters_by_worker(directory)
    served = {name: values.get(NO_CONTENT, 0) for name, values in files.items()}
    assert len(served) == WORKERS and all(served.values()), served  # a sum, not one worker

    # A worker dies (killed outright, nothing flushed): its counts must not go away.
    victim = next(iter(descendants(pooled.process.pid)))
    time.sleep(MIN_WORKER_UPTIME_SECONDS)  # past start-up: the parent replaces it
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while len(counters_by_worker(directory)) < WORKERS + 1:  # the replacement's own file
        assert time.monotonic() < deadline, "the dead worker was not replaced"
        time.sleep(0.2)
    assert victim not in descendants(pooled.process.pid)
    icons(pooled, 10)
    assert_scrapes_report(pooled, 50)


def test_a_second_copy_on_the_same_port_is_refused(
    launch: Callable[..., OriginUnderTest], published: Published, tmp_path: Path
) -> None:
    """With SO_REUSEPORT a second copy would bind too and take half the viewers."""
    first = launch(NEBULA_ORIGIN_WORKERS=str(WORKERS))
    env = {**environ_without(), **published.env}
    env.update(
        {
            "NEBULA_ORIGIN_PORT": str(first.port),
            "NEBULA_ORIGIN_WORKERS": str(WORKERS),
            "NEBULA_ORIGIN_CACHE_DIR": str(tmp_path / "cache"),
        }
    )
    second = subprocess.run(
        nebula_argv("origin"), env=env, capture_output=True, text=True, timeout=60
    )
    assert second.returncode != 0
    assert f"127.0.0.1:{first.port} is already in use" in second.stderr
    icons(first, 8)  # the first copy still answers every connection
