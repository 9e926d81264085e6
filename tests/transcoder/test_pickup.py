"""An idle worker starts a new upload's job within a second, and reports progress often.

Tests never time anything (``python3 -m bench.pickup`` prints the measured pickup
latency); they check what bounds it: how the consumer of each queue kind waits for work,
and how often a lease writes progress.
"""

from __future__ import annotations

from typing import Any

import pytest

from nebulaqueue.huey import CONSUMER_MAX_DELAY
from tests.transcoder.conftest import Env
from transcoder.tasks import tasks_for
from transcoder.work import heartbeat_seconds
from transcoder.worker import make_consumer


def test_an_idle_sqlite_consumer_polls_at_least_every_half_second(make_env: Any) -> None:
    env: Env = make_env()  # SqliteHuey under the data dir
    tasks = tasks_for(env.settings)
    assert not tasks.huey.storage.blocking  # SQLite is polled: the delay bounds pickup
    consumer = make_consumer(tasks)
    [(worker, _thread)] = consumer.worker_threads
    # Huey's default backs off to 10 s between polls; ours stops growing at 0.5 s.
    assert worker.max_delay == CONSUMER_MAX_DELAY <= 0.5
    assert worker.default_delay <= CONSUMER_MAX_DELAY


def test_a_redis_consumer_wakes_as_the_task_arrives(make_env: Any, redis_url: str) -> None:
    env: Env = make_env(queue_url=redis_url)
    tasks = tasks_for(env.settings)
    # BRPOP: the dequeue blocks until a task is pushed (no polling delay at all), and
    # returns at least every second so the consumer notices a stop.
    assert tasks.huey.storage.blocking and tasks.huey.storage.read_timeout <= 1
    [(worker, _thread)] = make_consumer(tasks).worker_threads
    assert worker.max_delay == CONSUMER_MAX_DELAY  # after a Redis error, retry quickly too


@pytest.mark.parametrize(("lease", "interval"), [(10, 2.0), (60, 2.0), (600, 2.0), (4, 1.0)])
def test_progress_and_lease_are_written_every_two_seconds(lease: int, interval: float) -> None:
    # min(2 s, lease/4): often enough for a progress bar, four renewals per lease.
    assert heartbeat_seconds(lease) == interval
