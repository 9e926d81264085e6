"""Reconcile: videos that reached the bucket without the proxy are recorded and queued."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from catalog import Asset, AssetStatus, Job, JobKind, JobStatus
from nebulacore.s3 import backend_client
from nebulaqueue.huey import make_huey
from tests.rows import existing
from tests.transcoder.conftest import Env
from transcoder import reconcile
from transcoder.samples import make_source
from transcoder.tasks import tasks_for
from transcoder.work import run_job


def test_bypassing_upload_is_recorded_queued_and_transcoded(
    make_env, tasks_module, tmp_path: Path
) -> None:
    env: Env = make_env(ladder="144:150")
    bucket = env.settings.ingest_buckets[0]
    client = backend_client(env.settings)
    client.upload_file(str(make_source(tmp_path / "direct.mp4", seconds=2)), bucket, "direct.mp4")
    client.put_object(Bucket=bucket, Key="notes.txt", Body=b"not a video")
    queue = make_huey(env.settings)

    report = reconcile.run_once(
        env.settings, env.catalog, tasks_for(env.settings).enqueue, grace_seconds=0
    )

    assert report.recorded == [f"{bucket}/direct.mp4"] and report.relayed == 1
    assert queue.pending_count() == 1
    with env.catalog.session() as session:
        asset = session.scalars(select(Asset).where(Asset.key == "direct.mp4")).one()
        job = asset.jobs[0]
        asset_id, job_id = asset.id, job.id
        assert job.status == JobStatus.QUEUED and asset.etag
    # A second pass finds nothing new: no duplicate assets or jobs.
    again = reconcile.run_once(
        env.settings, env.catalog, tasks_for(env.settings).enqueue, grace_seconds=0
    )
    assert again.recorded == [] and again.relayed == 0
    assert run_job(env.settings, env.catalog, job_id) == "done"
    assert f"{asset_id}/master.m3u8" in env.hls_keys(asset_id)


def test_young_objects_are_left_to_the_proxy(make_env, tasks_module, tmp_path: Path) -> None:
    env: Env = make_env()
    client = backend_client(env.settings)
    client.put_object(Bucket=env.settings.ingest_buckets[0], Key="fresh.mp4", Body=b"x")
    report = reconcile.run_once(env.settings, env.catalog, tasks_for(env.settings).enqueue)
    assert report.recorded == []


def test_source_deleted_behind_our_back_removes_the_ladder(
    make_env, tasks_module, tmp_path: Path
) -> None:
    env: Env = make_env(ladder="144:150")
    asset_id, job_id = env.upload(make_source(tmp_path / "gone.mp4", seconds=2))
    assert run_job(env.settings, env.catalog, job_id) == "done"
    backend_client(env.settings).delete_object(
        Bucket=env.settings.ingest_buckets[0], Key="gone.mp4"
    )

    report = reconcile.run_once(
        env.settings, env.catalog, tasks_for(env.settings).enqueue, grace_seconds=0
    )

    assert report.removed == [f"{env.settings.ingest_buckets[0]}/gone.mp4"]
    with env.catalog.session() as session:
        remove = session.scalars(
            select(Job).where(Job.asset_id == asset_id, Job.kind == JobKind.REMOVE)
        ).one()
        remove_id = remove.id
        assert existing(session, Asset, asset_id).status == AssetStatus.DELETED
    assert run_job(env.settings, env.catalog, remove_id) == "done"
    assert env.hls_keys(asset_id) == []
