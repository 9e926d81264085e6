"""Publishing a finished ladder to the HLS bucket, so a reader never sees half of it.

The key layout, names and content types are :mod:`nebulacore.hls` (the origin serves
exactly those keys).

Order: every object under ``v<job_id>/`` first (segments, then init segments and media
playlists), then poster and thumbnails track, then ``master.m3u8``. A reader therefore
always finds either the old complete ladder or the new complete one; the previous
versions stay for players that loaded the old master (:mod:`transcoder.removal` deletes
them after ``NEBULA_HLS_RETAIN_SECONDS``).

To produce a real ladder without a queue (origin tests, benchmarks), call
:func:`transcoder.pipeline.transcode_asset` ``(settings, catalog, asset_id)`` on an asset
row created by :func:`catalog.assets.record_upload` whose source object is in the ingest
bucket; :func:`transcoder.samples.make_source` generates a short test source with ffmpeg.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from nebulacore import hls
from nebulacore.s3 import S3Client, delete_keys, list_keys

log = logging.getLogger(__name__)

UPLOAD_THREADS = 4
REVALIDATE = "no-cache"


@dataclass(frozen=True)
class Ladder:
    """A finished ladder on local disk, ready to publish."""

    asset_id: str
    version: str  # hls.version_name(job_id)
    out_dir: Path  # <rendition>/... as ffmpeg wrote it, plus hls.SPRITE
    master: str
    poster: Path | None
    thumbnails_vtt: str | None

    @property
    def prefix(self) -> str:
        return hls.asset_key(self.asset_id, self.version)

    def key(self, name: str) -> str:
        return hls.asset_key(self.asset_id, name)


def _upload_order(path: Path) -> int:
    # Segments, then init segments, then playlists: a playlist never names a missing file.
    if path.suffix in (".m4s", ".ts"):
        return 0
    if path.suffix == ".mp4":
        return 1
    return 2


def _put_file(client: S3Client, bucket: str, key: str, path: Path, cache: str) -> None:
    extra = {"ContentType": hls.content_type(key), "CacheControl": cache}
    client.upload_file(str(path), bucket, key, ExtraArgs=extra)


def _put_text(client: S3Client, bucket: str, key: str, text: str) -> None:
    client.put_object(
        Bucket=bucket,
        Key=key,
        Body=text.encode(),
        ContentType=hls.content_type(key),
        CacheControl=REVALIDATE,
    )


def publish(
    client: S3Client, bucket: str, ladder: Ladder, confirm: Callable[[], None] = lambda: None
) -> None:
    """Upload the version, then poster and thumbnails track, then the master.

    ``confirm`` runs once the version is up, before anything the current master's viewers
    see is touched, and may raise to abandon the version.
    """
    try:
        _upload_version(client, bucket, ladder)
        confirm()
    except Exception:
        # No master points at this version yet: leave no half ladder behind.
        delete_keys(client, bucket, list_keys(client, bucket, ladder.prefix + "/"))
        raise
    _put_asset_images(client, bucket, ladder)
    _put_text(client, bucket, ladder.key(hls.MASTER), ladder.master)


def _upload_version(client: S3Client, bucket: str, ladder: Ladder) -> None:
    files = sorted(
        (p for p in ladder.out_dir.rglob("*") if p.is_file() and hls.is_published(p.name)),
        key=_upload_order,
    )
    for stage in (0, 1, 2):
        batch = [p for p in files if _upload_order(p) == stage]
        with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
            keys = [f"{ladder.prefix}/{p.relative_to(ladder.out_dir).as_posix()}" for p in batch]
            list(
                pool.map(
                    lambda kp: _put_file(client, bucket, kp[0], kp[1], hls.IMMUTABLE),
                    zip(keys, batch, strict=True),
                )
            )


def _put_asset_images(client: S3Client, bucket: str, ladder: Ladder) -> None:
    if ladder.poster is not None:
        _put_file(client, bucket, ladder.key(hls.POSTER), ladder.poster, REVALIDATE)
    if ladder.thumbnails_vtt is not None:
        _put_text(client, bucket, ladder.key(hls.THUMBNAILS), ladder.thumbnails_vtt)
    else:
        delete_keys(client, bucket, [ladder.key(hls.THUMBNAILS), ladder.key(hls.POSTER)])
