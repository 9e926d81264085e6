"""What a person reads when a video fails: plain words about the file.

ffmpeg's own line names internal things (the storage address it read from, its demuxer
context ``[mov,mp4 @ 0x559b…]``) and speaks codec. The catalog, the CLI and the watch page
get a sentence about the file instead; the worker's log keeps ffmpeg's line for whoever
debugs it. Messages Nebula wrote itself are already plain and pass through, cleaned.
"""

from __future__ import annotations

import re

# ffmpeg prefixes its messages with the component and its address in memory.
FFMPEG_CONTEXT = re.compile(r"\[[^\]\[]*@ 0x[0-9a-fA-F]+\]\s*")
MEMORY_ADDRESS = re.compile(r"\s*(?:@|\bat) 0x[0-9a-fA-F]+\b")
# Any URL: its host is the storage's internal address; the path names the object.
URL = re.compile(r"\bhttps?://[^/\s\"']+(/[^\s?\"']*)?(\?[^\s\"']*)?", re.I)
TOOL_PREFIX = re.compile(r"^(ffmpeg|ffprobe|thumbnails): ")

READ_FAILED = "the source could not be read from storage"
FALLBACK = "ffmpeg could not transcode this file (its message is in the worker's log)"

# First match wins: the most specific diagnosis before the generic ones.
PLAIN: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.I), words)
    for pattern, words in (
        (
            r"moov atom not found",
            "the file is incomplete: its MP4 index (the moov atom) is missing, as when an "
            "upload or a recording was cut short",
        ),
        (
            r"server returned|connection refused|connection reset|timed out|"
            r"network is unreachable|failed to resolve",
            READ_FAILED,
        ),
        (
            r"decoder .*not found|unknown decoder|no decoder|codec not currently supported|"
            r"unsupported codec",
            "the file uses a codec the ffmpeg on this machine cannot decode",
        ),
        (r"does not contain any stream", "the file has no video or audio track"),
        (
            r"invalid data found when processing input|could not find codec parameters|"
            r"detected only with low score|unknown format",
            "the file is not a video or audio file Nebula can read: damaged, or not media",
        ),
        (
            r"error while decoding|corrupt|invalid nal|partial file|truncat|"
            r"stream ends prematurely|packet too small|error splitting the input",
            "the file is damaged: ffmpeg met corrupt data while decoding it",
        ),
        (r"no space left on device", "the worker's disk is full; the job can be retried"),
    )
)


def scrub(text: str) -> str:
    """``text`` without memory addresses, ffmpeg contexts, hosts or URL queries."""
    text = FFMPEG_CONTEXT.sub("", text)
    text = MEMORY_ADDRESS.sub("", text)
    return URL.sub(lambda match: (match.group(1) or "").lstrip("/") or "the storage", text)


def plain_words(detail: str) -> str:
    """The reason a person reads for ``detail``, a one-line failure message."""
    if not TOOL_PREFIX.match(detail):  # our own words
        return scrub(detail)
    for pattern, words in PLAIN:
        if pattern.search(detail):
            return words
    return FALLBACK
