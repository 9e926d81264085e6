"""What the origin's handlers share, built once per app."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import BinaryIO

import aiohttp
from aiohttp import web

from catalog import Catalog
from nebulacore.config import Settings
from origin.assets import AssetReader
from origin.backend import CHUNK, BackendDown, ObjectInfo, Store, object_info
from origin.cache import MemoryTier, SegmentCache
from origin.signing import PlaybackSigner

# A playlist is re-read from the backend at most this often (its Cache-Control is 10 s).
PLAYLIST_TTL_SECONDS = 2.0
PLAYLIST_MAX_BYTES = 4 * 1024 * 1024
PLAYLIST_MEMORY_ENTRIES = 512


@dataclass
class TextCache:
    """Playlists and thumbnail tracks kept in memory for a moment: hot, small, replaceable."""

    entries: dict[str, tuple[float, bytes, ObjectInfo]] = field(default_factory=dict)

    def get(self, key: str) -> tuple[bytes, ObjectInfo] | None:
        hit = self.entries.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1], hit[2]

    def put(self, key: str, body: bytes, info: ObjectInfo) -> None:
        if len(self.entries) >= PLAYLIST_MEMORY_ENTRIES:
            self.entries.pop(next(iter(self.entries)))
        self.entries[key] = (time.monotonic() + PLAYLIST_TTL_SECONDS, body, info)


@dataclass
class Origin:
    settings: Settings
    backend: Store
    assets: AssetReader
    signer: PlaybackSigner | None
    texts: TextCache = field(default_factory=TextCache)
    cache: SegmentCache = field(init=False)
    memory: MemoryTier = field(init=False)

    def __post_init__(self) -> None:
        cap = self.settings.origin_cache_max_mb * 1024 * 1024
        self.cache = SegmentCache(self.settings.cache_dir, cap, self.fetch_segment)
        self.memory = MemoryTier(self.settings.origin_memory_cache_mb * 1024 * 1024)

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

    async def read_text(self, key: str) -> tuple[bytes, ObjectInfo]:
        hit = self.texts.get(key)
        if hit is not None:
            return hit
        body, info = await self.backend.read(self.bucket, key, PLAYLIST_MAX_BYTES)
        self.texts.put(key, body, info)
        return body, info


ORIGIN = web.AppKey("nebula.origin", Origin)
