"""The guard of nebulacore.aiohttp_private: each private aiohttp name Nebula relies on is
still there and still does what Nebula needs, on the installed aiohttp.

A failure names the entry of ``PRIVATE_USES`` (the test id and the message) whose aiohttp
name changed: mend its helper in nebulacore/aiohttp_private.py before widening the pin.
Servers here are aiohttp's own test server on loopback, in this process.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer, make_mocked_request

from nebulacore.aiohttp_private import (
    PRIVATE_USES,
    BaseTimerContext,
    FileResponseFor,
    HeadAtPrepare,
    PrivateUse,
    WaitReportingConnector,
    install_front,
    keep_body,
    read_timer,
    route_to,
    set_read_timer,
)

Check = Callable[[Path], Coroutine[Any, Any, None]]
CHECKS: dict[str, Check] = {}


def guards(name: str) -> Callable[[Check], Check]:
    def register(check: Check) -> Check:
        CHECKS[name] = check
        return check

    return register


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[TestServer]:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


def mocked_writer() -> mock.Mock:
    writer = mock.Mock()
    writer.write_headers = mock.AsyncMock()
    writer.write = mock.AsyncMock()
    writer.write_eof = mock.AsyncMock()
    writer.drain = mock.AsyncMock()
    return writer


@guards("web.StreamResponse._send_headers_immediately")
async def _head_at_prepare(tmp_path: Path) -> None:
    sent_at_prepare = {}
    for kind in (HeadAtPrepare, web.Response):
        writer = mocked_writer()
        await kind(body=b"x" * 10).prepare(make_mocked_request("GET", "/", writer=writer))
        sent_at_prepare[kind] = writer.send_headers.called
    # A Response's head waits to be joined to its body; HeadAtPrepare's leaves at prepare.
    assert sent_at_prepare == {HeadAtPrepare: True, web.Response: False}


@guards("web.Response._body")
async def _body_kept(tmp_path: Path) -> None:
    view = memoryview(b"abcdef")[1:4]
    response = web.Response(status=206)
    keep_body(response, view)
    assert response.body is view
    assert response.content_length == 3
    writer = mocked_writer()
    await response.prepare(make_mocked_request("GET", "/", writer=writer))
    await response.write_eof()
    written = b"".join(bytes(call.args[0]) for call in writer.write_eof.call_args_list)
    written += b"".join(bytes(call.args[0]) for call in writer.write.call_args_list)
    assert written == b"bcd"


@guards("web.FileResponse.prepare(request) on a cloned request")
async def _file_response_for_clone(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"0123456789")

    async def handler(request: web.Request) -> web.StreamResponse:
        # The client asks for a range; the clone asks for another one.
        clone = request.clone(headers={"Range": "bytes=2-4"})
        return FileResponseFor(str(path), clone, {"X-Kept": "1"})

    app = web.Application()
    app.router.add_get("/", handler)
    async with (
        serving(app) as server,
        aiohttp.ClientSession() as session,
        session.get(server.make_url("/"), headers={"Range": "bytes=0-0"}) as answer,
    ):
        assert (answer.status, await answer.read()) == (206, b"234")
        assert answer.headers["X-Kept"] == "1"


@guards("aiohttp.TCPConnector._wait_for_available_connection")
async def _connector_reports_waits(tmp_path: Path) -> None:
    assert list(inspect.signature(aiohttp.TCPConnector._wait_for_available_connection).parameters)[
        1:
    ] == ["key", "traces"]
    first_in = asyncio.Event()
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        first_in.set()
        await release.wait()
        return web.Response(text="ok")

    calls: list[bool] = []

    class Recording(WaitReportingConnector):
        def waiting(self, waits: bool) -> None:
            calls.append(waits)

    async def queued(*args: Any) -> None:
        release.set()  # the second request is queued: let the first one finish

    # aiohttp's public trace says when a request queues, whatever the override sees.
    trace = aiohttp.TraceConfig()
    trace.on_connection_queued_start.append(queued)
    app = web.Application()
    app.router.add_get("/", handler)
    async with (
        serving(app) as server,
        aiohttp.ClientSession(connector=Recording(limit=1), trace_configs=[trace]) as session,
    ):

        async def get() -> str:
            async with session.get(server.make_url("/")) as answer:
                return await answer.text()

        first = asyncio.create_task(get())
        await first_in.wait()
        assert await asyncio.gather(first, get()) == ["ok", "ok"]
    assert calls == [True, False]


def _front_app(seen: dict[str, Any]) -> tuple[web.Application, web.AbstractRoute]:
    async def routed(request: web.Request) -> web.Response:
        return web.Response(text="app")

    async def signal(request: web.BaseRequest, response: web.StreamResponse) -> None:
        response.headers["X-Signal"] = "sent"

    app = web.Application()
    app.on_response_prepare.append(signal)
    route = app.router.add_get("/items/{name}", routed)
    return app, route


@asynccontextmanager
async def front_serving(app: web.Application, front: Any) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    install_front(runner, front)
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@guards("web.Server.request_handler (undocumented attribute of runner.server)")
async def _front_called_first(tmp_path: Path) -> None:
    app, _ = _front_app({})

    def front(app_handler: Any) -> Any:
        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            if request.path == "/front":
                return web.Response(text="front")
            return await app_handler(request)

        return handle

    async with front_serving(app, front) as url, aiohttp.ClientSession() as session:
        for path, text in (("/front", "front"), ("/items/a", "app")):
            async with session.get(url + path) as answer:
                assert await answer.text() == text


@guards("web.Request._match_info, read by Request._prepare_hook")
async def _front_request_has_a_match(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}
    app, route = _front_app(seen)

    def front(app_handler: Any) -> Any:
        async def handle(base: web.BaseRequest) -> web.StreamResponse:
            if not base.path.startswith("/front/"):
                return await app_handler(base)
            request = base if isinstance(base, web.Request) else None
            assert request is not None, "the app's request factory no longer makes Requests"
            route_to(request, route, {"name": base.path.rsplit("/", 1)[1]})
            seen["name"] = request.match_info["name"]
            seen["route"] = request.match_info.route
            return web.Response(text="front")

        return handle

    prepare_hook = web.Request._prepare_hook

    async def as_in_aiohttp_4(self: web.Request, response: web.StreamResponse) -> None:
        # aiohttp 4 asserts that every prepared Request has a match (aio-libs/aiohttp#12925).
        assert self._match_info is not None
        await prepare_hook(self, response)

    with mock.patch.object(web.Request, "_prepare_hook", as_in_aiohttp_4):
        async with front_serving(app, front) as url, aiohttp.ClientSession() as session:
            async with session.get(url + "/front/b") as answer:
                assert (answer.status, await answer.text()) == (200, "front")
                assert "X-Signal" not in answer.headers  # of no app: no app's signal
            async with session.get(url + "/items/a") as answer:
                assert answer.headers["X-Signal"] == "sent"  # the router's path sends it
    assert seen == {"name": "b", "route": route}


class RecordingTimer(BaseTimerContext):
    def __init__(self) -> None:
        self.entered = self.exited = 0

    def __enter__(self) -> BaseTimerContext:
        self.entered += 1
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.exited += 1


@guards("StreamReader._timer (aiohttp.helpers.BaseTimerContext)")
async def _reader_waits_inside_the_timer(tmp_path: Path) -> None:
    reader = aiohttp.StreamReader(mock.Mock(_reading_paused=False), 2**16)
    timer = RecordingTimer()
    set_read_timer(reader, timer)
    assert read_timer(reader) is timer
    read = asyncio.create_task(reader.read(1))
    while not timer.entered:  # the reader is waiting for data
        await asyncio.sleep(0)
    reader.feed_data(b"x")
    assert await read == b"x"
    assert (timer.entered, timer.exited) == (1, 1)


def test_every_private_use_has_a_guard() -> None:
    assert sorted(CHECKS) == sorted(use.name for use in PRIVATE_USES)


@pytest.mark.parametrize("use", PRIVATE_USES, ids=lambda use: use.name)
def test_aiohttp_still_has(use: PrivateUse, tmp_path: Path) -> None:
    try:
        asyncio.run(CHECKS[use.name](tmp_path))
    except Exception as exc:
        raise AssertionError(
            f"aiohttp changed under {use.name} (helper {use.helper} in "
            f"nebulacore/aiohttp_private.py, used by {', '.join(use.users)}): {exc!r}"
        ) from exc
