"""Alternate tracks without ffmpeg: languages, names, dispositions, what is not carried,
the master's EXT-X-MEDIA lines and the command that makes them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.transcoder.test_command import INFO
from transcoder.command import Plan, build_argv
from transcoder.ladder import Rung
from transcoder.master import Measured, master_playlist
from transcoder.probe import Track, parse_probe
from transcoder.subtitles import Cue, parse_webvtt, segment_text
from transcoder.tracks import (
    AUXILIARY,
    DESCRIBES_VIDEO,
    SDH,
    audio_alternates,
    bcp47,
    subtitle_alternates,
    surround_alternate,
)


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("eng", "en"),
        ("fre", "fr"),
        ("fra", "fr"),
        ("ger", "de"),
        ("en", "en"),
        ("pt-BR", "pt-BR"),
        ("por-BR", "pt-BR"),
        ("haw", "haw"),  # no ISO 639-1 code: the three-letter one is the BCP 47 tag
        ("und", "und"),
        ("", "und"),
        (None, "und"),
        ("English", "und"),
    ],
)
def test_language_tags_become_bcp47(tag: str | None, expected: str) -> None:
    assert bcp47(tag) == expected


def test_audio_names_defaults_and_characteristics() -> None:
    tracks = [
        Track(1, language="fre"),
        Track(2, language="eng", default=True),
        Track(3, language="eng", default=True),  # a second default: only the first counts
        Track(4, language="eng", title="Director's commentary", comment=True),
        Track(5, language="eng", visual_impaired=True),
        Track(6),
    ]
    made = audio_alternates(tracks)
    assert [(a.language, a.name, a.default, a.autoselect) for a in made] == [
        ("fr", "Français", False, True),
        ("en", "English", True, True),
        ("en", "English 2", False, True),
        ("en", "Director's commentary", False, False),
        ("en", "English (audio description)", False, True),
        ("und", "Audio", False, True),
    ]
    assert [a.characteristics for a in made] == [None, None, None, AUXILIARY, DESCRIBES_VIDEO, None]


def test_without_a_default_disposition_the_first_track_is_default() -> None:
    made = audio_alternates([Track(1, language="spa"), Track(2, language="eng")])
    assert [a.default for a in made] == [True, False]


def test_subtitle_names_forced_and_sdh() -> None:
    made = subtitle_alternates(
        [
            Track(3, language="eng"),
            Track(4, language="eng", hearing_impaired=True),
            Track(5, language="fre", forced=True, default=True),
            Track(6, language="fre", forced=True, default=True),
        ]
    )
    assert [(s.name, s.forced, s.default, s.characteristics) for s in made] == [
        ("English", False, False, None),
        ("English (SDH)", False, False, SDH),
        ("Français (forced)", True, True, None),
        ("Français (forced) 2", True, False, None),
    ]


def probe_json(*streams: dict[str, Any], chapters: int = 0) -> dict[str, Any]:
    indexed = [{"index": i, **s} for i, s in enumerate(streams)]
    return {
        "format": {"duration": "10.0", "start_time": "-0.021"},
        "streams": indexed,
        "chapters": [{"id": i} for i in range(chapters)],
    }


VIDEO = {"codec_type": "video", "codec_name": "h264", "width": 640, "height": 360}


def test_probe_lists_tracks_and_everything_not_carried() -> None:
    info = parse_probe(
        probe_json(
            {**VIDEO, "start_time": "0.000"},
            {
                "codec_type": "audio",
                "codec_name": "aac",
                "channels": 2,
                "tags": {"language": "eng"},
            },
            {
                "codec_type": "audio",
                "codec_name": "ac3",
                "channels": 6,
                "tags": {"LANGUAGE": "fre", "title": "VF"},
                "disposition": {"default": 1},
            },
            {"codec_type": "subtitle", "codec_name": "subrip", "disposition": {"forced": 1}},
            {"codec_type": "subtitle", "codec_name": "ass"},
            {"codec_type": "subtitle", "codec_name": "hdmv_pgs_subtitle"},
            {"codec_type": "subtitle", "codec_name": "dvd_subtitle"},
            {"codec_type": "subtitle", "codec_name": "dvb_subtitle"},
            {"codec_type": "data", "codec_name": "bin_data"},
            {"codec_type": "attachment", "codec_name": "ttf"},
            {**VIDEO, "codec_name": "mjpeg", "disposition": {"attached_pic": 1}},
            {"codec_type": "audio"},  # no codec_name: ffmpeg has no decoder for it
            chapters=3,
        )
    )
    assert info.video_start == pytest.approx(0.021)
    assert [(t.index, t.codec, t.language, t.channels) for t in info.audio_tracks] == [
        (1, "aac", "eng", 2),
        (2, "ac3", "fre", 6),
    ]
    assert info.audio_tracks[1].title == "VF" and info.audio_tracks[1].default
    assert [(t.index, t.codec, t.forced) for t in info.subtitle_tracks] == [
        (3, "subrip", True),
        (4, "ass", False),
    ]
    dropped = {(d.kind, d.index): d.reason for d in info.not_carried}
    assert set(dropped) == {
        ("subtitle", 5),
        ("subtitle", 6),
        ("subtitle", 7),
        ("data", 8),
        ("attachment", 9),
        ("video", 10),
        ("audio", 11),
        ("chapters", None),
    }
    assert "PGS" in dropped["subtitle", 5] and "VobSub" in dropped["subtitle", 6]
    assert "DVB" in dropped["subtitle", 7] and "not converted" in dropped["subtitle", 7]
    # Stored in the asset's row as JSON.
    assert info.as_dict()["not_carried"][0]["reason"] == dropped["subtitle", 5]


def test_subtitles_of_a_source_without_video_are_not_carried() -> None:
    info = parse_probe(
        probe_json(
            {"codec_type": "audio", "codec_name": "mp3"},
            {"codec_type": "subtitle", "codec_name": "subrip"},
        )
    )
    assert not info.subtitle_tracks
    assert [(d.kind, d.index) for d in info.not_carried] == [("subtitle", 1)]


def alternate(name: str, peak: int, **attributes: Any) -> Measured:
    alternates = audio_alternates([Track(0, **attributes)])
    return Measured(name, peak, peak - 1000, "mp4a.40.2", alternate=alternates[0])


def test_master_bandwidth_counts_the_largest_alternates() -> None:
    video = Measured("720p", 3_000_000, 2_800_000, "avc1.64001f", 1280, 720, 25.0)
    audios = [alternate("audio", 130_000, language="eng"), alternate("audio_1", 150_000)]
    subs = [
        Measured("subs_0", 900, 400, "wvtt", alternate=subtitle_alternates([Track(3)])[0]),
    ]
    text = master_playlist([video], audios, "v3", subs)
    assert (
        "#EXT-X-STREAM-INF:BANDWIDTH=3150900,AVERAGE-BANDWIDTH=2949400,RESOLUTION=1280x720,"
        'CODECS="avc1.64001f,mp4a.40.2",FRAME-RATE=25.000,AUDIO="aud",SUBTITLES="subs",'
        "CLOSED-CAPTIONS=NONE\nv3/720p/index.m3u8"
    ) in text
    assert (
        '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",LANGUAGE="und",NAME="Subtitles",'
        'DEFAULT=NO,AUTOSELECT=YES,URI="v3/subs_0/index.m3u8"'
    ) in text


def test_audio_only_master_with_several_tracks() -> None:
    audios = [alternate("audio", 130_000, language="eng"), alternate("audio_1", 150_000)]
    lines = master_playlist([], audios, "v1").splitlines()
    assert lines[-2:] == [
        '#EXT-X-STREAM-INF:BANDWIDTH=150000,AVERAGE-BANDWIDTH=149000,CODECS="mp4a.40.2",'
        'AUDIO="aud"',
        "v1/audio/index.m3u8",
    ]
    media = [line for line in lines if line.startswith("#EXT-X-MEDIA")]
    assert "URI" not in media[0] and 'URI="v1/audio_1/index.m3u8"' in media[1]


FILM = replace(
    INFO,
    audio_tracks=(Track(1, language="eng"), Track(2, language="fre", channels=6)),
    subtitle_tracks=(Track(3, codec="subrip"), Track(5, codec="mov_text")),
)


def film_plan(**changes: Any) -> Plan:
    return Plan("/in/film.mkv", FILM, [Rung(640, 360, 800)], Path("/w/out"), **changes)


def value_after(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_one_ffmpeg_makes_every_audio_rendition_and_extracts_subtitles() -> None:
    argv = build_argv(film_plan())
    graph = value_after(argv, "-filter_complex")
    assert "[0:1]apad=whole_dur=10.000" in graph and "[0:2]apad=whole_dur=10.000" in graph
    # The French 5.1 track also makes an AC-3 5.1 rendition (second group) from one decode.
    assert value_after(argv, "-var_stream_map") == (
        "a:0,agroup:aud,name:audio a:1,agroup:aud,name:audio_1 "
        "a:2,agroup:aud51,name:audio_1_51 v:0,agroup:aud,name:360p"
    )
    assert "[0:2]apad=whole_dur=10.000[s1];[s1]asplit=2" in graph
    assert (value_after(argv, "-c:a"), value_after(argv, "-ac")) == ("aac", "2")
    assert (value_after(argv, "-c:a:2"), value_after(argv, "-ac:a:2")) == ("ac3", "6")
    assert argv.index("-ac") < argv.index("-ac:a:2")  # the last matching option wins
    assert argv.count("-i") == 1  # the source is read once
    tail = argv[argv.index("/w/out/%v/index.m3u8") + 1 :]
    assert tail == [
        *("-map", "0:3", "-f", "webvtt", "-c:s", "webvtt", "/w/out/subs_0.webvtt"),
        *("-map", "0:5", "-f", "webvtt", "-c:s", "webvtt", "/w/out/subs_1.webvtt"),
    ]


def test_a_resumed_encode_reads_subtitles_whole_and_pads_the_rest() -> None:
    argv = build_argv(film_plan(start_segment=1))
    assert argv.count("-i") == 2 and argv.count("-ss") == 1
    assert argv.index("-ss") < argv.index("-i")  # only the first input is seeked
    assert "apad=whole_dur=6.000" in value_after(argv, "-filter_complex")
    assert "1:3" in argv and "1:5" in argv


def test_webvtt_cues_and_segments() -> None:
    text = (
        "WEBVTT\n\n1\n00:01.500 --> 00:02.500 line:0\nHello\n\nNOTE x\n\n"
        "01:00:00.000 --> 01:00:01.000\n<i>Hi</i>\nthere\n"
    )
    assert parse_webvtt(text) == [
        Cue(1.5, 2.5, " line:0", "Hello"),
        Cue(3600.0, 3601.0, "", "<i>Hi</i>\nthere"),
    ]
    segment = segment_text([Cue(3.5, 4.5, "", "Across")], 4.0, 8.0, 12000)
    assert segment == (
        "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:12000,LOCAL:00:00:00.000\n\n"
        "00:00:03.500 --> 00:00:04.500\nAcross\n\n"
    )
    assert "Across" not in segment_text([Cue(3.5, 4.0, "", "Across")], 4.0, 8.0, 0)


def test_master_surround_group_holds_every_language() -> None:
    video = Measured("720p", 3_000_000, 2_800_000, "avc1.64001f", 1280, 720, 25.0)
    english, french = audio_alternates([Track(1, language="eng"), Track(2, language="fre")])
    audios = [
        Measured("audio", 130_000, 128_000, "mp4a.40.2", alternate=english),
        Measured("audio_1", 130_000, 128_000, "mp4a.40.2", alternate=french),
        Measured("audio_1_51", 390_000, 384_000, "ac-3", alternate=surround_alternate(french)),
    ]
    lines = master_playlist([video], audios, "v2").splitlines()
    assert [line for line in lines if 'GROUP-ID="aud51"' in line] == [
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud51",LANGUAGE="en",NAME="English",DEFAULT=YES,'
        'AUTOSELECT=YES,CHANNELS="2",URI="v2/audio/index.m3u8"',
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud51",LANGUAGE="fr",NAME="Français 5.1",'
        'DEFAULT=NO,AUTOSELECT=YES,CHANNELS="6",URI="v2/audio_1_51/index.m3u8"',
    ]
    variants = [line for line in lines if line.startswith("#EXT-X-STREAM-INF")]
    assert len(variants) == 2 and 'AUDIO="aud"' in variants[0]
    assert variants[1].startswith("#EXT-X-STREAM-INF:BANDWIDTH=3390000,AVERAGE-BANDWIDTH=3184000")
    assert 'CODECS="avc1.64001f,ac-3,mp4a.40.2"' in variants[1] and 'AUDIO="aud51"' in variants[1]
