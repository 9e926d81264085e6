"""Benchmark the HLS origin against its backend with ``wrk`` (``apt-get install wrk``).

For a playlist, a 1 MiB segment and a 64 KiB range of it, at 64 connections, measures
requests/s and MB/s through the origin (warm cache) and for the same object read directly
from the backend (a presigned URL, so the backend does its usual SigV4 check), alternating
origin and backend in one run, and prints origin/backend ratios.

Target: the origin >= 1.0 x the backend on cached segments.

    python3 -m bench.origin                # starts its own SeaweedFS and origin
    python3 -m bench.origin --seconds 10 --rounds 5 --connections 64
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from catalog import Catalog
from nebulacore.config import load_settings
from nebulacore.s3 import backend_client, ensure_buckets
from tests.stacks import start_origin, start_seaweed

ASSET = "benchasset01"
SEGMENT_KEY = f"{ASSET}/v1/720p/seg_00001.m4s"
PLAYLIST_KEY = f"{ASSET}/v1/720p/index.m3u8"
SEGMENT_BYTES = 1024 * 1024
RANGE_BYTES = 64 * 1024
TARGET = 1.0
WARM_REQUESTS = 32


@dataclass(frozen=True)
class Case:
    name: str
    key: str
    body_bytes: int
    range_header: str | None = None


@dataclass
class Results:
    rps: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def add(self, case: str, side: str, value: float) -> None:
        self.rps.setdefault((case, side), []).append(value)

    def median(self, case: str, side: str) -> float:
        return statistics.median(self.rps[(case, side)])


def media_playlist(segments: int = 150) -> bytes:
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:4", "#EXT-X-PLAYLIST-TYPE:VOD"]
    lines.append('#EXT-X-MAP:URI="init_1.mp4"')
    for index in range(segments):
        lines += ["#EXTINF:4.000000,", f"seg_{index:05d}.m4s"]
    return ("\n".join([*lines, "#EXT-X-ENDLIST"]) + "\n").encode()


def wrk(url: str, seconds: int, connections: int, range_header: str | None) -> float:
    """Requests per second; refuses a run with any non-2xx answer."""
    argv = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", url]
    if range_header:
        argv += ["-H", f"Range: {range_header}"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or ("Socket errors" in out and "timeout" in out):
        raise SystemExit(f"wrk saw errors against {url}:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise SystemExit(f"unexpected wrk output:\n{out}")
    return float(match.group(1))


@contextmanager
def own_stack(root: Path, workers: int) -> Iterator[tuple[str, dict[str, str]]]:
    """SeaweedFS from the wheel and ``nebula origin`` over it, with one synthetic asset."""
    seaweed = start_seaweed(root / "seaweed")
    try:
        env = {**seaweed.env, "NEBULA_DATA_DIR": str(root / "data")}
        env["NEBULA_DATABASE_URL"] = f"sqlite:///{root / 'catalog.db'}"
        Catalog(env["NEBULA_DATABASE_URL"]).upgrade()
        origin = start_origin(
            root / "origin", env, NEBULA_LOG_LEVEL="WARNING", NEBULA_ORIGIN_WORKERS=str(workers)
        )
        try:
            yield origin.url, env
        finally:
            origin.stop()
    finally:
        seaweed.stop()


def publish(env: dict[str, str]) -> dict[str, str]:
    """Put the objects in the HLS bucket; returns presigned backend URLs for them."""
    settings = load_settings(env)
    client = backend_client(settings)
    bucket = settings.hls_bucket
    ensure_buckets(client, [bucket])
    client.put_object(Bucket=bucket, Key=SEGMENT_KEY, Body=os.urandom(SEGMENT_BYTES))
    client.put_object(Bucket=bucket, Key=PLAYLIST_KEY, Body=media_playlist())
    return {
        key: client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=6 * 3600
        )
        for key in (SEGMENT_KEY, PLAYLIST_KEY)
    }


def run(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        print("bench.origin needs wrk: apt-get install wrk", file=sys.stderr)
        return 2
    with (
        tempfile.TemporaryDirectory(prefix="nebula-bench-origin-") as tmp,
        own_stack(Path(tmp), args.workers) as (origin_url, env),
    ):
        direct = publish(env)
        cases = [
            Case("playlist", PLAYLIST_KEY, len(media_playlist())),
            Case("segment 1 MiB", SEGMENT_KEY, SEGMENT_BYTES),
            Case("range 64 KiB", SEGMENT_KEY, RANGE_BYTES, f"bytes=0-{RANGE_BYTES - 1}"),
        ]
        for case in cases:  # warm every worker's cache (new connections spread over them)
            for _ in range(WARM_REQUESTS):
                urllib.request.urlopen(f"{origin_url}/hls/{case.key}").read()
        results = Results()
        for round_number in range(1, args.rounds + 1):
            for case in cases:
                sides = [("origin", f"{origin_url}/hls/{case.key}"), ("backend", direct[case.key])]
                if round_number % 2 == 0:
                    sides.reverse()  # alternate who goes first
                for side, url in sides:
                    rps = wrk(url, args.seconds, args.connections, case.range_header)
                    results.add(case.name, side, rps)
                    print(
                        f"round {round_number} {case.name:<14} {side:<7} {rps:10.0f} req/s",
                        flush=True,
                    )
        return report(results, cases, args.connections)


def report(results: Results, cases: list[Case], connections: int) -> int:
    print(f"\nmedians at {connections} connections (origin warm cache vs backend direct):")
    print(
        f"{'object':<15} {'origin req/s':>12} {'MB/s':>8} {'backend req/s':>14} {'MB/s':>8} {'ratio':>6}"
    )
    failed = False
    for case in cases:
        origin, backend = results.median(case.name, "origin"), results.median(case.name, "backend")
        ratio = origin / backend
        mb = case.body_bytes / 1e6
        print(
            f"{case.name:<15} {origin:12.0f} {origin * mb:8.1f} {backend:14.0f} "
            f"{backend * mb:8.1f} {ratio:5.2f}x"
        )
        if case.key == SEGMENT_KEY and ratio < TARGET:
            failed = True
    print(
        f"target: origin >= {TARGET:.1f}x backend on cached segments: {'MISSED' if failed else 'met'}"
    )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="origin/backend alternations")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="NEBULA_ORIGIN_WORKERS"
    )
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
