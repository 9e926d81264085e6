"""One cancel rule, three ways in: a newer upload, a deletion, a user. On SQLite and PostgreSQL.

Every cancelled job ends the same way (``catalog.jobs._cancel``): status cancelled, a reason,
``finished_at`` set, the lease cleared, so the worker holding it stops and publishes nothing.
"""

from __future__ import annotations

from sqlalchemy import select

from catalog import Asset, AssetStatus, Catalog, Job, JobKind, JobStatus, OutboxEvent, jobs
from catalog.assets import record_delete, record_upload
from catalog.models import Rendition

LEASE = 60


def upload(catalog: Catalog, key: str = "a.mp4", etag: str = "e1") -> tuple[str, int]:
    with catalog.session() as session:
        asset, job = record_upload(session, "media", key, etag, 10, None)
        return asset.id, job.id


def running(catalog: Catalog, job_id: int) -> jobs.Claim:
    claim = jobs.claim(catalog, job_id, "w1", LEASE, 3)
    assert claim is not None
    return claim


def job_row(catalog: Catalog, job_id: int) -> Job:
    with catalog.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def asset_row(catalog: Catalog, asset_id: str) -> Asset:
    with catalog.session() as session:
        asset = session.get(Asset, asset_id)
        assert asset is not None
        return asset


def assert_cancelled(catalog: Catalog, job_id: int, reason: str) -> None:
    job = job_row(catalog, job_id)
    assert (job.status, job.error) == (JobStatus.CANCELLED, reason)
    assert job.finished_at is not None
    assert (job.lease_owner, job.lease_expires_at) == (None, None)


def test_a_newer_upload_supersedes_a_queued_job(catalog: Catalog) -> None:
    asset_id, old = upload(catalog)
    same_asset, new = upload(catalog, etag="e2")
    assert same_asset == asset_id
    assert_cancelled(catalog, old, "superseded by a newer upload")
    assert job_row(catalog, new).status == JobStatus.QUEUED
    asset = asset_row(catalog, asset_id)
    assert (asset.status, asset.etag) == (AssetStatus.QUEUED, "e2")


def test_a_newer_upload_supersedes_a_running_job_and_its_worker_loses_the_lease(
    catalog: Catalog,
) -> None:
    asset_id, old = upload(catalog)
    claim = running(catalog, old)
    assert asset_row(catalog, asset_id).status == AssetStatus.PROCESSING
    _, new = upload(catalog, etag="e2")
    assert_cancelled(catalog, old, "superseded by a newer upload")
    # What the worker's heartbeat and its check before publishing ask: both say stop.
    assert not jobs.renew(catalog, claim, LEASE)
    assert not jobs.still_held(catalog, claim)
    assert not jobs.fail(catalog, claim, "late")  # nor can it close the job afterwards
    assert job_row(catalog, old).status == JobStatus.CANCELLED
    assert asset_row(catalog, asset_id).status == AssetStatus.QUEUED
    assert jobs.claim(catalog, new, "w2", LEASE, 3) is not None


def test_a_deletion_cancels_the_running_job_saying_the_source_was_deleted(
    catalog: Catalog,
) -> None:
    asset_id, old = upload(catalog)
    claim = running(catalog, old)
    with catalog.session() as session:
        remove = record_delete(session, "media", "a.mp4")
        assert remove is not None
        remove_id = remove.id
    assert_cancelled(catalog, old, "the source was deleted")
    assert not jobs.renew(catalog, claim, LEASE)
    assert not jobs.still_held(catalog, claim)
    assert asset_row(catalog, asset_id).status == AssetStatus.DELETED
    removal = job_row(catalog, remove_id)
    assert (removal.kind, removal.status) == (JobKind.REMOVE, JobStatus.QUEUED)


def test_supersede_touches_only_the_open_jobs_of_that_asset(catalog: Catalog) -> None:
    asset_id, done = upload(catalog)
    claim = running(catalog, done)
    with catalog.session() as session:
        assert jobs.close_held(session, claim, JobStatus.DONE, None) is not None
    finished = job_row(catalog, done).finished_at
    other_asset, other = upload(catalog, key="other.mp4")
    _, queued = upload(catalog, etag="e2")
    with catalog.session() as session:
        remove = record_delete(session, "media", "a.mp4")
        assert remove is not None
        remove_id = remove.id
    assert_cancelled(catalog, queued, "the source was deleted")
    done_row = job_row(catalog, done)
    assert (done_row.status, done_row.error, done_row.finished_at) == (
        JobStatus.DONE,
        None,
        finished,
    )
    assert job_row(catalog, other).status == JobStatus.QUEUED
    assert asset_row(catalog, other_asset).status == AssetStatus.QUEUED
    with catalog.session() as session:
        asset = session.get(Asset, asset_id)
        assert asset is not None
        # The removal is the one open job left: a new upload of the key cancels it too,
        # or it would delete what that upload publishes.
        assert job_row(catalog, remove_id).status == JobStatus.QUEUED
        assert jobs.supersede(session, asset, jobs.SUPERSEDED_BY_UPLOAD) == [remove_id]
    assert_cancelled(catalog, remove_id, "superseded by a newer upload")


def test_a_user_cancel_ends_the_job_and_cancels_an_asset_with_nothing_published(
    catalog: Catalog,
) -> None:
    asset_id, job_id = upload(catalog)
    claim = running(catalog, job_id)
    assert jobs.cancel(catalog, job_id)
    assert_cancelled(catalog, job_id, "cancelled by user")
    assert not jobs.renew(catalog, claim, LEASE)
    asset = asset_row(catalog, asset_id)
    # Cancelled, not failed: nothing is wrong with the source.
    assert (asset.status, asset.error) == (AssetStatus.CANCELLED, "cancelled by user")
    assert not jobs.cancel(catalog, job_id)  # not open any more
    assert not jobs.cancel(catalog, job_id + 1000)  # no such job


def test_a_user_cancel_keeps_a_previously_published_ladder_ready(catalog: Catalog) -> None:
    asset_id, first = upload(catalog)
    with catalog.session() as session:
        session.add(
            Rendition(
                asset_id=asset_id,
                name="360p",
                bandwidth=500_000,
                codecs="avc1.64001e",
                playlist=f"v{first}/360p/index.m3u8",
            )
        )
    _, second = upload(catalog, etag="e2")
    assert jobs.cancel(catalog, second)  # still queued
    assert_cancelled(catalog, second, "cancelled by user")
    asset = asset_row(catalog, asset_id)
    assert (asset.status, asset.error) == (AssetStatus.READY, None)


def test_queued_jobs_are_announced_with_the_wire_topics(catalog: Catalog) -> None:
    asset_id, transcode = upload(catalog)
    with catalog.session() as session:
        remove = record_delete(session, "media", "a.mp4")
        assert remove is not None
        remove_id = remove.id
    with catalog.session() as session:
        events = session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
        sent = [(e.topic, e.payload) for e in events]
    assert sent == [
        ("transcode", {"job_id": transcode, "asset_id": asset_id}),
        ("remove", {"job_id": remove_id, "asset_id": asset_id}),
    ]
