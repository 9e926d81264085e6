"""Signed playback URLs: an expiry and an HMAC over the asset id, checked in constant time.

A token covers one asset (its ladder, its original, its watch page and ``/api/assets/<id>``;
``/api/assets``, the list, takes a token of its own, :data:`LIST_SCOPE`): the master URL carries it, and the origin writes it into every
URI of the playlists (and the thumbnail track) it serves, so segments, init segments and
images are covered by the same token without a token per file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from urllib.parse import urlencode

from nebulacore.hls import MASTER
from origin.ids import hls_path

# The scope of a token for the list of every asset (``/api/assets``): no asset id has a
# "*", so no asset's token is one for the list, nor the list's for an asset.
LIST_SCOPE = "*"
EXPIRES = "exp"
SIGNATURE = "sig"
# The only shapes a token can have: up to 12 ASCII digits (no "²", no sign, no space; about
# 31,000 years of seconds) and 43 characters of unpadded url-safe base64 (a SHA-256 HMAC).
EXPIRES_SHAPE = re.compile(r"[0-9]{1,12}", re.ASCII)
SIGNATURE_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}", re.ASCII)


class Refused(Exception):
    """A missing, malformed, wrong or expired token (answered 403)."""


class PlaybackSigner:
    def __init__(self, key: str) -> None:
        self._key = key.encode()

    def signature(self, asset_id: str, expires: int) -> str:
        message = f"nebula-playback\n{asset_id}\n{expires}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def query(self, asset_id: str, expires: int) -> str:
        return urlencode({EXPIRES: expires, SIGNATURE: self.signature(asset_id, expires)})

    def master_url(self, origin_url: str, asset_id: str, ttl_seconds: int) -> str:
        expires = int(time.time()) + ttl_seconds
        path = hls_path(asset_id, MASTER)
        return f"{origin_url.rstrip('/')}{path}?{self.query(asset_id, expires)}"

    def watch_url(self, origin_url: str, asset_id: str, ttl_seconds: int) -> str:
        expires = int(time.time()) + ttl_seconds
        return f"{origin_url.rstrip('/')}/watch/{asset_id}?{self.query(asset_id, expires)}"

    def list_url(self, origin_url: str, ttl_seconds: int) -> str:
        """``/api/assets`` for ``ttl_seconds``: what every asset is, for one admin."""
        expires = int(time.time()) + ttl_seconds
        return f"{origin_url.rstrip('/')}/api/assets?{self.query(LIST_SCOPE, expires)}"

    def verify(self, asset_id: str, params: Mapping[str, str], now: float | None = None) -> str:
        """The query string to carry on (``exp=…&sig=…``); raises Refused."""
        expires_text = params.get(EXPIRES, "")
        given = params.get(SIGNATURE, "")
        if not expires_text or not given:
            raise Refused("a signed URL is required")
        if not EXPIRES_SHAPE.fullmatch(expires_text):
            raise Refused("malformed expiry")
        if not SIGNATURE_SHAPE.fullmatch(given):
            raise Refused("malformed signature")
        expires = int(expires_text)
        # Compare before looking at the clock so a wrong token and an expired one cost alike;
        # both sides are ASCII of one length here, compared in constant time.
        if not hmac.compare_digest(given.encode(), self.signature(asset_id, expires).encode()):
            raise Refused("bad signature")
        if expires < (time.time() if now is None else now):
            raise Refused("expired")
        return self.query(asset_id, expires)
