"""Asset queries: recording uploads (row + job + outbox in one transaction), deletions, lists."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.models import Asset, AssetStatus, Job, JobKind, JobStatus, OutboxEvent

TOPIC_TRANSCODE = "transcode"
TOPIC_REMOVE = "remove"


def record_upload(
    session: Session,
    bucket: str,
    key: str,
    etag: str | None,
    size: int | None,
    content_type: str | None,
) -> tuple[Asset, Job]:
    """Create or re-queue the asset for an object that just landed, with its transcode job.

    The outbox event is written in the same transaction, so an upload whose queueing fails
    is still announced later by the outbox relay.
    """
    asset = session.scalars(select(Asset).where(Asset.bucket == bucket, Asset.key == key)).first()
    if asset is None:
        asset = Asset(bucket=bucket, key=key)
        session.add(asset)
    asset.etag, asset.size, asset.content_type = etag, size, content_type
    asset.status, asset.error = AssetStatus.QUEUED, None
    _cancel_open_jobs(session, asset, JobKind.TRANSCODE)
    job = Job(asset=asset, kind=JobKind.TRANSCODE, status=JobStatus.QUEUED, source_etag=etag)
    session.add(job)
    session.flush()
    session.add(
        OutboxEvent(topic=TOPIC_TRANSCODE, payload={"job_id": job.id, "asset_id": asset.id})
    )
    return asset, job


def record_delete(session: Session, bucket: str, key: str) -> Job | None:
    """Mark the asset deleted and queue removal of its HLS output (None if unknown)."""
    asset = session.scalars(select(Asset).where(Asset.bucket == bucket, Asset.key == key)).first()
    if asset is None or asset.status == AssetStatus.DELETED:
        return None
    asset.status = AssetStatus.DELETED
    _cancel_open_jobs(session, asset, JobKind.TRANSCODE)
    job = Job(asset=asset, kind=JobKind.REMOVE, status=JobStatus.QUEUED)
    session.add(job)
    session.flush()
    session.add(OutboxEvent(topic=TOPIC_REMOVE, payload={"job_id": job.id, "asset_id": asset.id}))
    return job


def _cancel_open_jobs(session: Session, asset: Asset, kind: JobKind) -> None:
    if asset.id is None:
        return
    open_jobs = select(Job).where(
        Job.asset_id == asset.id,
        Job.kind == kind,
        Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
    )
    for job in session.scalars(open_jobs):
        job.status = JobStatus.CANCELLED
        job.error = "superseded by a newer upload"


def get_asset(session: Session, asset_id: str) -> Asset | None:
    return session.get(Asset, asset_id)


def find_asset(session: Session, bucket: str, key: str) -> Asset | None:
    return session.scalars(select(Asset).where(Asset.bucket == bucket, Asset.key == key)).first()


def list_assets(
    session: Session, status: AssetStatus | None = None, include_deleted: bool = False
) -> list[Asset]:
    query = select(Asset).order_by(Asset.created_at.desc())
    if status is not None:
        query = query.where(Asset.status == status)
    elif not include_deleted:
        query = query.where(Asset.status != AssetStatus.DELETED)
    return list(session.scalars(query))
