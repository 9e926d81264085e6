"""Benchmark the embedded storage's memory: SeaweedFS's RSS with the old and new flags.

Starts the embedded SeaweedFS the way ``nebula up`` does (``nebula.storage.prepare``),
once as before issue 14 ("old": no memory flags, no GOMEMLIMIT) and once as shipped
("new"), alternating per round, and for each one measures directly against its S3 port:

* RSS idle, then after 1,000 x 4 KiB PUTs (ops/s),
* peak RSS during a 1 GiB multipart upload and its download (MB/s),
* peak RSS during ``--parallel`` 1 GiB uploads at once (aggregate MB/s),

each as RSS and its anonymous part (the Go heap; the rest is the weed binary's pages).
Uploads are generated streams, never files. Prints old/new side by side and new/old
throughput ratios. Target: peak RSS < 1,000 MB with the new flags, throughput ~1.0 x old.

    python3 -m bench.storage_memory                # 2 rounds, 4 parallel uploads
    python3 -m bench.storage_memory --rounds 3 --parallel 8
    python3 -m bench.storage_memory --memory-limit-mb 512   # try another bound
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig

from bench.s3proxy import NullSink, reset_peak, timed
from bench.s3proxy import memory_mb as status_mb
from nebula import storage
from nebulacore.config import load_settings
from nebulacore.s3 import backend_client, ensure_buckets

MIB = 1024 * 1024
BUCKET = "bench"
SMALL_SIZE = 4096
SMALL_COUNT = 1000
LARGE_MIB = 1024
TRANSFER = TransferConfig(
    multipart_threshold=16 * MIB, multipart_chunksize=16 * MIB, max_concurrency=8
)
# Parallel uploads keep 2 parts each in flight, as the s3proxy bench does.
PARALLEL_TRANSFER = TransferConfig(
    multipart_threshold=16 * MIB, multipart_chunksize=16 * MIB, max_concurrency=2
)
RSS_LIMIT_MB = 1000.0
VARIANTS = ("old", "new")


# ----- the storage, with old or new flags -------------------------------------------


@dataclass
class Storage:
    pid: int
    client: Any


@contextlib.contextmanager
def started(root: Path, variant: str, limit_mb: int | None) -> Iterator[Storage]:
    """The embedded storage as ``nebula up`` starts it; "old" without the memory bounds."""

    environ = {"NEBULA_STORAGE_MEMORY_LIMIT_MB": str(limit_mb)} if limit_mb else {}
    settings = load_settings(environ, data_dir=str(root), storage_port=storage.free_internal_port())
    launch = storage.prepare(settings)
    if variant == "old":
        bounds = set(storage.memory_args(settings))
        env = {k: v for k, v in launch.env.items() if k != "GOMEMLIMIT"}
        launch = replace(launch, argv=[a for a in launch.argv if a not in bounds], env=env)
    process = storage.spawn(launch)
    try:
        storage.wait_ready(launch.layout.endpoint, alive=lambda: process.poll() is None)
        client = backend_client(settings)
        retry_until_ready(lambda: ensure_buckets(client, [BUCKET]))
        time.sleep(3)  # let start-up settle before "idle" is read
        yield Storage(process.pid, client)
    finally:
        process.terminate()
        process.wait(timeout=30)


def retry_until_ready(action: Callable[[], object], seconds: float = 60) -> None:
    """The S3 port answers before the filer behind it does: retry until it works."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            action()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


# ----- memory ----------------------------------------------------------------------


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, RssAnon) of ``pid`` in MB; RssAnon is the Go heap and stacks."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon"):
            fields[name] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["RssAnon"]


