"""Every payload mode, verified; a body that fails verification never becomes an object."""

from __future__ import annotations

import hashlib
import os
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.s3proxy.signing import (
    checksum_b64,
    md5_b64,
    s3_client,
    seed_request,
    send,
    signed_chunks,
    signed_headers,
    unsigned_chunks,
)
from tests.stacks import ProxyUnderTest

DATA = os.urandom(200_000)  # several 64 KiB chunks and a short last one


def object_url(proxy: ProxyUnderTest, bucket: str = "media") -> tuple[str, str]:
    key = f"payload/{uuid.uuid4().hex}.bin"
    return f"{proxy.endpoint}/{bucket}/{key}", key


def stored(proxy: ProxyUnderTest, key: str, bucket: str = "media") -> bytes | None:
    s3 = s3_client(proxy.endpoint, proxy.admin)
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchKey"
        return None


def test_signed_sha256_payload(proxy: ProxyUnderTest) -> None:
    url, key = object_url(proxy)
    headers = signed_headers("PUT", url, proxy.admin, body=DATA)
    assert headers["X-Amz-Content-SHA256"] == hashlib.sha256(DATA).hexdigest()
    answer = send("PUT", url, headers, DATA)
    assert answer.status == 200, answer.body
    assert stored(proxy, key) == DATA


def test_sha256_mismatch_is_refused_and_not_stored(proxy: ProxyUnderTest) -> None:
    url, key = object_url(proxy)
    headers = signed_headers("PUT", url, proxy.admin, body=DATA)
    answer = send("PUT", url, headers, DATA[:-1] + b"!")
    assert answer.status == 400
    assert answer.code == "XAmzContentSHA256Mismatch"
    assert stored(proxy, key) is None


def test_unsigned_payload(proxy: ProxyUnderTest) -> None:
    url, key = object_url(proxy)
    headers = signed_headers("PUT", url, proxy.admin, payload="UNSIGNED-PAYLOAD")
    assert send("PUT", url, headers, DATA).status == 200
    assert stored(proxy, key) == DATA


def test_content_md5_checked(proxy: ProxyUnderTest) -> None:
    url, key = object_url(proxy)
    good = signed_headers(
        "PUT", url, proxy.admin, {"Content-MD5": md5_b64(DATA)}, payload="UNSIGNED-PAYLOAD"
    )
    assert send("PUT", url, good, DATA).status == 200
    url, key = object_url(proxy)
    bad = signed_headers(
        "PUT", url, proxy.admin, {"Content-MD5": md5_b64(b"x")}, payload="UNSIGNED-PAYLOAD"
    )
    answer = send("PUT", url, bad, DATA)
    assert (answer.status, answer.code) == (400, "BadDigest")
    assert stored(proxy, key) is None


@pytest.mark.parametrize("algorithm", ["crc32", "crc32c", "crc64nvme", "sha1", "sha256"])
def test_checksum_header(proxy: ProxyUnderTest, algorithm: str) -> None:
    url, key = object_url(proxy)
    header = {f"x-amz-checksum-{algorithm}": checksum_b64(algorithm, DATA)}
    answer = send(
        "PUT",
        url,
        signed_headers("PUT", url, proxy.admin, header, payload="UNSIGNED-PAYLOAD"),
        DATA,
    )
    assert answer.status == 200, answer.body
    url, key = object_url(proxy)
    header = {f"x-amz-checksum-{algorithm}": checksum_b64(algorithm, b"other")}
    answer = send(
        "PUT",
        url,
        signed_headers("PUT", url, proxy.admin, header, payload="UNSIGNED-PAYLOAD"),
        DATA,
    )
    assert (answer.status, answer.code) == (400, "BadDigest")
    assert stored(proxy, key) is None


