"""Benchmark the HLS origin against nginx serving the same files from disk, with ``wrk``.

Publishes a 150-segment media playlist and a 1.5 MB segment to the HLS bucket of its own
SeaweedFS, and the same files to a local folder. Then, with ``wrk -t2 -c64`` (default
settings otherwise), measures requests/s of the playlist, the segment and a 64 KiB range
of it from:

* **nginx**: Debian's ``/usr/sbin/nginx`` with Debian's default ``nginx.conf`` settings
  (``worker_processes auto``, ``sendfile``, ``tcp_nopush``, gzip for HTML), its root the
  local copy, access log off (the origin writes none either);
* **origin**: ``nebula origin`` with ``nebula up``'s defaults (workers: one per core, at
  most 4; memory and disk caches on), warm;
* **aiohttp**: a bare aiohttp answer of the playlist's size from memory, in as many
  processes (:mod:`bench.hello`): the floor any aiohttp application pays per request;
* **aio-low**: the same answer from the server's handler, without the application's
  router, middleware wrapping and signals (``bench.hello --low-level``): aiohttp at its
  leanest, what the origin's front (:mod:`origin.front`) is measured against.

Rounds alternate who goes first; it prints every run, then the medians, each one's ratio
to nginx and the CPU each side used per 1,000 requests (server processes, and wrk).

Targets: playlist and 64 KiB range >= 0.5x nginx, segment >= 1.0x.

    python3 -m bench.origin                       # apt-get install nginx wrk
    python3 -m bench.origin --seconds 10 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from catalog import Catalog
from nebula.storage import free_internal_port
from nebulacore.config import default_workers, load_settings
from nebulacore.s3 import backend_client, ensure_buckets
from tests.harness import spawn, stop, wait_listening
from tests.services import descendants, environ_without
from tests.stacks import start_origin, start_seaweed

NGINX = "/usr/sbin/nginx"
ASSET = "benchasset01"
SEGMENT_KEY = f"{ASSET}/v1/720p/seg_00001.m4s"
PLAYLIST_KEY = f"{ASSET}/v1/720p/index.m3u8"
SEGMENT_BYTES = 1_500_000
RANGE_BYTES = 64 * 1024
TARGETS = {"playlist": 0.5, "segment 1.5 MB": 1.0, "range 64 KiB": 0.5}
WARM_REQUESTS = 32
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Case:
    name: str
    key: str
    body_bytes: int
    range_header: str | None = None


@dataclass(frozen=True)
class Server:
    name: str
    url: str
    pid: int  # the process tree whose CPU is counted


@dataclass
class Run:
    rps: float
    server_cpu_ms_per_k: float
    wrk_cpu_ms_per_k: float


@dataclass
class Results:
    runs: dict[tuple[str, str], list[Run]] = field(default_factory=dict)

    def add(self, case: str, side: str, run: Run) -> None:
        self.runs.setdefault((case, side), []).append(run)

    def median(self, case: str, side: str) -> Run | None:
        runs = self.runs.get((case, side))
        if not runs:
            return None
        return Run(
            statistics.median(r.rps for r in runs),
            statistics.median(r.server_cpu_ms_per_k for r in runs),
            statistics.median(r.wrk_cpu_ms_per_k for r in runs),
        )


def media_playlist(segments: int = 150) -> bytes:
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:4", "#EXT-X-PLAYLIST-TYPE:VOD"]
    lines.append('#EXT-X-MAP:URI="init_1.mp4"')
    for index in range(segments):
        lines += ["#EXTINF:4.000000,", f"seg_{index:05d}.m4s"]
    return ("\n".join([*lines, "#EXT-X-ENDLIST"]) + "\n").encode()


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its live descendants."""
    total = 0
    for each in (pid, *descendants(pid)):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wrk(
    server: Server,
    path: str,
    seconds: int,
    connections: int,
    range_header: str | None,
    *,
    url: str | None = None,
    extra: Sequence[str] = (),
    threads: int = 2,
) -> Run:
    """One wrk run (of ``url``, else the server's ``path``); refuses a run with any
    non-2xx answer or socket error."""
    target = url or server.url + path
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", *extra, target]
    if range_header:
        argv += ["-H", f"Range: {range_header}"]
    server_before, wrk_before = tree_cpu_seconds(server.pid), children_cpu_seconds()
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    server_cpu = tree_cpu_seconds(server.pid) - server_before
    wrk_cpu = children_cpu_seconds() - wrk_before
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw errors against {server.name}:\n{out}")
    requests = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not (requests and rps):
        raise SystemExit(f"unexpected wrk output:\n{out}")
    thousands = max(1, int(requests.group(1))) / 1000
    return Run(float(rps.group(1)), server_cpu * 1000 / thousands, wrk_cpu * 1000 / thousands)


def publish(env: dict[str, str], ladder: Path) -> None:
    """The files in the HLS bucket, and the same under ``ladder/hls/`` for nginx."""
    files = {PLAYLIST_KEY: media_playlist(), SEGMENT_KEY: os.urandom(SEGMENT_BYTES)}
    settings = load_settings(env)
    client = backend_client(settings)
    ensure_buckets(client, [settings.hls_bucket])
    for key, body in files.items():
        client.put_object(Bucket=settings.hls_bucket, Key=key, Body=body)
        local = ladder / "hls" / key
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(body)


