"""boto3 through the s3proxy, with default checksums (CRC32 aws-chunked trailers) and when_required."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from catalog.keys import KeyPair
from tests.s3proxy.clients import (
    BUCKET,
    MANY_COUNT,
    OTHER_BUCKET,
    BigFile,
    Target,
    assert_not_stored,
    assert_presign_lifetime,
    assert_still_stored,
    big_file,
    boto_client,
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

# "when_supported" is botocore's default: aws-chunked bodies with a CRC32 trailer.
CHECKSUM_MODES = ["when_supported", "when_required"]
MULTIPART = TransferConfig(
    multipart_threshold=8 * 1024 * 1024, multipart_chunksize=16 * 1024 * 1024
)


def client_for(target: Target, mode: str = "when_supported", key: KeyPair | None = None) -> Any:
    return boto_client(
        target,
        key,
        request_checksum_calculation=mode,
        response_checksum_validation=mode,
    )


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


@pytest.mark.parametrize("mode", CHECKSUM_MODES)
def test_small_object_round_trip(target: Target, mode: str) -> None:
    s3 = client_for(target, mode)
    key = f"boto3-{mode}/small.txt"
    body = small_payload(f"boto3 {mode}")
    put = s3.put_object(Bucket=BUCKET, Key=key, Body=body, ContentType="text/plain")
    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ContentLength"] == len(body)
    assert head["ETag"] == put["ETag"]
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == body
    s3.delete_object(Bucket=BUCKET, Key=key)
    with pytest.raises(ClientError) as gone:
        s3.head_object(Bucket=BUCKET, Key=key)
    assert gone.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


@pytest.mark.parametrize("mode", CHECKSUM_MODES)
def test_100mib_multipart_round_trip(
    target: Target, big_file: BigFile, mode: str, tmp_path: Path
) -> None:
    s3 = client_for(target, mode)
    key = f"boto3-{mode}/big.bin"
    s3.upload_file(str(big_file.path), BUCKET, key, Config=MULTIPART)
    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ContentLength"] == big_file.size
    assert head["ETag"].strip('"').endswith("-7")  # 100 MiB in 16 MiB parts
    out = tmp_path / "big.out"
    s3.download_file(BUCKET, key, str(out), Config=MULTIPART)
    assert sha256_of(out) == big_file.sha256
    s3.delete_object(Bucket=BUCKET, Key=key)


def test_lists_1500_keys(target: Target, many_keys: str) -> None:
    s3 = client_for(target)
    pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=many_keys))
    keys = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
    assert len(pages) == 2  # 1,000 per page: the continuation token went through
    assert keys == many_key_names()
    v1_pages = list(s3.get_paginator("list_objects").paginate(Bucket=BUCKET, Prefix=many_keys))
    assert sum(len(p.get("Contents", [])) for p in v1_pages) == MANY_COUNT


def test_ranged_read(target: Target) -> None:
    s3 = client_for(target)
    source = ranged_source()
    s3.put_object(Bucket=BUCKET, Key="boto3/ranged.bin", Body=source)
    part = s3.get_object(Bucket=BUCKET, Key="boto3/ranged.bin", Range="bytes=1000-1999")
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert part["ContentRange"] == f"bytes 1000-1999/{len(source)}"
    assert part["Body"].read() == source[1000:2000]
    tail = s3.get_object(Bucket=BUCKET, Key="boto3/ranged.bin", Range="bytes=-100")
    assert tail["Body"].read() == source[-100:]


@pytest.mark.parametrize("mode", CHECKSUM_MODES)
def test_wrong_secret_is_signature_does_not_match(target: Target, mode: str) -> None:
    s3 = client_for(target, mode, target.wrong_secret())
    with pytest.raises(ClientError) as listing:
        s3.list_objects_v2(Bucket=BUCKET)
    assert code_of(listing) == "SignatureDoesNotMatch"
    never = unique_key("boto3/never")
    with pytest.raises(ClientError) as put:
        s3.put_object(Bucket=BUCKET, Key=never, Body=b"nope")
    assert code_of(put) == "SignatureDoesNotMatch"
    assert_not_stored(target, BUCKET, never)


def test_unknown_key_is_invalid_access_key_id(target: Target) -> None:
    s3 = client_for(target, key=target.unknown_key())
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket=BUCKET)
    assert code_of(exc) == "InvalidAccessKeyId"


def test_presigned_get_works_then_expires(target: Target) -> None:
    s3 = client_for(target)
    s3.put_object(Bucket=BUCKET, Key="boto3/presigned.txt", Body=b"presigned body")
    params = {"Bucket": BUCKET, "Key": "boto3/presigned.txt"}
    lasting = s3.generate_presigned_url("get_object", Params=params, ExpiresIn=3600)
    brief = s3.generate_presigned_url("get_object", Params=params, ExpiresIn=1)
    assert_presign_lifetime(lasting, brief, b"presigned body")


def test_scoped_key_refused_on_another_bucket(target: Target) -> None:
    key = target.scoped_key({BUCKET: "rw"})
    s3 = client_for(target, key=key)
    s3.put_object(Bucket=BUCKET, Key="boto3/scoped.txt", Body=b"mine")
    assert s3.get_object(Bucket=BUCKET, Key="boto3/scoped.txt")["Body"].read() == b"mine"
    with pytest.raises(ClientError) as listing:
        s3.list_objects_v2(Bucket=OTHER_BUCKET)
    assert code_of(listing) == "AccessDenied"
    theirs = unique_key("boto3/scoped")
    with pytest.raises(ClientError) as put:
        s3.put_object(Bucket=OTHER_BUCKET, Key=theirs, Body=b"theirs")
    assert code_of(put) == "AccessDenied"
    assert_not_stored(target, OTHER_BUCKET, theirs)
    kept = unique_key("boto3/kept")
    plant(target, OTHER_BUCKET, kept, b"theirs")
    with pytest.raises(ClientError) as delete:
        s3.delete_object(Bucket=OTHER_BUCKET, Key=kept)
    assert code_of(delete) == "AccessDenied"
    assert_still_stored(target, OTHER_BUCKET, kept, b"theirs")


@pytest.mark.parametrize("mode", CHECKSUM_MODES)
def test_connection_still_usable_after_a_refused_upload(target: Target, mode: str) -> None:
    # boto3 keeps its connections: the request after a refused PUT reuses the socket,
    # so the refused body must not be left behind in it.
    key = target.scoped_key({BUCKET: "rw"})
    s3 = client_for(target, mode, key)
    refused = unique_key("boto3/refused")
    with pytest.raises(ClientError) as put:
        s3.put_object(Bucket=OTHER_BUCKET, Key=refused, Body=b"theirs")
    assert code_of(put) == "AccessDenied"
    assert_not_stored(target, OTHER_BUCKET, refused)
    s3.put_object(Bucket=BUCKET, Key="boto3/after-refusal.txt", Body=b"mine")
    assert s3.get_object(Bucket=BUCKET, Key="boto3/after-refusal.txt")["Body"].read() == b"mine"
