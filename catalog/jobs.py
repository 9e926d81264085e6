"""The job row is the truth: every job state change is made here (queueing, claiming with a
lease, heartbeats, finishing, re-queueing, cancelling).

Huey removes a task from the queue when a worker takes it, so a killed worker would lose
it; instead the worker holds a lease (owner + expiry) on the job row and renews it while
ffmpeg runs. Every state change is one conditional UPDATE (``WHERE lease_owner = me AND
status = 'running'``), atomic on PostgreSQL and SQLite alike: a worker whose lease was
taken away (reaped, cancelled, superseded) finds 0 rows updated and publishes nothing.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, and_, case, or_, select, update
from sqlalchemy.orm import Session

from catalog import Asset, AssetStatus, Catalog, Job, JobKind, JobStatus, OutboxEvent, ladders
from catalog.models import OPEN_JOB, PENDING_ASSET, TOPIC_OF_KIND, utcnow
from catalog.workers import holder_alive, host_id

log = logging.getLogger(__name__)

# Why a job ended cancelled (the job's ``error``, shown by ``nebula jobs``).
SUPERSEDED_BY_UPLOAD = "superseded by a newer upload"
SOURCE_DELETED = "the source was deleted"
CANCELLED_BY_USER = "cancelled by user"


def new_owner() -> str:
    """A lease owner unique to one claim: ``host:pid:tag`` (host as :func:`host_id` names it,
    so a supervisor or a later worker on this host can tell when the holder died)."""
    return f"{host_id()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_prefix(host: str, pid: int | None = None) -> str:
    return f"{host}:" if pid is None else f"{host}:{pid}:"


def _owner_pid(owner: str) -> int | None:
    try:
        return int(owner.rsplit(":", 2)[1])
    except (IndexError, ValueError):
        return None


@dataclass(frozen=True)
class Claim:
    job_id: int
    asset_id: str
    kind: JobKind
    owner: str
    attempt: int


def claim(
    catalog: Catalog, job_id: int, owner: str, lease_seconds: int, max_attempts: int
) -> Claim | None:
    """Take job ``job_id`` if it is queued (or its lease expired); None if not ours to run."""
    now = utcnow()
    claimable = or_(
        Job.status == JobStatus.QUEUED,
        and_(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now),
    )
    with catalog.session() as session:
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, claimable, Job.attempts < max_attempts)
            .values(
                status=JobStatus.RUNNING,
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                attempts=Job.attempts + 1,
                started_at=now,
                error=None,
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return None
        job = session.get(Job, job_id)
        assert job is not None
        if job.kind == JobKind.TRANSCODE:
            _start_processing(session, job.asset_id)
        return Claim(job.id, job.asset_id, job.kind, owner, job.attempts)


def _start_processing(session: Session, asset_id: str) -> None:
    """A claimed transcode processes its asset; one already playable (a resumed job: its
    first segments and provisional master are still published) stays playable."""
    asset = session.get(Asset, asset_id)
    if asset is not None and asset.status not in (AssetStatus.DELETED, AssetStatus.PLAYABLE):
        asset.status, asset.error = AssetStatus.PROCESSING, None


def renew(
    catalog: Catalog,
    claim_: Claim,
    lease_seconds: int,
    progress: float | None = None,
    fps: float | None = None,
    speed: float | None = None,
) -> bool:
    """Extend the lease (and record progress); False when the job is no longer ours.

    Progress never goes backwards: a resumed job re-encodes from the last segment
    boundary every rendition published, behind where the previous attempt had got to."""
    values: dict[str, object] = {"lease_expires_at": utcnow() + timedelta(seconds=lease_seconds)}
    if progress is not None:
        rounded = round(progress, 2)
        ahead = case((Job.progress < rounded, rounded), else_=Job.progress)
        values.update(progress=ahead, fps=fps, speed=speed)
    with catalog.session() as session:
        result = session.execute(
            update(Job)
            .where(_held(claim_))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def still_held(catalog: Catalog, claim_: Claim) -> bool:
    with catalog.session() as session:
        return session.scalar(select(Job.id).where(_held(claim_))) is not None


def _held(claim_: Claim) -> ColumnElement[bool]:
    return and_(
        Job.id == claim_.job_id,
        Job.status == JobStatus.RUNNING,
        Job.lease_owner == claim_.owner,
    )


def _set_asset(session: Session, asset_id: str, status: AssetStatus, error: str | None) -> None:
    asset = session.get(Asset, asset_id)
    if asset is not None and asset.status != AssetStatus.DELETED:
        asset.status, asset.error = status, error


def _held_row(session: Session, claim_: Claim) -> Job | None:
    """The job row, locked, if ``claim_`` still holds its lease."""
    return session.scalars(select(Job).where(_held(claim_)).with_for_update()).first()


def _end(job: Job, status: JobStatus, error: str | None) -> None:
    job.status, job.error, job.finished_at = status, error, utcnow()
    job.lease_owner, job.lease_expires_at = None, None


def _end_failed(session: Session, job: Job, reason: str) -> None:
    _end(job, JobStatus.FAILED, reason)
    if job.kind == JobKind.TRANSCODE:
        _set_asset(session, job.asset_id, AssetStatus.FAILED, reason)


def close_held(session: Session, claim_: Claim, status: JobStatus, error: str | None) -> Job | None:
    job = _held_row(session, claim_)
    if job is None:
        return None
    _end(job, status, error)
    if status == JobStatus.DONE:
        job.progress = 100.0
    return job


def fail(catalog: Catalog, claim_: Claim, reason: str) -> bool:
    """End the job ``failed`` with a one-line reason; no retry (the source is at fault)."""
    with catalog.session() as session:
        job = _held_row(session, claim_)
        if job is None:
            return False
        _end_failed(session, job, reason)
    log.warning("job %d failed: %s", claim_.job_id, reason)
    return True


def retry_later(catalog: Catalog, claim_: Claim, reason: str, max_attempts: int) -> bool:
    """A transient failure: back to the queue (through the outbox), or failed when out of attempts."""
    if claim_.attempt >= max_attempts:
        return fail(catalog, claim_, f"gave up after {claim_.attempt} attempts: {reason}")
    with catalog.session() as session:
        job = _held_row(session, claim_)
        if job is None:
            return False
        _back_to_queue(session, job, reason)
    return True


def requeue_interrupted(catalog: Catalog, claim_: Claim) -> bool:
    """SIGTERM: give the job back without spending an attempt."""
    with catalog.session() as session:
        job = _held_row(session, claim_)
        if job is None:
            return False
        job.attempts = max(0, job.attempts - 1)
        _back_to_queue(session, job, "worker stopped; re-queued", resumes=True)
    log.info("job %d re-queued (worker stopping)", claim_.job_id)
    return True


def _back_to_queue(session: Session, job: Job, reason: str | None, resumes: bool = False) -> None:
    """``resumes``: the job stopped without touching storage (its worker stopped or died),
    so its next attempt resumes after what it published: the asset stays playable if it
    was, and the progress stays where it was."""
    job.status, job.error = JobStatus.QUEUED, reason
    job.lease_owner, job.lease_expires_at = None, None
    if not resumes:
        job.progress = 0.0
    if job.kind == JobKind.TRANSCODE:
        asset = session.get(Asset, job.asset_id)
        if asset is not None and not (resumes and asset.status == AssetStatus.PLAYABLE):
            _set_asset(session, job.asset_id, AssetStatus.QUEUED, None)
    _announce(session, job)


def _announce(session: Session, job: Job) -> None:
    """The outbox event that gets ``job`` onto the queue, in the caller's transaction: a
    job whose queueing fails now is still relayed later."""
    session.add(
        OutboxEvent(
            topic=TOPIC_OF_KIND[job.kind], payload={"job_id": job.id, "asset_id": job.asset_id}
        )
    )


def queue_new(session: Session, asset: Asset, kind: JobKind, source_etag: str | None = None) -> Job:
    """A new queued job of ``kind`` for ``asset``, announced through the outbox."""
    job = Job(asset=asset, kind=kind, status=JobStatus.QUEUED, source_etag=source_etag)
    session.add(job)
    session.flush()  # the event carries the job's id
    _announce(session, job)
    return job


def reap_expired(catalog: Catalog, max_attempts: int) -> list[int]:
    """Jobs whose worker vanished (lease expired): re-queue them, or fail them when out of attempts."""
    now = utcnow()
    reaped: list[int] = []
    with catalog.session() as session:
        expired = session.scalars(
            select(Job)
            .where(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now)
            .with_for_update(skip_locked=True)
        ).all()
        for job in expired:
            _give_back(session, job, "lease expired: worker lost", max_attempts)
            reaped.append(job.id)
    if reaped:
        log.warning("reaped jobs with expired leases: %s", reaped)
    return reaped


def _give_back(session: Session, job: Job, why: str, max_attempts: int) -> None:
    """The job's worker is gone: re-queue it (the attempt stays spent: a source that kills
    its worker must not loop forever), or fail it when out of attempts."""
    if job.attempts >= max_attempts:
        _end_failed(session, job, f"worker lost {job.attempts} times ({why}); giving up")
    else:
        _back_to_queue(session, job, f"{why}; re-queued", resumes=True)


def release_owner(
    catalog: Catalog, host: str, pid: int, reason: str, max_attempts: int
) -> list[int]:
    """Process ``pid`` of ``host`` died (its supervisor saw it): give its leases back now
    rather than when they expire. The ids of the jobs re-queued (or failed)."""
    return _release(catalog, host, max_attempts, reason, lambda job_pid, _job: job_pid == pid)


def release_dead_on_host(catalog: Catalog, host: str, max_attempts: int) -> list[int]:
    """A worker starting on ``host``: give back the leases of this host's dead processes
    (a worker killed without a supervisor to notice, a container restarted)."""

    def dead(job_pid: int, job: Job) -> bool:
        return job_pid != os.getpid() and not holder_alive(job_pid, job.started_at)

    return _release(catalog, host, max_attempts, "its worker died", dead)


def _release(
    catalog: Catalog,
    host: str,
    max_attempts: int,
    reason: str,
    gone: Callable[[int, Job], bool],
) -> list[int]:
    released: list[int] = []
    with catalog.session() as session:
        held = session.scalars(
            select(Job)
            .where(
                Job.status == JobStatus.RUNNING,
                Job.lease_owner.startswith(_owner_prefix(host), autoescape=True),
            )
            .with_for_update(skip_locked=True)
        ).all()
        for job in held:
            job_pid = _owner_pid(job.lease_owner or "")
            if job_pid is not None and gone(job_pid, job):
                _give_back(session, job, reason, max_attempts)
                released.append(job.id)
    if released:
        log.warning("released the leases of jobs %s: %s", released, reason)
    return released


def _cancel(session: Session, job: Job, reason: str) -> None:
    """The one way a job ends cancelled: finished now, lease cleared, ``reason`` kept.

    A worker running it finds its lease gone at its next heartbeat or before publishing
    (``_held``), stops ffmpeg and publishes nothing. The versions a cancelled REMOVE job
    was to delete wait out the retention instead (the worker's sweep deletes them).
    """
    _end(job, JobStatus.CANCELLED, reason)
    if job.kind == JobKind.REMOVE:
        ladders.hand_to_sweep(session, job.id)


def supersede(session: Session, asset: Asset, reason: str) -> list[int]:
    """Cancel the asset's open jobs (its source was replaced or deleted); their ids.

    Transcodes of the old source, and a REMOVE job of an earlier deletion: the key was
    uploaded again, and that job must not delete what the new upload publishes.

    The rows are locked first, so a worker closing one of them at this moment either
    finishes before (the job is no longer open) or loses its lease. Callers change the asset
    only afterwards, taking locks in the order the workers do: job, then asset.
    """
    if asset.id is None:  # not in the catalog yet: no jobs
        return []
    open_jobs = session.scalars(
        select(Job).where(Job.asset_id == asset.id, Job.status.in_(OPEN_JOB)).with_for_update()
    ).all()
    for job in open_jobs:
        _cancel(session, job, reason)
    return [job.id for job in open_jobs]


def cancel(catalog: Catalog, job_id: int) -> bool:
    """A user cancels a queued or running job; a running worker notices at its next heartbeat.

    A cancelled transcode leaves its asset as it was before (ready with its previous
    ladder) or, with nothing published yet, failed.
    """
    with catalog.session() as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is None or job.status not in OPEN_JOB:
            return False
        _cancel(session, job, CANCELLED_BY_USER)
        if job.kind == JobKind.TRANSCODE:
            _settle_cancelled_asset(session, job.asset_id)
    return True


def _settle_cancelled_asset(session: Session, asset_id: str) -> None:
    # Cancelled is not failed: nothing is wrong with the source.
    asset = session.get(Asset, asset_id)
    if asset is not None and asset.status in PENDING_ASSET:
        asset.status = AssetStatus.READY if asset.renditions else AssetStatus.CANCELLED
        asset.error = None if asset.renditions else CANCELLED_BY_USER


def retry(catalog: Catalog, job_id: int) -> bool:
    """Run a failed or cancelled job again from scratch (attempts reset)."""
    with catalog.session() as session:
        job = session.get(Job, job_id)
        if job is None or job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            return False
        job.attempts, job.finished_at = 0, None
        _back_to_queue(session, job, None)
    return True
