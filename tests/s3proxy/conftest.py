"""A real s3proxy (``nebula s3proxy`` subprocess) in front of the session's SeaweedFS."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from catalog import Catalog
from catalog.keys import KeyPair, SecretBox, create_key
from nebula.storage import free_internal_port
from nebulacore.config import Settings, load_settings
from nebulacore.s3 import backend_client, ensure_buckets
from tests.services import Seaweed, environ_without

S3_DOMAIN = "s3.nebula.test"


@dataclass
class ProxyUnderTest:
    endpoint: str
    settings: Settings
    env: dict[str, str]
    catalog: Catalog
    admin: KeyPair
    process: subprocess.Popen[bytes]
    log_path: Path

    def make_key(self, scopes: dict[str, str], name: str = "test") -> KeyPair:
        with self.catalog.session() as session:
            return create_key(session, SecretBox.from_settings(self.settings), name, scopes)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.catalog.dispose()


def start_proxy(
    root: Path,
    seaweed: Seaweed,
    extra_env: dict[str, str] | None = None,
    create_buckets: bool = True,
    cwd: Path | None = None,
) -> ProxyUnderTest:
    """A proxy subprocess; ``create_buckets=False`` when its backend is meant to be down.
    With ``cwd`` it runs there and gets its data dir as ``--data-dir``, not from the
    environment."""
    port = free_internal_port()
    data_dir = str(root / "data")
    env = environ_without()
    env.update(seaweed.env)
    env.update(
        {
            "NEBULA_S3PROXY_PORT": str(port),
            "NEBULA_RECONCILE_SECONDS": "3600",
            # Virtual-hosted-style requests for bucket.s3.nebula.test (path style still works).
            "NEBULA_S3_DOMAIN": S3_DOMAIN,
        }
    )
    argv = [sys.executable, "-m", "nebula", "s3proxy"]
    if cwd is None:
        env["NEBULA_DATA_DIR"] = data_dir
    else:
        argv += ["--data-dir", data_dir]
    env.update(extra_env or {})
    settings = load_settings(env) if cwd is None else load_settings(env, data_dir=data_dir)
    catalog = Catalog.from_settings(settings)
    catalog.upgrade()
    with catalog.session() as session:
        admin = create_key(
            session, SecretBox.from_settings(settings), "admin", {"*": "admin"}, True
        )
    if create_buckets:
        ensure_buckets(backend_client(settings), [*settings.ingest_buckets, settings.hls_bucket])
    log_path = root / "s3proxy.log"
    process = subprocess.Popen(
        argv,
        env=env,
        cwd=cwd,
        stdout=open(log_path, "ab"),  # noqa: SIM115 - lives as long as the process
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint + "/healthz", timeout=2).close()
            break
        except urllib.error.HTTPError:
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"s3proxy did not start:\n{log_path.read_text()}") from None
            time.sleep(0.2)
    return ProxyUnderTest(endpoint, settings, env, catalog, admin, process, log_path)


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
    root: Path, seaweed: Seaweed, answer: bytes
) -> Iterator[tuple[ProxyUnderTest, list[bytes]]]:
    """A proxy whose backend is a :func:`scripted_backend`; yields it and the heads."""
    with scripted_backend(answer) as (port, heads):
        server = start_proxy(
            root, seaweed, {"NEBULA_BACKEND_URL": f"http://127.0.0.1:{port}"}, create_buckets=False
        )
        try:
            yield server, heads
        finally:
            server.stop()
