"""A job under its lease: what the Huey tasks run.

:class:`JobRunner` runs one process's jobs and owns what they share: whether the worker
is stopping, and the leases held right now (SIGTERM re-queues them). Each job reaches
storage through one S3 client, made when it is claimed.

The :class:`Lease` renews the job row from a heartbeat thread while ffmpeg runs (also when
ffmpeg prints nothing for a while), writes progress, and kills ffmpeg when the lease is
lost or the worker is stopping. Failures split in two: the source's fault (ffmpeg's
reason, ``failed`` at once, no retry storm) and everything else (re-queued until
``job_max_attempts``).
"""

from __future__ import annotations

import logging
import subprocess
import threading

from catalog import Asset, Catalog, Job, JobKind, JobStatus, assets, jobs, ladders, workers
from catalog.jobs import Claim
from nebulacore import hls
from nebulacore.config import Settings
from nebulacore.s3 import S3Client, backend_client
from nebulaqueue.relay import Enqueue, relay_pending
from transcoder.errors import Interrupted, LeaseLost, MediaError, transient_reason
from transcoder.pipeline import check_source, produce_and_publish, renditions_of
from transcoder.progress import Progress
from transcoder.publish import abandon
from transcoder.removal import remove_deleted, stored_versions

log = logging.getLogger(__name__)

# The catalog sees a running job's progress at least this often.
PROGRESS_SECONDS = 2.0


def heartbeat_seconds(lease_seconds: int) -> float:
    """How often a lease is renewed (and progress written): every 2 s, and at least four
    times per lease, so one late renewal never loses it."""
    return min(PROGRESS_SECONDS, lease_seconds / 4)


class Lease:
    """The guard of one claimed job: heartbeat, progress, and the kill switch."""

    def __init__(
        self, catalog: Catalog, claim: Claim, lease_seconds: int, stopping: threading.Event
    ) -> None:
        self.catalog, self.claim, self.lease_seconds = catalog, claim, lease_seconds
        self.stopping = stopping  # the worker's: set, running jobs go back to the queue
        self.lost = threading.Event()
        self.done = threading.Event()
        self._process: subprocess.Popen[str] | None = None
        self._latest: tuple[float, float | None, float | None] | None = None
        self._lock = threading.Lock()
        self._beat = threading.Thread(
            target=self._heartbeat, daemon=True, name=f"lease-{claim.job_id}"
        )

    def __enter__(self) -> Lease:
        workers.set_current_job(self.catalog, self.claim.job_id)
        self._beat.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        workers.set_current_job(self.catalog, None)

    # Guard protocol
    def check(self) -> None:
        if self.stopping.is_set():
            raise Interrupted("worker stopping")
        if self.lost.is_set():
            raise LeaseLost(f"job {self.claim.job_id} is no longer ours")

    def confirm(self) -> None:
        # The heartbeat notices a cancel only every couple of seconds; a fast transcode can
        # reach the master switch inside that window, so ask the catalog itself.
        self.check()
        if not jobs.still_held(self.catalog, self.claim):
            self.lost.set()
            raise LeaseLost(f"job {self.claim.job_id} was cancelled or taken over")

    def attach(self, process: subprocess.Popen[str] | None) -> None:
        with self._lock:
            self._process = process
        if process is not None and (self.lost.is_set() or self.stopping.is_set()):
            self.kill()

    def progress(self, snapshot: Progress, duration: float) -> None:
        self._latest = (snapshot.percent(duration), snapshot.fps, snapshot.speed)

    def kill(self) -> None:
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                self._process.kill()

    def _heartbeat(self) -> None:
        interval = heartbeat_seconds(self.lease_seconds)
        while not self.done.wait(interval):
            try:
                progress, fps, speed = self._latest or (None, None, None)
                if not jobs.renew(
                    self.catalog, self.claim, self.lease_seconds, progress, fps, speed
                ):
                    log.warning(
                        "job %d lease lost (cancelled, superseded or reaped)", self.claim.job_id
                    )
                    self.lost.set()
                    self.kill()
                    return
            except Exception as exc:  # catalog briefly down: the lease has slack
                log.warning("lease renewal of job %d failed: %s", self.claim.job_id, exc)


