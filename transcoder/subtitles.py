"""Text subtitle renditions: the WebVTT file ffmpeg extracted, cut into segments that
line up with the video's, each with an ``X-TIMESTAMP-MAP`` onto the video's timeline.

The trap this module exists for: a WebVTT segment's cue times are "local" times that a
player places on the media timeline through ``X-TIMESTAMP-MAP=MPEGTS:<90 kHz>,LOCAL:<t>``,
and the media timeline of fMP4 segments is not the source's. The muxer shifts every
stream so the first decode time is 0 (the encoder's B-frame delay), so the video frame
at source time 0 is presented at some PTS > 0 in the segments. We read that PTS from
the output itself (the top rung's first packet) and map LOCAL 0 onto it; cue times are
the source's, measured from where the video starts. A cue spanning a segment boundary is
repeated in each segment it overlaps (players drop the duplicate).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from nebulacore.hls import MEDIA_PLAYLIST
from transcoder.command import Plan
from transcoder.live import first_packet_time
from transcoder.master import WEBVTT_CODEC, Measured, measure
from transcoder.playlist import EventPlaylist, Segment, read_media_playlist
from transcoder.tracks import subtitle_alternates

MPEG_CLOCK = 90_000
TIMING = re.compile(r"^\s*(?P<start>[\d:.]+)\s+-->\s+(?P<end>[\d:.]+)(?P<settings>.*)$")


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    settings: str  # cue settings after the end time, kept as written ("" or " line:0")
    text: str


def parse_webvtt(text: str) -> list[Cue]:
    """The cues of a WebVTT file (identifiers, NOTE and STYLE blocks dropped)."""
    cues = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip()):
        lines = block.split("\n")
        timing = next((i for i, line in enumerate(lines) if "-->" in line), None)
        if timing is None:
            continue
        match = TIMING.match(lines[timing])
        if match is None:
            continue
        payload = "\n".join(lines[timing + 1 :]).strip()
        if payload:
            start, end = seconds(match["start"]), seconds(match["end"])
            cues.append(Cue(start, end, match["settings"].rstrip(), payload))
    return cues


def seconds(timestamp: str) -> float:
    """``hh:mm:ss.ttt`` or ``mm:ss.ttt`` -> seconds."""
    total = 0.0
    for part in timestamp.split(":"):
        total = total * 60 + float(part)
    return total


def timestamp(value: float) -> str:
    millis = round(max(value, 0.0) * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def segment_text(cues: list[Cue], start: float, end: float, mpegts: int) -> str:
    """One WebVTT segment: the cues overlapping ``[start, end)`` of the title."""
    lines = ["WEBVTT", f"X-TIMESTAMP-MAP=MPEGTS:{mpegts},LOCAL:00:00:00.000", ""]
    for cue in cues:
        if cue.start < end and cue.end > start:
            lines += [
                f"{timestamp(cue.start)} --> {timestamp(cue.end)}{cue.settings}",
                cue.text,
                "",
            ]
    return "\n".join(lines) + "\n"


def write_rendition(
    cues: list[Cue], segments: list[Segment], target: Path, mpegts: int, version: int
) -> None:
    """``target``/seg_<n>.vtt for every video segment, and its ended media playlist."""
    target.mkdir(parents=True, exist_ok=True)
    playlist = EventPlaylist(max(round(s.duration) for s in segments), version)
    start = 0.0
    for number, segment in enumerate(segments):
        name = f"seg_{number:05d}.vtt"
        end = start + segment.duration
        (target / name).write_text(segment_text(cues, start, end, mpegts))
        playlist.segments.append(Segment(name, segment.duration))
        start = end
    (target / MEDIA_PLAYLIST).write_text(playlist.render(ended=True))


def make_subtitles(plan: Plan) -> list[Measured]:
    """Every text subtitle rendition of ``plan`` (after ffmpeg, with the video on disk)."""
    if not plan.subtitles:
        return []
    video = plan.out_dir / plan.rungs[0].name / MEDIA_PLAYLIST
    segments = read_media_playlist(video).segments
    mpegts = round(first_packet_time(video) * MPEG_CLOCK)
    version = 7 if plan.segment_type == "fmp4" else 3
    measured = []
    alternates = subtitle_alternates(plan.subtitles)
    for name, alternate in zip(plan.subtitle_names, alternates, strict=True):
        cues = [
            Cue(c.start - plan.info.video_start, c.end - plan.info.video_start, c.settings, c.text)
            for c in parse_webvtt(plan.cues_file(name).read_text(encoding="utf-8"))
        ]
        write_rendition(cues, segments, plan.out_dir / name, mpegts, version)
        peak, average = measure(plan.out_dir / name)
        measured.append(Measured(name, peak, average, WEBVTT_CODEC, alternate=alternate))
    return measured
