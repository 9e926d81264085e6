"""Choosing the rungs of the ladder: a pure function of the source size and the config.

Rungs are chosen by the short side after rotation, so a portrait 1080x1920 phone video
gets 1080p/720p/... just like a landscape one. We never upscale, every dimension is even
(H.264 4:2:0 needs it), and there is always at least one rung. A source between two
configured rungs (1278x718) gets a rung at its own size on top, so it is not served
only at 480p.
"""

from __future__ import annotations

from dataclasses import dataclass

# A source within this fraction above a configured rung counts as that rung (1088 -> 1080)
# rather than getting a near-duplicate rung of its own.
SNAP_TOLERANCE = 0.1
MIN_SHORT_SIDE = 16


@dataclass(frozen=True)
class Rung:
    width: int
    height: int
    video_kbps: int

    @property
    def short_side(self) -> int:
        return min(self.width, self.height)

    @property
    def name(self) -> str:
        return f"{self.short_side}p"


def even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def even_floor(value: int) -> int:
    return max(2, value // 2 * 2)


def scaled(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Dimensions with the given short side, aspect ratio kept, both even, never larger."""
    if width >= height:
        w, h = even(width * short_side / height), even(short_side)
    else:
        w, h = even(short_side), even(height * short_side / width)
    return min(w, even_floor(width)), min(h, even_floor(height))


def choose_ladder(width: int, height: int, rungs: list[tuple[int, int]]) -> list[Rung]:
    """Rungs for a ``width`` x ``height`` (displayed) source, tallest first.

    ``rungs`` is ``settings.ladder_rungs``: ``(short side, kbit/s)`` pairs.
    """
    if width < 2 or height < 2:
        raise ValueError(f"no ladder for a {width}x{height} picture")
    short = min(width, height)
    configured = sorted(rungs, reverse=True)
    fitting = [(side, kbps) for side, kbps in configured if side <= short]
    chosen: list[tuple[int, int]] = []
    between_rungs = bool(fitting) and short > fitting[0][0] * (1 + SNAP_TOLERANCE)
    if not fitting or (between_rungs and fitting[0][0] < configured[0][0]):
        chosen.append((short, _native_kbps(short, configured)))
    chosen.extend(fitting)
    result: list[Rung] = []
    for side, kbps in chosen:
        w, h = scaled(width, height, min(side, short))
        rung = Rung(w, h, kbps)
        if all(r.short_side != rung.short_side for r in result):
            result.append(rung)
    return result


def _native_kbps(short: int, configured: list[tuple[int, int]]) -> int:
    """A bitrate for an in-between size, interpolated by pixel count between neighbours."""
    above = [(side, kbps) for side, kbps in configured if side > short]
    below = [(side, kbps) for side, kbps in configured if side <= short]
    if above and below:
        (hi_side, hi_kbps), (lo_side, lo_kbps) = above[-1], below[0]
        t = (short**2 - lo_side**2) / (hi_side**2 - lo_side**2)
        return int(lo_kbps + t * (hi_kbps - lo_kbps))
    side, kbps = above[-1] if above else below[0]
    return max(100, int(kbps * (short / side) ** 2))
