"""Benchmark the s3proxy against its backend: throughput ratios and the proxy's memory.

Measures, through the proxy and directly against the backend, alternating in one run:

* a 1 GiB multipart PUT and GET (MB/s),
* 4 KiB object PUT and GET at concurrency 32 (ops/s),

prints proxy/direct ratios, then drives 8 concurrent 1 GiB uploads through the proxy
while sampling its RSS from /proc (VmRSS, and VmHWM, the kernel's peak).

Targets: large >= 0.90 x direct, small >= 0.60 x direct, RSS < 150 MB and flat.

    python3 -m bench.s3proxy                      # starts its own SeaweedFS + s3proxy
    python3 -m bench.s3proxy --proxy http://127.0.0.1:9000 --proxy-key NK... \\
        --proxy-secret ... --backend http://127.0.0.1:8333 --backend-key ... \\
        --backend-secret ...                       # e.g. a running `nebula up`

The proxy's pid is found from the process listening on the proxy's port (or
``--proxy-pid``); RSS figures need it to run on this machine.
"""

from __future__ import annotations

import argparse
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

from nebulacore.s3 import delete_keys, ensure_buckets, list_keys
from tests.stacks import start_proxy, start_seaweed

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
TARGETS = {"large": 0.90, "small": 0.60}
RSS_LIMIT_MB = 150.0


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: str
    key: str
    secret: str

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
class Results:
    """Per metric, per endpoint name: one figure per round."""

    figures: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    # Proxy CPU seconds per unit (GiB or 1,000 ops), when the proxy's pid is known.
    proxy_cpu: dict[str, list[float]] = field(default_factory=dict)

    def add(self, metric: str, endpoint: str, value: float) -> None:
        self.figures.setdefault(metric, {}).setdefault(endpoint, []).append(value)

    def median(self, metric: str, endpoint: str) -> float:
        return statistics.median(self.figures[metric][endpoint])


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


def small_ops(endpoint: Endpoint, count: int, concurrency: int, prefix: str) -> tuple[float, float]:
    """(PUT ops/s, GET ops/s) for ``count`` 4 KiB objects at ``concurrency``."""
    client = endpoint.client(pool=concurrency)
    body = os.urandom(SMALL_SIZE)
    keys = [f"{prefix}/{i:06d}" for i in range(count)]

    def put(key: str) -> None:
        client.put_object(Bucket=BUCKET, Key=key, Body=body)

    def get(key: str) -> None:
        assert len(client.get_object(Bucket=BUCKET, Key=key)["Body"].read()) == SMALL_SIZE

    with ThreadPoolExecutor(concurrency) as pool:
        put_seconds = timed(lambda: list(pool.map(put, keys)))
        get_seconds = timed(lambda: list(pool.map(get, keys)))
    return count / put_seconds, count / get_seconds


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of ``pid`` so far (0 when unknown)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_round(
    endpoint: Endpoint,
    args: argparse.Namespace,
    source: Path,
    results: Results,
    number: int,
    pid: int | None,
) -> None:
    """One large PUT/GET and one small-object pass; ``pid`` is the proxy's, None direct."""
    key = f"large/{endpoint.name}-{number}"
    size = source.stat().st_size

    def record(metric: str, value: float, units: float, cpu_before: float) -> None:
        results.add(metric, endpoint.name, value)
        if pid is not None:
            used = cpu_seconds(pid) - cpu_before
            results.proxy_cpu.setdefault(metric, []).append(used / units)

    cpu = cpu_seconds(pid)
    record("large PUT MB/s", large_put(endpoint, source, key), size / 1024 / MIB, cpu)
    cpu = cpu_seconds(pid)
    record("large GET MB/s", large_get(endpoint, key, size), size / 1024 / MIB, cpu)
    endpoint.client().delete_object(Bucket=BUCKET, Key=key)
    cpu = cpu_seconds(pid)
    puts, gets = small_ops(
        endpoint, args.small_count, args.concurrency, f"small/{endpoint.name}-{number}"
    )
    results.add("4KiB PUT ops/s", endpoint.name, puts)
    results.add("4KiB GET ops/s", endpoint.name, gets)
    if pid is not None:  # PUTs and GETs together: CPU per 1,000 small requests
        used = cpu_seconds(pid) - cpu
        results.proxy_cpu.setdefault("small", []).append(used / (2 * args.small_count / 1000))


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


