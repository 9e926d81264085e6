"""Real players against the origin: ffmpeg decodes, VLC plays, headless Chromium watches."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from origin.signing import PlaybackSigner
from tests.origin.conftest import SIGNING_KEY, Published
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
    assert report["before"]["mode"] == "hls.js"
    assert [level["height"] for level in report["before"]["levels"]] == [180, 360]
    assert report["after"]["currentTime"] > report["before"]["currentTime"] > 0.5
    switched = [s["level"] for s in report["after"]["switches"]]
    assert report["target"] in switched and len(set(switched)) >= 2, report
    preview = report["preview"]
    assert "sprite.jpg" in preview["image"] and preview["width"] == "160px", preview
    assert preview["time"].startswith("0:0"), preview
