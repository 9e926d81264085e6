"""Real players against the origin while the ladder changes under them: VLC and hls.js in
Chromium started mid-transcode play to the end; a player of a ready video finishes it while
the same key is overwritten and the new ladder published; a deleted video's player stops on
404s. Everything real: SeaweedFS, ffmpeg transcoding, ``nebula origin``, the players.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests

from catalog import Asset, AssetStatus, ladders
from catalog.assets import find_asset
from catalog.models import JobStatus
from nebulacore import hls
from tests.origin.test_players import BROWSER_DIR, _browser_ready, _player_user
from tests.rows import existing
from tests.s3proxy.signing import s3_client
from tests.stacks import OriginUnderTest, ProxyUnderTest, Seaweed, start_origin, start_proxy
from tests.transcoder.conftest import TEST_LADDER, Env
from tests.transcoder.conftest import make_env as make_env  # a fixture
from tests.transcoder.test_live import PLAY_TO_NOTHING, Watcher, play
from tests.transcoder.test_worker import wait_for
from transcoder.playlist import parse_media_playlist
from transcoder.samples import make_source
from transcoder.work import run_job

# The transcoder tests' ladder from a 640x360 30 fps source keeps ffmpeg busy for longer
# than a player needs to start: the job is still running when the player joins.
SOURCE_SIZE = "640x360"
SOURCE_RATE = 30  # every rung keeps it
# Every video stream of a dump (VLC switching rungs may record a new one), decoded.
COUNT_VIDEO_FRAMES = [
    "ffprobe", "-v", "quiet", "-count_frames", "-select_streams", "v",
    "-show_entries", "stream=index,nb_read_frames", "-of", "csv=p=0",
]  # fmt: skip


@pytest.fixture
def env(make_env: Callable[..., Env]) -> Env:
    return make_env()


@pytest.fixture
def origin(env: Env, tmp_path: Path) -> Iterator[OriginUnderTest]:
    running = start_origin(tmp_path, env.env_vars())
    try:
        yield running
    finally:
        running.stop()


class Transcode:
    """``run_job`` on a thread: started, then joined with its outcome."""

    def __init__(self, env: Env, job_id: int) -> None:
        self.outcome: list[str] = []
        self.thread = threading.Thread(
            target=lambda: self.outcome.append(run_job(env.settings, env.catalog, job_id)),
            daemon=True,
        )
        self.thread.start()

    def finish(self) -> str:
        self.thread.join(timeout=240)
        assert self.outcome, "the job raised or never ended"
        return self.outcome[0]


def start_mid_transcode(
    env: Env, origin: OriginUnderTest, tmp_path: Path, seconds: int, segments: int = 1
) -> tuple[str, Transcode]:
    """Upload a source and transcode it; return once the asset is playable (the provisional
    master is published) and every rendition lists ``segments``, with the job running."""
    source = make_source(tmp_path / "clip.mp4", seconds=seconds, size=SOURCE_SIZE, rate=SOURCE_RATE)
    asset_id, job_id = env.upload(source)
    transcode = Transcode(env, job_id)
    watcher = Watcher(env, asset_id, hls.version_name(job_id), tmp_path)

    def published() -> bool:
        seen = watcher.observe(True, check=False)
        listed = [len(parse_media_playlist(t).segments) for t in seen.playlists.values()]
        return seen.status == AssetStatus.PLAYABLE and min(listed, default=0) >= segments

    wait_for(published, "the asset to become playable", 180, origin.log)
    assert transcode.thread.is_alive(), "the transcode ended before the player could start"
    return asset_id, transcode


def ffprobe(argv: list[str], path: Path) -> str:
    shown = subprocess.run(
        [*argv, str(path)], capture_output=True, text=True, check=True, timeout=60
    )
    return shown.stdout.strip()


def video_frames(path: Path) -> dict[str, int]:
    """Decoded frames per video stream of ``path`` (a TS dump lists its streams twice, in
    its program and alone: one entry per stream index)."""
    frames: dict[str, int] = {}
    for line in ffprobe(COUNT_VIDEO_FRAMES, path).splitlines():
        index, _, count = line.partition(",")
        if count.strip().isdigit():
            frames[index] = int(count)
    return frames


def media_playlists(origin: OriginUnderTest, asset_id: str) -> dict[str, str]:
    """Every rendition's media playlist as the origin serves it now, by its URI."""
    base = f"{origin.url}/hls/{asset_id}/"
    master = requests.get(base + hls.MASTER, timeout=10).text
    uris = re.findall(r"^(?!#)(\S+\.m3u8)$", master, re.MULTILINE)
    uris += re.findall(r'URI="([^"]+\.m3u8)"', master)
    return {uri: requests.get(base + uri, timeout=10).text for uri in dict.fromkeys(uris)}


