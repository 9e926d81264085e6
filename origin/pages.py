"""``/`` (the list), ``/watch/<asset_id>`` (the player) and ``/api/assets`` (the same as JSON).

Refusals are raised and answered by :mod:`origin.errors`, as for the media handlers.
"""

from __future__ import annotations

import asyncio
import functools
import html
from pathlib import Path
from string import Template

from aiohttp import web

from catalog.models import AssetStatus
from nebulacore import hls
from origin import content
from origin.assets import AssetView
from origin.backend import BackendDown, Missing
from origin.ids import check_asset_id, hls_path, ladder_key
from origin.media import token_query
from origin.signing import LIST_SCOPE
from origin.state import ORIGIN, Origin

TEMPLATES = Path(__file__).with_name("templates")
# The pages' own files, named once at start: a request picks one of these by its name, and
# a name that is not one is a 404 before any answer exists (aiohttp's static route made
# it a 404 only while sending, after the request was counted as a 200).
STATIC_FILES = {
    path.name: path for path in Path(__file__).with_name("static").iterdir() if path.is_file()
}
# Scripts and styles are run only as the types their names give.
STATIC_HEADERS = {"X-Content-Type-Options": "nosniff"}
# Pages poll the API for progress: an answer is only ever about now.
NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


@functools.cache  # read once: the templates ship with the package
def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text())


def _duration(seconds: float | None) -> str:
    if not seconds:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


PLAYING_PREVIOUS = "playing the previous version"


def _status(asset: AssetView) -> str:
    """One line a card or the watch page's header shows: what the asset is doing now."""
    if asset.status == AssetStatus.QUEUED:
        return (
            "queued" if asset.queue_position is None else f"queued, {asset.queue_position} in line"
        )
    if asset.pending and asset.progress is not None:
        return f"{asset.status} {asset.progress:.0f}%"
    if asset.playing_previous:
        return f"{asset.status}, {PLAYING_PREVIOUS}"
    if asset.broken:
        return _reason(asset)
    return asset.status


def _reason(asset: AssetView) -> str:
    """Failed or cancelled, with the catalog's reason (``cancelled by user`` says both)."""
    if not asset.error:
        return asset.status
    if asset.error.startswith(asset.status):
        return asset.error
    return f"{asset.status}: {asset.error}"


def notice(asset: AssetView) -> str:
    """What the watch page says where the picture would be when there is none (yet)."""
    if asset.status == AssetStatus.QUEUED:
        place = "" if asset.queue_position is None else f" ({asset.queue_position} in line)"
        return f"Queued{place}: transcoding starts when the uploads ahead of it are done."
    if asset.status == AssetStatus.CANCELLED:
        return f"Transcoding was cancelled ({asset.error or 'no reason given'})."
    if asset.broken:
        return f"This upload could not be transcoded: {asset.error or 'no reason given'}."
    return "Transcoding: it plays here as soon as the first seconds are ready."


def summary(assets: list[AssetView]) -> str:
    """The library's counts, each saying what it counts: "12 videos, 2 songs, 1 failed"."""
    videos = sum(1 for a in assets if not a.broken and not a.audio_only)
    songs = sum(1 for a in assets if not a.broken and a.audio_only)
    failed = sum(1 for a in assets if a.broken and a.status == AssetStatus.FAILED)
    cancelled = sum(1 for a in assets if a.status == AssetStatus.CANCELLED)
    parts = [_plural(videos, "video")]
    parts += [_plural(songs, "song")] if songs else []
    parts += [f"{failed} failed"] if failed else []
    parts += [f"{cancelled} cancelled"] if cancelled else []
    return ", ".join(parts)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


async def _playable(origin: Origin, asset: AssetView) -> bool:
    """Ready, or still transcoding with a master already in storage (a provisional one is
    published once every rung has its first segment). The master is read through the
    playlist cache: pages polling every second cost one backend read per second."""
    if asset.playable:  # ready, or the catalog knows the provisional master is up
        return True
    if not asset.pending or origin.revocations.is_revoked(asset.id):
        return False
    try:
        await origin.read_text(ladder_key(asset.id, hls.MASTER))
    except (Missing, BackendDown):
        return False
    return True


