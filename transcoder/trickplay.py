"""I-frame playlists (``EXT-X-I-FRAMES-ONLY``, RFC 8216 4.3.3.6): trick play and scrubbing.

Every segment of a video rung starts with an IDR (:mod:`transcoder.command` aligns the
keyframes on segment boundaries), and the HLS muxer writes each fMP4 segment as one
fragment: ``styp``, ``sidx``, ``moof``, ``mdat``. The I-frame of a segment is therefore the
byte range from its ``moof`` to the end of its first sample: with the init segment
(``EXT-X-MAP``) in front, that range decodes as one key frame. Where that sample sits and
whether it is a sync sample are read from the fragment's own boxes (``tfhd``, ``trun``;
ISO/IEC 14496-12 8.8), so a long film costs one read of each ``moof``, no extra process.

TS segments get no I-frame playlist (their ranges would be TS packets, not written here).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from nebulacore.hls import ENDLIST, IFRAME_PLAYLIST, MEDIA_PLAYLIST
from transcoder.errors import MediaError
from transcoder.playlist import MAP_TAG, Segment, header, read_media_playlist

BOX_HEADER = struct.Struct(">I4s")
FULL_BOX = struct.Struct(">I")  # version (8 bits) and flags (24 bits)
U32 = struct.Struct(">I")
IFRAMES_ONLY = "#EXT-X-I-FRAMES-ONLY"
# tfhd flags (8.8.7.1): which optional fields follow the track id.
TFHD_BASE_OFFSET, TFHD_DESCRIPTION, TFHD_DURATION = 0x1, 0x2, 0x8
TFHD_SIZE, TFHD_FLAGS = 0x10, 0x20
# trun flags (8.8.8.1).
TRUN_DATA_OFFSET, TRUN_FIRST_FLAGS = 0x1, 0x4
TRUN_DURATION, TRUN_SIZE, TRUN_SAMPLE_FLAGS = 0x100, 0x200, 0x400
NON_SYNC_SAMPLE = 0x10000  # sample_is_non_sync_sample, in the sample flags
MOOF_READ = 64 * 1024  # a moof of one segment's fragment is a few kB


@dataclass(frozen=True)
class IFrame:
    """One segment's leading key frame: ``length`` bytes at ``offset`` of ``segment``."""

    segment: Segment
    offset: int
    length: int


def boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """(type, offset of the box, offset of its payload) of the boxes in ``data[start:end]``."""
    end = len(data) if end is None else end
    at = start
    while at + BOX_HEADER.size <= end:
        size, kind = BOX_HEADER.unpack_from(data, at)
        if size < BOX_HEADER.size:  # 0 (to the end of the file) or a 64-bit size: not ours
            return
        yield kind, at, at + BOX_HEADER.size
        at += size


def child(data: bytes, parent: int, kind: bytes) -> int:
    """The payload offset of the first ``kind`` box inside the box at ``parent``."""
    size = U32.unpack_from(data, parent)[0]
    for found, _, payload in boxes(data, parent + BOX_HEADER.size, parent + size):
        if found == kind:
            return payload
    raise MediaError(f"an fMP4 fragment without a {kind.decode()} box")


def fragment_start(data: bytes) -> int:
    """The offset of the first ``moof`` box of an fMP4 segment."""
    for kind, at, _ in boxes(data):
        if kind == b"moof":
            return at
    raise MediaError("an fMP4 segment without a moof box")


