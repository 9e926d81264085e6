"""One asset's way from source object to published ladder.

probe (presigned URL) -> ladder -> ONE ffmpeg, its segments published as they come
(:mod:`transcoder.live`; a restarted job resumes after what is published) -> verify ->
master + thumbnails -> publish (the rest, ended playlists, measured master). The catalog
commit (renditions, asset ``ready``) is the caller's: :func:`transcode_asset` without a
queue (origin tests, benchmarks), :meth:`transcoder.work.JobRunner.run` under a job lease.
Everything here reaches storage through the one client the caller passes.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from catalog import Asset, Catalog, Rendition, assets
from nebulacore import hls
from nebulacore.config import Settings
from nebulacore.s3 import S3Client, backend_client
from transcoder import hwaccel
from transcoder.command import Plan, build_argv
from transcoder.errors import MediaError
from transcoder.ladder import Rung, choose_ladder
from transcoder.live import LivePublisher, resume_step
from transcoder.master import (
    Measured,
    master_playlist,
    measure_audios,
    measure_video,
    provisional_master,
)
from transcoder.playlist import segment_count, write_vod_playlist
from transcoder.probe import SourceInfo, presigned_url, probe
from transcoder.publish import REVALIDATE, Ladder, abandon, publish
from transcoder.runner import Guard, NoGuard, run_ffmpeg
from transcoder.subtitles import make_subtitles
from transcoder.thumbnails import make_poster, make_sprite, sprite_layout, webvtt
from transcoder.trickplay import write_iframe_playlist
from transcoder.verify import verify_durations

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Built:
    ladder: Ladder
    renditions: list[Measured]  # video rungs tallest first, then audio, then subtitles
    info: SourceInfo
    hwaccel: str
    published: frozenset[str] = frozenset()  # keys put while transcoding
    start_segment: int = 0  # > 0: resumed after what a previous attempt published


@dataclass(frozen=True)
class Live:
    """Where and how segments are published while ffmpeg runs."""

    client: S3Client
    bucket: str
    provisional_master: bool  # the asset has no ladder yet: a master as soon as possible
    on_playable: Callable[[], None] = lambda: None


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
    live: Live | None = None,
) -> Built:
    """Transcode ``source`` into ``work`` and prepare everything left to publish; with
    ``live``, segments are published while ffmpeg makes them (and resumed from storage)."""
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
    publisher = None
    if live is not None:
        publisher = _publisher(settings, live, plan, asset_id, version)
        last = segment_count(info.duration, settings.segment_seconds) - 1
        step = resume_step(settings.segment_seconds, info.has_audio)
        plan = replace(plan, start_segment=publisher.resume_point(last, step))
        if plan.start_segment:
            plan = replace(plan, start_shift=publisher.timeline_shift())
            log.info("%s %s resumes at segment %d", asset_id, version, plan.start_segment)
        publisher.start()
    try:
        run_ffmpeg(build_argv(plan), info.duration, guard, plan.start_seconds)
        if publisher is not None:
            publisher.finish()
            publisher.restore_inherited()
    finally:
        if publisher is not None:
            publisher.close()
    verify_durations(out_dir, plan.rendition_names, info.duration)
    subtitles = make_subtitles(plan)
    write_vod_playlists(out_dir, settings.segment_seconds, plan.segment_type)
    vod = hls.VOD_PLAYLIST
    videos = [replace(measure_video(out_dir, r, plan.fps), playlist=vod) for r in rungs]
    audios = [replace(audio, playlist=vod) for audio in measure_audios(plan)]
    subtitles = [replace(track, playlist=vod) for track in subtitles]
    fmp4 = plan.segment_type == "fmp4"  # TS ladders get no I-frame playlists
    iframes = iframe_streams(out_dir, videos, settings.segment_seconds) if fmp4 else []
    master = master_playlist(videos, audios, version, subtitles, iframes)
    poster, vtt = None, None
    if rungs:
        poster, vtt = _thumbnails(out_dir, work, rungs, info, version, settings.segment_seconds)
    ladder = Ladder(asset_id, version, out_dir, master, poster, vtt)
    renditions = [*videos, *audios, *subtitles]
    published = frozenset(publisher.published_keys()) if publisher else frozenset()
    return Built(ladder, renditions, info, hw, published, plan.start_segment)


def write_vod_playlists(out_dir: Path, segment_seconds: int, segment_type: str) -> None:
    """For viewers who arrive after the end: every rendition's VOD playlist next to its
    ended EVENT one, which keeps its bytes (an EVENT viewer's playlist only gains ENDLIST)."""
    version = 7 if segment_type == "fmp4" else 3
    for event in sorted(out_dir.glob(f"*/{hls.MEDIA_PLAYLIST}")):
        write_vod_playlist(event.parent, segment_seconds, version)


def iframe_streams(out_dir: Path, videos: list[Measured], segment_seconds: int) -> list[Measured]:
    """Write each video rung's I-frame playlist; the master's I-frame stream entries."""
    streams = []
    for video in videos:
        peak, average = write_iframe_playlist(out_dir / video.name, segment_seconds)
        iframe = hls.IFRAME_PLAYLIST
        streams.append(replace(video, peak_bps=peak, average_bps=average, playlist=iframe))
    return streams


def _publisher(
    settings: Settings, live: Live, plan: Plan, asset_id: str, version: str
) -> LivePublisher:
    def first_segments() -> bool:
        if live.provisional_master:
            try:
                text = provisional_master(plan, version)
            except ValueError:  # a resumed ffmpeg is rewriting the init segment: next poll
                return False
            live.client.put_object(
                Bucket=live.bucket,
                Key=hls.asset_key(asset_id, hls.MASTER),
                Body=text.encode(),
                ContentType=hls.PLAYLIST_TYPE,
                CacheControl=REVALIDATE,
            )
            live.on_playable()
        return True

    return LivePublisher(
        live.client,
        live.bucket,
        hls.asset_key(asset_id, version),
        plan.out_dir,
        plan.rendition_names,
        settings.segment_seconds,
        7 if plan.segment_type == "fmp4" else 3,
        first_segments,
    )


def _thumbnails(
    out_dir: Path, work: Path, rungs: list[Rung], info: SourceInfo, version: str, step: int
) -> tuple[Path, str]:
    poster = work / hls.POSTER
    make_poster(out_dir / rungs[0].name / hls.MEDIA_PLAYLIST, info.duration, poster, step)
    layout = sprite_layout(info.duration, info.width, info.height, step)
    make_sprite(out_dir / rungs[-1].name / hls.MEDIA_PLAYLIST, layout, out_dir / hls.SPRITE)
    return poster, webvtt(layout, info.duration, f"{version}/{hls.SPRITE}")


def renditions_of(built: Built) -> list[Rendition]:
    """The catalog rows of a published ladder's renditions."""
    return [
        Rendition(
            asset_id=built.ladder.asset_id,
            name=item.name,
            width=item.width,
            height=item.height,
            bandwidth=item.peak_bps,
            average_bandwidth=item.average_bps,
            codecs=item.codecs,
            frame_rate=item.frame_rate,
            playlist=hls.rendition_playlist(built.ladder.version, item.name, item.playlist),
        )
        for item in built.renditions
    ]


def check_source(client: S3Client, bucket: str, key: str) -> None:
    """Fail early, with a clear reason (MediaError), on a source that is missing or empty."""
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except client.exceptions.ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            raise MediaError(f"the source s3://{bucket}/{key} does not exist") from None
        raise
    if int(head.get("ContentLength", 0)) == 0:
        raise MediaError("the source is empty (0 bytes)")


def has_ladder(catalog: Catalog, asset_id: str) -> bool:
    """Whether a complete ladder of the asset is being served (its renditions recorded)."""
    with catalog.session() as session:
        asset = session.get(Asset, asset_id)
        return asset is not None and bool(asset.renditions)


def probe_asset(catalog: Catalog, client: S3Client, asset_id: str) -> tuple[str, SourceInfo]:
    """Probe the asset's source through a presigned URL and store the result in its row."""
    with catalog.session() as session:
        asset = session.get(Asset, asset_id)
        if asset is None:
            raise MediaError(f"asset {asset_id} does not exist")
        bucket, key = asset.bucket, asset.key
    check_source(client, bucket, key)
    url = presigned_url(client, bucket, key)
    info = probe(url)
    for item in info.not_carried:  # also in the asset's probe (``not_carried``)
        log.warning(
            "%s: %s stream %s (%s) not carried: %s",
            asset_id,
            item.kind,
            item.index,
            item.codec,
            item.reason,
        )
    with catalog.session() as session:
        row = session.get(Asset, asset_id)
        if row is not None:
            row.probe, row.duration = info.as_dict(), info.duration
    return url, info


def produce_and_publish(
    settings: Settings,
    catalog: Catalog,
    client: S3Client,
    asset_id: str,
    version: str,
    guard: Guard,
) -> Built:
    """probe -> transcode -> verify -> publish; the caller records the result."""
    url, info = probe_asset(catalog, client, asset_id)
    guard.check()
    work = settings.transcode_dir / f"{asset_id}-{version}"
    shutil.rmtree(work, ignore_errors=True)
    live = Live(
        client,
        settings.hls_bucket,
        provisional_master=not has_ladder(catalog, asset_id),
        on_playable=lambda: _record_playable(catalog, asset_id),
    )
    try:
        started = time.monotonic()
        try:
            built = build_ladder(
                settings,
                url,
                info,
                work,
                asset_id,
                version,
                guard,
                effective_hwaccel(settings, info),
                live,
            )
        except MediaError:
            # The source's fault: this version will never be complete; publish nothing.
            abandon(client, settings.hls_bucket, asset_id, version)
            raise
        log.info(
            "transcoded %s in %.1fs (%s, %d renditions)",
            asset_id,
            time.monotonic() - started,
            built.hwaccel,
            len(built.renditions),
        )
        guard.check()  # a cancelled or superseded job publishes nothing
        publish(client, settings.hls_bucket, built.ladder, guard.confirm, built.published)
        return built
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _record_playable(catalog: Catalog, asset_id: str) -> None:
    with catalog.session() as session:
        assets.record_playable(session, asset_id)


def transcode_asset(
    settings: Settings, catalog: Catalog, asset_id: str, version: str | None = None
) -> Built:
    """Transcode and publish ``asset_id`` now, without a queue or a job lease."""
    version = version or hls.version_name(int(time.time() * 1000))
    client = backend_client(settings)
    built = produce_and_publish(settings, catalog, client, asset_id, version, NoGuard())
    with catalog.session() as session:
        assets.record_ready(session, asset_id, renditions_of(built), built.info.duration)
    return built