def nginx_conf(root: Path, ladder: Path, port: int) -> str:
    """Debian's default nginx.conf, less what needs its system folders, access log off."""
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read our 0700 folder
    temp = "\n".join(
        f"    {kind}_temp_path {root / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}worker_processes auto;
daemon off;
pid {root / "nginx.pid"};
error_log {root / "error.log"};
events {{
    worker_connections 768;
}}
http {{
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    gzip on;
{temp}
    server {{
        listen 127.0.0.1:{port};
        root {ladder};
    }}
}}
"""


@contextmanager
def nginx(root: Path, ladder: Path) -> Iterator[Server]:
    root.mkdir(parents=True)
    port = free_internal_port()
    conf = root / "nginx.conf"
    conf.write_text(nginx_conf(root, ladder, port))
    spawned = spawn("nginx", [NGINX, "-c", str(conf)], None, root / "nginx.log", port=port)
    wait_listening(spawned, timeout=15)
    try:
        yield Server("nginx", spawned.url, spawned.pid)
    finally:
        stop(spawned)


@contextmanager
def hello(root: Path, workers: int, size: int, low_level: bool = False) -> Iterator[Server]:
    port = free_internal_port()
    env = {**environ_without(), "NEBULA_DATA_DIR": str(root / "data")}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    argv = [sys.executable, "-m", "bench.hello", "--port", str(port)]
    argv += ["--workers", str(workers), "--bytes", str(size)]
    argv += ["--low-level"] if low_level else []
    spawned = spawn("hello", argv, env, root / "hello.log", port=port)
    wait_listening(spawned, timeout=15)
    try:
        yield Server("aio-low" if low_level else "aiohttp", spawned.url, spawned.pid)
    finally:
        stop(spawned)


def run(args: argparse.Namespace) -> int:
    for tool in ("wrk", NGINX):
        if shutil.which(tool) is None:
            print(f"bench.origin needs {tool}: apt-get install nginx wrk", file=sys.stderr)
            return 2
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nebula-bench-")))
        seaweed = start_seaweed(root / "seaweed")
        stack.callback(seaweed.stop)
        env = {**seaweed.env, "NEBULA_DATA_DIR": str(root / "data")}
        env["NEBULA_DATABASE_URL"] = f"sqlite:///{root / 'catalog.db'}"
        Catalog(env["NEBULA_DATABASE_URL"]).upgrade()
        publish(env, root / "ladder")
        workers = str(args.workers) if args.workers else "auto"
        origin = start_origin(root / "origin", env, NEBULA_ORIGIN_WORKERS=workers)
        stack.callback(origin.stop)
        servers = [
            stack.enter_context(nginx(root / "nginx", root / "ladder")),
            Server("origin", origin.url, origin.process.pid),
        ]
        references = [
            stack.enter_context(
                hello(
                    root / f"hello-{low_level}",
                    args.workers or default_workers(),
                    len(media_playlist()),
                    low_level,
                )
            )
            for low_level in (False, True)
        ]
        cases = [
            Case("playlist", PLAYLIST_KEY, len(media_playlist())),
            Case("segment 1.5 MB", SEGMENT_KEY, SEGMENT_BYTES),
            Case("range 64 KiB", SEGMENT_KEY, RANGE_BYTES, f"bytes=0-{RANGE_BYTES - 1}"),
        ]
        for case in cases:  # warm every worker's cache (new connections spread over them)
            for _ in range(WARM_REQUESTS):
                urllib.request.urlopen(f"{origin.url}/hls/{case.key}").read()
        print(f"origin workers: {workers}; wrk -t2 -c{args.connections}, {args.seconds} s a run")
        results = Results()
        for round_number in range(1, args.rounds + 1):
            for case in cases:
                sides = servers + (references if case.name == "playlist" else [])
                if round_number % 2 == 0:
                    sides.reverse()  # alternate who goes first
                for server in sides:
                    path = f"/hls/{case.key}"
                    result = wrk(server, path, args.seconds, args.connections, case.range_header)
                    results.add(case.name, server.name, result)
                    print(
                        f"round {round_number} {case.name:<15} {server.name:<7} "
                        f"{result.rps:9.0f} req/s  server {result.server_cpu_ms_per_k:6.0f} "
                        f"CPU-ms/1k req  wrk {result.wrk_cpu_ms_per_k:5.0f}",
                        flush=True,
                    )
                    time.sleep(0.5)
        return report(results, cases)


def report(results: Results, cases: list[Case]) -> int:
    print("\nmedians (CPU: milliseconds of CPU per 1,000 requests, server tree / wrk):")
    print(
        f"{'object':<15} {'side':<8} {'req/s':>9} {'MB/s':>8} {'CPU':>6} {'wrk':>5} {'/nginx':>7}"
    )
    missed = []
    for case in cases:
        nginx_run = results.median(case.name, "nginx")
        assert nginx_run is not None
        for side in ("nginx", "origin", "aiohttp", "aio-low"):
            got = results.median(case.name, side)
            if got is None:
                continue
            ratio = got.rps / nginx_run.rps
            print(
                f"{case.name:<15} {side:<8} {got.rps:9.0f} {got.rps * case.body_bytes / 1e6:8.1f} "
                f"{got.server_cpu_ms_per_k:6.0f} {got.wrk_cpu_ms_per_k:5.0f} {ratio:6.2f}x"
            )
            if side == "origin" and ratio < TARGETS[case.name]:
                missed.append(f"{case.name} {ratio:.2f}x < {TARGETS[case.name]}x")
    print("targets (origin / nginx): " + ", ".join(f"{k} >= {v}x" for k, v in TARGETS.items()))
    print("missed: " + "; ".join(missed) if missed else "all targets met")
    return 1 if missed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--workers", type=int, default=0, help="NEBULA_ORIGIN_WORKERS (default: nebula up's)"
    )
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
