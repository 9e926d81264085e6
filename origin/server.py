"""The origin aiohttp application."""

from __future__ import annotations

from aiohttp import web

from nebula.config import Settings
from nebula.netguard import allowlist_middleware
from nebula.web import serve


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[allowlist_middleware(settings)])
    app.router.add_get("/healthz", healthz)
    return app


def run(settings: Settings) -> None:
    serve(create_app(settings), settings, settings.origin_port, "origin")
