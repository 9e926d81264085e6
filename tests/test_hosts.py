"""The host names a listener answers to (DNS rebinding): unit tests of the allow-list."""

from __future__ import annotations

import pytest

from nebulacore.config import load_settings
from nebulacore.netguard import HostAllowList, host_name, origin_hosts, s3proxy_hosts


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("Media.Example:8080", "media.example"),
        ("media.example.", "media.example"),
        ("127.0.0.1:9000", "127.0.0.1"),
        ("[::1]:8080", "::1"),
        ("[fd7a:115c:a1e0::1]", "fd7a:115c:a1e0::1"),
        ("::1", "::1"),  # a bare IPv6 address: its last group is not a port
        ("evil.example:", "evil.example:"),
    ],
)
def test_host_name_drops_port_brackets_case_and_the_final_dot(value: str, name: str) -> None:
    assert host_name(value) == name


def test_the_origin_answers_its_names_addresses_and_localhost_only() -> None:
    hosts = origin_hosts(
        load_settings(
            {
                "NEBULA_ORIGIN_HOSTS": "nebula.lan, TV.example.",
                "NEBULA_ORIGIN_PUBLIC_URL": "https://media.example/",
                "NEBULA_BIND": "box.lan",
            }
        )
    )
    for host in ("nebula.lan:8080", "tv.example", "media.example", "box.lan", "localhost:1"):
        assert hosts.allows(host), host
    for address in ("127.0.0.1:8080", "100.64.3.4", "[::1]:8080", "172.18.0.5:8080"):
        assert hosts.allows(address), address
    assert hosts.allows(None)  # no header at all: no browser sends that
    for host in ("evil.example", "nebula.lan.evil.example", "x.nebula.lan", "", "a" * 400):
        assert not hosts.allows(host), host
    assert "NEBULA_ORIGIN_HOSTS" in hosts.refusal("evil.example")


def test_the_s3_endpoint_answers_its_virtual_host_domain_and_buckets_under_it() -> None:
    hosts = s3proxy_hosts(load_settings({"NEBULA_S3_DOMAIN": "s3.nebula.test"}))
    assert hosts.allows("s3.nebula.test") and hosts.allows("media.s3.nebula.test:9000")
    assert not hosts.allows("evils3.nebula.test") and not hosts.allows("nebula.test")
    assert "NEBULA_S3PROXY_HOSTS" in hosts.refusal("x")


def test_a_star_answers_any_name() -> None:
    assert HostAllowList(["*"], [], "NEBULA_ORIGIN_HOSTS").allows("anything.example")
