"""``nebula up`` end to end: starts everything, answers, stops cleanly, reuses its data."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from sqlalchemy import select

from catalog import Catalog, Job, JobStatus
from catalog.models import utcnow
from nebula.embedded import AdminKey, announcement
from nebulacore.config import load_settings
from tests.services import (
    alive,
    assert_nothing_for_others,
    command_line,
    descendants,
    parent_pid,
    still_alive,
)
from tests.stacks import NebulaUp, start_nebula_up
from transcoder.samples import make_source

# nebula up's children, by what their command lines hold (the origin's forked workers have
# the origin's; the storage is SeaweedFS's `weed mini` itself).
ROLES = {
    "storage": "weed mini",
    **{role: f"-m nebula {role}" for role in ("s3proxy", "origin", "worker")},
}


def nebula(up: NebulaUp, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nebula", *args, "--data-dir", str(up.workdir / "data")],
        env=up.env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=up.workdir,
    )


def wait_status_ok(up: NebulaUp, timeout: float = 120) -> dict[str, dict[str, object]]:
    deadline = time.monotonic() + timeout
    while True:
        result = nebula(up, "status", "--json")
        report = json.loads(result.stdout)
        if result.returncode == 0 or time.monotonic() > deadline:
            return report
        time.sleep(1)


def assert_status_ok_from_another_shell(up: NebulaUp) -> None:
    elsewhere = up.workdir / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    bare = {k: v for k, v in up.env.items() if not k.startswith("NEBULA_")}
    data = str(up.workdir / "data")
    result = subprocess.run(
        [sys.executable, "-m", "nebula", "status", "--data-dir", data],
        env=bare,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=elsewhere,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f":{up.env['NEBULA_S3PROXY_PORT']}/healthz answered 200" in result.stdout


PLAIN_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ", re.M)


def assert_quiet_uniform_log(text: str) -> None:
    """Off a terminal every log line is JSON (none plain), without alembic's INFO steps,
    and a machine without a GPU is told in one INFO line, not warnings."""
    assert not PLAIN_LOG_LINE.search(text), text
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert records and not [r for r in records if r["logger"].startswith("alembic")]
    hardware = [r for r in records if r["logger"] == "transcoder.hwaccel"]
    assert [(r["level"], r["msg"].split(" (")[0]) for r in hardware] == [
        ("info", "no Intel GPU found")
    ], hardware


def assert_lean_supervisor(pid: int) -> None:
    """``nebula up`` lives as long as the stack: the catalog, the web stack and the
    certificate maker are its children's, never loaded in it (their compiled parts would
    show in its memory map)."""
    mapped = Path(f"/proc/{pid}/maps").read_text()
    for library in ("sqlalchemy", "aiohttp", "cryptography", "uvloop", "alembic"):
        assert f"/{library}/" not in mapped, library


def assert_all_gone(pids: set[int]) -> None:
    """Every one of ``pids`` exits after Ctrl-C; the wait is a guard against a hang only."""
    left = {pid: command_line(pid) for pid in still_alive(pids)}
    assert not left, f"did not stop after Ctrl-C: {left}"


def ctrl_c(up: NebulaUp, guard: float = 120) -> int:
    """SIGINT to ``nebula up``; its exit code. ``guard`` ends a hang, it is no speed bound."""
    try:
        return up.interrupt(timeout=guard)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"nebula up did not stop after Ctrl-C:\n{up.text}") from None


def roles(pids: set[int]) -> set[str]:
    """Which of nebula up's children ``pids`` are, read from their command lines."""
    lines = [command_line(pid) for pid in pids]
    return {role for role in ROLES for line in lines if ROLES[role] in line}


