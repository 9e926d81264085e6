"""Upload events: videos in ingest buckets become assets with queued transcodes."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from sqlalchemy import select

from catalog.assets import find_asset
from catalog.models import AssetStatus, Job, JobKind, JobStatus, OutboxEvent
from nebula.storage import free_internal_port
from nebulaqueue.huey import make_huey
from tests.s3proxy.signing import s3_client
from tests.stacks import ProxyUnderTest, Seaweed, start_proxy


@pytest.fixture(scope="module")
def s3(proxy: ProxyUnderTest) -> Any:
    return s3_client(proxy.endpoint, proxy.admin)


def video_key() -> str:
    return f"events/{uuid.uuid4().hex[:8]}.mp4"


def jobs_of(proxy: ProxyUnderTest, bucket: str, key: str) -> list[Job]:
    with proxy.catalog.session() as session:
        asset = find_asset(session, bucket, key)
        assert asset is not None, f"no asset for {bucket}/{key}"
        return list(session.scalars(select(Job).where(Job.asset_id == asset.id).order_by(Job.id)))


def queued_job_ids(proxy: ProxyUnderTest) -> set[int]:
    """Job ids of the transcode/remove messages waiting in the proxy's Huey queue."""
    huey = make_huey(proxy.settings)
    messages = [huey.serializer.deserialize(raw) for raw in huey.storage.enqueued_items()]
    return {m.args[0] for m in messages if m.name.startswith("transcoder.tasks.")}


def wait_queued(proxy: ProxyUnderTest, job_id: int) -> None:
    deadline = time.monotonic() + 15
    while job_id not in queued_job_ids(proxy):
        assert time.monotonic() < deadline, f"job {job_id} never reached the queue"
        time.sleep(0.2)


def test_video_put_creates_asset_job_and_task(proxy: ProxyUnderTest, s3: Any) -> None:
    key = video_key()
    put = s3.put_object(Bucket="media", Key=key, Body=b"\x00" * 1000, ContentType="video/mp4")
    with proxy.catalog.session() as session:
        asset = find_asset(session, "media", key)
        assert asset is not None
        assert (asset.status, asset.size, asset.etag) == (AssetStatus.QUEUED, 1000, put["ETag"])
        assert asset.content_type == "video/mp4"
    [job] = jobs_of(proxy, "media", key)
    assert (job.kind, job.status) == (JobKind.TRANSCODE, JobStatus.QUEUED)
    wait_queued(proxy, job.id)


def test_overwrite_requeues(proxy: ProxyUnderTest, s3: Any) -> None:
    key = video_key()
    s3.put_object(Bucket="media", Key=key, Body=b"first")
    s3.put_object(Bucket="media", Key=key, Body=b"second")
    first, second = jobs_of(proxy, "media", key)
    assert first.status == JobStatus.CANCELLED
    assert second.status == JobStatus.QUEUED
    wait_queued(proxy, second.id)


def test_delete_marks_deleted_and_queues_removal(proxy: ProxyUnderTest, s3: Any) -> None:
    key = video_key()
    s3.put_object(Bucket="media", Key=key, Body=b"video")
    s3.delete_object(Bucket="media", Key=key)
    with proxy.catalog.session() as session:
        asset = find_asset(session, "media", key)
        assert asset is not None and asset.status == AssetStatus.DELETED
    removal = jobs_of(proxy, "media", key)[-1]
    assert removal.kind == JobKind.REMOVE
    wait_queued(proxy, removal.id)


def test_delete_objects_marks_each_deleted(proxy: ProxyUnderTest, s3: Any) -> None:
    keys = [video_key() for _ in range(3)]
    for key in keys:
        s3.put_object(Bucket="media", Key=key, Body=b"video")
    s3.delete_objects(Bucket="media", Delete={"Objects": [{"Key": k} for k in keys]})
    with proxy.catalog.session() as session:
        for key in keys:
            asset = find_asset(session, "media", key)
            assert asset is not None and asset.status == AssetStatus.DELETED