@contextlib.contextmanager
def own_stack(root: Path) -> Iterator[tuple[Endpoint, Endpoint, int]]:
    """SeaweedFS + s3proxy started the way the test fixtures start them."""
    seaweed = start_seaweed(root / "seaweed")
    try:
        proxy = start_proxy(root / "proxy", seaweed)
        try:
            env = seaweed.env
            backend = Endpoint(
                "direct",
                seaweed.endpoint,
                env["NEBULA_BACKEND_ACCESS_KEY"],
                env["NEBULA_BACKEND_SECRET_KEY"],
            )
            front = Endpoint("proxy", proxy.endpoint, proxy.admin.access_key_id, proxy.admin.secret)
            yield front, backend, proxy.process.pid
        finally:
            proxy.stop()
    finally:
        seaweed.stop()


# ----- report -----------------------------------------------------------------------


def print_ratios(results: Results) -> None:
    print(f"\n{'metric':<16} {'proxy':>10} {'direct':>10} {'ratio':>7}  target       rounds")
    for metric in results.figures:
        proxy = results.median(metric, "proxy")
        direct = results.median(metric, "direct")
        ratio = proxy / direct
        target = TARGETS["large" if "large" in metric else "small"]
        verdict = "ok" if ratio >= target else "MISSED"
        rounds = " ".join(
            f"{p:.0f}/{d:.0f}"
            for p, d in zip(
                results.figures[metric]["proxy"], results.figures[metric]["direct"], strict=True
            )
        )
        print(
            f"{metric:<16} {proxy:>10.1f} {direct:>10.1f} {ratio:>7.2f}  >= {target:.2f} "
            f"{verdict:<6} {rounds}"
        )
    if results.proxy_cpu:
        cpu = {name: statistics.median(values) for name, values in results.proxy_cpu.items()}
        print(
            f"\nproxy CPU: large PUT {cpu.get('large PUT MB/s', 0):.1f} s/GiB, "
            f"large GET {cpu.get('large GET MB/s', 0):.1f} s/GiB, "
            f"4 KiB requests {cpu.get('small', 0):.2f} s per 1,000"
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
    verdict = "ok" if peak < RSS_LIMIT_MB else "MISSED"
    print(f"  target < {RSS_LIMIT_MB:.0f} MB and flat: {verdict}")


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
    parser.add_argument("--size-mib", type=int, default=1024, help="large object size")
    parser.add_argument("--small-count", type=int, default=2000, help="4 KiB objects per round")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per endpoint")
    parser.add_argument("--rss-uploads", type=int, default=8, help="concurrent uploads for RSS")
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


def bench(
    args: argparse.Namespace, proxy: Endpoint, backend: Endpoint, pid: int | None, work: Path
) -> None:
    ensure_bucket(backend)
    source = make_source(work, args.size_mib)
    results = Results()
    print(
        f"large object {args.size_mib} MiB; {args.small_count} x 4 KiB at concurrency {args.concurrency}"
    )
    for number in range(args.rounds):
        # ABBA order: neither endpoint always runs on a warmer (or fuller) backend.
        order = (proxy, backend) if number % 2 == 0 else (backend, proxy)
        for endpoint in order:
            run_round(endpoint, args, source, results, number, pid if endpoint is proxy else None)
            print(f"  round {number + 1}: {endpoint.name} done", flush=True)
    empty_bucket(backend)
    print_ratios(results)
    if pid is None:
        print("\nproxy pid unknown (not on this machine?): RSS not measured")
        return
    print_rss(measure_rss(proxy, pid, source, args.rss_uploads))
    empty_bucket(backend)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nebula-bench-") as tmp:
        work = Path(tmp)
        if args.proxy:
            proxy = Endpoint("proxy", args.proxy, args.proxy_key, args.proxy_secret)
            backend = Endpoint("direct", args.backend, args.backend_key, args.backend_secret)
            bench(args, proxy, backend, args.proxy_pid or listening_pid(args.proxy), work)
        else:
            with own_stack(work) as (proxy, backend, pid):
                bench(args, proxy, backend, pid, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
