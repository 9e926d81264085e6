"""What a request may name: asset ids and file names are checked before any storage key exists.

Anything that is not plainly an asset id or a ladder file name is refused here, so ``..``,
``%2e%2e/``, ``..%2f``, backslashes, NUL bytes and absolute paths never reach a key.
"""

from __future__ import annotations

import functools
import re

from nebulacore.hls import asset_key

# catalog.models.new_asset_id makes 12 characters of [a-z2-9]; accept a little wider.
ASSET_ID = re.compile(r"[a-z0-9]{4,32}")
# One path part of a published ladder: "master.m3u8", "720p", "seg_00001.m4s".
PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}(\.[A-Za-z0-9]{1,8})?")
MAX_DEPTH = 3


class BadName(ValueError):
    """The request names something that cannot be a published object (answered 400)."""


def check_asset_id(asset_id: str) -> str:
    if not ASSET_ID.fullmatch(asset_id):
        raise BadName("not an asset id")
    return asset_id


def check_ladder_path(path: str) -> str:
    """``"720p/seg_1.m4s"`` passes; ``"../x"``, ``"a//b"``, ``"/etc"`` do not."""
    parts = path.split("/")
    if not path or len(parts) > MAX_DEPTH or not all(PART.fullmatch(p) for p in parts):
        raise BadName("not a ladder file")
    return path


def hls_path(asset_id: str, name: str) -> str:
    """The origin's URL path of a ladder file (``/hls/<asset_id>/<name>``)."""
    return f"/hls/{asset_id}/{name}"


# Players ask for the same few names again and again: each is checked once (a refused
# name raises, and is not kept).
@functools.lru_cache(maxsize=4096)
def ladder_key(asset_id: str, path: str) -> str:
    """The HLS bucket key of a ladder file, built only from checked names."""
    return asset_key(check_asset_id(asset_id), check_ladder_path(path))
