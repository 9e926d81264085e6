"""Each bucket's CORS rules: read by every s3proxy worker per request, written by
Put/DeleteBucketCors and dropped with the bucket.

A worker keeps the rules it parsed with their ``revision`` and asks, per request, only for
the current revision (a primary-key read of one short column); a change made through any
worker or replica is seen by all of them on their next request.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from catalog.db import upsert_insert
from catalog.models import CorsConfiguration, utcnow

Rules = list[dict[str, Any]]


def cors_revision(session: Session, bucket: str) -> str | None:
    """The revision of ``bucket``'s rules; None when it has none."""
    return session.scalar(
        select(CorsConfiguration.revision).where(CorsConfiguration.bucket == bucket)
    )


def cors_rules(session: Session, bucket: str) -> tuple[str, Rules] | None:
    """``bucket``'s (revision, rules); None when it has none."""
    row = session.get(CorsConfiguration, bucket)
    return None if row is None else (row.revision, row.rules)


def put_cors(session: Session, bucket: str, rules: Rules) -> str:
    """Replace ``bucket``'s rules (concurrent writers: the last one wins, as on S3);
    returns their new revision."""
    revision = uuid.uuid4().hex
    changed = {"rules": rules, "revision": revision, "updated_at": utcnow()}
    statement = upsert_insert(session)(CorsConfiguration).values(bucket=bucket, **changed)
    session.execute(statement.on_conflict_do_update(index_elements=["bucket"], set_=changed))
    return revision


def delete_cors(session: Session, bucket: str) -> None:
    session.execute(delete(CorsConfiguration).where(CorsConfiguration.bucket == bucket))
