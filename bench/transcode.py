"""Benchmark the transcoder (``apt-get install ffmpeg``).

1. On a generated 1080p source (60 s by default), the worker's job minus the upload
   (probe, the ONE ffmpeg, verify, measure, master, poster and sprite) versus one
   hand-written ffmpeg command making the same ladder, run alternately in one run.
   Prints the ratios of CPU seconds and of wall seconds. Target: <= 1.05.
2. With the whole system (``nebula up`` in a temporary directory), from the upload
   completing (through the s3proxy): the time until the first segment of every rung
   (and the audio) decodes through the origin (playable while transcoding), and until
   the asset is ready with its measured master; both against the transcode's own wall
   time from part 1 (first segments: the smaller the better; ready: target <= 2x).
3. Resume: on SeaweedFS, a transcode with live publishing from zero, then one whose
   process is SIGKILLed once 80 % of every rendition is published, then the same job run
   again (it resumes after what is published). Prints the rerun's wall time as a
   fraction of the full one. Target: <= 0.40.

    python3 -m bench.transcode                # 60 s 1080p, 2 rounds, end to end, resume
    python3 -m bench.transcode --seconds 20 --rounds 3 --skip-e2e --skip-resume
"""

from __future__ import annotations

import argparse
import math
import os
import re
import resource
import shutil
import signal
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
from typing import Any

from catalog import AssetStatus
from nebulacore import hls
from nebulacore.config import load_settings
from tests.harness import answers_http, wait_until
from tests.services import environ_without
from tests.stacks import start_nebula_up, start_seaweed
from transcoder.pipeline import build_ladder
from transcoder.playlist import parse_media_playlist
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


def part_two(source: Path, work: Path, timeout: float) -> tuple[float, float]:
    """Seconds from upload complete (through the s3proxy) to (the first segment of every
    rendition decoded through the origin, the asset ready)."""

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
        asset_id, first = None, None
        try:
            while time.monotonic() - uploaded < timeout:
                with catalog.session() as session:
                    asset = find_asset(session, "media", "bench.mp4")
                    asset_id = asset.id if asset else None
                    ready = asset is not None and asset.status == AssetStatus.READY
                if first is None and asset_id and _first_segments_play(origin, asset_id, work):
                    first = time.monotonic() - uploaded
                if ready and first is not None:
                    return first, time.monotonic() - uploaded
                time.sleep(0.25)
        finally:
            catalog.dispose()
        raise TimeoutError(f"not ready after {timeout}s:\n{up.text[-3000:]}")
    finally:
        try:
            up.interrupt()
        finally:
            up.stop()  # whatever nebula up left behind in its process group


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bytes(response.read()) if response.status == 200 else None
    except (urllib.error.URLError, OSError):
        return None


def _first_segments_play(origin: str, asset_id: str, work: Path) -> bool:
    """The master, and the first segment of each rendition it names, decode via the origin."""
    base = f"{origin}/hls/{asset_id}"
    master = _get(f"{base}/master.m3u8")
    if master is None:
        return False
    uris = re.findall(r'URI="([^"]+)"', master.decode()) + [
        line for line in master.decode().splitlines() if line and not line.startswith("#")
    ]
    for uri in uris:
        text = _get(f"{base}/{uri}")
        playlist = parse_media_playlist(text.decode()) if text else None
        if playlist is None or not playlist.segments:
            return False
        folder = uri.rsplit("/", 1)[0]
        init = _get(f"{base}/{folder}/{playlist.init}") if playlist.init else b""
        segment = _get(f"{base}/{folder}/{playlist.segments[0].uri}")
        if init is None or segment is None:
            return False
        sample = work / "first-segment.mp4"
        sample.write_bytes(init + segment)
        decoded = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(sample), "-f", "null", "-"],
            capture_output=True,
            text=True,
        )
        if decoded.returncode != 0 or decoded.stderr:
            return False
    return True


