"""Real players against the origin: ffmpeg decodes, VLC plays, headless Chromium watches."""

from __future__ import annotations

import json
import os
import pwd
import queue
import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from origin.signing import PlaybackSigner
from tests.origin.conftest import (
    SIGNING_KEY,
    Published,
    add_transcoding_asset,
    publish_first_segments,
    publish_the_rest,
)
from tests.origin.http import gauge
from tests.stacks import OriginUnderTest

BROWSER_DIR = Path(__file__).with_name("browser")
PLAYER_USER = "nebula-player"  # cvlc refuses to run as root


def decode(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """Decode every stream to nowhere; ffmpeg prints nothing at ``-v error`` when all is well."""
    return subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", *extra, "-i", url, "-map", "0", "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_ffmpeg_decodes_the_master_and_each_variant(
    origin: OriginUnderTest, published: Published
) -> None:
    base = f"{origin.url}/hls/{published.asset_id}"
    for name in ["master.m3u8", *published.variants]:
        done = decode(f"{base}/{name}")
        assert done.returncode == 0 and done.stderr.strip() == "", (name, done.stderr)


def test_ffmpeg_decodes_a_signed_master_through_rewritten_uris(
    signed_origin: OriginUnderTest, published: Published
) -> None:
    url = PlaybackSigner(SIGNING_KEY).master_url(signed_origin.url, published.asset_id, 600)
    done = decode(url)
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr


def test_ffmpeg_seeks_in_the_original_over_byte_ranges(
    origin: OriginUnderTest, published: Published
) -> None:
    done = decode(f"{origin.url}/files/{published.asset_id}", "-ss", "5")
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr


def _player_user() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    try:
        return pwd.getpwnam(PLAYER_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                PLAYER_USER,
            ],
            check=True,
        )
        return pwd.getpwnam(PLAYER_USER)


def test_vlc_plays_the_master(
    launch: Callable[..., OriginUnderTest], published: Published, tmp_path: Path
) -> None:
    # A missing player fails rather than skips: a skipped player test would hide a broken CI.
    assert shutil.which("cvlc"), "VLC is missing: apt-get install vlc-bin vlc-plugin-base"
    fresh = launch()  # its cache counts exactly what VLC fetched
    user = _player_user()
    home = tmp_path / "vlc-home"
    home.mkdir()
    os.chown(home, user.pw_uid, user.pw_gid)
    argv = [
        "cvlc", "--no-interact", "--intf", "dummy", "--vout", "dummy", "--aout", "dummy",
        "--play-and-exit", "--no-video-title-show", "-v",
        f"{fresh.url}/hls/{published.asset_id}/master.m3u8",
    ]  # fmt: skip
    if os.geteuid() == 0:
        argv = ["runuser", "-u", user.pw_name, "--", *argv]
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    assert "end of playlist" in log, log
    assert not re.search(r"(adaptive|decoder|avcodec|mp4|http)[^\n]* error", log), log
    # Init segment and all four media segments of (at least) one rendition came through us.
    assert gauge(fresh.url, "nebula_origin_cache_fills_total") >= 5


def _browser_ready() -> str | None:
    if shutil.which("node") is None or not Path("/usr/bin/chromium").exists():
        return "node or /usr/bin/chromium missing: apt-get install chromium nodejs npm"
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        return "playwright-core missing: run `npm ci` in tests/origin/browser"
    return None


def test_chromium_watch_page_plays_and_switches_quality(
    origin: OriginUnderTest, published: Published
) -> None:
    missing = _browser_ready()
    assert missing is None, missing
    done = subprocess.run(
        ["node", str(BROWSER_DIR / "watch.mjs"), f"{origin.url}/watch/{published.asset_id}"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ok"], report
    # The page's strict policy (origin.content.PAGE_POLICY) lets everything it does run.
    assert not [line for line in report["console"] if "Content Security Policy" in line], report
    assert report["before"]["mode"] == "hls.js"
    assert [level["height"] for level in report["before"]["levels"]] == [180, 360]
    assert report["after"]["currentTime"] > report["before"]["currentTime"] > 0.5
    switched = [s["level"] for s in report["after"]["switches"]]
    assert report["target"] in switched and len(set(switched)) >= 2, report
    preview = report["preview"]
    assert "sprite.jpg" in preview["image"] and preview["width"] == "160px", preview
    assert preview["time"].startswith("0:0"), preview
    # Hovering the bar's very end: the preview stays within the picture's edges.
    edge = report["edge"]
    assert edge["preview"]["width"] > 160, edge
    assert edge["video"]["left"] <= edge["preview"]["left"], edge
    assert edge["preview"]["right"] <= edge["video"]["right"], edge


def lines_of(process: subprocess.Popen[str]) -> queue.Queue[str]:
    """The child's stdout, line by line, read on a thread (so each wait has a ceiling)."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _step(lines: queue.Queue[str], name: str) -> dict[str, Any]:
    """The browser's report of step ``name``; an early ``done`` (it failed) fails the test."""
    report: dict[str, Any] = json.loads(lines.get(timeout=180))
    assert report["step"] == name, report
    return report


def test_watch_page_opened_before_the_video_is_ready_plays_by_itself(
    origin: OriginUnderTest, published: Published
) -> None:
    """The real user path: a watch page open while the video is transcoding shows the
    progress, starts by itself on the first published segments, follows the growing
    playlists, and the list page turns to ready, neither page reloaded."""
    missing = _browser_ready()
    assert missing is None, missing
    asset_id = add_transcoding_asset(published.catalog_url, "live/early.mp4", 40.0)
    browser = subprocess.Popen(
        ["node", str(BROWSER_DIR / "early.mjs"), origin.url, asset_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert browser.stdin is not None
    lines = lines_of(browser)

    def proceed() -> None:
        assert browser.stdin is not None
        browser.stdin.write("go\n")
        browser.stdin.flush()

    try:
        opened = _step(lines, "opened")
        assert opened["watch"]["status"] == "processing 40%", opened
        assert opened["watch"]["waiting"] and opened["watch"]["mode"] is None, opened
        assert opened["list"]["status"] == "processing 40%", opened
        publish_first_segments(published, asset_id, segments=2)
        proceed()
        playing = _step(lines, "playing")
        assert playing["watch"]["mode"] == "hls.js" and not playing["watch"]["waiting"]
        assert playing["watch"]["notReloaded"], playing
        publish_the_rest(published, asset_id)
        proceed()
        done = _step(lines, "done")
        assert done["ok"], done
        assert done["list"]["status"] == "ready" and done["watch"]["status"] == "ready"
        assert done["watch"]["currentTime"] > 5, done
        assert done["watch"]["notReloaded"] and done["list"]["notReloaded"], done
    finally:
        stop_browser(browser)


def stop_browser(browser: subprocess.Popen[str]) -> None:
    """Playwright closes chromium on SIGTERM (its handleSIGTERM); SIGKILL would orphan it."""
    browser.terminate()
    try:
        browser.wait(timeout=30)
    except subprocess.TimeoutExpired:
        browser.kill()
        browser.wait()
