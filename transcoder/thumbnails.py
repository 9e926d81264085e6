"""Poster JPEG, thumbnail sprite and the WebVTT track that points into it (``#xywh``).

Made from the ladder already on local disk (not the source), so the source is decoded
only once: the poster from the top rung, the sprite from the smallest one. Both decode
keyframes only (``-skip_frame nokey``): the ladder has one at every segment boundary, so
thumbnails every segment (or a multiple) cost next to nothing.
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

from transcoder.errors import MediaError, one_line

THUMB_WIDTH = 160
MAX_THUMBS = 100
COLUMNS = 10
POSTER_MAX_WIDTH = 1280
KEYFRAMES_ONLY = ("-skip_frame", "nokey")
# A keyframe this much before a cue's start still counts as its (timestamp rounding).
KEYFRAME_SLACK = 0.05


@dataclass(frozen=True)
class SpriteLayout:
    interval: float
    count: int
    columns: int
    rows: int
    width: int
    height: int


def sprite_layout(duration: float, width: int, height: int, step: int = 4) -> SpriteLayout:
    """Thumbnails every ``step`` seconds (the keyframe spacing), or a multiple of it."""
    interval = float(step * max(1, math.ceil(duration / (MAX_THUMBS * step))))
    count = max(1, math.ceil(duration / interval))
    columns = min(COLUMNS, count)
    thumb_height = max(2, round(THUMB_WIDTH * height / width / 2) * 2)
    return SpriteLayout(
        interval, count, columns, math.ceil(count / columns), THUMB_WIDTH, thumb_height
    )


def _ffmpeg(*args: str) -> None:
    argv = ["ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error", *args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        raise MediaError(f"thumbnails: {one_line(result.stderr)}")


def make_poster(playlist: Path, duration: float, target: Path, step: int = 4) -> None:
    """The keyframe at the second segment (the first is often a fade-in), or the first."""
    at = step if duration > 2 * step else 0
    scale = f"scale='min({POSTER_MAX_WIDTH},iw)':-2"
    # Output-side -ss (drop until): input seeking in an fMP4 HLS playlist misses.
    _ffmpeg(
        *KEYFRAMES_ONLY, "-i", str(playlist), "-ss", str(at), "-frames:v", "1",
        "-vf", scale, "-q:v", "3", str(target),
    )  # fmt: skip


def tile_selector(interval: float) -> str:
    """A ``select`` expression passing the first keyframe of every cue: the one at or just
    after ``index * interval`` (counted from the first frame), exactly what the cue of
    :func:`webvtt` promises. (The ``fps`` filter it replaces resamples instead: a frame
    comes out only once the next one arrives, so the last tile stayed black.)"""

    def tile(time: str) -> str:
        return f"floor(({time}-start_t+{KEYFRAME_SLACK})/{interval:g})"

    first = "eq(n\\,0)"
    return f"{first}+gt({tile('t')}\\,{tile('prev_selected_t')})"


def make_sprite(playlist: Path, layout: SpriteLayout, target: Path) -> None:
    graph = (
        f"select='{tile_selector(layout.interval)}',"
        f"scale={layout.width}:{layout.height},tile={layout.columns}x{layout.rows}"
    )
    _ffmpeg(
        *KEYFRAMES_ONLY,
        "-i",
        str(playlist),
        "-vf",
        graph,
        "-frames:v",
        "1",
        "-update",
        "1",
        "-q:v",
        "5",
        str(target),
    )


def webvtt(layout: SpriteLayout, duration: float, sprite_uri: str) -> str:
    cues = ["WEBVTT", ""]
    for index in range(layout.count):
        start = index * layout.interval
        end = min(duration, start + layout.interval)
        x = (index % layout.columns) * layout.width
        y = (index // layout.columns) * layout.height
        cues += [
            f"{_timestamp(start)} --> {_timestamp(end)}",
            f"{sprite_uri}#xywh={x},{y},{layout.width},{layout.height}",
            "",
        ]
    return "\n".join(cues)


def _timestamp(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"
