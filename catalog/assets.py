"""Asset queries: recording uploads (row + job + outbox in one transaction), deletions, lists."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from catalog import jobs, ladders
from catalog.models import Asset, AssetStatus, Job, JobKind, Rendition


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
    asset = find_asset(session, bucket, key)
    if asset is None:
        asset = Asset(bucket=bucket, key=key)
        session.add(asset)
    jobs.supersede(session, asset, jobs.SUPERSEDED_BY_UPLOAD)
    asset.etag, asset.size, asset.content_type = etag, size, content_type
    asset.status, asset.error = AssetStatus.QUEUED, None
    return asset, jobs.queue_new(session, asset, JobKind.TRANSCODE, source_etag=etag)


def record_delete(session: Session, bucket: str, key: str) -> Job | None:
    """Mark the asset deleted and queue removal of its HLS output (None if unknown).

    The REMOVE job owns the versions published so far (and those still retained): it
    deletes those and nothing else, so a ladder of a later upload of the key survives it.
    """
    asset = find_asset(session, bucket, key)
    if asset is None or asset.status == AssetStatus.DELETED:
        return None
    jobs.supersede(session, asset, jobs.SOURCE_DELETED)
    asset.status, asset.error = AssetStatus.DELETED, None
    job = jobs.queue_new(session, asset, JobKind.REMOVE)
    ladders.give_to_job(session, asset.id, ladders.current_versions(asset), job.id)
    return job


def record_ready(
    session: Session, asset_id: str, renditions: list[Rendition], duration: float | None
) -> None:
    """A ladder was published: replace the asset's renditions with ``renditions``, mark it ready.

    The versions they replace are retired, not deleted: a player that loaded the previous
    master finishes it (``transcoder.removal`` deletes them after the retention).
    """
    asset = session.get(Asset, asset_id)
    if asset is not None:
        replaced = ladders.current_versions(asset) - {ladders.version_of(r) for r in renditions}
        ladders.retire(session, asset_id, replaced)
    session.execute(delete(Rendition).where(Rendition.asset_id == asset_id))
    session.add_all(renditions)
    if asset is not None:
        session.expire(asset, ["renditions"])
        asset.status, asset.error, asset.duration = AssetStatus.READY, None, duration


def record_playable(session: Session, asset_id: str) -> None:
    """A first upload's ladder has its first segments and a master: watchable already.

    Only an asset being processed moves (a cancel, a newer upload or a delete since wins).
    """
    asset = session.get(Asset, asset_id)
    if asset is not None and asset.status == AssetStatus.PROCESSING:
        asset.status = AssetStatus.PLAYABLE


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


@dataclass(frozen=True)
class AssetChange:
    """One asset row as of its last change: what a cache of its files must act on."""

    asset_id: str
    status: AssetStatus
    updated_at: datetime

    @property
    def deleted(self) -> bool:
        return self.status == AssetStatus.DELETED


def changed_since(session: Session, since: datetime) -> list[AssetChange]:
    """Assets whose row changed after ``since`` (deleted, uploaded over, claimed, published),
    three columns each: polled every second by every origin worker."""
    query = select(Asset.id, Asset.status, Asset.updated_at).where(Asset.updated_at > since)
    return [AssetChange(*row) for row in session.execute(query)]


def deleted_ids(session: Session) -> list[str]:
    """Ids of every deleted asset (their files may outlive the row's status in storage)."""
    return list(session.scalars(select(Asset.id).where(Asset.status == AssetStatus.DELETED)))
