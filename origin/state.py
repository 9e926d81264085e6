"""What the origin's handlers share, built once per app."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import partial
from typing import BinaryIO

import aiohttp
from aiohttp import web

from catalog import Catalog
from nebulacore import hls
from nebulacore.config import Settings
from origin.assets import AssetReader
from origin.backend import CHUNK, BackendDown, Missing, ObjectInfo, Store, object_info
from origin.cache import MemoryTier, SegmentCache
from origin.content import LadderHeaders
from origin.cors import cors_headers
from origin.respond import body_etag
from origin.revocation import Revocations
from origin.signing import PlaybackSigner

log = logging.getLogger(__name__)

# A playlist is re-read from the backend at most this often (its Cache-Control is 10 s).
PLAYLIST_TTL_SECONDS = 2.0
# A playlist that may still grow (or is yet to be published) is re-read this often: a new
# segment reaches viewers within a second (and one more of their own max-age=1).
GROWING_TTL_SECONDS = 1.0
PLAYLIST_MAX_BYTES = 4 * 1024 * 1024
PLAYLIST_MEMORY_ENTRIES = 512


@dataclass(frozen=True)
class Text:
    """A playlist or thumbnail track as read from the backend."""

    body: bytes
    info: ObjectInfo
    growing: bool  # a playlist without #EXT-X-ENDLIST: short-lived everywhere


def read_as_text(key: str, body: bytes, info: ObjectInfo) -> Text:
    """A growing playlist is validated by a hash of its bytes and has no Last-Modified: it
    may change twice within one second, which a date (or a size) cannot tell apart."""
    growing = hls.content_type(key) == hls.PLAYLIST_TYPE and hls.is_growing(
        body.decode("utf-8", errors="replace")
    )
    if growing:
        info = ObjectInfo(len(body), info.last_modified, body_etag(body), dated=False)
    return Text(body, info, growing)


@dataclass
class TextCache:
    """Playlists and thumbnail tracks kept in memory for a moment: hot, small, replaceable."""

    # None: the backend had no such object a moment ago (pages polling for a master that
    # is yet to be published ask once a second, not once per viewer and poll).
    entries: dict[str, tuple[float, Text | None]] = field(default_factory=dict)

    def get(self, key: str) -> Text | None:
        """The text of ``key``; None on a miss; raises Missing if it was missing just now."""
        hit = self.entries.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        if hit[1] is None:
            raise Missing(key)
        return hit[1]

    def put(self, key: str, text: Text | None) -> None:
        if len(self.entries) >= PLAYLIST_MEMORY_ENTRIES:
            self.entries.pop(next(iter(self.entries)))
        ttl = PLAYLIST_TTL_SECONDS if text and not text.growing else GROWING_TTL_SECONDS
        self.entries[key] = (time.monotonic() + ttl, text)

    def keys_under(self, prefix: str) -> list[str]:
        return [key for key in self.entries if key.startswith(prefix)]

    def drop_prefix(self, prefix: str) -> int:
        doomed = self.keys_under(prefix)
        for key in doomed:
            del self.entries[key]
        return len(doomed)


@dataclass
class Origin:
    settings: Settings
    backend: Store
    assets: AssetReader
    signer: PlaybackSigner | None
    texts: TextCache = field(default_factory=TextCache)
    _text_flights: dict[str, asyncio.Future[Text]] = field(default_factory=dict)
    cache: SegmentCache = field(init=False)
    ladder_headers: LadderHeaders = field(init=False)
    memory: MemoryTier = field(init=False)
    revocations: Revocations = field(init=False)

    def __post_init__(self) -> None:
        cap = self.settings.origin_cache_max_mb * 1024 * 1024
        self.cache = SegmentCache(self.settings.cache_dir, cap, self.fetch_segment)
        self.memory = MemoryTier(self.settings.origin_memory_cache_mb * 1024 * 1024)
        self.revocations = Revocations(self.assets, self.drop_prefix, self.keep_versions)
        self.ladder_headers = LadderHeaders(cors_headers(self.settings.cors_allow_origin))

    @classmethod
    def build(cls, settings: Settings) -> Origin:
        key = settings.origin_signing_key
        return cls(
            settings=settings,
            backend=Store(settings),
            assets=AssetReader(Catalog.from_settings(settings)),
            signer=PlaybackSigner(key.get_secret_value()) if key else None,
        )

    @property
    def bucket(self) -> str:
        return self.settings.hls_bucket

    async def fetch_segment(self, key: str, file: BinaryIO) -> float:
        """Fill a cache file from the HLS bucket; returns the object's Last-Modified."""
        async with self.backend.get(self.bucket, key) as response:
            info = object_info(response)
            try:
                async for chunk in response.content.iter_chunked(CHUNK):
                    file.write(chunk)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise BackendDown(f"backend failed mid-body: {type(exc).__name__}") from None
            return info.last_modified

    async def read_text(self, key: str) -> Text:
        hit = self.texts.get(key)
        if hit is not None:
            return hit
        # When a playlist's moment in memory ends, every request in flight for it would
        # refetch it: one read per key at a time, its answer shared.
        flight = self._text_flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._read_text(key))
            self._text_flights[key] = flight
            flight.add_done_callback(partial(self._text_landed, key))
        # A viewer that hangs up must not cancel the read other viewers wait for.
        return await asyncio.shield(flight)

    async def _read_text(self, key: str) -> Text:
        try:
            body, info = await self.backend.read(self.bucket, key, PLAYLIST_MAX_BYTES)
        except Missing:
            self.texts.put(key, None)
            raise
        text = read_as_text(key, body, info)
        self.texts.put(key, text)
        return text

    def _text_landed(self, key: str, done: asyncio.Future[Text]) -> None:
        self._text_flights.pop(key, None)
        if not done.cancelled():
            done.exception()  # seen by the waiters; retrieved here in case none is left

    def drop_prefix(self, prefix: str) -> None:
        """Forget every object whose key starts with ``prefix`` in every tier of this
        worker: playlists, memory, the disk cache (files removed now)."""
        counts = (
            self.texts.drop_prefix(prefix),
            self.memory.drop_prefix(prefix),
            self.cache.drop_prefix(prefix),
        )
        if any(counts):
            log.info("dropped %s from the caches (texts, memory, disk: %s)", prefix, counts)

    async def keep_versions(self, asset_id: str, kept: Collection[str]) -> None:
        """Forget, in every tier of this worker, each cached version of ``asset_id`` that
        storage no longer has: a swept version is a 404 from now on.

        ``kept`` are the versions the catalog says storage keeps; any other is looked up in
        storage (one of its cached keys), so a version the catalog does not list but
        storage still holds is served on, and one whose lookup fails is dropped (refetched
        if it is still there)."""
        prefix = hls.versions_prefix(asset_id)
        names = (
            *self.texts.keys_under(prefix),
            *self.memory.keys_under(prefix),
            *self.cache.keys_under(prefix),
        )
        sample = {hls.version_of_key(name): name for name in names}
        for version, key in sorted(sample.items()):
            if version not in kept and not await self._stored(key):
                self.drop_prefix(hls.asset_key(asset_id, version) + "/")

    async def _stored(self, key: str) -> bool:
        try:
            await self.backend.head(self.bucket, key)
        except (Missing, BackendDown):
            return False
        return True


ORIGIN = web.AppKey("nebula.origin", Origin)
