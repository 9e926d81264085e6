"""The core backend client: signed requests to real SeaweedFS, and each way a request can
get no answer (stub servers on real sockets) mapped to its BackendError."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace

import aiohttp
import pytest
from aiohttp import web

from nebulacore.backend import (
    Backend,
    BackendBusy,
    BackendFailed,
    BackendPolicy,
    BackendUnreachable,
)
from nebulacore.config import Settings, load_settings
from nebulacore.s3 import UNSIGNED_PAYLOAD, backend_client

STUB_KEYS = {"NEBULA_BACKEND_ACCESS_KEY": "stub-key", "NEBULA_BACKEND_SECRET_KEY": "stub-secret"}


def stub_settings(port: int) -> Settings:
    return load_settings({**STUB_KEYS, "NEBULA_BACKEND_URL": f"http://127.0.0.1:{port}"})


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def started(settings: Settings, policy: BackendPolicy) -> AsyncIterator[Backend]:
    backend = Backend(settings, policy)
    await backend.start()
    try:
        yield backend
    finally:
        await backend.close()


async def send_signed(
    backend: Backend, method: str, url: str, body: bytes = b""
) -> aiohttp.ClientResponse:
    headers = {"content-length": str(len(body))} if body else {}
    payload_hash = hashlib.sha256(body).hexdigest() if body else UNSIGNED_PAYLOAD
    signed = backend.signer.sign(method, url, headers, payload_hash)
    return await backend.send(method, url, signed, body or None)


@pytest.mark.parametrize("role", [BackendPolicy.proxy, BackendPolicy.origin])
def test_signed_requests_reach_seaweedfs(
    make_settings: Callable[..., Settings], role: Callable[[Settings], BackendPolicy]
) -> None:
    settings = make_settings()
    bucket, key = f"core-{uuid.uuid4().hex[:10]}", "dir/a b+c.bin"
    payload = b"nebula " * 5000

    async def scenario() -> tuple[int, int, bytes, int]:
        async with started(settings, role(settings)) as backend:
            signer = backend.signer
            async with await send_signed(backend, "PUT", signer.url(bucket)) as made:
                made_status = made.status
            url = signer.url(bucket, key)
            async with await send_signed(backend, "PUT", url, payload) as stored:
                stored_status = stored.status
            async with await send_signed(backend, "GET", url) as read:
                body = await read.read()
            return made_status, stored_status, body, await backend.probe("HEAD", url)

    made, stored, body, probed = asyncio.run(scenario())
    assert (made, stored, probed) == (200, 200, 200)
    assert body == payload
    # The backend itself holds the bytes under the exact key.
    s3 = backend_client(settings)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == payload


def test_a_wrong_signature_gets_the_backends_refusal_not_an_error(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(backend_secret_key="not-the-secret")

    async def scenario() -> int:
        async with started(settings, BackendPolicy.origin(settings)) as backend:
            url = backend.signer.url("media")
            async with await send_signed(backend, "GET", url) as answer:
                return answer.status

    assert asyncio.run(scenario()) == 403


@asynccontextmanager
async def stub_backend(handler: Callable[[web.Request], object]) -> AsyncIterator[int]:
    """An aiohttp server on a real socket answering every request with ``handler``."""
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", handler)  # type: ignore[arg-type]
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def test_every_connection_busy_is_backend_busy_and_the_probe_still_answers() -> None:
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        if request.method == "GET" and request.path == "/slow":
            await release.wait()
        return web.Response(text="ok")

    async def scenario() -> tuple[BaseException | None, int, int]:
        async with stub_backend(handler) as port:
            settings = stub_settings(port)
            policy = replace(BackendPolicy.origin(settings), connections=1, wait_seconds=0.5)
            async with started(settings, policy) as backend:
                holder = asyncio.create_task(
                    send_signed(backend, "GET", f"{backend.signer.endpoint}/slow")
                )
                await asyncio.sleep(0.2)  # the only pooled connection is taken
                busy: BaseException | None = None
                try:
                    await send_signed(backend, "GET", f"{backend.signer.endpoint}/other")
                except BackendBusy as exc:
                    busy = exc
                # The health probe has its own connection: it does not queue behind.
                probed = await backend.probe("GET", f"{backend.signer.endpoint}/")
                release.set()
                async with await holder as first:
                    return busy, probed, first.status

    busy, probed, first = asyncio.run(scenario())
    assert isinstance(busy, BackendBusy)
    assert isinstance(busy.__cause__, aiohttp.ConnectionTimeoutError)
    assert probed == 200
    assert first == 200


@pytest.mark.parametrize("role", [BackendPolicy.proxy, BackendPolicy.origin])
def test_nothing_listening_is_backend_unreachable(
    role: Callable[[Settings], BackendPolicy],
) -> None:
    settings = stub_settings(free_port())

    async def scenario() -> None:
        async with started(settings, role(settings)) as backend:
            with pytest.raises(BackendUnreachable) as caught:
                await send_signed(backend, "GET", backend.signer.url("media", "a"))
            assert isinstance(caught.value.__cause__, aiohttp.ClientConnectorError)
            # The probe raises aiohttp's own error: /healthz prints its text.
            with pytest.raises(aiohttp.ClientConnectorError):
                await backend.probe("GET", f"{backend.signer.endpoint}/")

    asyncio.run(scenario())


def test_a_connection_closed_without_an_answer_is_backend_failed() -> None:
    async def scenario() -> BaseException | None:
        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")  # the request head, then no answer
            writer.close()

        server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        settings = stub_settings(port)
        try:
            async with started(settings, BackendPolicy.proxy(settings)) as backend:
                try:
                    await send_signed(backend, "GET", backend.signer.url("media", "a"))
                except BackendFailed as exc:
                    return exc
                return None
        finally:
            server.close()
            await server.wait_closed()

    failed = asyncio.run(scenario())
    assert isinstance(failed, BackendFailed)
    assert isinstance(failed.__cause__, aiohttp.ServerDisconnectedError)


def test_a_backend_silent_past_sock_read_is_backend_failed() -> None:
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="late")

    async def scenario() -> BaseException | None:
        async with stub_backend(handler) as port:
            settings = stub_settings(port)
            policy = replace(BackendPolicy.origin(settings), sock_read_seconds=0.3)
            async with started(settings, policy) as backend:
                try:
                    await send_signed(backend, "GET", backend.signer.url("media", "a"))
                except BackendFailed as exc:
                    return exc
                finally:
                    release.set()
                return None

    failed = asyncio.run(scenario())
    assert isinstance(failed, BackendFailed)
    assert isinstance(failed.__cause__, TimeoutError)


def test_the_policies_name_each_roles_choices() -> None:
    settings = load_settings(
        {}, backend_connections=77, origin_backend_connections=33, backend_wait_seconds=2.5
    )
    proxy, origin = BackendPolicy.proxy(settings), BackendPolicy.origin(settings)
    assert (proxy.connections, origin.connections) == (77, 33)
    assert proxy.wait_seconds == origin.wait_seconds == 2.5
    assert (proxy.sock_read_seconds, origin.sock_read_seconds) == (900.0, 30.0)
    assert (proxy.read_bufsize, origin.read_bufsize) == (1 << 20, 1 << 16)
    assert "User-Agent" in proxy.skip_auto_headers and origin.skip_auto_headers == ()


def test_send_before_start_is_a_programming_error() -> None:
    backend = Backend(stub_settings(free_port()), BackendPolicy.origin(stub_settings(1)))

    async def scenario() -> None:
        with pytest.raises(AssertionError, match="start"):
            await backend.send("GET", "http://127.0.0.1:1/", {})

    asyncio.run(scenario())
