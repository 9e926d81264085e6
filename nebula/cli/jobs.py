"""``nebula jobs list|show|retry|cancel|watch`` and ``nebula queue``: the transcode jobs."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from catalog import Catalog, Job, JobStatus
from catalog.models import OPEN_JOB, utcnow
from nebula.cli.base import CliError, Commands, add_command, settings_from
from nebula.cli.table import render
from nebulacore.config import Settings

BAR_WIDTH = 30


def register(commands: Commands) -> None:
    jobs = add_command(commands, "jobs", "transcode jobs: progress, retry, cancel")
    # `nebula jobs` alone lists them, as `nebula jobs list` does.
    jobs.set_defaults(handler=jobs_list, status=None, limit=50, json=False)
    actions = jobs.add_subparsers(dest="jobs_command", metavar="ACTION")
    listing = add_command(actions, "list", "list recent jobs with their progress")
    listing.add_argument("--status", choices=[s.value for s in JobStatus])
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=jobs_list)
    show = add_command(actions, "show", "one job in full")
    show.add_argument("job_id", type=int)
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=jobs_show)
    retry = add_command(actions, "retry", "run failed or cancelled jobs again")
    retry.add_argument("job_ids", type=int, nargs="+", metavar="JOB_ID")
    retry.set_defaults(handler=jobs_retry)
    cancel = add_command(actions, "cancel", "cancel queued or running jobs (nothing is published)")
    cancel.add_argument("job_ids", type=int, nargs="+", metavar="JOB_ID")
    cancel.set_defaults(handler=jobs_cancel)
    watch = add_command(actions, "watch", "progress bars of running jobs, refreshed")
    watch.add_argument("job_id", type=int, nargs="?", help="follow one job until it ends")
    watch.add_argument("--interval", type=float, default=1.0)
    watch.add_argument("--once", action="store_true", help="print once and exit")
    watch.set_defaults(handler=jobs_watch)

    queue = add_command(commands, "queue", "jobs by state, and the messages waiting in Huey")
    queue.add_argument("--json", action="store_true")
    queue.set_defaults(handler=queue_show)


def job_dict(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "asset_id": job.asset_id,
        "kind": job.kind.value,
        "status": job.status.value,
        "progress": round(job.progress, 1),
        "fps": job.fps,
        "speed": job.speed,
        "attempts": job.attempts,
        "lease_owner": job.lease_owner,
        "lease_expires_at": job.lease_expires_at,
        "error": job.error,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


def eta_seconds(job: Job, now: datetime | None = None) -> float | None:
    """Seconds until ``job`` ends: the media left over the encoding speed when both are
    known, else the time spent so far scaled by the progress left; None before any."""
    progress = min(100.0, job.progress)
    if progress <= 0 or progress >= 100:
        return None
    duration = job.asset.duration if job.asset is not None else None
    if duration and job.speed:
        return duration * (100 - progress) / 100 / job.speed
    if job.started_at is None:
        return None
    spent = ((now or utcnow()) - job.started_at).total_seconds()
    return max(0.0, spent) * (100 - progress) / progress


def clock(seconds: float) -> str:
    """``3725`` -> ``"1:02:05"``, ``65`` -> ``"1:05"``."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress_bar(job: Job) -> str:
    filled = int(BAR_WIDTH * min(100.0, job.progress) / 100)
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    rate = f" {job.fps:.0f} fps" if job.fps else ""
    speed = f" {job.speed:.2f}x" if job.speed else ""
    eta = eta_seconds(job)
    left = f" ETA {clock(eta)}" if eta is not None else ""
    # The figures first: on a narrow terminal the table cuts the bar, not them.
    return f"{job.progress:5.1f}%{left}{speed}{rate} [{bar}]"


JOB_HEADERS = ("ID", "ASSET", "KIND", "STATUS", "ATTEMPTS", "PROGRESS / REASON")


def _row(job: Job) -> tuple[object, ...]:
    detail = progress_bar(job) if job.status == JobStatus.RUNNING else (job.error or "")
    return (job.id, job.asset_id, job.kind.value, job.status.value, job.attempts, detail)


def _table(jobs: list[Job]) -> str:
    return render(JOB_HEADERS, [_row(j) for j in jobs], right="ID ATTEMPTS")


def job_counts(session: Session) -> dict[str, int]:
    """Jobs by status, every status named: what ``nebula jobs`` and ``nebula queue`` say."""
    by_status = dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())
    return {status.value: int(by_status.get(status, 0)) for status in JobStatus}


def counts_line(counts: dict[str, int]) -> str:
    return "  ".join(f"{status} {count}" for status, count in counts.items())


