"""Huey tasks. ``huey_consumer transcoder.tasks.huey`` consumes them.

A task carries only a job id: the catalog's job row is the truth (lease, attempts,
status), so a task delivered twice, or after its job was cancelled, does nothing.
"""

from __future__ import annotations

import logging

from nebula.config import load_settings
from transcoder.queue import make_huey

log = logging.getLogger("nebula.transcoder")

settings = load_settings()
huey = make_huey(settings)


@huey.task()
def transcode(job_id: int) -> None:
    """Claim job ``job_id`` and publish its asset's HLS ladder."""
    raise NotImplementedError("transcoder issue")


@huey.task()
def remove(job_id: int) -> None:
    """Delete an asset's HLS output (after a DeleteObject of its source)."""
    raise NotImplementedError("transcoder issue")
