"""Benchmark job pickup: how long a new upload's job waits before an idle worker starts it.

Runs ``nebula up`` in a temporary directory, lets the worker sit idle (70 s: long enough
for Huey's default polling backoff, x1.15 per empty poll from 0.1 s, to reach its 10 s
cap), uploads a short video through the
s3proxy and reads the catalog's own times: the job's ``started_at`` (the worker claimed
it) minus its ``created_at`` (the proxy recorded the upload). Target: <= 1 s.

    python3 -m bench.pickup                      # SQLite queue, 3 rounds, 70 s idle each
    python3 -m bench.pickup --queue redis://127.0.0.1:6379/14 --idle 10
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

from catalog import Asset, Catalog, Job, JobStatus
from tests.stacks import NebulaUp, start_nebula_up
from transcoder.samples import make_source

FINAL = (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)


def job_of(catalog: Catalog, key: str) -> Job | None:
    with catalog.session() as session:
        query = select(Job).join(Asset).where(Asset.key == key).order_by(Job.id.desc())
        return session.scalars(query).first()


def wait_job(catalog: Catalog, key: str, done: bool, timeout: float = 300) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = job_of(catalog, key)
        if job is not None and job.started_at is not None and (not done or job.status in FINAL):
            return job
        time.sleep(0.05)
    raise SystemExit(f"job of {key} did not {'finish' if done else 'start'} in {timeout}s")


def rounds(up: NebulaUp, root: Path, count: int, idle: float) -> list[float]:
    s3 = up.s3()
    source = make_source(root / "clip.mp4", seconds=2)
    catalog = Catalog(f"sqlite:///{root / 'data' / 'catalog.db'}")
    latencies = []
    try:
        for number in range(count):
            time.sleep(idle)  # the worker is idle: an unbounded backoff would be at its cap
            key = f"round{number}.mp4"
            s3.upload_file(str(source), "media", key)
            job = wait_job(catalog, key, done=False)
            assert job.started_at is not None
            latency = (job.started_at - job.created_at).total_seconds()
            latencies.append(latency)
            print(f"round {number + 1}: job started {latency:.3f} s after the upload was recorded")
            wait_job(catalog, key, done=True)  # idle again before the next round
    finally:
        catalog.dispose()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle", type=float, default=70.0, help="idle seconds before each upload")
    parser.add_argument("--queue", default="", help="NEBULA_QUEUE_URL (default: SQLite)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pickup-") as tmp:
        root = Path(tmp)
        env = {"NEBULA_LADDER": "240:300", "NEBULA_HWACCEL": "none", "NEBULA_QUEUE_URL": args.queue}
        up = start_nebula_up(root, env)
        try:
            up.wait_for("Press Ctrl-C to stop.")
            latencies = rounds(up, root, args.rounds, args.idle)
        finally:
            up.interrupt()
    queue = args.queue or "SQLite"
    print(
        f"pickup on {queue}: median {statistics.median(latencies):.3f} s, "
        f"max {max(latencies):.3f} s over {len(latencies)} uploads (target <= 1 s)"
    )


if __name__ == "__main__":
    main()
