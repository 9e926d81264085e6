"""``/hls/<asset_id>/<file>`` and ``/files/<asset_id>``: the bytes a player asks for.

Refusals are raised (BadName, Refused, Missing, BackendDown, CatalogDown) and answered
by :mod:`origin.errors`; what is served goes through :mod:`origin.respond`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from aiohttp import hdrs, web

from nebulacore.hls import PLAYLIST_TYPE, THUMBNAILS
from origin import content
from origin.backend import Missing, ObjectInfo
from origin.errors import CatalogDown
from origin.ids import check_asset_id, ladder_key
from origin.respond import body_etag, body_response, file_response, stream_response
from origin.rewrite import sign_playlist, sign_vtt
from origin.state import ORIGIN, Origin

RETRY_AFTER_PENDING = "10"


def token_query(origin: Origin, request: web.Request, asset_id: str) -> str | None:
    """The verified token to carry into rewritten URIs; None when signing is off.
    Raises Refused."""
    if origin.signer is None:
        return None
    return origin.signer.verify(asset_id, request.query)


async def hls(request: web.Request) -> web.StreamResponse:
    """The routed ``/hls/{asset_id}/{path}``: what :mod:`origin.front` passes on to the
    app (and what an app served without its front answers)."""
    match = request.match_info
    return await ladder_file(request, request.app[ORIGIN], match["asset_id"], match["path"])


async def ladder_file(
    request: web.Request, origin: Origin, asset_id: str, path: str
) -> web.StreamResponse:
    """``/hls/<asset_id>/<path>``."""
    key = ladder_key(asset_id, path)
    query = token_query(origin, request, asset_id)
    if origin.revocations.is_revoked(asset_id):
        raise Missing("no such asset")
    kind = origin.ladder_headers.kind(path, signed=query is not None)
    try:
        if kind.text:
            return await _text(request, origin, key, query, kind)
        return await _object(request, origin, key, kind.headers)
    except Missing:
        return await _missing(origin, asset_id)


async def _text(
    request: web.Request, origin: Origin, key: str, query: str | None, kind: content.Kind
) -> web.Response:
    text = await origin.read_text(key)
    body, info = text.body, text.info
    headers = kind.growing_headers if text.growing else kind.headers
    playlist = content.content_type(key) == PLAYLIST_TYPE
    # Playlists and the thumbnails track hold URIs to sign; a subtitle segment holds text.
    if query is not None and (playlist or key.endswith(f"/{THUMBNAILS}")):
        decoded = body.decode("utf-8", errors="replace")
        signed = sign_playlist(decoded, query) if playlist else sign_vtt(decoded, query)
        body = signed.encode()
        info = ObjectInfo(len(body), info.last_modified, body_etag(body), info.dated)
    return body_response(request, body, info, headers)


async def _object(
    request: web.Request, origin: Origin, key: str, headers: Mapping[str, str]
) -> web.StreamResponse:
    """From memory, else from the disk cache, else (larger than the cache) from the backend."""
    if not origin.cache.enabled:
        return await stream_response(request, origin.backend, origin.bucket, key, headers)
    hot = origin.memory.get(key)
    if hot is None:
        cached = await origin.cache.get(key)
        if cached is None:  # larger than the whole cache
            return await stream_response(request, origin.backend, origin.bucket, key, headers)
        hot = await origin.memory.load(key, cached.path, cached.info.size)
        if hot is None:
            return file_response(request, str(cached.path), cached.info, headers)
    return body_response(request, hot.body, hot.info, headers)


async def _missing(origin: Origin, asset_id: str) -> web.Response:
    """404, and for an asset still transcoding: when to come back and how far it got."""
    try:
        asset = await origin.assets.one(asset_id)
    except CatalogDown:  # the catalog being down must not turn a 404 into a 503
        asset = None
    if asset is None:
        raise Missing("no such asset")
    if not asset.pending:
        failed = {"asset_id": asset_id, "status": asset.status, "error": asset.error}
        return web.json_response(failed, status=404)
    body: dict[str, object] = {
        "asset_id": asset_id,
        "status": asset.status,
        "job_status": asset.job_status,
        "progress": asset.progress,
        "message": "still transcoding, retry later",
    }
    return web.Response(
        status=404,
        text=json.dumps(body),
        content_type="application/json",
        headers={hdrs.RETRY_AFTER: RETRY_AFTER_PENDING, hdrs.CACHE_CONTROL: "no-store"},
    )


async def original(request: web.Request) -> web.StreamResponse:
    """The uploaded file itself, with byte ranges: progressive MP4 playback and seeking."""
    origin = request.app[ORIGIN]
    asset_id = check_asset_id(request.match_info["asset_id"])
    query = token_query(origin, request, asset_id)
    asset = await origin.assets.one(asset_id)
    if asset is None:
        raise Missing("no such asset")
    # Whatever type the uploader declared, never a document that runs in this origin.
    headers = content.original_headers(asset.content_type, asset.key, asset.title)
    headers[hdrs.CACHE_CONTROL] = content.original_cache_control(signed=query is not None)
    try:
        return await stream_response(request, origin.backend, asset.bucket, asset.key, headers)
    except Missing:
        raise Missing("the original is gone") from None
