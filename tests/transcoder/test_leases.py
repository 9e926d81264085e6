"""Claim, heartbeat, reap, cancel, supersede: the job row's lease on PostgreSQL and SQLite."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from catalog import Asset, AssetStatus, Catalog, Job, JobStatus, OutboxEvent, jobs
from catalog.assets import record_upload
from catalog.workers import host_id
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


# ----- a dead worker's leases given back at once -------------------------------------


def no_such_pid() -> int:
    """A pid no process can have: above the kernel's limit."""
    return int(Path("/proc/sys/kernel/pid_max").read_text()) + 1


def claimed_by(catalog: Catalog, key: str, host: str, pid: int) -> int:
    job_id = new_job(catalog, key)
    assert jobs.claim(catalog, job_id, f"{host}:{pid}:tag{job_id}", 600, 3) is not None
    return job_id


def test_a_worker_starting_releases_the_leases_of_dead_pids_of_its_host(catalog: Catalog) -> None:
    host = host_id()
    dead = claimed_by(catalog, "dead.mp4", host, no_such_pid())
    living = claimed_by(catalog, "living.mp4", host, os.getppid())  # started before the claim
    elsewhere = claimed_by(catalog, "elsewhere.mp4", "other-host/4026531836", no_such_pid())
    assert jobs.release_dead_on_host(catalog, host, max_attempts=3) == [dead]
    row = job_row(catalog, dead)
    # Back on the queue at once (a new outbox event), the attempt it used still counted.
    assert (row.status, row.lease_owner, row.attempts) == (JobStatus.QUEUED, None, 1)
    assert "its worker died" in (row.error or "")
    assert unsent(catalog, dead) == 2
    for untouched in (living, elsewhere):  # a live holder; a pid of another pid namespace
        assert job_row(catalog, untouched).status == JobStatus.RUNNING
    assert jobs.release_dead_on_host(catalog, host, max_attempts=3) == []


def test_a_reused_pid_does_not_keep_a_dead_workers_lease(catalog: Catalog) -> None:
    """A restarted container's processes get the old pids again: a process that started
    after the claim is not its holder."""
    job_id = claimed_by(catalog, "a.mp4", host_id(), os.getppid())
    with catalog.session() as session:
        existing(session, Job, job_id).started_at = datetime(2000, 1, 1, tzinfo=UTC)
    assert jobs.release_dead_on_host(catalog, host_id(), max_attempts=3) == [job_id]


def test_release_owner_gives_back_only_that_pids_jobs_and_fails_when_out_of_attempts(
    catalog: Catalog,
) -> None:
    host = host_id()
    first = claimed_by(catalog, "a.mp4", host, 4242)
    other = claimed_by(catalog, "b.mp4", host, 42420)  # 4242 is a prefix of it: no match
    released = jobs.release_owner(catalog, host, 4242, "worker pid 4242 exited", 3)
    assert released == [first]
    assert job_row(catalog, first).status == JobStatus.QUEUED
    assert job_row(catalog, other).status == JobStatus.RUNNING
    # The last attempt: the job fails rather than looping on a source that kills workers.
    assert jobs.release_owner(catalog, host, 42420, "worker pid 42420 exited", 1) == [other]
    row = job_row(catalog, other)
    assert row.status == JobStatus.FAILED and "giving up" in (row.error or "")