def job_status(env: Env, asset_id: str) -> JobStatus:
    with env.catalog.session() as session:
        return existing(session, Asset, asset_id).jobs[-1].status


def live_now(env: Env, origin: OriginUnderTest, asset_id: str) -> list[str]:
    """Why the video is not live at this moment (empty: its job runs, and every media
    playlist the origin serves is an EVENT playlist without ENDLIST)."""
    problems = [] if job_status(env, asset_id) == JobStatus.RUNNING else ["the job is over"]
    for uri, text in media_playlists(origin, asset_id).items():
        if "#EXT-X-ENDLIST" in text or "#EXT-X-PLAYLIST-TYPE:EVENT" not in text:
            problems.append(f"{uri} is not a growing EVENT playlist")
    return problems


def last_segments(origin: OriginUnderTest, asset_id: str) -> dict[str, str]:
    """The last segment's URL of every finished media playlist (each must end in ENDLIST)."""
    base = f"{origin.url}/hls/{asset_id}/"
    last = {}
    for uri, text in media_playlists(origin, asset_id).items():
        assert text.rstrip().endswith("#EXT-X-ENDLIST"), (uri, text[-300:])
        segments = [line for line in text.splitlines() if line and not line.startswith("#")]
        if segments:  # subtitle and I-frame playlists aside, every rendition has some
            last[uri] = urljoin(base + uri, segments[-1])
    return last


# ----- VLC ----------------------------------------------------------------------------------

# VLC from the beginning of the video (see the test), paced to the clock as a user's VLC plays:
# the display stream output decodes into the dummy video and audio outputs, which wait for each
# frame's time, and std remuxes the same packets into the dump, the record of what was played.
# (A bare --sout file remux is not paced: it reads as fast as the transcode publishes, so it
# tested the growing end of the playlist, and how fast the machine was, not playback.)
VLC_LIVE = ["--vout", "dummy", "--aout", "dummy", "--start-time", "0.1"]
# At -vv VLC names each download ("adaptive demux debug: Retrieving <url>") and the end of
# its input ("main input debug: EOF reached": after ENDLIST; a live playlist is polled).
RETRIEVED = re.compile(r"adaptive demux debug: Retrieving (\S+)")
INPUT_ENDED = "main input debug: EOF reached"
# Errors of the modules that fetch, demux and decode ("[ptr] avcodec decoder error: ...").
# Not the stall message "ES_OUT_SET_(GROUP_)PCR is called too late": that is VLC waiting
# at the growing end for a machine that transcodes slower than real time, which a viewer
# sees as buffering. The viewer's decoder is VLC's own: the recorded dump is only counted
# (its TS muxer drops packets that arrive late during such a wait).
VLC_ERROR = re.compile(
    r"^\[[0-9a-f]+\] [\w ]*\b(adaptive|decoder|mp4|http|input)\b[\w ]* error: "
    r"(?!ES_OUT_SET_\(GROUP_\)PCR +is called too late)[^\n]*$",
    re.MULTILINE,
)
VLC_SOUT = "#duplicate{{dst=display,dst=std{{access=file,mux=ts,dst={dump}}}}}"
# Long enough that the job still runs when VLC has joined, even on a quiet machine.
MID_TRANSCODE_SECONDS = 60


