"""One way a refusal becomes an answer: handlers raise, :func:`answer_errors` answers.

Every expected failure has its exception and its status here; none is logged with a
traceback (a bad token or a bad name is the viewer's mistake, not the origin's; a viewer
hanging up mid-answer is routine and logged at debug).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

from origin.backend import BackendDown, Missing
from origin.ids import BadName
from origin.signing import Refused

log = logging.getLogger(__name__)

RETRY_AFTER_DOWN = "5"
# What the access log shows for a request whose viewer hung up (nginx's "client closed").
HUNG_UP = 499
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class CatalogDown(Exception):
    """The catalog could not be read (answered 503)."""


def plain(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=text + "\n", headers=headers)


@web.middleware
async def answer_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BadName as exc:
        return plain(400, str(exc))
    except Refused as exc:
        return plain(403, str(exc))
    except Missing as exc:
        return plain(404, str(exc))
    except BackendDown as exc:
        log.warning("backend down serving %s: %s", request.path, exc)
        return plain(503, "storage unavailable", {hdrs.RETRY_AFTER: RETRY_AFTER_DOWN})
    except CatalogDown as exc:
        log.warning("catalog unavailable serving %s: %s", request.path, exc)
        return plain(503, "catalog unavailable", {hdrs.RETRY_AFTER: RETRY_AFTER_DOWN})
    except ConnectionError as exc:  # reset, or "Connection lost" while waiting to write
        if not viewer_gone(request):
            raise
        # A player that seeks or switches quality drops the request it no longer needs.
        log.debug("viewer hung up during %s: %s", request.path, exc)
        # Never sent: aiohttp finds the connection closed and drops it quietly.
        return web.Response(status=HUNG_UP)
    except asyncio.CancelledError:
        log.debug("cancelled while serving %s", request.path)
        raise


def viewer_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()
