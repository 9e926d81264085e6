"""Read-only views of the catalog for the origin (it never writes there).

Queries run in a worker thread (SQLAlchemy is synchronous) and return plain dataclasses,
so nothing lazy-loads after the session is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog import Catalog
from catalog.assets import AssetChange, changed_since, deleted_ids, get_asset, list_assets
from catalog.ladders import stored_versions
from catalog.models import PENDING_ASSET, Asset, AssetStatus, Job, JobKind, JobStatus
from nebulacore.blocking import Offload
from origin.errors import CatalogDown

T = TypeVar("T")


@dataclass(frozen=True)
class RenditionView:
    name: str
    width: int | None
    height: int | None
    bandwidth: int


@dataclass(frozen=True)
class AssetView:
    id: str
    bucket: str
    key: str
    status: str
    duration: float | None
    size: int | None
    content_type: str | None
    created_at: str
    error: str | None
    job_status: str | None
    progress: float | None  # 0..100 of the latest transcode job
    renditions: list[RenditionView] = field(default_factory=list)
    # What of the source the ladder does not carry, and why (the transcoder's probe).
    not_carried: list[dict[str, Any]] = field(default_factory=list)
    # Queued: 1 + the queued transcode jobs created before this one's; else None.
    queue_position: int | None = None

    @property
    def folder(self) -> str:
        """The key's prefix (``films/2024/``), empty for a key at the bucket's root."""
        parent = str(PurePosixPath(self.key).parent)
        return "" if parent == "." else parent + "/"

    @property
    def audio_only(self) -> bool:
        """A song (or any asset without a picture): declared as audio, or every published
        rendition is sound only."""
        if (self.content_type or "").startswith("audio/"):
            return True
        return bool(self.renditions) and all(r.height is None for r in self.renditions)

    @property
    def broken(self) -> bool:
        """Nothing to play and nothing coming: failed without a previous ladder, or cancelled."""
        if self.status == AssetStatus.CANCELLED:
            return True
        return self.status == AssetStatus.FAILED and not self.playing_previous

    @property
    def title(self) -> str:
        return PurePosixPath(self.key).name or self.key

    @property
    def pending(self) -> bool:
        return self.status in PENDING_ASSET

    @property
    def playing_previous(self) -> bool:
        """An upload over a ready video failed to transcode: the previous ladder (its
        renditions, its master) stays published and is what viewers get."""
        return self.status == AssetStatus.FAILED and bool(self.renditions)

    @property
    def has_ladder(self) -> bool:
        """A complete ladder is published: this upload's, or the previous one's."""
        return self.status == AssetStatus.READY or self.playing_previous

    @property
    def playable(self) -> bool:
        """A master is published: the complete ladder (this upload's or, after a failed
        upload over it, the previous one's), or one still being transcoded."""
        return self.has_ladder or self.status == AssetStatus.PLAYABLE

    def as_json(self) -> dict[str, Any]:
        return asdict(self) | {
            "title": self.title,
            "folder": self.folder,
            "audio_only": self.audio_only,
            "playing_previous": self.playing_previous,
        }


def _progress_percent(job: Job) -> float:
    # The transcoder records percent (0..100) as ffmpeg advances.
    return round(job.progress or 0.0, 1)


def _queue(session: Session) -> dict[str, int]:
    """Each queued asset's place in line: its queued transcode job's rank by creation
    (workers claim the oldest first)."""
    waiting = select(Job.asset_id).where(
        Job.kind == JobKind.TRANSCODE, Job.status == JobStatus.QUEUED
    )
    ordered = session.scalars(waiting.order_by(Job.created_at, Job.id))
    places: dict[str, int] = {}
    for asset_id in ordered:
        places.setdefault(asset_id, len(places) + 1)
    return places


def _view(asset: Asset, queue: dict[str, int]) -> AssetView:
    jobs = [j for j in asset.jobs if j.kind == JobKind.TRANSCODE]
    job = jobs[-1] if jobs else None
    queued = asset.status == AssetStatus.QUEUED
    return AssetView(
        id=asset.id,
        bucket=asset.bucket,
        key=asset.key,
        status=asset.status.value,
        duration=asset.duration,
        size=asset.size,
        content_type=asset.content_type,
        created_at=asset.created_at.isoformat(),
        error=asset.error,
        job_status=job.status.value if job else None,
        progress=_progress_percent(job) if job else None,
        renditions=[
            RenditionView(r.name, r.width, r.height, r.bandwidth) for r in asset.renditions
        ],
        not_carried=list((asset.probe or {}).get("not_carried", [])),
        queue_position=queue.get(asset.id) if queued else None,
    )


class AssetReader:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def _one(self, asset_id: str) -> AssetView | None:
        """The asset, or None when there is none or it was deleted."""
        with self.catalog.session() as session:
            asset = get_asset(session, asset_id)
            if asset is None or asset.status == AssetStatus.DELETED:
                return None
            return _view(asset, _queue(session))

    def _listed(self) -> list[AssetView]:
        with self.catalog.session() as session:
            queue = _queue(session)
            return [_view(a, queue) for a in list_assets(session)]

    def _changed(self, since: datetime) -> list[AssetChange]:
        with self.catalog.session() as session:
            return changed_since(session, since)

    def _stored(self, asset_ids: list[str]) -> dict[str, set[str]]:
        with self.catalog.session() as session:
            return stored_versions(session, asset_ids)

    def _deleted(self) -> list[str]:
        with self.catalog.session() as session:
            return deleted_ids(session)

    async def _run(self, query: Callable[..., T], *args: Any) -> T:
        """``query`` in a worker thread; any failure of the catalog is CatalogDown."""
        try:
            return await Offload.default().run(query, *args)
        except Exception as exc:
            raise CatalogDown(type(exc).__name__) from None

    async def one(self, asset_id: str) -> AssetView | None:
        """The asset, or None; raises CatalogDown."""
        return await self._run(self._one, asset_id)

    async def listed(self) -> list[AssetView]:
        """Every listed asset; raises CatalogDown."""
        return await self._run(self._listed)

    async def changed_since(self, since: datetime) -> list[AssetChange]:
        """Assets changed after ``since``; raises CatalogDown."""
        return await self._run(self._changed, since)

    async def stored_versions(self, asset_ids: list[str]) -> dict[str, set[str]]:
        """The versions storage keeps of each of ``asset_ids`` (none asked: no query);
        raises CatalogDown."""
        if not asset_ids:
            return {}
        return await self._run(self._stored, asset_ids)

    async def deleted_ids(self) -> list[str]:
        """Every deleted asset's id; raises CatalogDown."""
        return await self._run(self._deleted)

    def dispose(self) -> None:
        self.catalog.dispose()
