"""CORS for browser players on other origins: headers on every answer, preflight answered."""

from __future__ import annotations

from aiohttp import hdrs, web

ALLOWED_METHODS = "GET, HEAD, OPTIONS"
ALLOWED_HEADERS = "Range, If-Range, If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since"
EXPOSED_HEADERS = "Content-Length, Content-Range, Accept-Ranges, ETag, Last-Modified, Retry-After"
PREFLIGHT_MAX_AGE = "86400"


def cors_headers(allow_origin: str) -> dict[str, str]:
    """What every answer under the CORS prefixes carries (preflights aside)."""
    headers: dict[str, str] = {hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: allow_origin}
    if allow_origin != "*":
        headers[hdrs.VARY] = "Origin"
    headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = EXPOSED_HEADERS
    return headers


def install_cors(app: web.Application, allow_origin: str, prefixes: tuple[str, ...]) -> None:
    """Answer OPTIONS under ``prefixes`` and add the CORS headers to every response there."""

    def wanted(request: web.BaseRequest) -> bool:
        return request.path.startswith(prefixes)

    added = cors_headers(allow_origin)

    async def add_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
        if wanted(request):
            response.headers.update(added)  # built once: this runs on every answer

    async def preflight(request: web.Request) -> web.Response:
        return web.Response(
            status=204,
            headers={
                hdrs.ACCESS_CONTROL_ALLOW_METHODS: ALLOWED_METHODS,
                hdrs.ACCESS_CONTROL_ALLOW_HEADERS: ALLOWED_HEADERS,
                hdrs.ACCESS_CONTROL_MAX_AGE: PREFLIGHT_MAX_AGE,
            },
        )

    app.on_response_prepare.append(add_headers)
    for prefix in prefixes:
        app.router.add_route(hdrs.METH_OPTIONS, prefix + "{tail:.*}", preflight)
