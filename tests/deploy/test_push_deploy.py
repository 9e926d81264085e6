"""Push-to-deploy: real ``git push`` to a bare repo set up by install-server.sh.

The hook is ``proc-receive``: main moves only once the pushed commit runs healthy, and a
failed deploy fails the push (``! [remote rejected] main -> main (deploy failed, ...)``).

``docker`` is a fake on PATH that records its arguments (with the deployed VERSION) and can
be told to fail ``compose up`` or to report a service unhealthy for one VERSION.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

FAKE_DOCKER = r"""#!/usr/bin/env bash
# Records "cwd|VERSION|argv"; FAKE_DOCKER_FAIL_UP / FAKE_DOCKER_UNHEALTHY name a VERSION;
# FAKE_DOCKER_HOLD keeps `compose up` running until the file $FAKE_DOCKER_DIR/release exists.
state=${FAKE_DOCKER_DIR:?}
version=$(cat VERSION 2>/dev/null || echo none)
echo "$PWD|$version|$*" >>"$state/calls.log"
case "$1 $2" in
  "compose up")
    mkdir "$state/busy" 2>/dev/null || echo "OVERLAP" >>"$state/calls.log"
    echo "fake compose: up $version"
    if [ -n "${FAKE_DOCKER_HOLD:-}" ]; then  # stay "busy" until the test releases us
      for _ in $(seq 600); do [ -e "$state/release" ] && break; sleep 0.05; done
    fi
    rmdir "$state/busy"
    if [ "$version" = "${FAKE_DOCKER_FAIL_UP:-}" ]; then
      echo "fake compose: build failed" >&2
      exit 1
    fi
    ;;
  "compose ps")
    printf 'c-s3proxy\nc-origin\nc-worker\nc-migrate\n'
    ;;
  inspect*)
    health=healthy
    [ "$version" = "${FAKE_DOCKER_UNHEALTHY:-}" ] && health=unhealthy
    echo "/nebula-s3proxy-1 running $health 0"
    echo "/nebula-origin-1 running healthy 0"
    echo "/nebula-worker-1 running healthy 0"
    echo "/nebula-migrate-1 exited none 0"
    ;;
