"""Cache lifetimes of what the origin serves, by file name.

Content types and which names are segments or text are the ladder's contract,
:mod:`nebulacore.hls` (the transcoder stores the same types in the bucket).
"""

from __future__ import annotations

from nebulacore.hls import IMMUTABLE, LIVE_CACHE, content_type, is_segment, is_text

__all__ = [
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