def stop_everything(up: NebulaUp) -> None:
    """After a failed assertion: stop ``nebula up`` and leave none of its children running."""
    children = descendants(up.process.pid)
    try:
        up.interrupt()
    except subprocess.TimeoutExpired:
        up.process.kill()
    for pid in children:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def assert_private(data: Path) -> None:
    """What ``nebula up`` writes is its user's alone: 0700 directories, 0600 files."""
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("catalog.db", "queue.db", "secret.key", "storage/credentials.json"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    volumes = list((data / "storage" / "data").glob("*.dat"))
    assert volumes, "no SeaweedFS volume after an upload"
    for path in volumes:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    # Whatever else the services made (cache, work dirs, logs, sockets): nothing for others.
    assert_nothing_for_others(data)


@pytest.mark.slow
def test_up_serves_stops_cleanly_and_reuses_data(tmp_path: Path) -> None:
    up = start_nebula_up(tmp_path)
    try:
        up.wait_for("Press Ctrl-C to stop.")
        access_key, secret = up.value("access key"), up.value("secret key")
        assert up.value("S3 endpoint") == f"http://127.0.0.1:{up.env['NEBULA_S3PROXY_PORT']}"
        assert "aws --endpoint-url" in up.text and "s3://media/" in up.text

        report = wait_status_ok(up)
        down = {name: part for name, part in report.items() if not part["ok"]}
        assert not down, f"parts down: {down}\nnebula up printed:\n{up.text}"
        # Another shell, another directory, none of its variables: the data dir says where.
        assert_status_ok_from_another_shell(up)
        assert_quiet_uniform_log(up.text)
        assert_lean_supervisor(up.process.pid)
        # The printed endpoint and admin key work with an unchanged S3 client.
        s3 = boto3.client(
            "s3",
            endpoint_url=up.value("S3 endpoint"),
            aws_access_key_id=access_key,
            aws_secret_access_key=secret,
            region_name="us-east-1",
        )
        s3.put_object(Bucket="media", Key="hello.txt", Body=b"hello nebula")
        s3.create_bucket(Bucket="movies")  # not transcoded: the next start says so
        assert s3.get_object(Bucket="media", Key="hello.txt")["Body"].read() == b"hello nebula"
        assert "printed this once" in up.text
        assert_private(up.workdir / "data")
        origin = up.value("origin")
        with urllib.request.urlopen(origin + "/healthz", timeout=5) as response:
            assert response.status == 200

        children = descendants(up.process.pid)
        assert roles(children) == set(ROLES), {pid: command_line(pid) for pid in children}
        assert ctrl_c(up) == 0
        assert_all_gone(children)
    finally:
        if up.process.poll() is None:
            stop_everything(up)

    # A second start finds the same data: the same admin key, the catalog, the buckets.
    again = start_nebula_up(tmp_path, {k: up.env[k] for k in ("NEBULA_STORAGE_PORT",)})
    try:
        again.wait_for("Press Ctrl-C to stop.")
        assert again.value("access key") == access_key
        assert "created bucket" not in again.text
        assert "not transcoded: movies (uploads are stored only" in again.text
        assert "not transcoded" not in up.text  # media is, and hls is the output
        # The secret was printed once, when it was made; logs of later starts never hold it.
        assert secret not in again.text
        assert "nebula keys show-admin --data-dir" in again.text
        shown = nebula(again, "keys", "show-admin")
        assert shown.returncode == 0, shown.stderr
        assert f"access key: {access_key}" in shown.stdout
        assert f"secret key: {secret}" in shown.stdout
        only = nebula(again, "keys", "show-admin", "--secret-only")
        assert only.stdout == secret + "\n"
    finally:
        children = descendants(again.process.pid)
        ctrl_c(again)
        assert_all_gone(children)


@pytest.mark.slow
def test_dead_child_is_reported_and_restarted(tmp_path: Path) -> None:
    up = start_nebula_up(tmp_path)
    try:
        up.wait_for("Press Ctrl-C to stop.")
        origin_port = up.env["NEBULA_ORIGIN_PORT"]
        # The origin service itself (its workers, its own children, are replaced by it).
        victims = [
            pid
            for pid in descendants(up.process.pid)
            if b"origin" in Path(f"/proc/{pid}/cmdline").read_bytes()
            and parent_pid(pid) == up.process.pid
        ]
        assert victims
        os.kill(victims[0], signal.SIGKILL)
        up.wait_for("origin exited with status -9")
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{origin_port}/healthz", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, up.text
                time.sleep(0.5)
    finally:
        children = descendants(up.process.pid)
        ctrl_c(up)
        assert_all_gone(children)


@pytest.mark.slow
def test_a_killed_worker_job_is_requeued_at_once_and_run_by_the_restarted_worker(
    tmp_path: Path,
) -> None:
    """The supervisor sees its worker die and gives the job back: with a 10-minute lease
    and no reconcile in sight, only that release explains the second attempt."""
    up = start_nebula_up(
        tmp_path,
        {
            "NEBULA_JOB_LEASE_SECONDS": "600",
            "NEBULA_RECONCILE_SECONDS": "3600",
            "NEBULA_LADDER": "360:500,240:300,144:150",
            "NEBULA_HWACCEL": "none",
        },
    )
    catalog = Catalog(f"sqlite:///{tmp_path / 'data' / 'catalog.db'}")
    try:
        up.wait_for("Press Ctrl-C to stop.")
        s3 = up.s3()
        source = make_source(tmp_path / "slow.mp4", seconds=40, size="640x360")
        s3.upload_file(str(source), "media", "slow.mp4")
        worker = wait_until_transcoding(up, catalog)
        first = only_job(catalog)
        os.kill(worker, signal.SIGKILL)  # its ffmpeg dies with it (PR_SET_PDEATHSIG)

        up.wait_for(f"re-queued jobs [{first.id}] of the dead worker", timeout=30)
        deadline = time.monotonic() + 120
        while (row := only_job(catalog)).attempts < 2 or row.status != JobStatus.RUNNING:
            assert time.monotonic() < deadline, up.text
            time.sleep(0.3)
        assert row.lease_owner is not None and f":{worker}:" not in row.lease_owner
        assert first.lease_expires_at is not None and first.lease_expires_at > utcnow()
    finally:
        catalog.dispose()
        children = descendants(up.process.pid)
        ctrl_c(up)
        assert_all_gone(children)


def only_job(catalog: Catalog) -> Job:
    with catalog.session() as session:
        return session.scalars(select(Job)).one()


def wait_until_transcoding(up: NebulaUp, catalog: Catalog, timeout: float = 120) -> int:
    """The pid of the worker once its job is running and its ffmpeg started."""
    deadline = time.monotonic() + timeout
    while True:
        for pid in descendants(up.process.pid):
            if b"worker" not in _cmdline(pid):
                continue
            ffmpegs = [p for p in descendants(pid) if b"-progress" in _cmdline(p)]
            with catalog.session() as session:
                running = session.scalars(select(Job).where(Job.status == JobStatus.RUNNING))
                if ffmpegs and running.first() is not None:
                    return pid
        assert time.monotonic() < deadline, up.text
        time.sleep(0.3)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_up_fails_clearly_on_bad_config(tmp_path: Path) -> None:
    up = start_nebula_up(tmp_path, {"NEBULA_HWACCEL": "cuda"})
    assert up.process.wait(timeout=30) == 2
    time.sleep(0.2)
    assert "NEBULA_HWACCEL" in up.text


def test_up_refuses_a_taken_port_before_starting_anything(tmp_path: Path) -> None:
    import socket

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        up = start_nebula_up(tmp_path, {"NEBULA_S3PROXY_PORT": str(port)})
        assert up.process.wait(timeout=30) == 1
        time.sleep(0.2)
    assert "NEBULA_S3PROXY_PORT" in up.text and "not available" in up.text
    assert not (tmp_path / "data" / "storage").exists()


def test_announcement_prints_the_admin_secret_only_when_it_was_created(tmp_path: Path) -> None:
    settings = load_settings({}, data_dir=str(tmp_path / "my data"))
    first = announcement(settings, AdminKey("NKADMIN", "s3cr3t-value"))
    assert "secret key:    s3cr3t-value" in first and "AWS_SECRET_ACCESS_KEY=s3cr3t-value" in first
    later = announcement(settings, AdminKey("NKADMIN"))
    assert "NKADMIN" in later and "s3cr3t-value" not in later
    # The command it names works from any directory, spaces in the path included.
    command = f"nebula keys show-admin --data-dir '{settings.data_path}'"
    assert f"see it with: {command}" in later
    assert f"AWS_SECRET_ACCESS_KEY=$({command} --secret-only)" in later
