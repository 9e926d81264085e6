"""The software path for real: source in SeaweedFS -> job -> published ladder, checked with ffprobe."""

from __future__ import annotations

import re
from pathlib import Path

from catalog import Asset, AssetStatus, Job, JobStatus
from tests.rows import existing
from tests.transcoder.conftest import Env, ffprobe
from transcoder.pipeline import transcode_asset
from transcoder.playlist import read_media_playlist
from transcoder.samples import make_source
from transcoder.work import run_job


def stream_infs(master: str) -> list[tuple[dict[str, str], str]]:
    lines = master.splitlines()
    found = []
    for index, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            attributes = dict(re.findall(r'([A-Z-]+)=("[^"]*"|[^,]*)', line.split(":", 1)[1]))
            found.append(({k: v.strip('"') for k, v in attributes.items()}, lines[index + 1]))
    return found


def iframe_stream_infs(master: str) -> list[tuple[dict[str, str], str]]:
    """(attributes, URI) of every EXT-X-I-FRAME-STREAM-INF line."""
    found = []
    for line in master.splitlines():
        if line.startswith("#EXT-X-I-FRAME-STREAM-INF:"):
            attributes = dict(re.findall(r'([A-Z-]+)=("[^"]*"|[^,]*)', line.split(":", 1)[1]))
            values = {k: v.strip('"') for k, v in attributes.items()}
            found.append((values, values["URI"]))
    return found


def keyframe_times(playlist: Path) -> list[float]:
    frames = ffprobe(
        playlist,
        "-select_streams",
        "v:0",
        "-skip_frame",
        "nokey",
        "-show_entries",
        "frame=pts_time",
    )["frames"]
    return [round(float(f["pts_time"]), 2) for f in frames]


def test_software_ladder_end_to_end(make_env, tmp_path: Path) -> None:
    env: Env = make_env()
    source = make_source(tmp_path / "clip.mp4", seconds=9, size="640x360", rate=15)
    asset_id, job_id = env.upload(source)

    assert run_job(env.settings, env.catalog, job_id) == "done"

    with env.catalog.session() as session:
        job, asset = existing(session, Job, job_id), existing(session, Asset, asset_id)
        assert job.status == JobStatus.DONE and job.progress == 100.0 and job.attempts == 1
        assert asset.status == AssetStatus.READY
        assert asset.duration is not None and abs(asset.duration - 9.0) < 0.1
        assert asset.probe is not None
        assert asset.probe["width"] == 640 and asset.probe["has_audio"]
        names = [r.name for r in asset.renditions]
    assert names == ["360p", "240p", "144p", "audio"]

    ladder = env.download_ladder(asset_id, tmp_path / "hls")
    master = (ladder / "master.m3u8").read_text()
    variants = stream_infs(master)
    # The finished master names the VOD playlists (the EVENT ones are for the early viewers).
    assert [v[1] for v in variants] == [f"v{job_id}/{n}/vod.m3u8" for n in ("360p", "240p", "144p")]
    assert f'URI="v{job_id}/audio/vod.m3u8"' in master
    keyframes = []
    for attributes, uri in variants:
        assert set(attributes) >= {
            "BANDWIDTH",
            "AVERAGE-BANDWIDTH",
            "RESOLUTION",
            "CODECS",
            "FRAME-RATE",
        }
        assert int(attributes["BANDWIDTH"]) >= int(attributes["AVERAGE-BANDWIDTH"]) > 0
        assert attributes["FRAME-RATE"] == "15.000"
        playlist = ladder / uri
        video = ffprobe(playlist, "-show_streams", "-select_streams", "v:0")["streams"][0]
        assert video["codec_name"] == "h264" and video["profile"] == "High"
        assert attributes["RESOLUTION"] == f"{video['width']}x{video['height']}"
        assert attributes["CODECS"] == f"avc1.6400{video['level']:02x},mp4a.40.2"
        assert abs(read_media_playlist(playlist).duration - 9.0) < 1.0
        keyframes.append(keyframe_times(playlist))
    # Same keyframes in every rung, one at every 4 s segment boundary.
    assert keyframes[0] == keyframes[1] == keyframes[2]
    start = keyframes[0][0]  # fMP4 starts at the encoder delay, not 0
    assert {4.0, 8.0} <= {round(t - start, 2) for t in keyframes[0]}

    audio = ffprobe(ladder / f"v{job_id}/audio/vod.m3u8", "-show_streams")["streams"][0]
    assert (audio["codec_name"], audio["profile"], audio["sample_rate"], audio["channels"]) == (
        "aac",
        "LC",
        "48000",
        2,
    )
    poster = ffprobe(ladder / "poster.jpg", "-show_streams")["streams"][0]
    assert poster["codec_name"] == "mjpeg" and poster["width"] == 640
    vtt = (ladder / "thumbnails.vtt").read_text()
    assert vtt.startswith("WEBVTT") and f"v{job_id}/sprite.jpg#xywh=0,0,160,90" in vtt
    assert (ladder / f"v{job_id}" / "sprite.jpg").stat().st_size > 0
    # One I-frame stream per rung, with the rung's resolution and video codec only.
    iframes = iframe_stream_infs(master)
    assert [uri for _, uri in iframes] == [
        f"v{job_id}/{n}/iframes.m3u8" for n in ("360p", "240p", "144p")
    ]
    for (stream, _), (variant, _) in zip(iframes, variants, strict=True):
        assert stream["RESOLUTION"] == variant["RESOLUTION"]
        assert stream["CODECS"] == variant["CODECS"].split(",")[0]
        assert int(stream["BANDWIDTH"]) >= int(stream["AVERAGE-BANDWIDTH"]) > 0
    # The ladder plays as a whole: every variant and the audio group decode.
    assert ffprobe(ladder / "master.m3u8", "-show_programs")["programs"]


