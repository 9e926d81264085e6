"""The allow-list with real addresses: a network namespace, a veth pair, the real services.

The namespace ``nebula-t`` holds the client end of a veth pair; the host end carries the
server's address. Both ends get one address in the tailnet range (100.64.77.0/24, inside
the default allow-list) and one in 198.18.77.0/24 (RFC 2544 benchmarking space, outside it).
Nothing is routed or forwarded: the traffic only crosses the veth pair on this machine.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.stacks import Seaweed, Service, start_service

NAMESPACE = "nebula-t"
HOST_LINK, NS_LINK = "nbt-host", "nbt-ns"
SERVER_IP = "100.64.77.1"  # host side, where the service binds
TAILNET_CLIENT = "100.64.77.2"  # in 100.64.0.0/10: allowed by default
OUTSIDE_CLIENT = "198.18.77.2"  # not in the allow-list
HOST_OUTSIDE_IP = "198.18.77.1"  # so replies to the outside client leave by the veth

# Runs inside the namespace: one GET from a chosen source address, prints the status.
CLIENT = """
import http.client, sys
source, host, port, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
conn = http.client.HTTPConnection(host, port, timeout=10, source_address=(source, 0))
conn.request("GET", path)
response = conn.getresponse()
print(response.status, response.read().decode(errors="replace")[:200])
"""


def ip(*args: str, namespace: str | None = None) -> subprocess.CompletedProcess[str]:
    prefix = ["ip", "netns", "exec", namespace] if namespace else []
    return subprocess.run([*prefix, "ip", *args], capture_output=True, text=True, check=False)


def must(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{result.args}: {result.stderr}"


def remove_leftovers() -> None:
    ip("netns", "del", NAMESPACE)  # also destroys the veth pair
    ip("link", "del", HOST_LINK)


@dataclass
class Veth:
    namespace: str

    def run_client(
        self, source: str, host: str, port: int, path: str
    ) -> subprocess.CompletedProcess[str]:
        argv = ["ip", "netns", "exec", self.namespace, sys.executable, "-c", CLIENT]
        return subprocess.run(
            [*argv, source, host, str(port), path],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def get(self, source: str, host: str, port: int, path: str) -> tuple[int, str]:
        result = self.run_client(source, host, port, path)
        assert result.returncode == 0, result.stderr
        status, _, body = result.stdout.strip().partition(" ")
        return int(status), body


@pytest.fixture
def veth() -> Iterator[Veth]:
    remove_leftovers()
    created = ip("netns", "add", NAMESPACE)
    if created.returncode != 0:
        pytest.skip(f"the kernel refuses network namespaces here: {created.stderr.strip()}")
    try:
        pair = ip("link", "add", HOST_LINK, "type", "veth", "peer", "name", NS_LINK)
        if pair.returncode != 0:
            pytest.skip(f"the kernel refuses a veth pair here: {pair.stderr.strip()}")
        must(ip("link", "set", NS_LINK, "netns", NAMESPACE))
        for address in (f"{SERVER_IP}/24", f"{HOST_OUTSIDE_IP}/24"):
            must(ip("addr", "add", address, "dev", HOST_LINK))
        must(ip("link", "set", HOST_LINK, "up"))
        for address in (f"{TAILNET_CLIENT}/24", f"{OUTSIDE_CLIENT}/24"):
            must(ip("addr", "add", address, "dev", NS_LINK, namespace=NAMESPACE))
        must(ip("link", "set", NS_LINK, "up", namespace=NAMESPACE))
        must(ip("link", "set", "lo", "up", namespace=NAMESPACE))
        yield Veth(NAMESPACE)
    finally:
        remove_leftovers()


@pytest.fixture(params=["s3proxy", "origin"])
def service_on_veth(
    request: pytest.FixtureRequest, veth: Veth, tmp_path: Path, seaweed: Seaweed
) -> Iterator[Service]:
    # Default allow-list: loopback and the tailnet ranges. The service binds the veth address.
    service = start_service(request.param, tmp_path, seaweed, host=SERVER_IP)
    yield service
    service.stop()


def test_tailnet_client_is_served_outside_client_refused_other_address_closed(
    veth: Veth, service_on_veth: Service
) -> None:
    port = service_on_veth.port
    metric = f"nebula_{service_on_veth.name}_requests_total"
    status, body = veth.get(TAILNET_CLIENT, SERVER_IP, port, "/metrics")
    assert status == 200 and metric in body

    status, body = veth.get(OUTSIDE_CLIENT, SERVER_IP, port, "/metrics")
    assert status == 403 and metric not in body

    # NEBULA_BIND=100.64.77.1: the same port on the host's other veth address is closed.
    result = veth.run_client(OUTSIDE_CLIENT, HOST_OUTSIDE_IP, port, "/metrics")
    assert result.returncode != 0 and "ConnectionRefused" in result.stderr

    service_on_veth.stop()
    refusals = [line for line in service_on_veth.log().splitlines() if "allow-list" in line]
    assert len(refusals) == 1
    assert f'"client": "{OUTSIDE_CLIENT}"' in refusals[0]
    assert '"path": "/metrics"' in refusals[0]
