"""Push-to-deploy on a real Docker engine: install-server.sh, then `git push` of a commit
that comes up healthy, of one whose origin never gets healthy (rejected, rolled back: the
previous containers serve again and the old ladder still plays), and of the fix.

The hook runs Debian's docker-compose (it falls back to it where `docker compose` does not
run) against the test engine; the stand-in override lies untracked in the live directory,
where Compose reads it as docker-compose.override.yml.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.docker_engine import (
    COMPOSE_HTTP_TIMEOUT,
    ROOT,
    TEST_OVERRIDE,
    Stack,
    aws_s3,
    copy_tracked_tree,
    create_key,
    free_port,
    master_url,
    play,
    wait_ready,
)
from tests.services import environ_without
from transcoder.samples import make_source

# Builds the image on a cold machine and waits on real health: far past the default timeout.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3000)]
PROJECT = "nebuladeploy"


@dataclass
class Pushed:
    returncode: int
    output: str  # git's stderr: the hook's lines as "remote: ..." and the ref report
    streamed: list[str]  # lines that had arrived while `git push` was still running


@dataclass
class Site:
    repo: Path
    live: Path
    laptop: Path
    env: dict[str, str]
    stack: Stack
    s3_port: int

    def git(self, *args: str, cwd: Path | None = None) -> str:
        result = subprocess.run(
            ["git", *args],
            cwd=cwd or self.laptop,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def push(self, **env: str) -> Pushed:
        """`git push nebula main`, reading the pusher's stderr line by line as it comes."""
        process = subprocess.Popen(
            ["git", "push", "nebula", "main"],
            cwd=self.laptop,
            env={**self.env, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stderr is not None
        lines, streamed = [], []
        for line in process.stderr:
            lines.append(line)
            if process.poll() is None:
                streamed.append(line.strip())
        return Pushed(process.wait(timeout=60), "".join(lines), streamed)

    def main(self) -> str:
        return self.git("rev-parse", "refs/heads/main", cwd=self.repo)

    def live_is_at(self, commit: str) -> bool:
        """The live directory's tracked files are exactly ``commit``'s."""
        result = subprocess.run(
            ["git", f"--work-tree={self.live}", "diff", "--quiet", commit, "--", "."],
            cwd=self.repo,
            env={
                **self.env,
                "GIT_DIR": str(self.repo),
                "GIT_INDEX_FILE": str(self.repo / "deploy.index"),
            },
            capture_output=True,
            check=False,
        )
        return result.returncode == 0


@pytest.fixture(scope="module")
def site(docker_engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    home = tmp_path_factory.mktemp("server")
    s3_port, origin_port = free_port(), free_port()
    env = environ_without("NEBULA_", "COMPOSE_")
    env.update(
        HOME=str(home),
        DOCKER_HOST=docker_engine,
        NEBULA_DEPLOY_SSH_HOST="server",
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.invalid",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.invalid",
        GIT_CONFIG_NOSYSTEM="1",
        # Compose takes these from the environment before .env: this machine's free ports
        # and a project name of its own; the secrets come from the .env the hook writes.
        COMPOSE_PROJECT_NAME=PROJECT,
        COMPOSE_HTTP_TIMEOUT=COMPOSE_HTTP_TIMEOUT,
        S3_PORT=str(s3_port),
        ORIGIN_PORT=str(origin_port),
        NEBULA_S3PROXY_PUBLIC_URL=f"http://127.0.0.1:{s3_port}",
        NEBULA_ORIGIN_PUBLIC_URL=f"http://127.0.0.1:{origin_port}",
        NEBULA_DEPLOY_HEALTH_TIMEOUT="600",
    )
    installed = subprocess.run(
        ["bash", str(ROOT / "deploy" / "install-server.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    repo, live = home / "nebula.git", home / "nebula-live"
    shutil.copy(TEST_OVERRIDE, live / "docker-compose.override.yml")
    laptop = tmp_path_factory.mktemp("laptop")
    copy_tracked_tree(laptop)
    site = Site(repo, live, laptop, env, Stack(live, PROJECT, docker_engine), s3_port)
    site.git("init", "-q", "-b", "main")
    site.git("remote", "add", "nebula", str(repo))
    site.stack.down()  # a stack left over by an interrupted run
    try:
        yield site
    finally:
        site.stack.down()


def break_origin(laptop: Path) -> None:
    """A commit whose origin never gets healthy: it exits at once on an unknown option."""
    compose = laptop / "docker-compose.yml"
    text = compose.read_text()
    good = 'command: ["nebula", "origin"]'
    assert text.count(good) == 1
    compose.write_text(text.replace(good, 'command: ["nebula", "origin", "--no-such-option"]'))


def test_push_deploys_rejects_and_rolls_back_then_deploys_the_fix(site: Site) -> None:
    # 1. A commit that comes up healthy: deployed, main moved, live dir at that commit.
    good = site.commit("nebula as shipped")
    pushed = site.push()
    assert pushed.returncode == 0, pushed.output
    assert "remote: nebula: created" in pushed.output  # .env with generated secrets
    assert "remote: nebula: every service is healthy" in pushed.output
    assert f"remote: === deployed {good}" in pushed.output
    # Progress reached the pusher while the deploy was still running.
    assert any(line.startswith("remote: nebula: waiting up to") for line in pushed.streamed)
    assert site.main() == good and site.live_is_at(good)
    key = create_key(site.stack, "laptop")
    source = make_source(site.laptop.parent / "before.mp4", seconds=4, size="320x240", rate=15)
    put = aws_s3(site.s3_port, key, "cp", str(source), "s3://media/before.mp4")
    assert put.returncode == 0, put.stderr
    old_ladder = master_url(site.stack, wait_ready(site.stack, "media", "before.mp4")["id"])
    play(old_ladder)
    serving = {name: site.stack.container(name) for name in ("s3proxy", "worker", "db")}

    # 2. A commit whose origin never gets healthy: the push fails, main stays, rolled back.
    break_origin(site.laptop)
    bad = site.commit("origin with an option it does not know")
    pushed = site.push(NEBULA_DEPLOY_HEALTH_TIMEOUT="90")
    assert pushed.returncode != 0, pushed.output
    assert "! [remote rejected] main -> main (deploy failed, rolled back)" in pushed.output
    assert "remote: nebula: not healthy after 90s:" in pushed.output
    assert f"remote: === deploy failed, rolled back to {good}" in pushed.output
    assert site.main() == good and site.live_is_at(good)
    site.stack.wait_healthy()
    origin = site.stack.inspect("origin")
    assert (
        origin["Config"]["Cmd"] == ["nebula", "origin"]
        and origin["State"]["Health"]["Status"] == "healthy"
    )
    # The stores and the untouched services are the same containers; the old ladder plays.
    assert site.stack.container("db") == serving["db"]
    play(old_ladder)
    listed = aws_s3(site.s3_port, key, "ls", "s3://media/")
    assert "before.mp4" in listed.stdout, listed.stderr
    log = (site.live / "deploy.log").read_text()
    assert f"deploy {bad}" in log and f"rolled back to {good}" in log

    # 3. The fix: deployed, main moves to it.
    site.git("revert", "--no-edit", "HEAD")
    fixed = site.git("rev-parse", "HEAD")
    started = time.monotonic()
    pushed = site.push()
    assert pushed.returncode == 0, pushed.output
    assert f"remote: === deployed {fixed}" in pushed.output, time.monotonic() - started
    assert site.main() == fixed and site.live_is_at(fixed)
    play(old_ladder)