class JobRunner:
    """Runs the jobs of one worker process, and gives them back when it stops."""

    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self.settings, self.catalog = settings, catalog
        # Set on SIGTERM: running jobs go back to the queue, nothing publishes.
        self.stopping = threading.Event()
        self._active: dict[int, Lease] = {}  # by job id: what a stop gives back

    def run(self, job_id: int) -> str:
        """Claim and run job ``job_id``; return what happened (for logs and tests)."""
        if self.stopping.is_set():
            return "stopping"
        settings, catalog = self.settings, self.catalog
        claim = jobs.claim(
            catalog, job_id, jobs.new_owner(), settings.job_lease_seconds, settings.job_max_attempts
        )
        if claim is None:
            return "not claimable"  # done, cancelled, running elsewhere, or a duplicate delivery
        with Lease(catalog, claim, settings.job_lease_seconds, self.stopping) as lease:
            self._active[job_id] = lease
            try:
                return self._run_claimed(claim, lease)
            finally:
                del self._active[job_id]

    def _run_claimed(self, claim: Claim, lease: Lease) -> str:
        settings, catalog = self.settings, self.catalog
        client: S3Client | None = None
        try:
            client = backend_client(settings)  # the job's one S3 client
            if claim.kind == JobKind.REMOVE:
                remove_deleted(settings, catalog, client, claim, lease.confirm)
            else:
                self._transcode(client, claim, lease)
            workers.count_job(catalog, done=True)
            return "done"
        except Interrupted:
            jobs.requeue_interrupted(catalog, claim)
            return "re-queued"
        except LeaseLost:
            if client is not None:
                self._abandon_if_cancelled(client, claim)
            return "lease lost"
        except MediaError as exc:
            log.warning("job %d: the source failed: %s", claim.job_id, exc.detail)
            assert client is not None  # a MediaError comes from the work with it
            return self._media_failure(client, claim, str(exc))
        except Exception as exc:
            log.exception("job %d hit a transient error", claim.job_id)
            jobs.retry_later(catalog, claim, transient_reason(exc), settings.job_max_attempts)
            workers.count_job(catalog, done=False)
            return "retry"

    def _transcode(self, client: S3Client, claim: Claim, lease: Lease) -> None:
        """A transcode, top to bottom: make and publish the ladder, then commit it."""
        bucket, asset_id = self.settings.hls_bucket, claim.asset_id
        version = hls.version_name(claim.job_id)
        built = produce_and_publish(self.settings, self.catalog, client, asset_id, version, lease)
        # Every other version in storage is retired: the one the new master replaced and
        # any a killed or cancelled job left behind. Listed before the job row is locked:
        # an overwrite of this video (jobs.supersede) waits on that lock, never on storage.
        leftovers = stored_versions(client, bucket, asset_id) - {version}
        with self.catalog.session() as session:  # the commit: catalog rows only
            if jobs.close_held(session, claim, JobStatus.DONE, None) is None:
                raise LeaseLost("lease lost before the catalog commit")
            ladders.retire(session, asset_id, leftovers)
            assets.record_ready(session, asset_id, renditions_of(built), built.info.duration)

    def _abandon_if_cancelled(self, client: S3Client, claim: Claim) -> None:
        """A cancelled job's segments published so far will never be completed (a job lost
        to another worker is resumed from them instead, so those stay)."""
        with self.catalog.session() as session:
            row = session.get(Job, claim.job_id)
            cancelled = row is not None and row.status == JobStatus.CANCELLED
        if cancelled:
            version = hls.version_name(claim.job_id)
            abandon(client, self.settings.hls_bucket, claim.asset_id, version)

    def _media_failure(self, client: S3Client, claim: Claim, reason: str) -> str:
        catalog, max_attempts = self.catalog, self.settings.job_max_attempts
        # ffmpeg also fails when the backend is down; that is not the source's fault.
        if not self._source_reachable(client, claim.asset_id):
            jobs.retry_later(catalog, claim, f"source unreachable: {reason}", max_attempts)
            return "retry"
        jobs.fail(catalog, claim, reason)
        workers.count_job(catalog, done=False)
        return "failed"

    def _source_reachable(self, client: S3Client, asset_id: str) -> bool:
        with self.catalog.session() as session:
            asset = session.get(Asset, asset_id)
            if asset is None:
                return True
            bucket, key = asset.bucket, asset.key
        try:
            check_source(client, bucket, key)
        except MediaError:  # missing or empty: a source problem, not a transient one
            return True
        except Exception:
            return False
        return True

    def interrupt_all(self, enqueue: Enqueue) -> list[int]:
        """SIGTERM: stop every running ffmpeg of this process and give the jobs back."""
        self.stopping.set()
        requeued = []
        for job_id, lease in list(self._active.items()):
            lease.kill()
            if jobs.requeue_interrupted(self.catalog, lease.claim):
                requeued.append(job_id)
        if requeued:
            try:  # hand them to the other workers now rather than at the next reconcile
                relay_pending(self.catalog, enqueue)
            except Exception as exc:
                log.warning("re-queued jobs stay in the outbox until the next reconcile: %s", exc)
        return requeued


def run_job(settings: Settings, catalog: Catalog, job_id: int) -> str:
    """Run one job outside a worker (tests, one-off runs): :meth:`JobRunner.run`."""
    return JobRunner(settings, catalog).run(job_id)
