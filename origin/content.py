"""Cache lifetimes of what the origin serves, by file name.

Content types and which names are segments or text are the ladder's contract,
:mod:`nebulacore.hls` (the transcoder stores the same types in the bucket).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import hdrs

from nebulacore.hls import (
    CONTENT_TYPES,
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
]

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
            **self._extra,
        }
        growing = {**headers, hdrs.CACHE_CONTROL: growing_cache_control(signed)}
        return Kind(suffix(name) in TEXT_SUFFIXES, headers, growing)
