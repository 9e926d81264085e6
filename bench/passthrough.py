"""A bare aiohttp pass-through to the backend: the per-request floor of any aiohttp proxy.

``python3 -m bench.passthrough --port P --backend URL`` forwards every request's method,
path, query, headers (``Host`` included, so the client's SigV4 stays valid, as
:mod:`bench.nginx` keeps it) and body unchanged to the backend through one pooled
``aiohttp.ClientSession``, and relays the answer back. It is served the way the s3proxy
is (:func:`nebulacore.web.serve`, asyncio's loop, no middleware, no logging), and takes
the same shortcuts the s3proxy takes where they are cheaper: bodies of up to 64 KiB either
way travel whole, larger ones stream. :mod:`bench.s3proxy` runs it beside the proxy and
nginx: what the proxy costs above it is Nebula's own code, the rest is aiohttp's.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from nebula.storage import free_internal_port
from nebulacore.config import Settings, load_settings
from nebulacore.web import serve
from tests.harness import Spawned, spawn, stop, wait_listening
from tests.services import environ_without

# Headers about this hop only; aiohttp frames its own.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "expect"}
)
# The answer's framing is aiohttp's to write again.
ANSWER_DROP = HOP_BY_HOP | {"content-length"}
WHOLE = 64 << 10  # bodies up to this size travel in one piece, as the s3proxy's do
PIECE = 1 << 20
SESSION = web.AppKey("passthrough.session", aiohttp.ClientSession)


def forwarded(headers: Mapping[str, str], drop: frozenset[str]) -> CIMultiDict[str]:
    kept: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        if name.lower() not in drop:
            kept.add(name, value)
    return kept


def passthrough_app(backend: str) -> web.Application:
    async def session(app: web.Application) -> AsyncIterator[None]:
        app[SESSION] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64),
            auto_decompress=False,
            skip_auto_headers=("Content-Type", "Accept", "Accept-Encoding", "User-Agent"),
            read_bufsize=PIECE,
        )
        yield
        await app[SESSION].close()

    async def relay(request: web.Request) -> web.StreamResponse:
        length = request.content_length
        data: object = None
        if request.body_exists:
            small = length is not None and length <= WHOLE
            data = await request.read() if small else request.content
        async with request.app[SESSION].request(
            request.method,
            URL(backend + request.raw_path, encoded=True),
            headers=forwarded(request.headers, HOP_BY_HOP),
            data=data,
            allow_redirects=False,
        ) as upstream:
            headers = forwarded(upstream.headers, ANSWER_DROP)
            size = upstream.content_length
            if request.method == "HEAD" or upstream.status in (204, 304):
                answer = web.Response(status=upstream.status, headers=headers)
                if size is not None:
                    answer.headers["Content-Length"] = str(size)
                return answer
            if size is not None and size <= WHOLE:
                body = await upstream.content.readexactly(size)
                return web.Response(status=upstream.status, headers=headers, body=body)
            response = web.StreamResponse(status=upstream.status, headers=headers)
            if size is not None:
                response.content_length = size
            await response.prepare(request)
            async for piece in upstream.content.iter_chunked(PIECE):
                await response.write(piece)
            await response.write_eof()
            return response

    app = web.Application(handler_args={"max_field_size": 65536, "read_bufsize": PIECE})
    app.cleanup_ctx.append(session)
    app.router.add_route("*", "/{path:.*}", relay)
    return app


@contextlib.contextmanager
def floor(root: Path, backend: str) -> Iterator[Spawned]:
    """The pass-through on a free port in front of ``backend``; its ``url`` is the endpoint."""
    port = free_internal_port()
    env = {**environ_without(), "NEBULA_DATA_DIR": str(root / "data")}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    argv = [sys.executable, "-m", "bench.passthrough", "--port", str(port), "--backend", backend]
    spawned = spawn("passthrough", argv, env, root / "passthrough.log", port=port)
    try:
        wait_listening(spawned, timeout=15)
        yield spawned
    finally:
        stop(spawned)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend", required=True, help="backend URL, e.g. http://127.0.0.1:8333")
    args = parser.parse_args(argv)
    settings: Settings = load_settings()
    serve(passthrough_app(args.backend.rstrip("/")), settings, args.port, "passthrough")
    return 0


if __name__ == "__main__":
    sys.exit(main())
