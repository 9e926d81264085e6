"""What the allow-list and the metrics middleware cost per request.

Serves the same tiny handler twice, in subprocesses: bare, and wrapped as s3proxy and
origin wrap theirs (allow-list first, then install_ops' metrics middleware). Prints
requests per second of each and their ratio, best of a few rounds, same client.

    python3 -m bench.ops_overhead [--requests 3000] [--concurrency 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import ClientSession, TCPConnector, web

from nebula.storage import free_internal_port
from nebulacore.config import load_settings
from nebulacore.netguard import allowlist_middleware
from nebulacore.ops import install_ops
from tests.harness import Spawned, spawn, stop, wait_listening


def make_app(guarded: bool) -> web.Application:
    app = web.Application(middlewares=[allowlist_middleware(load_settings({}))] if guarded else [])
    if guarded:
        install_ops(app, "bench", {})

    async def hello(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 1024)

    app.router.add_get("/hello", hello)
    return app


def serve(kind: str, port: int) -> None:
    web.run_app(
        make_app(kind == "guarded"), host="127.0.0.1", port=port, print=None, access_log=None
    )


async def hammer(url: str, requests: int, concurrency: int) -> float:
    async with ClientSession(connector=TCPConnector(limit=concurrency)) as session:

        async def worker(count: int) -> None:
            for _ in range(count):
                async with session.get(url) as response:
                    await response.read()

        await worker(50)  # warm up connections
        started = time.perf_counter()
        await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
        return (requests // concurrency) * concurrency / (time.perf_counter() - started)


def start(kind: str, log_dir: Path) -> tuple[Spawned, str]:
    """This module again, serving ``kind`` on a free port; waits until it answers."""
    port = free_internal_port()
    argv = [sys.executable, "-m", "bench.ops_overhead", "--serve", kind, str(port)]
    server = wait_listening(spawn(kind, argv, None, log_dir / f"{kind}.log", port=port))
    return server, f"{server.url}/hello"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "PORT"))
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    log_dir = Path(tempfile.mkdtemp(prefix="nebula-bench-ops-"))
    servers = {kind: start(kind, log_dir) for kind in ("bare", "guarded")}
    best = {kind: 0.0 for kind in servers}
    try:
        for _ in range(args.rounds):
            for kind, (_process, url) in servers.items():
                rate = asyncio.run(hammer(url, args.requests, args.concurrency))
                best[kind] = max(best[kind], rate)
    finally:
        for server, _url in servers.values():
            stop(server)
        shutil.rmtree(log_dir, ignore_errors=True)
    print(f"bare handler:                 {best['bare']:8.0f} req/s")
    print(f"allow-list + metrics:         {best['guarded']:8.0f} req/s")
    print(f"ratio guarded/bare:           {best['guarded'] / best['bare']:8.2f}")


if __name__ == "__main__":
    main()
