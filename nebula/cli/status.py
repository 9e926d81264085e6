"""``nebula status``: the health of storage, catalog, queue, proxy, origin and worker."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from collections.abc import Callable

from catalog import Catalog, Worker
from nebula.cli.base import Commands, add_command, settings_from
from nebula.cli.table import render
from nebulacore.config import Settings
from nebulacore.s3 import backend_client

HTTP_CHECK_TIMEOUT_SECONDS = 5


def register(commands: Commands) -> None:
    status = add_command(commands, "status", "health of every part; exit 1 if any is down")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=run_status)


def check_storage(settings: Settings) -> str:
    buckets = backend_client(settings, connect_timeout=3, read_timeout=5).list_buckets()
    return f"{len(buckets.get('Buckets', []))} buckets at {settings.backend_endpoint}"


def check_catalog(settings: Settings) -> str:
    with Catalog.opened(settings) as catalog:
        catalog.ping()
    return settings.catalog_url.split("@")[-1]  # no password in the output


def check_queue(settings: Settings) -> str:
    from nebulaqueue.huey import make_huey, queue_counts

    counts = queue_counts(make_huey(settings))
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def check_http(url: str) -> str:
    """``url answered 200``; raises with the status and the start of the body otherwise."""
    try:
        with urllib.request.urlopen(url, timeout=HTTP_CHECK_TIMEOUT_SECONDS) as response:
            return f"{url} answered {response.status}"
    except urllib.error.HTTPError as exc:
        detail = exc.read(500).decode(errors="replace").strip()
        raise RuntimeError(f"{url} answered {exc.code} {detail}") from None


def live_workers(settings: Settings, hostname: str | None = None) -> list[Worker]:
    """Workers (on ``hostname`` when given) whose heartbeat is younger than the stale limit."""
    with Catalog.opened(settings) as catalog, catalog.session() as session:
        return list(session.scalars(Worker.live(hostname)).all())


def check_worker(settings: Settings) -> str:
    count = len(live_workers(settings))
    if not count:
        raise RuntimeError("no worker heartbeat in the last minute")
    return f"{count} worker(s) alive"


def checks(settings: Settings) -> dict[str, Callable[[], str]]:
    return {
        "storage": lambda: check_storage(settings),
        "catalog": lambda: check_catalog(settings),
        "queue": lambda: check_queue(settings),
        "s3proxy": lambda: check_http(settings.s3proxy_url + "/healthz"),
        "origin": lambda: check_http(settings.origin_url + "/healthz"),
        "worker": lambda: check_worker(settings),
    }


def run_status(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    results: dict[str, dict[str, object]] = {}
    for name, check in checks(settings).items():
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
        print(render(("STATE", "PART", "DETAIL"), rows))
    return 0 if all(r["ok"] for r in results.values()) else 1
