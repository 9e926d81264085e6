"""The origin's front: ``GET``/``HEAD /hls/...`` answered without aiohttp's router.

Almost every request a player makes is for a ladder file, and on a small answer aiohttp's
own path (routing, its per-request middleware wrapping, the response signal) costs about
as much as the origin's work. The front, the handler the server calls first
(:data:`nebulacore.web.FRONT`), takes those requests straight to
:func:`origin.media.ladder_file` in one function: the allow-list's decision (cached per
peer) and the host name's, then :func:`origin.errors.measured_answers` (error answers and
one metrics observation), what the app's middlewares do on every other route. A request
either guard refuses goes to the app, whose guard refuses and logs it as on any route. A
request the front takes gets the ``/hls/`` route's match, as from the router, but of no
app (:func:`nebulacore.aiohttp_private.route_to`): the app's response signal is not sent.
The CORS headers it adds are in the answers already (:class:`origin.content.LadderHeaders`),
and added here to the error answers. Every other
request, and any ``/hls/`` path the router could read otherwise (percent-escapes, an
Expect header), goes to the app unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from aiohttp import hdrs, web

from nebulacore.aiohttp_private import route_to
from nebulacore.netguard import CLIENT_IP_KEY, AllowlistDecider, HostAllowList, forwarded_chain
from nebulacore.web import Front, ServerHandler
from origin.errors import Outer
from origin.media import ladder_file
from origin.state import Origin

PREFIX = "/hls/"
METHODS = frozenset({hdrs.METH_GET, hdrs.METH_HEAD})


def ladder_parts(request: web.BaseRequest) -> tuple[str, str] | None:
    """``(asset_id, path)`` of a request the front takes (what the route
    ``/hls/{asset_id}/{path:.+}`` would match), else None."""
    raw = request.rel_url.raw_path
    if (
        not raw.startswith(PREFIX)
        or request.method not in METHODS
        or "%" in raw
        or hdrs.EXPECT in request.headers
    ):
        return None
    asset_id, _, path = raw[len(PREFIX) :].partition("/")
    return (asset_id, path) if asset_id and path else None


def hls_front(
    origin: Origin,
    route: web.AbstractRoute,
    decide: AllowlistDecider,
    hosts: HostAllowList,
    outer: Outer,
    cors: Mapping[str, str],
) -> Front:
    """``route``: the app's ``/hls/{asset_id}/{path}`` route, whose match the front's
    requests get; ``decide``: :func:`nebulacore.netguard.allowlist_decision`; ``hosts``:
    the names the app's host guard answers to; ``outer``: the layer the app runs inside its
    guards (:func:`origin.errors.measured_answers`)."""

    async def answer(base: web.BaseRequest) -> web.StreamResponse:
        request = cast(web.Request, base)
        match = request.match_info
        return await ladder_file(request, origin, match["asset_id"], match["path"])

    def front(app_handler: ServerHandler) -> ServerHandler:
        async def handle(base: web.BaseRequest) -> web.StreamResponse:
            parts = ladder_parts(base)
            if parts is None:
                return await app_handler(base)
            client, allowed = decide(base.remote, forwarded_chain(base.headers))
            if not allowed or not hosts.allows(base.headers.get(hdrs.HOST)):
                return await app_handler(base)  # the app's guards refuse and log it
            request = cast(web.Request, base)  # the app's request factory makes Requests
            asset_id, path = parts
            route_to(request, route, {"asset_id": asset_id, "path": path})
            request[CLIENT_IP_KEY] = str(client)
            response = await outer(request, answer)
            if response.status >= 400 and not response.prepared:
                response.headers.update(cors)  # an error answer (the files' have them)
            return response

        return handle

    return front
