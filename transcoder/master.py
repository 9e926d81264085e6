"""The master playlist, written by us from what ffmpeg produced (RFC 8216 section 4.3.4).

ffmpeg 5.1's own master lacks AVERAGE-BANDWIDTH and FRAME-RATE and guesses BANDWIDTH from
the nominal rate; ours measures every segment: BANDWIDTH is the peak segment bitrate of
the variant plus that of its audio rendition, AVERAGE-BANDWIDTH the mean, and CODECS are
the exact avc1/mp4a strings read from the output. The measured master points at the
VOD media playlists (:data:`nebulacore.hls.VOD_PLAYLIST`) and lists each video rung's
I-frame playlist (:mod:`transcoder.trickplay`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nebulacore.hls import MEDIA_PLAYLIST, rendition_playlist
from transcoder.codecs import avc1_codec, mp4a_codec
from transcoder.ladder import Rung
from transcoder.playlist import read_media_playlist

AUDIO_GROUP = "aud"


@dataclass(frozen=True)
class Measured:
    """One rendition as produced: its measured rates and codec string."""

    name: str
    peak_bps: int
    average_bps: int
    codecs: str
    width: int | None = None
    height: int | None = None
    frame_rate: float | None = None
    # Which of the rendition's playlists the master names (the growing EVENT one until
    # the end, then VOD; IFRAME_PLAYLIST for an I-frame stream).
    playlist: str = MEDIA_PLAYLIST


def measure(rendition_dir: Path) -> tuple[int, int]:
    """(peak, average) bits per second over the segments."""
    playlist = read_media_playlist(rendition_dir / MEDIA_PLAYLIST)
    peak, total_bits = 0, 0
    for segment in playlist.segments:
        bits = (rendition_dir / segment.uri).stat().st_size * 8
        total_bits += bits
        if segment.duration > 0:
            peak = max(peak, int(bits / segment.duration))
    average = int(total_bits / playlist.duration) if playlist.duration > 0 else 0
    return peak, average


def measure_audio(out_dir: Path) -> Measured:
    peak, average = measure(out_dir / "audio")
    return Measured("audio", peak, average, mp4a_codec(out_dir / "audio"))


def measure_video(out_dir: Path, rung: Rung, frame_rate: float) -> Measured:
    peak, average = measure(out_dir / rung.name)
    codec = avc1_codec(out_dir / rung.name)
    return Measured(rung.name, peak, average, codec, rung.width, rung.height, frame_rate)


def provisional_master(
    out_dir: Path, rungs: list[Rung], audio_kbps: int | None, frame_rate: float, prefix: str
) -> str:
    """The master while the ladder is being made: BANDWIDTH is each rung's cap (its target
    plus the encoder's 10 % headroom, ``maxrate``), CODECS read from the first segments'
    init; :func:`master_playlist` replaces it with measured figures at the end."""
    videos = []
    for rung in rungs:
        cap = int(rung.video_kbps * 1100)
        codec = avc1_codec(out_dir / rung.name)
        videos.append(
            Measured(
                rung.name, cap, rung.video_kbps * 1000, codec, rung.width, rung.height, frame_rate
            )
        )
    audio = None
    if audio_kbps is not None:
        bps = audio_kbps * 1000
        audio = Measured("audio", bps, bps, mp4a_codec(out_dir / "audio"))
    return master_playlist(videos, audio, prefix)


def master_playlist(
    videos: list[Measured],
    audio: Measured | None,
    prefix: str,
    iframes: Sequence[Measured] = (),
) -> str:
    """The master text; URIs are ``<prefix>/<rendition>/<playlist>`` (relative,
    :func:`nebulacore.hls.rendition_playlist`); ``iframes``: the I-frame streams."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if audio is not None and not videos:
        lines += [
            _stream_inf(audio.peak_bps, audio.average_bps, f'CODECS="{audio.codecs}"'),
            _uri(prefix, audio),
        ]
        return "\n".join(lines) + "\n"
    if audio is not None:
        lines.append(
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{AUDIO_GROUP}",NAME="audio",DEFAULT=YES,'
            f'AUTOSELECT=YES,CHANNELS="2",URI="{_uri(prefix, audio)}"'
        )
    for video in videos:
        peak, average, codecs = video.peak_bps, video.average_bps, video.codecs
        if audio is not None:
            peak, average = peak + audio.peak_bps, average + audio.average_bps
            codecs = f"{codecs},{audio.codecs}"
        attributes = [
            f"RESOLUTION={video.width}x{video.height}",
            f'CODECS="{codecs}"',
            f"FRAME-RATE={video.frame_rate or 0:.3f}",
        ]
        if audio is not None:
            attributes.append(f'AUDIO="{AUDIO_GROUP}"')
        lines += [_stream_inf(peak, average, *attributes), _uri(prefix, video)]
    lines += [_iframe_stream_inf(prefix, stream) for stream in iframes]
    return "\n".join(lines) + "\n"


def _iframe_stream_inf(prefix: str, stream: Measured) -> str:
    """RFC 8216 4.3.4.3: the attributes of EXT-X-STREAM-INF (video CODECS only) and URI."""
    return (
        f"#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH={stream.peak_bps},"
        f"AVERAGE-BANDWIDTH={stream.average_bps},RESOLUTION={stream.width}x{stream.height},"
        f'CODECS="{stream.codecs}",URI="{_uri(prefix, stream)}"'
    )


def _stream_inf(peak: int, average: int, *attributes: str) -> str:
    return ",".join(
        [f"#EXT-X-STREAM-INF:BANDWIDTH={peak}", f"AVERAGE-BANDWIDTH={average}", *attributes]
    )


def _uri(prefix: str, rendition: Measured) -> str:
    return rendition_playlist(prefix, rendition.name, rendition.playlist)
