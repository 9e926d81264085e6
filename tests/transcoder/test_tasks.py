"""The Huey instance ``huey_consumer transcoder.tasks.huey`` loads: its tasks and schedule."""

from __future__ import annotations

from datetime import datetime


def test_tasks_and_the_periodic_reconcile_are_registered(tasks_module) -> None:
    registry = tasks_module.huey._registry
    names = {registry.task_to_string(t) for t in registry._registry.values()}
    assert {
        "transcoder.tasks.transcode",
        "transcoder.tasks.remove",
        "transcoder.tasks.reconcile",
    } <= names
    periodic = [registry.task_to_string(t) for t in registry._periodic_tasks]
    assert periodic == ["transcoder.tasks.reconcile"]


def test_reconcile_period_rounds_up_to_whole_minutes(tasks_module) -> None:
    # The default NEBULA_RECONCILE_SECONDS=60: every minute.
    assert tasks_module._every_reconcile_period(datetime(2026, 1, 1, 12, 7))
