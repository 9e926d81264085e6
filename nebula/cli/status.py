"""``nebula status``: the health of storage, catalog, queue, proxy, origin and worker."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING

from nebula import probe
from nebula.cli.base import STACK_HELP, Commands, add_command, stack_from
from nebula.cli.table import render
from nebula.probe import live_workers
from nebula.stack import Stack
from nebulacore.config import Settings

if TYPE_CHECKING:
    pass


class Unreachable(Exception):
    """Nothing answers where the stack was looked for; the message says where and why there."""


def register(commands: Commands) -> None:
    status = add_command(
        commands, "status", "health of every part; exit 1 if any is down", epilog=STACK_HELP
    )
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=run_status)


def address_of(url: str) -> str:
    """``host:port`` of ``url``, as a refused connection names it."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


def check_storage(stack: Stack) -> str:
    from botocore.exceptions import EndpointConnectionError

    from nebulacore.s3 import backend_client

    settings = stack.settings
    try:
        buckets = backend_client(settings, connect_timeout=3, read_timeout=5).list_buckets()
    except EndpointConnectionError:
        where = address_of(settings.backend_endpoint)
        raise Unreachable(stack.unreachable(where, "storage_port", "backend_url")) from None
    return f"{len(buckets.get('Buckets', []))} buckets at {settings.backend_endpoint}"


def check_catalog(settings: Settings) -> str:
    from catalog import Catalog

    with Catalog.opened(settings) as catalog:
        catalog.ping()
    return settings.catalog_url.split("@")[-1]  # no password in the output


def check_queue(settings: Settings) -> str:
    from nebulaqueue.huey import make_huey, queue_counts

    counts = queue_counts(make_huey(settings))
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def check_http(url: str, stack: Stack | None = None, *names: str) -> str:
    """``url answered 200``; raises with the status and the start of the body otherwise,
    and with where the address came from (``stack``'s ``names``) when nothing answers."""
    try:
        return probe.check_http(url)
    except probe.NoAnswer as exc:
        if stack is None or not isinstance(exc.reason, ConnectionRefusedError):
            raise
        raise Unreachable(stack.unreachable(address_of(url), *names)) from None


def check_worker(settings: Settings) -> str:
    count = len(live_workers(settings))
    if not count:
        raise RuntimeError("no worker heartbeat in the last minute")
    return f"{count} worker(s) alive"


def checks(stack: Stack) -> dict[str, Callable[[], str]]:
    settings = stack.settings
    s3proxy = ("s3proxy_port", "s3proxy_public_url", "bind")
    origin = ("origin_port", "origin_public_url", "bind")
    return {
        "storage": lambda: check_storage(stack),
        "catalog": lambda: check_catalog(settings),
        "queue": lambda: check_queue(settings),
        "s3proxy": lambda: check_http(settings.s3proxy_url + "/healthz", stack, *s3proxy),
        "origin": lambda: check_http(settings.origin_url + "/healthz", stack, *origin),
        "worker": lambda: check_worker(settings),
    }


def run_status(args: argparse.Namespace) -> int:
    results: dict[str, dict[str, object]] = {}
    for name, check in checks(stack_from(args)).items():
        try:
            results[name] = {"ok": True, "detail": check()}
        except Exception as exc:
            results[name] = {
                "ok": False,
                "detail": str(exc).splitlines()[0] if str(exc) else repr(exc),
            }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        rows = [("ok" if r["ok"] else "DOWN", name, r["detail"]) for name, r in results.items()]
        print(render(("STATE", "PART", "DETAIL"), rows, whole_last=True))
    return 0 if all(r["ok"] for r in results.values()) else 1
