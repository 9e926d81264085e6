"""``/`` (the list), ``/watch/<asset_id>`` (the player) and ``/api/assets`` (the same as JSON).

Refusals are raised and answered by :mod:`origin.errors`, as for the media handlers.
"""

from __future__ import annotations

import functools
import html
from pathlib import Path
from string import Template

from aiohttp import web

from nebulacore import hls
from origin.assets import AssetView
from origin.backend import Missing
from origin.ids import check_asset_id, hls_path
from origin.media import token_query
from origin.state import ORIGIN

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
        f'<img src="{e(hls_path(asset.id, hls.POSTER))}" alt="" loading="lazy">'
        if links and asset.status == "ready"
        else '<div class="noposter"></div>'
    )
    title = e(asset.title)
    if links and asset.playable:
        title = f'<a href="/watch/{e(asset.id)}">{title}</a>'
    return (
        f'<li class="asset {e(asset.status)}" data-id="{e(asset.id)}">{poster}'
        f'<div class="title">{title}</div>'
        f'<div class="meta"><span class="duration">{_duration(asset.duration)}</span> '
        f'<span class="status">{e(_status(asset))}</span></div></li>'
    )


async def index(request: web.Request) -> web.Response:
    origin = request.app[ORIGIN]
    # With signed URLs on, the list must not hand out access: no posters, no links.
    links = origin.signer is None
    assets = await origin.assets.listed()
    cards = "\n".join(_card(a, links) for a in assets) or '<li class="empty">No videos yet.</li>'
    count = "1 video" if len(assets) == 1 else f"{len(assets)} videos"
    page = _template("index.html").substitute(cards=cards, count=count)
    return web.Response(text=page, content_type="text/html")


async def watch(request: web.Request) -> web.Response:
    origin = request.app[ORIGIN]
    asset_id = check_asset_id(request.match_info["asset_id"])
    token = token_query(origin, request, asset_id)
    query = "" if token is None else "?" + token
    asset = await origin.assets.one(asset_id)
    if asset is None:
        raise Missing("no such asset")
    e = html.escape
    page = _template("watch.html").substitute(
        title=e(asset.title),
        asset_id=e(asset_id),
        status=e(_status(asset)),
        duration=_duration(asset.duration),
        master=e(hls_path(asset_id, hls.MASTER) + query),
        poster=e(hls_path(asset_id, hls.POSTER) + query),
        thumbnails=e(hls_path(asset_id, hls.THUMBNAILS) + query),
    )
    return web.Response(text=page, content_type="text/html")


async def api_assets(request: web.Request) -> web.Response:
    assets = await request.app[ORIGIN].assets.listed()
    return web.json_response({"assets": [_api(request, a) for a in assets]})


async def api_asset(request: web.Request) -> web.Response:
    asset = await request.app[ORIGIN].assets.one(check_asset_id(request.match_info["asset_id"]))
    if asset is None:
        raise Missing("no such asset")
    return web.json_response(_api(request, asset))


def _api(request: web.Request, asset: AssetView) -> dict[str, object]:
    data = asset.as_json()
    if request.app[ORIGIN].signer is None and asset.playable:
        data["master"] = hls_path(asset.id, hls.MASTER)
        data["watch"] = f"/watch/{asset.id}"
        data["original"] = f"/files/{asset.id}"
        if asset.status == "ready":  # the poster is made from the complete ladder
            data["poster"] = hls_path(asset.id, hls.POSTER)
    return data
