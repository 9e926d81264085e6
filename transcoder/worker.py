"""``nebula worker``: a Huey consumer plus a heartbeat row in the catalog."""

from __future__ import annotations

import logging
import os
import socket
import threading

from catalog import Catalog, Worker
from catalog.models import utcnow
from nebula.config import Settings

log = logging.getLogger("nebula.worker")
HEARTBEAT_SECONDS = 10.0


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def heartbeat(catalog: Catalog, wid: str, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            with catalog.session() as session:
                row = session.get(Worker, wid)
                if row is None:
                    session.add(Worker(id=wid, hostname=socket.gethostname(), pid=os.getpid()))
                else:
                    row.heartbeat_at = utcnow()
        except Exception as exc:  # the catalog may be briefly down; keep beating
            log.warning("heartbeat failed: %s", exc)
        stop.wait(HEARTBEAT_SECONDS)


def run(settings: Settings) -> None:
    from transcoder.tasks import huey

    catalog = Catalog.from_settings(settings)
    stop = threading.Event()
    wid = worker_id()
    beat = threading.Thread(target=heartbeat, args=(catalog, wid, stop), daemon=True)
    beat.start()
    try:
        huey.create_consumer(workers=1, worker_type="thread", periodic=True).run()
    finally:
        stop.set()
        with catalog.session() as session:
            row = session.get(Worker, wid)
            if row is not None:
                session.delete(row)
        catalog.dispose()
