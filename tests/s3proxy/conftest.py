"""A real s3proxy (``nebula s3proxy`` subprocess, :func:`tests.stacks.start_proxy`) in front of
the session's SeaweedFS, and a scripted socket standing in for a misbehaving backend."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.stacks import ProxyUnderTest, Seaweed, start_proxy


@pytest.fixture(scope="session")
def proxy(tmp_path_factory: pytest.TempPathFactory, seaweed: Seaweed) -> Iterator[ProxyUnderTest]:
    server = start_proxy(tmp_path_factory.mktemp("proxy"), seaweed)
    yield server
    server.stop()


@contextmanager
def scripted_backend(answer: bytes) -> Iterator[tuple[int, list[bytes]]]:
    """A socket standing in for the backend: it records each request's head and sends
    ``answer`` to every request, then closes. Yields its port and the recorded heads."""
    listener = socket.create_server(("127.0.0.1", 0))
    heads: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    piece = conn.recv(65536)
                    if not piece:
                        break
                    data += piece
                heads.append(data.split(b"\r\n\r\n", 1)[0])
                conn.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1], heads
    finally:
        listener.close()


@contextmanager
def proxy_to_scripted_backend(
    root: Path, seaweed: Seaweed, answer: bytes, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[ProxyUnderTest, list[bytes]]]:
    """A proxy whose backend is a :func:`scripted_backend`; yields it and the heads."""
    with scripted_backend(answer) as (port, heads):
        env = {"NEBULA_BACKEND_URL": f"http://127.0.0.1:{port}", **(extra_env or {})}
        server = start_proxy(root, seaweed, env, create_buckets=False)
        try:
            yield server, heads
        finally:
            server.stop()


def access_line(server: ProxyUnderTest, request_id: str) -> dict[str, Any]:
    """The access log's line for ``request_id`` (written once the answer is done)."""
    deadline = time.monotonic() + 10
    while True:
        for line in server.log().splitlines():
            if request_id in line and line.startswith("{"):
                entry = json.loads(line)
                if entry.get("request_id") == request_id and "status" in entry:
                    return entry
        assert time.monotonic() < deadline, f"no access line for {request_id}"
        time.sleep(0.2)
