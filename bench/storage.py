"""Benchmark the embedded storage's large GETs against the same SeaweedFS started plainly.

Starts the embedded storage as ``nebula up`` does (``tests.stacks.start_seaweed``: its
``security.toml``, flags and environment) and the same ``weed`` binary as plain
``weed mini`` (no ``security.toml``: its own temporary directory as working directory
and HOME, loopback, free ports, the same S3 identities file so both check SigV4).
Optionally more: ``--with-tls-volume``, the embedded storage as it was before issue 26
(HTTPS and client certificates on the volume server's data port), and
``--memory-limit-mb N``, the embedded storage with another memory bound (GOMEMLIMIT).

A 512 MiB object (a generated stream, never a file) is put into each, then in
alternating rounds each is read as one stream and as 8 parallel ranged GETs. For each
it prints MiB/s, the ratio to plain, ``weed``'s CPU seconds per GiB read (utime + stime
of the process and its waited-for children, from /proc/PID/stat) and the client's
(this process's own CPU; a raw ``http.client`` reading into one buffer per
connection, SigV4 from ``bench.lean_s3``), so a reader sees whether the client bounds it.

    python3 -m bench.storage                      # 3 rounds
    python3 -m bench.storage --rounds 5 --with-tls-volume --memory-limit-mb 1536
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast
from urllib.parse import urlsplit

from bench.lean_s3 import LeanSigner
from bench.storage_memory import GeneratedStream, retry_until_ready
from nebula import storage
from nebula.storage_security import SECURITY_FILE
from nebulacore.config import Settings, load_settings
from nebulacore.s3 import (
    BackendCredentials,
    backend_client,
    backend_credentials,
    ensure_buckets,
    ensure_embedded_credentials,
)
from tests.harness import spawn, stop, wait_listening
from tests.stacks import start_seaweed

MIB = 1024 * 1024
GIB = 1024 * MIB
BUCKET = "bench"
KEY = "large.bin"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
READ_BUFFER = MIB
TARGET_RATIO = 0.9
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ----- the storages ------------------------------------------------------------------


@dataclass
class Storage:
    """One running ``weed``: its process id, and client settings for its S3 port."""

    name: str
    pid: int
    settings: Settings  # NEBULA_BACKEND_* pointing at it, with the embedded key pair

    @property
    def endpoint(self) -> str:
        return self.settings.backend_endpoint


def client_settings(endpoint: str, creds: BackendCredentials, root: Path) -> Settings:
    environ = {
        "NEBULA_BACKEND_URL": endpoint,
        "NEBULA_BACKEND_ACCESS_KEY": creds.access_key,
        "NEBULA_BACKEND_SECRET_KEY": creds.secret_key,
    }
    return load_settings(environ, data_dir=str(root))


@contextlib.contextmanager
def embedded(root: Path) -> Iterator[tuple[Storage, Settings]]:
    """The embedded storage as ``nebula up`` starts it; also its own settings."""
    seaweed = start_seaweed(root)
    try:
        creds = ensure_embedded_credentials(seaweed.settings)
        client = client_settings(seaweed.endpoint, creds, root)
        yield Storage("embedded", seaweed.process.pid, client), seaweed.settings
    finally:
        seaweed.stop()


# What security.toml said for the volume data port before issue 26.
TLS_VOLUME = """
[https.volume]
cert = {cert}
key = {key}
ca = {ca}
[https.client]
enabled = true
cert = {cert}
key = {key}
ca = {ca}
"""


@contextlib.contextmanager
def embedded_variant(
    root: Path, name: str, environ: dict[str, str], tls_volume: bool
) -> Iterator[Storage]:
    """The embedded storage with other NEBULA_* settings, or with HTTPS and client
    certificates on the volume data port as before issue 26."""
    port = storage.free_internal_port()
    settings = load_settings(environ, data_dir=str(root), storage_port=port)
    launch = storage.prepare(settings)
    if tls_volume:
        tls = launch.layout.root / "tls"
        paths = {key: json.dumps(str(tls / file)) for key, file in TLS_FILES.items()}
        with open(launch.layout.root / SECURITY_FILE, "a") as toml:
            toml.write(TLS_VOLUME.format(**paths))
    process = storage.spawn(launch)
    try:
        storage.wait_ready(launch.layout.endpoint, alive=lambda: process.poll() is None)
        creds = ensure_embedded_credentials(settings)
        client = client_settings(launch.layout.endpoint, creds, root)
        yield Storage(name, process.pid, client)
    finally:
        process.terminate()
        process.wait(timeout=30)


TLS_FILES = {"cert": "storage.crt", "key": "storage.key", "ca": "ca.crt"}


def plain_argv(root: Path, s3_port: int, identities: Path) -> list[str]:
    """``weed mini`` with nothing but what a shared machine needs: loopback, free ports
    (its defaults would collide with other users'), no extras that take more ports,
    no telemetry; the embedded storage's identities, so both check the same SigV4."""
    argv = [
        storage.weed_binary(),
        "mini",
        f"-dir={root / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.port={s3_port}",
        f"-s3.config={identities}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
    ]
    return argv + [f"-{name}={storage.free_internal_port()}" for name in storage.INTERNAL_PORTS]


@contextlib.contextmanager
def plain(root: Path, embedded_settings: Settings) -> Iterator[Storage]:
    """The same ``weed`` binary started plainly, in a directory without security.toml."""
    root.mkdir(parents=True, exist_ok=True)
    s3_port = storage.free_internal_port()
    identities = storage.layout_for(embedded_settings).identities_file
    argv = plain_argv(root, s3_port, identities)
    env = {**os.environ, "HOME": str(root)}  # no ~/.seaweedfs/security.toml either
    spawned = spawn("weed-plain", argv, env, root / "weed.log", cwd=root, port=s3_port)
    try:
        wait_listening(spawned, probe="http", path="/")
        creds = ensure_embedded_credentials(embedded_settings)
        yield Storage("plain", spawned.process.pid, client_settings(spawned.url, creds, root))
    finally:
        stop(spawned)


def put_large(target: Storage, size: int) -> None:
    client = backend_client(target.settings)
    retry_until_ready(lambda: ensure_buckets(client, [BUCKET]))
    # A file-like object made as it is read: boto3 only calls read().
    client.upload_fileobj(cast(IO[bytes], GeneratedStream(size)), BUCKET, KEY)


# ----- reading -----------------------------------------------------------------------


def process_cpu(pid: int) -> float:
    """utime + stime + cutime + cstime of ``pid`` in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class RangedReader:
    """GETs of one object, whole or a byte range, each body read into one reused buffer."""

    def __init__(self, target: Storage) -> None:
        parts = urlsplit(target.endpoint)
        self.host = parts.netloc
        creds = backend_credentials(target.settings)
        self.signer = LeanSigner(creds.access_key, creds.secret_key)
        self.path = f"/{BUCKET}/{KEY}"

    def get(self, byte_range: tuple[int, int] | None) -> int:
        """Bytes read; ``byte_range`` is (first, last) inclusive."""
        headers = self.signer.headers("GET", self.host, self.path, EMPTY_SHA256)
        if byte_range is not None:
            headers["Range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
        conn = http.client.HTTPConnection(self.host, timeout=120)
        try:
            conn.request("GET", self.path, headers=headers)
            response = conn.getresponse()
            if response.status not in (200, 206):
                raise RuntimeError(f"GET {self.path}: {response.status} {response.read(300)!r}")
            buffer = memoryview(bytearray(READ_BUFFER))
            total = 0
            while count := response.readinto(buffer):
                total += count
            return total
        finally:
            conn.close()


def ranges(size: int, parts: int) -> list[tuple[int, int]]:
    step = -(-size // parts)
    return [(first, min(first + step, size) - 1) for first in range(0, size, step)]


@dataclass
class Reading:
    """One timed read of the whole object: wall time and CPU of weed and of this client."""

    size: int
    seconds: float
    weed_cpu: float
    client_cpu: float

    @property
    def mib_s(self) -> float:
        return self.size / MIB / self.seconds

    @property
    def weed_per_gib(self) -> float:
        return self.weed_cpu / (self.size / GIB)

    @property
    def client_per_gib(self) -> float:
        return self.client_cpu / (self.size / GIB)


def timed_read(target: Storage, size: int, parallel: int) -> Reading:
    """The whole object: one GET when ``parallel`` is 1, else that many ranged GETs."""
    reader = RangedReader(target)
    pieces: list[tuple[int, int] | None] = [None] if parallel == 1 else list(ranges(size, parallel))
    with ThreadPoolExecutor(len(pieces)) as pool:
        weed_before, client_before = process_cpu(target.pid), own_cpu()
        started = time.perf_counter()
        read = sum(pool.map(reader.get, pieces))
        seconds = time.perf_counter() - started
        weed_cpu, client_cpu = process_cpu(target.pid) - weed_before, own_cpu() - client_before
    if read != size:
        raise RuntimeError(f"{target.name}: read {read} bytes of {size}")
    return Reading(size, seconds, weed_cpu, client_cpu)


# ----- rounds and report -------------------------------------------------------------

MEASURES = {"1 stream": 1, "8 ranged": 8}


@dataclass
class Results:
    readings: dict[tuple[str, str], list[Reading]] = field(default_factory=dict)

    def add(self, measure: str, target: str, reading: Reading) -> None:
        self.readings.setdefault((measure, target), []).append(reading)

    def median(self, measure: str, target: str, value: Callable[[Reading], float]) -> float:
        return statistics.median(value(r) for r in self.readings[(measure, target)])


def run_rounds(targets: list[Storage], size: int, rounds: int) -> Results:
    results = Results()
    for round_number in range(rounds):
        # Alternate who goes first, so neither always reads after the other warmed a cache.
        order = targets if round_number % 2 == 0 else targets[::-1]
        for measure, parallel in MEASURES.items():
            for target in order:
                reading = timed_read(target, size, parallel)
                results.add(measure, target.name, reading)
                print(
                    f"round {round_number + 1} {measure:9s} {target.name:10s} "
                    f"{reading.mib_s:7.0f} MiB/s  weed {reading.weed_per_gib:5.2f} CPU-s/GiB  "
                    f"client {reading.client_per_gib:5.2f} CPU-s/GiB",
                    flush=True,
                )
    return results


def print_table(results: Results, names: list[str]) -> None:
    """Medians over the rounds. Under load the MiB/s ratio is partly the scheduler's;
    the CPU per GiB ratio moves much less and is the one to compare."""
    print(
        "\n| measure | storage | MiB/s | ratio to plain | weed CPU-s/GiB | CPU ratio to plain "
        "| client CPU-s/GiB |"
    )
    print("|---|---|---|---|---|---|---|")
    for measure in MEASURES:
        plain_rate = results.median(measure, "plain", lambda r: r.mib_s)
        plain_cpu = results.median(measure, "plain", lambda r: r.weed_per_gib)
        for name in names:
            rate = results.median(measure, name, lambda r: r.mib_s)
            weed = results.median(measure, name, lambda r: r.weed_per_gib)
            client = results.median(measure, name, lambda r: r.client_per_gib)
            ratio = rate / plain_rate
            verdict = "" if name == "plain" else (" ok" if ratio >= TARGET_RATIO else " MISS")
            print(
                f"| {measure} | {name} | {rate:.0f} | {ratio:.2f}x{verdict} | {weed:.2f} | "
                f"{weed / plain_cpu:.2f}x | {client:.2f} |"
            )


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument(
        "--with-tls-volume",
        action="store_true",
        help="also the embedded storage with HTTPS on its volume data port (before issue 26)",
    )
    parser.add_argument(
        "--memory-limit-mb",
        type=int,
        action="append",
        default=[],
        help="also the embedded storage with this NEBULA_STORAGE_MEMORY_LIMIT_MB (repeatable)",
    )
    return parser.parse_args(argv)


def bench(args: argparse.Namespace, work: Path) -> None:
    size = args.size_mib * MIB
    with contextlib.ExitStack() as stack:
        mine, mine_settings = stack.enter_context(embedded(work / "embedded"))
        targets = [stack.enter_context(plain(work / "plain", mine_settings)), mine]
        if args.with_tls_volume:
            variant = embedded_variant(work / "tls-volume", "tls-volume", {}, tls_volume=True)
            targets.append(stack.enter_context(variant))
        for limit in args.memory_limit_mb:
            environ = {"NEBULA_STORAGE_MEMORY_LIMIT_MB": str(limit)}
            name = f"memory-{limit}"
            variant = embedded_variant(work / name, name, environ, tls_volume=False)
            targets.append(stack.enter_context(variant))
        for target in targets:
            put_large(target, size)
        for target in targets:  # once untimed each: the object in the page cache
            timed_read(target, size, 1)
        print(f"load average before: {load_average()}  ({os.cpu_count()} cores)", flush=True)
        results = run_rounds(targets, size, args.rounds)
        print(f"load average after: {load_average()}")
        print_table(results, [t.name for t in targets])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as work:
        bench(args, Path(work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
