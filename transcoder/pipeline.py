"""One asset's way from source object to published ladder.

probe (presigned URL) -> ladder -> ONE ffmpeg -> verify -> master + thumbnails ->
publish (segments first, master last) -> catalog (renditions, asset ``ready``).

:func:`transcode_asset` runs it all without a queue (origin tests, benchmarks); the
Huey task runs the same steps under a job lease (:mod:`transcoder.work`).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from catalog import Asset, Catalog, Rendition, assets
from nebulacore import hls
from nebulacore.config import Settings
from nebulacore.s3 import backend_client
from transcoder import hwaccel
from transcoder.command import Plan, build_argv
from transcoder.errors import MediaError
from transcoder.ladder import Rung, choose_ladder
from transcoder.master import Measured, master_playlist, measure_audio, measure_video
from transcoder.probe import SourceInfo, presigned_url, probe
from transcoder.publish import Ladder, publish
from transcoder.runner import Guard, NoGuard, run_ffmpeg
from transcoder.thumbnails import make_poster, make_sprite, sprite_layout, webvtt
from transcoder.verify import verify_durations

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Built:
    ladder: Ladder
    renditions: list[Measured]  # video rungs tallest first, then audio (if any)
    info: SourceInfo
    hwaccel: str


def effective_hwaccel(settings: Settings, info: SourceInfo) -> str:
    # HDR tone mapping runs in software (zscale+tonemap); so does an audio-only job.
    if info.hdr or not info.has_video:
        return "none"
    return hwaccel.resolve(settings).mode


def build_ladder(
    settings: Settings,
    source: str,
    info: SourceInfo,
    work: Path,
    asset_id: str,
    version: str,
    guard: Guard,
    hw: str = "none",
) -> Built:
    """Transcode ``source`` into ``work`` and prepare everything to publish (no upload)."""
    rungs = choose_ladder(info.width, info.height, settings.ladder_rungs) if info.has_video else []
    out_dir = work / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = Plan(
        source,
        info,
        rungs,
        out_dir,
        settings.segment_seconds,
        settings.hls_segment_type,
        hw,
        settings.hw_device,
    )
    run_ffmpeg(build_argv(plan), info.duration, guard)
    verify_durations(out_dir, plan.rendition_names, info.duration)
    videos = [measure_video(out_dir, rung, plan.fps) for rung in rungs]
    audio = measure_audio(out_dir) if info.has_audio else None
    master = master_playlist(videos, audio, version)
    poster, vtt = None, None
    if rungs:
        poster, vtt = _thumbnails(out_dir, work, rungs, info, version, settings.segment_seconds)
    ladder = Ladder(asset_id, version, out_dir, master, poster, vtt)
    return Built(ladder, [*videos, *([audio] if audio else [])], info, hw)


def _thumbnails(
    out_dir: Path, work: Path, rungs: list[Rung], info: SourceInfo, version: str, step: int
) -> tuple[Path, str]:
    poster = work / hls.POSTER
    make_poster(out_dir / rungs[0].name / hls.MEDIA_PLAYLIST, info.duration, poster, step)
    layout = sprite_layout(info.duration, info.width, info.height, step)
    make_sprite(out_dir / rungs[-1].name / hls.MEDIA_PLAYLIST, layout, out_dir / hls.SPRITE)
    return poster, webvtt(layout, info.duration, f"{version}/{hls.SPRITE}")


def record_ready(session: Session, asset_id: str, built: Built) -> None:
    """Record the published ladder in the catalog: the asset is ready with these renditions."""
    renditions = [
        Rendition(
            asset_id=asset_id,
            name=item.name,
            width=item.width,
            height=item.height,
            bandwidth=item.peak_bps,
            average_bandwidth=item.average_bps,
            codecs=item.codecs,
            frame_rate=item.frame_rate,
            playlist=hls.rendition_playlist(built.ladder.version, item.name),
        )
        for item in built.renditions
    ]
    assets.record_ready(session, asset_id, renditions, built.info.duration)


def check_source(settings: Settings, bucket: str, key: str, **client_config: Any) -> None:
    """Fail early, with a clear reason (MediaError), on a source that is missing or empty."""
    client = backend_client(settings, **client_config)
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except client.exceptions.ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            raise MediaError(f"the source s3://{bucket}/{key} does not exist") from None
        raise
    if int(head.get("ContentLength", 0)) == 0:
        raise MediaError("the source is empty (0 bytes)")


def probe_asset(settings: Settings, catalog: Catalog, asset_id: str) -> tuple[str, SourceInfo]:
    """Probe the asset's source through a presigned URL and store the result in its row."""
    with catalog.session() as session:
        asset = session.get(Asset, asset_id)
        if asset is None:
            raise MediaError(f"asset {asset_id} does not exist")
        bucket, key = asset.bucket, asset.key
    check_source(settings, bucket, key)
    url = presigned_url(settings, bucket, key)
    info = probe(url)
    with catalog.session() as session:
        row = session.get(Asset, asset_id)
        if row is not None:
            row.probe, row.duration = info.as_dict(), info.duration
    return url, info


def produce_and_publish(
    settings: Settings,
    catalog: Catalog,
    asset_id: str,
    version: str,
    guard: Guard,
    commit: Callable[[Session, Built], None],
) -> Built:
    """probe -> transcode -> verify -> publish -> ``commit`` (in one catalog transaction)."""
    url, info = probe_asset(settings, catalog, asset_id)
    guard.check()
    work = settings.transcode_dir / f"{asset_id}-{version}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        started = time.monotonic()
        built = build_ladder(
            settings, url, info, work, asset_id, version, guard, effective_hwaccel(settings, info)
        )
        log.info(
            "transcoded %s in %.1fs (%s, %d renditions)",
            asset_id,
            time.monotonic() - started,
            built.hwaccel,
            len(built.renditions),
        )
        guard.check()  # a cancelled or superseded job publishes nothing
        publish(backend_client(settings), settings.hls_bucket, built.ladder, guard.confirm)
        with catalog.session() as session:
            commit(session, built)
        return built
    finally:
        shutil.rmtree(work, ignore_errors=True)


def transcode_asset(
    settings: Settings, catalog: Catalog, asset_id: str, version: str | None = None
) -> Built:
    """Transcode and publish ``asset_id`` now, without a queue or a job lease."""
    version = version or hls.version_name(int(time.time() * 1000))
    return produce_and_publish(
        settings,
        catalog,
        asset_id,
        version,
        NoGuard(),
        lambda session, built: record_ready(session, asset_id, built),
    )
