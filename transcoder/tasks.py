"""Huey tasks. ``huey_consumer transcoder.tasks.huey`` consumes them (so does ``nebula worker``).

A task carries only a job id: the catalog's job row is the truth (lease, attempts,
status), so a task delivered twice, or after its job was cancelled, does nothing.

Settings reach the tasks one way: the process's entry point loads them once and calls
:func:`tasks_for` (``nebula worker``, ``nebula s3proxy``, ``nebula jobs retry``, each with
its ``--data-dir``). The one entry point that is not ours, ``huey_consumer
transcoder.tasks.huey``, reads the module attribute ``huey``: it is bound on first access
to the settings of the environment (``NEBULA_*``). Importing this module reads nothing.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from huey import Huey
from huey.api import TaskWrapper
from huey.signals import SIGNAL_INTERRUPTED

from catalog import Catalog
from catalog.models import Topic
from nebulacore.config import Settings, load_settings
from nebulaqueue.huey import make_huey
from transcoder.reconcile import Schedule
from transcoder.work import JobRunner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tasks:
    """The tasks declared on one queue, running with one process's settings: the job
    runner they share and the reconcile schedule of the consumer that runs them."""

    huey: Huey
    transcode: TaskWrapper
    remove: TaskWrapper
    runner: Callable[[], JobRunner]
    reconcile: Schedule

    def enqueue(self, topic: str, job_id: int) -> None:
        """Queue the task of one outbox event (the relay's ``Enqueue``)."""
        if topic == Topic.TRANSCODE:
            self.transcode(job_id)
        elif topic == Topic.REMOVE:
            self.remove(job_id)
        else:
            raise ValueError(f"unknown outbox topic {topic!r}")


def bind(huey: Huey, settings: Settings) -> Tasks:
    """Declare the tasks on ``huey``, running with ``settings``.

    Huey names a task after its function's module and name, so on every queue these are
    ``transcoder.tasks.transcode`` and ``.remove``: the names queued messages carry,
    whichever process queued them. A consumer of ``huey`` runs the reconcile schedule
    from its start to its stop (Huey's startup and shutdown hooks).
    """
    # This binding's catalog engine and job runner, made on first use (binding stays cheap).
    catalog = functools.cache(functools.partial(Catalog.from_settings, settings))
    runner = functools.cache(lambda: JobRunner(settings, catalog()))

    # Tasks return None: Huey would otherwise keep every return value in the queue's storage.
    @huey.task()
    def transcode(job_id: int) -> None:
        """Claim job ``job_id`` and publish its asset's HLS ladder."""
        log.info("job %d: %s", job_id, runner().run(job_id))

    @huey.task()
    def remove(job_id: int) -> None:
        """Delete an asset's HLS output (after a DeleteObject of its source)."""
        log.info("job %d: %s", job_id, runner().run(job_id))

    def enqueue(topic: str, job_id: int) -> None:
        tasks.enqueue(topic, job_id)

    tasks = Tasks(huey, transcode, remove, runner, Schedule(settings, catalog, enqueue))
    huey.on_startup("reconcile")(tasks.reconcile.start)
    huey.on_shutdown("reconcile")(tasks.reconcile.stop)

    @huey.signal(SIGNAL_INTERRUPTED)
    def _requeue_on_shutdown(signal: str, task: Any, *args: Any) -> None:
        """SIGTERM stops the consumer with tasks in flight: kill their ffmpeg, give jobs back."""
        requeued = runner().interrupt_all(tasks.enqueue)
        if requeued:
            log.warning("worker stopping: re-queued jobs %s", requeued)

    return tasks


_bound: dict[str, Tasks] = {}
_bound_lock = threading.Lock()


def tasks_for(settings: Settings) -> Tasks:
    """The tasks on ``settings``' queue, bound once per queue location in this process."""
    where = settings.queue_url or str(settings.queue_path)
    with _bound_lock:
        if where not in _bound:
            _bound[where] = bind(make_huey(settings), settings)
        return _bound[where]


def __getattr__(name: str) -> Any:
    """``transcoder.tasks.huey`` for ``huey_consumer``: bound on first access to the
    environment's settings, then kept (PEP 562: only called while the name is missing)."""
    if name == "huey":
        huey = tasks_for(load_settings()).huey
        globals()["huey"] = huey
        return huey
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
