"""The ONE ffmpeg process of a job, built with ffmpeg-python: decode once, split, scale
per rung, encode H.264 High + AAC, write HLS EVENT playlists (fMP4/CMAF or TS) that
:mod:`transcoder.live` publishes as they grow. A resumed job starts at a segment boundary
(``-ss``, ``-output_ts_offset``, ``-start_number``): boundaries are keyframes.

Keyframes are aligned across renditions on segment boundaries: every rung gets the same
fixed GOP (frame rate x segment length) and, for libx264, ``-force_key_frames`` at each
boundary with scene-cut keyframes off, so every segment of every rung starts with an IDR
at the same presentation time and players can switch at any boundary.

Three back-ends: ``none`` (libx264, the real path in CI), ``qsv`` (full hardware decode,
``vpp_qsv`` scaling, ``h264_qsv``) and ``vaapi`` (``scale_vaapi``, ``h264_vaapi``). The
hardware graphs are tested as golden argv lists: no Intel GPU exists in CI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg

from nebulacore.hls import MEDIA_PLAYLIST
from transcoder.ladder import Rung
from transcoder.probe import SourceInfo, Track

X264_PRESET = "veryfast"  # the speed/size balance a NUC sustains for 1080p in real time
AUDIO_KBPS = 128
SURROUND_KBPS = 384  # AC-3 5.1 (Apple's authoring spec: 384 kbit/s for 5.1)
SURROUND_CODEC = "ac3"
MAX_FPS = 60.0
QSV_DECODERS = {
    "h264": "h264_qsv",
    "hevc": "hevc_qsv",
    "vp9": "vp9_qsv",
    "av1": "av1_qsv",
    "mpeg2video": "mpeg2_qsv",
}
# Reading the source over HTTP: ride out a backend hiccup instead of failing the job.
HTTP_INPUT = {"reconnect": 1, "reconnect_on_network_error": 1, "reconnect_delay_max": 5}
GLOBAL_ARGS = ["-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-nostats"]


@dataclass(frozen=True)
class Plan:
    """Everything that decides the ffmpeg command; nothing else goes into it."""

    source: str  # presigned URL or local path
    info: SourceInfo
    rungs: list[Rung]
    out_dir: Path
    segment_seconds: int = 4
    segment_type: str = "fmp4"
    hwaccel: str = "none"
    device: str = "/dev/dri/renderD128"
    # Resume: the first segment to encode (segments before it are already published), and
    # how far the published ladder's timeline is shifted (the muxer moved it so its first
    # DTS is 0: the encoder's B-frame delay or the AAC priming, whichever is larger).
    start_segment: int = 0
    start_shift: float = 0.0

    @property
    def start_seconds(self) -> int:
        """Where a resumed encode starts in the source: a segment boundary (a keyframe)."""
        return self.start_segment * self.segment_seconds

    @property
    def fps(self) -> float:
        """The constant output frame rate (VFR sources become CFR at their average rate)."""
        return round(min(self.info.fps, MAX_FPS) or 25.0, 3)

    @property
    def gop(self) -> int:
        return max(1, round(self.fps * self.segment_seconds))

    @property
    def segment_ext(self) -> str:
        return "m4s" if self.segment_type == "fmp4" else "ts"

    @property
    def audio_names(self) -> list[str]:
        """``audio`` for the first audio track (the name a one-track source always had),
        ``audio_1``, ``audio_2``, ... for the others, in the source's order."""
        return [audio_name(i) for i in range(len(self.info.audio))]

    @property
    def surround(self) -> list[tuple[int, Track]]:
        """(position, track) of every multichannel audio track: each also gets a 5.1 AC-3
        rendition, in a second audio group (a film with stereo tracks only gets none)."""
        if not (self.info.has_video and self.rungs):
            return []
        return [(i, t) for i, t in enumerate(self.info.audio) if t.channels > 2]

    @property
    def surround_names(self) -> list[str]:
        return [surround_name(position) for position, _ in self.surround]

    @property
    def subtitle_names(self) -> list[str]:
        return [f"subs_{i}" for i in range(len(self.subtitles))]

    @property
    def subtitles(self) -> list[Track]:
        """Text subtitle tracks, extracted whole by the same ffmpeg (beside the ladder)."""
        return list(self.info.subtitle_tracks) if self.info.has_video and self.rungs else []

    def cues_file(self, subtitle_name: str) -> Path:
        """Where ffmpeg writes a subtitle track as one WebVTT file (not published: the
        segmented rendition is, :mod:`transcoder.subtitles`)."""
        return self.out_dir / f"{subtitle_name}.webvtt"

    @property
    def rendition_names(self) -> list[str]:
        """What ffmpeg's HLS output makes (subtitle renditions are made after it)."""
        return self.audio_names + self.surround_names + [rung.name for rung in self.rungs]


