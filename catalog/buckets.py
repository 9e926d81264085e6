"""Who owns each bucket (all Nebula keys share one backend identity, so the catalog keeps
the owner S3 would know), and whether uploads to it are transcoded.

An owner is a principal name (``AccessKey.owner``): a key's own name unless it was
created with ``--owner``, and :data:`ADMIN_OWNER` for admin keys. A bucket without a row
(created before owners were recorded, or directly on the backend) belongs to the admin.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from catalog.cors import delete_cors
from catalog.db import upsert_insert
from catalog.models import BucketOwner, BucketSetting
from nebulacore.config import Settings

log = logging.getLogger(__name__)

# How long a service trusts its copy of the bucket settings: a change made with
# `nebula buckets` applies to uploads within this many seconds.
SETTINGS_TTL_SECONDS = 5.0
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


# ----- which buckets are transcoded ----------------------------------------------------


def transcode_settings(session: Session) -> dict[str, bool]:
    """Every bucket ``nebula buckets`` set: name -> transcoded."""
    return dict(session.execute(select(BucketSetting.bucket, BucketSetting.transcode)).all())


def set_transcode(session: Session, bucket: str, transcode: bool) -> None:
    """Uploads to ``bucket`` are transcoded (or not) from now on, whatever the default."""
    row = session.get(BucketSetting, bucket)
    if row is None:
        session.add(BucketSetting(bucket=bucket, transcode=transcode))
    else:
        row.transcode = transcode


def transcoded(settings: Mapping[str, bool], defaults: Iterable[str], bucket: str) -> bool:
    """The catalog's word for ``bucket``, else whether it is one of the ``defaults``."""
    return settings.get(bucket, bucket in defaults)


def transcoded_buckets(session: Session, defaults: Iterable[str]) -> list[str]:
    """Every bucket whose uploads are transcoded (some may not exist in storage yet)."""
    chosen = transcode_settings(session)
    names = set(chosen) | set(defaults)
    return sorted(name for name in names if transcoded(chosen, set(defaults), name))


class TranscodedBuckets:
    """The catalog's bucket settings as a service reads them on every upload: a snapshot
    refreshed at most every ``ttl`` seconds, so deciding costs no query (and a stalled
    catalog never stalls the decision: the last snapshot stands)."""

    def __init__(
        self,
        read: Callable[[], dict[str, bool]],
        defaults: Iterable[str],
        ttl: float = SETTINGS_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._defaults = frozenset(defaults)
        self._ttl = ttl
        self._clock = clock
        self._snapshot: dict[str, bool] = {}
        self._read_at: float | None = None

    def stale(self) -> bool:
        return self._read_at is None or self._clock() - self._read_at >= self._ttl

    def refresh(self) -> None:
        """Read the catalog (on a thread of the caller's choosing); keeps the last
        snapshot when the catalog does not answer."""
        started = self._clock()
        try:
            self._snapshot = self._read()
        except Exception as exc:
            log.warning("bucket settings unreadable, keeping the last ones: %s", exc)
        self._read_at = started

    def __call__(self, bucket: str) -> bool:
        return transcoded(self._snapshot, self._defaults, bucket)


SET_HINT = "nebula buckets transcode NAME"


@dataclass(frozen=True)
class BucketState:
    name: str
    transcoded: bool
    why: str
    output: bool = False  # the HLS bucket: written by the transcoder, never transcoded


def bucket_states(
    settings: Settings, names: list[str], chosen: dict[str, bool]
) -> list[BucketState]:
    """Each of ``names`` (the storage's buckets) with its state and where that came from."""
    states = []
    for name in names:
        if name == settings.hls_bucket:
            states.append(
                BucketState(name, False, "the HLS output (NEBULA_HLS_BUCKET)", output=True)
            )
        elif name in chosen:
            states.append(BucketState(name, chosen[name], f"set with `{SET_HINT}`"))
        else:
            is_default = transcoded(chosen, settings.ingest_buckets, name)
            origin = "in" if is_default else "not in"
            states.append(BucketState(name, is_default, f"default: {origin} NEBULA_INGEST_BUCKETS"))
    return states


def not_transcoded_line(states: list[BucketState]) -> str | None:
    """The warning ``nebula up`` prints: uploads to these are stored, never transcoded."""
    names = [s.name for s in states if not s.transcoded and not s.output]
    if not names:
        return None
    return f"not transcoded: {', '.join(names)} (uploads are stored only; `{SET_HINT}`)"
