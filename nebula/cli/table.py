"""Plain-text tables for the CLI: every column has a header, widths fit the content, and
the whole fits the terminal: the widest columns give way, cut with an ellipsis."""

from __future__ import annotations

import shutil
from collections.abc import Sequence

ELLIPSIS = "…"
# A cut column keeps at least this many characters (and its header's).
MIN_CUT_WIDTH = 8
# The width assumed when the output is no terminal (a pipe, a file): what `less` shows.
DEFAULT_WIDTH = 160
GAP = "  "
SIZE_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def human_size(size: int | None) -> str | None:
    """``117200000`` -> ``"117.2 MB"`` (decimal units, as ``aws s3 ls --human-readable``
    and ``assets show``)."""
    if size is None:
        return None
    value = float(size)
    for unit in SIZE_UNITS:
        if abs(value) < 1000 or unit == SIZE_UNITS[-1]:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("not reached")


def terminal_width() -> int:
    """The terminal's columns (``COLUMNS`` wins, as for every tool), or a wide default."""
    return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + ELLIPSIS


def fit(widths: list[int], headers: Sequence[str], total: int) -> list[int]:
    """Narrow the widest columns, one character at a time, until the row fits ``total``."""
    widths = list(widths)
    floors = [max(MIN_CUT_WIDTH, len(h)) for h in headers]
    while sum(widths) + len(GAP) * (len(widths) - 1) > total:
        candidates = [i for i, w in enumerate(widths) if w > floors[i]]
        if not candidates:
            break  # even the floors do not fit: the terminal wraps, nothing is lost
        widest = max(candidates, key=lambda i: widths[i])
        widths[widest] -= 1
    return widths


def render(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    right: str = "",
    width: int | None = None,
    whole_last: bool = False,
) -> str:
    """``headers`` over ``rows``; columns whose header is in ``right`` are right-aligned.
    Rows are at most ``width`` characters (default: the terminal's); the last column is
    never padded, and never cut when ``whole_last`` (a reason that must be read whole:
    the terminal wraps it)."""
    cells = [[str(h) for h in headers], *[["-" if c is None else str(c) for c in r] for r in rows]]
    natural = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    total = terminal_width() if width is None else width
    if whole_last:
        widths = [*fit(natural[:-1], headers[:-1], total), natural[-1]]
    else:
        widths = fit(natural, headers, total)
    lines = []
    for row in cells:
        parts = []
        for i, cell in enumerate(row):
            text = cut(cell, widths[i])
            if i == len(row) - 1:
                parts.append(text)
            elif headers[i] in right.split():
                parts.append(text.rjust(widths[i]))
            else:
                parts.append(text.ljust(widths[i]))
        lines.append(GAP.join(parts).rstrip())
    return "\n".join(lines)
