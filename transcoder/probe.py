"""ffprobe of the source, read straight from the backend through a presigned URL.

ffmpeg reads HTTP with range requests, so a source whose ``moov`` sits at the end is
still probed and transcoded without a local copy.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from typing import Any

from nebulacore.s3 import S3Client
from transcoder.errors import MediaError, one_line

PRESIGN_SECONDS = 6 * 3600  # long enough for a long transcode of a big file
PROBE_TIMEOUT = 120
HDR_TRANSFERS = {"smpte2084": "pq", "arib-std-b67": "hlg"}
# Subtitles that are text, which ffmpeg's webvtt encoder writes (styling dropped).
TEXT_SUBTITLES = frozenset({"subrip", "srt", "ass", "ssa", "mov_text", "webvtt", "text"})
# Subtitles that are pictures: converting them needs OCR.
IMAGE_SUBTITLES = {
    "hdmv_pgs_subtitle": "PGS",
    "dvd_subtitle": "VobSub",
    "dvb_subtitle": "DVB",
    "xsub": "XSUB",
}


@dataclass(frozen=True)
class Track:
    """One audio or subtitle stream of the source, as its tags and dispositions say."""

    index: int  # the stream's index in the source (ffmpeg's ``-map 0:<index>``)
    codec: str | None = None
    language: str | None = None  # the tag as written (``eng``, ``fre``, ``en-US``)
    title: str | None = None
    channels: int = 0
    default: bool = False
    forced: bool = False
    hearing_impaired: bool = False
    visual_impaired: bool = False
    comment: bool = False


@dataclass(frozen=True)
class NotCarried:
    """Something of the source the ladder does not carry, and why (never dropped silently)."""

    kind: str  # ffprobe's codec_type (``subtitle``, ``data``, ``attachment``), or ``chapters``
    reason: str
    index: int | None = None
    codec: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class SourceInfo:
    """What the ladder and the command need to know about a source."""

    duration: float
    has_video: bool
    has_audio: bool
    width: int = 0  # as displayed, i.e. after rotation
    height: int = 0
    rotation: int = 0
    fps: float = 0.0  # average frame rate, the CFR target
    vfr: bool = False
    video_codec: str | None = None
    pix_fmt: str | None = None
    hdr: str | None = None  # "pq" (HDR10) or "hlg"
    audio_codec: str | None = None
    # Where the video starts in ffmpeg's input timeline (stream start - format start):
    # subtitle cues are moved by it onto the video's timeline.
    video_start: float = 0.0
    audio_tracks: tuple[Track, ...] = ()
    subtitle_tracks: tuple[Track, ...] = ()  # text subtitles, carried as WebVTT
    not_carried: tuple[NotCarried, ...] = ()

    @property
    def audio(self) -> list[Track]:
        """The audio tracks to carry (one unnamed track when only ``has_audio`` is known)."""
        if self.audio_tracks or not self.has_audio:
            return list(self.audio_tracks)
        return [Track(index=-1)]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def presigned_url(client: S3Client, bucket: str, key: str) -> str:
    return str(
        client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=PRESIGN_SECONDS
        )
    )


def run_ffprobe(url: str) -> dict[str, Any]:
    argv = ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams"]
    argv += ["-show_chapters"]
    result = subprocess.run(
        [*argv, url], capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False
    )
    if result.returncode != 0:
        raise MediaError(f"ffprobe: {one_line(result.stderr or 'cannot read the file')}")
    return dict(json.loads(result.stdout or "{}"))


def probe(url: str) -> SourceInfo:
    return parse_probe(run_ffprobe(url))


def parse_probe(data: dict[str, Any]) -> SourceInfo:
    streams = data.get("streams", [])
    video = _first(streams, "video")
    # An audio track ffmpeg has no decoder for is not carried (rather than failing the job).
    audio = next((s for s in streams if _decodable_audio(s)), None)
    if video is None and audio is None:
        raise MediaError("the file has no video or audio track")
    duration = _duration(data, video or audio or {})
    if duration <= 0:
        raise MediaError("the file holds no playable media (its length is zero)")
    info = SourceInfo(duration=duration, has_video=video is not None, has_audio=audio is not None)
    if audio is not None:
        info = _replace(info, audio_codec=audio.get("codec_name"))
    if video is not None:
        info = _replace(info, **_video_fields(video))
        info = _replace(info, video_start=_start(video) - _start(data.get("format", {})))
    subtitles, not_carried = _classify(streams, video)
    if data.get("chapters"):
        count = len(data["chapters"])
        not_carried.append(NotCarried("chapters", f"{count} chapters: no chapter track yet"))
    return _replace(
        info,
        audio_tracks=tuple(_track(s) for s in streams if _decodable_audio(s)),
        subtitle_tracks=tuple(subtitles),
        not_carried=tuple(not_carried),
    )


def _track(stream: dict[str, Any]) -> Track:
    tags = {str(k).lower(): v for k, v in stream.get("tags", {}).items()}
    disposition = stream.get("disposition", {})
    return Track(
        index=int(stream.get("index", 0)),
        codec=stream.get("codec_name"),
        language=tags.get("language"),
        title=tags.get("title"),
        channels=int(stream.get("channels") or 0),
        default=bool(disposition.get("default")),
        forced=bool(disposition.get("forced")),
        hearing_impaired=bool(disposition.get("hearing_impaired")),
        visual_impaired=bool(disposition.get("visual_impaired")),
        comment=bool(disposition.get("comment")),
    )


def _classify(
    streams: list[dict[str, Any]], video: dict[str, Any] | None
) -> tuple[list[Track], list[NotCarried]]:
    """The text subtitle tracks to carry, and every other stream that is not carried."""
    subtitles: list[Track] = []
    dropped: list[NotCarried] = []
    for stream in streams:
        kind, codec = str(stream.get("codec_type")), stream.get("codec_name")
        if _decodable_audio(stream) or stream is video:
            continue
        reason = _not_carried_reason(kind, codec, stream, video is not None)
        if reason is None:
            subtitles.append(_track(stream))
            continue
        track = _track(stream)
        dropped.append(NotCarried(kind, reason, track.index, codec, track.language))
    return subtitles, dropped


def _not_carried_reason(
    kind: str, codec: str | None, stream: dict[str, Any], has_video: bool
) -> str | None:
    """Why a stream is not carried; None for a text subtitle track that is."""
    if kind == "subtitle":
        if codec in IMAGE_SUBTITLES:
            return f"{IMAGE_SUBTITLES[codec]} subtitles are pictures: not converted to text"
        if codec not in TEXT_SUBTITLES:
            return f"subtitle format {codec} is not converted"
        return None if has_video else "subtitles of a source without video are not carried"
    if kind == "video":
        if stream.get("disposition", {}).get("attached_pic"):
            return "cover art is not carried"
        return "only the first video track is transcoded"
    if kind == "audio":
        return "no decoder for this audio codec"
    if kind == "attachment":
        return "attachments (fonts, images) are not carried"
    if kind == "data":
        return "data streams (timecode, metadata) are not carried"
    return f"{kind} streams are not carried"


def _decodable_audio(stream: dict[str, Any]) -> bool:
    return stream.get("codec_type") == "audio" and bool(stream.get("codec_name"))


def _start(entry: dict[str, Any]) -> float:
    try:
        return float(str(entry.get("start_time")))
    except ValueError:
        return 0.0


def _first(streams: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    for stream in streams:
        # Cover art is a "video" stream of one picture: not a video.
        if stream.get("codec_type") == kind and not stream.get("disposition", {}).get(
            "attached_pic"
        ):
            return stream
    return None


def _duration(data: dict[str, Any], stream: dict[str, Any]) -> float:
    for value in (data.get("format", {}).get("duration"), stream.get("duration")):
        try:
            return float(str(value))
        except ValueError:
            continue
    return 0.0


def _rate(text: str | None) -> float:
    try:
        value = Fraction(text or "0")
    except (ValueError, ZeroDivisionError):
        return 0.0
    return float(value)


def rotation_of(video: dict[str, Any]) -> int:
    """Clockwise display rotation in degrees (tags in old files, side data in new ones)."""
    rotate = video.get("tags", {}).get("rotate")
    if rotate is None:
        for side in video.get("side_data_list", []):
            if "rotation" in side:
                rotate = -int(side["rotation"])  # side data counts counter-clockwise
    try:
        return int(rotate or 0) % 360
    except ValueError:
        return 0


def _video_fields(video: dict[str, Any]) -> dict[str, Any]:
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    if width <= 0 or height <= 0:
        raise MediaError("the video track has no picture size: the file is damaged")
    rotation = rotation_of(video)
    if rotation in (90, 270):
        width, height = height, width
    avg, real = _rate(video.get("avg_frame_rate")), _rate(video.get("r_frame_rate"))
    fps = avg or real or 25.0
    return {
        "width": width,
        "height": height,
        "rotation": rotation,
        "fps": fps,
        "vfr": bool(avg and real and abs(avg - real) > 0.01),
        "video_codec": video.get("codec_name"),
        "pix_fmt": video.get("pix_fmt"),
        "hdr": HDR_TRANSFERS.get(str(video.get("color_transfer"))),
    }


def _replace(info: SourceInfo, **changes: Any) -> SourceInfo:
    return replace(info, **changes)
