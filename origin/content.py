"""Cache lifetimes and safety headers of what the origin serves, by file name.

Content types and which names are segments or text are the ladder's contract,
:mod:`nebulacore.hls` (the transcoder stores the same types in the bucket). Uploaded
bytes (originals, and the ladder's files) are never an active document in the origin's
own origin: they carry :data:`INERT` (``nosniff`` and a sandboxing CSP), and an
original's type comes from an allow-list of media types (:func:`original_headers`).
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import hdrs
from aiohttp.helpers import content_disposition_header

from nebulacore.hls import (
    CONTENT_TYPES,
    DEFAULT_TYPE,
    IMMUTABLE,
    LIVE_CACHE,
    TEXT_SUFFIXES,
    content_type,
    is_segment,
    is_text,
    suffix,
)

# Names whose kind is found without reading their suffix.
NAMES_KEPT = 4096

__all__ = [
    "Kind",
    "LadderHeaders",
    "cache_control",
    "content_type",
    "growing_cache_control",
    "is_text",
    "original_cache_control",
    "original_headers",
    "original_type",
]

# On every answer of uploaded bytes: the browser never guesses another type (an HTML page
# out of "video/mp4"), and a document that opens anyway (a type a browser renders) runs
# in a sandbox of its own, with no script and no request to this origin.
INERT: Mapping[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
}
# A playable original opened in a tab is the browser's own media document, which loads the
# file again as its media: that one load is allowed.
INERT_MEDIA: Mapping[str, str] = {
    **INERT,
    "Content-Security-Policy": "sandbox; default-src 'none'; media-src 'self'",
}
# Nebula's own pages: their scripts and styles come from /static only (no inline script
# is allowed to run, whatever a title or key carries); hls.js plays through blob: URLs
# (Media Source Extensions) and starts its worker from one.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS: Mapping[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": PAGE_POLICY,
}
# The media types an original is served as: a player (or the browser's own) plays the
# video and audio ones inline; images are inert but still saved rather than shown. Any
# other type an uploader declared (text/html, image/svg+xml, application/pdf...) is
# served as bytes to save.
PLAYABLE_TYPES = frozenset(
    {
        "video/mp4",
        "video/quicktime",
        "video/webm",
        "video/x-matroska",
        "video/x-msvideo",
        "video/mpeg",
        "video/mp2t",
        "video/3gpp",
        "video/ogg",
        "audio/mp4",
        "audio/mpeg",
        "audio/aac",
        "audio/ogg",
        "audio/wav",
        "audio/x-wav",
        "audio/flac",
        "audio/webm",
    }
)
SAVED_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
DEFAULT_ORIGINAL = DEFAULT_TYPE

# Playlists and the files listed next to them may be replaced by a re-transcode.
SHORT = "public, max-age=10"
# Signed responses are for one viewer's token; shared caches must not keep them.
PRIVATE_SHORT = "private, max-age=10"
PRIVATE_IMMUTABLE = "private, max-age=31536000, immutable"
PRIVATE_LIVE = "private, max-age=1"
# Original uploads can be overwritten under the same key.
ORIGINAL = "public, max-age=60"
PRIVATE_ORIGINAL = "private, max-age=60"


def cache_control(name: str, signed: bool) -> str:
    # Segments never change under a name once published: a year, immutable.
    if is_segment(name):
        return PRIVATE_IMMUTABLE if signed else IMMUTABLE
    return PRIVATE_SHORT if signed else SHORT


def growing_cache_control(signed: bool) -> str:
    """A playlist that may still gain segments (no #EXT-X-ENDLIST): one second."""
    return PRIVATE_LIVE if signed else LIVE_CACHE


def original_cache_control(signed: bool) -> str:
    """An original behind a token is one viewer's, like the ladder's files."""
    return PRIVATE_ORIGINAL if signed else ORIGINAL


@dataclass(frozen=True)
class Kind:
    """What every answer about one kind of ladder file repeats."""

    text: bool  # a playlist or a thumbnail track (read whole, maybe rewritten)
    headers: Mapping[str, str]  # Content-Type, Cache-Control and ``extra`` (CORS)
    growing_headers: Mapping[str, str]  # the same for a playlist that may still grow


class LadderHeaders:
    """The :class:`Kind` of a ladder file by its suffix and whether its answer is signed,
    built once per kind rather than on every request (names of known suffixes only, so
    made-up names cannot grow the table), and found by the file's name for the names
    asked most (a player asks for the same few again and again)."""

    def __init__(self, extra: Mapping[str, str]) -> None:
        self._extra = dict(extra)
        self._kinds: dict[tuple[str, bool], Kind] = {}
        self._names: dict[tuple[str, bool], Kind] = {}

    def kind(self, name: str, signed: bool) -> Kind:
        found = self._names.get((name, signed))
        if found is not None:
            return found
        kind = (suffix(name), signed)
        found = self._kinds.get(kind)
        if found is None:
            found = self._make(name, signed)
            if kind[0] not in CONTENT_TYPES:
                return found
            self._kinds[kind] = found
        if len(self._names) >= NAMES_KEPT:
            self._names.clear()  # a new set of names is being asked for
        self._names[(name, signed)] = found
        return found

    def _make(self, name: str, signed: bool) -> Kind:
        headers = {
            hdrs.CONTENT_TYPE: content_type(name),
            hdrs.CACHE_CONTROL: cache_control(name, signed),
            **INERT,
            **self._extra,
        }
        growing = {**headers, hdrs.CACHE_CONTROL: growing_cache_control(signed)}
        return Kind(suffix(name) in TEXT_SUFFIXES, headers, growing)


def original_type(declared: str | None, key: str) -> str:
    """An original's Content-Type: the uploader's declared type (else the key's suffix's)
    when it is one of the allowed media types, else ``application/octet-stream``."""
    given = declared or mimetypes.guess_type(key)[0] or DEFAULT_ORIGINAL
    media_type = given.split(";", 1)[0].strip().lower()
    if media_type in PLAYABLE_TYPES or media_type in SAVED_MEDIA_TYPES:
        return media_type
    return DEFAULT_ORIGINAL


def original_headers(declared: str | None, key: str, filename: str) -> dict[str, str]:
    """Content-Type, Content-Disposition and :data:`INERT` of an original: inline only
    for playable media, else an attachment named ``filename``."""
    media_type = original_type(declared, key)
    playable = media_type in PLAYABLE_TYPES
    disposition = "inline" if playable else "attachment"
    return {
        hdrs.CONTENT_TYPE: media_type,
        hdrs.CONTENT_DISPOSITION: content_disposition_header(disposition, filename=filename),
        **(INERT_MEDIA if playable else INERT),
    }