def start_vlc(url: str, home: Path, dump: Path, *options: str) -> subprocess.Popen[str]:
    """cvlc as test_players runs it (non-root), recording what it plays into ``dump``."""
    user = _player_user()
    home.mkdir()
    os.chown(home, user.pw_uid, user.pw_gid)
    os.chown(dump.parent, user.pw_uid, user.pw_gid)
    argv = [
        "cvlc", "--no-interact", "--intf", "dummy", "--play-and-exit", "-vv", *options,
        "--sout", VLC_SOUT.format(dump=dump), url,
    ]  # fmt: skip
    if os.geteuid() == 0:
        argv = ["runuser", "-u", user.pw_name, "--", *argv]
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


class VlcLog:
    """VLC's output read on a thread as it comes; ``first_segment`` is set once VLC has
    fetched a media segment (it has read its first media playlist by then)."""

    def __init__(self, player: subprocess.Popen[str]) -> None:
        self.player = player
        self.lines: list[str] = []
        self.first_segment = threading.Event()
        self.reader = threading.Thread(target=self._pump, daemon=True)
        self.reader.start()

    def _pump(self) -> None:
        assert self.player.stdout is not None
        for line in self.player.stdout:
            self.lines.append(line)
            match = RETRIEVED.search(line)
            if match and match.group(1).endswith(".m4s"):
                self.first_segment.set()
        self.first_segment.set()  # VLC ended: whoever waits looks at the log

    def text(self) -> str:
        return "".join(self.lines)

    def retrieved(self) -> set[str]:
        return set(RETRIEVED.findall(self.text()))

    def finish(self, guard: float) -> str:
        """What VLC printed once it exited by itself; ``guard`` only ends a hang."""
        try:
            self.player.wait(timeout=guard)
        except subprocess.TimeoutExpired:
            self.player.kill()
            self.player.wait()
            self.reader.join(timeout=30)
            raise AssertionError(f"VLC did not stop:\n{self.text()[-4000:]}") from None
        self.reader.join(timeout=30)
        return self.text()


def test_vlc_started_mid_transcode_plays_to_the_end(
    env: Env, origin: OriginUnderTest, tmp_path: Path
) -> None:
    """What a viewer needs: VLC joins while the job runs (its playlists growing, no
    ENDLIST), follows them to the last segment and the ENDLIST, ends by itself, and its
    decoder reports no error for any video stream. How many frames it shows is not
    asserted: on a machine transcoding slower than real time VLC waits at the growing end
    and drops what came late, which is the machine's pace, not a fault of the stream."""
    # Joined with 16 s published: more than VLC's default live delay (15 s) behind the edge.
    asset_id, transcode = start_mid_transcode(
        env, origin, tmp_path, seconds=MID_TRANSCODE_SECONDS, segments=4
    )
    # The player user cannot enter pytest's tmp_path (root's, mode 700): a folder of its own.
    dumps = Path(tempfile.mkdtemp(prefix="vlc-dump-"))
    dump = dumps / "played.ts"
    # VLC joins a playlist without ENDLIST at its live edge (15 s back, and never at the
    # first segment, even with a longer --adaptive-livedelay): it skipped the first 4 s.
    # --start-time seeks it back to the beginning, and it plays the EVENT playlist from there.
    url = f"{origin.url}/hls/{asset_id}/master.m3u8"
    vlc = VlcLog(start_vlc(url, dumps / "home", dump, *VLC_LIVE))
    try:
        assert vlc.first_segment.wait(timeout=120), "VLC fetched no segment"
        # Checked once VLC has read a media playlist: playlists only ever gain ENDLIST, so
        # still live now means VLC joined a live one.
        not_live = live_now(env, origin, asset_id)
        log = vlc.finish(guard=MID_TRANSCODE_SECONDS + 180)
        frames = video_frames(dump)
    finally:
        if vlc.player.poll() is None:
            vlc.player.kill()
            vlc.player.wait()
        shutil.rmtree(dumps, ignore_errors=True)
    assert not not_live, not_live
    assert transcode.finish() == "done"
    assert vlc.player.returncode == 0, log[-4000:]
    errors = [m.group(0) for m in VLC_ERROR.finditer(log)]
    assert not errors, errors[:10]
    # It fetched the last segment of a finished rendition and its input ended (ENDLIST).
    last = last_segments(origin, asset_id)
    assert vlc.retrieved() & set(last.values()), (sorted(last.values()), log[-4000:])
    assert INPUT_ENDED in log, log[-4000:]
    # Video in every stream it recorded (a count of what was shown would race the job).
    assert frames and all(frames.values()), frames