def _card(asset: AssetView, links: bool) -> str:
    """One library card; its data attributes are what the page's search, sort and
    filters read (origin/static/list.js)."""
    e = html.escape
    poster = (
        f'<img src="{e(hls_path(asset.id, hls.POSTER))}" alt="" loading="lazy">'
        if links and asset.has_ladder
        else '<div class="noposter"></div>'
    )
    title = e(asset.title)
    if links:  # every watch page says what there is: the player, the progress, the reason
        title = f'<a href="/watch/{e(asset.id)}">{title}</a>'
    status = _status(asset)
    return (
        f'<li class="asset {e(asset.status)}" data-id="{e(asset.id)}"'
        f' data-title="{e(asset.title)}" data-folder="{e(_place(asset))}"'
        f' data-added="{e(asset.created_at)}" data-duration="{asset.duration or 0}"'
        f' data-status="{e(asset.status)}">{poster}'
        f'<div class="title">{title}</div>'
        f'<div class="folder">{e(_place(asset))}</div>'
        f'<div class="meta"><span class="duration">{_duration(asset.duration)}</span> '
        f'<span class="status" title="{e(status)}">{e(status)}</span></div></li>'
    )


def _place(asset: AssetView) -> str:
    """Where the file sits: its bucket and folder (two ``aaaa.mp4`` are told apart)."""
    return f"{asset.bucket}/{asset.folder}"


async def index(request: web.Request) -> web.Response:
    origin = request.app[ORIGIN]
    # With signed URLs on, the list must not hand out access: no posters, no links.
    links = origin.signer is None
    assets = await origin.assets.listed()
    e = html.escape
    cards = "\n".join(_card(a, links) for a in assets) or '<li class="empty">No videos yet.</li>'
    page = _template("index.html").substitute(cards=cards, count=e(summary(assets)))
    return web.Response(text=page, content_type="text/html", headers=content.PAGE_HEADERS)


async def watch(request: web.Request) -> web.Response:
    origin = request.app[ORIGIN]
    asset_id = check_asset_id(request.match_info["asset_id"])
    token = token_query(origin, request, asset_id)
    query = "" if token is None else "?" + token
    asset = await origin.assets.one(asset_id)
    if asset is None:
        raise Missing("no such asset")
    e = html.escape
    playable = await _playable(origin, asset)
    page = _template("watch.html").substitute(
        title=e(asset.title),
        asset_id=e(asset_id),
        status=e(_status(asset)),
        state=e(asset.status),
        playable="true" if playable else "false",
        duration=_duration(asset.duration),
        seconds=asset.duration or 0,
        notice=e(notice(asset)),
        broken="broken" if asset.broken else "",
        waiting="hidden" if playable or asset.has_ladder else "",
        original=e(f"/files/{asset_id}" + query),
        api=e(f"/api/assets/{asset_id}" + query),
        master=e(hls_path(asset_id, hls.MASTER) + query),
        poster=e(hls_path(asset_id, hls.POSTER) + query) if asset.has_ladder else "",
        thumbnails=e(hls_path(asset_id, hls.THUMBNAILS) + query),
    )
    return web.Response(text=page, content_type="text/html", headers=content.PAGE_HEADERS)


async def api_assets(request: web.Request) -> web.Response:
    """Every asset's bucket, key, type and error: with signing on, for a list token only
    (raises Refused)."""
    origin = request.app[ORIGIN]
    if origin.signer is not None:
        origin.signer.verify(LIST_SCOPE, request.query)
    assets = await origin.assets.listed()
    playable = await asyncio.gather(*(_playable(origin, a) for a in assets))
    listed = [_api(request, a, p) for a, p in zip(assets, playable, strict=True)]
    body = {"assets": listed, "summary": summary(assets)}
    return web.json_response(body, headers=NO_STORE)


async def api_asset(request: web.Request) -> web.Response:
    origin = request.app[ORIGIN]
    asset_id = check_asset_id(request.match_info["asset_id"])
    token_query(origin, request, asset_id)  # with signing on, the asset's token (Refused)
    asset = await origin.assets.one(asset_id)
    if asset is None:
        raise Missing("no such asset")
    body = _api(request, asset, await _playable(origin, asset))
    return web.json_response(body, headers=NO_STORE)


def _api(request: web.Request, asset: AssetView, playable: bool) -> dict[str, object]:
    """The asset as JSON; ``playable`` says its master can be loaded now. Links only
    without signing (a token is one viewer's: the list hands out no access)."""
    data = asset.as_json() | {
        "playable": playable,
        "status_text": _status(asset),
        "notice": notice(asset),
    }
    if request.app[ORIGIN].signer is not None:
        return data
    data["watch"] = f"/watch/{asset.id}"
    if playable:
        data["master"] = hls_path(asset.id, hls.MASTER)
    if asset.has_ladder:  # the poster is made from the complete ladder
        data["poster"] = hls_path(asset.id, hls.POSTER)
    if asset.status == AssetStatus.READY:  # after a failed upload, the file that failed
        data["original"] = f"/files/{asset.id}"
    return data


async def static_file(request: web.Request) -> web.FileResponse:
    path = STATIC_FILES.get(request.match_info["name"])
    if path is None:
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers=STATIC_HEADERS)