def first_sample(data: bytes, moof: int) -> tuple[int, int, bool]:
    """(offset, size, is a sync sample) of the first sample of the fragment at ``moof``."""
    traf = child(data, moof, b"traf") - BOX_HEADER.size
    tfhd = child(data, traf, b"tfhd")
    flags = FULL_BOX.unpack_from(data, tfhd)[0] & 0xFFFFFF
    at = tfhd + 8  # version+flags, track_ID
    base = moof  # default-base-is-moof, and the first traf without a base offset
    if flags & TFHD_BASE_OFFSET:
        base = struct.unpack_from(">Q", data, at)[0]
        at += 8
    at += 4 * bool(flags & TFHD_DESCRIPTION) + 4 * bool(flags & TFHD_DURATION)
    size = sample_flags = None
    if flags & TFHD_SIZE:
        size = U32.unpack_from(data, at)[0]
        at += 4
    if flags & TFHD_FLAGS:
        sample_flags = U32.unpack_from(data, at)[0]
    trun = child(data, traf, b"trun")
    flags = FULL_BOX.unpack_from(data, trun)[0] & 0xFFFFFF
    at = trun + 8  # version+flags, sample_count
    data_offset = 0
    if flags & TRUN_DATA_OFFSET:
        data_offset = struct.unpack_from(">i", data, at)[0]
        at += 4
    if flags & TRUN_FIRST_FLAGS:
        sample_flags = U32.unpack_from(data, at)[0]
        at += 4
    at += 4 * bool(flags & TRUN_DURATION)
    if flags & TRUN_SIZE:
        size = U32.unpack_from(data, at)[0]
        at += 4
    if flags & TRUN_SAMPLE_FLAGS and not flags & TRUN_FIRST_FLAGS:
        sample_flags = U32.unpack_from(data, at)[0]
    if size is None:
        raise MediaError("an fMP4 fragment without sample sizes")
    sync = sample_flags is None or not sample_flags & NON_SYNC_SAMPLE
    return base + data_offset, size, sync


def leading_iframe(segment_path: Path, segment: Segment) -> IFrame:
    """The byte range of ``segment``'s first video sample, which must be a key frame."""
    with segment_path.open("rb") as file:
        data = file.read(MOOF_READ)
    moof = fragment_start(data)
    offset, size, sync = first_sample(data, moof)
    if not sync:
        raise MediaError(f"{segment.uri} does not start with a key frame")
    return IFrame(segment, moof, offset + size - moof)


def iframes_of(rendition_dir: Path) -> tuple[str, list[IFrame]]:
    """(init segment name, the key frame of every segment) of an fMP4 rendition."""
    playlist = read_media_playlist(rendition_dir / MEDIA_PLAYLIST)
    if playlist.init is None:
        raise MediaError("I-frame playlists need fMP4 segments")
    frames = [leading_iframe(rendition_dir / s.uri, s) for s in playlist.segments]
    return playlist.init, frames


def render_iframe_playlist(
    init: str, frames: list[IFrame], target_duration: int, version: int = 7
) -> str:
    """Each I-frame lasts until the next one: its segment's duration."""
    segments = [frame.segment for frame in frames]
    lines = header(target_duration, segments, version, "VOD")
    lines += [IFRAMES_ONLY, f'{MAP_TAG}URI="{init}"']
    for frame in frames:
        lines += [
            f"#EXTINF:{frame.segment.duration:.6f},",
            f"#EXT-X-BYTERANGE:{frame.length}@{frame.offset}",
            frame.segment.uri,
        ]
    lines.append(ENDLIST)
    return "\n".join(lines) + "\n"


def write_iframe_playlist(rendition_dir: Path, target_duration: int) -> tuple[int, int]:
    """Write the rendition's I-frame playlist; its (peak, average) bits per second, the
    BANDWIDTH and AVERAGE-BANDWIDTH of its ``EXT-X-I-FRAME-STREAM-INF``."""
    init, frames = iframes_of(rendition_dir)
    text = render_iframe_playlist(init, frames, target_duration)
    (rendition_dir / IFRAME_PLAYLIST).write_text(text)
    rates = [f.length * 8 / f.segment.duration for f in frames if f.segment.duration > 0]
    seconds = sum(f.segment.duration for f in frames)
    average = sum(f.length * 8 for f in frames) / seconds if seconds > 0 else 0
    return int(max(rates, default=0)), int(average)
