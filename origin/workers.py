"""Several origin processes on one port: the kernel spreads connections (``SO_REUSEPORT``).

One Python process serves from one core; a server with more cores runs
``NEBULA_ORIGIN_WORKERS`` of them. Each worker has its own cache folder and an equal share
of the cache cap (so the cap holds in total). The parent only supervises: a worker that
dies takes the others down with it, and the service's supervisor (``nebula up``, Compose)
restarts the whole origin.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType

from nebulacore.config import Settings
from nebulacore.lifeline import die_with_parent

log = logging.getLogger(__name__)
STOP_TIMEOUT_SECONDS = 10.0


def worker_settings(settings: Settings, index: int, count: int) -> Settings:
    cap = settings.origin_cache_max_mb
    share = max(1, cap // count) if cap else 0
    return settings.model_copy(
        update={
            "origin_cache_dir": settings.cache_dir / f"worker-{index}",
            "origin_cache_max_mb": share,
        }
    )


def serve_child(serve_one: Callable[[Settings], None], settings: Settings, parent: int) -> None:
    # A parent killed with SIGKILL must not leave workers holding the port.
    die_with_parent(signal.SIGTERM, parent)
    serve_one(settings)


def run_workers(settings: Settings, serve_one: Callable[[Settings], None]) -> None:
    count = settings.origin_workers
    context = multiprocessing.get_context("fork")
    parent = os.getpid()
    workers = [
        context.Process(
            target=serve_child,
            args=(serve_one, worker_settings(settings, i, count), parent),
            name=f"origin-{i}",
        )
        for i in range(count)
    ]
    for worker in workers:
        worker.start()

    def stop(signum: int, _frame: FrameType | None) -> None:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()  # SIGTERM: aiohttp shuts down gracefully

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    multiprocessing.connection.wait([w.sentinel for w in workers])
    stop(signal.SIGTERM, None)
    for worker in workers:
        worker.join(STOP_TIMEOUT_SECONDS)
        if worker.is_alive():
            worker.kill()
            worker.join()
    codes = [w.exitcode for w in workers]
    if any(code not in (0, -signal.SIGTERM) for code in codes):
        log.error("origin worker exited: %s", codes)
        sys.exit(1)
