"""A real Docker engine for the Compose tests, and a Compose project to drive on it.

``engine.sh`` (tests/deploy/engine) starts Debian's dockerd with a private data root and
socket and builds the images no registry here serves; :class:`Stack` runs Debian's
``docker-compose`` on a directory holding the shipped docker-compose.yml.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from tests.services import environ_without

ROOT = Path(__file__).resolve().parents[2]
ENGINE_DIR = Path(__file__).resolve().parent / "engine"
ENGINE_SH = ENGINE_DIR / "engine.sh"
TEST_OVERRIDE = ENGINE_DIR / "docker-compose.test.yml"
WAIT_HEALTHY = ROOT / "deploy" / "wait-healthy.sh"
# Image builds on a loaded 2-core machine (and under vfs, where overlayfs is missing) are
# slow: generous bounds.
BUILD_TIMEOUT = 1800
HEALTH_TIMEOUT = 600
# docker-compose gives up on an engine call after 60 s; creating a container under vfs
# (no overlayfs) copies the whole image and took longer on a loaded machine.
COMPOSE_HTTP_TIMEOUT = "600"


def engine_host() -> str:
    return subprocess.run(
        ["bash", str(ENGINE_SH), "host"], capture_output=True, text=True, check=True
    ).stdout.strip()


def engine_answers(host: str) -> bool:
    result = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        env={**os.environ, "DOCKER_HOST": host},
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def engine_up() -> bool:
    """Start the engine and build the stand-in images; True when this call started dockerd."""
    host = engine_host()
    was_running = engine_answers(host)
    result = subprocess.run(
        ["bash", str(ENGINE_SH), "images"],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"engine.sh images failed:\n{result.stderr[-4000:]}"
    return not was_running


def engine_stop() -> None:
    subprocess.run(["bash", str(ENGINE_SH), "stop"], capture_output=True, timeout=120, check=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def copy_tracked_tree(target: Path) -> None:
    """The repository's files as a fresh clone of this tree has them (no build output,
    no .env, no data/): what git tracks plus new files it does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def filled_env(example: str, values: dict[str, str]) -> str:
    """.env.example with its placeholders filled and ``values`` set, as a user writes .env."""
    lines = []
    for line in example.splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            if name in values:
                value = values[name]
            elif value == "__random__":
                value = secrets.token_hex(24)
            elif value == "__fernet__":
                value = Fernet.generate_key().decode()
            elif value == "__render_gid__":
                value = "993"
            line = f"{name}={value}"
        lines.append(line)
    return "\n".join(lines) + "\n"


@dataclass
class Stack:
    """A Compose project in ``path`` on the test engine, driven with docker-compose."""

    path: Path
    project: str
    docker_host: str
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        env = environ_without("NEBULA_", "COMPOSE_")
        env.update(DOCKER_HOST=self.docker_host, COMPOSE_PROJECT_NAME=self.project)
        env.update(COMPOSE_HTTP_TIMEOUT=COMPOSE_HTTP_TIMEOUT)
        env.update(self.extra_env)
        return env

    def compose(
        self, *args: str, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["docker-compose", *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check:
            assert result.returncode == 0, f"docker-compose {' '.join(args)}:\n{result.stderr}"
        return result

    def docker(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["docker", *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert result.returncode == 0, f"docker {' '.join(args)}:\n{result.stderr}"
        return result

    def up(self) -> None:
        self.compose("up", "-d", "--build", "--remove-orphans", timeout=BUILD_TIMEOUT)
        self.wait_healthy()

    def wait_healthy(self, timeout: int = HEALTH_TIMEOUT) -> str:
        """deploy/wait-healthy.sh, the deploy hook's own wait, on this project."""
        result = subprocess.run(
            ["bash", str(WAIT_HEALTHY), str(timeout)],
            cwd=self.path,
            env={**self.env, "NEBULA_DEPLOY_COMPOSE": "docker-compose"},
            capture_output=True,
            text=True,
            timeout=timeout + 120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr + self.logs()
        return result.stdout

    def container(self, service: str) -> str:
        container_id = self.compose("ps", "-q", service).stdout.strip()
        assert container_id, f"no container for {service}"
        return container_id

    def inspect(self, service: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(
            self.docker("inspect", self.container(service)).stdout
        )
        return data[0]

    def exec(self, service: str, *argv: str, timeout: float = 120) -> str:
        """Run ``argv`` in the running service container (docker-compose exec -T)."""
        return self.compose("exec", "-T", service, *argv, timeout=timeout).stdout

    def logs(self, *services: str) -> str:
        result = self.compose("logs", "--no-color", "--tail", "60", *services, check=False)
        return "\n--- compose logs ---\n" + result.stdout[-8000:]

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", timeout=300, check=False)


# --- what a user does with a running stack -------------------------------------------------


@dataclass(frozen=True)
class Key:
    access: str
    secret: str


def create_key(stack: Stack, name: str) -> Key:
    """``docker compose exec s3proxy nebula keys create``, as docs/deployment.md says."""
    out = stack.exec("s3proxy", "nebula", "keys", "create", "--name", name, "--admin")
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return Key(fields["access key"].strip(), fields["secret key"].strip())


def aws_s3(port: int, key: Key, *args: str) -> subprocess.CompletedProcess[str]:
    """The aws CLI on the host against the published S3 port."""
    env = environ_without("NEBULA_", "AWS_")
    env.update(
        AWS_ACCESS_KEY_ID=key.access,
        AWS_SECRET_ACCESS_KEY=key.secret,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
    )
    return subprocess.run(
        ["aws", "--endpoint-url", f"http://127.0.0.1:{port}", "s3", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def asset_of(stack: Stack, bucket: str, key: str) -> dict[str, Any] | None:
    listed: list[dict[str, Any]] = json.loads(
        stack.exec("s3proxy", "nebula", "assets", "list", "--json")
    )
    for asset in listed:
        if asset["bucket"] == bucket and asset["key"] == key:
            shown: dict[str, Any] = json.loads(
                stack.exec("s3proxy", "nebula", "assets", "show", asset["id"], "--json")
            )
            return shown
    return None


def wait_ready(stack: Stack, bucket: str, key: str, timeout: float = 900) -> dict[str, Any]:
    """Poll the catalog (through the s3proxy container) until the upload's ladder is ready."""
    deadline = time.monotonic() + timeout
    asset = None
    while time.monotonic() < deadline:
        asset = asset_of(stack, bucket, key)
        if asset is not None and asset["status"] == "ready":
            return asset
        assert asset is None or asset["status"] != "failed", asset
        time.sleep(3)
    raise AssertionError(f"{bucket}/{key} not ready after {timeout:.0f}s: {asset}" + stack.logs())


def master_url(stack: Stack, asset_id: str) -> str:
    return stack.exec("s3proxy", "nebula", "assets", "url", asset_id).strip()


def play(url: str) -> int:
    """Decode the whole master playlist with ffmpeg; the number of video frames decoded."""
    result = subprocess.run(
        [
            *("ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", url, "-map", "0:v:0"),
            *("-f", "null", "-", "-progress", "pipe:1"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    frames = [int(line[6:]) for line in result.stdout.splitlines() if line.startswith("frame=")]
    assert frames and frames[-1] > 0, result.stdout
    return frames[-1]