def audio_name(position: int) -> str:
    return "audio" if position == 0 else f"audio_{position}"


def surround_name(position: int) -> str:
    return f"{audio_name(position)}_51"


def build_argv(plan: Plan, progress: bool = True) -> list[str]:
    """The ffmpeg argv for ``plan`` (``-progress pipe:1`` first when ``progress``)."""
    source = ffmpeg.input(plan.source, **_input_options(plan))
    streams: list[Any] = _audio_streams(plan, source)
    if plan.info.has_video and plan.rungs:
        streams.extend(_video_streams(plan, source))
    output = ffmpeg.output(
        *streams, str(plan.out_dir / "%v" / MEDIA_PLAYLIST), **_output_options(plan)
    )
    if plan.subtitles:
        output = ffmpeg.merge_outputs(output, *_subtitle_outputs(plan, source))
    argv = list(output.compile(cmd="ffmpeg"))
    extra = ["-progress", "pipe:1"] if progress else []
    return [argv[0], *GLOBAL_ARGS, *extra, *argv[1:]]


# ----- input ------------------------------------------------------------------------------


def _input_options(plan: Plan) -> dict[str, Any]:
    options: dict[str, Any] = dict(HTTP_INPUT) if plan.source.startswith("http") else {}
    if plan.start_segment:
        # Input seeking (accurate: decoding starts at the keyframe before and drops frames
        # up to T), so the first encoded frame is the source's frame at T.
        options["ss"] = plan.start_seconds
    if plan.hwaccel == "qsv":
        options.update(hwaccel="qsv", hwaccel_output_format="qsv", qsv_device=plan.device)
        decoder = QSV_DECODERS.get(plan.info.video_codec or "")
        if decoder:
            options["c:v"] = decoder
    elif plan.hwaccel == "vaapi":
        options.update(hwaccel="vaapi", hwaccel_output_format="vaapi", hwaccel_device=plan.device)
    return options


# ----- audio and subtitles -----------------------------------------------------------------


def _audio_streams(plan: Plan, source: Any) -> list[Any]:
    """The stereo output of every track, then the 5.1 output of the multichannel ones
    (one decode each, ``asplit`` in two)."""
    stereo = [_audio_stream(plan, source, track) for track in plan.info.audio]
    surround = []
    for position, _ in plan.surround:
        branches = stereo[position].filter_multi_output("asplit", 2)
        stereo[position], second = branches[0], branches[1]
        surround.append(second)
    return stereo + surround


def _audio_stream(plan: Plan, source: Any, track: Track) -> Any:
    """Every audio track padded with silence to the title's length, so a shorter track
    (a commentary) still spans the whole title, as the video does."""
    stream = source["a:0"] if track.index < 0 else source[str(track.index)]
    if track.index < 0:
        return stream  # a plan built without track details (tests): the first track as is
    remaining = max(plan.info.duration - plan.start_seconds, 0.0)
    return stream.filter("apad", whole_dur=f"{remaining:.3f}")


def _subtitle_outputs(plan: Plan, source: Any) -> list[Any]:
    """One WebVTT file per text subtitle track, from the same ffmpeg (the source is read
    once). A resumed encode seeks its input, so it reads the subtitles from a second,
    unseeked input: the segmented rendition is made whole at the end."""
    if plan.start_segment:
        whole = {k: v for k, v in _input_options(plan).items() if k in HTTP_INPUT}
        source = ffmpeg.input(plan.source, **whole)
    return [
        ffmpeg.output(
            source[str(track.index)], str(plan.cues_file(name)), **{"c:s": "webvtt", "f": "webvtt"}
        )
        for name, track in zip(plan.subtitle_names, plan.subtitles, strict=True)
    ]


# ----- video graph ------------------------------------------------------------------------


def _video_streams(plan: Plan, source: Any) -> list[Any]:
    video = source["v:0"]
    if plan.hwaccel == "qsv":
        video = video.filter("vpp_qsv", framerate=plan.fps)
    elif plan.hwaccel == "vaapi":
        video = video.filter("fps", fps=plan.fps)
    else:
        video = _software_prepare(plan, video)
    branches = video.filter_multi_output("split", len(plan.rungs))
    return [_scale(plan, branches[i], rung) for i, rung in enumerate(plan.rungs)]


def _software_prepare(plan: Plan, video: Any) -> Any:
    if plan.info.hdr:
        video = tonemap_to_sdr(video)
    # The fps filter turns VFR into CFR (duplicating/dropping frames), so a fixed GOP in
    # frames is also a fixed duration and keyframes line up across rungs.
    return video.filter("fps", fps=plan.fps).filter("format", "yuv420p")


