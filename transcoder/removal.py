"""Deleting HLS output: a deleted source's ladder (the REMOVE job) and, after the retention,
the versions a newer upload replaced (the sweep, run by the worker's reconcile).

Both delete only versions the catalog lists (``catalog.ladders``): never the prefix of the
whole asset, so a ladder published by a later upload of the same key is never touched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.orm import Session

from catalog import Asset, AssetStatus, Catalog, jobs, ladders
from catalog.jobs import Claim
from catalog.ladders import Retired
from nebulacore import hls
from nebulacore.config import Settings
from nebulacore.s3 import S3Client, backend_client, delete_keys, list_keys
from transcoder.errors import LeaseLost

log = logging.getLogger(__name__)

# What lives beside the versions, at the asset's root; the master goes first, so no
# player starts on a ladder being deleted.
ROOT_FILES = (hls.MASTER, hls.POSTER, hls.THUMBNAILS)


def delete_version(client: S3Client, bucket: str, asset_id: str, version: str) -> int:
    """Delete every object of one version (``<asset_id>/<version>/``); how many there were."""
    keys = list_keys(client, bucket, hls.asset_key(asset_id, version) + "/")
    delete_keys(client, bucket, keys)
    return len(keys)


def stored_versions(client: S3Client, bucket: str, asset_id: str) -> set[str]:
    """The versions of ``asset_id`` present in the bucket."""
    return {hls.version_of_key(k) for k in list_keys(client, bucket, hls.versions_prefix(asset_id))}


def remove_deleted(
    settings: Settings,
    catalog: Catalog,
    client: S3Client,
    claim: Claim,
    confirm: Callable[[], None],
) -> int:
    """The REMOVE job: the deleted source's master and images, then the versions it owns.

    ``confirm`` raises when the job was cancelled (the key was uploaded again): from then
    on the asset's root files are the new upload's.
    """
    bucket = settings.hls_bucket
    owned = ladders.of_job(catalog, claim.job_id)
    confirm()
    count = 0
    if _still_deleted(catalog, claim.asset_id):
        keys = [hls.asset_key(claim.asset_id, name) for name in ROOT_FILES]
        for key in keys:  # one by one, the master first
            delete_keys(client, bucket, [key])
        count += len(keys)
    count += sum(delete_version(client, bucket, r.asset_id, r.version) for r in owned)

    def close(session: Session) -> None:
        if jobs.close_held(session, claim, jobs.JobStatus.DONE, None) is None:
            raise LeaseLost("lease lost")
        ladders.forget(session, [r.id for r in owned])

    with catalog.session() as session:
        close(session)
    log.info("removed %d HLS objects of asset %s", count, claim.asset_id)
    return count


def _still_deleted(catalog: Catalog, asset_id: str) -> bool:
    with catalog.session() as session:
        asset = session.get(Asset, asset_id)
        return asset is not None and asset.status == AssetStatus.DELETED


def sweep(settings: Settings, catalog: Catalog, client: S3Client | None = None) -> list[str]:
    """Delete the retired versions whose retention is over; ``asset/version`` of each."""
    client = client or backend_client(settings)
    removed: list[str] = []
    for retired in ladders.due(catalog, settings.hls_retain_seconds):
        _sweep_one(settings, catalog, client, retired)
        removed.append(f"{retired.asset_id}/{retired.version}")
    if removed:
        log.info("deleted %d retired ladder versions: %s", len(removed), removed)
    return removed


def _sweep_one(settings: Settings, catalog: Catalog, client: S3Client, retired: Retired) -> None:
    # Storage first, then the row: a crash in between deletes nothing twice that matters.
    # The row's removal stamps the asset changed: the origins drop their copies then.
    delete_version(client, settings.hls_bucket, retired.asset_id, retired.version)
    with catalog.session() as session:
        ladders.swept(session, retired)
