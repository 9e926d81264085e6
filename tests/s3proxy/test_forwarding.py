"""The proxy is transparent: operations, headers, ranges, conditionals, multipart, listings."""

from __future__ import annotations

import io
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from botocore.exceptions import ClientError

from tests.s3proxy.conftest import access_line, proxy_to_scripted_backend
from tests.s3proxy.signing import s3_client, send, signed_headers
from tests.services import metric_sample
from tests.stacks import ProxyUnderTest, Seaweed, start_proxy


@pytest.fixture(scope="module")
def s3(proxy: ProxyUnderTest) -> Any:
    return s3_client(proxy.endpoint, proxy.admin)


def test_head_and_get_headers_match_the_backend(
    proxy: ProxyUnderTest, s3: Any, seaweed: Seaweed
) -> None:
    s3.put_object(
        Bucket="media",
        Key="fwd/meta.txt",
        Body=b"0123456789",
        ContentType="text/x-nebula",
        Metadata={"owner": "me"},
    )
    head = s3.head_object(Bucket="media", Key="fwd/meta.txt")
    direct = s3_client(seaweed.endpoint, _backend_key(seaweed)).head_object(
        Bucket="media", Key="fwd/meta.txt"
    )
    assert head["ContentLength"] == 10
    assert head["ETag"] == direct["ETag"]
    assert head["ContentType"] == "text/x-nebula"
    assert head["Metadata"] == {"owner": "me"}
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"] != direct[
        "ResponseMetadata"
    ]["HTTPHeaders"].get("x-amz-request-id")


def _backend_key(seaweed: Seaweed) -> Any:
    from catalog.keys import KeyPair

    env = seaweed.env
    return KeyPair(env["NEBULA_BACKEND_ACCESS_KEY"], env["NEBULA_BACKEND_SECRET_KEY"])


def test_range_and_conditional_requests(s3: Any) -> None:
    put = s3.put_object(Bucket="media", Key="fwd/range.bin", Body=bytes(range(256)) * 4)
    part = s3.get_object(Bucket="media", Key="fwd/range.bin", Range="bytes=10-19")
    assert part["Body"].read() == bytes(range(10, 20))
    assert part["ContentRange"] == "bytes 10-19/1024"
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    with pytest.raises(ClientError) as caught:
        s3.get_object(Bucket="media", Key="fwd/range.bin", IfNoneMatch=put["ETag"])
    assert caught.value.response["Error"]["Code"] in ("304", "NotModified")
    with pytest.raises(ClientError) as caught:
        s3.get_object(Bucket="media", Key="fwd/range.bin", IfMatch='"0000"')
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412


def test_missing_object_error_is_xml_with_our_request_id(proxy: ProxyUnderTest) -> None:
    url = f"{proxy.endpoint}/media/fwd/never-there.txt"
    answer = send("GET", url, signed_headers("GET", url, proxy.admin))
    assert (answer.status, answer.code) == (404, "NoSuchKey")
    request_id = answer.headers["x-amz-request-id"]
    assert answer.xml("RequestId") == request_id
    deadline = time.monotonic() + 5
    while request_id not in proxy.log():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert proxy.admin.secret not in proxy.log()


def test_listing_v1_and_v2_paginate(s3: Any) -> None:
    prefix = f"fwd/list-{uuid.uuid4().hex[:6]}/"
    for i in range(23):
        s3.put_object(Bucket="media", Key=f"{prefix}{i:03d}", Body=b"x")
    v2 = s3.get_paginator("list_objects_v2").paginate(
        Bucket="media", Prefix=prefix, PaginationConfig={"PageSize": 10}
    )
    pages = list(v2)
    assert [len(p["Contents"]) for p in pages] == [10, 10, 3]
    v1 = s3.get_paginator("list_objects").paginate(
        Bucket="media", Prefix=prefix, PaginationConfig={"PageSize": 7}
    )
    assert sum(len(p["Contents"]) for p in v1) == 23
    deleted = s3.delete_objects(
        Bucket="media", Delete={"Objects": [{"Key": f"{prefix}{i:03d}"} for i in range(23)]}
    )
    assert len(deleted["Deleted"]) == 23
    assert s3.list_objects_v2(Bucket="media", Prefix=prefix)["KeyCount"] == 0


