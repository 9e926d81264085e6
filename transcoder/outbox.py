"""The outbox relay: turns catalog outbox events into Huey tasks.

The s3proxy calls :func:`relay_pending` right after an upload commits; the worker's
periodic reconcile calls it again, so an event whose enqueue failed (queue down) is
sent later. Sending twice is harmless: a task only acts on a claimable job row.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import select

from catalog import Catalog, OutboxEvent
from catalog.assets import TOPIC_REMOVE, TOPIC_TRANSCODE
from catalog.models import utcnow

if TYPE_CHECKING:
    from huey import Huey

log = logging.getLogger(__name__)


def _send(event: OutboxEvent, queue: Huey | None) -> None:
    from transcoder import tasks

    job_id = int(event.payload["job_id"])
    if event.topic == TOPIC_TRANSCODE:
        task = tasks.transcode
    elif event.topic == TOPIC_REMOVE:
        task = tasks.remove
    else:
        raise ValueError(f"unknown outbox topic {event.topic!r}")
    if queue is None:
        task(job_id)
    else:  # another queue than this process's default (tests, tools)
        from nebulaqueue.huey import enqueue_on

        enqueue_on(queue, task, job_id)


def relay_pending(catalog: Catalog, limit: int = 100, queue: Huey | None = None) -> int:
    """Enqueue up to ``limit`` unsent events (into ``queue``, default the tasks' own Huey);
    return how many were sent."""
    sent = 0
    with catalog.session() as session:
        query = (
            select(OutboxEvent)
            .where(OutboxEvent.sent_at.is_(None))
            .order_by(OutboxEvent.id)
            .limit(limit)
        )
        events = list(session.scalars(query))
    for event in events:
        try:
            _send(event, queue)
        except Exception as exc:  # queue down: leave it for the next relay
            log.warning("outbox event %d not queued: %s", event.id, exc)
            with catalog.session() as session:
                row = session.get(OutboxEvent, event.id)
                if row is not None:
                    row.attempts += 1
                    row.last_error = str(exc)[:500]
            break
        with catalog.session() as session:
            row = session.get(OutboxEvent, event.id)
            if row is not None:
                row.sent_at = utcnow()
                row.attempts += 1
        sent += 1
    return sent