class PeakSampler:
    """Samples a process's RSS every 0.2 s while a phase runs; keeps the highest."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = memory_mb(pid)
        self.kernel_peak = False
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.done.is_set():
            with contextlib.suppress(OSError, KeyError):
                rss, anon = memory_mb(self.pid)
                self.peak = (max(self.peak[0], rss), max(self.peak[1], anon))
            self.done.wait(0.2)

    def __enter__(self) -> PeakSampler:

        # The kernel's own peak (VmHWM), reset here, catches what 0.2 s sampling misses.
        self.kernel_peak = reset_peak(self.pid)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:

        self.done.set()
        self.thread.join()
        if self.kernel_peak:
            self.peak = (max(self.peak[0], status_mb(self.pid, "VmHWM")), self.peak[1])


# ----- load ------------------------------------------------------------------------


class GeneratedStream:
    """``size`` bytes of incompressible data made as they are read, never held whole."""

    def __init__(self, size: int) -> None:
        self.remaining = size
        self.counter = 0
        self.block = os.urandom(MIB)

    def read(self, size: int = -1) -> bytes:
        size = self.remaining if size < 0 else min(size, self.remaining)
        out = bytearray()
        while len(out) < size:
            # Each MiB differs (cheaply), so nothing along the way can dedupe it.
            self.counter += 1
            out += self.counter.to_bytes(8, "big") + self.block[8 : min(MIB, size - len(out))]
        self.remaining -= size
        return bytes(out[:size])


def small_puts(client: Any) -> float:
    """1,000 x 4 KiB PUTs at concurrency 16: ops/s."""

    body = os.urandom(SMALL_SIZE)

    def put(index: int) -> None:
        client.put_object(Bucket=BUCKET, Key=f"small/{index:05d}", Body=body)

    with ThreadPoolExecutor(16) as pool:
        return SMALL_COUNT / timed(lambda: list(pool.map(put, range(SMALL_COUNT))))


def large_upload(client: Any, key: str, transfer: TransferConfig = TRANSFER) -> None:
    client.upload_fileobj(GeneratedStream(LARGE_MIB * MIB), BUCKET, key, Config=transfer)


def parallel_uploads(client: Any, count: int) -> float:
    """``count`` 1 GiB uploads at once: aggregate MB/s."""

    def upload(index: int) -> None:
        large_upload(client, f"parallel/{index}", PARALLEL_TRANSFER)

    with ThreadPoolExecutor(count) as pool:
        return count * LARGE_MIB / timed(lambda: list(pool.map(upload, range(count))))


# ----- rounds -------------------------------------------------------------------


@dataclass
class Figures:
    """Per variant, per figure name: one value per round."""

    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def add(self, variant: str, name: str, value: float) -> None:
        self.values.setdefault(name, {}).setdefault(variant, []).append(value)

    def median(self, name: str, variant: str) -> float:
        return statistics.median(self.values[name][variant])

    def highest(self, name: str, variant: str) -> float:
        return max(self.values[name][variant])

    def peak(self, prefix: str, variant: str) -> float:
        """The highest value of any figure named ``prefix...`` in any round."""
        return max(
            value
            for name, by in self.values.items()
            if name.startswith(prefix)
            for value in by[variant]
        )


@dataclass(frozen=True)
class Phase:
    name: str  # its row in the memory table
    metric: str  # its row in the throughput table
    run: Callable[[Any], float]  # given an S3 client, does the work; returns the metric


def large_put(client: Any) -> float:

    return LARGE_MIB / timed(lambda: large_upload(client, "large"))


def large_get(client: Any) -> float:

    sink = NullSink()
    return LARGE_MIB / timed(
        lambda: client.download_fileobj(BUCKET, "large", sink, Config=TRANSFER)
    )


def phases(parallel: int) -> list[Phase]:
    return [
        Phase(f"{SMALL_COUNT:,} x 4 KiB PUT", "4 KiB PUT ops/s", small_puts),
        Phase("1 GiB PUT", "1 GiB PUT MB/s", large_put),
        Phase("1 GiB GET", "1 GiB GET MB/s", large_get),
        Phase(
            f"{parallel} x 1 GiB PUT",
            f"{parallel} x 1 GiB PUT MB/s",
            lambda client: parallel_uploads(client, parallel),
        ),
    ]


def run_round(number: int, root: Path, args: argparse.Namespace, figures: Figures) -> None:
    """Both variants at once, each phase on one then the other: the load other processes
    put on the machine then falls on both alike, within seconds of each other."""
    with contextlib.ExitStack() as stack:
        stores = {
            variant: stack.enter_context(started(root / variant, variant, args.memory_limit_mb))
            for variant in VARIANTS
        }
        for variant, store in stores.items():
            record_memory(figures, variant, "idle", memory_mb(store.pid))
        for index, phase in enumerate(phases(args.parallel)):
            # Who goes first alternates (ABBA), so neither always runs on a warmer disk.
            order = VARIANTS if (number + index) % 2 == 0 else VARIANTS[::-1]
            for variant in order:
                with PeakSampler(stores[variant].pid) as sampler:
                    figures.add(variant, phase.metric, phase.run(stores[variant].client))
                record_memory(figures, variant, f"{phase.name} peak", sampler.peak)
        time.sleep(3)
        for variant, store in stores.items():
            record_memory(figures, variant, "after, 3 s idle", memory_mb(store.pid))


def record_memory(
    figures: Figures, variant: str, phase: str, rss_anon: tuple[float, float]
) -> None:
    figures.add(variant, f"RSS {phase}", rss_anon[0])
    figures.add(variant, f"anon {phase}", rss_anon[1])


# ----- report ----------------------------------------------------------------------


def print_memory(figures: Figures) -> None:
    print(
        f"\n{'phase (MB, highest round)':<26} {'old RSS':>8} {'(anon)':>7} {'new RSS':>8} {'(anon)':>7}"
    )
    for name in figures.values:
        if not name.startswith("RSS "):
            continue
        phase = name.removeprefix("RSS ")
        cells = [
            f"{figures.highest(name, v):>8.0f} {figures.highest('anon ' + phase, v):>7.0f}"
            for v in VARIANTS
        ]
        print(f"{phase:<26} {' '.join(cells)}")
    old, new = figures.peak("RSS ", "old"), figures.peak("RSS ", "new")
    verdict = "ok" if new < RSS_LIMIT_MB else "MISSED"
    print(f"peak RSS of any round: old {old:.0f} MB, new {new:.0f} MB")
    print(f"  target new < {RSS_LIMIT_MB:.0f} MB: {verdict}")


def print_throughput(figures: Figures) -> None:
    print(f"\n{'throughput (median)':<26} {'old':>8} {'new':>8} {'new/old':>8}  rounds old/new")
    for name, by in figures.values.items():
        if name.startswith(("RSS ", "anon ")):
            continue
        old, new = figures.median(name, "old"), figures.median(name, "new")
        rounds = " ".join(f"{o:.0f}/{n:.0f}" for o, n in zip(by["old"], by["new"], strict=True))
        print(f"{name:<26} {old:>8.1f} {new:>8.1f} {new / old:>8.2f}  {rounds}")
    print("(throughput is noisy on a shared machine: compare rounds, not one figure)")


# ----- main ------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds per variant (ABBA order)")
    parser.add_argument("--parallel", type=int, default=4, help="1 GiB uploads at once")
    parser.add_argument(
        "--memory-limit-mb",
        type=int,
        help="NEBULA_STORAGE_MEMORY_LIMIT_MB for the new variant (default: nebula's default)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    figures = Figures()
    with tempfile.TemporaryDirectory(prefix="nebula-bench-") as tmp:
        for number in range(args.rounds):
            root = Path(tmp) / f"round-{number}"
            run_round(number, root, args, figures)
            shutil.rmtree(root)  # each round writes (1 + parallel) GiB per variant
            print(f"  round {number + 1} of {args.rounds} done", flush=True)
    print_memory(figures)
    print_throughput(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
