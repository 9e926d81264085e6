"""``nebula worker``: a Huey consumer (which runs the reconcile schedule of
:mod:`transcoder.tasks`) and a heartbeat row in the catalog.

At start it gives back the leases of this host's dead workers (killed without a supervisor
that noticed) and relays them, so their jobs run again now, not when the lease expires.
"""

from __future__ import annotations

import logging
import threading

from huey.consumer import Consumer

from catalog import Catalog, jobs, workers
from nebulacore.config import Settings
from nebulaqueue.huey import consumer_options
from nebulaqueue.relay import Enqueue, relay_pending
from transcoder import hwaccel
from transcoder.tasks import Tasks, tasks_for

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


def make_consumer(tasks: Tasks) -> Consumer:
    """One thread consuming the queue, polling it at most ``CONSUMER_MAX_DELAY`` apart
    (no periodic tasks: the reconcile has its own schedule, started by the consumer)."""
    return tasks.huey.create_consumer(
        workers=1, worker_type="thread", periodic=False, **consumer_options()
    )


def take_over_dead_leases(settings: Settings, catalog: Catalog, enqueue: Enqueue) -> list[int]:
    """Re-queue the jobs this host's dead workers held, and put them on the queue now."""
    try:
        released = jobs.release_dead_on_host(catalog, workers.host_id(), settings.job_max_attempts)
        if released:
            relay_pending(catalog, enqueue)
    except Exception as exc:  # the catalog or queue is down: the lease expiry is the fallback
        log.warning("could not release the leases of dead workers: %s", exc)
        return []
    return released


def run(settings: Settings) -> None:
    tasks = tasks_for(settings)
    catalog = Catalog.from_settings(settings)
    take_over_dead_leases(settings, catalog, tasks.enqueue)
    settings.transcode_dir.mkdir(parents=True, exist_ok=True)
    choice = hwaccel.resolve(settings)  # once, at start: a GPU does not come and go
    stop = threading.Event()
    wid = workers.worker_id()
    # The row exists before the first job is claimed (which names itself in it).
    workers.beat(catalog, wid, choice.mode)
    beat = (catalog, wid, stop, choice.mode)
    threading.Thread(target=heartbeat, args=beat, daemon=True, name="heartbeat").start()
    try:
        make_consumer(tasks).run()
    finally:
        stop.set()
        workers.remove(catalog, wid)
        catalog.dispose()
