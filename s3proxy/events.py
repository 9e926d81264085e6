"""Upload events: a video landing in an ingest bucket becomes an asset and a transcode.

After the backend answered 2xx, :meth:`UploadEvents.written` records the asset, its job
and an outbox event in one catalog transaction (so nothing is lost), then relays the
outbox to the queue in the background (when the process was given an enqueue: the
shell passes the transcoder's; without one the reconcile relays). Both steps are best effort for the client: a down
catalog or queue never turns a stored object into a failed PUT; the worker's periodic
reconcile picks up what was missed.

A stalled catalog (another connection holding a write lock) must not stall uploads or
anything else: the writes run on a few threads of their own (key lookups have theirs),
and an upload waits ``catalog_write_wait_seconds`` for its record; after that it is
answered, and a write still queued is dropped (the reconcile records the upload).
"""

from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog import Catalog
from catalog.assets import find_asset, record_delete, record_upload
from catalog.buckets import TranscodedBuckets, transcode_settings
from nebulacore.blocking import Offload
from nebulacore.config import Settings
from nebulaqueue.relay import Enqueue, relay_pending
from s3proxy.errors import S3Error, client_document, local_name

log = logging.getLogger(__name__)
WRITE_THREADS = 2


def etag_from_xml(body: bytes) -> str | None:
    """The ETag of a CopyObjectResult / CompleteMultipartUploadResult, None for an <Error>."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    if local_name(root.tag) == "Error":
        return None
    for node in root:
        if local_name(node.tag) == "ETag":
            return node.text
    return None


def deleted_keys(body: bytes) -> list[str]:
    """Keys listed under <Deleted> in a DeleteObjects answer."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return []
    keys = []
    for node in root:
        if local_name(node.tag) == "Deleted":
            for child in node:
                if local_name(child.tag) == "Key" and child.text is not None:
                    keys.append(child.text)
    return keys


def malformed_xml() -> S3Error:
    return S3Error(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
    )


def requested_keys(body: bytes) -> list[tuple[str, bool]]:
    """The keys a DeleteObjects request names, each with whether it names one version,
    read as strictly as the backend could read them otherwise: no DOCTYPE (Python would
    expand entities Go's parser refuses), and exactly one ``Key`` and at most one
    ``VersionId`` per ``Object`` (of two, each parser may take another)."""
    if b"<!DOCTYPE" in body.upper():
        raise malformed_xml()
    root = client_document(body, "Delete", malformed_xml())
    keys = []
    for node in root:
        if local_name(node.tag) != "Object":
            continue
        named = [child.text or "" for child in node if local_name(child.tag) == "Key"]
        versions = [child for child in node if local_name(child.tag) == "VersionId"]
        if len(named) != 1 or len(versions) > 1:
            raise malformed_xml()
        keys.append((named[0], bool(versions)))
    return keys


class UploadEvents:
    def __init__(self, settings: Settings, catalog: Catalog, enqueue: Enqueue | None) -> None:
        self.settings = settings
        self.catalog = catalog
        self.enqueue = enqueue
        self._relay_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self._threads = Offload(WRITE_THREADS, "catalog-write")
        self._wait = settings.catalog_write_wait_seconds
        # Which buckets are transcoded: the catalog's settings (`nebula buckets`), read
        # now and then off the event loop; NEBULA_INGEST_BUCKETS for buckets never set.
        self.transcoded = TranscodedBuckets(self._read_bucket_settings, settings.ingest_buckets)
        self.transcoded.refresh()
        self._refreshing = False

    def _read_bucket_settings(self) -> dict[str, bool]:
        with self.catalog.session() as session:
            return transcode_settings(session)

    def watches(self, bucket: str | None) -> bool:
        if self.transcoded.stale() and not self._refreshing:
            self._refreshing = True
            task = asyncio.create_task(self._refresh_bucket_settings())
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return bucket is not None and self.transcoded(bucket)

    async def _refresh_bucket_settings(self) -> None:
        try:
            await self._threads.run(self.transcoded.refresh)
        finally:
            self._refreshing = False

    async def written(
        self, bucket: str, key: str, etag: str | None, size: int | None, content_type: str | None
    ) -> None:
        if not (self.watches(bucket) and self.settings.is_video(key, content_type)):
            return

        def record() -> str:
            with self.catalog.session() as session:
                self._bound_lock_wait(session)
                asset, job = record_upload(session, bucket, key, etag, size, content_type)
                return f"asset {asset.id} job {job.id}"

        await self._in_catalog(record, f"upload of {bucket}/{key}")

    async def version_removed(
        self, bucket: str, key: str, etag: str | None, size: int | None, content_type: str | None
    ) -> None:
        """One version of an object that still exists was deleted: if the object the key
        now names is not the one the asset was made from (the current version was the one
        deleted), it is announced as a new upload."""
        if not (self.watches(bucket) and self.settings.is_video(key, content_type)):
            return

        def record() -> str:
            with self.catalog.session() as session:
                self._bound_lock_wait(session)
                asset = find_asset(session, bucket, key)
                if asset is not None and asset.etag == etag:
                    return "the current version is unchanged"
                asset, job = record_upload(session, bucket, key, etag, size, content_type)
                return f"asset {asset.id} job {job.id}"

        await self._in_catalog(record, f"version removal in {bucket}/{key}")

    async def deleted(self, bucket: str, keys: Iterable[str]) -> None:
        names = list(keys)

        def record() -> str:
            with self.catalog.session() as session:
                self._bound_lock_wait(session)
                jobs = [record_delete(session, bucket, key) for key in names]
                return f"{sum(job is not None for job in jobs)} removal job(s)"

        await self._in_catalog(record, f"deletion of {len(names)} key(s) in {bucket}")

    def _bound_lock_wait(self, session: Session) -> None:
        """PostgreSQL waits for a lock forever by default: this transaction gives up when
        the upload stops waiting for it, so a locked catalog does not hold the thread.
        (SQLite's busy timeout already bounds the wait.)"""
        if session.get_bind().dialect.name == "postgresql":
            milliseconds = f"{round(self._wait * 1000)}ms"
            session.execute(select(func.set_config("lock_timeout", milliseconds, True)))

    async def _in_catalog(self, record: Callable[[], str], what: str) -> None:
        try:
            # On timeout a write not started yet is dropped; one already running finishes
            # on its thread (the reconcile relays it).
            outcome = await self._threads.run_within(self._wait, record)
        except TimeoutError:
            log.warning(
                "catalog did not record the %s within %gs; the reconcile will", what, self._wait
            )
            return
        except Exception:
            log.exception("catalog did not record the %s; the reconcile will", what)
            return
        log.info("recorded %s: %s", what, outcome)
        if self.enqueue is None:
            return  # no queue handed to this process: the worker's reconcile relays
        task = asyncio.create_task(self._relay(self.enqueue))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _relay(self, enqueue: Enqueue) -> None:
        # One relay at a time: concurrent uploads would otherwise send the same events twice.
        async with self._relay_lock:
            try:
                sent = await self._threads.run(relay_pending, self.catalog, enqueue)
            except Exception:
                log.exception("outbox relay failed; the reconcile will retry")
                return
        log.debug("outbox relay sent %d event(s)", sent)

    async def drain(self) -> None:
        """Wait for background relays (at shutdown)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def close(self) -> None:
        self._threads.close()
