"""Checking the output before anything is published.

A truncated source can probe as whole (its header says 60 s) and ffmpeg can exit 0 after
writing 30 s: only comparing durations catches it.
"""

from __future__ import annotations

from pathlib import Path

from nebulacore.hls import MEDIA_PLAYLIST
from transcoder.errors import MediaError
from transcoder.playlist import read_media_playlist

TOLERANCE_SECONDS = 1.0


def verify_durations(out_dir: Path, renditions: list[str], source_duration: float) -> None:
    for name in renditions:
        playlist = out_dir / name / MEDIA_PLAYLIST
        if not playlist.is_file():
            raise MediaError(f"ffmpeg wrote no {name} rendition")
        produced = read_media_playlist(playlist)
        if not produced.segments:
            raise MediaError(f"the {name} rendition has no segments")
        if abs(produced.duration - source_duration) > TOLERANCE_SECONDS:
            raise MediaError(
                f"{name} rendition is {produced.duration:.2f}s but the source says "
                f"{source_duration:.2f}s: the source is truncated or damaged"
            )
