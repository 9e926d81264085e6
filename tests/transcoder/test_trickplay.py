"""Trick play: I-frame playlists that decode through the origin, and scrub thumbnails that
show the moment their cue names.

The source's picture is a flat grey whose level says which second it is (``geq`` on
``T``), so a thumbnail or an I-frame can be read back as a time.
"""

from __future__ import annotations

import re
import struct
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.stacks import start_origin
from tests.transcoder.conftest import Env, ffprobe
from tests.transcoder.test_pipeline import iframe_stream_infs
from transcoder.errors import MediaError
from transcoder.playlist import Segment, parse_media_playlist
from transcoder.trickplay import leading_iframe
from transcoder.work import run_job

SECONDS = 13  # four 4 s cues, the last one short
# Limited-range luma of second ``s``: 40, 55, ... 220; 15 levels apart survives x264 and JPEG.
BASE, STEP = 40, 15
CUE = re.compile(r"^([\d:.]+) --> ([\d:.]+)\n(\S+)#xywh=(\d+),(\d+),(\d+),(\d+)$", re.MULTILINE)
BYTERANGE = re.compile(r"#EXT-X-BYTERANGE:(\d+)@(\d+)\n(\S+)")


def timed_source(path: Path) -> Path:
    """A clip whose every frame is a flat grey telling its second: luma BASE + STEP * s."""
    picture = f"nullsrc=s=320x180:r=25:d={SECONDS},geq=lum='{BASE}+{STEP}*floor(T)':cb=128:cr=128"
    argv = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", picture, "-f", "lavfi"]
    argv += ["-i", f"sine=d={SECONDS}", "-c:v", "libx264", "-preset", "ultrafast"]
    argv += ["-pix_fmt", "yuv420p", "-c:a", "aac", str(path)]
    subprocess.run(argv, check=True, capture_output=True, timeout=120)
    return path


