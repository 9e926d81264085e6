"""Deleted and changed assets leave every cache tier of this worker within about a second.

Each origin worker polls the catalog every :data:`POLL_SECONDS` for the assets whose row
changed since its last poll (one query of three columns). A deleted asset is *revoked*:
its keys are dropped from every tier (playlists, memory, the disk cache, whose files are
removed) and every request for its files is a 404 from then on, even while its files are
still in storage (the remove job deletes them later). An asset changed otherwise (an
upload over it, a ladder published, a retired version swept from storage) has its
replaceable names dropped (master, poster, thumbnails), and every version it caches that
storage no longer keeps (neither ``catalog.ladders.stored_versions`` lists it nor storage
has it): a ``v<job>/`` name never changes, so a superseded ladder stays playable exactly
while it is kept in storage, and the sweep that deletes it stamps the asset changed. An
asset uploaded again after its deletion is served again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime, timedelta

from catalog.assets import AssetChange
from catalog.models import utcnow
from nebulacore import hls
from origin.assets import AssetReader
from origin.errors import CatalogDown

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
# Each poll looks this far behind the previous one's start: a row's updated_at is stamped
# by the writer's clock before its transaction commits, so a change can become visible
# with a stamp older than the last poll (a slow commit, clocks of other machines).
OVERLAP = timedelta(seconds=30)
# Names under an asset that a new ladder replaces (everything else is under ``v<job>/``).
REPLACEABLE = (hls.MASTER, hls.POSTER, hls.THUMBNAILS)


class Revocations:
    def __init__(
        self,
        assets: AssetReader,
        drop_prefix: Callable[[str], None],
        keep_versions: Callable[[str, Collection[str]], Awaitable[None]],
    ) -> None:
        self._assets = assets
        self._drop_prefix = drop_prefix
        self._keep_versions = keep_versions
        self.revoked: set[str] = set()
        # The change of each asset already acted on, for as long as polls can see it again.
        self._seen: dict[str, datetime] = {}
        self._started = utcnow()
        self._since: datetime | None = None  # None until the first poll succeeded
        self._failing = False
        self.polls = 0

    def is_revoked(self, asset_id: str) -> bool:
        return asset_id in self.revoked

    async def poll(self) -> None:
        """One look at the catalog; raises CatalogDown (the next poll covers this one)."""
        started = utcnow()
        if self._since is None:
            # Everything deleted before; what changed since this worker started (its
            # caches may have filled while the catalog was out) is the poll below.
            self.revoked = set(await self._assets.deleted_ids())
            self._since = self._started
        horizon = self._since - OVERLAP
        changes = [
            change
            for change in await self._assets.changed_since(horizon)
            if self._seen.get(change.asset_id) != change.updated_at
        ]
        # Asked before anything is marked seen: a failed query is retried by the next poll.
        stored = await self._assets.stored_versions([c.asset_id for c in changes if not c.deleted])
        for change in changes:
            self._apply(change)
            if not change.deleted:
                await self._keep_versions(change.asset_id, stored.get(change.asset_id, set()))
        self._seen = {k: v for k, v in self._seen.items() if v > horizon}
        self._since = started
        self.polls += 1

    def _apply(self, change: AssetChange) -> None:
        self._seen[change.asset_id] = change.updated_at
        asset_id = change.asset_id
        if change.deleted:
            self.revoked.add(asset_id)
            self._drop_prefix(hls.asset_key(asset_id, ""))
            return
        self.revoked.discard(asset_id)
        for name in REPLACEABLE:
            self._drop_prefix(hls.asset_key(asset_id, name))

    async def run(self) -> None:
        """Poll until cancelled; a catalog outage is logged once and polling goes on."""
        while True:
            try:
                await self.poll()
            except CatalogDown as exc:
                if not self._failing:
                    log.warning("catalog unavailable for revocations: %s", exc)
                self._failing = True
            except Exception:  # a bug must not end revocations for this worker's life
                log.exception("revocation poll failed")
            else:
                if self._failing:
                    log.info("catalog available again for revocations")
                self._failing = False
            await asyncio.sleep(POLL_SECONDS)

    def gauges(self) -> dict[str, float]:
        return {
            "nebula_origin_revoked_assets": len(self.revoked),
            "nebula_origin_revocation_polls_total": self.polls,
        }
