"""A bare aiohttp answer, served as the origin is served: the per-request floor of aiohttp.

``python3 -m bench.hello --port P --workers N --bytes B`` answers every GET with ``B``
bytes from memory, in ``N`` processes on one port (:func:`nebulacore.web.serve_service`,
the origin's and s3proxy's own server), no middleware. :mod:`bench.origin` runs it next to
the origin and nginx: what the origin costs beyond it is Nebula's, the rest is aiohttp's.
"""

from __future__ import annotations

import argparse
import sys

from aiohttp import web

from nebulacore.config import Settings, load_settings
from nebulacore.web import serve_service


def hello_app(size: int) -> web.Application:
    body = b"x" * size

    async def hello(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/vnd.apple.mpegurl")

    app = web.Application()
    app.router.add_get("/{path:.*}", hello)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--bytes", type=int, default=5000)
    args = parser.parse_args(argv)
    settings = load_settings()

    def build(_settings: Settings) -> web.Application:
        return hello_app(args.bytes)

    serve_service("hello", settings, args.port, args.workers, build)
    return 0


if __name__ == "__main__":
    sys.exit(main())
