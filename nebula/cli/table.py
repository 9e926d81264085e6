"""Plain-text tables for the CLI: every column has a header, widths fit the content."""

from __future__ import annotations

from collections.abc import Sequence


def render(headers: Sequence[str], rows: Sequence[Sequence[object]], right: str = "") -> str:
    """``headers`` over ``rows``; columns whose header is in ``right`` are right-aligned.
    The last column is never padded (it may be long: a reason, an object name)."""
    cells = [[str(h) for h in headers], *[["-" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = []
        for i, cell in enumerate(row):
            if i == len(row) - 1:
                parts.append(cell)
            elif headers[i] in right:
                parts.append(cell.rjust(widths[i]))
            else:
                parts.append(cell.ljust(widths[i]))
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)
