"""S3 semantics the embedded SeaweedFS must be told to keep, seen through the proxy."""

from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError

from nebulacore.s3 import backend_client
from tests.s3proxy.signing import s3_client
from tests.stacks import ProxyUnderTest, Seaweed


def test_delete_bucket_refuses_a_bucket_that_still_has_objects(
    proxy: ProxyUnderTest, seaweed: Seaweed
) -> None:
    s3 = s3_client(proxy.endpoint, proxy.admin)
    bucket = f"keep-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="holiday.mp4", Body=b"precious")

    with pytest.raises(ClientError) as refused:
        s3.delete_bucket(Bucket=bucket)
    assert refused.value.response["Error"]["Code"] == "BucketNotEmpty"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409

    # Nothing was deleted: the backend itself still has the bucket and the object.
    backend = backend_client(seaweed.settings)
    assert bucket in [b["Name"] for b in backend.list_buckets()["Buckets"]]
    assert backend.get_object(Bucket=bucket, Key="holiday.mp4")["Body"].read() == b"precious"

    # Emptied, it goes as S3 says it should.
    s3.delete_object(Bucket=bucket, Key="holiday.mp4")
    s3.delete_bucket(Bucket=bucket)
    assert bucket not in [b["Name"] for b in backend.list_buckets()["Buckets"]]
