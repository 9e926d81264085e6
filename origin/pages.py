"""``/`` (the list), ``/watch/<asset_id>`` (the player) and ``/api/assets`` (the same as JSON)."""

from __future__ import annotations

import functools
import html
import logging
from pathlib import Path
from string import Template

from aiohttp import web

from origin.assets import AssetView
from origin.ids import BadName, check_asset_id
from origin.signing import Refused
from origin.state import ORIGIN

log = logging.getLogger("nebula.origin")
TEMPLATES = Path(__file__).with_name("templates")


@functools.cache  # read once: the templates ship with the package
def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text())


def _duration(seconds: float | None) -> str:
    if not seconds:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _status(asset: AssetView) -> str:
    if asset.pending and asset.progress is not None:
        return f"{asset.status} {asset.progress:.0f}%"
    return asset.status


def _card(asset: AssetView, links: bool) -> str:
    e = html.escape
    poster = (
        f'<img src="/hls/{e(asset.id)}/poster.jpg" alt="" loading="lazy">'
        if links and asset.status == "ready"
        else '<div class="noposter"></div>'
    )
    title = e(asset.title)
    if links and asset.status == "ready":
        title = f'<a href="/watch/{e(asset.id)}">{title}</a>'
    return (
        f'<li class="asset {e(asset.status)}" data-id="{e(asset.id)}">{poster}'
        f'<div class="title">{title}</div>'
        f'<div class="meta"><span class="duration">{_duration(asset.duration)}</span> '
        f'<span class="status">{e(_status(asset))}</span></div></li>'
    )


async def _listed(request: web.Request) -> list[AssetView]:
    try:
        return await request.app[ORIGIN].assets.listed()
    except Exception as exc:
        log.warning("catalog unavailable for the list: %s", type(exc).__name__)
        raise web.HTTPServiceUnavailable(text="catalog unavailable\n") from None


async def index(request: web.Request) -> web.Response:
    origin = request.app[ORIGIN]
    # With signed URLs on, the list must not hand out access: no posters, no links.
    links = origin.signer is None
    assets = await _listed(request)
    cards = "\n".join(_card(a, links) for a in assets) or '<li class="empty">No videos yet.</li>'
    count = "1 video" if len(assets) == 1 else f"{len(assets)} videos"
    page = _template("index.html").substitute(cards=cards, count=count)
    return web.Response(text=page, content_type="text/html")


async def watch(request: web.Request) -> web.Response:
    origin = request.app[ORIGIN]
    try:
        asset_id = check_asset_id(request.match_info["asset_id"])
    except BadName as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    query = ""
    if origin.signer is not None:
        try:
            query = "?" + origin.signer.verify(asset_id, request.query)
        except Refused as exc:
            raise web.HTTPForbidden(text=str(exc) + "\n") from None
    try:
        asset = await origin.assets.one(asset_id)
    except Exception:
        raise web.HTTPServiceUnavailable(text="catalog unavailable\n") from None
    if asset is None:
        raise web.HTTPNotFound(text="no such asset\n")
    base = f"/hls/{asset_id}/"
    e = html.escape
    page = _template("watch.html").substitute(
        title=e(asset.title),
        asset_id=e(asset_id),
        status=e(_status(asset)),
        duration=_duration(asset.duration),
        master=e(f"{base}master.m3u8{query}"),
        poster=e(f"{base}poster.jpg{query}"),
        thumbnails=e(f"{base}thumbnails.vtt{query}"),
    )
    return web.Response(text=page, content_type="text/html")


async def api_assets(request: web.Request) -> web.Response:
    assets = await _listed(request)
    return web.json_response({"assets": [_api(request, a) for a in assets]})


async def api_asset(request: web.Request) -> web.Response:
    try:
        asset_id = check_asset_id(request.match_info["asset_id"])
    except BadName as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    try:
        asset = await request.app[ORIGIN].assets.one(asset_id)
    except Exception:
        raise web.HTTPServiceUnavailable(text="catalog unavailable\n") from None
    if asset is None:
        raise web.HTTPNotFound(text="no such asset\n")
    return web.json_response(_api(request, asset))


def _api(request: web.Request, asset: AssetView) -> dict[str, object]:
    data = asset.as_json()
    if request.app[ORIGIN].signer is None and asset.status == "ready":
        data["master"] = f"/hls/{asset.id}/master.m3u8"
        data["poster"] = f"/hls/{asset.id}/poster.jpg"
        data["watch"] = f"/watch/{asset.id}"
        data["original"] = f"/files/{asset.id}"
    return data
