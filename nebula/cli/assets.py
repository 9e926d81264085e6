"""``nebula assets list|show|url|retranscode|delete``: uploaded videos, their ladders and
why one failed."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from sqlalchemy.orm import Session

from catalog import Catalog
from catalog.assets import get_asset, list_assets, record_delete, record_upload
from catalog.models import PENDING_ASSET, Asset, AssetStatus
from nebula.cli.base import CliError, Commands, add_command, catalog_session, settings_from
from nebula.cli.jobs import relay_now
from nebula.cli.playback import add_url_command
from nebula.cli.table import human_size, render

# Statuses whose asset carries a reason worth a column: why it is not playable.
EXPLAINED = frozenset(s for s in AssetStatus if s.value in ("failed", "cancelled"))


def register(commands: Commands) -> None:
    assets = add_command(commands, "assets", "uploaded videos and their ladders")
    asset_commands = assets.add_subparsers(dest="assets_command", metavar="ACTION", required=True)
    listing = add_command(asset_commands, "list", "list assets, with the reason of failed ones")
    listing.add_argument("--status", choices=[s.value for s in AssetStatus])
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=assets_list)
    show = add_command(asset_commands, "show", "one asset, its renditions and jobs")
    show.add_argument("asset_id")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=assets_show)
    add_url_command(asset_commands)
    again = add_command(
        asset_commands, "retranscode", "transcode finished videos again (e.g. after a new ladder)"
    )
    again.add_argument("asset_ids", nargs="+", metavar="ASSET_ID")
    again.set_defaults(handler=assets_retranscode)
    delete = add_command(
        asset_commands, "delete", "delete videos: the uploaded source and its HLS ladder"
    )
    delete.add_argument("asset_ids", nargs="+", metavar="ASSET_ID")
    delete.set_defaults(handler=assets_delete)


def assets_list(args: argparse.Namespace) -> int:
    status = AssetStatus(args.status) if args.status else None
    with catalog_session(args) as session:
        assets = list_assets(session, status=status)
        if args.json:
            print(json.dumps([asset_dict(a) for a in assets], indent=2, default=str))
            return 0
        rows = [
            (
                a.id,
                a.status.value,
                f"{a.duration:.1f}s" if a.duration else None,
                human_size(a.size),
                f"s3://{a.bucket}/{a.key}",
                a.error if a.status in EXPLAINED else "",
            )
            for a in assets
        ]
    headers = ("ID", "STATUS", "DURATION", "SIZE", "OBJECT", "REASON")
    print(render(headers, rows, right="DURATION SIZE"))
    return 0


def assets_show(args: argparse.Namespace) -> int:
    with catalog_session(args) as session:
        asset = get_asset(session, args.asset_id)
        if asset is None:
            raise CliError(f"no asset {args.asset_id!r}")
        data = asset_dict(asset)
        data["renditions"] = [rendition_dict(r) for r in asset.renditions]
        data["jobs"] = [job_dict(j) for j in asset.jobs]
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        print(describe(data))
    return 0


def asset_dict(asset: Asset) -> dict[str, Any]:
    return {
        "id": asset.id,
        "bucket": asset.bucket,
        "key": asset.key,
        "status": asset.status.value,
        "etag": asset.etag,
        "size": asset.size,
        "content_type": asset.content_type,
        "duration": asset.duration,
        "error": asset.error,
        "created_at": asset.created_at,
        "updated_at": asset.updated_at,
    }


def rendition_dict(rendition: Any) -> dict[str, Any]:
    r = rendition
    return {
        "name": r.name,
        "resolution": f"{r.width}x{r.height}" if r.width else None,
        "bandwidth": r.bandwidth,
        "average_bandwidth": r.average_bandwidth,
        "codecs": r.codecs,
        "frame_rate": r.frame_rate,
    }


def job_dict(job: Any) -> dict[str, Any]:
    return {
        "id": job.id,
        "kind": job.kind.value,
        "status": job.status.value,
        "progress": job.progress,
        "attempts": job.attempts,
        "error": job.error,
    }


def describe(data: dict[str, Any]) -> str:
    """``assets show`` for a person: labelled fields, then renditions and jobs as tables."""
    size = data["size"]
    fields = {
        "asset": data["id"],
        "object": f"s3://{data['bucket']}/{data['key']}",
        "status": data["status"],
        "reason": data["error"],
        "size": f"{human_size(size)} ({size} bytes)" if size is not None else None,
        "duration": f"{data['duration']:.1f} s" if data["duration"] else None,
        "type": data["content_type"],
        "uploaded": f"{data['created_at']:%Y-%m-%d %H:%M:%S}",
        "updated": f"{data['updated_at']:%Y-%m-%d %H:%M:%S}",
    }
    lines = [f"{label:<9} {value}" for label, value in fields.items() if value is not None]
    renditions = [
        (r["name"], r["resolution"], r["bandwidth"], r["average_bandwidth"], r["codecs"])
        for r in data["renditions"]
    ]
    if renditions:
        columns = ("NAME", "RESOLUTION", "BANDWIDTH", "AVERAGE", "CODECS")
        lines += ["", "renditions", render(columns, renditions, right="BANDWIDTH AVERAGE")]
    jobs = [
        (j["id"], j["kind"], j["status"], f"{j['progress']:.0f}%", j["attempts"], j["error"] or "")
        for j in data["jobs"]
    ]
    if jobs:
        headers = ("ID", "KIND", "STATUS", "PROGRESS", "ATTEMPTS", "REASON")
        lines += ["", "jobs", render(headers, jobs, right="ID PROGRESS ATTEMPTS")]
    return "\n".join(lines)


def _asset(session: Session, asset_id: str) -> Asset:
    asset = get_asset(session, asset_id)
    if asset is None:
        raise CliError(f"no asset {asset_id!r} (see `nebula assets list`)")
    return asset


def assets_retranscode(args: argparse.Namespace) -> int:
    """A new transcode of each source as it is stored; its ladder replaces the current one
    when published (viewers of the old one finish it, as after an overwrite)."""
    settings = settings_from(args)
    refused = 0
    with Catalog.opened(settings) as catalog:
        for asset_id in args.asset_ids:
            with catalog.session() as session:
                asset = _asset(session, asset_id)
                if asset.status == AssetStatus.DELETED or asset.status in PENDING_ASSET:
                    refused += 1
                    why = "is deleted" if asset.status == AssetStatus.DELETED else "is in work"
                    print(f"nebula: asset {asset_id} {why} ({asset.status.value})", file=sys.stderr)
                    continue
                a = asset
                _, job = record_upload(session, a.bucket, a.key, a.etag, a.size, a.content_type)
                session.flush()
                print(f"asset {asset_id}: transcode job {job.id} queued")
        relay_now(catalog, settings)
    return 2 if refused else 0


def assets_delete(args: argparse.Namespace) -> int:
    """The source object is deleted from storage, then the asset is marked deleted and its
    ladder's removal queued (the worker deletes every version, the origin stops serving)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from nebulacore.s3 import backend_client

    settings = settings_from(args)
    storage = backend_client(settings)
    with Catalog.opened(settings) as catalog:
        for asset_id in args.asset_ids:
            with catalog.session() as session:
                asset = _asset(session, asset_id)
                if asset.status == AssetStatus.DELETED:
                    print(f"asset {asset_id} was already deleted")
                    continue
                try:
                    storage.delete_object(Bucket=asset.bucket, Key=asset.key)
                except (BotoCoreError, ClientError) as exc:
                    where = f"s3://{asset.bucket}/{asset.key}"
                    raise CliError(
                        f"asset {asset_id}: storage did not delete {where}: {exc}"
                    ) from None
                job = record_delete(session, asset.bucket, asset.key)
                session.flush()
                removal = f"; removal job {job.id} deletes its ladder" if job else ""
                print(f"deleted asset {asset_id} (s3://{asset.bucket}/{asset.key}){removal}")
        relay_now(catalog, settings)
    return 0