def test_ts_segments(make_env, tmp_path: Path) -> None:
    env: Env = make_env(hls_segment_type="ts", ladder="240:300")
    asset_id, job_id = env.upload(make_source(tmp_path / "a.mp4", seconds=2))
    assert run_job(env.settings, env.catalog, job_id) == "done"
    keys = env.hls_keys(asset_id)
    assert any(k.endswith(".ts") for k in keys) and not any(k.endswith(".m4s") for k in keys)
    # VOD playlists for the finished ladder; no I-frame playlists (fMP4 only).
    assert f"{asset_id}/v{job_id}/240p/vod.m3u8" in keys
    assert not any(k.endswith("iframes.m3u8") for k in keys)
    with env.catalog.session() as session:
        codecs = {r.name: r.codecs for r in existing(session, Asset, asset_id).renditions}
    assert codecs["240p"].startswith("avc1.64") and codecs["audio"] == "mp4a.40.2"


def test_transcode_asset_without_a_queue(make_env, tmp_path: Path) -> None:
    """The entry point the origin tests use."""
    env: Env = make_env(ladder="240:300")
    asset_id, _ = env.upload(make_source(tmp_path / "a.mp4", seconds=2))
    built = transcode_asset(env.settings, env.catalog, asset_id)
    assert f"{asset_id}/master.m3u8" in env.hls_keys(asset_id)
    assert [r.name for r in built.renditions] == ["240p", "audio"]
    with env.catalog.session() as session:
        assert existing(session, Asset, asset_id).status == AssetStatus.READY


def test_storage_down_is_retried_not_failed(make_env, tmp_path: Path) -> None:
    """Not the source's fault: back to the queue (via the outbox) until out of attempts."""
    env: Env = make_env(ladder="144:150", job_max_attempts=2)
    asset_id, job_id = env.upload(make_source(tmp_path / "a.mp4", seconds=1))
    down = env.settings.model_copy(update={"backend_url": "http://127.0.0.1:9"})  # nothing listens

    assert run_job(down, env.catalog, job_id) == "retry"
    with env.catalog.session() as session:
        job = existing(session, Job, job_id)
        assert (job.status, job.attempts) == (JobStatus.QUEUED, 1)
        assert "EndpointConnectionError" in (job.error or "")
        assert existing(session, Asset, asset_id).status == AssetStatus.QUEUED

    assert run_job(down, env.catalog, job_id) == "retry"
    with env.catalog.session() as session:
        job = existing(session, Job, job_id)
        assert job.status == JobStatus.FAILED and "gave up after 2 attempts" in (job.error or "")
    assert run_job(env.settings, env.catalog, job_id) == "not claimable"


def test_cancel_after_ffmpeg_before_the_master_publishes_nothing(
    make_env, tmp_path: Path, monkeypatch
) -> None:
    """A cancel that lands after ffmpeg is done but before the master switch (inside the
    heartbeat's interval, where only the catalog knows) leaves no ladder and no ready asset."""
    from catalog import jobs
    from transcoder import publish

    env: Env = make_env(ladder="144:150", job_lease_seconds=600)
    asset_id, job_id = env.upload(make_source(tmp_path / "a.mp4", seconds=2))
    upload_version = publish._upload_version

    def upload_then_cancel(*args, **kwargs) -> None:
        upload_version(*args, **kwargs)
        assert jobs.cancel(env.catalog, job_id)

    monkeypatch.setattr(publish, "_upload_version", upload_then_cancel)
    assert run_job(env.settings, env.catalog, job_id) == "lease lost"
    assert env.hls_keys(asset_id) == []
    with env.catalog.session() as session:
        assert existing(session, Job, job_id).status == JobStatus.CANCELLED
        assert existing(session, Asset, asset_id).status != AssetStatus.READY


def test_a_stopped_runner_stops_its_own_jobs_only(make_env, tmp_path: Path) -> None:
    """Whether a worker is stopping belongs to its runner, not to the process: another
    runner in the same process still runs jobs."""
    from transcoder.work import JobRunner

    env: Env = make_env(ladder="144:150")
    asset_id, job_id = env.upload(make_source(tmp_path / "a.mp4", seconds=1))
    stopped = JobRunner(env.settings, env.catalog)
    assert stopped.interrupt_all(lambda topic, job: None) == []
    assert stopped.run(job_id) == "stopping"
    assert JobRunner(env.settings, env.catalog).run(job_id) == "done"
    assert f"{asset_id}/master.m3u8" in env.hls_keys(asset_id)