esac
"""


@dataclass
class Server:
    home: Path
    repo: Path
    live: Path
    fake_dir: Path
    env: dict[str, str]
    install_output: str

    def calls(self) -> list[str]:
        path = self.fake_dir / "calls.log"
        return path.read_text().splitlines() if path.exists() else []

    def compose_ups(self) -> list[str]:
        """VERSION of each ``compose up``, in order."""
        return [
            c.split("|")[1]
            for c in self.calls()
            if c.endswith("|compose up -d --build --remove-orphans")
        ]

    def deployed_version(self) -> str:
        return (self.live / "VERSION").read_text().strip()

    def main(self) -> str | None:
        """The bare repository's main: the commit that last deployed healthy."""
        result = subprocess.run(
            ["git", "rev-parse", "-q", "--verify", "refs/heads/main"],
            cwd=self.repo,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        return result.stdout.strip() or None

    def log(self) -> str:
        return (self.live / "deploy.log").read_text()


@dataclass
class Laptop:
    path: Path
    env: dict[str, str]

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["git", *args], cwd=self.path, env=self.env, capture_output=True, text=True, timeout=120
        )
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def commit(self, version: str, files: dict[str, str] | None = None) -> str:
        (self.path / "VERSION").write_text(version + "\n")
        for name, text in (files or {}).items():
            (self.path / name).write_text(text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", f"version {version}")
        return self.git("rev-parse", "HEAD").stdout.strip()

    def push(self, branch: str = "main", *extra: str, ok: bool = True, **env: str) -> str:
        """``git push``; ``ok``: whether the push must succeed (else it must fail)."""
        result = subprocess.run(
            ["git", "push", *extra, "nebula", f"HEAD:refs/heads/{branch}"],
            cwd=self.path,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (result.returncode == 0) == ok, result.stderr
        return result.stderr  # git prints the hook's output as "remote: ..." on stderr


@pytest.fixture
def server(tmp_path: Path) -> Server:
    home, fake_dir, bin_dir = tmp_path / "server", tmp_path / "fake", tmp_path / "bin"
    for path in (home, fake_dir, bin_dir):
        path.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(home),
        "USER": "nebula",
        "LANG": "C.UTF-8",
        "FAKE_DOCKER_DIR": str(fake_dir),
        "NEBULA_DEPLOY_HEALTH_TIMEOUT": "2",
        "NEBULA_DEPLOY_HEALTH_INTERVAL": "0.1",
        "NEBULA_DEPLOY_SSH_HOST": "laptop-server",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    result = subprocess.run(
        ["bash", str(DEPLOY / "install-server.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (fake_dir / "calls.log").unlink()  # install-server only asked `docker compose version`
    return Server(home, home / "nebula.git", home / "nebula-live", fake_dir, env, result.stdout)


def make_laptop(server: Server, path: Path) -> Laptop:
    laptop = Laptop(path, dict(server.env))
    path.mkdir()
    laptop.git("init", "-q", "-b", "main")
    laptop.git("remote", "add", "nebula", str(server.repo))
    return laptop


@pytest.fixture
def laptop(server: Server, tmp_path: Path) -> Laptop:
    laptop = make_laptop(server, tmp_path / "laptop")
    (laptop.path / ".env.example").write_text((ROOT / ".env.example").read_text())
    (laptop.path / "docker-compose.yml").write_text("services: {}\n")
    return laptop


def test_install_server_makes_the_bare_repo_hook_live_dir_and_prints_the_remote(
    server: Server,
) -> None:
    assert (server.repo / "HEAD").is_file() and not (server.repo / ".git").exists()
    hook = server.repo / "hooks" / "proc-receive"
    assert os.access(hook, os.X_OK) and os.access(
        server.repo / "hooks" / "wait-healthy.sh", os.X_OK
    )
    for store in ("minio_storage", "postgres_data", "redis_data", "tailscale"):
        assert (server.live / "data" / store).is_dir()
    assert f"git remote add nebula ssh://nebula@laptop-server{server.repo}" in server.install_output
    config = subprocess.run(
        ["git", "config", "receive.procReceiveRefs"],
        cwd=server.repo,
        env=server.env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert config.stdout.strip() == "refs/heads"
    assert not (server.repo / "hooks" / "post-receive").exists()


def test_a_push_to_main_checks_out_and_runs_compose(server: Server, laptop: Laptop) -> None:
    sha = laptop.commit("v1")
    output = laptop.push()
    assert server.deployed_version() == "v1"
    assert f"{server.live}|v1|compose up -d --build --remove-orphans" in server.calls()
    assert "remote: nebula: every service is healthy" in output
    assert f"remote: === deployed {sha}" in output
    assert f"deployed {sha}" in server.log()
    assert server.main() == sha
    # The bare repository's HEAD is untouched by the checkout (clones still see main).
    assert (server.repo / "HEAD").read_text().strip() == "ref: refs/heads/main"


def test_a_push_to_another_branch_does_nothing(server: Server, laptop: Laptop) -> None:
    laptop.commit("v1")
    output = laptop.push("feature")
    assert "remote: nebula: feature is not main: nothing deployed" in output
    assert server.calls() == []
    assert not (server.live / "VERSION").exists()
    assert server.main() is None  # main was never pushed; feature was, and moved
    feature = subprocess.run(
        ["git", "rev-parse", "refs/heads/feature"], cwd=server.repo, capture_output=True, text=True
    )
    assert feature.stdout.strip() == laptop.git("rev-parse", "HEAD").stdout.strip()


def test_an_unhealthy_deploy_rolls_back_to_the_previous_commit(
    server: Server, laptop: Laptop
) -> None:
    good = laptop.commit("v1")
    laptop.push()
    bad = laptop.commit("v2")
    output = laptop.push(ok=False, FAKE_DOCKER_UNHEALTHY="v2")
    assert "! [remote rejected] HEAD -> main (deploy failed, rolled back)" in output
    assert "remote: nebula: waiting for nebula-s3proxy-1(running,unhealthy)" in output
    assert "remote: nebula: not healthy after 2s: nebula-s3proxy-1(running,unhealthy)" in output
    assert f"remote: === deploy failed, rolled back to {good}" in output
    assert server.compose_ups() == ["v1", "v2", "v1"]
    assert server.deployed_version() == "v1"
    assert server.main() == good
    assert f"deploy {bad}" in server.log() and f"rolled back to {good}" in server.log()


def test_a_failing_compose_up_rolls_back_too(server: Server, laptop: Laptop) -> None:
    good = laptop.commit("v1")
    laptop.push()
    laptop.commit("v2")
    output = laptop.push(ok=False, FAKE_DOCKER_FAIL_UP="v2")
    assert "! [remote rejected] HEAD -> main (deploy failed, rolled back)" in output
    assert "remote: fake compose: build failed" in output
    assert "remote: nebula: docker compose up failed" in output
    assert f"remote: === deploy failed, rolled back to {good}" in output
    assert server.deployed_version() == "v1"
    assert server.main() == good


def test_a_failed_first_deploy_says_there_is_nothing_to_roll_back_to(
    server: Server, laptop: Laptop
) -> None:
    sha = laptop.commit("v1")
    output = laptop.push(ok=False, FAKE_DOCKER_UNHEALTHY="v1")
    assert "! [remote rejected] HEAD -> main (deploy failed, nothing to roll back to)" in output
    assert f"remote: === deploy failed: {sha} is unhealthy and no earlier deploy" in output
    assert server.main() is None
    # The next healthy push deploys normally.
    second = laptop.commit("v2")
    laptop.push()
    assert server.deployed_version() == "v2"
    assert server.main() == second


def test_env_and_data_survive_deploys_and_removed_files_go(server: Server, laptop: Laptop) -> None:
    laptop.commit("v1", {"old.txt": "tracked in v1\n"})
    laptop.push()
    (server.live / ".env").write_text("POSTGRES_PASSWORD=kept\n")
    store = server.live / "data" / "postgres_data" / "PG_VERSION"
    store.write_text("15\n")
    laptop.git("rm", "-q", "old.txt")
    laptop.commit("v2", {"new.txt": "new in v2\n"})
    laptop.push()
    assert server.deployed_version() == "v2"
    assert (server.live / ".env").read_text() == "POSTGRES_PASSWORD=kept\n"
    assert store.read_text() == "15\n"
    assert (server.live / "new.txt").exists() and not (server.live / "old.txt").exists()


def test_the_first_deploy_writes_env_with_generated_secrets(server: Server, laptop: Laptop) -> None:
    laptop.commit("v1")
    output = laptop.push()
    env = dict(
        line.split("=", 1)
        for line in (server.live / ".env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert "remote: nebula: created" in output
    assert oct((server.live / ".env").stat().st_mode & 0o777) == "0o600"
    assert re.fullmatch(r"[0-9a-f]{48}", env["POSTGRES_PASSWORD"])
    assert env["MINIO_ROOT_PASSWORD"] != env["POSTGRES_PASSWORD"]
    Fernet(env["NEBULA_SECRET_KEY"].encode())  # a valid key
    assert env["RENDER_GID"].isdigit()
    lines = (server.live / ".env").read_text().splitlines()
    settings = [line for line in lines if not line.startswith("#")]
    # Every placeholder replaced in the settings; the comments keep naming them, with no
    # secret written into them (a Fernet key may itself contain "__": names, not "__").
    for placeholder in ("__random__", "__fernet__", "__render_gid__"):
        assert not any(placeholder in line for line in settings)
    comments = [line for line in lines if line.startswith("#")]
    assert any("__fernet__" in line for line in comments)
    assert not any(env["NEBULA_SECRET_KEY"] in line for line in comments)


def waiting_on_the_lock(repo: Path) -> bool:
    """A hook of this repository is blocked in `flock` (the deploy lock)."""
    for proc in Path("/proc").iterdir():
        try:
            if (proc / "cmdline").read_bytes().split(b"\0")[0] == b"flock" and os.readlink(
                proc / "cwd"
            ) == str(repo):
                return True
        except OSError:
            continue
    return False


def test_two_concurrent_pushes_do_not_interleave(
    server: Server, laptop: Laptop, tmp_path: Path
) -> None:
    laptop.commit("v0")
    laptop.push()
    other = make_laptop(server, tmp_path / "other")
    other.git("pull", "-q", "nebula", "main")
    first = laptop.commit("v1")
    other.commit("v2")
    outputs: dict[str, str] = {}

    def push(name: str, who: Laptop) -> None:
        # The second push was made against v0: once the first has deployed v1 it is stale,
        # and is rejected instead of deploying over v1 what its pusher never saw.
        outputs[name] = who.push("main", ok=name == "first", FAKE_DOCKER_HOLD="1")

    def wait_until(condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 60
        while not condition():
            assert time.monotonic() < deadline, what
            time.sleep(0.05)

    threads = [
        threading.Thread(target=push, args=("first", laptop)),
        threading.Thread(target=push, args=("second", other)),
    ]
    threads[0].start()
    wait_until((server.fake_dir / "busy").exists, "the first deploy never reached compose up")
    threads[1].start()
    # The second hook is blocked on the lock while the first is inside compose up.
    wait_until(lambda: waiting_on_the_lock(server.repo), "the second hook never waited")
    (server.fake_dir / "release").touch()
    for thread in threads:
        thread.join(60)

    assert "OVERLAP" not in server.calls()
    assert (
        "remote: nebula: another deploy is running; waiting for it to finish" in outputs["second"]
    )
    assert (
        "! [remote rejected] HEAD -> main (main moved while this push waited; fetch and push again)"
        in outputs["second"]
    )
    assert server.compose_ups() == ["v0", "v1"]
    assert server.deployed_version() == "v1"
    assert server.main() == first
    # deploy.log holds whole deploys, one after the other: start, end, start, end...
    markers = [line.split() for line in server.log().splitlines() if line.startswith("=== ")]
    assert len(markers) == 4
    for start, end in zip(markers[0::2], markers[1::2], strict=True):
        assert start[2] == "deploy" and end[1] == "deployed" and start[3] == end[2]
