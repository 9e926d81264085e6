"""The Huey instance: Redis when NEBULA_QUEUE_URL says so, SQLite under the data dir otherwise.

``huey_consumer transcoder.tasks.huey`` and ``nebula worker`` both consume it.
"""

from __future__ import annotations

from pathlib import Path

from huey import Huey, RedisHuey, SqliteHuey
from huey.utils import Error

from nebulacore.config import Settings
from nebulacore.private import ensure_private_file

QUEUE_NAME = "nebula"

# An idle consumer polls SqliteHuey at most this far apart (Huey's default backs off to
# 10 s), so a new upload's job starts within a second. RedisHuey does not poll: it blocks
# on the list (BRPOP) and wakes as the task arrives. ``huey_consumer`` takes it as ``-m``.
CONSUMER_MAX_DELAY = 0.5


def consumer_options() -> dict[str, float]:
    """Polling options of every consumer of our queue (``Huey.create_consumer`` kwargs)."""
    return {"initial_delay": 0.1, "backoff": 1.15, "max_delay": CONSUMER_MAX_DELAY}


def make_huey(settings: Settings, name: str = QUEUE_NAME) -> Huey:
    url = settings.queue_url
    if url and url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey(name, url=url, utc=True, blocking=True)
    path = url[len("sqlite:///") :] if url else str(settings.queue_path)
    settings.data_path.mkdir(parents=True, exist_ok=True)
    ensure_private_file(Path(path))
    return SqliteHuey(name, filename=path, utc=True, timeout=30)


def queue_counts(huey: Huey) -> dict[str, int]:
    """Pending, scheduled, failed and stored-result counts, for ``nebula queue`` and /metrics.

    Our tasks return None, so stored results are the errors of tasks that raised.
    """
    return {
        "pending": huey.pending_count(),
        "scheduled": huey.scheduled_count(),
        "failed": failed_count(huey),
        "results": huey.result_count(),
    }


def failed_count(huey: Huey) -> int:
    failed = 0
    for raw in huey.all_results().values():
        try:
            failed += isinstance(huey.serializer.deserialize(raw), Error)
        except Exception:  # a result we cannot read is not an error of ours
            continue
    return failed
