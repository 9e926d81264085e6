"""What ``nebula up`` needs done once storage answers: the catalog migrated, the admin
key made, the buckets created, and which buckets are not transcoded.

It runs in a short-lived child (``nebula prepare --for-up``), not in the supervisor: the
migrations (alembic), the S3 client (botocore's models) and the catalog (SQLAlchemy)
would otherwise stay in the supervisor's memory for as long as the stack runs. The child
answers one JSON line on stdout (a pipe to the supervisor: the new secret never reaches
a log).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from catalog import Catalog
from catalog.buckets import bucket_states, not_transcoded_line, transcode_settings
from catalog.keys import SecretBox, ensure_admin_key
from nebulacore.config import Settings
from nebulacore.s3 import S3Client, backend_client, ensure_buckets

log = logging.getLogger(__name__)

BACKEND_WAIT_SECONDS = 60.0


class StorageUnusable(Exception):
    """Storage listens but does not answer S3 calls."""


def wait_backend_usable(client: S3Client, timeout: float = BACKEND_WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.list_buckets()
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise StorageUnusable(f"storage does not answer S3 calls: {exc}") from exc
        time.sleep(0.5)


def prepare_catalog(settings: Settings) -> tuple[str, str | None]:
    """(the admin key's id, its secret when this start created it)."""
    with Catalog.opened(settings) as catalog:
        catalog.upgrade()
        with catalog.session() as session:
            key, secret, created = ensure_admin_key(session, SecretBox.from_settings(settings))
        if created:
            log.info("created the admin access key %s", key.access_key_id)
        # Only a new secret leaves: later starts have no reason to hold it.
        return key.access_key_id, secret if created else None


def untranscoded(settings: Settings, client: S3Client) -> str | None:
    """The summary's line naming the buckets whose uploads are stored only."""
    try:
        listed = client.list_buckets().get("Buckets", [])
        with Catalog.opened(settings) as catalog, catalog.session() as session:
            chosen = transcode_settings(session)
    except Exception as exc:  # a summary line is not worth failing the start for
        log.warning("could not tell which buckets are transcoded: %s", exc)
        return None
    names = sorted(b["Name"] for b in listed)
    return not_transcoded_line(bucket_states(settings, names, chosen))


def prepare_for_up(settings: Settings) -> dict[str, Any]:
    client = backend_client(settings)
    if settings.embedded_storage:
        wait_backend_usable(client)
    key_id, new_secret = prepare_catalog(settings)
    wanted = [*settings.ingest_buckets, settings.hls_bucket]
    for bucket in ensure_buckets(client, wanted):
        log.info("created bucket %s", bucket)
    return {
        "access_key_id": key_id,
        "new_secret": new_secret,
        "untranscoded": untranscoded(settings, client),
    }


def answer(settings: Settings) -> str:
    return json.dumps(prepare_for_up(settings))
