"""Real services for the tests: SeaweedFS from the wheel, PostgreSQL and Redis of the machine."""

from __future__ import annotations

import os
import secrets
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import redis

from nebula import storage
from nebula.config import Settings, load_settings
from nebula.s3 import backend_client

PG_ADMIN_DSN = os.environ.get(
    "NEBULA_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)
REDIS_HOST = os.environ.get("NEBULA_TEST_REDIS_HOST", "127.0.0.1")


@dataclass
class Seaweed:
    """A running SeaweedFS (weed mini) with its own data dir and key pair."""

    root: Path
    settings: Settings
    process: subprocess.Popen[bytes]

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

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def environ_without(*prefixes: str) -> dict[str, str]:
    """This process's environment minus variables with these prefixes (default NEBULA_),
    so a child process sees only the configuration a test gives it."""
    drop = prefixes or ("NEBULA_",)
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def start_seaweed(root: Path, port: int | None = None) -> Seaweed:
    settings = load_settings(
        {}, data_dir=str(root), storage_port=port or storage.free_internal_port()
    )
    launch = storage.prepare(settings)
    # Hardened exactly as `nebula up` runs it, so the tests cover the real configuration.
    process = storage.spawn(launch)
    storage.wait_ready(launch.layout.endpoint, timeout=60, alive=lambda: process.poll() is None)
    client = backend_client(settings)
    deadline = time.monotonic() + 60
    while True:
        try:
            client.list_buckets()
            break
        except Exception:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise
            time.sleep(0.3)
    return Seaweed(root, settings, process)


def assert_nothing_for_others(root: Path) -> None:
    """Every directory under ``root`` is 0700 and no file has a group or other bit.

    The one exception is SeaweedFS's volume-info files (``.vif``: version and layout, no
    object data), which it writes 0644 itself; the 0700 directories keep them private.
    """
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_dir():
            assert mode == 0o700, f"{path} is {mode:o}"
        elif path.suffix != ".vif":
            assert mode & 0o077 == 0, f"{path} is {mode:o}"


def create_pg_database() -> str:
    name = f"nebula_test_{secrets.token_hex(4)}"
    conn = psycopg2.connect(PG_ADMIN_DSN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    params = dict(p.split("=", 1) for p in PG_ADMIN_DSN.split())
    return f"postgresql://{params.get('user', 'postgres')}@{params.get('host', '127.0.0.1')}:{params.get('port', '5432')}/{name}"


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    conn = psycopg2.connect(PG_ADMIN_DSN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def fresh_redis_url() -> str:
    """A Redis DB number no other key lives in (emptied first: it belongs to this run)."""
    for db in range(15, 0, -1):
        client = redis.Redis(host=REDIS_HOST, db=db)
        if client.dbsize() == 0:
            client.set("nebula-test-claim", "1")
            return f"redis://{REDIS_HOST}:6379/{db}"
    client = redis.Redis(host=REDIS_HOST, db=15)
    client.flushdb()
    return f"redis://{REDIS_HOST}:6379/15"


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (read from /proc, no extra dependency)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
