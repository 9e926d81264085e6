"""Films, not clips: every audio track and every text subtitle track of the source becomes
a rendition of the master, end to end (SeaweedFS -> job -> published ladder).

Each audio track of the generated sources carries its own tone, so the test can hear
which track a rendition holds; each subtitle cue has a known source time, and the test
places it on the video's timeline the way a player does (``X-TIMESTAMP-MAP`` against the
presentation time of the fMP4 segments).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from catalog import Asset, AssetStatus
from tests.rows import existing
from tests.transcoder.conftest import Env, ffprobe
from transcoder.live import first_packet_time
from transcoder.playlist import read_media_playlist
from transcoder.subtitles import MPEG_CLOCK, parse_webvtt, seconds
from transcoder.work import run_job

SECONDS = 6
ENGLISH_HZ, FRENCH_HZ, COMMENTARY_HZ = 440, 1000, 2000
TONES = (ENGLISH_HZ, FRENCH_HZ, COMMENTARY_HZ)  # in the source's track order
COMMENTARY_SECONDS = 3  # shorter than the film: its rendition is padded to the whole title
ENGLISH_SRT = """1
00:00:01,500 --> 00:00:02,500
Hello there

2
00:00:03,500 --> 00:00:04,500
Across the boundary
"""
FRENCH_FORCED_SRT = """1
00:00:02,000 --> 00:00:03,000
Bonjour
"""
FFMPEG = ["ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]


def sine(hz: int, seconds: int = SECONDS) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency={hz}:sample_rate=48000:duration={seconds}"]


def make_film(folder: Path) -> Path:
    """MKV: video, English AAC stereo (default), French AC-3 5.1, an English commentary
    (shorter), English SRT, French forced SRT, and a font attachment."""
    (folder / "en.srt").write_text(ENGLISH_SRT)
    (folder / "fr.srt").write_text(FRENCH_FORCED_SRT)
    (folder / "font.ttf").write_bytes(b"\0\1\0\0not really a font")
    video = ["-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=15:duration={SECONDS}"]
    inputs = [*video, *sine(ENGLISH_HZ), *sine(FRENCH_HZ), *sine(COMMENTARY_HZ, COMMENTARY_SECONDS)]
    inputs += ["-i", str(folder / "en.srt"), "-i", str(folder / "fr.srt")]
    maps = [arg for i in range(6) for arg in ("-map", str(i))]
    codecs = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    codecs += ["-c:a:0", "aac", "-ac:a:0", "2", "-c:a:1", "ac3", "-ac:a:1", "6"]
    codecs += ["-c:a:2", "aac", "-ac:a:2", "2", "-c:s", "srt"]
    tags = ["-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fre"]
    tags += ["-metadata:s:a:2", "language=eng", "-metadata:s:a:2", "title=Commentary"]
    tags += ["-metadata:s:s:0", "language=eng", "-metadata:s:s:1", "language=fre"]
    tags += ["-disposition:a:0", "default", "-disposition:a:1", "0"]
    tags += ["-disposition:a:2", "comment", "-disposition:s:0", "0", "-disposition:s:1", "forced"]
    attach = ["-attach", str(folder / "font.ttf"), "-metadata:s:t", "mimetype=font/ttf"]
    target = folder / "film.mkv"
    subprocess.run(
        [*FFMPEG, *inputs, *maps, *codecs, *tags, *attach, str(target)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


def make_mov_text(folder: Path) -> Path:
    """MP4: video, one Italian audio track, Italian mov_text subtitles (SDH)."""
    (folder / "it.srt").write_text(ENGLISH_SRT)
    video = ["-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=15:duration={SECONDS}"]
    inputs = [*video, *sine(ENGLISH_HZ), "-i", str(folder / "it.srt")]
    target = folder / "clip.mp4"
    subprocess.run(
        [
            *FFMPEG,
            *inputs,
            *("-map", "0", "-map", "1", "-map", "2"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
            *("-c:a", "aac", "-c:s", "mov_text"),
            *("-metadata:s:a:0", "language=ita", "-metadata:s:s:0", "language=ita"),
            *("-disposition:s:0", "hearing_impaired"),
            str(target),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


def media_lines(master: str, kind: str) -> list[dict[str, str]]:
    found = []
    for line in master.splitlines():
        if line.startswith(f"#EXT-X-MEDIA:TYPE={kind},"):
            pairs = re.findall(r'([A-Z-]+)=("[^"]*"|[^,]*)', line.split(":", 1)[1])
            found.append({k: v.strip('"') for k, v in pairs})
    return found


def stream_infs(master: str) -> list[str]:
    return [line for line in master.splitlines() if line.startswith("#EXT-X-STREAM-INF:")]


def decodes(playlist: Path, output: tuple[str, ...] = ("-f", "null")) -> str:
    """ffmpeg decodes the whole rendition without a single error; what it wrote."""
    result = subprocess.run(
        [*FFMPEG, "-i", str(playlist), "-map", "0", *output, "-"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    return result.stdout


def level_db(playlist: Path, hz: int) -> float:
    """RMS level (dB) of the first 2 s of ``playlist`` through a narrow band-pass at ``hz``."""
    result = subprocess.run(
        [
            *("ffmpeg", "-hide_banner", "-nostdin", "-i", str(playlist), "-t", "2", "-af"),
            f"bandpass=f={hz}:width_type=q:w=8,astats=measure_overall=RMS_level",
            *("-f", "null", "-"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    levels = re.findall(r"RMS level dB: (-?[\d.]+|-inf)", result.stderr)
    assert levels, result.stderr
    return float(levels[-1])


def tone_of(playlist: Path, candidates: tuple[int, ...]) -> int:
    """Which of the candidate tones the rendition carries (by far the loudest band)."""
    levels = {hz: level_db(playlist, hz) for hz in candidates}
    loudest = sorted(levels, key=levels.__getitem__, reverse=True)
    assert levels[loudest[0]] > levels[loudest[1]] + 20, levels
    return loudest[0]


def cue_source_times(ladder: Path, subtitles_uri: str, video_uri: str) -> dict[str, float]:
    """Where a player shows each cue, in the video's own time (0 = its first frame):
    the cue's LOCAL time mapped through X-TIMESTAMP-MAP onto the fMP4 presentation
    timeline, minus the presentation time of the video's first frame."""
    video_start = first_packet_time(ladder / video_uri)
    playlist_path = ladder / subtitles_uri
    shown: dict[str, float] = {}
    for segment in read_media_playlist(playlist_path).segments:
        text = (playlist_path.parent / segment.uri).read_text()
        mapping = re.search(r"X-TIMESTAMP-MAP=MPEGTS:(\d+),LOCAL:([\d:.]+)", text)
        assert mapping is not None, text
        mpegts, local = int(mapping[1]), seconds(mapping[2])
        for cue in parse_webvtt(text):
            presented = cue.start - local + mpegts / MPEG_CLOCK
            shown.setdefault(cue.text, round(presented - video_start, 3))
    return shown


