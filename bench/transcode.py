"""Benchmark the transcoder (``apt-get install ffmpeg``).

1. On a generated 1080p source (60 s by default), the worker's job minus the upload
   (probe, the ONE ffmpeg, verify, measure, master, poster and sprite) versus one
   hand-written ffmpeg command making the same ladder, run alternately in one run.
   Prints the ratios of CPU seconds and of wall seconds. Target: <= 1.05.
2. With the whole system (``nebula up`` in a temporary directory), the time from the
   upload completing (through the s3proxy) to the master playlist being readable through
   the origin, against the transcode's own wall time from part 1. Target: <= 2x.

    python3 -m bench.transcode                # 60 s 1080p, 2 rounds, then end to end
    python3 -m bench.transcode --seconds 20 --rounds 3 --skip-e2e
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from nebulacore.config import load_settings
from tests.harness import answers_http, wait_until
from tests.stacks import start_nebula_up
from transcoder.pipeline import build_ladder
from transcoder.probe import probe
from transcoder.runner import NoGuard
from transcoder.samples import make_source


@dataclass
class Cost:
    wall: float
    cpu: float


def measure(action: object) -> Cost:
    """Wall and CPU seconds (this process plus its children) of ``action()``."""
    before_self = resource.getrusage(resource.RUSAGE_SELF)
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    action()  # type: ignore[operator]
    wall = time.monotonic() - started
    after_self = resource.getrusage(resource.RUSAGE_SELF)
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(
        getattr(after, field) - getattr(before, field)
        for after, before in ((after_self, before_self), (after_children, before_children))
        for field in ("ru_utime", "ru_stime")
    )
    return Cost(wall, cpu)


def hand_written(source: Path, out: Path, seconds: int = 4) -> list[str]:
    """The same ladder as one ffmpeg command, written by hand (1080/720/480/360 + AAC)."""
    graph = (
        "[0:v:0]fps=30,format=yuv420p,split=4[a][b][c][d];"
        "[a]scale=1920:1080[v0];[b]scale=1280:720[v1];[c]scale=854:480[v2];[d]scale=640:360[v3]"
    )
    rates = []
    for index, kbps in enumerate((6000, 3000, 1400, 800)):
        rates += [f"-b:v:{index}", f"{kbps}k", f"-maxrate:v:{index}", f"{int(kbps * 1.1)}k"]
        rates += [f"-bufsize:v:{index}", f"{kbps * 2}k"]
    return [
        "ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-i", str(source),
        "-filter_complex", graph,
        "-map", "0:a:0", "-map", "[v0]", "-map", "[v1]", "-map", "[v2]", "-map", "[v3]",
        "-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2",
        "-c:v", "libx264", "-profile:v", "high", "-preset", "veryfast", *rates,
        "-g", "120", "-keyint_min", "120", "-sc_threshold", "0",
        "-force_key_frames", f"expr:gte(t,n_forced*{seconds})",
        "-f", "hls", "-hls_time", str(seconds), "-hls_playlist_type", "vod",
        "-hls_flags", "independent_segments", "-hls_segment_type", "fmp4",
        "-hls_fmp4_init_filename", "init.mp4",
        "-hls_segment_filename", str(out / "%v" / "seg_%05d.m4s"),
        "-var_stream_map",
        "a:0,agroup:aud,name:audio v:0,agroup:aud,name:1080p v:1,agroup:aud,name:720p "
        "v:2,agroup:aud,name:480p v:3,agroup:aud,name:360p",
        str(out / "%v" / "index.m3u8"),
    ]  # fmt: skip


def part_one(source: Path, work: Path, rounds: int) -> tuple[list[Cost], list[Cost]]:
    settings = load_settings({}, data_dir=str(work / "data"), hwaccel="none")
    ours, theirs = [], []
    for round_ in range(rounds):
        target = work / f"ours{round_}"
        ours.append(
            measure(
                lambda t=target: build_ladder(
                    settings, str(source), probe(str(source)), t, "bench", "v1", NoGuard()
                )
            )
        )
        out = work / f"hand{round_}"
        theirs.append(measure(lambda o=out: subprocess.run(hand_written(source, o), check=True)))
        print(
            f"round {round_ + 1}: worker job {ours[-1].wall:6.1f}s wall {ours[-1].cpu:6.1f}s cpu | "
            f"hand-written {theirs[-1].wall:6.1f}s wall {theirs[-1].cpu:6.1f}s cpu",
            flush=True,
        )
        shutil.rmtree(target, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
    return ours, theirs


def part_two(source: Path, work: Path, timeout: float) -> float:
    """Seconds from upload complete (through the s3proxy) to master readable via the origin."""

    from catalog import Catalog
    from catalog.assets import find_asset

    work.mkdir(parents=True, exist_ok=True)
    up = start_nebula_up(work, {"NEBULA_LOG_LEVEL": "WARNING"})
    try:
        up.wait_for("Press Ctrl-C", timeout=180)
        s3 = up.s3()
        origin = up.value("origin")
        for url in (up.value("S3 endpoint"), origin):
            wait_until(partial(answers_http, url + "/healthz"), url, 120, log=up.log)
        s3.upload_file(str(source), "media", "bench.mp4")
        uploaded = time.monotonic()
        catalog = Catalog(f"sqlite:///{work / 'data' / 'catalog.db'}")
        asset_id = None
        while time.monotonic() - uploaded < timeout:
            if asset_id is None:
                with catalog.session() as session:
                    asset = find_asset(session, "media", "bench.mp4")
                    asset_id = asset.id if asset else None
            if asset_id and _readable(f"{origin}/hls/{asset_id}/master.m3u8"):
                catalog.dispose()
                return time.monotonic() - uploaded
            time.sleep(0.25)
        raise TimeoutError(f"no master playlist after {timeout}s:\n{up.text[-3000:]}")
    finally:
        try:
            up.interrupt()
        finally:
            up.stop()  # whatever nebula up left behind in its process group


def _readable(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200 and response.read().startswith(b"#EXTM3U"))
    except (urllib.error.URLError, OSError):
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="source length")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip-e2e", action="store_true", help="only part 1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nebula-bench-") as tmp:
        work = Path(tmp)
        print(f"generating a {args.seconds:g} s 1920x1080 30 fps source...", flush=True)
        source = make_source(work / "source.mp4", seconds=args.seconds, size="1920x1080")
        ours, theirs = part_one(source, work, args.rounds)
        wall = statistics.mean(c.wall for c in ours) / statistics.mean(c.wall for c in theirs)
        cpu = statistics.mean(c.cpu for c in ours) / statistics.mean(c.cpu for c in theirs)
        print(
            f"worker job / hand-written ffmpeg: cpu {cpu:.3f}x  wall {wall:.3f}x  (target <= 1.05)"
        )
        if args.skip_e2e:
            return 0
        transcode = statistics.mean(c.wall for c in ours)
        latency = part_two(source, work / "e2e", timeout=max(600.0, 10 * transcode))
        print(
            f"upload complete -> master readable via the origin: {latency:.1f}s = "
            f"{latency / transcode:.2f}x the transcode ({transcode:.1f}s)  (target <= 2)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
