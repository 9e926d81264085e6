"""The periodic reconcile: relay the outbox, reap expired leases, compare each ingest
bucket with the catalog, and delete retired ladder versions whose retention is over.

It has one schedule, :class:`Schedule`: every ``NEBULA_RECONCILE_SECONDS`` exactly, on a
thread of each worker process, from its consumer's start to its stop (Huey's startup and
shutdown hooks), whether ``nebula worker`` or ``huey_consumer`` started it.

A video that reached a bucket without the proxy (written straight to the backend, or
whose event was lost) gets its asset and job recorded here; an asset whose source
vanished the same way gets its ladder removed. Objects younger than
:data:`GRACE_SECONDS` are left alone: the proxy may be committing them right now.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from catalog import Asset, AssetStatus, Catalog
from catalog.assets import record_delete, record_upload
from catalog.buckets import transcoded_buckets
from catalog.jobs import reap_expired
from catalog.models import utcnow
from nebulacore.config import Settings
from nebulacore.s3 import S3Client, backend_client, iter_objects
from nebulaqueue.relay import Enqueue, relay_pending
from transcoder.removal import sweep

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import ObjectTypeDef

log = logging.getLogger(__name__)
GRACE_SECONDS = 30


@dataclass
class Report:
    reaped: list[int] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)  # bucket/key
    removed: list[str] = field(default_factory=list)
    swept: list[str] = field(default_factory=list)  # asset/version
    relayed: int = 0


def run_once(
    settings: Settings,
    catalog: Catalog,
    enqueue: Enqueue,
    client: S3Client | None = None,
    grace_seconds: int = GRACE_SECONDS,
) -> Report:
    report = Report()
    report.reaped = reap_expired(catalog, settings.job_max_attempts)
    client = client or backend_client(settings)
    with catalog.session() as session:
        buckets = transcoded_buckets(session, settings.ingest_buckets)
    for bucket in buckets:
        try:
            recorded, removed = reconcile_bucket(settings, catalog, client, bucket, grace_seconds)
        except Exception as exc:  # one unreachable bucket must not stop the rest
            log.warning("reconcile of bucket %s failed: %s", bucket, exc)
            continue
        report.recorded += recorded
        report.removed += removed
    report.relayed = relay_pending(catalog, enqueue)
    try:
        report.swept = sweep(settings, catalog, client)
    except Exception as exc:  # storage down: the versions wait for the next period
        log.warning("sweep of retired ladder versions failed: %s", exc)
    if report.reaped or report.recorded or report.removed or report.swept:
        log.info("reconcile: %s", report)
    return report


def _listing(client: S3Client, bucket: str) -> dict[str, ObjectTypeDef]:
    return {item["Key"]: item for item in iter_objects(client, bucket)}


def reconcile_bucket(
    settings: Settings, catalog: Catalog, client: S3Client, bucket: str, grace_seconds: int
) -> tuple[list[str], list[str]]:
    listing = _listing(client, bucket)
    settled = utcnow() - timedelta(seconds=grace_seconds)
    recorded, removed = [], []
    with catalog.session() as session:
        assets = {a.key: a for a in session.scalars(select(Asset).where(Asset.bucket == bucket))}
        for key, item in listing.items():
            if not settings.is_video(key) or item["LastModified"] > settled:
                continue
            etag = str(item.get("ETag", "")).strip('"') or None
            asset = assets.get(key)
            if asset is None or asset.status == AssetStatus.DELETED or _etag(asset) != etag:
                record_upload(session, bucket, key, etag, int(item.get("Size", 0)), None)
                recorded.append(f"{bucket}/{key}")
        for key, asset in assets.items():
            if (
                key not in listing
                and asset.status != AssetStatus.DELETED
                and asset.created_at < settled
            ):
                record_delete(session, bucket, key)
                removed.append(f"{bucket}/{key}")
    return recorded, removed


def _etag(asset: Asset) -> str | None:
    return asset.etag.strip('"') if asset.etag else None


class Schedule:
    """Runs :func:`run_once` every ``settings.reconcile_seconds`` on a thread of its own
    (the first run one period after :meth:`start`). Starting it again is harmless: a
    consumer calls its startup hooks once per worker thread."""

    def __init__(self, settings: Settings, catalog: Callable[[], Catalog], enqueue: Enqueue):
        self.settings, self.catalog, self.enqueue = settings, catalog, enqueue
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, daemon=True, name="reconcile")
            self._thread.start()
        log.info("reconcile every %d s", self.settings.reconcile_seconds)

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.reconcile_seconds):
            try:
                run_once(self.settings, self.catalog(), self.enqueue)
            except Exception as exc:  # storage or catalog down: try again next period
                log.warning("reconcile failed: %s", exc)
