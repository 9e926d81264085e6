"""ffprobe of the source, read straight from the backend through a presigned URL.

ffmpeg reads HTTP with range requests, so a source whose ``moov`` sits at the end is
still probed and transcoded without a local copy.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

from nebulacore.s3 import S3Client
from transcoder.errors import MediaError, one_line

PRESIGN_SECONDS = 6 * 3600  # long enough for a long transcode of a big file
PROBE_TIMEOUT = 120
HDR_TRANSFERS = {"smpte2084": "pq", "arib-std-b67": "hlg"}


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
    audio = _first(streams, "audio")
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
    return info


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
    return SourceInfo(**{**info.as_dict(), **changes})
