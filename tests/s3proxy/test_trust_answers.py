"""Answers compared with S3's and with the backend's own on the same requests (issue 19,
weak points): a zero-lifetime presigned URL, and server-side encryption, which SeaweedFS
gets wrong past 4 MiB when its volume servers speak HTTPS, so the proxy refuses it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from nebulacore.s3 import backend_client
from tests.s3proxy.signing import (
    checksum_b64,
    presign,
    s3_client,
    seed_request,
    send,
    unsigned_chunks,
)
from tests.stacks import ProxyUnderTest

SSE_S3 = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}
EIGHT_MB = os.urandom(8 << 20)


def test_a_zero_lifetime_presign_is_malformed_not_expired(proxy: ProxyUnderTest) -> None:
    """S3 takes X-Amz-Expires from 1 to 604800: 0 is a bad URL (400), as a week and a second is."""
    url = presign("GET", f"{proxy.endpoint}/media/anything.txt", proxy.admin, expires=0)
    answer = send("GET", url, {})
    assert (answer.status, answer.code) == (400, "AuthorizationQueryParametersError"), answer.body


def read_back(s3: Any, key: str, **sse: Any) -> bytes | str:
    try:
        return bytes(s3.get_object(Bucket="media", Key=key, **sse)["Body"].read())
    except ClientError as error:
        return str(error.response["Error"]["Code"])


def test_the_embedded_backend_reads_large_encrypted_objects_back_since_its_volumes_are_http(
    proxy: ProxyUnderTest,
) -> None:
    """SeaweedFS 4.48 stores an SSE-S3 or SSE-C object of more than 4 MiB so that it reads
    back as other bytes or a 500 when its volume servers speak HTTPS (``[https.volume]``
    and ``[https.client]`` in security.toml), as the embedded storage's did before its volume port went plain.
    With the volume data port in plain HTTP behind JWTs it reads them back right. The proxy
    still refuses encryption (an external SeaweedFS may serve its volumes over HTTPS);
    this test says when the embedded storage alone would no longer justify that."""
    backend = backend_client(proxy.settings)
    key = f"sse/{uuid.uuid4().hex}"
    backend.put_object(Bucket="media", Key=key, Body=EIGHT_MB, ServerSideEncryption="AES256")
    assert read_back(backend, key) == EIGHT_MB
    sse: dict[str, Any] = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": os.urandom(32)}
    backend.put_object(Bucket="media", Key=f"{key}-c", Body=EIGHT_MB, **sse)
    assert read_back(backend, f"{key}-c", **sse) == EIGHT_MB


def test_writes_asking_for_encryption_are_refused(proxy: ProxyUnderTest) -> None:
    s3 = s3_client(proxy.endpoint, proxy.admin)
    key = f"sse/{uuid.uuid4().hex}"
    sse_c = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": os.urandom(32)}
    writes: list[Callable[[], object]] = [
        lambda: s3.put_object(Bucket="media", Key=key, Body=b"x", ServerSideEncryption="AES256"),
        lambda: s3.put_object(Bucket="media", Key=key, Body=b"x", **sse_c),
        lambda: s3.create_multipart_upload(Bucket="media", Key=key, **sse_c),
        lambda: s3.put_bucket_encryption(Bucket="media", ServerSideEncryptionConfiguration=SSE_S3),
    ]
    for write in writes:
        with pytest.raises(ClientError) as refused:
            write()
        assert refused.value.response["Error"]["Code"] == "NotImplemented"
    backend = backend_client(proxy.settings)
    assert read_back(backend, key) == "NoSuchKey"
    uploads = backend.list_multipart_uploads(Bucket="media", Prefix=key)
    assert not uploads.get("Uploads")
    with pytest.raises(ClientError):
        backend.get_bucket_encryption(Bucket="media")


def test_an_8mb_put_without_encryption_reads_back_through_the_proxy(
    proxy: ProxyUnderTest,
) -> None:
    url = f"{proxy.endpoint}/media/sse/{uuid.uuid4().hex}"
    name = "x-amz-checksum-crc32"
    headers, _ = seed_request(
        url, proxy.admin, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", EIGHT_MB, {"x-amz-trailer": name}
    )
    body = unsigned_chunks(EIGHT_MB, (name, checksum_b64("crc32", EIGHT_MB)))
    assert send("PUT", url, headers, body).status == 200
    key = url.split("/media/", 1)[1]
    assert read_back(s3_client(proxy.endpoint, proxy.admin), key) == EIGHT_MB


def test_re_creating_an_owned_bucket_with_an_acl_is_already_owned(proxy: ProxyUnderTest) -> None:
    """S3 says whose a bucket is before it judges the CreateBucket's ACL."""
    s3 = s3_client(proxy.endpoint, proxy.admin)
    bucket = f"again-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    for acl in ("private", "public-read"):
        with pytest.raises(ClientError) as refused:
            s3.create_bucket(Bucket=bucket, ACL=acl)
        assert refused.value.response["Error"]["Code"] == "BucketAlreadyOwnedByYou", acl
    fresh = f"fresh-{uuid.uuid4().hex[:10]}"
    with pytest.raises(ClientError) as refused:
        s3.create_bucket(Bucket=fresh, ACL="public-read")
    assert refused.value.response["Error"]["Code"] == "InvalidBucketAclWithObjectOwnership"
    names = {b["Name"] for b in backend_client(proxy.settings).list_buckets()["Buckets"]}
    assert bucket in names and fresh not in names
