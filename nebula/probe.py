"""``python3 -m nebula.probe s3proxy|origin|edge|worker``: a container's health check.

Docker runs a health check every 15-30 s in every Nebula container; the full CLI
(pydantic, SQLAlchemy, botocore, aiohttp) costs a second of CPU to import each time.
This probe imports the standard library alone for the web services (one GET of
/healthz on the container's own port) and the catalog alone for the worker (its
heartbeat). It reads the same NEBULA_* variables as the services, with the same defaults
(a test holds the two equal). Exit 0 healthy, 1 not, with one line saying why.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from catalog import Worker
    from nebulacore.config import Settings

TIMEOUT_SECONDS = 5
# The defaults of nebulacore.config.Settings (tests/test_cli_day.py keeps them equal).
DEFAULTS = {"bind": "127.0.0.1", "s3proxy_port": "9000", "origin_port": "8080"}
SERVICES = ("s3proxy", "origin", "edge", "worker")


class Unhealthy(Exception):
    """The service does not answer as a healthy one does; the message says how."""


class NoAnswer(Unhealthy):
    """Nothing answered at all (refused, timed out, no route)."""

    def __init__(self, url: str, reason: object) -> None:
        super().__init__(f"{url}: {reason}")
        self.reason = reason


def setting(env: Mapping[str, str], name: str) -> str:
    return env.get(f"NEBULA_{name.upper()}") or DEFAULTS[name]


def host_for(bind: str) -> str:
    """nebulacore.config.host_for_url without pydantic (a test holds the two equal)."""
    if bind in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{bind}]" if ":" in bind else bind


def local_url(env: Mapping[str, str], port_setting: str) -> str:
    """This container's own listener: loopback when bound to every address."""
    return f"http://{host_for(setting(env, 'bind'))}:{setting(env, port_setting)}"


def check_http(url: str) -> str:
    """``url answered 200``; raises Unhealthy with the status and the body's start
    (NoAnswer when nothing answers)."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            return f"{url} answered {response.status}"
    except urllib.error.HTTPError as exc:
        detail = exc.read(500).decode(errors="replace").strip()
        raise Unhealthy(f"{url} answered {exc.code} {detail}") from None
    except urllib.error.URLError as exc:
        raise NoAnswer(url, exc.reason) from None
    except OSError as exc:  # a timeout while reading the answer
        raise NoAnswer(url, exc) from None


def check_edge(env: Mapping[str, str]) -> str:
    """The namespace holder is as healthy as the two services living in its namespace."""
    front = env.get("NETWORK_FRONT", "edge")
    if front != "edge":  # tailnet mode: the sidecar is the front door, this one idles
        return f"idle, NETWORK_FRONT={front}"
    return "; ".join(
        check_http(local_url(env, port) + "/healthz") for port in ("s3proxy_port", "origin_port")
    )


def live_workers(settings: Settings, hostname: str | None = None) -> list[Worker]:
    """Workers (on ``hostname`` when given) whose heartbeat is younger than the stale limit."""
    from catalog import Catalog, Worker  # the worker's health is in the catalog

    with Catalog.opened(settings) as catalog, catalog.session() as session:
        return list(session.scalars(Worker.live(hostname)).all())


def check_worker() -> str:
    """A worker on this host (this container) wrote its heartbeat recently."""
    from nebulacore.config import load_settings

    workers = live_workers(load_settings(), hostname=socket.gethostname())
    if not workers:
        raise Unhealthy(f"no heartbeat from a worker on {socket.gethostname()} recently")
    return f"worker {workers[0].id} heartbeat at {workers[0].heartbeat_at:%H:%M:%S}"


def check(service: str, env: Mapping[str, str]) -> str:
    if service == "worker":
        return check_worker()
    if service == "edge":
        return check_edge(env)
    return check_http(local_url(env, f"{service}_port") + "/healthz")


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in SERVICES:
        print(f"usage: python3 -m nebula.probe {{{','.join(SERVICES)}}}", file=sys.stderr)
        return 2
    service = argv[0]
    try:
        detail = check(service, os.environ)
    except Exception as exc:
        print(f"{service} unhealthy: {exc}")
        return 1
    print(f"{service} healthy: {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
