"""The machine's services for the tests (PostgreSQL, Redis) and helpers to inspect processes
and files; the Nebula parts themselves start in :mod:`tests.stacks`."""

from __future__ import annotations

import os
import secrets
import stat
import time
import urllib.request
from pathlib import Path

import psycopg2
import redis

PG_ADMIN_DSN = os.environ.get(
    "NEBULA_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)
REDIS_HOST = os.environ.get("NEBULA_TEST_REDIS_HOST", "127.0.0.1")


def environ_without(*prefixes: str) -> dict[str, str]:
    """This process's environment minus variables with these prefixes (default NEBULA_),
    so a child process sees only the configuration a test gives it."""
    drop = prefixes or ("NEBULA_",)
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


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
        # SET NX makes the claim atomic: two test runs started together never share a DB.
        if client.dbsize() == 0 and client.set("nebula-test-claim", "1", nx=True):
            return f"redis://{REDIS_HOST}:6379/{db}"
    client = redis.Redis(host=REDIS_HOST, db=15)
    client.flushdb()
    return f"redis://{REDIS_HOST}:6379/15"


def parent_pid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


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


def still_alive(pids: set[int], guard: float = 60) -> set[int]:
    """The pids still alive once they are all gone or ``guard`` seconds passed: the guard
    only ends a wait for processes that would never exit, it measures nothing."""
    deadline = time.monotonic() + guard
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return {p for p in pids if alive(p)}


def command_line(pid: int) -> str:
    """What ``pid`` runs, as ps shows it ("" once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def metric_sample(base_url: str, name: str, **labels: str) -> float:
    """One sample of a service's /metrics, asked over a new connection (so, with several
    workers, from whichever one the kernel picks); 0 when the sample is absent."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def counters_by_worker(directory: Path) -> dict[str, dict[tuple[str, ...], float]]:
    """Each worker's own counters file in a service's runtime directory."""
    from nebulacore.counters import SUFFIX, read_file

    return {path.name: read_file(path) for path in sorted(directory.glob(f"*{SUFFIX}"))}
