"""Reading and writing media playlists: ffmpeg's (segment durations and files, the
``EXT-X-MAP`` init segment) and ours (the EVENT playlists the live publisher puts)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from nebulacore.hls import ENDLIST, MEDIA_PLAYLIST, VOD_PLAYLIST

MAP_TAG = "#EXT-X-MAP:"


@dataclass(frozen=True)
class Segment:
    uri: str
    duration: float


@dataclass(frozen=True)
class MediaPlaylist:
    segments: list[Segment]
    init: str | None = None  # the EXT-X-MAP URI (fMP4), None with TS
    ended: bool = False

    @property
    def duration(self) -> float:
        return sum(segment.duration for segment in self.segments)


@dataclass
class EventPlaylist:
    """Our copy of one rendition's media playlist: only segments already in storage."""

    target_duration: int
    version: int = 7
    init: str | None = None
    segments: list[Segment] = field(default_factory=list)

    def render(self, ended: bool = False, kind: str = "EVENT") -> str:
        """The playlist text. Kept EVENT when it ends: RFC 8216 6.2.1 lets a server only
        append to a playlist (EXT-X-ENDLIST included), never change its PLAYLIST-TYPE; the
        VOD copy for new viewers is another file (:func:`write_vod_playlist`)."""
        lines = header(self.target_duration, self.segments, self.version, kind)
        if self.init is not None:
            lines.append(f'{MAP_TAG}URI="{self.init}"')
        for segment in self.segments:
            lines += [f"#EXTINF:{segment.duration:.6f},", segment.uri]
        if ended:
            lines.append(ENDLIST)
        return "\n".join(lines) + "\n"


def header(target_duration: int, segments: list[Segment], version: int, kind: str) -> list[str]:
    """The tags every media playlist we write starts with (``kind``: EVENT or VOD)."""
    longest = max((round(s.duration) for s in segments), default=0)
    return [
        "#EXTM3U",
        f"#EXT-X-VERSION:{version}",
        f"#EXT-X-TARGETDURATION:{max(target_duration, longest)}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        f"#EXT-X-PLAYLIST-TYPE:{kind}",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]


def write_vod_playlist(rendition_dir: Path, target_duration: int, version: int) -> None:
    """Next to a rendition's ended EVENT playlist, the VOD playlist of the same segments
    (Apple's authoring spec: VOD content says PLAYLIST-TYPE:VOD)."""
    ended = read_media_playlist(rendition_dir / MEDIA_PLAYLIST)
    vod = EventPlaylist(target_duration, version, ended.init, list(ended.segments))
    (rendition_dir / VOD_PLAYLIST).write_text(vod.render(ended=True, kind="VOD"))


def parse_media_playlist(text: str) -> MediaPlaylist:
    segments: list[Segment] = []
    init: str | None = None
    ended = False
    pending: float | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXTINF:"):
            pending = float(line[len("#EXTINF:") :].split(",", 1)[0])
        elif line.startswith(MAP_TAG):
            init = _map_uri(line[len(MAP_TAG) :])
        elif line == ENDLIST:
            ended = True
        elif line and not line.startswith("#") and pending is not None:
            segments.append(Segment(line, pending))
            pending = None
    return MediaPlaylist(segments, init, ended)


def _map_uri(attributes: str) -> str | None:
    for part in attributes.split(","):
        name, _, value = part.partition("=")
        if name.strip() == "URI":
            return value.strip().strip('"')
    return None


def read_media_playlist(path: Path) -> MediaPlaylist:
    return parse_media_playlist(path.read_text())


def segment_count(duration: float, segment_seconds: int) -> int:
    """How many segments a ``duration``-long rendition has (the last one may be short)."""
    return max(1, math.ceil(duration / segment_seconds - 1e-6))
