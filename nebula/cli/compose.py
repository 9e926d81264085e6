"""What the Compose stack runs besides the services: ``nebula prepare``, ``nebula healthcheck``.

``prepare`` is the one-shot ``migrate`` service (schema and buckets before s3proxy starts);
``healthcheck`` is every Nebula container's Docker healthcheck, so the deploy hook's wait
for "healthy" means: /healthz of s3proxy and origin answered 200, the worker heartbeats.
"""

from __future__ import annotations

import argparse
import os
import socket

from botocore.exceptions import BotoCoreError, ClientError

from nebula.cli.base import CliError, Commands, add_command, own_settings
from nebula.cli.status import check_http, live_workers
from nebulacore.config import Settings, host_for_url


def register(commands: Commands) -> None:
    prepare = add_command(
        commands, "prepare", "apply catalog migrations and create the configured buckets"
    )
    prepare.set_defaults(handler=run_prepare)
    check = add_command(
        commands, "healthcheck", "exit 0 when this container's service is healthy (Docker)"
    )
    check.add_argument("service", choices=["s3proxy", "origin", "worker", "edge"])
    check.set_defaults(handler=run_healthcheck)


def run_prepare(args: argparse.Namespace) -> int:
    from catalog.db import current_revision, upgrade
    from nebulacore.s3 import backend_client, ensure_buckets

    settings = own_settings(args)
    upgrade(settings.catalog_url)
    print(f"catalog at revision {current_revision(settings.catalog_url)}")
    wanted = [*settings.ingest_buckets, settings.hls_bucket]
    try:
        created = ensure_buckets(backend_client(settings), wanted)
        for bucket in wanted:
            print(f"bucket {bucket} {'created' if bucket in created else 'exists'}")
    except (BotoCoreError, ClientError) as exc:
        raise CliError(f"storage at {settings.backend_endpoint}: {exc}") from None
    return 0


def local_url(settings: Settings, port: int) -> str:
    """This container's own listener: loopback when bound to every address."""
    return f"http://{host_for_url(settings.bind)}:{port}"


def check_local_worker(settings: Settings) -> str:
    """A worker on this host (this container) wrote its heartbeat recently."""
    workers = live_workers(settings, hostname=socket.gethostname())
    if not workers:
        raise RuntimeError(f"no heartbeat from a worker on {socket.gethostname()} recently")
    return f"worker {workers[0].id} heartbeat at {workers[0].heartbeat_at:%H:%M:%S}"


def check_edge(settings: Settings) -> str:
    """The namespace holder is as healthy as the two services living in its namespace."""
    front = os.environ.get("NETWORK_FRONT", "edge")
    if front != "edge":  # tailnet mode: the sidecar is the front door, this one idles
        return f"idle, NETWORK_FRONT={front}"
    return "; ".join(
        check_http(local_url(settings, port) + "/healthz")
        for port in (settings.s3proxy_port, settings.origin_port)
    )


def run_healthcheck(args: argparse.Namespace) -> int:
    settings = own_settings(args)
    try:
        if args.service == "worker":
            detail = check_local_worker(settings)
        elif args.service == "edge":
            detail = check_edge(settings)
        else:
            port = settings.s3proxy_port if args.service == "s3proxy" else settings.origin_port
            detail = check_http(local_url(settings, port) + "/healthz")
    except Exception as exc:
        print(f"{args.service} unhealthy: {exc}")
        return 1
    print(f"{args.service} healthy: {detail}")
    return 0
