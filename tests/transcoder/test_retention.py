"""A video's later life never breaks a viewer: an overwritten ladder is kept for
``NEBULA_HLS_RETAIN_SECONDS`` and then swept; a deletion's REMOVE job never deletes the
ladder of a later upload of the same key. On SQLite and PostgreSQL catalogs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from catalog import Asset, AssetStatus, Job, JobStatus, jobs, ladders
from catalog.assets import record_delete
from nebulacore.s3 import backend_client
from tests.rows import existing
from tests.transcoder.conftest import Env
from transcoder.removal import sweep
from transcoder.samples import make_source
from transcoder.work import run_job


@pytest.fixture(params=["sqlite", "postgresql"])
def env(request: pytest.FixtureRequest, make_env: Any) -> Env:
    extra = {"database_url": request.getfixturevalue("pg_url")} if request.param != "sqlite" else {}
    made: Env = make_env(ladder="144:150", **extra)
    return made


def read(env: Env, key: str) -> bytes:
    body = backend_client(env.settings).get_object(Bucket=env.settings.hls_bucket, Key=key)
    return bytes(body["Body"].read())


def ladder_keys(env: Env, asset_id: str, master: str) -> list[str]:
    """Every key a player of ``master`` fetches: media playlists, init segments, segments."""
    keys = []
    for playlist in (line for line in master.splitlines() if line and not line.startswith("#")):
        keys.append(f"{asset_id}/{playlist}")
        folder = playlist.rsplit("/", 1)[0]
        text = read(env, keys[-1]).decode()
        keys += [f"{asset_id}/{folder}/{uri}" for uri in _uris(text)]
    return keys


def _uris(playlist: str) -> list[str]:
    found = [line for line in playlist.splitlines() if line and not line.startswith("#")]
    found += [
        line.split('URI="')[1].split('"')[0] for line in playlist.splitlines() if 'URI="' in line
    ]
    return found


def publish(env: Env, source: Path) -> tuple[str, int]:
    asset_id, job_id = env.upload(source)
    assert run_job(env.settings, env.catalog, job_id) == "done"
    return asset_id, job_id


def test_an_overwritten_ladder_plays_to_the_end_then_is_swept(env: Env, tmp_path: Path) -> None:
    asset_id, first = publish(env, make_source(tmp_path / "a.mp4", seconds=2))
    old_master = read(env, f"{asset_id}/master.m3u8").decode()
    old_keys = ladder_keys(env, asset_id, old_master)
    assert any(key.endswith(".m4s") for key in old_keys)

    _, second = publish(env, make_source(tmp_path / "a.mp4", seconds=3))  # same key again
    new_master = read(env, f"{asset_id}/master.m3u8").decode()
    assert f"v{second}/" in new_master and f"v{first}/" not in new_master
    # A player that loaded the old master right before the switch finishes it.
    for key in old_keys:
        assert read(env, key)
    assert ladders.pending(env.catalog, asset_id) == [f"v{first}"]

    assert sweep(env.settings, env.catalog) == []  # retained for the default hour
    assert set(old_keys) <= set(env.hls_keys(asset_id))

    retention_over = env.settings.model_copy(update={"hls_retain_seconds": 0})
    swept = sweep(retention_over, env.catalog)
    assert f"{asset_id}/v{first}" in swept
    keys = env.hls_keys(asset_id)
    assert not any(f"/v{first}/" in key for key in keys)
    assert set(ladder_keys(env, asset_id, new_master)) <= set(keys)  # the new one untouched
    assert ladders.pending(env.catalog, asset_id) == []


def test_a_reupload_after_a_delete_cancels_the_removal_and_its_ladder_survives(
    env: Env, tmp_path: Path
) -> None:
    source = make_source(tmp_path / "a.mp4", seconds=2)
    asset_id, first = publish(env, source)
    with env.catalog.session() as session:
        remove = record_delete(session, env.settings.ingest_buckets[0], "a.mp4")
        assert remove is not None
        remove_id = remove.id
    assert ladders.pending(env.catalog, asset_id) == [f"v{first}"]  # owned by the removal

    _, second = publish(env, source)  # uploaded again before the removal ran
    with env.catalog.session() as session:
        removal = existing(session, Job, remove_id)
        assert (removal.status, removal.error) == (JobStatus.CANCELLED, jobs.SUPERSEDED_BY_UPLOAD)
    assert run_job(env.settings, env.catalog, remove_id) == "not claimable"
    new_master = read(env, f"{asset_id}/master.m3u8").decode()
    assert f"v{second}/" in new_master
    # Even run again by hand, the removal deletes only what it owned: not the new ladder.
    assert jobs.retry(env.catalog, remove_id)
    assert run_job(env.settings, env.catalog, remove_id) == "done"
    assert read(env, f"{asset_id}/master.m3u8").decode() == new_master
    for key in ladder_keys(env, asset_id, new_master):
        assert read(env, key)
    # The deleted source's version waits out the retention like any replaced one.
    assert ladders.pending(env.catalog, asset_id) == [f"v{first}"]


def test_a_removal_running_when_the_key_is_uploaded_again_deletes_nothing_new(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upload lands while the REMOVE job runs: it stops before touching the master."""
    source = make_source(tmp_path / "a.mp4", seconds=2)
    asset_id, _ = publish(env, source)
    with env.catalog.session() as session:
        remove = record_delete(session, env.settings.ingest_buckets[0], "a.mp4")
        assert remove is not None
        remove_id = remove.id
    of_job = ladders.of_job

    def then_reupload(catalog: Any, job_id: int) -> list[ladders.Retired]:
        owned = of_job(catalog, job_id)
        env.upload(source)  # the job is claimed and running now
        return owned

    monkeypatch.setattr(ladders, "of_job", then_reupload)
    before = env.hls_keys(asset_id)
    assert run_job(env.settings, env.catalog, remove_id) == "lease lost"
    assert env.hls_keys(asset_id) == before


def test_deleting_a_video_removes_its_ladder_at_once(env: Env, tmp_path: Path) -> None:
    asset_id, _ = publish(env, make_source(tmp_path / "a.mp4", seconds=2))
    with env.catalog.session() as session:
        remove = record_delete(session, env.settings.ingest_buckets[0], "a.mp4")
        assert remove is not None
        remove_id = remove.id
    assert run_job(env.settings, env.catalog, remove_id) == "done"
    assert env.hls_keys(asset_id) == []
    assert ladders.pending(env.catalog, asset_id) == []
    with env.catalog.session() as session:
        assert existing(session, Asset, asset_id).status == AssetStatus.DELETED
