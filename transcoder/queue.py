"""The Huey instance: Redis when NEBULA_QUEUE_URL says so, SQLite under the data dir otherwise.

``huey_consumer transcoder.tasks.huey`` and ``nebula worker`` both consume it.
"""

from __future__ import annotations

from huey import Huey, RedisHuey, SqliteHuey

from nebula.config import Settings

QUEUE_NAME = "nebula"


def make_huey(settings: Settings, name: str = QUEUE_NAME) -> Huey:
    url = settings.queue_url
    if url and url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey(name, url=url, utc=True)
    path = url[len("sqlite:///") :] if url else str(settings.queue_path)
    settings.data_path.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(name, filename=path, utc=True, timeout=30)


def queue_counts(huey: Huey) -> dict[str, int]:
    """Pending, scheduled and stored-result counts, for ``nebula queue`` and /metrics."""
    return {
        "pending": huey.pending_count(),
        "scheduled": huey.scheduled_count(),
        "results": huey.result_count(),
    }
