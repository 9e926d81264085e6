"""The s3proxy with 1 worker against 2, under a lean load of small signed requests.

Starts its own SeaweedFS and two s3proxies over it (``NEBULA_S3PROXY_WORKERS=1`` and
``2``). The client is ``wrk`` (C, a few percent of a core) sending requests presigned with
botocore (SigV4 in the query: the proxy verifies a signature per request, as for signed
headers): a 4 KiB GET and a 4 KiB PUT, ``wrk -t1 -c32``. Rounds alternate which proxy goes
first. It prints requests/s and the CPU per 1,000 requests of the proxy (all its
processes), of SeaweedFS and of wrk, so the figure can be read against the machine: on 2
cores shared by the client, the proxy's workers and SeaweedFS, a second worker can only
help as far as a core is left idle by the one worker.

    python3 -m bench.s3proxy_workers [--seconds 5] [--rounds 3] [--connections 32]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from bench.origin import Run, Server, tree_cpu_seconds, wrk
from tests.stacks import ProxyUnderTest, start_proxy, start_seaweed

BUCKET = "bench"
KEY = "small/object.bin"
OBJECT_BYTES = 4096
LUA_PUT = """wrk.method = "PUT"
wrk.body = string.rep("x", {size})
"""


def presigned(proxy: ProxyUnderTest, method: str) -> str:
    client: Any = boto3.client(
        "s3",
        endpoint_url=proxy.url,
        aws_access_key_id=proxy.admin.access_key_id,
        aws_secret_access_key=proxy.admin.secret,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    operation = "get_object" if method == "GET" else "put_object"
    url: str = client.generate_presigned_url(
        operation, Params={"Bucket": BUCKET, "Key": KEY}, ExpiresIn=6 * 3600
    )
    return url


def prepare(proxy: ProxyUnderTest) -> None:
    client: Any = boto3.client(
        "s3",
        endpoint_url=proxy.url,
        aws_access_key_id=proxy.admin.access_key_id,
        aws_secret_access_key=proxy.admin.secret,
        region_name="us-east-1",
    )
    if BUCKET not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket=BUCKET)
    client.put_object(Bucket=BUCKET, Key=KEY, Body=os.urandom(OBJECT_BYTES))


def run(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        print("bench.s3proxy_workers needs wrk: apt-get install wrk", file=sys.stderr)
        return 2
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nebula-bench-")))
        seaweed = start_seaweed(root / "seaweed")
        stack.callback(seaweed.stop)
        proxies: dict[int, ProxyUnderTest] = {}
        for workers in (1, 2):
            extra = {"NEBULA_S3PROXY_WORKERS": str(workers), "NEBULA_LOG_LEVEL": "WARNING"}
            proxy = start_proxy(root / f"proxy-{workers}", seaweed, extra)
            stack.callback(proxy.stop)
            proxies[workers] = proxy
        prepare(proxies[1])
        script = root / "put.lua"
        script.write_text(LUA_PUT.format(size=OBJECT_BYTES))
        results: dict[tuple[str, int], list[tuple[Run, float]]] = {}
        print(f"wrk -t1 -c{args.connections}, {args.seconds} s a run; CPU in ms per 1,000 requests")
        for round_number in range(1, args.rounds + 1):
            order = [1, 2] if round_number % 2 else [2, 1]
            for method in ("GET", "PUT"):
                for workers in order:
                    proxy = proxies[workers]
                    url = presigned(proxy, method)
                    server = Server(f"{workers} worker(s)", proxy.url, proxy.process.pid)
                    lua = ["-s", str(script)] if method == "PUT" else []
                    storage_before = tree_cpu_seconds(seaweed.spawned.pid)
                    result = wrk(
                        server,
                        "",
                        args.seconds,
                        args.connections,
                        None,
                        url=url,
                        extra=lua,
                        threads=1,
                    )
                    storage_cpu = tree_cpu_seconds(seaweed.spawned.pid) - storage_before
                    storage_per_k = storage_cpu * 1e6 / max(1.0, result.rps * args.seconds)
                    results.setdefault((method, workers), []).append((result, storage_per_k))
                    print(
                        f"round {round_number} 4 KiB {method:<4} {workers} worker(s) "
                        f"{result.rps:7.0f} req/s  proxy {result.server_cpu_ms_per_k:5.0f}  "
                        f"storage {storage_per_k:5.0f}  wrk {result.wrk_cpu_ms_per_k:4.0f}",
                        flush=True,
                    )
        report(results)
    return 0


def report(results: dict[tuple[str, int], list[tuple[Run, float]]]) -> None:
    print("\nmedians (CPU: ms per 1,000 requests)")
    print(
        f"{'request':<10} {'workers':>7} {'req/s':>8} {'proxy CPU':>10} {'storage':>8} {'wrk':>5}"
    )
    for (method, workers), runs in sorted(results.items()):
        rps = statistics.median(r.rps for r, _ in runs)
        proxy_cpu = statistics.median(r.server_cpu_ms_per_k for r, _ in runs)
        storage = statistics.median(s for _, s in runs)
        wrk_cpu = statistics.median(r.wrk_cpu_ms_per_k for r, _ in runs)
        print(
            f"4 KiB {method:<4} {workers:>7} {rps:8.0f} {proxy_cpu:10.0f} {storage:8.0f} "
            f"{wrk_cpu:5.0f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
