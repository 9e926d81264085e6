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
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger("nebula.origin.cache")

# Fills ``file`` with the object's bytes; returns its Last-Modified (epoch seconds).
Fetch = Callable[[str, BinaryIO], Awaitable[float]]
# A cached object is (its bytes, its Last-Modified in epoch seconds).
HotObject = tuple[bytes, float]
# An evicted file may have just been handed to a response that has yet to open it.
UNLINK_DELAY_SECONDS = 10.0


class SegmentCache:
    def __init__(self, root: Path, max_bytes: int, fetch: Fetch) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._fetch = fetch
        self._objects = root / "objects"
        self._tmp = root / "tmp"
        # key -> (file, size), least recently used first
        self._entries: OrderedDict[str, tuple[Path, int]] = OrderedDict()
        self._flights: dict[str, asyncio.Future[Path | None]] = {}
        self.total_bytes = 0
        self.hits = 0
        self.fills = 0
        self.evictions = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def reset(self) -> None:
        """Start empty: what a previous run left is not indexed, so it is removed."""
        for folder in (self._objects, self._tmp):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True, exist_ok=True)

    async def get(self, key: str) -> Path | None:
        """The cached file of ``key``, fetched first on a miss; None if it may not be cached."""
        if key in self._entries:
            self._entries.move_to_end(key)
            self.hits += 1
            return self._entries[key][0]
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._fill(key))
            self._flights[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        # A viewer that hangs up must not cancel the fetch other viewers wait for.
        return await asyncio.shield(flight)

    def _landed(self, key: str, done: asyncio.Future[Path | None]) -> None:
        self._flights.pop(key, None)
        if not done.cancelled() and done.exception() is not None:
            log.debug("cache fill of %s failed: %r", key, done.exception())

    async def _fill(self, key: str) -> Path | None:
        self.fills += 1
        tmp = self._tmp / uuid.uuid4().hex
        try:
            with tmp.open("wb") as file:
                last_modified = await self._fetch(key, file)
            size = tmp.stat().st_size
            if size > self.max_bytes:
                return None
            os.utime(tmp, (last_modified, last_modified))
            # A fresh name per fill: a delayed unlink of an evicted copy never hits a new one.
            final = self._objects / f"{hashlib.sha256(key.encode()).hexdigest()}-{tmp.name}"
            tmp.replace(final)
        finally:
            tmp.unlink(missing_ok=True)
        self._entries[key] = (final, size)
        self.total_bytes += size
        self._evict(keep=key)
        return final

    def _evict(self, keep: str) -> None:
        loop = asyncio.get_running_loop()
        while self.total_bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            if oldest == keep:
                break
            path, size = self._entries.pop(oldest)
            self.total_bytes -= size
            self.evictions += 1
            loop.call_later(UNLINK_DELAY_SECONDS, _unlink_quietly, path)

    def gauges(self) -> dict[str, float]:
        return {
            "nebula_origin_cache_bytes": self.total_bytes,
            "nebula_origin_cache_objects": len(self._entries),
            "nebula_origin_cache_hits_total": self.hits,
            "nebula_origin_cache_fills_total": self.fills,
            "nebula_origin_cache_evictions_total": self.evictions,
        }


def _unlink_quietly(path: Path) -> None:
    path.unlink(missing_ok=True)


class MemoryTier:
    """Segments from the disk cache kept again in memory, least recently used out first.

    Segments are immutable (each version has its own path), so a copy never goes stale.
    Serving from memory skips what costs most per request on a warm disk cache: the
    thread hop to open and stat the file and the sendfile bookkeeping. Each origin worker
    process has its own tier of ``max_bytes``; objects over ``max_object_bytes`` stay on
    disk only.
    """

    def __init__(self, max_bytes: int, max_object_bytes: int = 8 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.max_object_bytes = min(max_object_bytes, max_bytes)
        self._entries: OrderedDict[str, HotObject] = OrderedDict()
        self.total_bytes = 0
        self.hits = 0

    def get(self, key: str) -> HotObject | None:
        hit = self._entries.get(key)
        if hit is not None:
            self._entries.move_to_end(key)
            self.hits += 1
        return hit

    async def load(self, key: str, path: Path) -> HotObject | None:
        """Read a disk-cached file into the tier; None when it is too large or gone."""
        if self.max_object_bytes <= 0:
            return None
        try:
            loaded = await asyncio.to_thread(_read_if_small, path, self.max_object_bytes)
        except OSError:  # evicted from disk in between: the caller serves it another way
            return None
        if loaded is not None and key not in self._entries:
            self._entries[key] = loaded
            self.total_bytes += len(loaded[0])
            while self.total_bytes > self.max_bytes:
                _, (body, _) = self._entries.popitem(last=False)
                self.total_bytes -= len(body)
        return loaded

    def gauges(self) -> dict[str, float]:
        return {
            "nebula_origin_memory_bytes": self.total_bytes,
            "nebula_origin_memory_objects": len(self._entries),
            "nebula_origin_memory_hits_total": self.hits,
        }


def _read_if_small(path: Path, limit: int) -> HotObject | None:
    with path.open("rb") as file:
        stat = os.fstat(file.fileno())
        if stat.st_size > limit:
            return None
        return file.read(), stat.st_mtime
