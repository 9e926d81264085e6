"""The allow-list: unit tests of the client address, a tiny app, and the real services."""

from __future__ import annotations

import importlib
import ipaddress
import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from nebulacore.config import Settings, load_settings
from nebulacore.netguard import allowlist_middleware, client_address, guard_is_first, is_allowed
from nebulacore.ops import install_ops
from tests.deploy.apps import serving
from tests.stacks import Seaweed, Service, start_service

REFUSAL = "refused client outside the allow-list; to allow it, add it to NEBULA_ALLOW_CIDRS"


def nets(*cidrs: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(c) for c in cidrs]


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


# ----- client_address: X-Forwarded-For only from trusted proxies ----------------------


def test_the_peer_is_the_client_without_forwarded_for() -> None:
    assert client_address("100.101.1.2", None, nets("10.0.0.0/8")) == ip("100.101.1.2")


def test_forwarded_for_from_an_untrusted_peer_is_ignored() -> None:
    # A client outside the tailnet cannot claim a tailnet address by sending the header.
    assert client_address("203.0.113.7", "100.64.1.1", nets("10.0.0.0/8")) == ip("203.0.113.7")


def test_a_trusted_proxy_passes_on_the_client_address() -> None:
    assert client_address("10.0.0.5", "100.64.1.1", nets("10.0.0.0/8")) == ip("100.64.1.1")


def test_the_right_most_untrusted_hop_wins_over_spoofed_left_hops() -> None:
    # The client wrote "100.64.9.9" itself; the trusted proxy appended the real peer.
    chain = "100.64.9.9, 203.0.113.7, 10.0.0.6"
    assert client_address("10.0.0.5", chain, nets("10.0.0.0/8")) == ip("203.0.113.7")


def test_a_chain_of_trusted_proxies_ends_at_the_left_most_hop() -> None:
    assert client_address("10.0.0.5", "10.0.0.9, 10.0.0.6", nets("10.0.0.0/8")) == ip("10.0.0.9")


def test_garbage_in_forwarded_for_from_a_trusted_proxy_means_no_client() -> None:
    assert client_address("10.0.0.5", "100.64.1.1, not-an-ip", nets("10.0.0.0/8")) is None


def test_ipv4_mapped_and_scoped_addresses_are_normalised() -> None:
    assert client_address("::ffff:100.64.3.4", None, []) == ip("100.64.3.4")
    assert client_address("fe80::1%eth0", None, []) == ip("fe80::1")


def test_the_default_allow_list_is_loopback_and_the_tailnet() -> None:
    allow = load_settings({}).allow_cidrs
    for allowed in ("127.0.0.1", "::1", "100.64.0.1", "100.127.255.254", "fd7a:115c:a1e0::42"):
        assert is_allowed(ip(allowed), allow), allowed
    for refused in ("192.168.1.10", "100.128.0.1", "10.0.0.1", "fd7a:115c:a1e1::1", "8.8.8.8"):
        assert not is_allowed(ip(refused), allow), refused
    assert not is_allowed(None, allow)


# ----- a tiny app with the same middleware, over a real socket -------------------------


def guarded_app(**settings: object) -> web.Application:
    app = web.Application(middlewares=[allowlist_middleware(load_settings({}, **settings))])
    install_ops(app, "tiny", {})

    async def secret(request: web.Request) -> web.Response:
        return web.Response(text="inside")

    app.router.add_get("/inside", secret)
    return app


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_loopback_is_served_by_default() -> None:
    with serving(guarded_app()) as base:
        assert fetch(base + "/inside") == (200, "inside")


def test_a_client_outside_the_allow_list_gets_403_and_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = guarded_app(allow_cidrs="100.64.0.0/10")
    with caplog.at_level(logging.WARNING, "nebulacore.netguard"), serving(app) as base:
        # Every route, including ops and unknown paths: the guard runs before routing.
        for path in ("/inside", "/healthz", "/metrics", "/no-such-path"):
            status, body = fetch(base + path)
            assert status == 403 and "inside" not in body
            # The answer says which setting lets the network in; so does the log line.
            assert "(127.0.0.1) is not allowed" in body and "NEBULA_ALLOW_CIDRS" in body
    refusals = [r for r in caplog.records if r.getMessage() == REFUSAL]
    assert len(refusals) == 4
    assert refusals[0].client == "127.0.0.1" and refusals[0].path == "/inside"  # type: ignore[attr-defined]


