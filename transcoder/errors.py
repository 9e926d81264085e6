"""The two ways a job can fail: the source itself, or something around it."""

from __future__ import annotations

import re

from transcoder.reasons import plain_words, scrub


class MediaError(Exception):
    """The source cannot become a ladder; retrying will not help.

    ``str()`` is the reason in plain words, for the catalog and whoever reads it;
    ``detail`` is the tool's own line (presigned queries cut), for the log.
    """

    def __init__(self, detail: str) -> None:
        self.detail = one_line(detail)
        super().__init__(plain_words(self.detail))


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


def transient_reason(exc: BaseException) -> str:
    """What a retried job shows while it waits: the error's kind and message, with no
    storage address, URL or memory address in it."""
    return scrub(one_line(f"{type(exc).__name__}: {exc}"))
