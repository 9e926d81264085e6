"""Every private (or undocumented) aiohttp name Nebula relies on, in one place.

Each entry of :data:`PRIVATE_USES` says which aiohttp name, why Nebula needs it, and the
helper of this module that touches it; nothing else in Nebula names them, the services
use the helpers. aiohttp is pinned to the minor release these were checked against
(``setup.cfg``), and ``tests/test_aiohttp_private.py`` checks each entry's name and
behaviour on the installed aiohttp, failing with the entry's name when one changed.
To move to a new aiohttp: install it, run that guard, mend what it names here, then run
the origin and s3proxy tests and widen the pin (docs/s3.md, "aiohttp").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

import aiohttp
from aiohttp import StreamReader, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.helpers import BaseTimerContext

__all__ = [
    "PRIVATE_USES",
    "BaseTimerContext",
    "FileResponseFor",
    "HeadAtPrepare",
    "PrivateUse",
    "WaitReportingConnector",
    "install_front",
    "keep_body",
    "read_timer",
    "route_to",
    "set_read_timer",
]

# What a server calls for every request (nebulacore.web.ServerHandler, which imports this).
_ServerHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class PrivateUse:
    name: str  # the aiohttp name relied on
    why: str
    helper: str  # the helper of this module that touches it
    users: tuple[str, ...]  # where the helper is used


PRIVATE_USES: Final = (
    PrivateUse(
        "web.StreamResponse._send_headers_immediately",
        "A large body in memory goes out after its head instead of joined to it in one "
        "new bytes object (a copy of the whole body per answer).",
        "HeadAtPrepare",
        ("origin.respond._HeadFirst",),
    ),
    PrivateUse(
        "web.Response._body",
        "A 206 of a body in memory is sent as a memoryview of it: the body setter copies "
        "a bytes slice or wraps a view in a payload object.",
        "keep_body",
        ("origin.respond._Part",),
    ),
    PrivateUse(
        "web.FileResponse.prepare(request) on a cloned request",
        "The disk tier's sendfile answer is prepared for a clone of the request without "
        "its preconditions and with the decided range only (the clone shares the "
        "connection's writer), so FileResponse never judges them differently.",
        "FileResponseFor",
        ("origin.respond.file_response",),
    ),
    PrivateUse(
        "aiohttp.TCPConnector._wait_for_available_connection",
        "A backend request that waited for a free pooled connection is told apart from "
        "one whose connection was slow (SlowDown vs. ServiceUnavailable), without the "
        "per-request cost of aiohttp's trace signals.",
        "WaitReportingConnector",
        ("nebulacore.backend.PoolConnector",),
    ),
    PrivateUse(
        "web.Server.request_handler (undocumented attribute of runner.server)",
        "The origin's /hls/ front is called before the app's router and middlewares; "
        "aiohttp has no public hook around the app's handler.",
        "install_front",
        ("nebulacore.web.serve",),
    ),
    PrivateUse(
        "web.Request._match_info, read by Request._prepare_hook",
        "A request the front answers gets the /hls/ route's match (aiohttp 4 asserts "
        "every prepared request has one) but no app, so the app's response signal is "
        "not sent: the front's answers carry its headers already.",
        "route_to",
        ("origin.front.hls_front",),
    ),
    PrivateUse(
        "StreamReader._timer (aiohttp.helpers.BaseTimerContext)",
        "An idle request body times out: the reader waits for data inside this timer, the "
        "hook aiohttp's client uses for sock_read and its server leaves unset.",
        "set_read_timer",
        ("s3proxy.limits.Limits.arm", "s3proxy.limits.Limits.release"),
    ),
)


class HeadAtPrepare(web.Response):
    """A ``Response`` whose head is written at ``prepare``, as a ``StreamResponse``'s is,
    and its body written as it is afterwards (a plain ``Response`` joins the two)."""

    _send_headers_immediately = True


def keep_body(response: web.Response, body: memoryview) -> None:
    """Make ``body`` the response's body as it is: what the body setter does with bytes
    (a view of bytes reads, ``len`` and write, alike)."""
    response._body = cast(bytes, body)


class FileResponseFor(web.FileResponse):
    """aiohttp's ``FileResponse`` prepared for ``request`` (a clone of the one being
    answered) whatever request it is handed."""

    def __init__(self, path: str, request: web.BaseRequest, headers: Mapping[str, str]) -> None:
        super().__init__(path, headers=headers)
        self._for = request

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        return await super().prepare(self._for)


class WaitReportingConnector(aiohttp.TCPConnector):
    """aiohttp's connector, calling :meth:`waiting` with True before a request waits for
    a free pooled connection and with False once it has one."""

    def waiting(self, waits: bool) -> None:
        """Override: called around each wait for a pooled connection."""

    async def _wait_for_available_connection(self, key: Any, traces: list[Any]) -> None:
        self.waiting(True)
        await super()._wait_for_available_connection(key, traces)
        self.waiting(False)


def install_front(runner: web.AppRunner, front: Callable[[_ServerHandler], _ServerHandler]) -> None:
    """Have the runner's server call ``front(app's handler)`` for every request; after
    ``runner.setup()``, before a site starts (each connection takes the handler then)."""
    server = runner.server
    assert server is not None, "runner.setup() first"
    server.request_handler = front(server.request_handler)


def route_to(request: web.Request, route: web.AbstractRoute, match: dict[str, str]) -> None:
    """Give ``request`` the match of ``route`` (``request.match_info``), as the router
    would, but of no app: no app's ``on_response_prepare`` is sent for its answer."""
    info = web.UrlMappingMatchInfo(match, route)
    info.freeze()
    request._match_info = info


def set_read_timer(reader: StreamReader, timer: BaseTimerContext) -> None:
    """Make the reader wait for more data inside ``timer``."""
    reader._timer = timer


def read_timer(reader: StreamReader) -> BaseTimerContext | None:
    """The reader's timer (aiohttp's no-op one unless :func:`set_read_timer` set one)."""
    return cast(BaseTimerContext | None, getattr(reader, "_timer", None))