def test_a_spoofed_forwarded_for_does_not_get_past_the_guard() -> None:
    app = guarded_app(allow_cidrs="100.64.0.0/10")
    with serving(app) as base:
        assert fetch(base + "/inside", {"X-Forwarded-For": "100.64.1.1"})[0] == 403


def test_forwarded_for_from_a_trusted_proxy_decides() -> None:
    app = guarded_app(allow_cidrs="100.64.0.0/10", trusted_proxies="127.0.0.0/8")
    with serving(app) as base:
        assert fetch(base + "/inside", {"X-Forwarded-For": "100.64.1.1"}) == (200, "inside")
        assert fetch(base + "/inside", {"X-Forwarded-For": "203.0.113.9"})[0] == 403
        assert fetch(base + "/inside")[0] == 403  # the proxy itself is not a tailnet client


def test_a_custom_refusal_body_is_used() -> None:
    def s3_refusal(request: web.Request) -> web.Response:
        return web.Response(status=403, text="<Error><Code>AccessDenied</Code></Error>")

    settings = load_settings({}, allow_cidrs="100.64.0.0/10")
    app = web.Application(middlewares=[allowlist_middleware(settings, refuse=s3_refusal)])
    with serving(app) as base:
        assert fetch(base + "/bucket/key") == (403, "<Error><Code>AccessDenied</Code></Error>")


def test_guard_is_first_tells_whether_the_allow_list_runs_before_anything() -> None:
    assert guard_is_first(guarded_app())
    app = web.Application()
    install_ops(app, "tiny", {})
    app.middlewares.append(allowlist_middleware(load_settings({})))
    assert not guard_is_first(app)


# ----- the real services, as subprocesses ---------------------------------------------


@pytest.mark.parametrize("module", ["s3proxy.server", "origin.server"])
def test_the_real_apps_install_the_allow_list_first(
    module: str, make_settings: Callable[..., Settings]
) -> None:
    app = importlib.import_module(module).create_app(make_settings())
    assert guard_is_first(app), [m.__name__ for m in app.middlewares]


@pytest.fixture(params=["s3proxy", "origin"])
def tailnet_service(
    request: pytest.FixtureRequest, tmp_path: Path, seaweed: Seaweed
) -> Iterator[Service]:
    """A real service allowing only the tailnet, behind a trusted proxy on loopback."""
    service = start_service(
        request.param,
        tmp_path,
        seaweed,
        NEBULA_ALLOW_CIDRS="100.64.0.0/10",
        NEBULA_TRUSTED_PROXIES="127.0.0.0/8",
    )
    yield service
    service.stop()


def test_real_services_refuse_every_path_before_anything_else(tailnet_service: Service) -> None:
    # Loopback itself is not allowed here; nor is what a proxy forwards from outside.
    for path in ("/healthz", "/metrics", "/media/video.mp4", "/hls/x/master.m3u8"):
        assert fetch(tailnet_service.url + path)[0] == 403, path
    outside = {"X-Forwarded-For": "203.0.113.9"}
    assert fetch(tailnet_service.url + "/metrics", outside)[0] == 403
    # A tailnet client forwarded by the trusted proxy is served.
    status, text = fetch(tailnet_service.url + "/metrics", {"X-Forwarded-For": "100.64.1.1"})
    assert status == 200 and f"nebula_{tailnet_service.name}_requests_total" in text
    tailnet_service.stop()
    log = tailnet_service.log()
    assert log.count(REFUSAL) == 5
    assert log.count('"client": "127.0.0.1"') == 4
    assert log.count('"client": "203.0.113.9"') == 1
