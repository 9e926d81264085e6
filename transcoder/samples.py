"""Generated test sources (ffmpeg lavfi ``testsrc2`` + ``sine``), for tests and benchmarks."""

from __future__ import annotations

import subprocess
from pathlib import Path


def make_source(
    path: Path,
    seconds: float = 3.0,
    size: str = "320x240",
    rate: int = 30,
    audio: bool = True,
    video: bool = True,
    video_args: tuple[str, ...] = (
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
    ),
    extra: tuple[str, ...] = (),
) -> Path:
    """Write a ``seconds``-long clip to ``path`` (container from its extension)."""
    argv = ["ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
    if video:
        argv += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]
    if audio:
        argv += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}"]
    if video:
        argv += list(video_args)
    if audio:
        argv += ["-c:a", "aac", "-b:a", "96k"]
    argv += [*extra, str(path)]
    subprocess.run(argv, check=True, capture_output=True, timeout=600)
    return path
