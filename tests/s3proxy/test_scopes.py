"""Authorization: per-bucket scopes, CopyObject needs read on its source, admin-only calls."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from catalog.keys import KeyPair, SecretBox
from catalog.models import AccessKey
from nebulacore.s3 import backend_client
from tests.s3proxy.signing import s3_client
from tests.stacks import ProxyUnderTest


def denied(call: Any, **kwargs: Any) -> None:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    assert caught.value.response["Error"]["Code"] in ("AccessDenied", "403")


@pytest.fixture(scope="module")
def backend(proxy: ProxyUnderTest) -> Any:
    """Storage itself, not the proxy: where a refusal must have changed nothing."""
    return backend_client(proxy.settings)


def fresh_key(name: str) -> str:
    return f"scopes/{name}-{uuid.uuid4().hex[:12]}"


def assert_absent(backend: Any, bucket: str, key: str) -> None:
    listed = backend.list_objects_v2(Bucket=bucket, Prefix=key)
    assert listed.get("KeyCount", 0) == 0, f"a refused request stored {bucket}/{key}"


def assert_unchanged(backend: Any, bucket: str, key: str, body: bytes) -> None:
    stored = backend.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert stored == body, f"a refused request changed {bucket}/{key}"


def assert_cannot_write(s3: Any, backend: Any, bucket: str) -> None:
    """A new object, a DELETE and an overwrite are refused, and storage shows none of them."""
    new = fresh_key("new")
    denied(s3.put_object, Bucket=bucket, Key=new, Body=b"x")
    assert_absent(backend, bucket, new)
    kept = fresh_key("kept")
    backend.put_object(Bucket=bucket, Key=kept, Body=b"kept")
    denied(s3.delete_object, Bucket=bucket, Key=kept)
    denied(s3.put_object, Bucket=bucket, Key=kept, Body=b"overwritten")
    assert_unchanged(backend, bucket, kept, b"kept")


def assert_no_upload(backend: Any, bucket: str, key: str) -> None:
    uploads = backend.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads", [])
    assert uploads == [], f"a refused request started an upload of {bucket}/{key}"


@pytest.fixture(scope="module", autouse=True)
def objects(proxy: ProxyUnderTest) -> None:
    admin = s3_client(proxy.endpoint, proxy.admin)
    admin.put_object(Bucket="media", Key="scopes/in-media.txt", Body=b"m")
    admin.put_object(Bucket="hls", Key="scopes/in-hls.txt", Body=b"h")


def test_read_only_key_reads_but_cannot_write(proxy: ProxyUnderTest, backend: Any) -> None:
    s3 = s3_client(proxy.endpoint, proxy.make_key({"media": "r"}, "reader"))
    assert s3.get_object(Bucket="media", Key="scopes/in-media.txt")["Body"].read() == b"m"
    assert s3.list_objects_v2(Bucket="media", Prefix="scopes/")["KeyCount"] >= 1
    assert_cannot_write(s3, backend, "media")
    multipart = fresh_key("mp")
    denied(s3.create_multipart_upload, Bucket="media", Key=multipart)
    assert_no_upload(backend, "media", multipart)


def test_scoped_key_is_refused_on_another_bucket(proxy: ProxyUnderTest, backend: Any) -> None:
    s3 = s3_client(proxy.endpoint, proxy.make_key({"media": "rw"}, "phone"))
    s3.put_object(Bucket="media", Key="scopes/phone.txt", Body=b"p")
    denied(s3.get_object, Bucket="hls", Key="scopes/in-hls.txt")
    denied(s3.list_objects_v2, Bucket="hls")
    assert_cannot_write(s3, backend, "hls")


def test_copy_needs_read_on_the_source(proxy: ProxyUnderTest, backend: Any) -> None:
    source = {"Bucket": "hls", "Key": "scopes/in-hls.txt"}
    writer = s3_client(proxy.endpoint, proxy.make_key({"media": "rw"}, "writer"))
    copied = fresh_key("copied")
    denied(writer.copy_object, Bucket="media", Key=copied, CopySource=source)
    assert_absent(backend, "media", copied)
    multipart = fresh_key("mp")
    upload = writer.create_multipart_upload(Bucket="media", Key=multipart)["UploadId"]
    denied(
        writer.upload_part_copy,
        Bucket="media",
        Key=multipart,
        UploadId=upload,
        PartNumber=1,
        CopySource=source,
    )
    parts = backend.list_parts(Bucket="media", Key=multipart, UploadId=upload)
    assert parts.get("Parts", []) == [], "a refused UploadPartCopy stored a part"
    writer.abort_multipart_upload(Bucket="media", Key=multipart, UploadId=upload)

    both = s3_client(proxy.endpoint, proxy.make_key({"media": "rw", "hls": "r"}, "copier"))
    both.copy_object(Bucket="media", Key=copied, CopySource=source)
    assert both.get_object(Bucket="media", Key=copied)["Body"].read() == b"h"


def bucket_names(backend: Any) -> set[str]:
    return {b["Name"] for b in backend.list_buckets()["Buckets"]}


def test_only_admin_scope_creates_buckets(proxy: ProxyUnderTest, backend: Any) -> None:
    writer = s3_client(proxy.endpoint, proxy.make_key({"*": "rw"}, "wide"))
    refused = f"not-by-writers-{uuid.uuid4().hex[:8]}"
    denied(writer.create_bucket, Bucket=refused)
    assert refused not in bucket_names(backend)
    spare = f"spare-{uuid.uuid4().hex[:8]}"  # empty: a forwarded DeleteBucket would succeed
    backend.create_bucket(Bucket=spare)
    denied(writer.delete_bucket, Bucket=spare)
    assert spare in bucket_names(backend)
    backend.delete_bucket(Bucket=spare)
    owner = s3_client(proxy.endpoint, proxy.make_key({"owned-bucket": "admin"}, "owner"))
    owner.create_bucket(Bucket="owned-bucket")
    owner.delete_bucket(Bucket="owned-bucket")


def test_writing_into_a_missing_bucket_creates_no_bucket(proxy: ProxyUnderTest) -> None:
    """A key that may write everywhere but not create buckets tries every write that could
    make the backend create the bucket: each is NoSuchBucket, and no bucket appears."""
    writer = s3_client(proxy.endpoint, proxy.make_key({"*": "rw"}, "wide-writer"))
    admin = s3_client(proxy.endpoint, proxy.admin)
    missing = f"never-made-{uuid.uuid4().hex[:12]}"
    source = {"Bucket": "media", "Key": "scopes/in-media.txt"}
    attempts: list[tuple[Any, dict[str, Any]]] = [
        (writer.put_object, {"Key": "a.txt", "Body": b"x"}),
        (writer.create_multipart_upload, {"Key": "a.bin"}),
        (writer.copy_object, {"Key": "copied.txt", "CopySource": source}),
        (admin.put_object, {"Key": "a.txt", "Body": b"x"}),  # S3 says NoSuchBucket to all
    ]
    for call, kwargs in attempts:
        with pytest.raises(ClientError) as caught:
            call(Bucket=missing, **kwargs)
        assert caught.value.response["Error"]["Code"] == "NoSuchBucket", kwargs
    assert missing not in bucket_names(backend_client(proxy.settings))


def test_key_with_no_scope_cannot_list_buckets(proxy: ProxyUnderTest) -> None:
    denied(s3_client(proxy.endpoint, proxy.make_key({}, "empty")).list_buckets)
    assert s3_client(proxy.endpoint, proxy.make_key({"media": "r"}, "some")).list_buckets()[
        "Buckets"
    ]


def exists_on_backend(backend: Any, key: str, bucket: str = "media") -> bool:
    return "Contents" in backend.list_objects_v2(Bucket=bucket, Prefix=key)


def test_a_prefix_scoped_key_reaches_only_its_prefix(proxy: ProxyUnderTest) -> None:
    """Checked on the backend: every refused write stored nothing, the refused delete
    removed nothing."""
    backend = backend_client(proxy.settings)
    mine = f"forms/{uuid.uuid4().hex[:8]}/"
    s3 = s3_client(proxy.endpoint, proxy.make_key({f"media/{mine}": "rw"}, "form-key"))
    s3.put_object(Bucket="media", Key=mine + "clip.bin", Body=b"mine")
    assert s3.get_object(Bucket="media", Key=mine + "clip.bin")["Body"].read() == b"mine"
    outside = f"forms/{uuid.uuid4().hex[:8]}/clip.bin"
    denied(s3.put_object, Bucket="media", Key=outside, Body=b"x")
    denied(s3.put_object, Bucket="media", Key=mine.rstrip("/"), Body=b"x")
    denied(s3.put_object, Bucket="hls", Key=mine + "clip.bin", Body=b"x")
    denied(s3.delete_object, Bucket="media", Key="scopes/in-media.txt")
    denied(s3.get_object, Bucket="media", Key="scopes/in-media.txt")
    denied(s3.list_objects_v2, Bucket="media", Prefix=mine)
    denied(s3.delete_objects, Bucket="media", Delete={"Objects": [{"Key": mine + "clip.bin"}]})
    source = {"Bucket": "media", "Key": "scopes/in-media.txt"}
    denied(s3.copy_object, Bucket="media", Key=mine + "copied.bin", CopySource=source)
    assert not exists_on_backend(backend, outside)
    assert not exists_on_backend(backend, mine.rstrip("/"), "hls")
    assert not exists_on_backend(backend, mine + "copied.bin")
    assert exists_on_backend(backend, "scopes/in-media.txt")
    assert exists_on_backend(backend, mine + "clip.bin")


def test_a_key_made_before_with_a_dash_led_secret_still_works(proxy: ProxyUnderTest) -> None:
    """Secrets were token_urlsafe's, which may start with "-": those keys keep working."""
    with proxy.catalog.session() as session:
        session.add(
            AccessKey(
                access_key_id="NKOLDDASHSECRET",
                name="old-dash",
                secret_encrypted=SecretBox.from_settings(proxy.settings).encrypt("-Xy_z" * 8),
                scopes={"media": "r"},
                owner="old-dash",
            )
        )
    s3 = s3_client(proxy.endpoint, KeyPair("NKOLDDASHSECRET", "-Xy_z" * 8))
    assert s3.get_object(Bucket="media", Key="scopes/in-media.txt")["Body"].read() == b"m"


