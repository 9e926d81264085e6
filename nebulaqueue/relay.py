"""The outbox relay: turns catalog outbox events into queued tasks.

The s3proxy calls :func:`relay_pending` right after an upload commits; the worker's
periodic reconcile calls it again, so an event whose enqueue failed (queue down) is
sent later. Sending twice is harmless: a task only acts on a claimable job row.

The relay does not know the tasks: the caller hands it an :data:`Enqueue` (in practice
``transcoder.tasks.tasks_for(settings).enqueue``), so the queue layer never imports a service.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import select

from catalog import Catalog, OutboxEvent
from catalog.models import utcnow

log = logging.getLogger(__name__)

# enqueue(topic, job_id): put the task for one outbox event on the queue; raises if it cannot.
Enqueue = Callable[[str, int], None]


def relay_pending(catalog: Catalog, enqueue: Enqueue, limit: int = 100) -> int:
    """Enqueue up to ``limit`` unsent events; return how many were sent."""
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
            enqueue(event.topic, int(event.payload["job_id"]))
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
