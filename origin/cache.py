"""The local caches of segments: on disk (a size cap with LRU eviction, one backend fetch per
miss) and, for the most requested ones, in memory.

Files are named by a hash of their key, written to a temporary name and renamed into place
once complete, and get the backend's Last-Modified as their mtime (so ``FileResponse``
derives the same ETag the streamed answer had). Concurrent misses for one key share one
fetch. The cache starts empty: a restart only costs refetches.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Generic, TypeVar

from nebulacore.blocking import Offload
from origin.backend import Missing, ObjectInfo

log = logging.getLogger(__name__)
V = TypeVar("V")

# Fills ``file`` with the object's bytes; returns its Last-Modified (epoch seconds).
Fetch = Callable[[str, BinaryIO], Awaitable[float]]
# An evicted file may have just been handed to a response that has yet to open it.
UNLINK_DELAY_SECONDS = 10.0


class SizedLru(Generic[V]):
    """Values with a size in bytes under a byte cap, least recently used out first."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[V, int]] = OrderedDict()
        self.total_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> V | None:
        """The value of ``key`` (now the most recently used), or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def add(self, key: str, value: V, size: int) -> list[V]:
        """Insert ``key`` as the most recent; return the values evicted to stay under the cap."""
        if key in self._entries:
            self.total_bytes -= self._entries.pop(key)[1]
        self._entries[key] = (value, size)
        self.total_bytes += size
        evicted: list[V] = []
        while self.total_bytes > self.max_bytes and len(self._entries) > 1:
            _, (old, old_size) = self._entries.popitem(last=False)
            self.total_bytes -= old_size
            evicted.append(old)
        return evicted

    def keys_under(self, prefix: str) -> list[str]:
        return [key for key in self._entries if key.startswith(prefix)]

    def drop_prefix(self, prefix: str) -> list[V]:
        """Remove every key starting with ``prefix``; return their values."""
        doomed = [key for key in self._entries if key.startswith(prefix)]
        dropped = []
        for key in doomed:
            value, size = self._entries.pop(key)
            self.total_bytes -= size
            dropped.append(value)
        return dropped


@dataclass(frozen=True)
class CachedFile:
    path: Path
    info: ObjectInfo  # the size and the backend's Last-Modified (also the file's mtime)


class SegmentCache:
    def __init__(self, root: Path, max_bytes: int, fetch: Fetch) -> None:
        self.max_bytes = max_bytes
        self._fetch = fetch
        self._objects = root / "objects"
        self._tmp = root / "tmp"
        self._files: SizedLru[CachedFile] = SizedLru(max_bytes)
        self._flights: dict[str, asyncio.Future[CachedFile | None]] = {}
        # Keys dropped while their fill was under way: the fill must not land.
        self._void: set[str] = set()
        self.hits = 0
        self.fills = 0
        self.evictions = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    @property
    def total_bytes(self) -> int:
        return self._files.total_bytes

    def reset(self) -> None:
        """Start empty: what a previous run left is not indexed, so it is removed."""
        for folder in (self._objects, self._tmp):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True, exist_ok=True)

    async def get(self, key: str) -> CachedFile | None:
        """The cached file of ``key``, fetched first on a miss; None if it may not be cached."""
        cached = self._files.get(key)
        if cached is not None:
            self.hits += 1
            return cached
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._fill(key))
            self._flights[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        # A viewer that hangs up must not cancel the fetch other viewers wait for.
        return await asyncio.shield(flight)

    def _landed(self, key: str, done: asyncio.Future[CachedFile | None]) -> None:
        self._flights.pop(key, None)
        self._void.discard(key)
        if not done.cancelled() and done.exception() is not None:
            log.debug("cache fill of %s failed: %r", key, done.exception())

    async def _fill(self, key: str) -> CachedFile | None:
        self.fills += 1
        tmp = self._tmp / uuid.uuid4().hex
        try:
            with tmp.open("wb") as file:
                last_modified = await self._fetch(key, file)
            if key in self._void:  # its asset was deleted meanwhile
                raise Missing(key)
            size = tmp.stat().st_size
            if size > self.max_bytes:
                return None
            os.utime(tmp, (last_modified, last_modified))
            # A fresh name per fill: a delayed unlink of an evicted copy never hits a new one.
            final = self._objects / f"{hashlib.sha256(key.encode()).hexdigest()}-{tmp.name}"
            tmp.replace(final)
        finally:
            tmp.unlink(missing_ok=True)
        cached = CachedFile(final, ObjectInfo(size, last_modified))
        loop = asyncio.get_running_loop()
        for old in self._files.add(key, cached, size):
            self.evictions += 1
            loop.call_later(UNLINK_DELAY_SECONDS, _unlink_quietly, old.path)
        return cached

    def keys_under(self, prefix: str) -> list[str]:
        """The keys starting with ``prefix`` held or being filled."""
        return self._files.keys_under(prefix) + [k for k in self._flights if k.startswith(prefix)]

    def drop_prefix(self, prefix: str) -> int:
        """Forget every key starting with ``prefix`` and remove its file now (a response
        handed the path but yet to open it answers 404: what a deleted object should get);
        a fill under way for such a key ends Missing instead of landing. Returns how many
        files were removed."""
        self._void.update(key for key in self._flights if key.startswith(prefix))
        dropped = self._files.drop_prefix(prefix)
        for cached in dropped:
            _unlink_quietly(cached.path)
        return len(dropped)

    def gauges(self) -> dict[str, float]:
        return {
            "nebula_origin_cache_bytes": self.total_bytes,
            "nebula_origin_cache_objects": len(self._files),
            "nebula_origin_cache_hits_total": self.hits,
            "nebula_origin_cache_fills_total": self.fills,
            "nebula_origin_cache_evictions_total": self.evictions,
        }


@dataclass(frozen=True)
class HotObject:
    body: bytes
    info: ObjectInfo  # the same validators the disk tier and the streamed answer give


class MemoryTier:
    """Segments from the disk cache kept again in memory, least recently used out first.

    Segments are immutable (each version has its own path), so a copy never goes stale.
    Serving from memory skips what costs most per request on a warm disk cache: the
    thread hop to open and stat the file and the sendfile bookkeeping. Each origin worker
    process has its own tier of ``max_bytes``; objects over ``max_object_bytes`` stay on
    disk only.
    """

    def __init__(self, max_bytes: int, max_object_bytes: int = 8 * 1024 * 1024) -> None:
        self.max_object_bytes = min(max_object_bytes, max_bytes)
        self._objects: SizedLru[HotObject] = SizedLru(max_bytes)
        self._drops = 0  # how many drops so far: a load that saw one in between discards
        self.hits = 0

    def get(self, key: str) -> HotObject | None:
        hit = self._objects.get(key)
        if hit is not None:
            self.hits += 1
        return hit

    async def load(self, key: str, path: Path, size: int) -> HotObject | None:
        """Read a disk-cached file of ``size`` bytes into the tier; None when it is too
        large for the tier (nothing is read) or gone from disk."""
        if size > self.max_object_bytes:
            return None
        drops = self._drops
        try:
            hot = await Offload.default().run(_read_hot, path)
        except OSError:  # evicted from disk in between: the caller serves it another way
            return None
        if drops != self._drops:  # it may be of an asset dropped meanwhile: not kept
            return None
        if key not in self._objects:
            self._objects.add(key, hot, len(hot.body))
        return hot

    def keys_under(self, prefix: str) -> list[str]:
        return self._objects.keys_under(prefix)

    def drop_prefix(self, prefix: str) -> int:
        """Forget every key starting with ``prefix``; returns how many."""
        self._drops += 1
        return len(self._objects.drop_prefix(prefix))

    def gauges(self) -> dict[str, float]:
        return {
            "nebula_origin_memory_bytes": self._objects.total_bytes,
            "nebula_origin_memory_objects": len(self._objects),
            "nebula_origin_memory_hits_total": self.hits,
        }


def _read_hot(path: Path) -> HotObject:
    with path.open("rb") as file:
        mtime = os.fstat(file.fileno()).st_mtime
        body = file.read()
    return HotObject(body, ObjectInfo(len(body), mtime))


def _unlink_quietly(path: Path) -> None:
    path.unlink(missing_ok=True)
