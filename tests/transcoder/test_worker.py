"""Real workers (subprocesses) on a real queue: Redis end to end, SIGKILL, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from catalog import Asset, AssetStatus, Job, JobStatus, Worker
from nebulaqueue.huey import make_huey
from nebulaqueue.relay import relay_pending
from tests.harness import Spawned, nebula_argv, spawn, stop
from tests.rows import existing
from tests.services import alive
from tests.transcoder.conftest import Env
from transcoder.samples import make_source
from transcoder.tasks import tasks_for

# A source long enough to be caught mid-transcode (the default three-rung ladder), for
# several heartbeats, even on a fast machine (a cancel that lands after ffmpeg is done is
# covered in test_pipeline).
SLOW_SECONDS = 40


class Workers:
    def __init__(self, env: Env, log_dir: Path) -> None:
        self.env, self.log_dir = env, log_dir
        self.spawned: list[Spawned] = []

    def start(
        self,
        argv: list[str] | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        worker = spawn(
            f"worker{len(self.spawned)}",
            argv or nebula_argv("worker"),
            self.env.env_vars() if env is None else env,
            self.log_dir / f"worker{len(self.spawned)}.log",
            cwd=cwd or self.log_dir,
        )
        self.spawned.append(worker)
        return worker.process

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.log_dir.glob("worker*.log"))
        )

    def stop_all(self) -> None:
        for worker in self.spawned:
            stop(worker, timeout=0)  # no grace: a test's leftover worker is simply killed


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[[Env], Workers]]:
    made: list[Workers] = []

    def make(env: Env) -> Workers:
        made.append(Workers(env, tmp_path))
        return made[-1]

    yield make
    for w in made:
        w.stop_all()


def wait_for(
    predicate: Callable[[], bool], what: str, timeout: float, logs: Callable[[], str]
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}\n{logs()[-4000:]}")
        time.sleep(0.3)


def job(env: Env, job_id: int) -> Job:
    with env.catalog.session() as session:
        row = session.get(Job, job_id)
        assert row is not None
        return row


def start_slow_job(
    env: Env, pool: Workers, tmp_path: Path, seconds: float = SLOW_SECONDS
) -> tuple[str, int, subprocess.Popen[bytes], set[int]]:
    """Upload a slow source, queue it, start a worker; return once its ffmpeg runs:
    (asset id, job id, the worker, its ffmpeg pids)."""
    asset_id, job_id = env.upload(make_source(tmp_path / "a.mp4", seconds=seconds, size="640x360"))
    relay_pending(env.catalog, tasks_for(env.settings).enqueue)
    worker = pool.start()
    wait_for(lambda: transcoding(env, job_id, worker), "a running ffmpeg", 120, pool.logs)
    return asset_id, job_id, worker, _ffmpegs(worker.pid)


def transcoding(env: Env, job_id: int, worker: subprocess.Popen[bytes]) -> bool:
    """The job is claimed and the worker's ffmpeg (not ffprobe) is running."""
    return job(env, job_id).status == JobStatus.RUNNING and bool(_ffmpegs(worker.pid))


def test_redis_queue_end_to_end(
    make_env, redis_url: str, workers, tasks_module, tmp_path: Path
) -> None:
    env: Env = make_env(queue_url=redis_url, ladder="240:300")
    asset_id, job_id = env.upload(make_source(tmp_path / "a.mp4", seconds=2))
    queue = make_huey(env.settings)
    assert relay_pending(env.catalog, tasks_for(env.settings).enqueue) == 1
    assert queue.pending_count() == 1
    pool = workers(env)
    pool.start()
    wait_for(lambda: job(env, job_id).status == JobStatus.DONE, "the job", 120, pool.logs)
    with env.catalog.session() as session:
        assert existing(session, Asset, asset_id).status == AssetStatus.READY
    assert f"{asset_id}/master.m3u8" in env.hls_keys(asset_id)
    assert queue.pending_count() == 0


