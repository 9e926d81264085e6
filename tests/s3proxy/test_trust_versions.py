"""Deleting one version of a video tells the catalog what the backend now holds (found
in the attacker's pass of issue 19): ``DELETE ?versionId=<old>`` was announced as the
video's deletion, so the catalog marked it deleted while its current version stayed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from catalog.models import Asset, AssetStatus
from nebulacore.s3 import backend_client
from tests.s3proxy.signing import s3_client
from tests.stacks import ProxyUnderTest, Seaweed, start_proxy

BUCKET = f"versioned-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def versioned(tmp_path_factory: pytest.TempPathFactory, seaweed: Seaweed) -> Iterator[Any]:
    """A proxy whose ingest bucket keeps versions (the session's ``media`` must not)."""
    backend = backend_client(seaweed.settings)
    backend.create_bucket(Bucket=BUCKET)
    backend.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    root: Path = tmp_path_factory.mktemp("versioned")
    server = start_proxy(root, seaweed, {"NEBULA_INGEST_BUCKETS": BUCKET})
    yield server
    server.stop()


def asset_status(proxy: ProxyUnderTest, key: str) -> AssetStatus | None:
    with proxy.catalog.session() as session:
        query = select(Asset.status).where(Asset.bucket == BUCKET, Asset.key == key)
        return session.scalars(query).first()


def two_versions(s3: Any, key: str) -> tuple[str, str]:
    first = s3.put_object(Bucket=BUCKET, Key=key, Body=b"one", ContentType="video/mp4")
    second = s3.put_object(Bucket=BUCKET, Key=key, Body=b"two", ContentType="video/mp4")
    return first["VersionId"], second["VersionId"]


@pytest.mark.parametrize("how", ["DeleteObject", "DeleteObjects"])
def test_deleting_an_old_version_keeps_the_video(versioned: ProxyUnderTest, how: str) -> None:
    s3 = s3_client(versioned.endpoint, versioned.admin)
    key = f"{uuid.uuid4().hex}.mp4"
    old, _ = two_versions(s3, key)
    if how == "DeleteObject":
        s3.delete_object(Bucket=BUCKET, Key=key, VersionId=old)
    else:
        objects = [{"Key": key, "VersionId": old}]
        s3.delete_objects(Bucket=BUCKET, Delete={"Objects": objects})
    assert backend_client(versioned.settings).get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert asset_status(versioned, key) == AssetStatus.QUEUED


def test_deleting_every_version_deletes_the_video(versioned: ProxyUnderTest) -> None:
    s3 = s3_client(versioned.endpoint, versioned.admin)
    key = f"{uuid.uuid4().hex}.mp4"
    for version in two_versions(s3, key):
        s3.delete_object(Bucket=BUCKET, Key=key, VersionId=version)
    assert asset_status(versioned, key) == AssetStatus.DELETED


def test_deleting_the_current_version_announces_the_previous_one(
    versioned: ProxyUnderTest,
) -> None:
    s3 = s3_client(versioned.endpoint, versioned.admin)
    key = f"{uuid.uuid4().hex}.mp4"
    _, current = two_versions(s3, key)
    s3.delete_object(Bucket=BUCKET, Key=key, VersionId=current)
    etag = backend_client(versioned.settings).head_object(Bucket=BUCKET, Key=key)["ETag"]
    with versioned.catalog.session() as session:
        asset = session.scalars(select(Asset).where(Asset.key == key)).one()
        assert (asset.status, asset.etag) == (AssetStatus.QUEUED, etag)
