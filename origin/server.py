"""The origin aiohttp application."""

from __future__ import annotations

from aiohttp import web

from nebula.config import Settings
from nebula.netguard import allowlist_middleware
from nebula.ops import install_ops
from nebula.web import serve


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[allowlist_middleware(settings)])
    install_ops(app, "origin", {})
    return app


def run(settings: Settings) -> None:
    serve(create_app(settings), settings, settings.origin_port, "origin")
