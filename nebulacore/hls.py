"""The published HLS ladder: its key layout, names and content types, in one place.

The transcoder writes this layout into ``settings.hls_bucket``; the origin serves exactly
these keys, with these content types (and the bucket stores the same types, so a reader
that bypasses the origin sees what a viewer sees)::

    <asset_id>/master.m3u8                      master playlist; its URIs are relative and
                                                point into the current version. Written once
                                                every rendition has its first segment (a first
                                                upload: provisional BANDWIDTH) and again,
                                                measured, when the ladder is complete
    <asset_id>/poster.jpg                       poster frame (JPEG), written just before master
    <asset_id>/thumbnails.vtt                   WebVTT scrubbing track; cue payloads are
                                                ``v<job_id>/sprite.jpg#xywh=x,y,w,h``
    <asset_id>/v<job_id>/<rendition>/index.m3u8 EVENT media playlist of one rendition: grows
                                                while transcoding (no ``#EXT-X-ENDLIST``,
                                                :func:`is_growing`), then ends (only ever
                                                appended to: RFC 8216 6.2.1)
    <asset_id>/v<job_id>/<rendition>/vod.m3u8   VOD media playlist of the same segments,
                                                written at the end; the measured master
                                                points at these
    <asset_id>/v<job_id>/<rendition>/iframes.m3u8   I-frame playlist of a video rendition
                                                (fMP4): each segment's leading keyframe as a
                                                byte range; in the measured master
    <asset_id>/v<job_id>/<rendition>/init_<n>.mp4   fMP4 init segment (absent with TS)
    <asset_id>/v<job_id>/<rendition>/seg_<nnnnn>.m4s media segments (``.ts`` with TS)
    <asset_id>/v<job_id>/sprite.jpg             thumbnail sprite (a grid of small frames)

``<rendition>`` is ``<short side>p`` for video (``1080p``, ``718p``, ...), ``audio``,
``audio_1``, ... for the AAC renditions of the source's audio tracks (an ``EXT-X-MEDIA``
group the video variants reference, or the variant of an audio-only source),
``audio_1_51``, ... for the AC-3 5.1 renditions of its multichannel tracks, and
``subs_0``, ``subs_1``, ... for its text subtitle tracks (``seg_<nnnnn>.vtt`` segments). Segments, init segments and the sprite under
``v<job_id>/`` never change once written (a new transcode gets a new version prefix), so
they may be cached forever (:data:`IMMUTABLE`); a media playlist only grows until it
ends, so while it grows it is cached for a second (:data:`LIVE_CACHE`). ``master.m3u8``,
``poster.jpg`` and ``thumbnails.vtt`` are replaced by a re-transcode.
"""

from __future__ import annotations

MASTER = "master.m3u8"
POSTER = "poster.jpg"
THUMBNAILS = "thumbnails.vtt"
SPRITE = "sprite.jpg"
MEDIA_PLAYLIST = "index.m3u8"
VOD_PLAYLIST = "vod.m3u8"
IFRAME_PLAYLIST = "iframes.m3u8"
# Every version prefix starts with this; nothing else under an asset does.
VERSION_MARK = "v"

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
DEFAULT_TYPE = "application/octet-stream"
# By lowercase suffix. ``.m4s`` is ``video/mp4``: what the origin has always served; the
# bucket objects carry the same types.
CONTENT_TYPES = {
    ".m3u8": PLAYLIST_TYPE,
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
# What the transcoder publishes out of its work directory (anything else there is scratch).
PUBLISHED_SUFFIXES = frozenset({".m3u8", ".m4s", ".mp4", ".ts", ".jpg", ".vtt"})
# Media data: never rewritten under a name.
SEGMENT_SUFFIXES = frozenset({".m4s", ".ts", ".mp4", ".m4a", ".aac"})
# Playlists and the thumbnail track: text whose URIs point at other ladder files.
TEXT_SUFFIXES = frozenset({".m3u8", ".vtt"})

# Cache lifetime of a name that never changes once published.
IMMUTABLE = "public, max-age=31536000, immutable"
# Cache lifetime of a media playlist that is still growing (a transcode in progress).
LIVE_CACHE = "public, max-age=1"
ENDLIST = "#EXT-X-ENDLIST"


def suffix(name: str) -> str:
    """The lowercase suffix of a file name or key (``""`` without one), as
    ``PurePosixPath(name).suffix`` reads it, without building a path (several times a
    request)."""
    base = name.rstrip("/").rpartition("/")[2]
    dot = base.rfind(".")
    if dot <= 0 or dot == len(base) - 1:
        return ""
    return base[dot:].lower()


def content_type(name: str) -> str:
    return CONTENT_TYPES.get(suffix(name), DEFAULT_TYPE)


def is_published(name: str) -> bool:
    return suffix(name) in PUBLISHED_SUFFIXES


def is_text(name: str) -> bool:
    return suffix(name) in TEXT_SUFFIXES


def is_segment(name: str) -> bool:
    return suffix(name) in SEGMENT_SUFFIXES


def is_growing(playlist_text: str) -> bool:
    """A playlist that may still get segments: no ``#EXT-X-ENDLIST`` (RFC 8216 4.3.3.4)."""
    return not any(line.strip() == ENDLIST for line in playlist_text.splitlines())


def version_name(job_id: int) -> str:
    """The version prefix of the ladder a job publishes: ``v<job_id>``."""
    return f"{VERSION_MARK}{job_id}"


def rendition_playlist(version: str, rendition: str, playlist: str = MEDIA_PLAYLIST) -> str:
    """A rendition's media playlist relative to the asset (the master's URIs): the EVENT
    one by default, or :data:`VOD_PLAYLIST` / :data:`IFRAME_PLAYLIST`."""
    return f"{version}/{rendition}/{playlist}"


def asset_key(asset_id: str, name: str) -> str:
    """The bucket key of ``name`` (relative to the asset, e.g. :data:`MASTER`)."""
    return f"{asset_id}/{name}"


def versions_prefix(asset_id: str) -> str:
    """The key prefix every version of an asset's ladder shares."""
    return asset_key(asset_id, VERSION_MARK)


def version_of_key(key: str) -> str:
    """The version a key under :func:`versions_prefix` belongs to (``v<job_id>``)."""
    return key.split("/", 2)[1]
