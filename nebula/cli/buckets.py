"""``nebula buckets``: the buckets in storage, which of them are transcoded, and changing
it. The setting lives in the catalog (every s3proxy worker reads it within seconds);
``NEBULA_INGEST_BUCKETS`` is the default of a bucket never set."""

from __future__ import annotations

import argparse

from catalog import Catalog
from catalog.buckets import (
    BucketState,
    bucket_states,
    set_transcode,
    transcode_settings,
)
from nebula.cli.base import CliError, Commands, add_command, settings_from
from nebula.cli.table import render
from nebulacore.config import Settings


def register(commands: Commands) -> None:
    buckets = add_command(
        commands, "buckets", "buckets in storage, and whether uploads to each are transcoded"
    )
    buckets.set_defaults(handler=buckets_list)
    actions = buckets.add_subparsers(dest="buckets_command", metavar="ACTION")
    add_command(actions, "list", "every bucket and whether it is transcoded").set_defaults(
        handler=buckets_list
    )
    change = add_command(
        actions,
        "transcode",
        "transcode videos uploaded to these buckets (--off: store them only); "
        "videos already there are picked up by the next reconcile",
    )
    change.add_argument("names", nargs="+", metavar="BUCKET")
    change.add_argument("--off", action="store_true", help="stop transcoding uploads to them")
    change.set_defaults(handler=buckets_transcode)


def storage_buckets(settings: Settings) -> list[str]:
    from nebulacore.s3 import backend_client

    try:
        listed = backend_client(settings, connect_timeout=3, read_timeout=10).list_buckets()
    except Exception as exc:
        raise CliError(f"storage at {settings.backend_endpoint} does not answer: {exc}") from None
    return sorted(b["Name"] for b in listed.get("Buckets", []))


def current_states(settings: Settings) -> list[BucketState]:
    names = storage_buckets(settings)
    with Catalog.opened(settings) as catalog, catalog.session() as session:
        chosen = transcode_settings(session)
    return bucket_states(settings, names, chosen)


def buckets_list(args: argparse.Namespace) -> int:
    states = current_states(settings_from(args))
    rows = [(s.name, "yes" if s.transcoded else "no", s.why) for s in states]
    print(render(("BUCKET", "TRANSCODED", "WHY"), rows))
    return 0


def buckets_transcode(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if settings.hls_bucket in args.names:
        raise CliError(f"{settings.hls_bucket} holds the HLS output; it is never transcoded")
    with Catalog.opened(settings) as catalog, catalog.session() as session:
        for name in args.names:
            set_transcode(session, name, not args.off)
    for name in args.names:
        if args.off:
            print(f"{name}: uploads are stored, not transcoded")
        else:
            print(
                f"{name}: uploads are transcoded (videos already there within "
                f"{settings.reconcile_seconds}s, by the reconcile)"
            )
    return 0
