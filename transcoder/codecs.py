"""RFC 6381 codec strings read from what ffmpeg produced, for the master's CODECS.

``avc1.PPCCLL`` is the profile, constraint flags and level bytes of the stream's SPS,
found in the ``avcC`` box of an fMP4 init segment or in the SPS NAL unit of a TS segment.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from nebulacore.hls import MEDIA_PLAYLIST

AAC_OBJECT_TYPES = {"LC": 2, "HE-AAC": 5, "HE-AACv2": 29}
READ_LIMIT = 4 * 1024 * 1024
PROBE_AUDIO = [
    "ffprobe",
    "-v",
    "error",
    "-select_streams",
    "a:0",
    "-show_entries",
    "stream=codec_name,profile",
]
# RFC 6381 / ETSI TS 102 366 sample entry names of the Dolby codecs in fMP4.
DOLBY_CODECS = {"ac3": "ac-3", "eac3": "ec-3"}


def avc1_from_bytes(data: bytes) -> str | None:
    box = data.find(b"avcC")
    if box >= 0 and len(data) >= box + 8:
        # avcC: version(1) profile(1) compatibility(1) level(1)
        return "avc1." + data[box + 5 : box + 8].hex()
    for start in _nal_starts(data):
        if data[start] & 0x1F == 7 and len(data) >= start + 4:  # SPS
            return "avc1." + data[start + 1 : start + 4].hex()
    return None


def _nal_starts(data: bytes) -> list[int]:
    found, index = [], data.find(b"\x00\x00\x01")
    while 0 <= index < len(data) - 4:
        found.append(index + 3)
        index = data.find(b"\x00\x00\x01", index + 3)
    return found


def avc1_codec(rendition_dir: Path) -> str:
    """The avc1 string of the rendition in ``rendition_dir`` (init segment, else 1st segment)."""
    candidates = sorted(rendition_dir.glob("init*.mp4")) + sorted(rendition_dir.glob("seg_*"))
    for path in candidates[:2]:
        with path.open("rb") as handle:
            codec = avc1_from_bytes(handle.read(READ_LIMIT))
        if codec:
            return codec
    raise ValueError(f"no H.264 parameters found in {rendition_dir}")


def mp4a_codec(rendition_dir: Path) -> str:
    """``mp4a.40.<object type>`` from ffprobe's AAC profile of the rendition's first segment
    (``ac-3`` / ``ec-3`` for a Dolby rendition)."""
    playlist = rendition_dir / MEDIA_PLAYLIST
    result = subprocess.run(
        [*PROBE_AUDIO, "-of", "json", str(playlist)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    streams = json.loads(result.stdout or "{}").get("streams", [])
    codec = streams[0].get("codec_name") if streams else None
    if codec in DOLBY_CODECS:
        return DOLBY_CODECS[codec]
    profile = streams[0].get("profile", "LC") if streams else "LC"
    return f"mp4a.40.{AAC_OBJECT_TYPES.get(profile, 2)}"
