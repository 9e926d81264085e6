"""A worker whose job is superseded while it runs (a newer upload, a deletion) publishes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from catalog import Asset, AssetStatus, Job, JobStatus
from catalog.assets import record_delete
from tests.transcoder.conftest import Env
from transcoder import publish
from transcoder.samples import make_source
from transcoder.work import run_job


def superseding(env: Env, source: Path, how: str) -> None:
    if how == "upload":
        env.upload(source)
    else:
        with env.catalog.session() as session:
            assert record_delete(session, env.settings.ingest_buckets[0], source.name) is not None


@pytest.mark.parametrize(
    ("how", "reason", "asset_status"),
    [
        ("upload", "superseded by a newer upload", AssetStatus.QUEUED),
        ("delete", "the source was deleted", AssetStatus.DELETED),
    ],
)
def test_superseded_after_ffmpeg_before_the_master_publishes_nothing(
    make_env: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
    reason: str,
    asset_status: AssetStatus,
) -> None:
    env: Env = make_env(ladder="144:150", job_lease_seconds=600)
    source = make_source(tmp_path / "a.mp4", seconds=2)
    asset_id, job_id = env.upload(source)
    upload_version = publish._upload_version

    def upload_then_supersede(*args: Any, **kwargs: Any) -> None:
        upload_version(*args, **kwargs)
        superseding(env, source, how)

    monkeypatch.setattr(publish, "_upload_version", upload_then_supersede)
    assert run_job(env.settings, env.catalog, job_id) == "lease lost"
    assert env.hls_keys(asset_id) == []
    with env.catalog.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert (job.status, job.error) == (JobStatus.CANCELLED, reason)
        asset = session.get(Asset, asset_id)
        assert asset is not None and asset.status == asset_status