def test_worker_honours_data_dir(make_env, workers, tmp_path: Path) -> None:
    """``nebula worker --data-dir X`` with no NEBULA_DATA_DIR: X's queue and catalog, no
    ``./data`` in its working directory (the tasks are bound to the settings it was given)."""
    env: Env = make_env(ladder="240:300")  # SQLite queue and catalog under env's data dir
    asset_id, job_id = env.upload(make_source(tmp_path / "a.mp4", seconds=2))
    assert relay_pending(env.catalog, tasks_for(env.settings).enqueue) == 1
    child_env = {
        k: v
        for k, v in env.env_vars().items()
        if k not in ("NEBULA_DATA_DIR", "NEBULA_DATABASE_URL")
    }
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    pool = workers(env)
    argv = nebula_argv("worker", "--data-dir", str(env.settings.data_path))
    pool.start(argv, env=child_env, cwd=elsewhere)
    wait_for(lambda: job(env, job_id).status == JobStatus.DONE, "the job", 120, pool.logs)
    with env.catalog.session() as session:
        asset = session.get(Asset, asset_id)
        assert asset is not None and asset.status == AssetStatus.READY
    wait_for(lambda: len(current_jobs(env)) == 1, "the worker's row", 30, pool.logs)
    assert f"{asset_id}/master.m3u8" in env.hls_keys(asset_id)
    assert not (elsewhere / "data").exists()


def test_a_worker_starting_takes_over_a_killed_workers_job_at_once(
    make_env, redis_url: str, workers, tasks_module, tmp_path: Path
) -> None:
    """SIGKILL leaves the job "running" under a 10-minute lease and no supervisor to see it;
    the next worker on the host sees its holder is dead and runs it. Only that release
    explains the retry: the lease is far from expiring and the reconcile never runs."""
    env: Env = make_env(queue_url=redis_url, job_lease_seconds=600, reconcile_seconds=3600)
    pool = workers(env)
    asset_id, job_id, first, ffmpegs = start_slow_job(env, pool, tmp_path)
    os.killpg(first.pid, signal.SIGKILL)  # the worker and its ffmpeg, without warning
    first.wait()
    assert job(env, job_id).status == JobStatus.RUNNING  # nobody told the catalog
    wait_for(lambda: not any(alive(p) for p in ffmpegs), "ffmpeg to die", 10, pool.logs)

    second = pool.start()
    wait_for(lambda: job(env, job_id).attempts == 2, "the job's second attempt", 60, pool.logs)
    assert f":{second.pid}:" in (job(env, job_id).lease_owner or "")
    assert "released the leases of jobs" in pool.logs()
    assert "reaped jobs with expired leases" not in pool.logs()
    wait_for(lambda: job(env, job_id).status == JobStatus.DONE, "the job", 180, pool.logs)
    assert f"{asset_id}/master.m3u8" in env.hls_keys(asset_id)


def test_progress_reaches_the_catalog_every_few_seconds(
    make_env, workers, tasks_module, tmp_path: Path
) -> None:
    """A transcode of several seconds shows the catalog several progress values (the lease,
    10 minutes here, would otherwise renew, and write progress, every 2.5 minutes)."""
    env: Env = make_env(job_lease_seconds=600)
    pool = workers(env)
    # Long enough for several 2 s heartbeats even on a quiet machine (about 15 s of work).
    _, job_id, _worker, _ = start_slow_job(env, pool, tmp_path, seconds=3 * SLOW_SECONDS)
    observed: list[float] = []
    deadline = time.monotonic() + 300
    while (row := job(env, job_id)).status == JobStatus.RUNNING and time.monotonic() < deadline:
        observed.append(row.progress)
        time.sleep(0.2)
    assert row.status == JobStatus.DONE, pool.logs()[-4000:]
    during = {p for p in observed if 0 < p < 100}
    assert len(during) >= 3, f"progress values seen while running: {sorted(set(observed))}"
    assert observed == sorted(observed)  # and it only goes forward


