"""``nebula worker``: a Huey consumer, a heartbeat row in the catalog, and the reconcile timer."""

from __future__ import annotations

import logging
import os
import socket
import threading

from catalog import Catalog, Worker
from catalog.models import utcnow
from nebulacore.config import Settings

log = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 10.0


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def heartbeat(
    catalog: Catalog, wid: str, stop: threading.Event, hwaccel: str | None = None
) -> None:
    while not stop.is_set():
        try:
            with catalog.session() as session:
                row = session.get(Worker, wid)
                if row is None:
                    session.add(
                        Worker(
                            id=wid, hostname=socket.gethostname(), pid=os.getpid(), hwaccel=hwaccel
                        )
                    )
                else:
                    row.heartbeat_at = utcnow()
        except Exception as exc:  # the catalog may be briefly down; keep beating
            log.warning("heartbeat failed: %s", exc)
        stop.wait(HEARTBEAT_SECONDS)


def reconcile_loop(settings: Settings, catalog: Catalog, stop: threading.Event) -> None:
    from transcoder.reconcile import run_once

    while not stop.wait(settings.reconcile_seconds):
        try:
            run_once(settings, catalog)
        except Exception as exc:  # storage or catalog down: try again next period
            log.warning("reconcile failed: %s", exc)


def run(settings: Settings) -> None:
    from transcoder import hwaccel
    from transcoder.tasks import huey

    catalog = Catalog.from_settings(settings)
    settings.transcode_dir.mkdir(parents=True, exist_ok=True)
    choice = hwaccel.resolve(settings)  # once, at start: a GPU does not come and go
    stop = threading.Event()
    wid = worker_id()
    threads = [
        threading.Thread(target=heartbeat, args=(catalog, wid, stop, choice.mode), daemon=True),
        threading.Thread(target=reconcile_loop, args=(settings, catalog, stop), daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        # Periodic tasks off: the reconcile timer above runs at the exact period.
        huey.create_consumer(workers=1, worker_type="thread", periodic=False).run()
    finally:
        stop.set()
        with catalog.session() as session:
            row = session.get(Worker, wid)
            if row is not None:
                session.delete(row)
        catalog.dispose()