def test_streaming_signed_chunks(proxy: ProxyUnderTest) -> None:
    url, key = object_url(proxy)
    headers, seed = seed_request(url, proxy.admin, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", DATA)
    answer = send("PUT", url, headers, signed_chunks(DATA, proxy.admin, headers, seed))
    assert answer.status == 200, answer.body
    assert stored(proxy, key) == DATA


def test_tampered_last_chunk_is_refused_and_not_stored(proxy: ProxyUnderTest) -> None:
    url, key = object_url(proxy)
    headers, seed = seed_request(url, proxy.admin, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", DATA)
    body = signed_chunks(DATA, proxy.admin, headers, seed, tamper_last=True)
    answer = send("PUT", url, headers, body)
    assert (answer.status, answer.code) == (403, "SignatureDoesNotMatch")
    assert answer.headers["x-amz-request-id"] in proxy.log()
    assert stored(proxy, key) is None


def test_short_middle_chunk_is_refused(proxy: ProxyUnderTest) -> None:
    url, key = object_url(proxy)
    headers, seed = seed_request(url, proxy.admin, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", DATA)
    answer = send(
        "PUT", url, headers, signed_chunks(DATA, proxy.admin, headers, seed, chunk_size=4096)
    )
    assert (answer.status, answer.code) == (403, "InvalidChunkSizeError")
    assert stored(proxy, key) is None


@pytest.mark.parametrize("algorithm", ["crc32", "crc32c", "crc64nvme", "sha1", "sha256"])
def test_unsigned_payload_with_trailer(proxy: ProxyUnderTest, algorithm: str) -> None:
    name = f"x-amz-checksum-{algorithm}"
    url, key = object_url(proxy)
    extra = {"x-amz-trailer": name, "x-amz-sdk-checksum-algorithm": algorithm.upper()}
    headers, _ = seed_request(url, proxy.admin, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", DATA, extra)
    answer = send("PUT", url, headers, unsigned_chunks(DATA, (name, checksum_b64(algorithm, DATA))))
    assert answer.status == 200, answer.body
    assert stored(proxy, key) == DATA

    url, key = object_url(proxy)
    headers, _ = seed_request(url, proxy.admin, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", DATA, extra)
    answer = send(
        "PUT", url, headers, unsigned_chunks(DATA, (name, checksum_b64(algorithm, b"no")))
    )
    assert (answer.status, answer.code) == (400, "BadDigest")
    assert stored(proxy, key) is None


@pytest.mark.parametrize("minio_layout", [False, True])
def test_signed_payload_with_signed_trailer(proxy: ProxyUnderTest, minio_layout: bool) -> None:
    mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
    trailer = ("x-amz-checksum-crc32c", checksum_b64("crc32c", DATA))
    url, key = object_url(proxy)
    headers, seed = seed_request(url, proxy.admin, mode, DATA, {"x-amz-trailer": trailer[0]})
    body = signed_chunks(
        DATA, proxy.admin, headers, seed, trailer=trailer, minio_layout=minio_layout
    )
    answer = send("PUT", url, headers, body)
    assert answer.status == 200, answer.body
    assert stored(proxy, key) == DATA

    url, key = object_url(proxy)
    headers, seed = seed_request(url, proxy.admin, mode, DATA, {"x-amz-trailer": trailer[0]})
    body = signed_chunks(
        DATA, proxy.admin, headers, seed, trailer=trailer, bad_trailer_signature=True
    )
    answer = send("PUT", url, headers, body)
    assert (answer.status, answer.code) == (403, "SignatureDoesNotMatch")
    assert stored(proxy, key) is None


def test_decoded_length_must_match(proxy: ProxyUnderTest) -> None:
    url, key = object_url(proxy)
    name = "x-amz-checksum-crc32"
    extra = {"x-amz-trailer": name}
    headers, _ = seed_request(
        url, proxy.admin, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", DATA + b"more", extra
    )
    answer = send("PUT", url, headers, unsigned_chunks(DATA, (name, checksum_b64("crc32", DATA))))
    assert (answer.status, answer.code) == (400, "IncompleteBody")
    assert stored(proxy, key) is None


@pytest.mark.parametrize("calculation", ["when_supported", "when_required"])
def test_boto3_checksum_settings(proxy: ProxyUnderTest, calculation: str) -> None:
    s3 = s3_client(
        proxy.endpoint,
        proxy.admin,
        request_checksum_calculation=calculation,
        response_checksum_validation=calculation,
    )
    key = f"boto3/{calculation}.bin"
    s3.put_object(Bucket="media", Key=key, Body=DATA)
    assert s3.get_object(Bucket="media", Key=key)["Body"].read() == DATA
    s3.upload_fileobj(__import__("io").BytesIO(DATA), "media", key + ".2")
    assert stored(proxy, key + ".2") == DATA