def test_multipart_completion_and_copy_create_assets(proxy: ProxyUnderTest, s3: Any) -> None:
    key = f"events/{uuid.uuid4().hex[:8]}.bin"  # a video by its content type, not its name
    upload = s3.create_multipart_upload(Bucket="media", Key=key, ContentType="video/quicktime")[
        "UploadId"
    ]
    etag = s3.upload_part(Bucket="media", Key=key, UploadId=upload, PartNumber=1, Body=b"m" * 100)[
        "ETag"
    ]
    done = s3.complete_multipart_upload(
        Bucket="media",
        Key=key,
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )
    with proxy.catalog.session() as session:
        asset = find_asset(session, "media", key)
        assert asset is not None
        assert (asset.etag, asset.size, asset.content_type) == (
            done["ETag"],
            100,
            "video/quicktime",
        )

    s3.put_object(Bucket="hls", Key="events/source.mkv", Body=b"v")
    copied = video_key()
    s3.copy_object(
        Bucket="media", Key=copied, CopySource={"Bucket": "hls", "Key": "events/source.mkv"}
    )
    assert jobs_of(proxy, "media", copied)[0].kind == JobKind.TRANSCODE


def test_non_videos_and_other_buckets_are_ignored(proxy: ProxyUnderTest, s3: Any) -> None:
    s3.put_object(Bucket="media", Key="events/notes.txt", Body=b"text")
    s3.put_object(Bucket="hls", Key="events/elsewhere.mp4", Body=b"video")
    with proxy.catalog.session() as session:
        assert find_asset(session, "media", "events/notes.txt") is None
        assert find_asset(session, "hls", "events/elsewhere.mp4") is None


def test_queue_down_still_stores_and_keeps_the_outbox(tmp_path: Path, seaweed: Seaweed) -> None:
    dead_queue = f"redis://127.0.0.1:{free_internal_port()}/0"
    server = start_proxy(tmp_path, seaweed, {"NEBULA_QUEUE_URL": dead_queue})
    try:
        s3 = s3_client(server.endpoint, server.admin)
        key = video_key()
        s3.put_object(Bucket="media", Key=key, Body=b"video")
        assert s3.get_object(Bucket="media", Key=key)["Body"].read() == b"video"
        with server.catalog.session() as session:
            asset = find_asset(session, "media", key)
            assert asset is not None and asset.status == AssetStatus.QUEUED
        deadline = time.monotonic() + 15
        while True:
            with server.catalog.session() as session:
                [event] = session.scalars(select(OutboxEvent)).all()
                if event.attempts:
                    break
            assert time.monotonic() < deadline, "the proxy never tried to relay"
            time.sleep(0.2)
        assert event.sent_at is None and event.last_error
    finally:
        server.stop()


def test_data_dir_option_relays_into_that_dirs_queue(tmp_path: Path, seaweed: Seaweed) -> None:
    """``nebula s3proxy --data-dir X`` with no NEBULA_DATA_DIR records into X's catalog and
    relays into X's queue; nothing lands in a ``./data`` of its working directory."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    server = start_proxy(tmp_path, seaweed, cwd=elsewhere)
    try:
        assert "NEBULA_DATA_DIR" not in server.env
        s3 = s3_client(server.endpoint, server.admin)
        key = video_key()
        s3.put_object(Bucket="media", Key=key, Body=b"video", ContentType="video/mp4")
        [job] = jobs_of(server, "media", key)
        wait_queued(server, job.id)  # read from X's queue.db
        assert server.settings.queue_path == tmp_path / "data" / "queue.db"
        assert not (elsewhere / "data").exists()
    finally:
        server.stop()


def test_catalog_failures(tmp_path: Path, seaweed: Seaweed) -> None:
    """A catalog that cannot record the upload does not fail the PUT; one that cannot
    answer key lookups gives 503 ServiceUnavailable."""
    from sqlalchemy import text

    from catalog.keys import KeyPair

    server = start_proxy(tmp_path, seaweed)
    try:
        s3 = s3_client(server.endpoint, server.admin)
        s3.list_buckets()  # the admin key is now cached
        with server.catalog.engine.begin() as conn:  # break the upload bookkeeping only
            conn.execute(text("DROP TABLE outbox"))
        key = video_key()
        s3.put_object(Bucket="media", Key=key, Body=b"video")
        assert s3.get_object(Bucket="media", Key=key)["Body"].read() == b"video"
        deadline = time.monotonic() + 10
        while "catalog did not record the upload" not in server.log():
            assert time.monotonic() < deadline
            time.sleep(0.2)

        with server.catalog.engine.begin() as conn:
            conn.execute(text("DROP TABLE access_keys"))
        stranger = s3_client(server.endpoint, KeyPair("NKNEVERSEEN00000000", "secret"))
        with pytest.raises(ClientError) as caught:
            stranger.list_buckets()
        assert caught.value.response["Error"]["Code"] == "ServiceUnavailable"
    finally:
        server.stop()