def test_a_create_key_writes_new_objects_only(proxy: ProxyUnderTest) -> None:
    """The kind of key `nebula upload-form` makes: a taken name is 412 and keeps its bytes
    on the backend; nothing can be read, listed, deleted or copied."""
    backend = backend_client(proxy.settings)
    mine = f"forms/{uuid.uuid4().hex[:8]}/"
    s3 = s3_client(proxy.endpoint, proxy.make_key({f"media/{mine}": "create"}, "create-key"))
    s3.put_object(Bucket="media", Key=mine + "a.bin", Body=b"first")
    with pytest.raises(ClientError) as caught:
        s3.put_object(Bucket="media", Key=mine + "a.bin", Body=b"second")
    assert caught.value.response["Error"]["Code"] == "PreconditionFailed"
    put = s3.generate_presigned_url("put_object", Params={"Bucket": "media", "Key": mine + "a.bin"})
    assert requests.put(put, data=b"third", timeout=30).status_code == 412
    assert backend.get_object(Bucket="media", Key=mine + "a.bin")["Body"].read() == b"first"
    denied(s3.get_object, Bucket="media", Key=mine + "a.bin")
    denied(s3.list_objects_v2, Bucket="media", Prefix=mine)
    denied(s3.delete_object, Bucket="media", Key=mine + "a.bin")
    denied(s3.create_multipart_upload, Bucket="media", Key=mine + "b.bin")
    source = {"Bucket": "media", "Key": mine + "a.bin"}
    denied(s3.copy_object, Bucket="media", Key=mine + "c.bin", CopySource=source)
    denied(s3.put_object, Bucket="media", Key="elsewhere/" + mine, Body=b"x")
    assert exists_on_backend(backend, mine + "a.bin")
    assert not exists_on_backend(backend, mine + "b.bin")
    assert not exists_on_backend(backend, mine + "c.bin")
    assert not exists_on_backend(backend, "elsewhere/" + mine)