def tonemap_to_sdr(video: Any) -> Any:
    """HDR10 (PQ) or HLG -> SDR BT.709 with zscale + tonemap (hable, no desaturation)."""
    return (
        video.filter("zscale", t="linear", npl=100)
        .filter("format", "gbrpf32le")
        .filter("zscale", p="bt709")
        .filter("tonemap", tonemap="hable", desat=0)
        .filter("zscale", t="bt709", m="bt709", r="tv")
    )


def _scale(plan: Plan, branch: Any, rung: Rung) -> Any:
    if plan.hwaccel == "qsv":
        return branch.filter("vpp_qsv", w=rung.width, h=rung.height, format="nv12")
    if plan.hwaccel == "vaapi":
        return branch.filter("scale_vaapi", w=rung.width, h=rung.height, format="nv12")
    return branch.filter("scale", rung.width, rung.height).filter("setsar", "1")


# ----- output -----------------------------------------------------------------------------


def _output_options(plan: Plan) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if plan.info.audio:
        options.update({"c:a": "aac", "b:a": f"{AUDIO_KBPS}k", "ar": 48000, "ac": 2})
    first = len(plan.info.audio)  # the 5.1 outputs follow the stereo ones
    for offset in range(len(plan.surround)):
        index = first + offset
        options.update(
            {
                f"c:a:{index}": SURROUND_CODEC,
                f"b:a:{index}": f"{SURROUND_KBPS}k",
                f"ac:a:{index}": 6,
            }
        )
    if plan.info.has_video and plan.rungs:
        options.update(_encoder_options(plan))
        for index, rung in enumerate(plan.rungs):
            options.update(_rate_options(index, rung))
    options.update(_hls_options(plan))
    return options


def _encoder_options(plan: Plan) -> dict[str, Any]:
    gop = {"g": plan.gop, "keyint_min": plan.gop}
    if plan.hwaccel == "qsv":
        return {"c:v": "h264_qsv", "profile:v": "high", "bf": 3, "look_ahead": 0, **gop}
    if plan.hwaccel == "vaapi":
        return {"c:v": "h264_vaapi", "profile:v": "high", "rc_mode": "VBR", **gop}
    return {
        "c:v": "libx264",
        "profile:v": "high",
        "preset": X264_PRESET,
        "sc_threshold": 0,
        "force_key_frames": f"expr:gte(t,n_forced*{plan.segment_seconds})",
        **gop,
    }


def _rate_options(index: int, rung: Rung) -> dict[str, Any]:
    # Capped VBR: peaks stay near the nominal rate so BANDWIDTH stays honest.
    kbps = rung.video_kbps
    return {
        f"b:v:{index}": f"{kbps}k",
        f"maxrate:v:{index}": f"{int(kbps * 1.1)}k",
        f"bufsize:v:{index}": f"{kbps * 2}k",
    }


def _hls_options(plan: Plan) -> dict[str, Any]:
    streams: list[str] = []
    group = ",agroup:aud" if plan.rungs and plan.info.has_video else ""
    streams.extend(f"a:{i}{group},name:{name}" for i, name in enumerate(plan.audio_names))
    first = len(plan.audio_names)
    streams.extend(
        f"a:{first + j},agroup:aud51,name:{name}" for j, name in enumerate(plan.surround_names)
    )
    if plan.info.has_video:
        group = ",agroup:aud" if plan.info.audio else ""
        streams.extend(f"v:{i}{group},name:{rung.name}" for i, rung in enumerate(plan.rungs))
    options: dict[str, Any] = {
        "f": "hls",
        "hls_time": plan.segment_seconds,
        # EVENT: ffmpeg rewrites its playlist after every segment, which the live publisher
        # follows; temp_file: a segment appears under its final name only once complete.
        "hls_playlist_type": "event",
        "hls_flags": "independent_segments+temp_file",
        "hls_segment_type": "fmp4" if plan.segment_type == "fmp4" else "mpegts",
        "hls_segment_filename": str(plan.out_dir / "%v" / f"seg_%05d.{plan.segment_ext}"),
        "var_stream_map": " ".join(streams),
    }
    if plan.segment_type == "fmp4":
        options["hls_fmp4_init_filename"] = "init.mp4"
        # Fragment times are absolute (tfdt = the output timestamp) rather than relative
        # to the first packet with an edit list: a resumed encode's segments then follow
        # the published init segment and segments, and its init is the same as theirs.
        options["hls_segment_options"] = "movflags=+frag_discont"
    if plan.start_segment:
        # The resumed output carries on the published one: same timeline, same numbering.
        offset = f"{plan.start_seconds + plan.start_shift:.6f}".rstrip("0").rstrip(".")
        options.update(output_ts_offset=offset, start_number=plan.start_segment)
    return options
