"""``nebula jobs``, ``nebula queue`` and ``nebula doctor`` against a real catalog and queue."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from catalog import Catalog, Job, JobStatus, jobs
from catalog.assets import record_upload
from nebula.cli import main
from tests.rows import existing


@pytest.fixture
def cli_catalog(catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Catalog:
    for name in [n for n in os.environ if n.startswith("NEBULA_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("NEBULA_DATABASE_URL", catalog.url)
    monkeypatch.setenv("NEBULA_DATA_DIR", str(tmp_path / "data"))
    return catalog


def new_job(catalog: Catalog) -> int:
    with catalog.session() as session:
        return record_upload(session, "media", "a.mp4", "e", 1, None)[1].id


def test_list_show_and_watch_a_running_job(cli_catalog: Catalog, capsys) -> None:
    job_id = new_job(cli_catalog)
    claim = jobs.claim(cli_catalog, job_id, "w1", 60, 3)
    assert claim and jobs.renew(cli_catalog, claim, 60, progress=50.0, fps=42.0, speed=1.4)

    assert main(["jobs", "list"]) == 0
    listed = capsys.readouterr().out
    assert listed.splitlines()[0].split() == [
        "ID",
        "ASSET",
        "KIND",
        "STATUS",
        "ATTEMPTS",
        "PROGRESS",
        "/",
        "REASON",
    ]
    assert main(["jobs"]) == 0  # the bare group lists too
    assert capsys.readouterr().out == listed
    out = listed
    assert "running" in out and " 50.0% ETA " in out
    assert "1.40x 42 fps [###############---------------]" in out

    assert main(["jobs", "show", str(job_id), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["status"], shown["progress"], shown["lease_owner"]) == ("running", 50.0, "w1")

    assert main(["jobs", "watch", "--once"]) == 0
    assert "50.0%" in capsys.readouterr().out


def test_cancel_then_retry(cli_catalog: Catalog, capsys) -> None:
    job_id = new_job(cli_catalog)
    assert main(["jobs", "cancel", str(job_id)]) == 0
    assert main(["jobs", "cancel", str(job_id)]) == 2  # already cancelled
    assert main(["jobs", "watch", str(job_id)]) == 1  # ends at once: not done
    assert main(["jobs", "retry", str(job_id)]) == 0
    assert "queued again" in capsys.readouterr().out
    with cli_catalog.session() as session:
        assert existing(session, Job, job_id).status == JobStatus.QUEUED
    assert main(["jobs", "show", "999999"]) == 2


def test_queue_counts(cli_catalog: Catalog, capsys) -> None:
    new_job(cli_catalog)
    assert main(["jobs", "retry", "1"]) == 2  # queued: nothing to retry
    capsys.readouterr()
    assert main(["queue", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["queue"]) >= {"pending", "scheduled", "failed"}
    assert report["jobs"]["queued"] == 1


def test_doctor_explains_the_fallback(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("NEBULA_HW_DEVICE", "/dev/null")  # exists, but is no GPU: ffmpeg fails
    monkeypatch.setenv("NEBULA_HWACCEL", "auto")
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["would_use"] == "none"
    assert (
        not report["encoders"]["qsv"]["ok"]
        and "test encode failed" in report["encoders"]["qsv"]["detail"]
    )
    assert report["encoders"]["software"] == {"ok": True, "detail": "libx264"}
