"""Huey tasks. ``huey_consumer transcoder.tasks.huey`` consumes them (so does ``nebula worker``).

A task carries only a job id: the catalog's job row is the truth (lease, attempts,
status), so a task delivered twice, or after its job was cancelled, does nothing.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import Any

from huey.signals import SIGNAL_INTERRUPTED

from catalog import Catalog
from nebulacore.config import load_settings
from nebulaqueue.huey import make_huey

log = logging.getLogger(__name__)

settings = load_settings()
huey = make_huey(settings)
_catalog: Catalog | None = None


def catalog() -> Catalog:
    """This process's catalog engine, made on first use (importing this module stays cheap)."""
    global _catalog
    if _catalog is None:
        _catalog = Catalog.from_settings(settings)
    return _catalog


# Tasks return None: Huey would otherwise keep every return value in the queue's storage.
@huey.task()
def transcode(job_id: int) -> None:
    """Claim job ``job_id`` and publish its asset's HLS ladder."""
    from transcoder.work import run_job

    log.info("job %d: %s", job_id, run_job(settings, catalog(), job_id))


@huey.task()
def remove(job_id: int) -> None:
    """Delete an asset's HLS output (after a DeleteObject of its source)."""
    from transcoder.work import run_job

    log.info("job %d: %s", job_id, run_job(settings, catalog(), job_id))


def _every_reconcile_period(now: datetime) -> bool:
    # Huey wakes periodic tasks once a minute; NEBULA_RECONCILE_SECONDS rounds up to minutes
    # here. `nebula worker` runs its own timer at the exact period instead.
    minutes = max(1, math.ceil(settings.reconcile_seconds / 60))
    return (now.hour * 60 + now.minute) % minutes == 0


@huey.periodic_task(_every_reconcile_period)
def reconcile() -> None:
    """Relay the outbox, reap expired leases, record videos that bypassed the proxy."""
    from transcoder.reconcile import run_once

    run_once(settings, catalog())


@huey.signal(SIGNAL_INTERRUPTED)
def _requeue_on_shutdown(signal: str, task: Any, *args: Any) -> None:
    """SIGTERM stops the consumer with tasks in flight: kill their ffmpeg, give jobs back."""
    from transcoder.work import interrupt_all

    requeued = interrupt_all(catalog())
    if requeued:
        log.warning("worker stopping: re-queued jobs %s", requeued)
