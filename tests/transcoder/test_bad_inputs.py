"""Every bad input of the issue: a correct ladder, or ``failed`` with one line from ffmpeg,
with no retry storm and nothing published."""

from __future__ import annotations

import itertools
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from catalog import Asset, AssetStatus, Job, JobStatus, OutboxEvent
from tests.rows import existing
from tests.transcoder.conftest import Env, ffprobe
from transcoder.samples import make_source
from transcoder.work import run_job

BAD_LADDER = "240:300,144:150"


def zero_byte(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def text_named_mp4(path: Path) -> Path:
    path.write_text("this is not a video, only text with an .mp4 name\n" * 20)
    return path


def truncated(path: Path, faststart: bool) -> Path:
    extra = ("-movflags", "+faststart") if faststart else ()
    full = make_source(path.with_suffix(".full.mp4"), seconds=3, extra=extra)
    data = full.read_bytes()
    path.write_bytes(data[: len(data) * 55 // 100])
    return path


def hdr10_hevc(path: Path) -> Path:
    params = "colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:hdr10=1:log-level=error"
    return make_source(
        path,
        seconds=2,
        size="320x240",
        video_args=(
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p10le",
            "-x265-params",
            params,
            "-tag:v",
            "hvc1",
        ),
    )


def rotated(path: Path) -> Path:
    """A 320x240 clip whose video track matrix says: display rotated by 90 degrees.

    ffmpeg 5.1 can no longer write rotation metadata, so the tkhd matrix is patched the
    way a phone writes it.
    """
    source = make_source(path.with_suffix(".plain.mp4"), seconds=2)
    data = bytearray(source.read_bytes())
    matrix = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    start = 0
    while (box := data.find(b"tkhd", start)) >= 0:
        width = struct.unpack(">I", data[box + 80 : box + 84])[0]
        if width:  # the video track (audio tracks have no size)
            data[box + 44 : box + 80] = matrix
        start = box + 4
    path.write_bytes(bytes(data))
    return path


def vfr(path: Path) -> Path:
    # Drop two frames of three after the first second: the rate changes mid-stream.
    return make_source(
        path,
        seconds=3,
        video_args=(
            "-vf",
            r"select='lt(t\,1)+not(mod(n\,3))'",
            "-fps_mode",
            "vfr",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ),
    )


Maker = Callable[[Path], Path]
CASES: dict[str, tuple[str, Maker]] = {
    "zero_byte": ("failed", zero_byte),
    "text_named_mp4": ("failed", text_named_mp4),
    "moov_missing": ("failed", lambda p: truncated(p, faststart=False)),
    "truncated_faststart": ("failed", lambda p: truncated(p, faststart=True)),
    "audio_only": ("ready", lambda p: make_source(p.with_suffix(".m4a"), seconds=2, video=False)),
    "video_only": ("ready", lambda p: make_source(p, seconds=2, audio=False)),
    "rotated": ("ready", rotated),
    "odd_dimensions": ("ready", lambda p: make_source(p, seconds=2, size="321x241")),
    "vfr": ("ready", vfr),
    "hdr10_hevc": ("ready", hdr10_hevc),
    "4k": ("ready", lambda p: make_source(p, seconds=1, size="3840x2160", rate=10)),
}


# What a person reads (transcoder/reasons.py): plain words, never ffmpeg's line.
REASONS = {
    "zero_byte": "the source is empty (0 bytes)",
    "text_named_mp4": "not a video or audio file Nebula can read",
    "moov_missing": "the file is incomplete: its MP4 index (the moov atom) is missing",
    "truncated_faststart": "truncated or damaged",
}
INTERNALS = ("http", "127.0.0.1", "0x", "X-Amz", "ffmpeg:", "ffprobe:")


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(case: str, make_env, tmp_path: Path) -> None:
    expected, maker = CASES[case]
    ladder = f"2160:4000,{BAD_LADDER}" if case == "4k" else BAD_LADDER
    env: Env = make_env(ladder=ladder)
    source = maker(tmp_path / f"{case}.mp4")
    asset_id, job_id = env.upload(source)

    outcome = run_job(env.settings, env.catalog, job_id)

    with env.catalog.session() as session:
        job, asset = existing(session, Job, job_id), existing(session, Asset, asset_id)
        status, error, attempts = job.status, job.error, job.attempts
        asset_status, renditions = (
            asset.status,
            [(r.name, r.width, r.height) for r in asset.renditions],
        )
        requeued = session.query(OutboxEvent).filter(OutboxEvent.sent_at.is_(None)).count()
    if expected == "failed":
        assert outcome == "failed"
        assert status == JobStatus.FAILED and asset_status == AssetStatus.FAILED
        assert error and "\n" not in error and len(error) <= 300
        print(f"{case}: {error}")
        assert REASONS[case] in error
        assert not [word for word in INTERNALS if word in error], error
        assert env.settings.backend_endpoint.split("//")[1] not in error
        assert attempts == 1 and requeued == 1  # only the upload's own event: no retry queued
        assert env.hls_keys(asset_id) == []  # nothing published
        assert run_job(env.settings, env.catalog, job_id) == "not claimable"  # no storm
        return
    assert outcome == "done", error
    assert status == JobStatus.DONE and asset_status == AssetStatus.READY
    keys = env.hls_keys(asset_id)
    assert f"{asset_id}/master.m3u8" in keys
    check = CHECKS.get(case)
    if check:
        check(env, asset_id, renditions, tmp_path)


def _check_audio_only(env: Env, asset_id: str, renditions: list, tmp_path: Path) -> None:
    assert [r[0] for r in renditions] == ["audio"]
    master = (env.download_ladder(asset_id, tmp_path / "hls") / "master.m3u8").read_text()
    assert 'CODECS="mp4a.40.2"' in master and "RESOLUTION" not in master
    assert "poster.jpg" not in " ".join(env.hls_keys(asset_id))


def _check_video_only(env: Env, asset_id: str, renditions: list, tmp_path: Path) -> None:
    assert [r[0] for r in renditions] == ["240p", "144p"]
    master = (env.download_ladder(asset_id, tmp_path / "hls") / "master.m3u8").read_text()
    assert "mp4a" not in master and "EXT-X-MEDIA" not in master


def probed(env: Env, asset_id: str) -> dict:
    with env.catalog.session() as session:
        return dict(existing(session, Asset, asset_id).probe or {})


def _check_rotated(env: Env, asset_id: str, renditions: list, tmp_path: Path) -> None:
    assert probed(env, asset_id)["rotation"] in (90, 270)  # the source really is rotated
    # A 320x240 picture displayed rotated is a 240x320 portrait video.
    assert renditions[:2] == [("240p", 240, 320), ("144p", 144, 192)]


def _check_odd(env: Env, asset_id: str, renditions: list, tmp_path: Path) -> None:
    assert renditions[0][1:] == (320, 240)
    assert all(w % 2 == 0 and h % 2 == 0 for _, w, h in renditions[:-1])


def _check_vfr(env: Env, asset_id: str, renditions: list, tmp_path: Path) -> None:
    assert probed(env, asset_id)["vfr"]  # the source really is VFR
    ladder = env.download_ladder(asset_id, tmp_path / "hls")
    playlist = next(ladder.glob("v*/240p/index.m3u8"))
    frames = ffprobe(playlist, "-select_streams", "v:0", "-show_entries", "frame=pts_time")
    times = [float(f["pts_time"]) for f in frames["frames"]]
    steps = {round(b - a, 3) for a, b in itertools.pairwise(times)}
    assert max(steps) - min(steps) < 0.002  # constant frame rate out


def _check_hdr(env: Env, asset_id: str, renditions: list, tmp_path: Path) -> None:
    source = probed(env, asset_id)
    assert (source["hdr"], source["video_codec"], source["pix_fmt"]) == (
        "pq",
        "hevc",
        "yuv420p10le",
    )
    ladder = env.download_ladder(asset_id, tmp_path / "hls")
    playlist = next(ladder.glob("v*/240p/index.m3u8"))
    stream = ffprobe(playlist, "-show_streams", "-select_streams", "v:0")["streams"][0]
    assert stream["codec_name"] == "h264" and stream["pix_fmt"] == "yuv420p"
    assert stream.get("color_transfer") != "smpte2084"


def _check_4k(env: Env, asset_id: str, renditions: list, tmp_path: Path) -> None:
    assert renditions[0] == ("2160p", 3840, 2160)


CHECKS = {
    "audio_only": _check_audio_only,
    "video_only": _check_video_only,
    "rotated": _check_rotated,
    "odd_dimensions": _check_odd,
    "vfr": _check_vfr,
    "hdr10_hevc": _check_hdr,
    "4k": _check_4k,
}


def test_missing_ffmpeg_reason_is_kept(tmp_path: Path) -> None:
    """The one-line reason is ffmpeg's own words (here: the moov atom)."""
    path = truncated(tmp_path / "t.mp4", faststart=False)
    result = subprocess.run(["ffprobe", "-v", "error", str(path)], capture_output=True, text=True)
    assert "moov atom not found" in result.stderr
