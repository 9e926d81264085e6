"""Watchable while transcoding: segments published as ffmpeg makes them, the provisional
master, overwrites that keep the old ladder, and a killed job resumed from storage.

Everything real: SeaweedFS, ffmpeg, the worker as a subprocess (SIGKILLed), ``nebula
origin`` and ffmpeg as the player. Storage is watched from the test while the job runs,
and the invariant is checked at every observation: a listed segment is complete.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from catalog import Asset, AssetStatus, Job, JobStatus
from catalog.models import utcnow
from nebulacore import hls
from nebulacore.s3 import backend_client, iter_objects
from nebulaqueue.relay import relay_pending
from tests.rows import existing
from tests.services import alive, descendants
from tests.stacks import start_origin
from tests.transcoder.conftest import Env
from tests.transcoder.test_pipeline import stream_infs
from tests.transcoder.test_worker import _cmdline, wait_for
from tests.transcoder.test_worker import workers as workers  # a fixture
from transcoder.pipeline import transcode_asset
from transcoder.playlist import parse_media_playlist
from transcoder.samples import make_source
from transcoder.tasks import tasks_for
from transcoder.work import run_job

RENDITIONS = ["360p", "240p", "144p", "audio"]  # tests.transcoder.conftest.TEST_LADDER
PACKET_TIMES = ["ffprobe", "-v", "error", "-show_entries", "packet=pts_time"]
PACKET_TIMES += ["-of", "csv=p=0"]
PLAY_TO_NOTHING = ["-f", "null", "-", "-progress", "pipe:1"]


@dataclass
class Observation:
    at: float
    running: bool
    master: str | None
    playlists: dict[str, str]  # rendition -> playlist text (absent: not published yet)
    status: AssetStatus
    progress: float  # of the asset's latest job, as the catalog has it


@dataclass
class Watcher:
    """Reads what a viewer would read, again and again, and checks every listed segment."""

    env: Env
    asset_id: str
    version: str
    scratch: Path
    observations: list[Observation] = field(default_factory=list)
    checked: set[str] = field(default_factory=set)  # segment keys fetched and decoded

    def __post_init__(self) -> None:
        self.client = backend_client(self.env.settings)
        self.bucket = self.env.settings.hls_bucket

    def read(self, key: str) -> bytes | None:
        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except self.client.exceptions.NoSuchKey:
            return None

    def observe(self, running: bool, check: bool = True) -> Observation:
        with self.env.catalog.session() as session:
            asset = existing(session, Asset, self.asset_id)
            status, progress = asset.status, asset.jobs[-1].progress
        master = self.read(hls.asset_key(self.asset_id, hls.MASTER))
        playlists = {}
        for name in RENDITIONS:
            key = hls.asset_key(self.asset_id, hls.rendition_playlist(self.version, name))
            body = self.read(key)
            if body is not None:
                playlists[name] = body.decode()
                if check:
                    self.check_listed(name, playlists[name])
        seen = Observation(
            time.monotonic(),
            running,
            master.decode() if master else None,
            playlists,
            status,
            progress,
        )
        self.observations.append(seen)
        return seen

    def check_listed(self, rendition: str, text: str) -> None:
        """Every segment the playlist lists is in storage, whole: it decodes, alone with
        its init segment, with no error."""
        playlist = parse_media_playlist(text)
        base = hls.asset_key(self.asset_id, f"{self.version}/{rendition}")
        for segment in playlist.segments:
            key = f"{base}/{segment.uri}"
            if key in self.checked:
                continue
            body = self.read(key)
            assert body is not None, f"{key} is listed but not in storage"
            init = self.read(f"{base}/{playlist.init}") if playlist.init else b""
            assert init is not None, f"{rendition}'s init segment is listed but not in storage"
            sample = self.scratch / f"{rendition}-{segment.uri}.mp4"
            sample.write_bytes(init + body)
            decoded = subprocess.run(
                ["ffmpeg", "-v", "error", "-i", str(sample), "-f", "null", "-"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert decoded.returncode == 0 and not decoded.stderr, (key, decoded.stderr)
            self.checked.add(key)

    def watch(self, work: Callable[[], Any], interval: float = 0.2) -> Any:
        """Run ``work`` in a thread and observe storage until it returns (and once after)."""
        result: list[Any] = []
        thread = threading.Thread(target=lambda: result.append(work()), daemon=True)
        thread.start()
        while thread.is_alive():
            self.observe(running=True)
            time.sleep(interval)
        thread.join()
        self.observe(running=False)
        assert result, "the job raised"
        return result[0]


def bandwidths(master: str) -> list[int]:
    return [int(attributes["BANDWIDTH"]) for attributes, _ in stream_infs(master)]


def growth_of(observations: list[Observation], rendition: str) -> list[list[str]]:
    lists = []
    for seen in observations:
        if rendition in seen.playlists:
            lists.append([s.uri for s in parse_media_playlist(seen.playlists[rendition]).segments])
    return lists


def test_playlists_grow_and_every_listed_segment_is_complete(make_env, tmp_path: Path) -> None:
    env: Env = make_env()
    source = make_source(tmp_path / "clip.mp4", seconds=30, size="640x360", rate=30)
    asset_id, job_id = env.upload(source)
    version = hls.version_name(job_id)
    watcher = Watcher(env, asset_id, version, tmp_path)

    assert watcher.watch(lambda: run_job(env.settings, env.catalog, job_id)) == "done"

    final = watcher.observations[-1]
    for name in RENDITIONS:
        lists = growth_of(watcher.observations, name)
        # Append only: each observation extends the previous one.
        for before, after in itertools.pairwise(lists):
            assert after[: len(before)] == before
        # Seen part-way while the job ran, then longer: it grew (however fast the machine).
        assert any(0 < len(listed) < len(lists[-1]) for listed in lists), f"{name} never grew"
        growing = [o for o in watcher.observations if name in o.playlists and o.running]
        assert any(hls.is_growing(o.playlists[name]) for o in growing)
        text = final.playlists[name]
        assert not hls.is_growing(text) and "#EXT-X-PLAYLIST-TYPE:EVENT" in text
        # Byte for byte, an EVENT viewer's playlist was only appended to (RFC 8216 6.2.1),
        # across the end too: what was read while growing is a prefix of the ended one.
        texts = [o.playlists[name] for o in watcher.observations if name in o.playlists]
        for earlier, later in itertools.pairwise(texts):
            assert later.startswith(earlier), (name, earlier, later)
        # New viewers get a VOD playlist of the same segments, written at the end.
        vod_text = watcher.read(
            hls.asset_key(asset_id, hls.rendition_playlist(version, name, hls.VOD_PLAYLIST))
        )
        assert vod_text is not None
        vod = parse_media_playlist(vod_text.decode())
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in vod_text.decode() and vod.ended
        assert vod.segments == parse_media_playlist(text).segments and vod.init is not None
    # Growing playlists are cached for a second, ended ones forever.
    head = watcher.client.head_object(
        Bucket=watcher.bucket, Key=hls.asset_key(asset_id, hls.rendition_playlist(version, "360p"))
    )
    assert head["CacheControl"] == hls.IMMUTABLE

    # The master came while ffmpeg ran, with the rungs' targets (video cap + 128k audio),
    # and the asset was already playable; the measured master replaced it at the end.
    early = [o for o in watcher.observations if o.running and o.master]
    assert early, "no master before the job ended"
    provisional = early[0].master
    assert provisional is not None and hls.VOD_PLAYLIST not in provisional
    assert bandwidths(provisional) == [
        500 * 1100 + 128000,
        300 * 1100 + 128000,
        150 * 1100 + 128000,
    ]
    assert any(o.status == AssetStatus.PLAYABLE for o in early)
    assert final.master is not None and final.master != provisional
    with env.catalog.session() as session:
        asset = existing(session, Asset, asset_id)
        assert asset.status == AssetStatus.READY
        peaks = {r.name: r.bandwidth for r in asset.renditions}
    assert bandwidths(final.master) == [peaks[n] + peaks["audio"] for n in RENDITIONS[:3]]
    # The measured master points at the VOD playlists only.
    assert [uri for _, uri in stream_infs(final.master)] == [
        hls.rendition_playlist(version, n, hls.VOD_PLAYLIST) for n in RENDITIONS[:3]
    ]
    assert hls.MEDIA_PLAYLIST not in final.master
    # Every segment of the final ladder was checked at the moment it was listed.
    listed = {
        hls.asset_key(asset_id, f"{version}/{name}/{uri}")
        for name in RENDITIONS
        for uri in growth_of([final], name)[0]
    }
    assert listed <= watcher.checked


def test_overwrite_keeps_serving_the_old_master_until_the_new_one_is_complete(
    make_env, tmp_path: Path
) -> None:
    env: Env = make_env()
    source = make_source(tmp_path / "clip.mp4", seconds=20, size="640x360", rate=30)
    asset_id, first_job = env.upload(source, key="same.mp4")
    assert run_job(env.settings, env.catalog, first_job) == "done"
    old_master = Watcher(env, asset_id, "", tmp_path).read(hls.asset_key(asset_id, hls.MASTER))
    assert old_master is not None and f"v{first_job}/" in old_master.decode()

    again = make_source(tmp_path / "again.mp4", seconds=20, size="640x360", rate=25)
    same_asset, second_job = env.upload(again, key="same.mp4")
    assert same_asset == asset_id
    watcher = Watcher(env, asset_id, hls.version_name(second_job), tmp_path)
    assert watcher.watch(lambda: run_job(env.settings, env.catalog, second_job)) == "done"

    final = watcher.observations[-1].master
    assert final is not None and f"v{second_job}/" in final
    # Segments of the new version were published while it ran ...
    assert any(o.running and o.playlists for o in watcher.observations)
    # ... but viewers were only ever given the old complete master or the new complete one.
    assert {o.master for o in watcher.observations} <= {old_master.decode(), final}
    assert all(o.status != AssetStatus.PLAYABLE for o in watcher.observations)
    # The old version stays for the players that loaded its master (retention, swept later).
    assert any(key.startswith(f"{asset_id}/v{first_job}/") for key in env.hls_keys(asset_id))


# ----- resume -----------------------------------------------------------------------------


def objects(env: Env, prefix: str) -> dict[str, tuple[str, Any]]:
    client = backend_client(env.settings)
    return {
        o["Key"]: (o["ETag"], o["LastModified"])
        for o in iter_objects(client, env.settings.hls_bucket, prefix)
    }


def segment_starts(folder: Path, rendition: str, scratch: Path) -> list[tuple[float, float]]:
    """(first presentation time, playlist duration) of every segment of a downloaded
    rendition, each probed alone with its init segment."""
    playlist = parse_media_playlist((folder / rendition / hls.MEDIA_PLAYLIST).read_text())
    assert playlist.init is not None
    init = (folder / rendition / playlist.init).read_bytes()
    found = []
    for segment in playlist.segments:
        sample = scratch / f"{rendition}-{segment.uri}.mp4"
        sample.write_bytes(init + (folder / rendition / segment.uri).read_bytes())
        packets = subprocess.run(
            [*PACKET_TIMES, str(sample)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.split()
        found.append((min(float(line.strip(",")) for line in packets), segment.duration))
    return found


def test_killed_job_resumes_at_the_first_unpublished_segment(
    make_env, workers, tasks_module, tmp_path: Path
) -> None:
    env: Env = make_env(job_lease_seconds=10)
    pool = workers(env)
    source = make_source(tmp_path / "long.mp4", seconds=40, size="640x360", rate=30)
    asset_id, job_id = env.upload(source)
    version = hls.version_name(job_id)
    watcher = Watcher(env, asset_id, version, tmp_path)
    relay_pending(env.catalog, tasks_for(env.settings).enqueue)
    worker = pool.start()

    def published_twice() -> bool:
        seen = watcher.observe(running=True, check=False)  # quick: catch it early
        counts = [len(parse_media_playlist(seen.playlists.get(n, "")).segments) for n in RENDITIONS]
        return min(counts) >= 2

    wait_for(published_twice, "two segments of every rendition", 180, pool.logs)
    ffmpegs = {p for p in descendants(worker.pid) if "-progress" in _cmdline(p)}
    os.killpg(worker.pid, signal.SIGKILL)  # the worker and its ffmpeg, without warning
    worker.wait()
    wait_for(lambda: not any(alive(p) for p in ffmpegs), "ffmpeg to die", 10, pool.logs)
    assert job(env, job_id).status == JobStatus.RUNNING  # nobody told the catalog
    before = objects(env, f"{asset_id}/{version}/")
    stored = {
        n: parse_media_playlist(
            (watcher.read(f"{asset_id}/{version}/{n}/index.m3u8") or b"").decode()
        )
        for n in RENDITIONS
    }
    # The first segment some rendition lacks, on an 8 s boundary (the AAC frame grid).
    resume_at = min(len(p.segments) for p in stored.values()) // 2 * 2
    assert 2 <= resume_at < 10, "the kill came too late to test resuming"

    # The lease runs out (a killed worker renews nothing); the job is claimable again.
    wait_for(lambda: lease_expired(env, job_id), "the lease to expire", 30, pool.logs)
    argv: list[str] = []

    def spy() -> None:  # the resumed ffmpeg's command line, read from /proc
        while not argv:
            for pid in descendants(os.getpid()):
                line = _cmdline(pid)
                if "-progress" in line and "ffmpeg" in line:
                    argv.extend(line.split("\0"))
            time.sleep(0.05)

    threading.Thread(target=spy, daemon=True).start()
    watched = len(watcher.observations)
    assert watcher.watch(lambda: run_job(env.settings, env.catalog, job_id)) == "done"
    # Progress counts from the source's start: the resumed part is the rest of it.
    reported = [o.progress for o in watcher.observations[watched:] if o.running]
    assert any(resume_at * 4 / 40 * 100 <= p < 100 for p in reported), reported
    assert argv, "no ffmpeg seen"
    assert argv[argv.index("-ss") + 1] == str(resume_at * 4)
    assert argv[argv.index("-start_number") + 1] == str(resume_at)
    # The published timeline's shift (the B-frame delay, 2 frames at 30 fps) carried on.
    offset = float(argv[argv.index("-output_ts_offset") + 1])
    assert offset == pytest.approx(resume_at * 4 + 2 / 30, abs=1e-5)

    # What was published before the kill was not uploaded again (same ETag, same time).
    # (A segment uploaded but not listed yet when the worker died is no viewer's: it may
    # be uploaded again.)
    after = objects(env, f"{asset_id}/{version}/")
    listed = [
        f"{asset_id}/{version}/{name}/{uri}"
        for name, playlist in stored.items()
        for uri in [playlist.init, *(s.uri for s in playlist.segments)]
    ]
    assert len(listed) >= 2 * len(RENDITIONS)
    for key in listed:
        assert after[key] == before[key], key

    # The same ladder as a transcode from zero of the same source: same files, durations.
    ladder = env.download_ladder(asset_id, tmp_path / "resumed")
    other_id, _ = env.upload(source, key="fresh.mp4")
    fresh = transcode_asset(env.settings, env.catalog, other_id)
    zero = env.download_ladder(other_id, tmp_path / "zero")
    resumed_files = sorted(
        p.relative_to(ladder / version).as_posix() for p in (ladder / version).rglob("*")
    )
    zero_files = sorted(
        p.relative_to(zero / fresh.ladder.version).as_posix()
        for p in (zero / fresh.ladder.version).rglob("*")
    )
    assert resumed_files == zero_files
    for name in RENDITIONS:
        ours = parse_media_playlist((ladder / version / name / "index.m3u8").read_text())
        theirs = parse_media_playlist(
            (zero / fresh.ladder.version / name / "index.m3u8").read_text()
        )
        assert [s.uri for s in ours.segments] == [s.uri for s in theirs.segments]
        assert [round(s.duration, 3) for s in ours.segments] == [
            round(s.duration, 3) for s in theirs.segments
        ]

    # Timestamps run on across the resume point in every rendition: each segment starts
    # where the previous one ended (its start + its EXTINF, the same as from zero).
    for name in RENDITIONS:
        starts = segment_starts(ladder / version, name, tmp_path)
        tolerance = 0.001
        for (start, duration), (following, _) in itertools.pairwise(starts):
            assert abs(start + duration - following) <= tolerance, (name, starts)
        assert starts[resume_at][0] == pytest.approx(resume_at * 4, abs=0.1)

    # And the whole ladder plays, end to end, with the right duration.
    assert play(str(ladder / "master.m3u8")) == pytest.approx(40.0, abs=0.5)


def job(env: Env, job_id: int) -> Job:
    with env.catalog.session() as session:
        return existing(session, Job, job_id)


def lease_expired(env: Env, job_id: int) -> bool:
    expires = job(env, job_id).lease_expires_at
    return expires is not None and expires < utcnow()


def play(target: str, *options: str) -> float:
    """Decode ``target`` (highest video variant + audio) to nothing; the seconds played.
    Fails on any error ffmpeg reports."""
    result = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", *options, "-i", target, *PLAY_TO_NOTHING],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr[-2000:]
    times = re.findall(r"^out_time_us=(\d+)$", result.stdout, re.MULTILINE)
    return int(times[-1]) / 1_000_000


# ----- a player through the origin, started mid-transcode -----------------------------


def test_a_player_started_mid_transcode_plays_to_the_end(make_env, tmp_path: Path) -> None:
    env: Env = make_env()
    origin = start_origin(tmp_path, env.env_vars())
    try:
        # 60 s of video: the job is still running when the player joins on a quiet machine.
        source = make_source(tmp_path / "clip.mp4", seconds=60, size="640x360", rate=30)
        asset_id, job_id = env.upload(source)
        outcome: list[str] = []
        runner = threading.Thread(
            target=lambda: outcome.append(run_job(env.settings, env.catalog, job_id)),
            daemon=True,
        )
        runner.start()
        watcher = Watcher(env, asset_id, hls.version_name(job_id), tmp_path)
        wait_for(
            lambda: watcher.observe(True, check=False).status == AssetStatus.PLAYABLE,
            "the asset to become playable",
            120,
            origin.log,
        )
        assert runner.is_alive(), "the transcode ended before the player could start"
        # EVENT playlists start at their beginning (not ffmpeg's live edge: -live_start_index).
        played = play(f"{origin.url}/hls/{asset_id}/master.m3u8", "-live_start_index", "0")
        runner.join(timeout=120)
        assert outcome == ["done"]
        assert played == pytest.approx(60.0, abs=0.5)
    finally:
        origin.stop()
