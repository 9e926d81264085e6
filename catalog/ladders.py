"""Versions of published ladders waiting to be deleted (``retired_versions``).

A newer upload's ladder replaces the asset's master at once, but players that loaded the
old master still fetch its playlists and segments: the old version is *retired* here and
deleted only ``hls_retain_seconds`` later by the worker's sweep (``transcoder.removal``).
A deleted source's versions are given to its REMOVE job instead, which removes exactly
those: a ladder published after the deletion (the key uploaded again) is never one of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from catalog.db import Catalog
from catalog.models import OPEN_JOB, Asset, Job, JobKind, Rendition, RetiredVersion, utcnow
from nebulacore.hls import version_name


@dataclass(frozen=True)
class Retired:
    id: int
    asset_id: str
    version: str


def version_of(rendition: Rendition) -> str:
    """The version prefix a rendition's playlist lives under (``v<job>/<name>/index.m3u8``)."""
    return rendition.playlist.split("/", 1)[0]


def current_versions(asset: Asset) -> set[str]:
    return {version_of(r) for r in asset.renditions}


def retire(
    session: Session, asset_id: str, versions: Iterable[str], job_id: int | None = None
) -> None:
    """Record ``versions`` of ``asset_id`` for removal (already recorded ones stay as they are)."""
    known = set(
        session.scalars(select(RetiredVersion.version).where(RetiredVersion.asset_id == asset_id))
    )
    session.add_all(
        RetiredVersion(asset_id=asset_id, version=v, job_id=job_id)
        for v in sorted(set(versions) - known)
    )


def give_to_job(session: Session, asset_id: str, versions: Iterable[str], job_id: int) -> None:
    """A deleted source: its versions (new or already retired) go now, with its REMOVE job."""
    session.flush()
    retire(session, asset_id, versions, job_id)
    session.execute(
        update(RetiredVersion)
        .where(RetiredVersion.asset_id == asset_id)
        .values(job_id=job_id)
        .execution_options(synchronize_session=False)
    )


def hand_to_sweep(session: Session, job_id: int) -> None:
    """A REMOVE job that will not run (cancelled): its versions wait out the retention."""
    session.execute(
        update(RetiredVersion)
        .where(RetiredVersion.job_id == job_id)
        .values(job_id=None, retired_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def of_job(catalog: Catalog, job_id: int) -> list[Retired]:
    with catalog.session() as session:
        rows = session.scalars(select(RetiredVersion).where(RetiredVersion.job_id == job_id))
        return [Retired(r.id, r.asset_id, r.version) for r in rows]


def due(catalog: Catalog, retain_seconds: int, limit: int = 500) -> list[Retired]:
    """Versions retired more than ``retain_seconds`` ago that no REMOVE job owns.

    A version that is current again is never due (it cannot be, versions are per job;
    this guards a viewer against a bug rather than a race): its row is dropped instead.
    """
    cutoff = utcnow() - timedelta(seconds=retain_seconds)
    found: list[Retired] = []
    with catalog.session() as session:
        rows = session.scalars(
            select(RetiredVersion)
            .where(RetiredVersion.job_id.is_(None), RetiredVersion.retired_at <= cutoff)
            .order_by(RetiredVersion.id)
            .limit(limit)
        ).all()
        for row in rows:
            asset = session.get(Asset, row.asset_id)
            if asset is not None and row.version in current_versions(asset):
                session.delete(row)
            else:
                found.append(Retired(row.id, row.asset_id, row.version))
    return found


def forget(session: Session, ids: Iterable[int]) -> None:
    """These versions are gone from storage."""
    wanted = list(ids)
    if wanted:
        session.execute(delete(RetiredVersion).where(RetiredVersion.id.in_(wanted)))


def pending(catalog: Catalog, asset_id: str) -> list[str]:
    """The asset's versions waiting for removal (``nebula`` and tests read it)."""
    with catalog.session() as session:
        query = select(RetiredVersion.version).where(RetiredVersion.asset_id == asset_id)
        return sorted(session.scalars(query))


def swept(session: Session, retired: Retired) -> None:
    """``retired`` is gone from storage: its row goes, and its asset's row is stamped
    changed, so every origin worker drops what it cached of the version (it polls for
    changed assets and keeps only :func:`stored_versions`)."""
    forget(session, [retired.id])
    session.execute(
        update(Asset)
        .where(Asset.id == retired.asset_id)
        .values(updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def stored_versions(session: Session, asset_ids: Iterable[str]) -> dict[str, set[str]]:
    """The versions of each asset that storage keeps: its current ladder's, the retired
    ones not yet deleted, and those of its open transcode jobs (being published)."""
    wanted = list(set(asset_ids))
    found: dict[str, set[str]] = {asset_id: set() for asset_id in wanted}
    if not wanted:
        return found
    playlists = select(Rendition.asset_id, Rendition.playlist).where(Rendition.asset_id.in_(wanted))
    for asset_id, playlist in session.execute(playlists):
        found[asset_id].add(playlist.split("/", 1)[0])
    retired = select(RetiredVersion.asset_id, RetiredVersion.version).where(
        RetiredVersion.asset_id.in_(wanted)
    )
    for asset_id, version in session.execute(retired):
        found[asset_id].add(version)
    open_jobs = select(Job.asset_id, Job.id).where(
        Job.asset_id.in_(wanted), Job.kind == JobKind.TRANSCODE, Job.status.in_(OPEN_JOB)
    )
    for asset_id, job_id in session.execute(open_jobs):
        found[asset_id].add(version_name(job_id))
    return found
