"""Content types and cache lifetimes of what the origin serves, by file name."""

from __future__ import annotations

from pathlib import PurePosixPath

PLAYLIST = "application/vnd.apple.mpegurl"
TYPES = {
    ".m3u8": PLAYLIST,
    ".mp4": "video/mp4",
    ".m4s": "video/mp4",
    ".m4a": "audio/mp4",
    ".ts": "video/mp2t",
    ".aac": "audio/aac",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".vtt": "text/vtt",
}
# Segments never change under a name once published: a year, immutable.
IMMUTABLE = "public, max-age=31536000, immutable"
# Playlists and the files listed next to them may be replaced by a re-transcode.
SHORT = "public, max-age=10"
# Signed responses are for one viewer's token; shared caches must not keep them.
PRIVATE_SHORT = "private, max-age=10"
PRIVATE_IMMUTABLE = "private, max-age=31536000, immutable"
# Original uploads can be overwritten under the same key.
ORIGINAL = "public, max-age=60"
PRIVATE_ORIGINAL = "private, max-age=60"

SEGMENT_SUFFIXES = frozenset({".m4s", ".ts", ".mp4", ".m4a", ".aac"})
TEXT_SUFFIXES = frozenset({".m3u8", ".vtt"})


def suffix(name: str) -> str:
    return PurePosixPath(name).suffix.lower()


def content_type(name: str) -> str:
    return TYPES.get(suffix(name), "application/octet-stream")


def is_text(name: str) -> bool:
    """Playlists and the thumbnail track: read whole, URIs rewritten when signing."""
    return suffix(name) in TEXT_SUFFIXES


def cache_control(name: str, signed: bool) -> str:
    if suffix(name) in SEGMENT_SUFFIXES:
        return PRIVATE_IMMUTABLE if signed else IMMUTABLE
    return PRIVATE_SHORT if signed else SHORT


def original_cache_control(signed: bool) -> str:
    """An original behind a token is one viewer's, like the ladder's files."""
    return PRIVATE_ORIGINAL if signed else ORIGINAL
