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
from datetime import UTC, datetime, timedelta
from pathlib import Path

from catalog.db import Catalog
from catalog.models import Worker, utcnow

log = logging.getLogger(__name__)

# /proc gives a process's start in clock ticks after boot, and the boot in whole seconds.
START_SLACK = timedelta(seconds=1)


def worker_id() -> str:
    """This process's row id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def host_id() -> str:
    """Where a pid names one process: this machine and its pid namespace.

    Two containers may share a hostname yet each has its own pid namespace (a worker is
    often pid 7 in each), so a pid is only compared with pids of the same ``host_id``.
    """
    try:
        namespace = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return socket.gethostname()
    return f"{socket.gethostname()}/{namespace.strip('pid:[]')}"


def holder_alive(pid: int, claimed_at: datetime | None) -> bool:
    """Whether process ``pid`` of this host may still hold a lease it took at ``claimed_at``.

    A pid names the holder only if that process started before the claim: a container
    restarted on the same host reuses pids, so a process started later is someone else.
    Without /proc (not Linux) we cannot tell, and say alive: the lease expiry decides.
    """
    stat = Path(f"/proc/{pid}/stat")
    try:
        fields = stat.read_text().rpartition(")")[2].split()
    except FileNotFoundError:
        return not Path("/proc/self/stat").exists()
    except OSError:
        return True
    if fields[0] in ("Z", "X"):  # dead, not yet reaped by its parent
        return False
    if claimed_at is None:
        return True
    return _started_at(int(fields[19])) <= claimed_at + START_SLACK


def _started_at(ticks: int) -> datetime:
    boot = next(
        int(line.split()[1])
        for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime ")
    )
    return datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"), UTC)


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