def test_multipart_operations(s3: Any) -> None:
    key = "fwd/multipart.bin"
    part1, part2 = os.urandom(5 * 1024 * 1024), os.urandom(1024)
    upload = s3.create_multipart_upload(Bucket="media", Key=key)["UploadId"]
    e1 = s3.upload_part(Bucket="media", Key=key, UploadId=upload, PartNumber=1, Body=part1)["ETag"]
    s3.put_object(Bucket="media", Key="fwd/part-source.bin", Body=part2)
    e2 = s3.upload_part_copy(
        Bucket="media",
        Key=key,
        UploadId=upload,
        PartNumber=2,
        CopySource={"Bucket": "media", "Key": "fwd/part-source.bin"},
    )["CopyPartResult"]["ETag"]
    assert [
        p["PartNumber"] for p in s3.list_parts(Bucket="media", Key=key, UploadId=upload)["Parts"]
    ] == [1, 2]
    uploads = s3.list_multipart_uploads(Bucket="media", Prefix="fwd/")["Uploads"]
    assert upload in [u["UploadId"] for u in uploads]
    s3.complete_multipart_upload(
        Bucket="media",
        Key=key,
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
    )
    assert s3.get_object(Bucket="media", Key=key)["Body"].read() == part1 + part2

    aborted = s3.create_multipart_upload(Bucket="media", Key="fwd/aborted.bin")["UploadId"]
    s3.abort_multipart_upload(Bucket="media", Key="fwd/aborted.bin", UploadId=aborted)
    remaining = s3.list_multipart_uploads(Bucket="media", Prefix="fwd/aborted").get("Uploads", [])
    assert aborted not in [u["UploadId"] for u in remaining]


def test_copy_and_tagging(s3: Any) -> None:
    s3.put_object(Bucket="media", Key="fwd/original.txt", Body=b"copy me")
    s3.copy_object(
        Bucket="media",
        Key="fwd/copy.txt",
        CopySource={"Bucket": "media", "Key": "fwd/original.txt"},
    )
    assert s3.get_object(Bucket="media", Key="fwd/copy.txt")["Body"].read() == b"copy me"
    s3.put_object_tagging(
        Bucket="media", Key="fwd/copy.txt", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]}
    )
    assert s3.get_object_tagging(Bucket="media", Key="fwd/copy.txt")["TagSet"] == [
        {"Key": "k", "Value": "v"}
    ]


def test_admin_creates_and_deletes_buckets(s3: Any) -> None:
    name = f"made-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.delete_bucket(Bucket=name)


def test_expect_100_continue(proxy: ProxyUnderTest) -> None:
    import asyncio

    url = f"{proxy.endpoint}/media/fwd/expect.bin"
    body = os.urandom(300_000)

    async def put(headers: dict[str, str]) -> tuple[int, bytes]:
        async with (
            aiohttp.ClientSession() as session,
            session.put(url, data=body, headers=headers, expect100=True) as response,
        ):
            return response.status, await response.read()

    good = signed_headers("PUT", url, proxy.admin, payload="UNSIGNED-PAYLOAD")
    assert asyncio.run(put(good))[0] == 200
    bad = signed_headers(
        "PUT", url.replace("expect.bin", "other.bin"), proxy.admin, payload="UNSIGNED-PAYLOAD"
    )
    status, text = asyncio.run(put(bad))
    assert status == 403 and b"SignatureDoesNotMatch" in text


def test_client_disconnect_mid_upload_leaves_no_object(proxy: ProxyUnderTest, s3: Any) -> None:
    key = f"fwd/cut-{uuid.uuid4().hex[:6]}.bin"
    url = f"{proxy.endpoint}/media/{key}"
    headers = signed_headers("PUT", url, proxy.admin, payload="UNSIGNED-PAYLOAD")
    host, port = proxy.endpoint.rsplit("/", 1)[1].split(":")
    with socket.create_connection((host, int(port))) as sock:
        head = f"PUT /media/{key} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {4 << 20}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode() + os.urandom(1 << 20))
        time.sleep(0.5)
    deadline = time.monotonic() + 10
    while f"/media/{key}" not in proxy.log():
        assert time.monotonic() < deadline, "the cut upload was never logged"
        time.sleep(0.2)
    with pytest.raises(ClientError) as caught:
        s3.head_object(Bucket="media", Key=key)
    assert caught.value.response["Error"]["Code"] == "404"


def test_large_stream_roundtrip_keeps_memory_flat(proxy: ProxyUnderTest, tmp_path: Path) -> None:
    """200 MiB through the proxy in each direction; its peak RSS grows by far less."""
    size, piece = 200 << 20, os.urandom(1 << 20)
    status_path = Path(f"/proc/{proxy.process.pid}/status")
    Path(f"/proc/{proxy.process.pid}/clear_refs").write_text("5")  # reset VmHWM
    before = _vm_kib(status_path, "VmRSS")
    url = f"{proxy.endpoint}/media/fwd/large.bin"
    headers = signed_headers("PUT", url, proxy.admin, payload="UNSIGNED-PAYLOAD")
    answer = send(
        "PUT",
        url,
        {**headers, "Content-Length": str(size)},
        (piece for _ in range(size >> 20)),
        timeout=300,
    )
    assert answer.status == 200, answer.body
    s3 = s3_client(proxy.endpoint, proxy.admin)
    received = 0
    for chunk in _iter(s3.get_object(Bucket="media", Key="fwd/large.bin")["Body"]):
        received += len(chunk)
    assert received == size
    growth_mib = (_vm_kib(status_path, "VmHWM") - before) / 1024
    print(f"proxy RSS before {before / 1024:.0f} MiB, peak growth {growth_mib:.1f} MiB")
    assert growth_mib < 64, f"proxy peak RSS grew {growth_mib:.0f} MiB for a 200 MiB object"


