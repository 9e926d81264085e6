"""Bad input gets S3's error from the proxy, before anything reaches the backend (issue 9);
a header that describes the object, not the request body, is passed on as S3 does."""

from __future__ import annotations

import os
import uuid
import xml.etree.ElementTree as ET

import pytest

from nebulacore.s3 import backend_client
from tests.s3proxy.signing import (
    checksum_b64,
    s3_client,
    seed_request,
    send,
    signed_headers,
    unsigned_chunks,
)
from tests.stacks import ProxyUnderTest

OLD = b"the object before the bad request"
DATA = os.urandom(70_000)


def existing_object(proxy: ProxyUnderTest) -> tuple[str, str]:
    key = f"input/{uuid.uuid4().hex}.bin"
    backend_client(proxy.settings).put_object(Bucket="media", Key=key, Body=OLD)
    return key, f"{proxy.endpoint}/media/{key}"


def on_backend(proxy: ProxyUnderTest, key: str) -> bytes:
    return bytes(backend_client(proxy.settings).get_object(Bucket="media", Key=key)["Body"].read())


@pytest.mark.parametrize("declared", ["-5", "abc", "", "1e3", "+70000", "0x10", "1_0"])
def test_bad_decoded_content_length_is_a_400(proxy: ProxyUnderTest, declared: str) -> None:
    key, url = existing_object(proxy)
    name = "x-amz-checksum-crc32"
    extra = {"x-amz-trailer": name, "x-amz-decoded-content-length": declared}
    headers, _ = seed_request(url, proxy.admin, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", DATA, extra)
    answer = send("PUT", url, headers, unsigned_chunks(DATA, (name, checksum_b64("crc32", DATA))))
    assert (answer.status, answer.code) == (400, "InvalidArgument"), answer.body
    assert on_backend(proxy, key) == OLD


@pytest.mark.parametrize("md5", ["", "not base64!", "c2hvcnQ=", "=="])
def test_malformed_content_md5_is_invalid_digest(proxy: ProxyUnderTest, md5: str) -> None:
    """Empty, not base64, or not 16 bytes: InvalidDigest (S3), not BadDigest."""
    key, url = existing_object(proxy)
    headers = signed_headers("PUT", url, proxy.admin, {"Content-MD5": md5}, body=DATA)
    answer = send("PUT", url, headers, DATA)
    assert (answer.status, answer.code) == (400, "InvalidDigest"), answer.body
    assert on_backend(proxy, key) == OLD


def backend_buckets(proxy: ProxyUnderTest) -> set[str]:
    buckets = backend_client(proxy.settings).list_buckets()["Buckets"]
    return {bucket["Name"] for bucket in buckets}


@pytest.mark.parametrize(
    "name", ["bad:name", "bad name", "Bad_Name", "ab", "-leading", "a..b", "192.168.0.1", "x" * 64]
)
def test_invalid_bucket_names_are_refused_by_the_proxy(proxy: ProxyUnderTest, name: str) -> None:
    before = backend_buckets(proxy)
    quoted = name.replace(" ", "%20")
    for path, body in ((f"/{quoted}", b""), (f"/{quoted}/some/key.txt", b"data")):
        url = proxy.endpoint + path
        answer = send("PUT", url, signed_headers("PUT", url, proxy.admin, body=body), body)
        assert (answer.status, answer.code) == (400, "InvalidBucketName"), answer.body
        assert answer.xml("BucketName") == name
    assert backend_buckets(proxy) == before


def test_valid_bucket_names_still_work(proxy: ProxyUnderTest) -> None:
    s3 = s3_client(proxy.endpoint, proxy.admin)
    name = f"ok.name-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=b"v")
    assert s3.get_object(Bucket=name, Key="k")["Body"].read() == b"v"
    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)


def test_complete_multipart_passes_the_full_object_checksum_on(proxy: ProxyUnderTest) -> None:
    """The x-amz-checksum-* of CompleteMultipartUpload describes the object, not the XML."""
    s3 = s3_client(proxy.endpoint, proxy.admin)
    key = f"input/mp-{uuid.uuid4().hex}.bin"
    part1, part2 = os.urandom(5 << 20), os.urandom(1000)
    upload = s3.create_multipart_upload(Bucket="media", Key=key)["UploadId"]
    etags = [
        s3.upload_part(Bucket="media", Key=key, UploadId=upload, PartNumber=n, Body=part)["ETag"]
        for n, part in ((1, part1), (2, part2))
    ]
    root = ET.Element("CompleteMultipartUpload")
    for number, etag in enumerate(etags, 1):
        part = ET.SubElement(root, "Part")
        ET.SubElement(part, "PartNumber").text = str(number)
        ET.SubElement(part, "ETag").text = etag
    xml = ET.tostring(root)
    url = f"{proxy.endpoint}/media/{key}?uploadId={upload}"
    whole = {"x-amz-checksum-crc32": checksum_b64("crc32", part1 + part2)}
    headers = signed_headers("POST", url, proxy.admin, whole, body=xml)
    answer = send("POST", url, headers, xml)
    assert answer.status == 200, answer.body
    assert b"<Error>" not in answer.body
    assert on_backend(proxy, key) == part1 + part2
