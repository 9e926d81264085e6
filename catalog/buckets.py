"""Who owns each bucket: all Nebula keys share one backend identity, so the catalog keeps
the owner S3 would know.

An owner is a principal name (``AccessKey.owner``): a key's own name unless it was
created with ``--owner``, and :data:`ADMIN_OWNER` for admin keys. A bucket without a row
(created before owners were recorded, or directly on the backend) belongs to the admin.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from catalog.cors import delete_cors
from catalog.db import upsert_insert
from catalog.models import BucketOwner

ADMIN_OWNER = "admin"
OWNER_MAX = 128  # the column's length


def valid_owner(name: str) -> bool:
    """Printable, trimmed, not too long: owners are shown in S3 XML and CLI tables."""
    return 0 < len(name) <= OWNER_MAX and name.isprintable() and name == name.strip()


def owner_id(owner: str) -> str:
    """The owner's canonical id, shaped as S3's (64 hex digits), stable for a name."""
    return hashlib.sha256(f"nebula-owner:{owner}".encode()).hexdigest()


def recorded_owner(session: Session, bucket: str) -> str | None:
    """The owner recorded for ``bucket``, if any."""
    return session.scalar(select(BucketOwner.owner).where(BucketOwner.bucket == bucket))


def bucket_owner(session: Session, bucket: str) -> str:
    """The owner of ``bucket``; the admin when no owner was recorded."""
    owner = recorded_owner(session, bucket)
    return owner if owner is not None else ADMIN_OWNER


def record_owner(session: Session, bucket: str, owner: str) -> None:
    """``owner`` created ``bucket``: a row left by an earlier bucket of that name is
    replaced (the backend said the name was free)."""
    statement = upsert_insert(session)(BucketOwner).values(bucket=bucket, owner=owner)
    session.execute(
        statement.on_conflict_do_update(index_elements=["bucket"], set_={"owner": owner})
    )


def forget_owner(session: Session, bucket: str) -> None:
    """``bucket`` was deleted: its name is free for anyone."""
    session.execute(delete(BucketOwner).where(BucketOwner.bucket == bucket))


def forget_bucket(session: Session, bucket: str) -> None:
    """``bucket`` was deleted: its owner and its CORS rules go (a new bucket of that name
    starts bare, as on S3)."""
    forget_owner(session, bucket)
    delete_cors(session, bucket)
