"""The allow-list every listener enforces before anything else, and the client address.

``X-Forwarded-For`` is believed only when the peer itself is a trusted proxy, and then it
is walked from the right across all its header lines, skipping trusted hops.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware
from multidict import CIMultiDictProxy

from nebulacore.config import IPNetwork, Settings

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Handlers read the client address the guard decided on: request[CLIENT_IP_KEY].
CLIENT_IP_KEY = web.RequestKey("nebula.client_ip", str)
ALLOWLIST_MARK = "nebula_allowlist"
DECISIONS_CACHED = 4096
# The one setting that lets a refused network in: every refusal names it, the client's
# answer and the operator's log line.
ALLOW_SETTING = "NEBULA_ALLOW_CIDRS"
REFUSAL_LOG = f"refused client outside the allow-list; to allow it, add it to {ALLOW_SETTING}"


def refusal_text(client: str) -> str:
    """What a refused client reads (the operator's fix included: the client may be them)."""
    return f"your network ({client}) is not allowed; the operator can add it to {ALLOW_SETTING}"


def _parse_ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _within(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: Sequence[IPNetwork]
) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: Sequence[IPNetwork]
) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The real client: the peer, or the right-most untrusted X-Forwarded-For hop."""
    address = _parse_ip(peer)
    if address is None or not forwarded_for or not _within(address, trusted):
        return address
    for hop in reversed(forwarded_for.split(",")):
        hop_address = _parse_ip(hop)
        if hop_address is None:
            return None
        if not _within(hop_address, trusted):
            return hop_address
        address = hop_address
    return address


def forwarded_chain(headers: CIMultiDictProxy[str]) -> str | None:
    """Every ``X-Forwarded-For`` line as one chain, in order: a client that sends its own
    line first must not have it read as the proxy's (RFC 9110 5.3: repeated lines are one
    comma-separated list)."""
    lines = headers.getall("X-Forwarded-For", [])
    return ",".join(lines) if lines else None


def is_allowed(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None, allow: Sequence[IPNetwork]
) -> bool:
    return address is not None and _within(address, allow)


def allowlist_middleware(
    settings: Settings, refuse: Callable[[web.Request], web.StreamResponse] | None = None
) -> Middleware:
    """aiohttp middleware: 403 (``refuse`` builds the body, e.g. S3 XML) for other networks."""

    decide = allowlist_decision(settings)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        client, allowed = decide(request.remote, forwarded_chain(request.headers))
        if not allowed:
            # The refusal names the address it refused (``refuse`` reads it here too).
            request[CLIENT_IP_KEY] = client or str(request.remote)
            # One line per refusal, so a scan from outside the tailnet is visible in the log.
            log.warning(
                REFUSAL_LOG,
                extra={
                    "client": request[CLIENT_IP_KEY],
                    "peer": request.remote,
                    "method": request.method,
                    "path": request.path,
                },
            )
            if refuse is not None:
                return refuse(request)
            refused = refusal_text(request[CLIENT_IP_KEY])
            return web.Response(status=403, text=f"403 Forbidden: {refused}\n")
        request[CLIENT_IP_KEY] = str(client)
        return await handler(request)

    setattr(guard, ALLOWLIST_MARK, True)
    return guard


def guard_is_first(app: web.Application) -> bool:
    """True when the allow-list is the app's first middleware, so it runs before anything."""
    return bool(app.middlewares) and getattr(app.middlewares[0], ALLOWLIST_MARK, False)


# (peer, forwarded chain) -> (the client address, whether it is allowed)
Decision = Callable[[str | None, str | None], tuple[str | None, bool]]


def allowlist_decision(settings: Settings) -> Decision:
    """The allow-list's decision, for a front that answers past the app's middlewares
    (the origin's): call it with ``request.remote`` and :func:`forwarded_chain`."""

    @functools.lru_cache(maxsize=DECISIONS_CACHED)
    def decide(peer: str | None, chain: str | None) -> tuple[str | None, bool]:
        # The same few peers ask again and again: parsing addresses and walking networks
        # once per peer (and forwarded chain), not per request, keeps small answers cheap.
        address = client_address(peer, chain, settings.trusted_proxies)
        return (None if address is None else str(address)), is_allowed(
            address, settings.allow_cidrs
        )

    return decide
