"""Reading the HLS bucket and original uploads from the backend, streamed, through the
core client (:class:`nebulacore.backend.Backend`).

Only GET and HEAD: the origin never writes to storage. Failures are sorted into what the
viewer should be told: :class:`Missing` (404) and :class:`BackendDown` (503).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from functools import cached_property

import aiohttp
from aiohttp import hdrs

from nebulacore.backend import Backend, BackendError, BackendPolicy
from nebulacore.config import Settings

CHUNK = 256 * 1024


class BackendDown(Exception):
    """The backend could not be reached or failed (answered 503)."""


class Missing(Exception):
    """No such object, asset or original (answered 404 with the message)."""


class RangeRefused(Exception):
    """The backend found the requested range unsatisfiable (answered 416)."""


@dataclass(frozen=True)
class ObjectInfo:
    """What conditional requests and ranges are judged against: one representation's size
    and validators."""

    size: int
    last_modified: float  # seconds since the epoch, whole seconds as S3 gives them
    # The same form aiohttp's FileResponse derives from a file's mtime and size: the cached
    # copy keeps the backend's Last-Modified as its mtime, so an object has one ETag whether
    # it is streamed from the backend or sent from the disk cache. A body made here (a
    # signed playlist) passes the hash of its bytes instead.
    etag: str = ""
    # False for a playlist that may still grow: it can change twice within the second its
    # Last-Modified names, so it goes out without one and is validated by its ETag (a hash
    # of its bytes) alone; date preconditions are ignored (RFC 9110 13.1.3, 13.1.4).
    dated: bool = True

    def __post_init__(self) -> None:
        if not self.etag:
            stamp = int(self.last_modified) * 1_000_000_000
            object.__setattr__(self, "etag", f'"{stamp:x}-{self.size:x}"')

    @cached_property
    def bare_etag(self) -> str:
        """The ETag without its quotes, as aiohttp parses the If-Match family."""
        return self.etag.strip('"')

    @cached_property
    def validators(self) -> dict[str, str]:
        """Headers of every answer about this representation; computed once per object."""
        if not self.dated:
            return {hdrs.ETAG: self.etag, hdrs.ACCEPT_RANGES: "bytes"}
        return {
            hdrs.ETAG: self.etag,
            hdrs.LAST_MODIFIED: formatdate(self.last_modified, usegmt=True),
            hdrs.ACCEPT_RANGES: "bytes",
        }


def object_info(response: aiohttp.ClientResponse) -> ObjectInfo:
    """Size of the whole object and its Last-Modified, from a 200 or 206 answer."""
    content_range = response.headers.get("Content-Range", "")
    if response.status == 206 and "/" in content_range:
        size = int(content_range.rsplit("/", 1)[1])
    else:
        size = int(response.headers.get("Content-Length", "0"))
    modified = response.headers.get("Last-Modified")
    stamp = parsedate_to_datetime(modified).timestamp() if modified else 0.0
    return ObjectInfo(size=size, last_modified=float(int(stamp)))


class Store:
    """The origin's reads over the core backend client: GET and HEAD of one object, the
    answer's status sorted into Missing, RangeRefused and BackendDown."""

    def __init__(self, settings: Settings) -> None:
        self.client = Backend(settings, BackendPolicy.origin(settings))

    async def start(self) -> None:
        await self.client.start()

    async def close(self) -> None:
        await self.client.close()

    @asynccontextmanager
    async def get(
        self, bucket: str, key: str, byte_range: str | None = None, method: str = "GET"
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """The backend's answer for ``key``; raises Missing, RangeRefused or BackendDown."""
        signer = self.client.signer
        url = signer.url(bucket, key)
        headers = signer.sign(method, url, {"Range": byte_range} if byte_range else None)
        try:
            response = await self.client.send(method, url, headers)
        except BackendError as exc:
            raise BackendDown(f"backend unreachable: {type(exc.__cause__).__name__}") from None
        try:
            if response.status == 404:
                raise Missing(key)
            if response.status == 416:
                raise RangeRefused(key)
            if response.status not in (200, 206):
                raise BackendDown(f"backend answered {response.status}")
            yield response
        finally:
            response.release()

    async def read(self, bucket: str, key: str, limit: int) -> tuple[bytes, ObjectInfo]:
        """A small object (a playlist) whole; larger than ``limit`` is BackendDown-worthy."""
        async with self.get(bucket, key) as response:
            info = object_info(response)
            if info.size > limit:
                raise BackendDown(f"{key} is larger than {limit} bytes")
            try:
                body = await response.read()
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise BackendDown(f"backend read failed: {type(exc).__name__}") from None
            return body, info

    async def head(self, bucket: str, key: str) -> ObjectInfo:
        async with self.get(bucket, key, method="HEAD") as response:
            return object_info(response)

    async def ping(self, bucket: str) -> None:
        """Raises when the backend or the bucket is unreachable (the /healthz check), on
        the client's health connection: it never waits behind viewers for a pooled one."""
        status = await self.client.probe("HEAD", self.client.signer.url(bucket))
        if status >= 300:
            raise BackendDown(f"HEAD {bucket} answered {status}")
