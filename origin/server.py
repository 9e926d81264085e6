"""The origin aiohttp application: HLS ladders, original files, the watch page."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from functools import partial

from aiohttp import web

from catalog.metrics import read_gauges
from nebulacore.config import Settings
from nebulacore.netguard import (
    allowlist_decision,
    allowlist_middleware,
    host_middleware,
    origin_hosts,
)
from nebulacore.ops import GaugeSource, blocking_check, blocking_gauges, install_ops
from nebulacore.web import FRONT, same_settings, serve_service
from origin import media, pages
from origin.cors import cors_headers, install_cors
from origin.errors import measured_answers, measured_answers_middleware
from origin.front import PREFIX, hls_front
from origin.state import ORIGIN, Origin

# Makes a gauge source for /metrics from a worker's settings, in that worker. The origin
# knows storage and the catalog only: the shell passes the queue's (``nebula origin``).
GaugeMaker = Callable[[Settings], GaugeSource]


def create_app(settings: Settings, more_gauges: Sequence[GaugeMaker] = ()) -> web.Application:
    hosts = origin_hosts(settings)
    app = web.Application(middlewares=[allowlist_middleware(settings), host_middleware(hosts)])
    origin = Origin.build(settings)
    app[ORIGIN] = origin
    metrics = install_ops(
        app,
        "origin",
        {
            "backend": lambda: origin.backend.ping(origin.bucket),
            "catalog": blocking_check(origin.assets.catalog.ping),
        },
        gauges=[
            blocking_gauges(partial(read_gauges, origin.assets.catalog)),
            *(make(settings) for make in more_gauges),
        ],
        middleware=False,  # the origin's own layer observes (measured_answers)
    )
    # Error answers and metrics in one layer inside the allow-list; the front runs the
    # same function for /hls/ (origin.front).
    app.middlewares.append(measured_answers_middleware(metrics))

    def cache_gauges() -> dict[str, float]:
        return {
            **origin.cache.gauges(),
            **origin.memory.gauges(),
            **origin.revocations.gauges(),
        }

    # Each worker has its own cache: /metrics sums them over the workers.
    metrics.add_worker_gauges(cache_gauges)
    install_cors(app, settings.cors_allow_origin, (PREFIX, "/files/"))
    hls_route = app.router.add_get(PREFIX + "{asset_id}/{path:.+}", media.hls)
    app[FRONT] = hls_front(
        origin,
        hls_route,
        allowlist_decision(settings),
        hosts,
        measured_answers(metrics),
        cors_headers(settings.cors_allow_origin),
    )
    app.router.add_get("/files/{asset_id}", media.original)
    app.router.add_get("/", pages.index)
    app.router.add_get("/watch/{asset_id}", pages.watch)
    app.router.add_get("/api/assets", pages.api_assets)
    app.router.add_get("/api/assets/{asset_id}", pages.api_asset)
    app.router.add_get("/static/{name}", pages.static_file)
    app.router.add_get("/favicon.ico", _no_icon)
    app.cleanup_ctx.append(_lifetime)
    return app


async def _no_icon(request: web.Request) -> web.Response:
    return web.Response(status=204, headers={"Cache-Control": "public, max-age=86400"})


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    origin = app[ORIGIN]
    origin.cache.reset()
    await origin.backend.start()
    revocations = asyncio.create_task(origin.revocations.run(), name="revocations")
    yield
    revocations.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await revocations
    await origin.backend.close()
    origin.assets.dispose()


def worker_settings(settings: Settings, index: int, count: int) -> Settings:
    """Each worker has its own cache folder and an equal share of the cache cap (so the
    cap holds in total)."""
    cap = settings.origin_cache_max_mb
    share = max(1, cap // count) if cap else 0
    return settings.model_copy(
        update={
            "origin_cache_dir": settings.cache_dir / f"worker-{index}",
            "origin_cache_max_mb": share,
        }
    )


def run(settings: Settings, more_gauges: Sequence[GaugeMaker] = ()) -> None:
    """Serve in ``origin_workers`` processes (:func:`nebulacore.web.serve_service`),
    /metrics with ``more_gauges`` besides the origin's own."""
    count = settings.origin_workers
    per_worker = worker_settings if count > 1 else same_settings
    port = settings.origin_port
    build = partial(create_app, more_gauges=more_gauges)
    # uvloop: less CPU per small answer, the same per segment (docs/benchmarks.md#origin).
    serve_service("origin", settings, port, count, build, per_worker, fast_loop=True)
