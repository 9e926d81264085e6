"""Parsing ffmpeg's ``-progress pipe:1`` output: blocks of ``key=value`` lines, each block
ending with ``progress=continue`` (or ``progress=end``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    seconds: float  # output position
    fps: float | None
    speed: float | None
    done: bool

    def percent(self, duration: float) -> float:
        if duration <= 0:
            return 0.0
        return max(0.0, min(100.0, 100.0 * self.seconds / duration))


def parse_progress(lines: Iterable[str]) -> Iterator[Progress]:
    """One :class:`Progress` per block; unknown keys and malformed values are ignored."""
    block: dict[str, str] = {}
    for raw in lines:
        key, sep, value = raw.strip().partition("=")
        if not sep:
            continue
        block[key] = value.strip()
        if key == "progress":
            yield _snapshot(block)
            block = {}


def _snapshot(block: dict[str, str]) -> Progress:
    micros = _number(block.get("out_time_us")) or _number(block.get("out_time_ms"))
    # ffmpeg 5.1 writes microseconds under both keys (out_time_ms is misnamed).
    return Progress(
        seconds=(micros or 0.0) / 1_000_000,
        fps=_number(block.get("fps")),
        speed=_number((block.get("speed") or "").rstrip("x")),
        done=block.get("progress") == "end",
    )


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "", "N/A") else None
    except ValueError:
        return None
    return value if value is None or value >= 0 else None
