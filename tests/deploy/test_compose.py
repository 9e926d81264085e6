"""docker-compose.yml, Dockerfile and .env.example: valid, and using only what exists.

``docker-compose config`` (Debian's docker-compose) validates and resolves the file; the
commands and variables it uses are checked against the project. test_stack.py runs it.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from nebula.cli import build_parser
from nebulacore.config import Settings
from tests.services import environ_without

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
NEBULA_SERVICES = {"migrate", "edge", "s3proxy", "origin", "worker"}
ONE_SHOT = {"migrate"}
STORES = {
    "minio": ("data/minio_storage", "/data"),
    "db": ("data/postgres_data", "/var/lib/postgresql/data"),
    "redis": ("data/redis_data", "/data"),
    "tailscale": ("data/tailscale", "/var/lib/tailscale"),
}


@pytest.fixture(autouse=True)
def _docker_compose_installed() -> None:
    # Fails rather than skips: a skipped Compose test would hide a broken CI.
    assert shutil.which("docker-compose"), (
        "docker-compose is missing: apt-get install docker-compose"
    )


def compose_config(**variables: str) -> dict[str, Any]:
    """``docker-compose config`` with .env.example as the env file, plus ``variables``."""
    env = environ_without("NEBULA_", "COMPOSE_")
    env.update(variables)
    result = subprocess.run(
        ["docker-compose", "--env-file", str(ENV_EXAMPLE), "--file", str(COMPOSE), "config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr  # e.g. a variable left unset
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return compose_config()


@pytest.fixture(scope="module")
def tailnet_config() -> dict[str, Any]:
    return compose_config(COMPOSE_PROFILES="tailnet", NETWORK_FRONT="tailscale")


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


def test_every_service_has_a_healthcheck_and_a_restart_policy(config: dict[str, Any]) -> None:
    services = config["services"]
    assert set(services) == {"minio", "db", "redis", *NEBULA_SERVICES, "tailscale"}
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service["restart"] == "on-failure", name
            continue
        assert service["restart"] == "unless-stopped", name
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name


def test_dependencies_wait_for_health_or_completion(config: dict[str, Any]) -> None:
    services = config["services"]
    for name in ("s3proxy", "origin", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        for dependency, rule in depends.items():
            if dependency not in ONE_SHOT:
                assert rule["condition"] == "service_healthy", (name, dependency)
                assert "healthcheck" in services[dependency]
    assert services["s3proxy"]["depends_on"].keys() >= {"migrate", "db", "redis", "minio"}
    assert services["worker"]["depends_on"].keys() >= {"migrate", "db", "redis"}
    assert services["migrate"]["depends_on"].keys() == {"db", "minio"}


def test_stores_are_the_issue_images_with_data_under_dot_data(config: dict[str, Any]) -> None:
    services = config["services"]
    assert services["db"]["image"] == "postgres:15"
    assert services["redis"]["image"] == "redis:7"
    assert services["redis"]["command"] == ["redis-server", "--appendonly", "yes"]
    assert services["minio"]["image"].startswith("minio/minio:")
    assert services["tailscale"]["image"].startswith("tailscale/tailscale:")
    for name, (host_path, container_path) in STORES.items():
        assert f"{ROOT / host_path}:{container_path}:rw" in services[name]["volumes"], name


def test_only_the_front_door_publishes_ports(config: dict[str, Any]) -> None:
    for name, service in config["services"].items():
        if name != "edge":
            assert "ports" not in service, name
    assert config["services"]["edge"]["ports"] == [
        "127.0.0.1:9000:9000/tcp",
        "127.0.0.1:8080:8080/tcp",
    ]
    for name in ("s3proxy", "origin"):
        assert config["services"][name]["network_mode"] == "service:edge"


def test_the_tailnet_profile_puts_s3proxy_and_origin_in_the_sidecar(
    tailnet_config: dict[str, Any],
) -> None:
    services = tailnet_config["services"]
    for name in ("s3proxy", "origin"):
        assert services[name]["network_mode"] == "service:tailscale"
    sidecar = services["tailscale"]
    assert sidecar["profiles"] == ["tailnet"]
    assert "ports" not in sidecar
    assert set(sidecar["environment"]) >= {"TS_AUTHKEY", "TS_STATE_DIR"}
    assert sidecar["environment"]["TS_USERSPACE"] == "false"  # real client addresses


def test_the_worker_gets_the_gpu_the_render_group_and_auto_hwaccel(
    config: dict[str, Any],
) -> None:
    worker = config["services"]["worker"]
    assert worker["devices"] == ["/dev/dri:/dev/dri"]
    assert worker["group_add"] == [env_example()["RENDER_GID"]]
    assert worker["environment"]["NEBULA_HWACCEL"] == "auto"


def test_services_run_nebula_commands_that_exist(config: dict[str, Any]) -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "nebula", "--help"], capture_output=True, text=True, check=True
    ).stdout
    parser = build_parser()
    seen = set()
    for name in NEBULA_SERVICES:
        service = config["services"][name]
        assert service["image"] == "nebula:local" and service["build"]["context"] == str(ROOT)
        argvs = [service["command"]]
        if "healthcheck" in service:
            # The health check is the light probe (no CLI import), for this very service.
            probe = service["healthcheck"]["test"][1:]
            assert probe == ["python3", "-m", "nebula.probe", name], probe
            argvs.append(["nebula", "healthcheck", name])  # the same check, from the CLI
        for argv in argvs:
            if argv[0] != "nebula":
                assert name == "edge" and argv == ["sleep", "infinity"]
                continue
            assert re.search(rf"^\s+{argv[1]}\s", help_text, re.M), argv
            parser.parse_args(argv[1:])  # exits (fails the test) on an unknown argument
            seen.add(argv[1])
    assert seen >= {"s3proxy", "origin", "worker", "prepare", "healthcheck"}


def test_every_nebula_variable_is_a_setting(config: dict[str, Any]) -> None:
    for name in NEBULA_SERVICES:
        for variable in config["services"][name]["environment"]:
            if variable.startswith("NEBULA_"):
                field = variable[len("NEBULA_") :].lower()
                assert field in Settings.model_fields, f"{name}: {variable}"
    for variable in env_example():
        if variable.startswith("NEBULA_"):
            assert variable[len("NEBULA_") :].lower() in Settings.model_fields, variable


def test_the_settings_compose_gives_are_valid(config: dict[str, Any]) -> None:
    from nebulacore.config import load_settings

    env = {k: str(v) for k, v in config["services"]["worker"]["environment"].items()}
    env["NEBULA_SECRET_KEY"] = "A" * 43 + "="
    settings = load_settings(env)
    assert settings.bind == "0.0.0.0" and settings.queue_url == "redis://redis:6379/0"
    assert settings.catalog_url.startswith("postgresql://nebula:")
    assert not settings.embedded_storage


def test_env_example_documents_exactly_what_compose_uses() -> None:
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text()))
    documented = env_example()
    assert used - documented.keys() == set(), "used by docker-compose.yml, missing in .env.example"
    compose_own = {"COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES"}
    assert documented.keys() - used - compose_own == set(), "documented but never used"
    lines = ENV_EXAMPLE.read_text().splitlines()
    for number, line in enumerate(lines):
        if line and not line.startswith("#"):
            assert lines[number - 1].startswith("#"), f"no comment above {line}"


def test_dot_env_is_ignored_by_git_and_docker() -> None:
    result = subprocess.run(
        ["git", "check-ignore", "-q", ".env"], cwd=ROOT, capture_output=True, check=False
    )
    assert result.returncode == 0, ".env must be git-ignored"
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[1] == "*" and "!.env" not in ignore  # allow-list: only what is copied


def test_dockerfile_is_debian_python_311_with_ffmpeg_intel_drivers_and_no_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    # Debian bookworm's own Python 3.11 (python3, python3-venv) in a venv.
    assert re.search(r"^FROM debian:bookworm-slim$", text, re.M)
    for package in (
        "python3",
        "python3-venv",
        "ffmpeg",
        "intel-media-va-driver-non-free",
        "libmfx1",
        "libvpl2",
    ):
        assert package in text
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1] not in ("root", "0")
    # What `COPY . ./` copies is the allow-list of .dockerignore: each entry exists.
    assert re.findall(r"^COPY (.+)$", text, re.M) == ["requirements.lock ./", ". ./"]
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = [line[1:] for line in ignore if line.startswith("!")]
    assert {"requirements.lock", "pyproject.toml", "setup.cfg", "nebula/"} <= set(allowed)
    for source in allowed:
        assert (ROOT / source).exists(), source


def lock_pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not pinned: {line}"
            pins[canonicalize_name(name)] = version
    return pins


def test_the_lock_pins_every_requirement_of_setup_cfg_at_a_version_it_allows() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    pins = lock_pins()
    for line in config["options"]["install_requires"].split("\n"):
        if line.strip():
            requirement = Requirement(line)
            name = canonicalize_name(requirement.name)
            assert name in pins, f"{requirement.name} is not in requirements.lock"
            assert requirement.specifier.contains(pins[name]), (line, pins[name])


def test_the_dockerfile_installs_the_lock_and_nebula_without_other_packages() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^COPY requirements\.lock ", text, re.M)
    assert re.search(r"pip install --no-deps -r requirements\.lock$", text, re.M)
    # Nebula itself adds nothing: --no-deps, and `pip check` fails the build when the
    # lock misses something a package needs.
    assert "pip install --no-deps --no-build-isolation . && pip check" in text
