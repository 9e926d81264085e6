"""The catalog's tables. Portable between PostgreSQL and SQLite: no dialect-only types."""

from __future__ import annotations

import enum
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    Select,
    String,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_asset_id() -> str:
    """12 lowercase base32-ish characters: safe in URLs and storage keys, hard to guess."""
    alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
    return "".join(secrets.choice(alphabet) for _ in range(12))


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both engines (SQLite drops the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the catalog")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class AssetStatus(enum.StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    # Transcoding, and its first segments are published: watchable while it is made.
    PLAYABLE = "playable"
    READY = "ready"
    FAILED = "failed"
    # Its transcode was cancelled (``nebula jobs cancel``) before any ladder was published.
    CANCELLED = "cancelled"
    DELETED = "deleted"


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


# An asset whose ladder is still to come (its transcode job is open).
PENDING_ASSET = (AssetStatus.QUEUED, AssetStatus.PROCESSING, AssetStatus.PLAYABLE)
# A job still to run or running; every other status is final.
OPEN_JOB = (JobStatus.QUEUED, JobStatus.RUNNING)


class JobKind(enum.StrEnum):
    TRANSCODE = "transcode"
    REMOVE = "remove"


class Topic(enum.StrEnum):
    """What an outbox event asks for; the values are on the wire (outbox rows, the relay)."""

    TRANSCODE = "transcode"
    REMOVE = "remove"


# The outbox topic that announces a queued job of each kind.
TOPIC_OF_KIND = {JobKind.TRANSCODE: Topic.TRANSCODE, JobKind.REMOVE: Topic.REMOVE}


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _enum(cls: type[enum.Enum]) -> Enum:
    # Stored as plain strings so both engines and migrations agree.
    return Enum(cls, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


class Asset(Base):
    """One source object in an ingest bucket, and the state of its HLS ladder."""

    __tablename__ = "assets"
    __table_args__ = (UniqueConstraint("bucket", "key", name="uq_assets_bucket_key"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_asset_id)
    bucket: Mapped[str] = mapped_column(String(63))
    key: Mapped[str] = mapped_column(String(1024))
    etag: Mapped[str | None] = mapped_column(String(128))
    size: Mapped[int | None] = mapped_column(BigInteger)
    content_type: Mapped[str | None] = mapped_column(String(255))
    probe: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    duration: Mapped[float | None] = mapped_column(Float)
    status: Mapped[AssetStatus] = mapped_column(_enum(AssetStatus), default=AssetStatus.QUEUED)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Indexed: every origin worker polls for assets changed in the last seconds.
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, index=True
    )

    renditions: Mapped[list[Rendition]] = relationship(
        back_populates="asset", cascade="all, delete-orphan", order_by="Rendition.height.desc()"
    )
    jobs: Mapped[list[Job]] = relationship(
        back_populates="asset", cascade="all, delete-orphan", order_by="Job.id"
    )


class Rendition(Base):
    """One variant stream of a published ladder, as the master playlist describes it."""

    __tablename__ = "renditions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    asset_id: Mapped[str] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(32))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    bandwidth: Mapped[int] = mapped_column(Integer)
    average_bandwidth: Mapped[int | None] = mapped_column(Integer)
    codecs: Mapped[str] = mapped_column(String(64))
    frame_rate: Mapped[float | None] = mapped_column(Float)
    playlist: Mapped[str] = mapped_column(String(255))

    asset: Mapped[Asset] = relationship(back_populates="renditions")


class Job(Base):
    """The truth about work: Huey only carries a job id, this row carries the state."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    asset_id: Mapped[str] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    kind: Mapped[JobKind] = mapped_column(_enum(JobKind), default=JobKind.TRANSCODE)
    status: Mapped[JobStatus] = mapped_column(
        _enum(JobStatus), default=JobStatus.QUEUED, index=True
    )
    source_etag: Mapped[str | None] = mapped_column(String(128))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    fps: Mapped[float | None] = mapped_column(Float)
    speed: Mapped[float | None] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    asset: Mapped[Asset] = relationship(back_populates="jobs")


class RetiredVersion(Base):
    """A version prefix of an asset's ladder (``<asset_id>/v<job_id>/``) to delete.

    A version replaced by a newer upload's ladder is kept ``hls_retain_seconds`` after
    ``retired_at`` for players that loaded the old master (``job_id`` NULL: the worker's
    sweep removes it); a deleted source's versions belong to its REMOVE job (``job_id``),
    which removes exactly those, never a ladder published after it was queued.
    """

    __tablename__ = "retired_versions"
    __table_args__ = (UniqueConstraint("asset_id", "version", name="uq_retired_versions_asset"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    asset_id: Mapped[str] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(32))
    retired_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), index=True
    )


class AccessKey(Base):
    """A Nebula S3 key. ``scopes`` maps a bucket (or ``*``) to ``r``, ``rw`` or ``admin``."""

    __tablename__ = "access_keys"

    access_key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    scopes: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # The principal the key acts for (catalog.buckets): its buckets are this owner's.
    owner: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class BucketOwner(Base):
    """The owner (``AccessKey.owner``) of a bucket created through the proxy."""

    __tablename__ = "bucket_owners"

    bucket: Mapped[str] = mapped_column(String(63), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CorsConfiguration(Base):
    """A bucket's CORS rules (``catalog.cors``), as S3's CORSRule fields: AllowedOrigins,
    AllowedMethods, AllowedHeaders, ExposeHeaders (lists), MaxAgeSeconds, ID."""

    __tablename__ = "bucket_cors"

    bucket: Mapped[str] = mapped_column(String(63), primary_key=True)
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    # A fresh random value on every write (never a counter a delete and a put could
    # repeat): a worker holding rules parsed at another revision reads them again.
    revision: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class BucketSetting(Base):
    """Whether uploads to a bucket are transcoded, as ``nebula buckets`` set it (a bucket
    without a row follows ``NEBULA_INGEST_BUCKETS``)."""

    __tablename__ = "bucket_settings"

    bucket: Mapped[str] = mapped_column(String(63), primary_key=True)
    transcode: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class OutboxEvent(Base):
    """An event written in the same transaction as the change it announces, sent later."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(64), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class Worker(Base):
    """A transcoder worker's heartbeat and gauges, read by ``nebula status`` and /metrics."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    hwaccel: Mapped[str | None] = mapped_column(String(32))
    current_job_id: Mapped[int | None] = mapped_column(Integer)
    jobs_done: Mapped[int] = mapped_column(Integer, default=0)
    jobs_failed: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @classmethod
    def live(cls, hostname: str | None = None) -> Select[Worker]:
        """Workers (on ``hostname`` when given) whose heartbeat is younger than the stale limit."""
        query = select(cls).where(cls.heartbeat_at >= utcnow() - WORKER_STALE_AFTER)
        return query if hostname is None else query.where(cls.hostname == hostname)


# A worker heartbeats every 10 s; one silent for this long is gone.
WORKER_STALE_AFTER = timedelta(seconds=60)
