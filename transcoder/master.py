"""The master playlist, written by us from what ffmpeg produced (RFC 8216 section 4.3.4).

ffmpeg 5.1's own master lacks AVERAGE-BANDWIDTH and FRAME-RATE and guesses BANDWIDTH from
the nominal rate; ours measures every segment: BANDWIDTH is the peak segment bitrate of
the variant plus that of its largest audio (and subtitles) rendition, AVERAGE-BANDWIDTH
the same with means (RFC 8216 4.3.4.2: the largest sum of any playable combination), and
CODECS are the exact avc1/mp4a strings read from the output.

Every audio track is one ``EXT-X-MEDIA:TYPE=AUDIO`` rendition of the group ``aud`` and
every text subtitle track one ``TYPE=SUBTITLES`` rendition of ``subs``, with the
attributes of :mod:`transcoder.tracks`; every variant names both groups and says
``CLOSED-CAPTIONS=NONE`` (the ladder carries no CEA-608/708 captions). The measured master points at the
VOD media playlists (:data:`nebulacore.hls.VOD_PLAYLIST`) and lists each video rung's
I-frame playlist (:mod:`transcoder.trickplay`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nebulacore.hls import MEDIA_PLAYLIST, rendition_playlist
from transcoder.codecs import avc1_codec, mp4a_codec
from transcoder.command import AUDIO_KBPS, SURROUND_KBPS, Plan, surround_name
from transcoder.ladder import Rung
from transcoder.playlist import read_media_playlist
from transcoder.tracks import Alternate, audio_alternates, surround_alternate

AUDIO_GROUP = "aud"
SURROUND_GROUP = "aud51"
SUBTITLES_GROUP = "subs"
WEBVTT_CODEC = "wvtt"  # recorded in the catalog; never in CODECS (players reject it)
SURROUND = "6"


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
    alternate: Alternate | None = None  # EXT-X-MEDIA attributes of an audio/subtitles one
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


def measure_audios(plan: Plan) -> list[Measured]:
    """Every audio rendition of ``plan`` as produced (stereo, then 5.1), with its
    EXT-X-MEDIA attributes."""
    return [
        _audio(plan, name, alternate, measure(plan.out_dir / name))
        for name, alternate in _audio_renditions(plan)
    ]


def _audio_renditions(plan: Plan) -> list[tuple[str, Alternate]]:
    alternates = audio_alternates(plan.info.audio)
    made = list(zip(plan.audio_names, alternates, strict=True))
    made += [(surround_name(i), surround_alternate(alternates[i])) for i, _ in plan.surround]
    return made


def _audio(plan: Plan, name: str, alternate: Alternate, rates: tuple[int, int]) -> Measured:
    codec = mp4a_codec(plan.out_dir / name)
    return Measured(name, rates[0], rates[1], codec, alternate=alternate)


def measure_video(out_dir: Path, rung: Rung, frame_rate: float) -> Measured:
    peak, average = measure(out_dir / rung.name)
    codec = avc1_codec(out_dir / rung.name)
    return Measured(rung.name, peak, average, codec, rung.width, rung.height, frame_rate)


def provisional_master(plan: Plan, prefix: str) -> str:
    """The master while the ladder is being made: BANDWIDTH is each rung's cap (its target
    plus the encoder's 10 % headroom, ``maxrate``), CODECS read from the first segments'
    init; :func:`master_playlist` replaces it with measured figures at the end (and adds
    the subtitle renditions, which are made once ffmpeg is done)."""
    videos = []
    for rung in plan.rungs:
        cap = int(rung.video_kbps * 1100)
        codec = avc1_codec(plan.out_dir / rung.name)
        videos.append(
            Measured(
                rung.name, cap, rung.video_kbps * 1000, codec, rung.width, rung.height, plan.fps
            )
        )
    audios = []
    for name, alternate in _audio_renditions(plan):
        kbps = SURROUND_KBPS if alternate.channels == SURROUND else AUDIO_KBPS
        audios.append(_audio(plan, name, alternate, (kbps * 1000, kbps * 1000)))
    return master_playlist(videos, audios, prefix)


def master_playlist(
    videos: list[Measured],
    audios: list[Measured],
    prefix: str,
    subtitles: list[Measured] | None = None,
    iframes: Sequence[Measured] = (),
) -> str:
    """The master text; URIs are ``<prefix>/<rendition>/<playlist>`` (relative,
    :func:`nebulacore.hls.rendition_playlist`); ``iframes``: the I-frame streams."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if audios and not videos:
        return "\n".join(lines + _audio_only(audios, prefix)) + "\n"
    subtitles = subtitles or []
    stereo, surround = _groups(audios)
    lines += [_media("AUDIO", AUDIO_GROUP, a, i, prefix) for i, a in enumerate(stereo)]
    lines += [_media("AUDIO", SURROUND_GROUP, a, i, prefix) for i, a in enumerate(surround)]
    lines += [_media("SUBTITLES", SUBTITLES_GROUP, s, i, prefix) for i, s in enumerate(subtitles)]
    for video in videos:
        for group, members in ((AUDIO_GROUP, stereo), (SURROUND_GROUP, surround)):
            if members or (group == AUDIO_GROUP and not surround):
                lines += _variant(video, group, members, subtitles, prefix)
    lines += [_iframe_stream_inf(prefix, stream) for stream in iframes]
    return "\n".join(lines) + "\n"


