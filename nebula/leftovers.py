"""One ``nebula up`` per data directory, and what an earlier one left running.

The supervisor holds an exclusive ``flock`` on ``<data>/run/up.lock`` for its whole life
and records itself and its children (pid and kernel start time, so a recycled pid is
never mistaken for ours) in ``<data>/run/up.json``, with the endpoints it serves (the
other commands find the running stack there). The children die with the supervisor
(parent-death signal); the record is for what still survives that: a child that ignored
the signal, or a tree left by an older Nebula. The next start names such leftovers
instead of failing later on "address already in use", and can stop them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nebulacore.private import private_dir

STOP_GRACE_SECONDS = 8.0


@dataclass(frozen=True)
class Proc:
    name: str
    pid: int
    started: int  # clock ticks after boot, field 22 of /proc/<pid>/stat

    def alive(self) -> bool:
        return start_time(self.pid) == self.started


class AlreadyRunning(Exception):
    """Another ``nebula up`` holds this data directory."""


class LeftoversRunning(Exception):
    """Processes of an earlier ``nebula up`` on this data directory still run."""

    def __init__(self, data_dir: Path, leftovers: list[Proc]) -> None:
        self.leftovers = leftovers
        named = ", ".join(f"{p.name} (pid {p.pid})" for p in leftovers)
        pids = " ".join(str(p.pid) for p in leftovers)
        super().__init__(
            f"an earlier `nebula up` on {data_dir} left these running: {named}; they hold "
            f"its ports and files. Stop them with `nebula up --stop-leftovers` "
            f"(or `kill {pids}`)"
        )


def start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid``, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its end.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie holds nothing
        return None
    return int(fields[19])


def this_process(name: str, pid: int) -> Proc | None:
    started = start_time(pid)
    return None if started is None else Proc(name, pid, started)


class RunDirectory:
    """``<data>/run``: the lock and the record of the running tree."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / "run"
        self.record = self.path / "up.json"
        self._lock_fd: int | None = None
        self._recorded = False  # the record on disk is ours (else: an earlier run's)

    def claim(self) -> None:
        """Take the data directory, or raise AlreadyRunning naming the holder."""
        private_dir(self.path)
        fd = os.open(self.path / "up.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = next((p for p in self.recorded() if p.name == "nebula up"), None)
            who = f" (pid {holder.pid})" if holder and holder.alive() else ""
            raise AlreadyRunning(
                f"another `nebula up`{who} is running on {self.data_dir}; stop it first"
            ) from None
        self._lock_fd = fd

    def release(self) -> None:
        if self._lock_fd is None:  # never claimed: the record is another supervisor's
            return
        if self._recorded:  # an earlier run's record stays while its leftovers may run
            with contextlib.suppress(OSError):
                self.record.unlink()
        os.close(self._lock_fd)  # closing the last descriptor drops the flock
        self._lock_fd = None

    def recorded(self) -> list[Proc]:
        try:
            rows = read_record(self.record).get("processes", [])
            return [Proc(r["name"], int(r["pid"]), int(r["started"])) for r in rows]
        except (ValueError, KeyError, TypeError):
            return []  # a torn record: nothing we can vouch for

    def leftovers(self) -> list[Proc]:
        """Recorded processes still running (the caller holds the lock: none is ours)."""
        return [p for p in self.recorded() if p.alive() and p.pid != os.getpid()]

    def write(self, processes: Iterable[Proc], stack: Mapping[str, object] | None = None) -> None:
        """Record ``processes`` and ``stack`` (the endpoints: setting name -> value)."""
        rows = [{"name": p.name, "pid": p.pid, "started": p.started} for p in processes]
        temporary = self.record.with_suffix(".tmp")
        temporary.write_text(json.dumps({"processes": rows, "stack": dict(stack or {})}))
        temporary.replace(self.record)
        self._recorded = True


def read_record(path: Path) -> dict[str, Any]:
    """``up.json`` as ``{"processes": [...], "stack": {...}}``; empty when absent or torn.
    An older Nebula wrote the list of processes alone."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if isinstance(record, list):
        return {"processes": record}
    return record if isinstance(record, dict) else {}


def stop(leftovers: list[Proc], grace: float = STOP_GRACE_SECONDS) -> list[Proc]:
    """SIGTERM each leftover's process group (its ffmpeg, its forked workers), then
    SIGKILL what is still there after ``grace`` seconds; returns what survived both."""
    for proc in leftovers:
        _signal_tree(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(p.alive() for p in leftovers):
        time.sleep(0.1)
    for proc in leftovers:
        if proc.alive():
            _signal_tree(proc, signal.SIGKILL)
    time.sleep(0.2)
    return [p for p in leftovers if p.alive()]


def _signal_tree(proc: Proc, signum: int) -> None:
    if not proc.alive():  # checked right before: never signal a recycled pid
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(proc.pid) == proc.pid:  # a group leader: our children start sessions
            os.killpg(proc.pid, signum)
        else:
            os.kill(proc.pid, signum)
