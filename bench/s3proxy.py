"""Benchmark the s3proxy against its backend, nginx and a bare aiohttp pass-through.

Four endpoints in one run, rounds rotating their order: the backend (SeaweedFS)
directly, the s3proxy in front of it, Debian's nginx in front of it with zero logic
(:mod:`bench.nginx`, the reference for what any proxy in the path costs here), and a
bare aiohttp pass-through (:mod:`bench.passthrough`, the ``floor``: what any aiohttp
proxy on the s3proxy's loop costs; the proxy's CPU above it is Nebula's own code).

* Small objects: 4 KiB PUT then GET at concurrency 32, driven by the lean client of
  :mod:`bench.lean_s3` (aiohttp, SigV4 with a cached signing key); ops/s, p50/p99, and
  the CPU microseconds per request of the client (its own thread), of the proxy or nginx
  process, and of SeaweedFS, read from /proc before and after.
* Large objects: a 1 GiB multipart PUT and GET with boto3 (MB/s, CPU-s per GiB).
* The proxy's RSS while 8 x 1 GiB uploads go through it at once (VmRSS, VmHWM).

Targets: small ratios >= 0.70 and p99 <= 2 x direct, proxy CPU <= 150 us per small
request; large PUT >= 0.90 x direct, large GET >= nginx's ratio; RSS < 150 MB and flat.

    python3 -m bench.s3proxy                      # starts its own SeaweedFS + s3proxy + nginx
    python3 -m bench.s3proxy --proxy http://127.0.0.1:9000 --proxy-key NK... \\
        --proxy-secret ... --backend http://127.0.0.1:8333 --backend-key ... \\
        --backend-secret ...                       # e.g. a running `nebula up`

The proxy's pid is found from the process listening on the proxy's port (or
``--proxy-pid``), the backend's likewise; CPU and RSS figures need them on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig

from bench.lean_s3 import PhaseResult, put_then_get
from bench.nginx import pass_through
from bench.passthrough import floor
from nebulacore.s3 import delete_keys, ensure_buckets, list_keys
from tests.stacks import start_proxy, start_seaweed

try:  # the client's loop: uvloop when installed (a faster client), asyncio's otherwise
    import uvloop

    CLIENT_LOOP: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    CLIENT_LOOP_NAME = "uvloop"
except ImportError:  # pragma: no cover - depends on the machine
    CLIENT_LOOP = asyncio.new_event_loop
    CLIENT_LOOP_NAME = "asyncio"

MIB = 1024 * 1024
BUCKET = "bench"
SMALL_SIZE = 4096
TRANSFER = TransferConfig(
    multipart_threshold=16 * MIB, multipart_chunksize=16 * MIB, max_concurrency=8
)
# The RSS phase runs 8 uploads at once; 2 parts in flight each keeps 16 streams open.
RSS_TRANSFER = TransferConfig(
    multipart_threshold=16 * MIB, multipart_chunksize=16 * MIB, max_concurrency=2
)
SMALL_RATIO = 0.70
SMALL_P99_FACTOR = 2.0
SMALL_CPU_US = 150.0
LARGE_PUT_RATIO = 0.90
SMALL_DIRECT_GETS = 5000.0
RSS_LIMIT_MB = 150.0
DIRECT, PROXY, NGINX, FLOOR = "direct", "proxy", "nginx", "floor"


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: str
    key: str
    secret: str
    # The process serving this endpoint (proxy, nginx, floor), None for the backend itself.
    pid: int | None = None

    def client(self, pool: int = 32) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
            region_name="us-east-1",
            config=BotoConfig(
                s3={"addressing_style": "path"},
                signature_version="s3v4",
                max_pool_connections=pool,
                # A loaded 2-core machine can take a while over a 16 MiB part.
                read_timeout=300,
                retries={"max_attempts": 2, "mode": "standard"},
            ),
        )


@dataclass
class Small:
    """One small-object pass (PUT or GET) at one endpoint, with everyone's CPU."""

    phase: PhaseResult
    server_cpu: float  # CPU seconds of the proxy, nginx or the floor (0 direct)
    backend_cpu: float  # CPU seconds of SeaweedFS (0 when its pid is unknown)
    machine_cpu: float  # CPU seconds every process on the machine used meanwhile

    def server_us(self) -> float:
        return self.server_cpu / self.phase.count * 1e6

    def backend_us(self) -> float:
        return self.backend_cpu / self.phase.count * 1e6

    def busy(self) -> float:
        """Share of the machine's cores the client, server and backend kept busy."""
        used = self.phase.client_cpu + self.server_cpu + self.backend_cpu
        return used / (self.phase.seconds * (os.cpu_count() or 1))

    def others(self) -> float:
        """Share of the machine's cores that other processes (other work) took meanwhile."""
        used = self.phase.client_cpu + self.server_cpu + self.backend_cpu
        return max(0.0, self.machine_cpu - used) / (self.phase.seconds * (os.cpu_count() or 1))


