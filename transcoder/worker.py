"""``nebula worker``: a Huey consumer, a heartbeat row in the catalog, and the reconcile timer."""

from __future__ import annotations

import logging
import threading

from catalog import Catalog, workers
from nebulacore.config import Settings
from nebulaqueue.relay import Enqueue
from transcoder import hwaccel
from transcoder.reconcile import run_once
from transcoder.tasks import tasks_for

log = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 10.0


def heartbeat(
    catalog: Catalog, wid: str, stop: threading.Event, hwaccel: str | None = None
) -> None:
    while not stop.is_set():
        try:
            workers.beat(catalog, wid, hwaccel)
        except Exception as exc:  # the catalog may be briefly down; keep beating
            log.warning("heartbeat failed: %s", exc)
        stop.wait(HEARTBEAT_SECONDS)


def reconcile_loop(
    settings: Settings, catalog: Catalog, enqueue: Enqueue, stop: threading.Event
) -> None:
    while not stop.wait(settings.reconcile_seconds):
        try:
            run_once(settings, catalog, enqueue)
        except Exception as exc:  # storage or catalog down: try again next period
            log.warning("reconcile failed: %s", exc)


def run(settings: Settings) -> None:
    tasks = tasks_for(settings)
    catalog = Catalog.from_settings(settings)
    settings.transcode_dir.mkdir(parents=True, exist_ok=True)
    choice = hwaccel.resolve(settings)  # once, at start: a GPU does not come and go
    stop = threading.Event()
    wid = workers.worker_id()
    # The row exists before the first job is claimed (which names itself in it).
    workers.beat(catalog, wid, choice.mode)
    threads = [
        threading.Thread(target=heartbeat, args=(catalog, wid, stop, choice.mode), daemon=True),
        threading.Thread(
            target=reconcile_loop, args=(settings, catalog, tasks.enqueue, stop), daemon=True
        ),
    ]
    for thread in threads:
        thread.start()
    try:
        # Periodic tasks off: the reconcile timer above runs at the exact period.
        tasks.huey.create_consumer(workers=1, worker_type="thread", periodic=False).run()
    finally:
        stop.set()
        workers.remove(catalog, wid)
        catalog.dispose()