def test_sigterm_requeues_the_job_and_huey_consumer_finishes_it(
    make_env, workers, tasks_module, tmp_path: Path
) -> None:
    env: Env = make_env(job_lease_seconds=10)  # SqliteHuey queue
    pool = workers(env)
    asset_id, job_id, first, ffmpegs = start_slow_job(env, pool, tmp_path)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=20) == 0
    row = job(env, job_id)
    assert (row.status, row.attempts, row.lease_owner) == (JobStatus.QUEUED, 0, None)
    assert not any(alive(p) for p in ffmpegs)
    # What was published while it ran stays (the job resumes from it): its own version only.
    assert all(
        k.startswith(f"{asset_id}/v{job_id}/") or k == f"{asset_id}/master.m3u8"
        for k in env.hls_keys(asset_id)
    )

    consumer = str(Path(sys.executable).with_name("huey_consumer"))
    pool.start([consumer, "transcoder.tasks.huey", "-w", "1"])  # the job came back to the queue
    wait_for(lambda: job(env, job_id).status == JobStatus.DONE, "the job", 180, pool.logs)
    assert job(env, job_id).attempts == 1
    assert f"{asset_id}/master.m3u8" in env.hls_keys(asset_id)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_a_job_restarted_after_a_stop_stays_playable_and_its_progress_goes_on(
    make_env, workers, tasks_module, tmp_path: Path, how: signal.Signals
) -> None:
    """Stopped (SIGTERM) or killed mid-way, a job resumes after what it published: its
    asset, watchable since the first segments, stays playable through the stop and the
    restart, and the progress ``nebula jobs`` shows never goes back."""
    env: Env = make_env(job_lease_seconds=600)  # a killed worker's lease: released, not expired
    pool = workers(env)
    asset_id, job_id, first, ffmpegs = start_slow_job(env, pool, tmp_path)
    seen: list[tuple[AssetStatus, JobStatus, float]] = []

    def look() -> tuple[AssetStatus, JobStatus, float]:
        with env.catalog.session() as session:
            asset, row = existing(session, Asset, asset_id), existing(session, Job, job_id)
            seen.append((asset.status, row.status, row.progress))
        return seen[-1]

    def playable_with_progress() -> bool:
        status, _, progress = look()
        return status == AssetStatus.PLAYABLE and progress > 0

    wait_for(playable_with_progress, "a playable asset with progress", 180, pool.logs)
    os.killpg(first.pid, how)
    first.wait(timeout=20)
    wait_for(lambda: not any(alive(p) for p in ffmpegs), "ffmpeg to stop", 10, pool.logs)
    look()
    pool.start()
    wait_for(lambda: look()[1] == JobStatus.DONE, "the restarted job", 240, pool.logs)

    since_playable = seen[[status for status, _, _ in seen].index(AssetStatus.PLAYABLE) :]
    statuses = {status for status, job_status, _ in since_playable if job_status != JobStatus.DONE}
    assert statuses == {AssetStatus.PLAYABLE}, seen
    progress = [p for _, _, p in seen]
    assert progress == sorted(progress), progress
    assert seen[-1][0] == AssetStatus.READY


@pytest.mark.parametrize(
    ("how", "reason", "asset_status"),
    [
        # Cancelled, not failed: nothing is wrong with the source.
        ("user", "cancelled by user", AssetStatus.CANCELLED),
        ("delete", "the source was deleted", AssetStatus.DELETED),
    ],
)
def test_cancelled_while_running_publishes_nothing(
    make_env, workers, tasks_module, tmp_path: Path, how: str, reason: str, asset_status
) -> None:
    from catalog import jobs
    from catalog.assets import record_delete

    env: Env = make_env(job_lease_seconds=600)  # the 2 s heartbeat notices, not the lease
    pool = workers(env)
    asset_id, job_id, _worker, ffmpegs = start_slow_job(env, pool, tmp_path)
    assert current_jobs(env) == [job_id]  # what `nebula status` and /metrics show as busy
    if how == "user":
        assert jobs.cancel(env.catalog, job_id)
    else:
        with env.catalog.session() as session:
            assert record_delete(session, env.settings.ingest_buckets[0], "a.mp4") is not None
    wait_for(lambda: not any(alive(p) for p in ffmpegs), "ffmpeg to be stopped", 30, pool.logs)
    wait_for(lambda: "lease lost" in pool.logs(), "the worker to give up", 30, pool.logs)
    row = job(env, job_id)
    assert (row.status, row.error) == (JobStatus.CANCELLED, reason)
    with env.catalog.session() as session:
        assert existing(session, Asset, asset_id).status == asset_status
    # The segments published while it ran (and the provisional master) are removed.
    wait_for(lambda: env.hls_keys(asset_id) == [], "its segments to be removed", 30, pool.logs)
    wait_for(lambda: current_jobs(env) == [None], "the worker to be idle", 10, pool.logs)


def current_jobs(env: Env) -> list[int | None]:
    with env.catalog.session() as session:
        return [w.current_job_id for w in session.scalars(select(Worker))]


def _ffmpegs(pid: int) -> set[int]:
    from tests.services import descendants

    return {p for p in descendants(pid) if "-progress" in _cmdline(p)}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""