@dataclass
class Results:
    """Per metric, per endpoint name: one figure per round."""

    large: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    # CPU seconds per GiB of the endpoint's own process, per large metric.
    large_cpu: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    small: dict[str, dict[str, list[Small]]] = field(default_factory=dict)

    def add_large(self, metric: str, endpoint: str, value: float, cpu: float | None) -> None:
        self.large.setdefault(metric, {}).setdefault(endpoint, []).append(value)
        if cpu is not None:
            self.large_cpu.setdefault(metric, {}).setdefault(endpoint, []).append(cpu)

    def add_small(self, method: str, endpoint: str, figures: Small) -> None:
        self.small.setdefault(method, {}).setdefault(endpoint, []).append(figures)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


# ----- measurements -----------------------------------------------------------------


class NullSink:
    """A seekable writable that drops bytes: GET throughput without disk writes."""

    def __init__(self) -> None:
        self.position = 0

    def write(self, data: bytes) -> int:
        self.position += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        self.position = offset
        return offset

    def tell(self) -> int:
        return self.position


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def large_put(endpoint: Endpoint, source: Path, key: str) -> float:
    client = endpoint.client()
    seconds = timed(lambda: client.upload_file(str(source), BUCKET, key, Config=TRANSFER))
    return source.stat().st_size / MIB / seconds


