"""The allow-list every listener enforces before anything else, the client address, and
the host names a listener answers to.

``X-Forwarded-For`` is believed only when the peer itself is a trusted proxy, and then it
is walked from the right across all its header lines, skipping trusted hops.

A page on another site can reach a listener on this machine or the tailnet through DNS
rebinding (its own name resolved to 127.0.0.1 or 100.x): the browser then believes the
listener is that site and lets the page read every answer. Such a request always carries
the page's own name in ``Host``, so each listener answers only its own names
(:class:`HostAllowList`): the configured ones, its public URL's, ``localhost``, and any
IP address literal (a page whose origin is an address has no site of its own to hide
behind: it is that listener).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware
from multidict import CIMultiDictProxy

from nebulacore.config import IPNetwork, Settings

log = logging.getLogger(__name__)

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
AllowlistDecider = Callable[[str | None, str | None], tuple[str | None, bool]]


def allowlist_decision(settings: Settings) -> AllowlistDecider:
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


# ----- host names ------------------------------------------------------------------------

ANY_HOST = "*"
LOOPBACK_NAMES = ("localhost",)
# Longest Host value looked at (a DNS name is at most 253 characters, plus a port).
HOST_MAX = 300


def host_name(value: str) -> str:
    """The name (or address) of a ``Host`` value: lowercase, without port, brackets or a
    final dot."""
    value = value.strip().lower()
    if value.startswith("["):  # an IPv6 literal, maybe with a port
        return value[1:].partition("]")[0]
    name, colon, port = value.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        value = name
    return value.rstrip(".")


def _is_address(name: str) -> bool:
    return _parse_ip(name) is not None


class HostAllowList:
    """The ``Host`` names one listener answers to; ``setting`` names the variable that
    adds more (said in every refusal)."""

    def __init__(self, names: Iterable[str], domains: Iterable[str], setting: str) -> None:
        wanted = {host_name(n) for n in names if n}
        self.any_name = ANY_HOST in wanted
        self.names = frozenset(wanted - {ANY_HOST})
        self.domains = tuple(host_name(d) for d in domains if d)  # and their subdomains
        self.setting = setting

    @functools.lru_cache(maxsize=DECISIONS_CACHED)  # noqa: B019 (one per listener)
    def allows(self, host: str | None) -> bool:
        """Whether a request with this ``Host`` header is for this listener. None (no
        header: no browser sends that) is allowed."""
        if host is None or self.any_name:
            return True
        if len(host) > HOST_MAX:
            return False
        name = host_name(host)
        return (
            name in self.names
            or _is_address(name)
            or any(name == d or name.endswith("." + d) for d in self.domains)
        )

    def refusal(self, host: str) -> str:
        shown = host[:HOST_MAX].encode("ascii", "backslashreplace").decode()
        return (
            f"the host name {shown!r} is not one this service answers to (a page on "
            f"another site reaching it by DNS rebinding); add it to {self.setting}"
        )


def _url_host(url: str | None) -> str | None:
    return urlsplit(url).hostname if url else None


def origin_hosts(settings: Settings) -> HostAllowList:
    """The origin's names: NEBULA_ORIGIN_HOSTS, its public URL's, its bind address."""
    names = [
        *settings.origin_hosts,
        _url_host(settings.origin_public_url),
        settings.bind,
        *LOOPBACK_NAMES,
    ]
    return HostAllowList((n for n in names if n), (), "NEBULA_ORIGIN_HOSTS")


def s3proxy_hosts(settings: Settings) -> HostAllowList:
    """The S3 endpoint's names: NEBULA_S3PROXY_HOSTS, its public URL's, its bind address,
    and the virtual-host domain NEBULA_S3_DOMAIN with every bucket under it."""
    names = [
        *settings.s3proxy_hosts,
        _url_host(settings.s3proxy_public_url),
        settings.bind,
        *LOOPBACK_NAMES,
    ]
    domains = [settings.s3_domain] if settings.s3_domain else []
    return HostAllowList((n for n in names if n), domains, "NEBULA_S3PROXY_HOSTS")


def host_middleware(
    hosts: HostAllowList, refuse: Callable[[web.Request, str], web.StreamResponse] | None = None
) -> Middleware:
    """aiohttp middleware: 403 (``refuse`` builds the body from the reason, e.g. S3 XML)
    for a request to a name that is not the listener's. Goes right after the allow-list."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get(hdrs.HOST)
        if host is None or hosts.allows(host):
            return await handler(request)
        reason = hosts.refusal(host)
        log.warning(
            "refused a request for another host name",
            extra={"host": host[:HOST_MAX], "peer": request.remote, "path": request.path},
        )
        if refuse is not None:
            return refuse(request, reason)
        return web.Response(status=403, text=f"403 Forbidden: {reason}\n")

    return guard
