"""The one async client of the storage backend, shared by the s3proxy and the origin.

:class:`Backend` owns one pooled aiohttp session (SigV4-signed requests through
:class:`nebulacore.s3.BackendSigner`) and a separate one-connection session for the health
probe, so ``/healthz`` never queues behind client traffic for a pooled connection. Both
are opened by :meth:`Backend.start` when the app starts and closed by :meth:`Backend.close`.

What differs between the services is named side by side in :class:`BackendPolicy`. A
request that gets no answer raises one of the :class:`BackendError` family; what an
answer's status means (404, 416, 5xx) is for the caller to judge.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from nebulacore.aiohttp_private import WaitReportingConnector
from nebulacore.config import Settings
from nebulacore.ops import CHECK_TIMEOUT_SECONDS
from nebulacore.s3 import UNSIGNED_PAYLOAD, BackendSigner

# Both roles: a fresh TCP connection must open within this (the pool wait, ``connect``,
# bounds it further), and the backend's address is resolved at most every five minutes.
SOCK_CONNECT_SECONDS = 10.0
DNS_CACHE_SECONDS = 300
DEFAULT_READ_BUFSIZE = 1 << 16  # aiohttp's own default
# Headers aiohttp would add unasked; the proxy sends the backend only what it signed.
NO_AUTO_HEADERS = ("Content-Type", "Accept", "Accept-Encoding", "User-Agent")


class BackendError(Exception):
    """The backend gave no answer to a request."""


class BackendBusy(BackendError):
    """Every pooled connection stayed in use for the whole pool wait: the caller should
    tell its client to back off."""


class BackendUnreachable(BackendError):
    """No connection to the backend could be opened."""


class BackendFailed(BackendError):
    """The backend was reached but the exchange broke before an answer's headers came."""


@dataclass(frozen=True)
class BackendPolicy:
    """The choices that differ between the two services talking to the backend."""

    # Pooled connections to the backend.
    connections: int
    # How long a request waits for a free pooled connection (aiohttp's ``connect``
    # timeout covers that wait) before it fails with BackendBusy.
    wait_seconds: float
    # How long the backend may stay silent mid-answer.
    sock_read_seconds: float
    # Bytes aiohttp reads from the backend's socket at a time.
    read_bufsize: int
    # aiohttp's automatic request headers left out.
    skip_auto_headers: tuple[str, ...]

    @classmethod
    def proxy(cls, settings: Settings) -> BackendPolicy:
        """The s3proxy: uploads hold a connection for as long as their client sends; the
        backend may sit minutes on CompleteMultipartUpload or a large copy; fewer, larger
        pieces through the proxy; only signed headers reach the backend."""
        return cls(
            connections=settings.backend_connections,
            wait_seconds=settings.backend_wait_seconds,
            sock_read_seconds=900.0,
            read_bufsize=1 << 20,
            skip_auto_headers=NO_AUTO_HEADERS,
        )

    @classmethod
    def origin(cls, settings: Settings) -> BackendPolicy:
        """The origin: short reads of segments and playlists; a silent backend is down."""
        return cls(
            connections=settings.origin_backend_connections,
            wait_seconds=settings.backend_wait_seconds,
            sock_read_seconds=30.0,
            read_bufsize=DEFAULT_READ_BUFSIZE,
            skip_auto_headers=(),
        )


# Per request (each is one task): did it wait for a free pooled connection? Set by
# :class:`PoolConnector`, reset by :meth:`Backend.send` before each request.
_QUEUED: ContextVar[bool] = ContextVar("nebula_backend_queued", default=False)


class PoolConnector(WaitReportingConnector):
    """aiohttp's connector, noting when a request queues for a pooled connection.

    It is where aiohttp's own ``on_connection_queued_*`` trace signals fire; tracing
    instead cost every request a ``Trace`` and a dozen signal sends, for an answer needed
    only when a request fails (docs/benchmarks.md#s3proxy)."""

    def waiting(self, waits: bool) -> None:
        # False once it got one: a later timeout is the connection's own.
        _QUEUED.set(waits)


class Backend:
    """The pooled, signed aiohttp client of the storage backend (see the module doc)."""

    def __init__(self, settings: Settings, policy: BackendPolicy) -> None:
        self.signer = BackendSigner(settings)
        self.policy = policy
        self._session: aiohttp.ClientSession | None = None
        self._health: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the sessions (on the app's loop, when it starts)."""
        policy = self.policy
        self._session = aiohttp.ClientSession(
            connector=PoolConnector(limit=policy.connections, ttl_dns_cache=DNS_CACHE_SECONDS),
            timeout=aiohttp.ClientTimeout(
                total=None,
                connect=policy.wait_seconds,
                sock_connect=SOCK_CONNECT_SECONDS,
                sock_read=policy.sock_read_seconds,
            ),
            auto_decompress=False,
            read_bufsize=policy.read_bufsize,
            skip_auto_headers=policy.skip_auto_headers,
        )
        self._health = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1, force_close=True),
            timeout=aiohttp.ClientTimeout(total=CHECK_TIMEOUT_SECONDS),
            auto_decompress=False,
        )

    async def close(self) -> None:
        for session in (self._session, self._health):
            if session is not None:
                await session.close()
        self._session = self._health = None

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "Backend.start() was not awaited"
        return self._session

    async def send(
        self, method: str, url: str, headers: Mapping[str, str], data: Any = None
    ) -> aiohttp.ClientResponse:
        """Send a request already signed (``headers``) to ``url``, already encoded; the
        caller must release the answer. Raises a :class:`BackendError` when none comes."""
        _QUEUED.set(False)
        try:
            return await self.session.request(
                method,
                URL(url, encoded=True),
                headers=headers,
                data=data,
                allow_redirects=False,
            )
        except aiohttp.ConnectionTimeoutError as exc:
            if _QUEUED.get():  # every connection stayed busy for the whole wait
                raise BackendBusy("every backend connection is busy") from exc
            raise BackendUnreachable(f"no connection to the backend: {exc!r}") from exc
        except aiohttp.ClientConnectorError as exc:
            raise BackendUnreachable(f"no connection to the backend: {exc!r}") from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise BackendFailed(f"the backend failed to answer: {exc!r}") from exc

    async def probe(self, method: str, url: str) -> int:
        """The status of a signed, body-less health probe, sent on the health session.
        Connection errors are raised as aiohttp gives them (``/healthz`` prints them)."""
        assert self._health is not None, "Backend.start() was not awaited"
        headers = self.signer.sign(method, url, {}, UNSIGNED_PAYLOAD)
        async with self._health.request(
            method, URL(url, encoded=True), headers=headers, allow_redirects=False
        ) as response:
            return response.status