@pytest.fixture
def film_ladder(make_env, tmp_path: Path) -> tuple[Env, str, int, Path]:
    env: Env = make_env(ladder="240:300,144:150")
    asset_id, job_id = env.upload(make_film(tmp_path))
    assert run_job(env.settings, env.catalog, job_id) == "done"
    return env, asset_id, job_id, env.download_ladder(asset_id, tmp_path / "hls")


def test_every_audio_track_is_a_rendition_with_its_language(film_ladder) -> None:
    env, asset_id, job_id, ladder = film_ladder
    master = (ladder / "master.m3u8").read_text()
    audio = [a for a in media_lines(master, "AUDIO") if a["GROUP-ID"] == "aud"]
    assert [(a["LANGUAGE"], a["NAME"], a["DEFAULT"], a["AUTOSELECT"]) for a in audio] == [
        ("en", "English", "YES", "YES"),
        ("fr", "Français", "NO", "YES"),
        ("en", "Commentary", "NO", "NO"),
    ]
    assert {a["CHANNELS"] for a in audio} == {"2"}
    assert "CHARACTERISTICS" not in audio[0] and audio[2]["CHARACTERISTICS"]
    infs = stream_infs(master)
    assert all("CLOSED-CAPTIONS=NONE" in inf for inf in infs)
    assert sum('AUDIO="aud"' in inf for inf in infs) == 2  # one per rung
    video_uri = f"v{job_id}/240p/vod.m3u8"
    title = read_media_playlist(ladder / video_uri).duration
    tones = []
    for rendition in audio:
        playlist = ladder / rendition["URI"]
        decodes(playlist)
        stream = ffprobe(playlist, "-show_streams")["streams"][0]
        assert (stream["codec_name"], stream["channels"], stream["sample_rate"]) == (
            "aac",
            2,
            "48000",
        )
        # Every rendition spans the title, the 3 s commentary too.
        assert abs(read_media_playlist(playlist).duration - title) < 0.1
        tones.append(tone_of(playlist, TONES))
    assert tones == list(TONES)
    with env.catalog.session() as session:
        asset = existing(session, Asset, asset_id)
        assert asset.status == AssetStatus.READY
        names = {r.name: r.codecs for r in asset.renditions}
        not_carried = (asset.probe or {})["not_carried"]
    assert names["audio"] == names["audio_1"] == names["audio_2"] == "mp4a.40.2"
    assert names["subs_0"] == names["subs_1"] == "wvtt"
    # The font attachment is not carried, and says so.
    assert [(d["kind"], d["index"]) for d in not_carried] == [("attachment", 6)]
    assert "attachments" in not_carried[0]["reason"]


