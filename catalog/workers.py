"""The worker rows: who is transcoding, since when, what, and how many jobs so far.

A ``nebula worker`` process owns one row (id ``host:pid``), beats it while alive and
removes it on exit; ``nebula status`` and /metrics read them. Task code running under a
bare ``huey_consumer`` has no row: every change here is best effort.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable

from catalog.db import Catalog
from catalog.models import Worker, utcnow

log = logging.getLogger(__name__)


def worker_id() -> str:
    """This process's row id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def beat(catalog: Catalog, wid: str, hwaccel: str | None = None) -> None:
    """Create the row of ``wid`` or refresh its heartbeat."""
    with catalog.session() as session:
        row = session.get(Worker, wid)
        if row is None:
            session.add(
                Worker(id=wid, hostname=socket.gethostname(), pid=os.getpid(), hwaccel=hwaccel)
            )
        else:
            row.heartbeat_at = utcnow()


def remove(catalog: Catalog, wid: str) -> None:
    """The worker stopped: its row goes."""
    with catalog.session() as session:
        row = session.get(Worker, wid)
        if row is not None:
            session.delete(row)


def count_job(catalog: Catalog, done: bool) -> None:
    """One more job done (or failed) by this process."""

    def bump(row: Worker) -> None:
        if done:
            row.jobs_done += 1
        else:
            row.jobs_failed += 1

    _change_own_row(catalog, bump)


def set_current_job(catalog: Catalog, job_id: int | None) -> None:
    """What this process works on now (None: idle)."""

    def point(row: Worker) -> None:
        row.current_job_id = job_id

    _change_own_row(catalog, point)


def _change_own_row(catalog: Catalog, change: Callable[[Worker], None]) -> None:
    """Best effort: the row belongs to ``nebula worker`` (absent when a task runs elsewhere)."""
    try:
        with catalog.session() as session:
            row = session.get(Worker, worker_id())
            if row is not None:
                change(row)
    except Exception as exc:
        log.debug("worker row not updated: %s", exc)