RUN_ONE = (
    "import sys; from catalog import Catalog; from nebulacore.config import load_settings; "
    "from transcoder.pipeline import transcode_asset; s = load_settings(); "
    "transcode_asset(s, Catalog.from_settings(s), sys.argv[1], sys.argv[2])"
)


def part_three(source: Path, work: Path, seconds: float) -> tuple[float, float, int]:
    """(full live transcode wall, the rerun after a kill at 80 % wall, where it resumed)."""
    from catalog import Catalog
    from catalog.assets import record_upload
    from nebulacore.s3 import backend_client, ensure_buckets
    from transcoder.live import resume_step
    from transcoder.pipeline import transcode_asset

    work.mkdir(parents=True, exist_ok=True)
    seaweed = start_seaweed(work / "storage")
    try:
        env = {
            **environ_without(),
            **seaweed.env,
            "NEBULA_DATA_DIR": str(work / "data"),
            "NEBULA_DATABASE_URL": f"sqlite:///{work / 'catalog.db'}",
            "NEBULA_HWACCEL": "none",
            "NEBULA_LOG_LEVEL": "WARNING",
        }
        settings = load_settings(env)
        client = backend_client(settings)
        ensure_buckets(client, ["media", settings.hls_bucket])
        client.upload_file(str(source), "media", "bench.mp4")
        catalog = Catalog.from_settings(settings)
        catalog.upgrade()
        with catalog.session() as session:
            asset, _ = record_upload(session, "media", "bench.mp4", None, None, None)
            asset_id = asset.id
        full = measure(lambda: transcode_asset(settings, catalog, asset_id, "v1"))
        child = subprocess.Popen(
            [sys.executable, "-c", RUN_ONE, asset_id, "v2"], env=env, start_new_session=True
        )
        segments = math.ceil(seconds / settings.segment_seconds)
        while (
            child.poll() is None
            and _published(client, settings.hls_bucket, asset_id) < 0.8 * segments
        ):
            time.sleep(0.1)
        if child.poll() is not None:
            raise RuntimeError("the transcode to kill ended first")
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        step = resume_step(settings.segment_seconds, True)
        at = int(_published(client, settings.hls_bucket, asset_id)) // step * step
        rerun = measure(lambda: transcode_asset(settings, catalog, asset_id, "v2"))
        catalog.dispose()
        return full.wall, rerun.wall, at
    finally:
        seaweed.stop()


def _published(client: Any, bucket: str, asset_id: str) -> float:
    """Segments of v2 published in every rendition (the smallest count)."""
    counts = []
    for name in ("audio", "1080p", "720p", "480p", "360p", "240p"):
        key = hls.asset_key(asset_id, hls.rendition_playlist("v2", name))
        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey:
            if name in ("audio", "1080p"):
                return 0
            continue
        counts.append(len(parse_media_playlist(body.decode()).segments))
    return min(counts) if counts else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="source length")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip-e2e", action="store_true", help="no part 2")
    parser.add_argument("--skip-resume", action="store_true", help="no part 3")
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
        transcode = statistics.mean(c.wall for c in ours)
        if not args.skip_e2e:
            first, ready = part_two(source, work / "e2e", timeout=max(600.0, 10 * transcode))
            print(
                f"upload complete -> first segment of every rung decodable via the origin: "
                f"{first:.1f}s = {first / transcode:.2f}x the transcode ({transcode:.1f}s)"
            )
            print(
                f"upload complete -> ready (measured master) via the origin: {ready:.1f}s = "
                f"{ready / transcode:.2f}x the transcode  (target <= 2)"
            )
        if not args.skip_resume:
            full, rerun, at = part_three(source, work / "resume", args.seconds)
            print(
                f"killed at 80 % -> done: {rerun:.1f}s = {rerun / full:.2f}x a full live "
                f"transcode ({full:.1f}s), resumed at segment {at}  (target <= 0.40)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