def _groups(audios: list[Measured]) -> tuple[list[Measured], list[Measured]]:
    """The stereo group, and the 5.1 group (empty without multichannel tracks): every
    track in the source's order, its 5.1 rendition where it has one, else its stereo one
    (each group holds every language, as Apple's authoring spec lays out)."""
    stereo = [a for a in audios if not _is_surround(a)]
    by_name = {a.name: a for a in audios if _is_surround(a)}
    if not by_name:
        return stereo, []
    return stereo, [by_name.get(f"{a.name}_51", a) for a in stereo]


def _is_surround(audio: Measured) -> bool:
    return audio.alternate is not None and audio.alternate.channels == SURROUND


def _variant(
    video: Measured, group: str, audios: list[Measured], subtitles: list[Measured], prefix: str
) -> list[str]:
    peak = video.peak_bps + _largest(audios, peak=True) + _largest(subtitles, peak=True)
    average = video.average_bps + _largest(audios, peak=False)
    average += _largest(subtitles, peak=False)
    codecs = ",".join([video.codecs, *sorted({a.codecs for a in audios})])
    attributes = [
        f"RESOLUTION={video.width}x{video.height}",
        f'CODECS="{codecs}"',
        f"FRAME-RATE={video.frame_rate or 0:.3f}",
    ]
    if audios:
        attributes.append(f'AUDIO="{group}"')
    if subtitles:
        attributes.append(f'SUBTITLES="{SUBTITLES_GROUP}"')
    attributes.append("CLOSED-CAPTIONS=NONE")
    return [_stream_inf(peak, average, *attributes), _uri(prefix, video)]


def _audio_only(audios: list[Measured], prefix: str) -> list[str]:
    """The default audio rendition is the variant; with more tracks, the others are its
    alternates (the default one listed without URI: it is the variant's own)."""
    main = next((a for a in audios if a.alternate and a.alternate.default), audios[0])
    peak, average = _largest(audios, peak=True), _largest(audios, peak=False)
    codecs = f'CODECS="{main.codecs}"'
    if len(audios) == 1:
        return [_stream_inf(peak, average, codecs), _uri(prefix, main)]
    media = [
        _media("AUDIO", AUDIO_GROUP, audio, position, prefix, with_uri=audio is not main)
        for position, audio in enumerate(audios)
    ]
    group = f'AUDIO="{AUDIO_GROUP}"'
    return [*media, _stream_inf(peak, average, codecs, group), _uri(prefix, main)]


def _media(
    kind: str, group: str, rendition: Measured, position: int, prefix: str, with_uri: bool = True
) -> str:
    alternate = rendition.alternate or Alternate("und", rendition.name, default=position == 0)
    attributes = [
        f"TYPE={kind}",
        f'GROUP-ID="{group}"',
        f'LANGUAGE="{alternate.language}"',
        f'NAME="{_quoted(alternate.name)}"',
        f"DEFAULT={_yes(alternate.default)}",
        f"AUTOSELECT={_yes(alternate.autoselect or alternate.default)}",
    ]
    if kind == "SUBTITLES" and alternate.forced:
        attributes.append("FORCED=YES")
    if alternate.characteristics:
        attributes.append(f'CHARACTERISTICS="{alternate.characteristics}"')
    if kind == "AUDIO":
        attributes.append(f'CHANNELS="{alternate.channels}"')
    if with_uri:
        attributes.append(f'URI="{_uri(prefix, rendition)}"')
    return "#EXT-X-MEDIA:" + ",".join(attributes)


def _largest(renditions: list[Measured], peak: bool) -> int:
    return max((r.peak_bps if peak else r.average_bps for r in renditions), default=0)


def _yes(flag: bool) -> str:
    return "YES" if flag else "NO"


def _quoted(text: str) -> str:
    # A quoted-string holds no double quote, CR or LF (RFC 8216 4.2).
    return " ".join(text.replace('"', "'").split())


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