def _iter(body: Any) -> Iterator[bytes]:
    yield from iter(lambda: body.read(1 << 20), b"")


def _vm_kib(path: Path, field: str) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} missing")


def test_backend_down_gives_503_xml(tmp_path: Path, seaweed: Seaweed) -> None:
    from nebula.storage import free_internal_port

    dead = start_proxy(
        tmp_path,
        seaweed,
        {"NEBULA_BACKEND_URL": f"http://127.0.0.1:{free_internal_port()}"},
        create_buckets=False,
    )
    try:
        url = f"{dead.endpoint}/media/anything.txt"
        for method, body in (("GET", b""), ("PUT", b"data")):
            headers = signed_headers(method, url, dead.admin, body=body)
            answer = send(method, url, headers, body)
            assert (answer.status, answer.code) == (503, "ServiceUnavailable")
            assert answer.xml("RequestId") == answer.headers["x-amz-request-id"]
    finally:
        dead.stop()


def test_clients_outside_the_allow_list_get_s3_xml(tmp_path: Path, seaweed: Seaweed) -> None:
    closed = start_proxy(tmp_path, seaweed, {"NEBULA_ALLOW_CIDRS": "10.99.0.0/16"})
    try:
        s3 = s3_client(closed.endpoint, closed.admin)
        with pytest.raises(ClientError) as caught:
            s3.list_buckets()
        assert caught.value.response["Error"]["Code"] == "AccessDenied"
        # The answer names the setting that lets the network in, as the log line does.
        message = caught.value.response["Error"]["Message"]
        assert message.startswith("Your network (127.0.0.1) is not allowed")
        assert "NEBULA_ALLOW_CIDRS" in message
        assert "NEBULA_ALLOW_CIDRS" in closed.log()
    finally:
        closed.stop()


def test_put_from_file_object(s3: Any) -> None:
    s3.upload_fileobj(io.BytesIO(b"z" * 10_000_000), "media", "fwd/multi.bin")
    assert s3.head_object(Bucket="media", Key="fwd/multi.bin")["ContentLength"] == 10_000_000


def test_empty_object(s3: Any) -> None:
    s3.put_object(Bucket="media", Key="fwd/empty.txt", Body=b"")
    assert s3.head_object(Bucket="media", Key="fwd/empty.txt")["ContentLength"] == 0
    assert s3.get_object(Bucket="media", Key="fwd/empty.txt")["Body"].read() == b""


def test_healthz_and_metrics(proxy: ProxyUnderTest) -> None:
    import json
    import urllib.request

    with urllib.request.urlopen(proxy.endpoint + "/healthz", timeout=10) as response:
        report = json.loads(response.read())
    assert report["ok"] and set(report["checks"]) == {"backend", "catalog"}
    with urllib.request.urlopen(proxy.endpoint + "/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert "nebula_s3proxy_requests_total" in metrics
    assert 'nebula_jobs{state="queued"}' in metrics and "nebula_queue_depth" in metrics


def test_backend_cut_mid_answer_cuts_the_client(tmp_path: Path, seaweed: Seaweed) -> None:
    """A backend that dies mid-body must not look like a complete (shorter) object. The
    answer is counted and logged under the status its head carried (the client saw a 200,
    cut), with ``StreamInterrupted`` in the access log, never as a 500; its download slot
    (one per key here) comes back."""
    import http.client

    cut_answer = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000
    one = {"NEBULA_DOWNLOADS_PER_KEY": "1"}
    with proxy_to_scripted_backend(tmp_path, seaweed, cut_answer, one) as (server, _):
        url = f"{server.endpoint}/media/cut.bin"
        host, proxy_port = server.endpoint.rsplit("/", 1)[1].split(":")
        total = "nebula_s3proxy_requests_total"
        before = {
            status: metric_sample(server.endpoint, total, method="GET", status=status)
            for status in ("200", "500")
        }
        conn = http.client.HTTPConnection(host, int(proxy_port), timeout=30)
        conn.request("GET", "/media/cut.bin", headers=signed_headers("GET", url, server.admin))
        response = conn.getresponse()
        assert response.status == 200
        with pytest.raises(http.client.IncompleteRead):
            response.read()
        entry = access_line(server, response.headers["x-amz-request-id"])
        assert (entry["status"], entry["error"]) == (200, "StreamInterrupted")
        after = {
            status: metric_sample(server.endpoint, total, method="GET", status=status)
            for status in ("200", "500")
        }
        # 200: the cut answer, and the two scrapes before this one (each is counted once
        # it is answered, so not by itself).
        assert {s: after[s] - before[s] for s in after} == {"200": 3, "500": 0}
        # The slot is free again: a leaked one would make this 503 SlowDown.
        conn = http.client.HTTPConnection(host, int(proxy_port), timeout=30)
        conn.request("GET", "/media/cut.bin", headers=signed_headers("GET", url, server.admin))
        assert conn.getresponse().status == 200
