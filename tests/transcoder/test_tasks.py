"""The Huey instance ``huey_consumer transcoder.tasks.huey`` loads: its tasks, and the one
reconcile schedule every consumer runs."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from catalog import Job, JobStatus
from tests.harness import nebula_argv, spawn, stop
from tests.transcoder.conftest import Env
from transcoder.reconcile import Schedule
from transcoder.samples import make_source


def test_tasks_are_registered_and_the_reconcile_starts_with_the_consumer(tasks_module) -> None:
    huey = tasks_module.huey
    registry = huey._registry
    names = {registry.task_to_string(t) for t in registry._registry.values()}
    assert {"transcoder.tasks.transcode", "transcoder.tasks.remove"} <= names
    assert registry._periodic_tasks == []  # no second, minute-grained schedule
    assert "reconcile" in huey._startup and "reconcile" in huey._shutdown


@pytest.mark.parametrize("command", ["nebula worker", "huey_consumer"])
def test_every_consumer_runs_the_reconcile_every_period(
    command: str, make_env, tmp_path: Path
) -> None:
    """An upload whose event was never relayed reaches the queue through the reconcile
    alone (no proxy runs here), under either command."""
    env: Env = make_env(ladder="144:150", reconcile_seconds=5)
    _, job_id = env.upload(make_source(tmp_path / "a.mp4", seconds=1))
    consumer = str(Path(sys.executable).with_name("huey_consumer"))
    argv = (
        nebula_argv("worker")
        if command == "nebula worker"
        else [consumer, "transcoder.tasks.huey", "-w", "2"]
    )
    log = tmp_path / "worker.log"
    worker = spawn("worker", argv, env.env_vars(), log, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while _status(env, job_id) != JobStatus.DONE:
            if time.monotonic() > deadline or not worker.alive():
                pytest.fail(f"the job was never run\n{log.read_text()[-4000:]}")
            time.sleep(0.3)
    finally:
        stop(worker)


def test_a_schedule_started_by_every_consumer_thread_runs_once(make_env) -> None:
    env: Env = make_env(reconcile_seconds=3600)
    schedule = Schedule(env.settings, lambda: env.catalog, lambda topic, job_id: None)
    schedule.start()
    schedule.start()
    assert _reconcile_threads() == 1
    schedule.stop()
    schedule.stop()
    assert _reconcile_threads() == 0


def _reconcile_threads() -> int:
    return sum(thread.name == "reconcile" for thread in threading.enumerate())


def _status(env: Env, job_id: int) -> JobStatus:
    with env.catalog.session() as session:
        row = session.get(Job, job_id)
        assert row is not None
        return row.status
