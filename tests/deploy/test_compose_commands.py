"""``nebula prepare`` (Compose's migrate service) and ``nebula healthcheck`` (its healthchecks)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web

from catalog import Catalog, Worker
from catalog.db import current_revision
from catalog.models import utcnow
from nebula.cli import main
from nebula.storage import free_internal_port
from nebulacore.ops import Check, install_ops
from nebulacore.s3 import backend_client
from tests.deploy.apps import serving
from tests.services import environ_without
from tests.stacks import Seaweed


def run_prepare(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``nebula prepare`` as the Compose ``migrate`` service runs it."""
    return subprocess.run(
        [sys.executable, "-m", "nebula", "prepare"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_prepare_migrates_the_catalog_and_creates_the_buckets_once(
    tmp_path: Path, seaweed: Seaweed
) -> None:
    suffix = secrets.token_hex(3)
    ingest, hls = f"media-{suffix}", f"hls-{suffix}"
    catalog_url = f"sqlite:///{tmp_path / 'catalog.db'}"
    env = environ_without()
    env.update(seaweed.env)
    env.update(
        {
            "NEBULA_DATABASE_URL": catalog_url,
            "NEBULA_INGEST_BUCKETS": ingest,
            "NEBULA_HLS_BUCKET": hls,
        }
    )

    def prepare() -> str:
        result = run_prepare(env, tmp_path)
        assert result.returncode == 0, result.stderr
        return result.stdout

    first = prepare()
    assert f"bucket {ingest} created" in first and f"bucket {hls} created" in first
    assert current_revision(catalog_url) is not None
    names = {b["Name"] for b in backend_client(seaweed.settings).list_buckets()["Buckets"]}
    assert {ingest, hls} <= names
    second = prepare()  # the migrate service runs on every deploy
    assert f"bucket {ingest} exists" in second and f"bucket {hls} exists" in second


def test_prepare_fails_when_the_backend_is_down(tmp_path: Path) -> None:
    env = environ_without()
    env.update(
        {
            "NEBULA_DATABASE_URL": f"sqlite:///{tmp_path / 'catalog.db'}",
            "NEBULA_BACKEND_URL": f"http://127.0.0.1:{free_internal_port()}",
            "NEBULA_BACKEND_ACCESS_KEY": "k",
            "NEBULA_BACKEND_SECRET_KEY": "s",
        }
    )
    result = run_prepare(env, tmp_path)
    assert result.returncode == 2  # Compose restarts it (restart: on-failure)
    assert result.stderr.startswith("nebula: storage at http://127.0.0.1:")
    assert "Could not connect" in result.stderr


# ----- healthcheck -------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("NEBULA_") or name == "NETWORK_FRONT":
            monkeypatch.delenv(name)
    return monkeypatch


def health_app(check: Check | None = None) -> web.Application:
    app = web.Application()
    install_ops(app, "tiny", {"catalog": check} if check else {})
    return app


async def _down() -> None:
    raise ConnectionRefusedError("catalog refused")


@pytest.mark.parametrize("service", ["s3proxy", "origin"])
def test_healthcheck_of_a_web_service_follows_its_healthz(
    service: str, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    variable = "NEBULA_S3PROXY_PORT" if service == "s3proxy" else "NEBULA_ORIGIN_PORT"
    with serving(health_app()) as base:
        clean_env.setenv(variable, base.rsplit(":", 1)[1])
        assert main(["healthcheck", service]) == 0
    assert f"{service} healthy" in capsys.readouterr().out

    with serving(health_app(_down)) as base:
        clean_env.setenv(variable, base.rsplit(":", 1)[1])
        assert main(["healthcheck", service]) == 1
    out = capsys.readouterr().out
    assert "answered 503" in out and "catalog refused" in out

    clean_env.setenv(variable, str(free_internal_port()))  # nothing listens
    assert main(["healthcheck", service]) == 1
    assert "Connection refused" in capsys.readouterr().out


def test_healthcheck_of_the_edge_needs_both_services_unless_tailscale_fronts(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with serving(health_app()) as s3proxy, serving(health_app(_down)) as origin:
        clean_env.setenv("NEBULA_S3PROXY_PORT", s3proxy.rsplit(":", 1)[1])
        clean_env.setenv("NEBULA_ORIGIN_PORT", origin.rsplit(":", 1)[1])
        assert main(["healthcheck", "edge"]) == 1
        clean_env.setenv("NETWORK_FRONT", "tailscale")
        assert main(["healthcheck", "edge"]) == 0
    assert "idle, NETWORK_FRONT=tailscale" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("hostname", "age", "healthy"),
    [
        (socket.gethostname(), timedelta(seconds=5), True),
        (socket.gethostname(), timedelta(minutes=5), False),  # heartbeat stopped
        ("another-container", timedelta(seconds=5), False),  # not this container's worker
    ],
)
def test_healthcheck_of_the_worker_wants_its_own_fresh_heartbeat(
    catalog: Catalog,
    clean_env: pytest.MonkeyPatch,
    hostname: str,
    age: timedelta,
    healthy: bool,
) -> None:
    with catalog.session() as session:
        session.add(
            Worker(id=f"{hostname}:7", hostname=hostname, pid=7, heartbeat_at=utcnow() - age)
        )
    clean_env.setenv("NEBULA_DATABASE_URL", catalog.url)
    assert main(["healthcheck", "worker"]) == (0 if healthy else 1)
