"""Pure parsers: -progress blocks, codec strings, probe JSON, master playlist, WebVTT."""

from __future__ import annotations

import pytest

from transcoder.codecs import avc1_from_bytes
from transcoder.errors import MediaError, one_line
from transcoder.master import Measured, master_playlist
from transcoder.probe import parse_probe
from transcoder.progress import parse_progress
from transcoder.thumbnails import sprite_layout, webvtt

PROGRESS = """frame=90
fps=45.5
out_time_us=3000000
out_time_ms=3000000
speed=1.52x
progress=continue
frame=120
fps=N/A
out_time_us=N/A
speed=N/A
progress=end
"""


def test_progress_blocks() -> None:
    first, last = list(parse_progress(PROGRESS.splitlines()))
    assert (first.seconds, first.fps, first.speed, first.done) == (3.0, 45.5, 1.52, False)
    assert first.percent(6.0) == 50.0
    assert (last.fps, last.speed, last.done) == (None, None, True)


def test_avc1_from_avcc_box() -> None:
    box = b"\x00\x00\x00\x20avcC\x01\x64\x00\x1f\xff"
    assert avc1_from_bytes(b"junk" + box) == "avc1.64001f"


def test_avc1_from_annexb_sps() -> None:
    sps = b"\x00\x00\x00\x01\x67\x64\x00\x28\xac"
    assert avc1_from_bytes(b"\x47\x40" + sps) == "avc1.640028"


def test_probe_rotation_swaps_dimensions_and_detects_vfr_and_hdr() -> None:
    info = parse_probe(
        {
            "format": {"duration": "2.5"},
            "streams": [
                {
                    "codec_type": "video",
                    "codec_name": "hevc",
                    "width": 1920,
                    "height": 1080,
                    "avg_frame_rate": "24000/1001",
                    "r_frame_rate": "30/1",
                    "color_transfer": "smpte2084",
                    "pix_fmt": "yuv420p10le",
                    "side_data_list": [{"rotation": -90}],
                },
            ],
        }
    )
    assert (info.width, info.height, info.rotation) == (1080, 1920, 90)
    assert info.vfr and info.hdr == "pq" and not info.has_audio
    assert info.fps == pytest.approx(23.976, abs=0.001)


def test_probe_without_streams_is_a_media_error() -> None:
    with pytest.raises(MediaError, match="no video or audio track"):
        parse_probe({"format": {"duration": "1"}, "streams": []})


def test_cover_art_is_not_video() -> None:
    info = parse_probe(
        {
            "format": {"duration": "3"},
            "streams": [
                {"codec_type": "audio", "codec_name": "mp3"},
                {
                    "codec_type": "video",
                    "width": 500,
                    "height": 500,
                    "disposition": {"attached_pic": 1},
                },
            ],
        }
    )
    assert info.has_audio and not info.has_video


def test_one_line_takes_the_last_line() -> None:
    assert one_line("a\nb\n\nmoov atom not found\n") == "moov atom not found"


def test_one_line_never_carries_a_presigned_query() -> None:
    line = "http://s:1/media/a.mp4?X-Amz-Credential=AK%2F1&X-Amz-Signature=abc: moov atom not found"
    assert one_line(line) == "http://s:1/media/a.mp4 moov atom not found"


def test_one_line_keeps_the_reason_before_a_generic_closing_line() -> None:
    text = "[mov] moov atom not found\nin.mp4: Invalid data found when processing input\n"
    assert (
        one_line(text)
        == "[mov] moov atom not found; in.mp4: Invalid data found when processing input"
    )


def test_master_playlist_attributes() -> None:
    video = Measured("720p", 3_100_000, 2_900_000, "avc1.64001f", 1280, 720, 30.0)
    audio = Measured("audio", 140_000, 130_000, "mp4a.40.2")
    text = master_playlist([video], [audio], "v7")
    assert (
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",LANGUAGE="und",NAME="audio",DEFAULT=YES,'
        'AUTOSELECT=YES,CHANNELS="2",URI="v7/audio/index.m3u8"'
    ) in text
    assert (
        "#EXT-X-STREAM-INF:BANDWIDTH=3240000,AVERAGE-BANDWIDTH=3030000,RESOLUTION=1280x720,"
        'CODECS="avc1.64001f,mp4a.40.2",FRAME-RATE=30.000,AUDIO="aud",CLOSED-CAPTIONS=NONE\n'
        "v7/720p/index.m3u8"
    ) in text


def test_audio_only_master() -> None:
    audio = Measured("audio", 140_000, 130_000, "mp4a.40.2")
    assert master_playlist([], [audio], "v1").splitlines()[-2:] == [
        '#EXT-X-STREAM-INF:BANDWIDTH=140000,AVERAGE-BANDWIDTH=130000,CODECS="mp4a.40.2"',
        "v1/audio/index.m3u8",
    ]


def test_webvtt_cues_point_into_the_sprite() -> None:
    layout = sprite_layout(50.5, 1280, 720, step=4)
    assert (layout.interval, layout.count, layout.columns, layout.rows) == (4, 13, 10, 2)
    assert layout.height == 90
    text = webvtt(layout, 50.5, "v1/sprite.jpg")
    assert text.startswith("WEBVTT\n")
    assert "00:00:48.000 --> 00:00:50.500\nv1/sprite.jpg#xywh=320,90,160,90" in text


def test_long_videos_space_thumbnails_by_whole_segments() -> None:
    assert sprite_layout(3600, 1920, 1080, step=4).interval == 36  # at most 100 thumbnails


def test_event_playlist_round_trip_and_end() -> None:
    from transcoder.playlist import EventPlaylist, Segment, parse_media_playlist

    ours = EventPlaylist(4, init="init_1.mp4")
    ours.segments += [Segment("seg_00000.m4s", 4.0), Segment("seg_00001.m4s", 3.989333)]
    growing = ours.render()
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in growing and "#EXT-X-ENDLIST" not in growing
    read = parse_media_playlist(growing)
    assert (read.init, read.ended, read.segments) == ("init_1.mp4", False, ours.segments)
    ended = ours.render(ended=True)
    assert ended.startswith(growing.rstrip("\n")) and ended.endswith("#EXT-X-ENDLIST\n")
    assert parse_media_playlist(ended).ended


@pytest.mark.parametrize(
    ("segment_seconds", "has_audio", "step"),
    [(4, True, 2), (6, True, 4), (8, True, 1), (4, False, 1)],
)
def test_resume_only_where_the_aac_frames_line_up(
    segment_seconds: int, has_audio: bool, step: int
) -> None:
    from transcoder.live import resume_step

    assert resume_step(segment_seconds, has_audio) == step
