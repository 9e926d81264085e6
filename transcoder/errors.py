"""The two ways a job can fail: the source itself, or something around it."""

from __future__ import annotations

import re


class MediaError(Exception):
    """The source cannot become a ladder (ffmpeg's reason); retrying will not help."""

    def __init__(self, reason: str) -> None:
        super().__init__(one_line(reason))


class LeaseLost(Exception):
    """The job was cancelled, superseded or reaped while we worked: publish nothing."""


class Interrupted(Exception):
    """The worker is shutting down (SIGTERM); the job goes back to the queue."""


# ffmpeg names its input in errors; a presigned URL's query is a credential and a signature.
PRESIGNED_QUERY = re.compile(r"(https?://[^\s?]+)\?\S*")


# Closing lines ffmpeg prints after the real reason: keep the reason in front of them.
GENERIC = ("Invalid data found when processing input", "Conversion failed!", "Error opening")


def one_line(text: str, limit: int = 300) -> str:
    """The most telling line of ffmpeg's stderr: the last non-empty one (after the real
    reason when it is a generic closing line), trimmed, with presigned URLs cut to their
    path."""
    lines = [PRESIGNED_QUERY.sub(r"\1", raw.strip()) for raw in text.splitlines() if raw.strip()]
    if not lines:
        return "unknown error"
    line = lines[-1]
    if len(lines) > 1 and any(marker in line for marker in GENERIC):
        line = f"{lines[-2]}; {line}"
    return line if len(line) <= limit else line[: limit - 1] + "…"
