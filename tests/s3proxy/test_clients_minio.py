"""minio-py through the s3proxy: fput/fget, listing, ranged get, presigned GET over plain HTTP."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from minio import Minio
from minio.error import S3Error

from catalog.keys import KeyPair
from tests.s3proxy.clients import (
    BUCKET,
    OTHER_BUCKET,
    REGION,
    BigFile,
    Target,
    assert_not_stored,
    assert_presign_lifetime,
    assert_still_stored,
    big_file,
    many_key_names,
    many_keys,
    plant,
    ranged_source,
    sha256_of,
    small_payload,
    target,
    unique_key,
)

__all__ = ["big_file", "many_keys", "target"]  # fixtures used by name below

PART_SIZE = 16 * 1024 * 1024


def minio_for(target: Target, key: KeyPair | None = None) -> Minio:
    key = key or target.key
    # The region is given so minio-py does not ask GetBucketLocation first.
    return Minio(target.hostport, key.access_key_id, key.secret, secure=False, region=REGION)


def test_small_object_fput_fget(target: Target, tmp_path: Path) -> None:
    mc = minio_for(target)
    source = tmp_path / "small.txt"
    source.write_bytes(small_payload("minio-py"))
    mc.fput_object(BUCKET, "minio/small.txt", str(source), content_type="text/plain")
    assert mc.stat_object(BUCKET, "minio/small.txt").size == source.stat().st_size
    back = tmp_path / "back.txt"
    mc.fget_object(BUCKET, "minio/small.txt", str(back))
    assert back.read_bytes() == source.read_bytes()
    mc.remove_object(BUCKET, "minio/small.txt")
    with pytest.raises(S3Error) as gone:
        mc.stat_object(BUCKET, "minio/small.txt")
    assert gone.value.response.status == 404


def test_100mib_multipart_round_trip(target: Target, big_file: BigFile, tmp_path: Path) -> None:
    mc = minio_for(target)
    mc.fput_object(BUCKET, "minio/big.bin", str(big_file.path), part_size=PART_SIZE)
    stat = mc.stat_object(BUCKET, "minio/big.bin")
    assert stat.size == big_file.size
    assert (stat.etag or "").endswith("-7")
    out = tmp_path / "big.out"
    mc.fget_object(BUCKET, "minio/big.bin", str(out))
    assert sha256_of(out) == big_file.sha256
    mc.remove_object(BUCKET, "minio/big.bin")


def test_lists_1500_keys(target: Target, many_keys: str) -> None:
    names = [o.object_name for o in minio_for(target).list_objects(BUCKET, prefix=many_keys)]
    assert names == many_key_names()


def test_ranged_get(target: Target) -> None:
    mc = minio_for(target)
    source = ranged_source()
    mc.put_object(BUCKET, "minio/ranged.bin", io.BytesIO(source), len(source))
    response = mc.get_object(BUCKET, "minio/ranged.bin", offset=1000, length=1000)
    try:
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes 1000-1999/{len(source)}"
        assert response.read() == source[1000:2000]
    finally:
        response.close()
        response.release_conn()


def test_wrong_secret_is_signature_does_not_match(target: Target) -> None:
    mc = minio_for(target, target.wrong_secret())
    with pytest.raises(S3Error) as listing:
        list(mc.list_objects(BUCKET))
    assert listing.value.code == "SignatureDoesNotMatch"
    never = unique_key("minio/never")
    with pytest.raises(S3Error) as put:
        mc.put_object(BUCKET, never, io.BytesIO(b"nope"), 4)
    assert put.value.code == "SignatureDoesNotMatch"
    assert_not_stored(target, BUCKET, never)


def test_unknown_key_is_invalid_access_key_id(target: Target) -> None:
    with pytest.raises(S3Error) as exc:
        list(minio_for(target, target.unknown_key()).list_objects(BUCKET))
    assert exc.value.code == "InvalidAccessKeyId"


def test_presigned_get_over_plain_http_then_expired(target: Target) -> None:
    mc = minio_for(target)
    mc.put_object(BUCKET, "minio/presigned.txt", io.BytesIO(b"presigned by minio"), 18)
    lasting = mc.presigned_get_object(BUCKET, "minio/presigned.txt", timedelta(hours=1))
    brief = mc.presigned_get_object(BUCKET, "minio/presigned.txt", timedelta(seconds=1))
    assert_presign_lifetime(lasting, brief, b"presigned by minio")


def test_scoped_key_refused_on_another_bucket(target: Target) -> None:
    mc = minio_for(target, target.scoped_key({BUCKET: "rw"}))
    mc.put_object(BUCKET, "minio/scoped.txt", io.BytesIO(b"mine"), 4)
    theirs = unique_key("minio/scoped")
    with pytest.raises(S3Error) as put:
        mc.put_object(OTHER_BUCKET, theirs, io.BytesIO(b"theirs"), 6)
    assert put.value.code == "AccessDenied"
    assert_not_stored(target, OTHER_BUCKET, theirs)
    kept = unique_key("minio/kept")
    plant(target, OTHER_BUCKET, kept, b"theirs")
    with pytest.raises(S3Error) as delete:
        mc.remove_object(OTHER_BUCKET, kept)
    assert delete.value.code == "AccessDenied"
    assert_still_stored(target, OTHER_BUCKET, kept, b"theirs")
    with pytest.raises(S3Error) as listing:
        list(mc.list_objects(OTHER_BUCKET))
    assert listing.value.code == "AccessDenied"
