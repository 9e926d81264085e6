"""A bare aiohttp answer, served as the origin is served: the per-request floor of aiohttp.

``python3 -m bench.hello --port P --workers N --bytes B`` answers every GET with ``B``
bytes from memory, in ``N`` processes on one port (:func:`nebulacore.web.serve_service`,
the origin's and s3proxy's own server, on uvloop as the origin is), no middleware:
a ``web.Application`` with one route. ``--low-level`` answers from the handler the server
calls first (:data:`nebulacore.web.FRONT`, as the origin's front does), without the
Application's router, middleware wrapping and signals: aiohttp at its leanest.
:mod:`bench.origin` runs both next to the origin and nginx: what the origin costs beyond
them is Nebula's, the rest is aiohttp's.
"""

from __future__ import annotations

import argparse
import sys

from aiohttp import web

from nebulacore.config import Settings, load_settings
from nebulacore.web import FRONT, ServerHandler, serve_service

CONTENT_TYPE = "application/vnd.apple.mpegurl"


def hello_app(size: int, low_level: bool = False) -> web.Application:
    body = b"x" * size

    async def hello(request: web.BaseRequest) -> web.Response:
        return web.Response(body=body, content_type=CONTENT_TYPE)

    def front(_app_handler: ServerHandler) -> ServerHandler:
        return hello

    app = web.Application()
    app.router.add_get("/{path:.*}", hello)
    if low_level:
        app[FRONT] = front
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--bytes", type=int, default=5000)
    parser.add_argument("--low-level", action="store_true", help="no router: the server's handler")
    args = parser.parse_args(argv)
    settings = load_settings()

    def build(_settings: Settings) -> web.Application:
        return hello_app(args.bytes, args.low_level)

    serve_service("hello", settings, args.port, args.workers, build, fast_loop=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
