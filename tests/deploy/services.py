"""Start the real ``nebula s3proxy`` / ``nebula origin`` as subprocesses, as Compose does."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from catalog import Catalog
from nebula.storage import free_internal_port
from tests.services import Seaweed, environ_without

PORT_VARIABLE = {"s3proxy": "NEBULA_S3PROXY_PORT", "origin": "NEBULA_ORIGIN_PORT"}


@dataclass
class Service:
    name: str
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def service_env(root: Path, seaweed: Seaweed, extra: dict[str, str]) -> dict[str, str]:
    """The environment a Compose service gets: external backend, its own catalog and queue."""
    env = environ_without()
    catalog_url = f"sqlite:///{root / 'catalog.db'}"
    Catalog(catalog_url).upgrade()
    env.update(seaweed.env)
    env.update(
        {
            "NEBULA_DATA_DIR": str(root / "data"),
            "NEBULA_DATABASE_URL": catalog_url,
            "NEBULA_LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def start_service(
    name: str, root: Path, seaweed: Seaweed, host: str = "127.0.0.1", **extra: str
) -> Service:
    port = free_internal_port(host)
    env = service_env(root, seaweed, {"NEBULA_BIND": host, PORT_VARIABLE[name]: str(port), **extra})
    log_path = root / f"{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "nebula", name], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    service = Service(name, host, port, process, log_path)
    deadline = time.monotonic() + 60
    while not _accepts(host, port):
        if process.poll() is not None or time.monotonic() > deadline:
            service.stop()
            raise AssertionError(f"nebula {name} did not start:\n{service.log()}")
        time.sleep(0.2)
    return service


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False
