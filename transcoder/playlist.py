"""Reading the VOD media playlists ffmpeg wrote: segment durations and files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Segment:
    uri: str
    duration: float


@dataclass(frozen=True)
class MediaPlaylist:
    segments: list[Segment]

    @property
    def duration(self) -> float:
        return sum(segment.duration for segment in self.segments)


def read_media_playlist(path: Path) -> MediaPlaylist:
    segments: list[Segment] = []
    pending: float | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#EXTINF:"):
            pending = float(line[len("#EXTINF:") :].split(",", 1)[0])
        elif line and not line.startswith("#") and pending is not None:
            segments.append(Segment(line, pending))
            pending = None
    return MediaPlaylist(segments)
