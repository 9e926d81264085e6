from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nebulacore.config import ConfigError, load_settings, parse_ladder


def test_defaults_are_the_documented_ones() -> None:
    s = load_settings({})
    assert s.bind == "127.0.0.1"
    assert s.s3proxy_port == 9000 and s.origin_port == 8080
    assert ipaddress.ip_network("100.64.0.0/10") in s.allow_cidrs
    assert ipaddress.ip_network("fd7a:115c:a1e0::/48") in s.allow_cidrs
    assert s.ingest_buckets == ["media"] and s.hls_bucket == "hls"
    assert s.embedded_storage and s.catalog_url.endswith("/data/catalog.db")
    assert s.queue_url is None


def test_lists_and_numbers_come_from_env() -> None:
    s = load_settings(
        {
            "NEBULA_INGEST_BUCKETS": "media, uploads",
            "NEBULA_ALLOW_CIDRS": "10.1.0.0/16,::1/128",
            "NEBULA_S3PROXY_PORT": "9100",
            "NEBULA_QUEUE_URL": "redis://127.0.0.1:6379/3",
        }
    )
    assert s.ingest_buckets == ["media", "uploads"]
    assert s.allow_cidrs == [ipaddress.ip_network("10.1.0.0/16"), ipaddress.ip_network("::1/128")]
    assert s.s3proxy_port == 9100 and s.queue_url == "redis://127.0.0.1:6379/3"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NEBULA_S3PROXY_PORT", "nine"),
        ("NEBULA_ORIGIN_PORT", "70000"),
        ("NEBULA_ALLOW_CIDRS", "300.1.1.1/8"),
        ("NEBULA_HWACCEL", "cuda"),
        ("NEBULA_LADDER", "1080p"),
        ("NEBULA_QUEUE_URL", "amqp://x"),
    ],
)
def test_wrong_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({name: value})
    assert name in str(err.value)


def test_config_file_gives_defaults_and_env_wins(tmp_path: Path) -> None:
    file = tmp_path / "nebula.env"
    file.write_text("# comment\nNEBULA_ORIGIN_PORT=8181\nNEBULA_S3PROXY_PORT=9191\n")
    s = load_settings({"NEBULA_CONFIG_FILE": str(file), "NEBULA_S3PROXY_PORT": "9292"})
    assert s.origin_port == 8181 and s.s3proxy_port == 9292


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="NEBULA_CONFIG_FILE"):
        load_settings({"NEBULA_CONFIG_FILE": str(tmp_path / "nope.env")})


def test_ladder_is_sorted_tallest_first() -> None:
    assert parse_ladder("360:800,1080:6000") == [(1080, 6000), (360, 800)]


def test_cli_exits_non_zero_with_a_message_on_bad_config(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nebula", "db", "current"],
        env={"NEBULA_ORIGIN_PORT": "abc", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "NEBULA_ORIGIN_PORT" in result.stderr


def _in_a_child(code: str, cpus: set[int]) -> str:
    """Run ``code`` in a Python child pinned to ``cpus``; its output."""
    return subprocess.run(
        [sys.executable, "-c", code],
        preexec_fn=lambda: os.sched_setaffinity(0, cpus),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


SETTINGS_WORKERS = (
    "from nebulacore.config import load_settings as load; s = load({}); "
    "auto = load({'NEBULA_S3PROXY_WORKERS': 'auto', 'NEBULA_ORIGIN_WORKERS': 'auto'}); "
    "print(s.s3proxy_workers, s.origin_workers, auto.s3proxy_workers, auto.origin_workers)"
)


def test_workers_default_to_one_per_cpu_the_process_may_use() -> None:
    assert _in_a_child(SETTINGS_WORKERS, {0}) == "1 1 1 1"
    if len(os.sched_getaffinity(0)) >= 2:
        assert _in_a_child(SETTINGS_WORKERS, {0, 1}) == "2 2 2 2"


@pytest.mark.parametrize(
    ("cpu_max", "cpus", "expected"),
    [
        (None, {0}, 1),  # no cgroup v2 quota: the affinity
        ("max 100000\n", {0}, 1),
        ("50000 100000\n", {0, 1}, 1),  # half a core: one
        ("150000 100000\n", {0, 1}, 2),  # a core and a half: two
        ("250000 100000\n", {0, 1}, 2),  # a quota above the affinity: the affinity
        ("garbage\n", {0, 1}, 2),
    ],
)
def test_usable_cores_is_the_affinity_less_the_cgroup_quota(
    tmp_path: Path, cpu_max: str | None, cpus: set[int], expected: int
) -> None:
    if not cpus <= os.sched_getaffinity(0):
        pytest.skip(f"this machine cannot pin to CPUs {sorted(cpus)}")
    path = tmp_path / "cpu.max"
    if cpu_max is not None:
        path.write_text(cpu_max)
    code = "from pathlib import Path; from nebulacore.config import usable_cores; "
    code += f"print(usable_cores(Path({str(path)!r})))"
    assert _in_a_child(code, cpus) == str(expected)


def test_default_workers_stop_at_four() -> None:
    from nebulacore.config import default_workers

    assert [default_workers(cores) for cores in (1, 3, 4, 5, 64)] == [1, 3, 4, 4, 4]


def test_worker_counts_can_be_set() -> None:
    s = load_settings({"NEBULA_S3PROXY_WORKERS": "3", "NEBULA_ORIGIN_WORKERS": "5"})
    assert s.s3proxy_workers == 3 and s.origin_workers == 5
    with pytest.raises(ConfigError) as err:
        load_settings({"NEBULA_S3PROXY_WORKERS": "many"})
    assert "NEBULA_S3PROXY_WORKERS" in str(err.value)
