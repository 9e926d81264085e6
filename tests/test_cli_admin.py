"""The admin CLI against a real catalog on each engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from catalog import Catalog, jobs
from catalog.assets import record_upload
from catalog.keys import SecretBox, ensure_admin_key
from nebula.cli import main
from nebulacore.config import load_settings


@pytest.fixture
def cli_env(catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [n for n in __import__("os").environ if n.startswith("NEBULA_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("NEBULA_DATABASE_URL", catalog.url)
    monkeypatch.setenv("NEBULA_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def test_keys_create_list_revoke(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--name", "phone", "--bucket", "media:rw"]) == 0
    out = capsys.readouterr().out
    access_key = out.split("access key: ")[1].split()[0]
    secret = out.split("secret key: ")[1].split()[0]
    assert "AWS_ACCESS_KEY_ID=" in out

    assert main(["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert access_key in listing and "media:rw" in listing and secret not in listing

    assert main(["keys", "revoke", access_key]) == 0
    capsys.readouterr()
    assert main(["keys", "list"]) == 0
    assert access_key not in capsys.readouterr().out
    assert main(["keys", "list", "--all"]) == 0
    assert "revoked" in capsys.readouterr().out


def test_keys_errors_exit_non_zero(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--name", "x", "--bucket", "media:write"]) == 2
    assert "media:write" in capsys.readouterr().err
    assert main(["keys", "create", "--name", "x"]) == 2
    assert main(["keys", "revoke", "NKNOPE"]) == 2
    assert "NKNOPE" in capsys.readouterr().err


def test_assets_list_and_show(
    cli_env: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    with catalog.session() as s:
        asset, _ = record_upload(s, "media", "holiday.mp4", '"e"', 42, "video/mp4")
    assert main(["assets", "list"]) == 0
    assert "s3://media/holiday.mp4" in capsys.readouterr().out
    assert main(["assets", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["id"] == asset.id
    assert main(["assets", "show", asset.id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["jobs"][0]["status"] == "queued" and shown["size"] == 42
    assert main(["assets", "show", "nonexistent1"]) == 2
    assert "nonexistent1" in capsys.readouterr().err


def test_failed_asset_reads_plainly_in_list_and_show(
    cli_env: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    reason = "the file has no video or audio track"
    with catalog.session() as s:
        asset, job = record_upload(s, "media", "notes.mp4", '"e"', 42, "video/mp4")
    claim = jobs.claim(catalog, job.id, "w1", 60, 3)
    assert claim is not None
    jobs.fail(catalog, claim, reason)

    assert main(["assets", "list"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["ID", "STATUS", "DURATION", "SIZE", "OBJECT", "REASON"]
    assert rows[0].split()[:2] == [asset.id, "failed"] and rows[0].endswith(reason)

    assert main(["assets", "show", asset.id]) == 0
    text = capsys.readouterr().out
    with pytest.raises(json.JSONDecodeError):  # text for a person by default
        json.loads(text)
    assert f"reason    {reason}" in text and "status    failed" in text
    assert "ID  KIND" in text and "REASON" in text  # the jobs table has its headers


def test_output_piped_into_head_ends_quietly(cli_env: Path, catalog: Catalog) -> None:
    """Enough rows to fill the pipe after ``head`` has gone: no BrokenPipeError traceback."""
    with catalog.session() as s:
        for n in range(1500):
            record_upload(s, "media", f"clip-{n:05}.mp4", '"e"', n, "video/mp4")
    listing = subprocess.Popen(
        [sys.executable, "-m", "nebula", "assets", "list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert listing.stdout is not None and listing.stderr is not None
    assert listing.stdout.readline().split()[0] == b"ID"
    listing.stdout.close()  # what `| head -1` does once it has its line
    errors = listing.stderr.read().decode()
    assert listing.wait(timeout=60) == 141
    assert errors == ""


def test_db_upgrade_and_current(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade"]) == 0
    assert "0006_bucket_settings" in capsys.readouterr().out
    assert main(["db", "current"]) == 0
    assert capsys.readouterr().out.strip() == "0006_bucket_settings"


def test_keys_show_admin_prints_the_secret_from_the_local_catalog(
    cli_env: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "show-admin"]) == 2
    assert "nebula up" in capsys.readouterr().err

    settings = load_settings({"NEBULA_DATA_DIR": str(cli_env / "data")})
    with catalog.session() as session:
        key, secret, created = ensure_admin_key(session, SecretBox.from_settings(settings))
        access_key = key.access_key_id
    assert created
    assert main(["keys", "show-admin"]) == 0
    assert capsys.readouterr().out == f"access key: {access_key}\nsecret key: {secret}\n"
    assert main(["keys", "show-admin", "--secret-only"]) == 0
    assert capsys.readouterr().out == secret + "\n"

    # Without the key that encrypts secrets at rest, the catalog alone reveals nothing.
    (cli_env / "data" / "secret.key").unlink()
    assert main(["keys", "show-admin"]) == 2
    captured = capsys.readouterr()
    assert secret not in captured.out + captured.err and "decrypted" in captured.err
