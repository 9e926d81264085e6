"""What the Compose stack runs besides the services: ``nebula prepare``, ``nebula healthcheck``.

``prepare`` is the one-shot ``migrate`` service (schema and buckets before s3proxy starts);
``healthcheck`` is what every Nebula container's Docker healthcheck checks (Compose runs
the lighter ``python3 -m nebula.probe``, the same code), so the deploy hook's wait for
"healthy" means: /healthz of s3proxy and origin answered 200, the worker heartbeats.
"""

from __future__ import annotations

import argparse

from nebula.cli.base import CliError, Commands, add_command, own_settings


def register(commands: Commands) -> None:
    prepare = add_command(
        commands, "prepare", "apply catalog migrations and create the configured buckets"
    )
    # nebula up's own preparation, in a child of the supervisor (nebula.preparation).
    prepare.add_argument("--for-up", action="store_true", help=argparse.SUPPRESS)
    prepare.set_defaults(handler=run_prepare)
    check = add_command(
        commands, "healthcheck", "exit 0 when this container's service is healthy (Docker)"
    )
    check.add_argument("service", choices=["s3proxy", "origin", "worker", "edge"])
    check.set_defaults(handler=run_healthcheck)


def run_prepare(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from catalog.db import current_revision, upgrade
    from nebulacore.s3 import backend_client, ensure_buckets

    settings = own_settings(args)
    if args.for_up:
        from nebula import preparation
        from nebulacore.logs import setup_logging

        setup_logging(settings, "up")
        print(preparation.answer(settings))
        return 0
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


def run_healthcheck(args: argparse.Namespace) -> int:
    """The same check as Compose's (:mod:`nebula.probe`), from the full CLI."""
    from nebula import probe

    return probe.main([args.service])