def second_shown(image: Path, crop: str = "iw:ih:0:0") -> float:
    """Which second of :func:`timed_source` a picture (or a crop of it) shows."""
    argv = ["ffmpeg", "-v", "error", "-i", str(image), "-vf", f"crop={crop},format=gray"]
    gray = subprocess.run(
        [*argv, "-frames:v", "1", "-f", "rawvideo", "-"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    full_range = sum(gray) / len(gray)  # JPEG and ffmpeg's gray are full range
    return (full_range * 219 / 255 + 16 - BASE) / STEP


def seconds_of(timestamp: str) -> float:
    hours, minutes, seconds = timestamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


@pytest.fixture
def ladder(make_env, tmp_path: Path) -> tuple[Env, str, Path]:
    env: Env = make_env(ladder="180:200,144:100")
    asset_id, job_id = env.upload(timed_source(tmp_path / "timed.mp4"))
    assert run_job(env.settings, env.catalog, job_id) == "done"
    return env, asset_id, env.download_ladder(asset_id, tmp_path / "hls")


def test_every_thumbnail_shows_the_start_of_its_cue(ladder: tuple[Env, str, Path]) -> None:
    _, _, folder = ladder
    cues = CUE.findall((folder / "thumbnails.vtt").read_text())
    assert len(cues) == 4
    for start, _end, sprite, x, y, w, h in cues:
        shown = second_shown(folder / sprite, f"{w}:{h}:{x}:{y}")
        # Neither a step early nor black: the keyframe at the cue's start, to the second.
        assert round(shown) == seconds_of(start), (start, shown)


def fetch(url: str, byte_range: tuple[int, int] | None = None) -> bytes:
    request = urllib.request.Request(url)
    if byte_range is not None:
        offset, length = byte_range
        request.add_header("Range", f"bytes={offset}-{offset + length - 1}")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == (206 if byte_range else 200)
        return bytes(response.read())


def test_every_iframe_range_decodes_as_one_key_frame_through_the_origin(
    ladder: tuple[Env, str, Path], tmp_path: Path
) -> None:
    env, asset_id, _ = ladder
    origin = start_origin(tmp_path, env.env_vars())
    try:
        base = f"{origin.url}/hls/{asset_id}"
        master = fetch(f"{base}/master.m3u8").decode()
        streams = iframe_stream_infs(master)
        assert [s["RESOLUTION"] for s, _ in streams] == ["320x180", "256x144"]
        for _, uri in streams:
            folder = uri.rsplit("/", 1)[0]
            text = fetch(f"{base}/{uri}").decode()
            assert "#EXT-X-I-FRAMES-ONLY" in text and "#EXT-X-PLAYLIST-TYPE:VOD" in text
            playlist = parse_media_playlist(text)
            assert playlist.init is not None and playlist.ended
            init = fetch(f"{base}/{folder}/{playlist.init}")
            ranges = BYTERANGE.findall(text)
            assert len(ranges) == len(playlist.segments) == 4  # one per 4 s segment
            for index, (length, offset, segment) in enumerate(ranges):
                sample = tmp_path / f"{folder.replace('/', '-')}-{index}.mp4"
                sample.write_bytes(
                    init + fetch(f"{base}/{folder}/{segment}", (int(offset), int(length)))
                )
                frames = ffprobe(sample, "-show_entries", "frame=key_frame,pict_type")["frames"]
                assert [(f["key_frame"], f["pict_type"]) for f in frames] == [(1, "I")], segment
                # The I-frame of segment i is the picture at its start.
                picture = tmp_path / f"{sample.stem}.png"
                decode = ["ffmpeg", "-v", "error", "-y", "-i", str(sample), "-frames:v", "1"]
                subprocess.run(
                    [*decode, str(picture)],
                    check=True,
                    capture_output=True,
                    timeout=60,
                )
                assert round(second_shown(picture)) == 4 * index
    finally:
        origin.stop()


# ----- the fragment reader on hand-made boxes -----------------------------------------------

STYP = struct.pack(">I4s4s", 12, b"styp", b"iso6")
DEFAULT_BASE_IS_MOOF, DEFAULT_SIZE, DEFAULT_FLAGS = 0x20000, 0x10, 0x20
DATA_OFFSET, FIRST_SAMPLE_FLAGS = 0x1, 0x4
SYNC, NON_SYNC = 0x02000000, 0x01010000  # depends on no other / is a non-sync sample


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def fragment(tfhd_flags: int, tfhd_fields: bytes, first_flags: int | None) -> bytes:
    """styp, then a moof (tfhd with those defaults, a trun of 3 samples whose data offset
    points past the mdat header and, given ``first_flags``, the first sample's flags), then
    an mdat of 100 bytes; as the HLS muxer lays a segment out."""

    def moof(offset: int) -> bytes:
        flags = DATA_OFFSET | (FIRST_SAMPLE_FLAGS if first_flags is not None else 0)
        fields = struct.pack(">IIi", flags, 3, offset)
        if first_flags is not None:
            fields += struct.pack(">I", first_flags)
        tfhd = box(b"tfhd", struct.pack(">II", tfhd_flags, 1) + tfhd_fields)
        return box(b"moof", box(b"mfhd", bytes(8)) + box(b"traf", tfhd + box(b"trun", fields)))

    size = len(moof(0))
    return STYP + moof(size + 8) + box(b"mdat", bytes(100))


def test_the_first_sample_is_read_from_trun_and_the_tfhd_defaults(tmp_path: Path) -> None:
    path = tmp_path / "seg_00000.m4s"
    defaults = DEFAULT_BASE_IS_MOOF | DEFAULT_SIZE | DEFAULT_FLAGS
    path.write_bytes(fragment(defaults, struct.pack(">II", 40, SYNC), None))
    frame = leading_iframe(path, Segment(path.name, 4.0))
    moof_size = struct.unpack_from(">I", path.read_bytes(), len(STYP))[0]
    # From the moof to the end of the first sample: moof, mdat header, 40 bytes.
    assert (frame.offset, frame.length) == (len(STYP), moof_size + 8 + 40)
    # trun's first-sample flags win over tfhd's defaults: a non-key start is refused.
    path.write_bytes(fragment(defaults, struct.pack(">II", 40, SYNC), NON_SYNC))
    with pytest.raises(MediaError, match="key frame"):
        leading_iframe(path, Segment(path.name, 4.0))
    path.write_bytes(fragment(DEFAULT_BASE_IS_MOOF, b"", SYNC))  # no size anywhere
    with pytest.raises(MediaError, match="sample sizes"):
        leading_iframe(path, Segment(path.name, 4.0))
