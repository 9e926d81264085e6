"""Publishing a finished ladder to the HLS bucket, so a reader never sees half of it.

The key layout, names and content types are :mod:`nebulacore.hls` (the origin serves
exactly those keys).

Segments are published as ffmpeg makes them (:mod:`transcoder.live`: growing EVENT
playlists, and a provisional master for an asset that had no ladder). What is left at
the end, in this order: whatever under ``v<job_id>/`` is not in storage yet (the sprite),
the ended media playlists, then poster and thumbnails track, then the measured
``master.m3u8``. A viewer of an overwritten video therefore keeps the old complete ladder
until the new one is complete; the previous versions stay for players that loaded the old
master (:mod:`transcoder.removal` deletes them after ``NEBULA_HLS_RETAIN_SECONDS``).

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
    client: S3Client,
    bucket: str,
    ladder: Ladder,
    confirm: Callable[[], None] = lambda: None,
    published: frozenset[str] | set[str] = frozenset(),
) -> None:
    """Upload the rest of the version, then poster and thumbnails track, then the master.
    ``published``: keys already in storage (put while transcoding).

    ``confirm`` runs once the version is up, before anything the current master's viewers
    see is touched, and may raise to abandon the version.
    """
    try:
        _upload_version(client, bucket, ladder, published)
        confirm()
    except Exception:
        abandon(client, bucket, ladder.asset_id, ladder.version)
        raise
    _put_asset_images(client, bucket, ladder)
    _put_text(client, bucket, ladder.key(hls.MASTER), ladder.master)


def abandon(client: S3Client, bucket: str, asset_id: str, version: str) -> None:
    """Remove a version that will never be complete, and a provisional master pointing at it
    (a complete master points at another version and stays)."""
    master = hls.asset_key(asset_id, hls.MASTER)
    try:
        text = client.get_object(Bucket=bucket, Key=master)["Body"].read().decode()
    except client.exceptions.NoSuchKey:
        text = ""
    if f"{version}/" in text:
        delete_keys(client, bucket, [master])
    delete_keys(client, bucket, list_keys(client, bucket, hls.asset_key(asset_id, version) + "/"))


def _upload_version(
    client: S3Client, bucket: str, ladder: Ladder, published: frozenset[str] | set[str]
) -> None:
    files = sorted(
        (p for p in ladder.out_dir.rglob("*") if p.is_file() and hls.is_published(p.name)),
        key=_upload_order,
    )
    files = [p for p in files if _version_key(ladder, p) not in published]
    for stage in (0, 1, 2):
        batch = [p for p in files if _upload_order(p) == stage]
        with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
            keys = [_version_key(ladder, p) for p in batch]
            list(
                pool.map(
                    lambda kp: _put_file(client, bucket, kp[0], kp[1], hls.IMMUTABLE),
                    zip(keys, batch, strict=True),
                )
            )


def _version_key(ladder: Ladder, path: Path) -> str:
    return f"{ladder.prefix}/{path.relative_to(ladder.out_dir).as_posix()}"


def _put_asset_images(client: S3Client, bucket: str, ladder: Ladder) -> None:
    if ladder.poster is not None:
        _put_file(client, bucket, ladder.key(hls.POSTER), ladder.poster, REVALIDATE)
    if ladder.thumbnails_vtt is not None:
        _put_text(client, bucket, ladder.key(hls.THUMBNAILS), ladder.thumbnails_vtt)
    else:
        delete_keys(client, bucket, [ladder.key(hls.THUMBNAILS), ladder.key(hls.POSTER)])
