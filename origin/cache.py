"""The local disk cache of segments: a size cap with LRU eviction, one backend fetch per miss.

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