# ----- hls.js in Chromium -------------------------------------------------------------------


def test_hlsjs_watch_page_opened_mid_transcode_plays_to_the_end(
    env: Env, origin: OriginUnderTest, tmp_path: Path
) -> None:
    missing = _browser_ready()
    assert missing is None, missing
    asset_id, transcode = start_mid_transcode(env, origin, tmp_path, seconds=30)
    done = subprocess.run(
        ["node", str(BROWSER_DIR / "live.mjs"), f"{origin.url}/watch/{asset_id}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert transcode.finish() == "done"
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ok"], report
    result = report["result"]
    assert result["mode"] == "hls.js", report
    # Its first media playlist had no ENDLIST: it joined while the transcode ran.
    assert result["liveAtJoin"] is True, report
    assert not [e for e in result["errors"] if e["fatal"]], report
    missing_parts = {"fragLoadError", "levelLoadError"}
    assert not missing_parts & set(result["pageErrors"]), report
    assert result["duration"] == pytest.approx(30.0, abs=0.5), report
    assert result["currentTime"] >= result["duration"] - 1, report


# ----- overwrite and delete while a player plays -------------------------------------------


class Player:
    """ffmpeg reading the master at its real pace (-re), as a viewer would; its progress
    read on a thread so the test can see how far it got while it plays."""

    def __init__(self, url: str, level: str = "error") -> None:
        self.process = subprocess.Popen(
            ["ffmpeg", "-v", level, "-nostdin", "-re", "-i", url, *PLAY_TO_NOTHING],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.progress: list[str] = []
        self.errors = ""
        self.reader = threading.Thread(target=self._pump, daemon=True)
        self.reader.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None and self.process.stderr is not None
        for line in self.process.stdout:
            self.progress.append(line)
        self.errors = self.process.stderr.read()

    def played(self) -> float:
        return played_seconds("".join(self.progress))

    def running(self) -> bool:
        return self.process.poll() is None

    def finish(self, ceiling: float) -> int:
        """Wait for it to end by itself (``ceiling``: a hang fails, not a timing rule)."""
        try:
            code = self.process.wait(timeout=ceiling)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        self.reader.join(timeout=30)
        return code


def played_seconds(progress: str) -> float:
    times = re.findall(r"^out_time_us=(\d+)$", progress, re.MULTILINE)
    return int(times[-1]) / 1_000_000 if times else 0.0


@dataclass
class Front:
    """The user's path: an s3proxy taking uploads and deletes, an origin over its catalog,
    and the jobs the proxy records run here, as a worker would run them."""

    proxy: ProxyUnderTest
    origin: OriginUnderTest
    client: Any

    def latest_job(self, key: str) -> tuple[str, int]:
        with self.proxy.catalog.session() as session:
            asset = find_asset(session, "media", key)
            assert asset is not None
            return asset.id, max(job.id for job in asset.jobs)

    def run(self, job_id: int) -> None:
        assert run_job(self.proxy.settings, self.proxy.catalog, job_id) == "done"

    def publish(self, source: Path, key: str) -> tuple[str, int]:
        """PUT through the proxy, then its transcode: (asset, job)."""
        self.client.put_object(Bucket="media", Key=key, Body=source.read_bytes())
        asset_id, job_id = self.latest_job(key)
        self.run(job_id)
        return asset_id, job_id

    def delete(self, key: str) -> None:
        """DELETE through the proxy, then its removal job."""
        self.client.delete_object(Bucket="media", Key=key)
        self.run(self.latest_job(key)[1])


@pytest.fixture
def front(seaweed: Seaweed, tmp_path: Path) -> Iterator[Front]:
    (tmp_path / "proxy").mkdir()
    # The test ladder, software x264: quick, and no hardware probe in the jobs run here.
    proxy = start_proxy(
        tmp_path / "proxy", seaweed, {"NEBULA_LADDER": TEST_LADDER, "NEBULA_HWACCEL": "none"}
    )
    try:
        origin = start_origin(
            tmp_path / "origin", {**proxy.env, "NEBULA_DATABASE_URL": proxy.settings.catalog_url}
        )
        try:
            yield Front(proxy, origin, s3_client(proxy.endpoint, proxy.admin))
        finally:
            origin.stop()
    finally:
        proxy.stop()


def test_a_player_finishes_the_old_video_while_the_key_is_overwritten(
    front: Front, tmp_path: Path
) -> None:
    origin = front.origin
    old = make_source(tmp_path / "old.mp4", seconds=24, size="320x240")
    asset_id, first = front.publish(old, "same.mp4")
    player = Player(f"{origin.url}/hls/{asset_id}/master.m3u8")
    try:
        # Overwritten (a shorter video) and its ladder published while the player plays.
        new = make_source(tmp_path / "new.mp4", seconds=6, size="320x240")
        same, second = front.publish(new, "same.mp4")
        assert same == asset_id
        master_url = f"{origin.url}/hls/{asset_id}/master.m3u8"
        wait_for(
            lambda: f"v{second}/" in requests.get(master_url, timeout=10).text,
            "the origin to serve the new master",
            30,
            origin.log,
        )
        assert player.running(), "the player ended before the overwrite was published"
        # The old version is retired, not removed: it waits out NEBULA_HLS_RETAIN_SECONDS.
        assert ladders.pending(front.proxy.catalog, asset_id) == [f"v{first}"]
    finally:
        code = player.finish(ceiling=180)
    assert code == 0 and not player.errors.strip(), player.errors[-2000:]
    # The old (24 s) video, whole: retention kept its ladder under the player.
    assert player.played() == pytest.approx(24.0, abs=0.5)
    # A player starting now gets the new one.
    assert play(f"{origin.url}/hls/{asset_id}/master.m3u8") == pytest.approx(6.0, abs=0.5)
    assert f"v{first}/" not in requests.get(master_url, timeout=10).text


def test_a_deleted_video_stops_its_player_with_404s(front: Front, tmp_path: Path) -> None:
    origin = front.origin
    source = make_source(tmp_path / "gone.mp4", seconds=30, size="320x240")
    asset_id, _ = front.publish(source, "gone.mp4")
    master_url = f"{origin.url}/hls/{asset_id}/master.m3u8"
    playlist = next(
        line
        for line in requests.get(master_url, timeout=10).text.splitlines()
        if line and not line.startswith("#")
    )
    folder = playlist.rsplit("/", 1)[0]
    last_segment = f"{origin.url}/hls/{asset_id}/{folder}/seg_00007.m4s"
    player = Player(master_url, level="warning")  # ffmpeg says "404" as a warning
    try:
        wait_for(
            lambda: not player.running() or player.played() > 2,
            "the player to start",
            60,
            origin.log,
        )
        assert player.running(), f"the player ended before the delete: {player.errors}"
        front.delete("gone.mp4")
        wait_for(
            lambda: requests.get(last_segment, timeout=10).status_code == 404,
            "the origin to answer 404 for the deleted video's segments",
            30,
            origin.log,
        )
    finally:
        # It stops by itself, on errors; the ceiling only turns a hang into a failure.
        player.finish(ceiling=120)
    assert "404" in player.errors, player.errors[-2000:]
    assert player.played() < 29.0, player.errors[-2000:]
    assert requests.get(master_url, timeout=10).status_code == 404
    with front.proxy.catalog.session() as session:
        assert existing(session, Asset, asset_id).status == AssetStatus.DELETED
