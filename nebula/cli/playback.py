"""``nebula assets url <id> --expires 1h``: a playback URL, signed when the origin signs."""

from __future__ import annotations

import argparse
import re
import sys

from catalog.assets import get_asset
from catalog.models import AssetStatus
from nebula.cli.base import CliError, Commands, add_command, catalog_session, settings_from
from nebulacore.hls import MASTER
from origin.ids import ASSET_ID, hls_path
from origin.signing import PlaybackSigner

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """``"90"``, ``"90s"``, ``"15m"``, ``"1h"``, ``"7d"`` -> seconds."""
    match = re.fullmatch(r"(\d+)([smhd]?)", text.strip().lower())
    if not match or int(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 15m, 1h or 7d")
    return int(match.group(1)) * UNITS[match.group(2) or "s"]


def add_url_command(asset_commands: Commands) -> None:
    url = add_command(asset_commands, "url", "print a playback URL (signed when signing is on)")
    url.add_argument("asset_id")
    url.add_argument(
        "--expires",
        type=parse_duration,
        default=parse_duration("1h"),
        metavar="DURATION",
        help="how long a signed URL stays valid: 90s, 15m, 1h, 7d (default 1h)",
    )
    url.add_argument("--watch", action="store_true", help="the watch page instead of the master")
    url.set_defaults(handler=assets_url)


def assets_url(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if not ASSET_ID.fullmatch(args.asset_id):
        raise CliError(f"{args.asset_id!r} is not an asset id")
    with catalog_session(args) as session:
        asset = get_asset(session, args.asset_id)
        if asset is None or asset.status == AssetStatus.DELETED:
            raise CliError(f"no asset {args.asset_id!r}")
    origin = settings.origin_url.rstrip("/")
    key = settings.origin_signing_key
    if key is None:
        print(
            "signing is off (NEBULA_ORIGIN_SIGNING_KEY is unset): URL is unsigned", file=sys.stderr
        )
        path = f"/watch/{args.asset_id}" if args.watch else hls_path(args.asset_id, MASTER)
        print(origin + path)
        return 0
    signer = PlaybackSigner(key.get_secret_value())
    make = signer.watch_url if args.watch else signer.master_url
    print(make(origin, args.asset_id, args.expires))
    return 0