def jobs_list(args: argparse.Namespace) -> int:
    query = select(Job).options(joinedload(Job.asset)).order_by(Job.id.desc()).limit(args.limit)
    if args.status:
        query = query.where(Job.status == JobStatus(args.status))
    with Catalog.opened(settings_from(args)) as catalog, catalog.session() as session:
        rows = list(session.scalars(query))
        counts = job_counts(session)
    if args.json:
        print(json.dumps([job_dict(j) for j in rows], indent=2, default=str))
        return 0
    print(_table(rows))
    shown = f" (the last {len(rows)} shown)" if len(rows) < sum(counts.values()) else ""
    print(f"\njobs  {counts_line(counts)}{shown}")
    return 0


def _job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id, options=[joinedload(Job.asset)])
    if job is None:
        raise CliError(f"no job {job_id}")
    return job


def jobs_show(args: argparse.Namespace) -> int:
    with Catalog.opened(settings_from(args)) as catalog, catalog.session() as session:
        job = _job(session, args.job_id)  # its attributes stay loaded after the session
    if args.json:
        print(json.dumps(job_dict(job), indent=2, default=str))
        return 0
    for key, value in job_dict(job).items():
        if value is not None:
            print(f"{key:<17} {value}")
    if job.status == JobStatus.RUNNING:
        print(f"{'':<17} {progress_bar(job)}")
    return 0


def relay_now(catalog: Catalog, settings: Settings) -> None:
    """Hand what the catalog queued to the queue now (else the worker's reconcile does)."""
    from nebulaqueue.relay import relay_pending
    from transcoder.tasks import tasks_for

    try:
        relay_pending(catalog, tasks_for(settings).enqueue)
    except Exception as exc:  # the worker's reconcile relays it later
        print(f"queued in the catalog; the queue is unreachable for now: {exc}")


def each_job(
    catalog: Catalog, job_ids: list[int], act: Callable[[Catalog, int], bool], done: str, why: str
) -> int:
    """``act`` on every job, saying what became of each; exit 2 when any was refused."""
    refused = 0
    for job_id in job_ids:
        if act(catalog, job_id):
            print(f"job {job_id} {done}")
        else:
            refused += 1
            print(f"nebula: job {job_id} {why}", file=sys.stderr)
    return 2 if refused else 0


def jobs_retry(args: argparse.Namespace) -> int:
    from catalog import jobs

    settings = settings_from(args)
    with Catalog.opened(settings) as catalog:
        why = "is not failed or cancelled (or does not exist)"
        code = each_job(catalog, args.job_ids, jobs.retry, "queued again", why)
        relay_now(catalog, settings)
    return code


def jobs_cancel(args: argparse.Namespace) -> int:
    from catalog import jobs

    with Catalog.opened(settings_from(args)) as catalog:
        why = "is not queued or running (or does not exist)"
        return each_job(catalog, args.job_ids, jobs.cancel, "cancelled", why)


def jobs_watch(args: argparse.Namespace) -> int:
    with Catalog.opened(settings_from(args)) as catalog:
        while True:
            with catalog.session() as session:
                if args.job_id is not None:
                    rows = [_job(session, args.job_id)]
                else:
                    running = select(Job).options(joinedload(Job.asset))
                    rows = list(session.scalars(running.where(Job.status == JobStatus.RUNNING)))
                lines = _table(rows).splitlines() if rows else ["no running jobs"]
                finished = args.job_id is not None and rows[0].status not in OPEN_JOB
            print("\n".join(lines), flush=True)
            if args.once or finished:
                return 0 if not finished or rows[0].status == JobStatus.DONE else 1
            time.sleep(args.interval)
            if sys.stdout.isatty():
                print(f"\x1b[{len(lines)}F\x1b[J", end="")  # redraw in place


def queue_show(args: argparse.Namespace) -> int:
    from nebulaqueue.huey import make_huey, queue_counts

    settings = settings_from(args)
    counts = queue_counts(make_huey(settings))
    with Catalog.opened(settings) as catalog, catalog.session() as session:
        jobs = job_counts(session)
    if args.json:
        print(json.dumps({"queue": counts, "jobs": jobs}, indent=2))
        return 0
    # The catalog's jobs are the truth, counted as `nebula jobs` counts them. Huey's
    # messages are not jobs: a running job's message has left the queue, and a message
    # of a job cancelled or relayed twice waits until a worker reads and drops it.
    print(f"jobs      {counts_line(jobs)}")
    print(
        f"messages  waiting {counts['pending']}  scheduled {counts['scheduled']}  "
        f"failed {counts['failed']}  (Huey's queue; a worker drops those of ended jobs)"
    )
    return 0
