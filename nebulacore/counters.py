"""Counters that every worker of a service adds up: one memory-mapped file per process.

A service run as several processes on one port (:func:`nebulacore.web.serve_service`)
answers ``/metrics`` from whichever worker the kernel hands the connection to, so each
worker keeps its counters in a file of its own under a private runtime directory and the
answering worker sums every file there. A counter is a float at a fixed offset: adding
to it is one ``struct`` read and write into shared memory, no system call, no lock (each
file has a single writer). New label sets are appended (key, then value), and the used
length in the header is written last, so a reader never sees half an entry.

A worker that died keeps its file: its counters stay in the sums (Prometheus counters must
not go backwards). Values a worker *sets* (its own cache's size) are read only from the
files of live workers. The directory is emptied when the service starts, which to
Prometheus is the ordinary counter reset of a restarted process.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from nebulacore.private import private_dir

# Sparse: only the pages written take memory or disk (a few KiB in practice).
FILE_BYTES = 4 * 1024 * 1024
SUFFIX = ".counters"
SEPARATOR = "\x1f"  # between a key's parts: never in a metric name or our label values
_HEAD = struct.Struct("<Q")  # bytes of the file in use
_LENGTH = struct.Struct("<I")  # an entry's key length
_VALUE = struct.Struct("<d")

Key = tuple[str, ...]
log = logging.getLogger(__name__)


OVERFLOW: Key = ("overflow",)


class CounterFile:
    """This process's counters: in ``path`` when siblings read them, else in private memory."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        if path is None:
            self._map = mmap.mmap(-1, FILE_BYTES)
        else:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.ftruncate(fd, FILE_BYTES)
                self._map = mmap.mmap(fd, FILE_BYTES)
            finally:
                os.close(fd)
        self._used = _HEAD.size
        _HEAD.pack_into(self._map, 0, self._used)
        self._slots: dict[Key, int] = {}
        self._overflow = self.slot(OVERFLOW)

    def slot(self, key: Key) -> int:
        """The offset of ``key``'s value, added (at zero) on first use."""
        offset = self._slots.get(key)
        if offset is None:
            offset = self._slots[key] = self._append(SEPARATOR.join(key).encode())
        return offset

    def _append(self, raw: bytes) -> int:
        value_at = self._used + (_LENGTH.size + len(raw) + 7) // 8 * 8  # values 8-aligned
        end = value_at + _VALUE.size
        if end > FILE_BYTES:  # a flood of label sets: count them, in one place
            log.warning("counters file full; further label sets count as %s", OVERFLOW)
            return self._overflow
        _LENGTH.pack_into(self._map, self._used, len(raw))
        self._map[self._used + _LENGTH.size : self._used + _LENGTH.size + len(raw)] = raw
        _VALUE.pack_into(self._map, value_at, 0.0)
        self._used = end
        _HEAD.pack_into(self._map, 0, end)  # last: readers see whole entries only
        return value_at

    def add(self, offset: int, amount: float) -> None:
        _VALUE.pack_into(self._map, offset, _VALUE.unpack_from(self._map, offset)[0] + amount)

    def set(self, offset: int, value: float) -> None:
        _VALUE.pack_into(self._map, offset, value)

    def snapshot(self) -> dict[Key, float]:
        return parse(self._map[: self._used])


def parse(data: bytes) -> dict[Key, float]:
    """The ``{key: value}`` of a counters file's bytes (as far as its header says)."""
    if len(data) < _HEAD.size:
        return {}
    used = min(_HEAD.unpack_from(data, 0)[0], len(data))
    values: dict[Key, float] = {}
    at = _HEAD.size
    while at + _LENGTH.size <= used:
        (length,) = _LENGTH.unpack_from(data, at)
        value_at = at + (_LENGTH.size + length + 7) // 8 * 8
        if value_at + _VALUE.size > used:
            break
        key = bytes(data[at + _LENGTH.size : at + _LENGTH.size + length]).decode()
        values[tuple(key.split(SEPARATOR))] = _VALUE.unpack_from(data, value_at)[0]
        at = value_at + _VALUE.size
    return values


def read_file(path: Path) -> dict[Key, float]:
    with path.open("rb") as file:
        head = file.read(_HEAD.size)
        if len(head) < _HEAD.size:
            return {}
        file.seek(0)
        return parse(file.read(_HEAD.unpack(head)[0]))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def file_name(worker: int) -> str:
    return f"worker-{worker}-{os.getpid()}{SUFFIX}"


def file_pid(path: Path) -> int:
    return int(path.name.removesuffix(SUFFIX).rsplit("-", 1)[1])


def sum_files(paths: Iterable[Path], live_only: str) -> dict[Key, float]:
    """Every file's counters added up; keys whose first part is ``live_only`` (values a
    worker sets, not adds to) only from the files of live processes."""
    totals: dict[Key, float] = defaultdict(float)
    for path in paths:
        try:
            values = read_file(path)
        except (OSError, ValueError, UnicodeDecodeError):
            continue  # a file being created, or not ours
        alive = pid_alive(file_pid(path))
        for key, value in values.items():
            if alive or key[0] != live_only:
                totals[key] += value
    return totals


def fresh_runtime_dir(path: Path) -> Path:
    """``path`` made private and emptied of the counters of an earlier run."""
    private_dir(path)
    for old in path.glob(f"*{SUFFIX}"):
        old.unlink(missing_ok=True)
    return path