def large_get(endpoint: Endpoint, key: str, size: int) -> float:
    client = endpoint.client()
    seconds = timed(lambda: client.download_fileobj(BUCKET, key, NullSink(), Config=TRANSFER))
    return size / MIB / seconds


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of ``pid`` so far (0 when unknown)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """CPU seconds all cores spent busy so far (/proc/stat: all but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]  # user..steal, less idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def small_round(
    endpoint: Endpoint, args: argparse.Namespace, backend_pid: int | None, prefix: str
) -> tuple[Small, Small]:
    """``--small-count`` 4 KiB PUTs then GETs of the same keys, by the lean client."""
    body = os.urandom(SMALL_SIZE)
    keys = [f"{prefix}/{i:06d}" for i in range(args.small_count)]
    marks: list[tuple[float, float, float]] = []

    def mark() -> None:
        marks.append((cpu_seconds(endpoint.pid), cpu_seconds(backend_pid), machine_cpu_seconds()))

    async def drive() -> tuple[PhaseResult, PhaseResult]:
        mark()
        return await put_then_get(
            endpoint.url,
            endpoint.key,
            endpoint.secret,
            BUCKET,
            keys,
            body,
            args.concurrency,
            between=mark,
        )

    with asyncio.Runner(loop_factory=CLIENT_LOOP) as runner:
        puts, gets = runner.run(drive())
    mark()
    (s0, b0, m0), (s1, b1, m1), (s2, b2, m2) = marks
    return Small(puts, s1 - s0, b1 - b0, m1 - m0), Small(gets, s2 - s1, b2 - b1, m2 - m1)


def run_round(
    endpoint: Endpoint,
    args: argparse.Namespace,
    source: Path,
    results: Results,
    number: int,
    backend_pid: int | None,
) -> None:
    """One large PUT/GET and one small-object pass at ``endpoint``."""
    key = f"large/{endpoint.name}-{number}"
    size = source.stat().st_size
    gib = size / 1024 / MIB

    def record(metric: str, value: float, cpu_before: float) -> None:
        used = cpu_seconds(endpoint.pid) - cpu_before
        results.add_large(metric, endpoint.name, value, used / gib if endpoint.pid else None)

    if args.size_mib:
        cpu = cpu_seconds(endpoint.pid)
        record("1 GiB PUT MB/s", large_put(endpoint, source, key), cpu)
        cpu = cpu_seconds(endpoint.pid)
        record("1 GiB GET MB/s", large_get(endpoint, key, size), cpu)
        endpoint.client().delete_object(Bucket=BUCKET, Key=key)
    puts, gets = small_round(endpoint, args, backend_pid, f"small/{endpoint.name}-{number}")
    results.add_small("PUT", endpoint.name, puts)
    results.add_small("GET", endpoint.name, gets)


# ----- proxy memory -----------------------------------------------------------------


def listening_pid(url: str) -> int | None:
    """The pid of the process listening on ``url``'s port (via /proc/net/tcp*)."""
    port = urlsplit(url).port
    if port is None:
        return None
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as handle:
            for line in list(handle)[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                        return int(pid)
    return None


def memory_mb(pid: int, field_name: str) -> float:
    """``VmRSS`` or ``VmHWM`` of ``pid`` in MB (the kernel reports kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field_name} not in /proc/{pid}/status")


def reset_peak(pid: int) -> bool:
    """Reset VmHWM so the peak covers only the phase being measured (Linux >= 4.0)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@dataclass
class RssReport:
    before: float
    samples: list[float]
    peak_hwm: float
    peak_reset: bool
    seconds: float
    uploaded_mib: float


def measure_rss(proxy: Endpoint, pid: int, source: Path, uploads: int) -> RssReport:
    """RSS of the proxy while ``uploads`` copies of ``source`` go up through it at once."""
    before = memory_mb(pid, "VmRSS")
    peak_reset = reset_peak(pid)
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            with contextlib.suppress(OSError, RuntimeError):
                samples.append(memory_mb(pid, "VmRSS"))
            done.wait(0.2)

    def upload(index: int) -> None:
        proxy.client().upload_file(str(source), BUCKET, f"rss/{index}", Config=RSS_TRANSFER)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with ThreadPoolExecutor(uploads) as pool:
        seconds = timed(lambda: list(pool.map(upload, range(uploads))))
    done.set()
    sampler.join()
    client = proxy.client()
    client.delete_objects(
        Bucket=BUCKET, Delete={"Objects": [{"Key": f"rss/{i}"} for i in range(uploads)]}
    )
    total = uploads * source.stat().st_size / MIB
    return RssReport(before, samples, memory_mb(pid, "VmHWM"), peak_reset, seconds, total)


# ----- set-up -----------------------------------------------------------------------


def make_source(directory: Path, size_mib: int) -> Path:
    path = directory / "large.bin"
    block = os.urandom(MIB)
    with path.open("wb") as out:
        for index in range(size_mib):
            # Each MiB differs (cheaply), so nothing along the way can dedupe it.
            out.write(index.to_bytes(8, "big") + block[8:])
    return path


def ensure_bucket(backend: Endpoint) -> None:
    ensure_buckets(backend.client(), [BUCKET])


def empty_bucket(backend: Endpoint) -> None:
    client = backend.client()
    delete_keys(client, BUCKET, list_keys(client, BUCKET))


@dataclass
class Stack:
    direct: Endpoint
    proxy: Endpoint
    nginx: Endpoint
    floor: Endpoint
    backend_pid: int | None


@contextlib.contextmanager
def own_stack(root: Path) -> Iterator[Stack]:
    """SeaweedFS + s3proxy started the way the test fixtures start them, nginx, the floor."""
    seaweed = start_seaweed(root / "seaweed")
    try:
        proxy = start_proxy(root / "proxy", seaweed)
        try:
            env = seaweed.env
            key, secret = env["NEBULA_BACKEND_ACCESS_KEY"], env["NEBULA_BACKEND_SECRET_KEY"]
            with (
                pass_through(root / "nginx", seaweed.endpoint) as nginx,
                floor(root / "floor", seaweed.endpoint) as bare,
            ):
                yield Stack(
                    Endpoint(DIRECT, seaweed.endpoint, key, secret),
                    Endpoint(
                        PROXY,
                        proxy.endpoint,
                        proxy.admin.access_key_id,
                        proxy.admin.secret,
                        proxy.process.pid,
                    ),
                    Endpoint(NGINX, nginx.url, key, secret, nginx.pid),
                    Endpoint(FLOOR, bare.url, key, secret, bare.pid),
                    seaweed.process.pid,
                )
        finally:
            proxy.stop()
    finally:
        seaweed.stop()


@contextlib.contextmanager
def given_stack(args: argparse.Namespace, root: Path) -> Iterator[Stack]:
    """A running proxy and backend (e.g. `nebula up`), and our nginx and floor in front of it."""
    with (
        pass_through(root / "nginx", args.backend) as nginx,
        floor(root / "floor", args.backend) as bare,
    ):
        yield Stack(
            Endpoint(DIRECT, args.backend, args.backend_key, args.backend_secret),
            Endpoint(
                PROXY,
                args.proxy,
                args.proxy_key,
                args.proxy_secret,
                args.proxy_pid or listening_pid(args.proxy),
            ),
            Endpoint(NGINX, nginx.url, args.backend_key, args.backend_secret, nginx.pid),
            Endpoint(FLOOR, bare.url, args.backend_key, args.backend_secret, bare.pid),
            listening_pid(args.backend),
        )


# ----- report -----------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def print_small(results: Results, args: argparse.Namespace) -> None:
    print(
        f"\n4 KiB objects, {args.small_count} per round at concurrency {args.concurrency}, "
        f"lean aiohttp client ({CLIENT_LOOP_NAME} loop); medians of "
        f"{args.rounds} rounds. CPU in us per request; 'busy': client + server + "
        f"SeaweedFS CPU over {os.cpu_count()} cores; 'others': what other processes took."
    )
    print(
        f"{'':4} {'endpoint':<7} {'ops/s':>7} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'p99/dir':>7} {'server':>7} {'weed':>6} {'client':>7} {'busy':>5} {'others':>6}"
        "  rounds (ops/s)"
    )
    for method, by_endpoint in results.small.items():
        direct_ops = median([s.phase.ops for s in by_endpoint[DIRECT]])
        direct_p99 = median([s.phase.p99_ms for s in by_endpoint[DIRECT]])
        for name, runs in by_endpoint.items():
            ops = median([s.phase.ops for s in runs])
            p99 = median([s.phase.p99_ms for s in runs])
            print(
                f"{method:<4} {name:<7} {ops:>7.0f} {ops / direct_ops:>6.2f} "
                f"{median([s.phase.p50_ms for s in runs]):>7.1f} {p99:>7.1f} "
                f"{p99 / direct_p99:>7.2f} {median([s.server_us() for s in runs]):>7.0f} "
                f"{median([s.backend_us() for s in runs]):>6.0f} "
                f"{median([s.phase.client_us for s in runs]):>7.0f} "
                f"{median([s.busy() for s in runs]):>5.0%} "
                f"{median([s.others() for s in runs]):>6.0%}  "
                + " ".join(f"{s.phase.ops:.0f}" for s in runs)
            )
    print("targets:")
    for method, by_endpoint in results.small.items():
        direct_ops = median([s.phase.ops for s in by_endpoint[DIRECT]])
        direct_p99 = median([s.phase.p99_ms for s in by_endpoint[DIRECT]])
        proxy = by_endpoint[PROXY]
        ratio = median([s.phase.ops for s in proxy]) / direct_ops
        p99 = median([s.phase.p99_ms for s in proxy]) / direct_p99
        cpu = median([s.server_us() for s in proxy])
        bare = median([s.server_us() for s in by_endpoint[FLOOR]])
        print(
            f"  {method}: ratio {ratio:.2f} >= {SMALL_RATIO:.2f} {verdict(ratio >= SMALL_RATIO)}; "
            f"p99 {p99:.2f} x direct <= {SMALL_P99_FACTOR:.0f} "
            f"{verdict(p99 <= SMALL_P99_FACTOR)}; proxy CPU {cpu:.0f} us <= "
            f"{SMALL_CPU_US:.0f} {verdict(cpu <= SMALL_CPU_US)} "
            f"(aiohttp floor {bare:.0f} us, Nebula's own {cpu - bare:.0f} us)"
        )
    gets = median([s.phase.ops for s in results.small["GET"][DIRECT]])
    print(
        f"  direct GET {gets:.0f}/s >= {SMALL_DIRECT_GETS:.0f} {verdict(gets >= SMALL_DIRECT_GETS)}"
    )


def print_large(results: Results) -> None:
    if not results.large:
        return
    print(f"\n{'metric':<15} {'endpoint':<7} {'MB/s':>7} {'ratio':>6} {'CPU-s/GiB':>9}  rounds")
    ratios: dict[str, dict[str, float]] = {}
    for metric, by_endpoint in results.large.items():
        direct = median(by_endpoint[DIRECT])
        for name, values in by_endpoint.items():
            ratio = median(values) / direct
            ratios.setdefault(metric, {})[name] = ratio
            cpu = results.large_cpu.get(metric, {}).get(name)
            cpu_text = f"{median(cpu):>9.2f}" if cpu else f"{'-':>9}"
            print(
                f"{metric:<15} {name:<7} {median(values):>7.0f} {ratio:>6.2f} {cpu_text}  "
                + " ".join(f"{v:.0f}" for v in values)
            )
    put = ratios["1 GiB PUT MB/s"][PROXY]
    get, nginx_get = ratios["1 GiB GET MB/s"][PROXY], ratios["1 GiB GET MB/s"][NGINX]
    print(
        f"targets: PUT {put:.2f} >= {LARGE_PUT_RATIO:.2f} {verdict(put >= LARGE_PUT_RATIO)}; "
        f"GET {get:.2f} >= nginx's {nginx_get:.2f} {verdict(get >= nginx_get)}"
    )


def print_rss(report: RssReport) -> None:
    peak = max([*report.samples, report.peak_hwm if report.peak_reset else 0.0])
    quarter = max(1, len(report.samples) // 4)
    early = max(report.samples[:quarter], default=0.0)
    late = max(report.samples[-quarter:], default=0.0)
    print(
        f"\nproxy RSS during {report.uploaded_mib / 1024:.1f} GiB of concurrent uploads "
        f"({report.uploaded_mib / report.seconds:.0f} MB/s aggregate):"
    )
    print(
        f"  before {report.before:.1f} MB, first quarter max {early:.1f} MB, last quarter max {late:.1f} MB"
    )
    hwm = "reset before the phase" if report.peak_reset else "process lifetime"
    print(f"  VmHWM {report.peak_hwm:.1f} MB ({hwm}); peak {peak:.1f} MB")
    print(f"  target < {RSS_LIMIT_MB:.0f} MB and flat: {verdict(peak < RSS_LIMIT_MB)}")


# ----- main -------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--proxy", help="s3proxy endpoint URL (default: start our own)")
    parser.add_argument("--proxy-key")
    parser.add_argument("--proxy-secret")
    parser.add_argument("--backend", help="backend S3 endpoint URL")
    parser.add_argument("--backend-key")
    parser.add_argument("--backend-secret")
    parser.add_argument("--proxy-pid", type=int, help="default: whoever listens on --proxy's port")
    parser.add_argument(
        "--size-mib", type=int, default=1024, help="large object size (0: no large phase)"
    )
    parser.add_argument("--small-count", type=int, default=5000, help="4 KiB objects per round")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="rounds, endpoint order rotating")
    parser.add_argument(
        "--rss-uploads", type=int, default=8, help="concurrent uploads for RSS (0: skip)"
    )
    args = parser.parse_args(argv)
    given = [
        args.proxy,
        args.proxy_key,
        args.proxy_secret,
        args.backend,
        args.backend_key,
        args.backend_secret,
    ]
    if any(given) and not all(given):
        parser.error(
            "give all of --proxy/--proxy-key/--proxy-secret/--backend/--backend-key/--backend-secret, or none"
        )
    return args


def bench(args: argparse.Namespace, stack: Stack, work: Path) -> None:
    ensure_bucket(stack.direct)
    source = make_source(work, max(args.size_mib, 1))
    results = Results()
    print(
        f"large object {args.size_mib} MiB; {args.small_count} x 4 KiB at concurrency "
        f"{args.concurrency}; proxy pid {stack.proxy.pid}, nginx pid {stack.nginx.pid}, "
        f"floor pid {stack.floor.pid}, SeaweedFS pid {stack.backend_pid}"
    )
    print(f"load average at the start: {os.getloadavg()[0]:.1f}")
    endpoints = [stack.proxy, stack.direct, stack.nginx, stack.floor]
    for number in range(args.rounds):
        # Rotating order: no endpoint always runs on a warmer (or fuller) backend.
        shift = number % len(endpoints)
        for endpoint in endpoints[shift:] + endpoints[:shift]:
            run_round(endpoint, args, source, results, number, stack.backend_pid)
            print(f"  round {number + 1}: {endpoint.name} done", flush=True)
    empty_bucket(stack.direct)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print_small(results, args)
    print_large(results)
    if stack.proxy.pid is None:
        print("\nproxy pid unknown (not on this machine?): RSS not measured")
        return
    if args.rss_uploads and args.size_mib:
        print_rss(measure_rss(stack.proxy, stack.proxy.pid, source, args.rss_uploads))
        empty_bucket(stack.direct)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nebula-bench-") as tmp:
        work = Path(tmp)
        stack = given_stack(args, work) if args.proxy else own_stack(work)
        with stack as running:
            bench(args, running, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
