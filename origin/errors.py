"""One way a refusal becomes an answer: handlers raise, :func:`measured_answers` answers.

Every expected failure has its exception and its status here; none is logged with a
traceback (a bad token or a bad name is the viewer's mistake, not the origin's; a viewer
hanging up mid-answer is routine and logged at debug).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import cast

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from nebulacore.ops import Metrics, failed_status
from nebulacore.web import ServerHandler
from origin.backend import BackendDown, Missing
from origin.ids import BadName
from origin.signing import Refused

log = logging.getLogger(__name__)

RETRY_AFTER_DOWN = "5"
# What the access log shows for a request whose viewer hung up (nginx's "client closed").
HUNG_UP = 499
Outer = Callable[[web.BaseRequest, ServerHandler], Awaitable[web.StreamResponse]]


class CatalogDown(Exception):
    """The catalog could not be read (answered 503)."""


def plain(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=text + "\n", headers=headers)


def error_answer(request: web.BaseRequest, exc: Exception) -> web.StreamResponse | None:
    """The answer to a handler's expected failure ``exc``; None: not one (re-raise it)."""
    if isinstance(exc, BadName):
        return plain(400, str(exc))
    if isinstance(exc, Refused):
        return plain(403, str(exc))
    if isinstance(exc, Missing):
        return plain(404, str(exc))
    if isinstance(exc, BackendDown):
        log.warning("backend down serving %s: %s", request.path, exc)
        return plain(503, "storage unavailable", {hdrs.RETRY_AFTER: RETRY_AFTER_DOWN})
    if isinstance(exc, CatalogDown):
        log.warning("catalog unavailable serving %s: %s", request.path, exc)
        return plain(503, "catalog unavailable", {hdrs.RETRY_AFTER: RETRY_AFTER_DOWN})
    # A reset, or "Connection lost" while waiting to write.
    if isinstance(exc, ConnectionError) and viewer_gone(request):
        # A player that seeks or switches quality drops the request it no longer needs.
        log.debug("viewer hung up during %s: %s", request.path, exc)
        # Never sent: aiohttp finds the connection closed and drops it quietly.
        return web.Response(status=HUNG_UP)
    return None


def measured_answers(metrics: Metrics) -> Outer:
    """The origin's layer right inside the allow-list, in one function: error answers
    (:func:`error_answer`) and one :meth:`Metrics.observe` per request, as the
    metrics middleware outside ``answer_errors`` would count it (the status and body
    bytes of the answer made of an error; :func:`nebulacore.ops.failed_status` for
    anything else). One layer instead of two."""
    observe = metrics.observe

    async def outer(request: web.BaseRequest, handler: ServerHandler) -> web.StreamResponse:
        started = time.monotonic()
        try:
            response = await handler(request)
        except Exception as exc:
            answer = None if isinstance(exc, web.HTTPException) else error_answer(request, exc)
            if answer is None:
                observe(request, failed_status(request, exc), started, None)
                raise
            response = answer
        except asyncio.CancelledError:
            log.debug("cancelled while serving %s", request.path)
            observe(request, 500, started, None)
            raise
        observe(request, response.status, started, response)
        return response

    return outer


def measured_answers_middleware(metrics: Metrics) -> Middleware:
    """:func:`measured_answers` as the app's middleware, for the routes past the front."""
    outer = measured_answers(metrics)

    @web.middleware
    async def measure_and_answer(request: web.Request, handler: Handler) -> web.StreamResponse:
        return await outer(request, cast(ServerHandler, handler))

    return measure_and_answer


def viewer_gone(request: web.BaseRequest) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()
