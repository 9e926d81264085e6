"""``nebula up`` killed with SIGKILL leaves nothing running, and a start that finds an
earlier run's leftovers names them (and stops them when asked)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import boto3

from nebula.leftovers import Proc, RunDirectory, start_time
from tests.harness import nebula_argv, spawn, wait_listening
from tests.services import alive, descendants, still_alive
from tests.stacks import NebulaUp, nebula_up_env, start_nebula_up
from transcoder.samples import make_source

UP = "Nebula is up."


def kill_all(pids: set[int]) -> None:
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def transcoding(up: NebulaUp, source: Path) -> set[int]:
    """Upload ``source`` through the printed endpoint; the tree once ffmpeg runs in it."""
    s3 = boto3.client(
        "s3",
        endpoint_url=up.value("S3 endpoint"),
        aws_access_key_id=up.value("access key"),
        aws_secret_access_key=up.value("secret key"),
        region_name="us-east-1",
    )
    s3.upload_file(str(source), "media", "long.mp4")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        tree = descendants(up.process.pid)
        if any(command_name(pid) == "ffmpeg" for pid in tree):
            return tree
        time.sleep(0.2)
    raise AssertionError(f"no ffmpeg started for the upload:\n{up.text}")


def test_sigkilled_up_takes_its_children_along_and_holds_its_data_dir(tmp_path: Path) -> None:
    source = make_source(tmp_path / "long.mp4", seconds=60, size="640x360")
    first = start_nebula_up(tmp_path)
    tree: set[int] = set()
    try:
        first.wait_for(UP)
        # storage, s3proxy, origin (and its forked workers), worker, and the worker's ffmpeg
        tree = transcoding(first, source)
        assert len(tree) >= 5, tree

        second = start_nebula_up(tmp_path)
        assert second.process.wait(timeout=60) == 1
        time.sleep(0.2)
        assert f"another `nebula up` (pid {first.process.pid}) is running" in second.text
        assert all(alive(p) for p in tree), "the refused start touched the running one"

        first.process.kill()  # SIGKILL: no chance to stop anything itself
        first.process.wait(timeout=10)
        assert still_alive(tree) == set(), "children outlived a SIGKILLed nebula up"
    finally:
        if first.process.poll() is None:
            first.process.kill()
        kill_all(tree)

    # Nothing is left to collide with: the next start on the same data dir just works.
    again = start_nebula_up(tmp_path, {k: first.env[k] for k in ("NEBULA_STORAGE_PORT",)})
    try:
        again.wait_for(UP)
        assert "leftovers" not in again.text
    finally:
        children = descendants(again.process.pid)
        again.interrupt(timeout=30)
        kill_all(children)


def test_start_names_leftovers_and_stops_them_when_asked(tmp_path: Path) -> None:
    """An s3proxy that an earlier run left behind (an older Nebula without the death signal,
    or a child that survived it) holds the port: the start says so instead of failing later
    with "address already in use"."""
    env = nebula_up_env()
    data = tmp_path / "data"
    port = int(env["NEBULA_S3PROXY_PORT"])
    argv = nebula_argv("s3proxy", "--data-dir", str(data))
    spawned = spawn("leftover s3proxy", argv, env, tmp_path / "leftover.log", port=port)
    leftover = spawned.process
    try:
        wait_listening(spawned)
        started = start_time(leftover.pid)
        assert started is not None
        run = RunDirectory(data)
        run.path.mkdir(parents=True, exist_ok=True)
        run.write([Proc("s3proxy", leftover.pid, started)])

        refused = start_nebula_up(tmp_path, {k: env[k] for k in env if k.startswith("NEBULA_")})
        assert refused.process.wait(timeout=60) == 1
        time.sleep(0.2)
        assert f"s3proxy (pid {leftover.pid})" in refused.text
        assert "nebula up --stop-leftovers" in refused.text
        assert alive(leftover.pid), "a start without --stop-leftovers must not kill anything"

        cleaned = start_nebula_up(
            tmp_path, {k: env[k] for k in env if k.startswith("NEBULA_")}, "--stop-leftovers"
        )
        try:
            cleaned.wait_for(UP)
            assert f"stopping leftovers of an earlier nebula up: s3proxy (pid {leftover.pid})" in (
                cleaned.text
            )
            assert leftover.wait(timeout=10) is not None
        finally:
            children = descendants(cleaned.process.pid)
            cleaned.interrupt(timeout=30)
            kill_all(children)
    finally:
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait()


def test_a_recycled_pid_is_never_taken_for_a_leftover(tmp_path: Path) -> None:
    """The record holds each process's kernel start time: a pid now used by an unrelated
    process (here: this test itself, with a different start time) is not a leftover."""
    run = RunDirectory(tmp_path)
    run.path.mkdir(parents=True)
    mine = start_time(os.getpid())
    assert mine is not None
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        sleeper_start = start_time(sleeper.pid)
        assert sleeper_start is not None
        run.write([Proc("worker", sleeper.pid, sleeper_start + 1), Proc("origin", 999_999_999, 1)])
        assert run.leftovers() == []
        run.write([Proc("worker", sleeper.pid, sleeper_start)])
        assert run.leftovers() == [Proc("worker", sleeper.pid, sleeper_start)]
    finally:
        sleeper.kill()
        sleeper.wait()
