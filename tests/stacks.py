"""The Nebula parts tests and benches start, each as a real process on a free port.

``start_seaweed`` (SeaweedFS from the wheel, hardened as ``nebula up`` runs it),
``start_proxy`` (``nebula s3proxy`` with an admin key), ``start_origin``, ``start_service``
(s3proxy or origin configured as Compose does) and ``start_nebula_up``. All are built on
:mod:`tests.harness`: they raise with the child's log when it does not come up, and
``stop()`` stops the child's whole process group.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import boto3

from catalog import Catalog
from catalog.keys import KeyPair, SecretBox, create_key
from nebula import storage
from nebula.storage import free_internal_port
from nebulacore.config import Settings, load_settings
from nebulacore.s3 import S3Client, backend_client, ensure_buckets
from tests.harness import Spawned, nebula_argv, spawn, stop, wait_listening
from tests.services import environ_without

S3_DOMAIN = "s3.nebula.test"
PORT_VARIABLE = {"s3proxy": "NEBULA_S3PROXY_PORT", "origin": "NEBULA_ORIGIN_PORT"}


@dataclass
class Running:
    """What every started part offers: its process, its log, a way to stop it."""

    spawned: Spawned

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.spawned.process

    @property
    def log_path(self) -> Path:
        return self.spawned.log_path

    @property
    def host(self) -> str:
        return self.spawned.host

    @property
    def port(self) -> int:
        return self.spawned.port

    @property
    def url(self) -> str:
        return self.spawned.url

    def log(self) -> str:
        return self.spawned.log()

    def stop(self) -> None:
        stop(self.spawned)


# ----- SeaweedFS -------------------------------------------------------------------


@dataclass
class Seaweed(Running):
    """A running SeaweedFS (weed mini) with its own data dir and key pair."""

    root: Path
    settings: Settings

    @property
    def endpoint(self) -> str:
        return self.settings.backend_endpoint

    @property
    def env(self) -> dict[str, str]:
        """NEBULA_* variables that point a service at this storage as an external backend."""
        creds = storage.ensure_embedded_credentials(self.settings)
        return {
            "NEBULA_BACKEND_URL": self.endpoint,
            "NEBULA_BACKEND_ACCESS_KEY": creds.access_key,
            "NEBULA_BACKEND_SECRET_KEY": creds.secret_key,
        }


def start_seaweed(root: Path, port: int | None = None) -> Seaweed:
    settings = load_settings(
        {}, data_dir=str(root), storage_port=port or storage.free_internal_port()
    )
    launch = storage.prepare(settings)
    layout = launch.layout
    # Spawned by the product's own code, hardened exactly as `nebula up` runs it, so the
    # tests cover the real configuration (its own session, its log beside its data).
    spawned = Spawned(
        "seaweed",
        storage.spawn(launch),
        layout.root / "weed.log",
        layout.host,
        layout.s3_port,
    )
    seaweed = Seaweed(spawned, root, settings)
    wait_listening(spawned, probe="http", path="/")
    _wait_answers_s3(seaweed)
    return seaweed


def _wait_answers_s3(seaweed: Seaweed, timeout: float = 60) -> None:
    """The S3 port may answer before the filer behind it does: wait for a real listing."""
    client = backend_client(seaweed.settings)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.list_buckets()
            return
        except Exception:
            if time.monotonic() > deadline or not seaweed.spawned.alive():
                seaweed.stop()
                raise
            time.sleep(0.3)


# ----- s3proxy ---------------------------------------------------------------------


@dataclass
class ProxyUnderTest(Running):
    settings: Settings
    env: dict[str, str]
    catalog: Catalog
    admin: KeyPair

    @property
    def endpoint(self) -> str:
        return self.url

    def make_key(self, scopes: dict[str, str], name: str = "test") -> KeyPair:
        with self.catalog.session() as session:
            return create_key(session, SecretBox.from_settings(self.settings), name, scopes)

    def stop(self) -> None:
        super().stop()
        self.catalog.dispose()


def start_proxy(
    root: Path,
    seaweed: Seaweed,
    extra_env: dict[str, str] | None = None,
    create_buckets: bool = True,
    cwd: Path | None = None,
) -> ProxyUnderTest:
    """``nebula s3proxy`` over ``seaweed`` with an admin key; ``create_buckets=False`` when
    its backend is meant to be down. With ``cwd`` it runs there and gets its data dir as
    ``--data-dir``, not from the environment."""
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
            # One process unless a test asks for workers: tests read one process's state.
            "NEBULA_S3PROXY_WORKERS": "1",
        }
    )
    argv = nebula_argv("s3proxy")
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
    spawned = spawn("s3proxy", argv, env, root / "s3proxy.log", cwd=cwd, port=port)
    try:
        wait_listening(spawned, probe="http", timeout=30)
    except AssertionError:
        catalog.dispose()
        raise
    return ProxyUnderTest(spawned, settings, env, catalog, admin)


# ----- origin ----------------------------------------------------------------------


@dataclass
class OriginUnderTest(Running):
    cache_dir: Path


def start_origin(root: Path, env: dict[str, str], **extra: str) -> OriginUnderTest:
    """``nebula origin`` with ``env`` (backend, catalog) plus ``extra`` NEBULA_* settings;
    its disk cache under ``root``."""
    port = free_internal_port()
    full = environ_without()
    full.update(env)
    full.update({"NEBULA_ORIGIN_PORT": str(port), "NEBULA_ORIGIN_CACHE_DIR": str(root / "cache")})
    full["NEBULA_ORIGIN_WORKERS"] = "1"  # one process unless a test asks for workers
    full.update(extra)
    spawned = spawn("origin", nebula_argv("origin"), full, root / "origin.log", port=port)
    return OriginUnderTest(wait_listening(spawned, timeout=30), root / "cache")


# ----- a service as Compose runs it -----------------------------------------------


@dataclass
class Service(Running):
    name: str


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
    """``nebula s3proxy`` or ``nebula origin`` bound to ``host``, configured as Compose does."""
    port = free_internal_port(host)
    workers = {"NEBULA_S3PROXY_WORKERS": "1", "NEBULA_ORIGIN_WORKERS": "1"}
    env = service_env(
        root, seaweed, {**workers, "NEBULA_BIND": host, PORT_VARIABLE[name]: str(port), **extra}
    )
    spawned = spawn(name, nebula_argv(name), env, root / f"{name}.log", host=host, port=port)
    return Service(wait_listening(spawned), name)


# ----- nebula up -------------------------------------------------------------------


@dataclass
class NebulaUp(Running):
    """``nebula up`` in a work dir, as a user runs it; what it prints is in its log."""

    workdir: Path
    env: dict[str, str]

    @property
    def text(self) -> str:
        return self.log()

    def value(self, label: str) -> str:
        match = re.search(rf"^\s*{label}:\s+(\S+)", self.text, re.M)
        assert match, f"{label!r} not printed by nebula up:\n{self.text}"
        return match.group(1)

    def wait_for(self, needle: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text:
            if self.process.poll() is not None:
                raise AssertionError(f"nebula up exited {self.process.returncode}:\n{self.text}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not seen in {timeout}s:\n{self.text}")
            time.sleep(0.2)

    def s3(self) -> S3Client:
        """An S3 client on the printed endpoint with the printed admin key."""
        client: S3Client = boto3.client(
            "s3",
            endpoint_url=self.value("S3 endpoint"),
            aws_access_key_id=self.value("access key"),
            aws_secret_access_key=self.value("secret key"),
            region_name="us-east-1",
        )
        return client

    def interrupt(self, timeout: float = 15) -> int:
        """Ctrl-C: SIGINT to ``nebula up`` alone, which must stop its children itself."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=timeout)


def nebula_up_env(extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment ``nebula up`` runs with: no NEBULA_* of the caller's, a free port for
    each of its servers, then ``extra_env``."""
    env = environ_without()
    env.update(
        {
            "NEBULA_STORAGE_PORT": str(free_internal_port()),
            "NEBULA_S3PROXY_PORT": str(free_internal_port()),
            "NEBULA_ORIGIN_PORT": str(free_internal_port()),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra_env or {})
    return env


def start_nebula_up(
    workdir: Path, extra_env: dict[str, str] | None = None, *options: str
) -> NebulaUp:
    env = nebula_up_env(extra_env)
    argv = nebula_argv("up", "--data-dir", str(workdir / "data"), *options)
    # A new log per run: a second `nebula up` in the same dir must not see the first's output.
    runs = len(list(workdir.glob("nebula-up*.log")))
    log_path = workdir / f"nebula-up{runs or ''}.log"
    spawned = spawn("nebula up", argv, env, log_path, cwd=workdir)
    return NebulaUp(spawned, workdir, env)
