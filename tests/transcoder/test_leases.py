"""Claim, heartbeat, reap, cancel, supersede: the job row's lease on PostgreSQL and SQLite."""

from __future__ import annotations

from catalog import Asset, AssetStatus, Catalog, Job, JobStatus, OutboxEvent, jobs
from catalog.assets import record_upload
from tests.rows import existing

LEASE = 60


def new_job(catalog: Catalog, key: str = "a.mp4") -> int:
    with catalog.session() as session:
        _, job = record_upload(session, "media", key, "etag1", 10, None)
        return job.id


def expire(catalog: Catalog, claim: jobs.Claim) -> None:
    """Pretend the owner stopped renewing long ago (no sleeping in tests)."""
    assert jobs.renew(catalog, claim, -5)


def unsent(catalog: Catalog, job_id: int) -> int:
    with catalog.session() as session:
        events = session.query(OutboxEvent).filter(OutboxEvent.sent_at.is_(None)).all()
        return sum(1 for e in events if e.payload["job_id"] == job_id)


def job_row(catalog: Catalog, job_id: int) -> Job:
    with catalog.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def test_claim_is_exclusive(catalog: Catalog) -> None:
    job_id = new_job(catalog)
    first = jobs.claim(catalog, job_id, "w1", LEASE, 3)
    assert first is not None and first.attempt == 1
    assert jobs.claim(catalog, job_id, "w2", LEASE, 3) is None
    row = job_row(catalog, job_id)
    assert (row.status, row.lease_owner) == (JobStatus.RUNNING, "w1")
    with catalog.session() as session:
        assert existing(session, Asset, row.asset_id).status == AssetStatus.PROCESSING


def test_only_the_owner_renews(catalog: Catalog) -> None:
    job_id = new_job(catalog)
    claim = jobs.claim(catalog, job_id, "w1", LEASE, 3)
    assert claim is not None
    assert jobs.renew(catalog, claim, LEASE, progress=42.0, fps=30.0, speed=1.5)
    row = job_row(catalog, job_id)
    assert (row.progress, row.fps, row.speed) == (42.0, 30.0, 1.5)
    stranger = jobs.Claim(job_id, claim.asset_id, claim.kind, "w2", 1)
    assert not jobs.renew(catalog, stranger, LEASE)


def test_expired_lease_can_be_taken_over_and_the_old_owner_loses_it(catalog: Catalog) -> None:
    job_id = new_job(catalog)
    old = jobs.claim(catalog, job_id, "w1", LEASE, 3)
    assert old is not None
    expire(catalog, old)
    new = jobs.claim(catalog, job_id, "w2", LEASE, 3)
    assert new is not None and new.attempt == 2
    assert not jobs.renew(catalog, old, LEASE)
    assert not jobs.fail(catalog, old, "late")  # the old worker cannot close it either
    assert job_row(catalog, job_id).status == JobStatus.RUNNING


def test_reaper_requeues_then_gives_up(catalog: Catalog) -> None:
    job_id = new_job(catalog)
    for attempt in (1, 2):
        claim = jobs.claim(catalog, job_id, f"w{attempt}", LEASE, 2)
        assert claim is not None
        expire(catalog, claim)
        assert jobs.reap_expired(catalog, max_attempts=2) == [job_id]
        if attempt == 1:
            row = job_row(catalog, job_id)
            assert row.status == JobStatus.QUEUED and row.lease_owner is None
            assert unsent(catalog, job_id) == 2  # the upload's event + the re-queue
    row = job_row(catalog, job_id)
    assert row.status == JobStatus.FAILED and "giving up" in (row.error or "")
    assert jobs.claim(catalog, job_id, "w3", LEASE, 2) is None
    assert jobs.reap_expired(catalog, max_attempts=2) == []


def test_reaper_leaves_live_leases_alone(catalog: Catalog) -> None:
    job_id = new_job(catalog)
    assert jobs.claim(catalog, job_id, "w1", LEASE, 3) is not None
    assert jobs.reap_expired(catalog, 3) == []


def test_cancel_takes_the_lease_away(catalog: Catalog) -> None:
    job_id = new_job(catalog)
    claim = jobs.claim(catalog, job_id, "w1", LEASE, 3)
    assert claim is not None
    assert jobs.cancel(catalog, job_id)
    assert not jobs.renew(catalog, claim, LEASE)
    assert job_row(catalog, job_id).status == JobStatus.CANCELLED
    assert not jobs.cancel(catalog, job_id)


def test_a_newer_upload_supersedes_a_running_job(catalog: Catalog) -> None:
    job_id = new_job(catalog)
    claim = jobs.claim(catalog, job_id, "w1", LEASE, 3)
    assert claim is not None
    newer = new_job(catalog)  # same key uploaded again
    assert not jobs.renew(catalog, claim, LEASE)
    assert job_row(catalog, job_id).status == JobStatus.CANCELLED
    assert job_row(catalog, newer).status == JobStatus.QUEUED


def test_sigterm_requeue_does_not_spend_an_attempt(catalog: Catalog) -> None:
    job_id = new_job(catalog)
    claim = jobs.claim(catalog, job_id, "w1", LEASE, 3)
    assert claim is not None
    assert jobs.requeue_interrupted(catalog, claim)
    row = job_row(catalog, job_id)
    assert (row.status, row.attempts, row.lease_owner) == (JobStatus.QUEUED, 0, None)
    assert unsent(catalog, job_id) == 2


def test_transient_errors_retry_until_max_attempts(catalog: Catalog) -> None:
    job_id = new_job(catalog)
    for attempt in (1, 2):
        claim = jobs.claim(catalog, job_id, "w", LEASE, 2)
        assert claim is not None and claim.attempt == attempt
        assert jobs.retry_later(catalog, claim, "storage down", max_attempts=2)
    row = job_row(catalog, job_id)
    assert row.status == JobStatus.FAILED and "gave up after 2 attempts" in (row.error or "")


def test_retry_a_failed_job(catalog: Catalog) -> None:
    job_id = new_job(catalog)
    claim = jobs.claim(catalog, job_id, "w1", LEASE, 1)
    assert claim is not None and jobs.fail(catalog, claim, "bad")
    assert jobs.retry(catalog, job_id)
    row = job_row(catalog, job_id)
    assert (row.status, row.attempts, row.error) == (JobStatus.QUEUED, 0, None)
    assert jobs.claim(catalog, job_id, "w2", LEASE, 1) is not None
    assert not jobs.retry(catalog, job_id)  # running: nothing to retry
