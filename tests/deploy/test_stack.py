"""The Compose stack for real: the shipped Dockerfile, docker-compose.yml and .env.example
built and run on a Docker engine (Debian's docker.io and docker-compose), from the tree as a
fresh clone has it. Only postgres:15, redis:7 and MinIO are stand-ins (engine/standins).

One stack serves the whole module; the tests run in file order and build on each other
(the key and the ladder made first must survive the restarts that come later).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.docker_engine import (
    ROOT,
    TEST_OVERRIDE,
    Key,
    Stack,
    asset_of,
    aws_s3,
    copy_tracked_tree,
    create_key,
    filled_env,
    free_port,
    master_url,
    play,
    wait_ready,
)
from transcoder.samples import make_source

# Builds the image on a cold machine and waits on real health: far past the default timeout.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3000)]

LONG_RUNNING = ("minio", "db", "redis", "edge", "s3proxy", "origin", "worker")
NEBULA_UID = "10001"


@dataclass
class Running:
    stack: Stack
    s3_port: int
    origin_port: int
    work: Path
    key: Key | None = None
    ladders: dict[str, str] = field(default_factory=dict)  # object key -> master URL


@pytest.fixture(scope="module")
def running(docker_engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    clone = tmp_path_factory.mktemp("clone")
    copy_tracked_tree(clone)
    s3_port, origin_port = free_port(), free_port()
    settings = {
        "S3_PORT": str(s3_port),
        "ORIGIN_PORT": str(origin_port),
        "NEBULA_S3PROXY_PUBLIC_URL": f"http://127.0.0.1:{s3_port}",
        "NEBULA_ORIGIN_PUBLIC_URL": f"http://127.0.0.1:{origin_port}",
        "DRI_DEVICE": "/dev/null",  # no GPU on the test machines (docs/deployment.md#quicksync)
    }
    # cp .env.example .env, secrets filled in.
    (clone / ".env").write_text(filled_env((ROOT / ".env.example").read_text(), settings))
    shutil.copy(TEST_OVERRIDE, clone / "docker-compose.override.yml")
    stack = Stack(clone, "nebulastack", docker_engine)
    stack.down()  # a stack left over by an interrupted run
    try:
        stack.up()
        yield Running(stack, s3_port, origin_port, tmp_path_factory.mktemp("work"))
    finally:
        stack.down()


def upload_and_play(running: Running, name: str, seconds: float) -> str:
    assert running.key is not None
    source = make_source(running.work / name, seconds=seconds, size="640x360", rate=15)
    put = aws_s3(running.s3_port, running.key, "cp", str(source), f"s3://media/{name}")
    assert put.returncode == 0, put.stderr
    asset = wait_ready(running.stack, "media", name)
    url = master_url(running.stack, asset["id"])
    assert url.startswith(f"http://127.0.0.1:{running.origin_port}/hls/{asset['id']}/")
    assert play(url) >= seconds * 15 * 0.9
    running.ladders[name] = url
    return url


def test_every_service_is_healthy_and_migrate_exited_0(running: Running) -> None:
    stack = running.stack
    for service in LONG_RUNNING:
        state = stack.inspect(service)["State"]
        assert state["Status"] == "running" and state["Health"]["Status"] == "healthy", service
    migrate = stack.inspect("migrate")
    assert migrate["State"]["Status"] == "exited" and migrate["State"]["ExitCode"] == 0
    assert "catalog at revision" in stack.compose("logs", "--no-color", "migrate").stdout
    for service in ("migrate", "edge", "s3proxy", "origin", "worker"):
        assert stack.inspect(service)["Config"]["Image"] == "nebula:local", service


def docker_proxies() -> set[tuple[str, str, str, str]]:
    """(host ip, host port, container ip, container port) of every published port on this
    host: each one is a docker-proxy process (the engine runs without iptables rules)."""
    found = set()
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if argv and argv[0].endswith("docker-proxy"):
            args = dict(zip(argv[1::2], argv[2::2], strict=False))
            found.add(
                (
                    args["-host-ip"],
                    args["-host-port"],
                    args["-container-ip"],
                    args["-container-port"],
                )
            )
    return found


def container_ip(info: dict[str, Any]) -> str:
    networks = info["NetworkSettings"]["Networks"]
    (network,) = networks.values()
    ip: str = network["IPAddress"]
    return ip


def test_only_the_edge_publishes_and_only_on_loopback(running: Running) -> None:
    stack = running.stack
    edge = stack.inspect("edge")
    edge_ip = container_ip(edge)
    store_ips = {name: container_ip(stack.inspect(name)) for name in ("minio", "db", "redis")}
    proxies = {p for p in docker_proxies() if p[2] in {edge_ip, *store_ips.values()}}
    assert proxies == {
        ("127.0.0.1", str(running.s3_port), edge_ip, "9000"),
        ("127.0.0.1", str(running.origin_port), edge_ip, "8080"),
    }
    for name in ("minio", "db", "redis"):
        info = stack.inspect(name)
        assert not info["HostConfig"]["PortBindings"], name
        assert not any(info["NetworkSettings"]["Ports"].values()), name
    # And from the host: the published ports answer on loopback only.
    listening = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True, check=True).stdout
    for port in (running.s3_port, running.origin_port):
        addresses = {
            line.split()[3]
            for line in listening.splitlines()
            if line.split()[3].endswith(f":{port}")
        }
        assert addresses == {f"127.0.0.1:{port}"}, addresses


def test_a_key_an_aws_upload_a_transcode_and_ffmpeg_plays_it(running: Running) -> None:
    running.key = create_key(running.stack, "laptop")
    assert running.key.access and running.key.secret
    upload_and_play(running, "first.mp4", seconds=6)
    listed = aws_s3(running.s3_port, running.key, "ls", "s3://media/")
    assert "first.mp4" in listed.stdout, listed.stderr


def test_the_worker_is_not_root_and_falls_back_to_libx264_saying_why(running: Running) -> None:
    stack = running.stack
    assert stack.exec("worker", "id", "-u").strip() == NEBULA_UID
    # From the host: every process of the worker container runs as the nebula user.
    top = stack.docker("top", stack.container("worker"), "-eo", "pid,uid,args").stdout
    rows = [line.split(None, 2) for line in top.splitlines()[1:]]
    assert any("nebula worker" in args for _, _, args in rows), top
    assert {uid for _, uid, _ in rows} == {NEBULA_UID}, top
    doctor = stack.exec("worker", "nebula", "doctor")
    assert "no device /dev/dri/renderD128" in doctor, doctor
    assert "NEBULA_HWACCEL=auto: the worker would encode with libx264" in doctor, doctor
    logs = stack.compose("logs", "--no-color", "worker").stdout
    assert "no Intel GPU found (/dev/dri/renderD128); encoding with libx264" in logs


def test_the_image_holds_exactly_the_pinned_packages(running: Running) -> None:
    frozen = running.stack.exec("worker", "pip", "freeze", "--all", "--exclude", "pip")
    installed = {line for line in frozen.splitlines() if not line.startswith("nebula-media")}
    lock = (ROOT / "requirements.lock").read_text().splitlines()
    pinned = {line for line in lock if line and not line.startswith("#")}
    assert installed == pinned


def still_serving(running: Running) -> None:
    """After a restart: the same key lists the bucket, every ladder made so far plays."""
    assert running.key is not None
    listed = aws_s3(running.s3_port, running.key, "ls", "s3://media/")
    assert listed.returncode == 0 and "first.mp4" in listed.stdout, listed.stderr
    for url in running.ladders.values():
        play(url)


def test_restart_keeps_keys_assets_and_ladders(running: Running) -> None:
    stack = running.stack
    stack.compose("restart", timeout=600)
    stack.wait_healthy()
    still_serving(running)


def test_down_and_up_keep_keys_assets_and_ladders(running: Running) -> None:
    stack = running.stack
    stack.compose("down", timeout=600)
    assert stack.compose("ps", "-q").stdout.strip() == ""
    stack.compose("up", "-d", timeout=600)
    stack.wait_healthy()
    still_serving(running)


def ffmpeg_running(stack: Stack) -> bool:
    top = stack.docker("top", stack.container("worker"), "-eo", "pid,args").stdout
    return any(line.split(None, 1)[1].startswith("ffmpeg") for line in top.splitlines()[1:])


def test_a_worker_killed_mid_transcode_is_restarted_and_finishes(running: Running) -> None:
    stack = running.stack
    assert running.key is not None
    name = "long.mp4"
    source = make_source(running.work / name, seconds=90, size="640x360", rate=30)
    put = aws_s3(running.s3_port, running.key, "cp", str(source), f"s3://media/{name}")
    assert put.returncode == 0, put.stderr
    deadline = time.monotonic() + 300
    while not ffmpeg_running(stack):
        assert time.monotonic() < deadline, "the worker never started ffmpeg" + stack.logs()
        time.sleep(0.2)
    before = stack.inspect("worker")
    # The container dies as on a crash or an OOM kill: its init process killed from the
    # host. Not `docker kill` or `stop`: Docker does not restart what it was told to stop.
    os.kill(before["State"]["Pid"], signal.SIGKILL)
    deadline = time.monotonic() + 300
    while True:
        after = stack.inspect("worker")
        if after["RestartCount"] > before["RestartCount"] and after["State"]["Running"]:
            break
        assert time.monotonic() < deadline, "Compose's restart policy did not restart the worker"
        time.sleep(1)
    assert after["Id"] == before["Id"]  # the same container, restarted by the engine
    asset = wait_ready(stack, "media", name)
    (job,) = [j for j in asset["jobs"] if j["kind"] == "transcode"]
    assert job["status"] == "done" and job["attempts"] == 2, asset
    assert play(master_url(stack, asset["id"])) >= 90 * 30 * 0.9
    assert asset_of(stack, "media", "first.mp4") is not None
