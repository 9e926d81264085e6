"""Running an aiohttp app on the configured address, shared by s3proxy and origin."""

from __future__ import annotations

import logging

from aiohttp import web

from nebulacore.config import Settings

log = logging.getLogger(__name__)


def serve(
    app: web.Application, settings: Settings, port: int, name: str, reuse_port: bool = False
) -> None:
    """Serve until SIGINT/SIGTERM; aiohttp's runner handles both signals gracefully.

    aiohttp has no separate header timeout: its keep-alive timer, armed when a connection
    opens and after each answer, closes a connection on which no complete request head
    arrived in time, so ``header_timeout_seconds`` is that timer (slowloris clients that
    dribble a head are cut by it; idle kept-alive connections close after it too).
    """
    log.info("%s listening on %s:%d", name, settings.bind, port)
    web.run_app(
        app,
        host=settings.bind,
        port=port,
        print=None,
        access_log=None,
        shutdown_timeout=5.0,
        keepalive_timeout=settings.header_timeout_seconds,
        handle_signals=True,
        reuse_port=reuse_port or None,
    )
