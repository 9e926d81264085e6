"""The ffmpeg command: software flags, and QSV/VAAPI as golden argv (no GPU in CI)."""

from __future__ import annotations

from pathlib import Path

from transcoder.command import Plan, build_argv
from transcoder.ladder import Rung
from transcoder.probe import SourceInfo

INFO = SourceInfo(
    duration=10.0,
    has_video=True,
    has_audio=True,
    width=1920,
    height=1080,
    fps=30.0,
    video_codec="h264",
)
RUNGS = [Rung(1280, 720, 3000), Rung(640, 360, 800)]
OUT = Path("/work/out")
URL = "http://storage/media/a.mp4?X-Amz-Signature=x"


def plan(**changes: object) -> Plan:
    values: dict[str, object] = {
        "source": URL,
        "info": INFO,
        "rungs": RUNGS,
        "out_dir": OUT,
        "hwaccel": "none",
    }
    values.update(changes)
    return Plan(**values)  # type: ignore[arg-type]


def value_after(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


HLS_TAIL = [
    "-hls_flags",
    "independent_segments+temp_file",
    "-hls_fmp4_init_filename",
    "init.mp4",
    "-hls_playlist_type",
    "event",
    "-hls_segment_filename",
    "/work/out/%v/seg_%05d.m4s",
    "-hls_segment_options",
    "movflags=+frag_discont",
    "-hls_segment_type",
    "fmp4",
    "-hls_time",
    "4",
]
VAR_STREAM_MAP = [
    "-var_stream_map",
    "a:0,agroup:aud,name:audio v:0,agroup:aud,name:720p v:1,agroup:aud,name:360p",
]
HEAD = [
    "ffmpeg",
    "-hide_banner",
    "-nostdin",
    "-y",
    "-loglevel",
    "error",
    "-nostats",
    "-progress",
    "pipe:1",
]
HTTP = ["-reconnect", "1", "-reconnect_delay_max", "5", "-reconnect_on_network_error", "1"]
AUDIO = ["-ac", "2", "-ar", "48000", "-b:a", "128k"]
RATES = ["-b:v:0", "3000k", "-b:v:1", "800k"]


def test_qsv_golden_argv() -> None:
    assert build_argv(plan(hwaccel="qsv")) == [
        *HEAD,
        "-c:v",
        "h264_qsv",
        "-hwaccel",
        "qsv",
        "-hwaccel_output_format",
        "qsv",
        "-qsv_device",
        "/dev/dri/renderD128",
        *HTTP,
        "-i",
        URL,
        "-filter_complex",
        "[0:v:0]vpp_qsv=framerate=30.0[s0];[s0]split=2[s1][s2];"
        "[s1]vpp_qsv=format=nv12:h=720:w=1280[s3];[s2]vpp_qsv=format=nv12:h=360:w=640[s4]",
        "-map",
        "0:a:0",
        "-map",
        "[s3]",
        "-map",
        "[s4]",
        "-f",
        "hls",
        *AUDIO,
        *RATES,
        "-bf",
        "3",
        "-bufsize:v:0",
        "6000k",
        "-bufsize:v:1",
        "1600k",
        "-c:a",
        "aac",
        "-c:v",
        "h264_qsv",
        "-g",
        "120",
        *HLS_TAIL,
        "-keyint_min",
        "120",
        "-look_ahead",
        "0",
        "-maxrate:v:0",
        "3300k",
        "-maxrate:v:1",
        "880k",
        "-profile:v",
        "high",
        *VAR_STREAM_MAP,
        "/work/out/%v/index.m3u8",
    ]


def test_vaapi_golden_argv() -> None:
    assert build_argv(plan(hwaccel="vaapi")) == [
        *HEAD,
        "-hwaccel",
        "vaapi",
        "-hwaccel_device",
        "/dev/dri/renderD128",
        "-hwaccel_output_format",
        "vaapi",
        *HTTP,
        "-i",
        URL,
        "-filter_complex",
        "[0:v:0]fps=fps=30.0[s0];[s0]split=2[s1][s2];"
        "[s1]scale_vaapi=format=nv12:h=720:w=1280[s3];[s2]scale_vaapi=format=nv12:h=360:w=640[s4]",
        "-map",
        "0:a:0",
        "-map",
        "[s3]",
        "-map",
        "[s4]",
        "-f",
        "hls",
        *AUDIO,
        *RATES,
        "-bufsize:v:0",
        "6000k",
        "-bufsize:v:1",
        "1600k",
        "-c:a",
        "aac",
        "-c:v",
        "h264_vaapi",
        "-g",
        "120",
        *HLS_TAIL,
        "-keyint_min",
        "120",
        "-maxrate:v:0",
        "3300k",
        "-maxrate:v:1",
        "880k",
        "-profile:v",
        "high",
        "-rc_mode",
        "VBR",
        *VAR_STREAM_MAP,
        "/work/out/%v/index.m3u8",
    ]


def test_software_aligns_keyframes_on_segment_boundaries() -> None:
    argv = build_argv(plan())
    assert value_after(argv, "-c:v") == "libx264"
    assert value_after(argv, "-force_key_frames") == "expr:gte(t,n_forced*4)"
    assert value_after(argv, "-sc_threshold") == "0"
    assert value_after(argv, "-g") == value_after(argv, "-keyint_min") == "120"
    assert value_after(argv, "-profile:v") == "high"
    graph = value_after(argv, "-filter_complex")
    assert "fps=fps=30.0" in graph and "split=2" in graph  # decode once, CFR, split


def test_hdr_source_is_tone_mapped_to_bt709() -> None:
    graph = value_after(
        build_argv(plan(info=SourceInfo(**{**INFO.as_dict(), "hdr": "pq"}))), "-filter_complex"
    )
    assert "tonemap=desat=0:tonemap=hable" in graph
    assert "zscale=m=bt709:r=tv:t=bt709" in graph


def test_audio_only_has_one_audio_rendition() -> None:
    info = SourceInfo(duration=5.0, has_video=False, has_audio=True)
    argv = build_argv(plan(info=info, rungs=[]))
    assert value_after(argv, "-var_stream_map") == "a:0,name:audio"
    assert "-c:v" not in argv and "-filter_complex" not in argv


def test_video_only_has_no_audio_group() -> None:
    info = SourceInfo(**{**INFO.as_dict(), "has_audio": False})
    argv = build_argv(plan(info=info))
    assert value_after(argv, "-var_stream_map") == "v:0,name:720p v:1,name:360p"
    assert "-c:a" not in argv


def test_ts_segments_by_config() -> None:
    argv = build_argv(plan(segment_type="ts"))
    assert value_after(argv, "-hls_segment_type") == "mpegts"
    assert value_after(argv, "-hls_segment_filename").endswith(".ts")
    assert "-hls_fmp4_init_filename" not in argv


def test_vfr_becomes_cfr_at_the_average_rate() -> None:
    info = SourceInfo(**{**INFO.as_dict(), "fps": 23.976, "vfr": True})
    argv = build_argv(plan(info=info))
    assert "fps=fps=23.976" in value_after(argv, "-filter_complex")
    assert value_after(argv, "-g") == "96"


def test_resumed_encode_starts_at_a_segment_boundary() -> None:
    argv = build_argv(plan(start_segment=3))
    # Input seeking (before -i) to the boundary, the same timeline and numbering after it.
    assert argv.index("-ss") < argv.index("-i") and value_after(argv, "-ss") == "12"
    assert value_after(argv, "-output_ts_offset") == "12"
    assert value_after(argv, "-start_number") == "3"
    fresh = build_argv(plan())
    assert "-ss" not in fresh and "-start_number" not in fresh