def test_a_multichannel_track_also_makes_a_surround_group(film_ladder) -> None:
    """The French AC-3 5.1 track: an AC-3 5.1 rendition in a second group that holds
    every language (the stereo ones where a track has no 5.1), and variants for it."""
    _, _, job_id, ladder = film_ladder
    master = (ladder / "master.m3u8").read_text()
    group = [a for a in media_lines(master, "AUDIO") if a["GROUP-ID"] == "aud51"]
    assert [(a["NAME"], a["CHANNELS"], a["DEFAULT"], a["URI"]) for a in group] == [
        ("English", "2", "YES", f"v{job_id}/audio/vod.m3u8"),
        ("Français 5.1", "6", "NO", f"v{job_id}/audio_1_51/vod.m3u8"),
        ("Commentary", "2", "NO", f"v{job_id}/audio_2/vod.m3u8"),
    ]
    surround_variants = [inf for inf in stream_infs(master) if 'AUDIO="aud51"' in inf]
    assert len(surround_variants) == 2
    assert all('CODECS="avc1.' in inf and ",ac-3,mp4a.40.2" in inf for inf in surround_variants)
    playlist = ladder / group[1]["URI"]
    decodes(playlist)
    stream = ffprobe(playlist, "-show_streams")["streams"][0]
    assert (stream["codec_name"], stream["channels"]) == ("ac3", 6)
    assert tone_of(playlist, TONES) == FRENCH_HZ


def test_text_subtitles_are_webvtt_renditions_on_the_video_timeline(film_ladder) -> None:
    _, _, job_id, ladder = film_ladder
    master = (ladder / "master.m3u8").read_text()
    subtitles = media_lines(master, "SUBTITLES")
    assert [(s["LANGUAGE"], s["NAME"], s.get("FORCED")) for s in subtitles] == [
        ("en", "English", None),
        ("fr", "Français (forced)", "YES"),
    ]
    assert [s["DEFAULT"] for s in subtitles] == ["NO", "NO"]
    for inf in stream_infs(master):
        assert 'SUBTITLES="subs"' in inf
        assert "wvtt" not in inf  # CODECS lists what the player must decode, not text
    video_uri = f"v{job_id}/240p/vod.m3u8"
    video_segments = read_media_playlist(ladder / video_uri).segments
    for rendition in subtitles:
        playlist = ladder / rendition["URI"]
        assert "-->" in decodes(playlist, ("-c:s", "webvtt", "-f", "webvtt"))
        durations = [s.duration for s in read_media_playlist(playlist).segments]
        assert durations == [s.duration for s in video_segments]
    english = cue_source_times(ladder, subtitles[0]["URI"], video_uri)
    assert english == {"Hello there": 1.5, "Across the boundary": 3.5}
    french = cue_source_times(ladder, subtitles[1]["URI"], video_uri)
    assert french == {"Bonjour": 2.0}
    # A cue across a segment boundary is in both segments (4 s segments).
    segments = read_media_playlist(ladder / subtitles[0]["URI"]).segments
    texts = [(ladder / subtitles[0]["URI"]).parent.joinpath(s.uri).read_text() for s in segments]
    assert all("Across the boundary" in text for text in texts[:2])


@pytest.mark.parametrize("segment_type", ["fmp4", "ts"])
def test_mov_text_becomes_an_sdh_rendition(make_env, tmp_path: Path, segment_type: str) -> None:
    env: Env = make_env(ladder="144:150", hls_segment_type=segment_type)
    asset_id, job_id = env.upload(make_mov_text(tmp_path))
    assert run_job(env.settings, env.catalog, job_id) == "done"
    ladder = env.download_ladder(asset_id, tmp_path / "hls")
    master = (ladder / "master.m3u8").read_text()
    (audio,) = media_lines(master, "AUDIO")
    assert (audio["LANGUAGE"], audio["NAME"], audio["DEFAULT"]) == ("it", "Italiano", "YES")
    (subtitles,) = media_lines(master, "SUBTITLES")
    assert (subtitles["LANGUAGE"], subtitles["NAME"]) == ("it", "Italiano (SDH)")
    assert subtitles["CHARACTERISTICS"] == (
        "public.accessibility.transcribes-spoken-dialog,"
        "public.accessibility.describes-music-and-sound"
    )
    video_uri = f"v{job_id}/144p/vod.m3u8"
    shown = cue_source_times(ladder, subtitles["URI"], video_uri)
    assert shown == {"Hello there": 1.5, "Across the boundary": 3.5}
