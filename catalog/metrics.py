"""Gauges read from the catalog: jobs by state, live workers and their counters.

The worker exports its gauges through the catalog's ``workers`` table, so any service's
/metrics can show them. :func:`read_gauges` blocks (run it off the loop:
``nebulacore.ops.blocking_gauges``).
"""

from __future__ import annotations

from sqlalchemy import func, select

from catalog.db import Catalog
from catalog.models import Job, JobStatus, Worker
from nebulacore.prometheus import sample_name


def read_gauges(catalog: Catalog) -> dict[str, float]:
    """Jobs by state, live workers, and each live worker's counters."""
    gauges: dict[str, float] = {sample_name("nebula_jobs", state=s.value): 0 for s in JobStatus}
    with catalog.session() as session:
        for state, count in session.execute(select(Job.status, func.count()).group_by(Job.status)):
            gauges[sample_name("nebula_jobs", state=state.value)] = count
        workers = session.scalars(Worker.live()).all()
    gauges["nebula_workers_alive"] = len(workers)
    for worker in workers:
        labels = {"worker": worker.id, "hwaccel": worker.hwaccel or ""}
        gauges[sample_name("nebula_worker_jobs_done", **labels)] = worker.jobs_done
        gauges[sample_name("nebula_worker_jobs_failed", **labels)] = worker.jobs_failed
        gauges[sample_name("nebula_worker_busy", **labels)] = int(worker.current_job_id is not None)
    return gauges
