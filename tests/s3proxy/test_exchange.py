"""What the proxy decides a request does (the access log's ``operation`` field)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

import pytest
from botocore.exceptions import ClientError

from catalog.keys import KeyPair
from nebulacore.config import load_settings
from nebulacore.logs import JsonFormatter
from s3proxy.addressing import parse_target
from s3proxy.exchange import Operation, operation
from tests.s3proxy.conftest import ProxyUnderTest
from tests.s3proxy.signing import s3_client

SETTINGS = load_settings({})
COPY = {"x-amz-copy-source": "/media/a.mp4"}


@pytest.mark.parametrize(
    ("method", "path", "headers", "expected"),
    [
        ("GET", "/", {}, "list-buckets"),
        ("POST", "/", {}, "other"),
        ("POST", "/media?delete", {}, "delete-objects"),
        ("GET", "/media", {}, "list-objects"),
        ("GET", "/media?prefix=a&X-Amz-Signature=s", {}, "list-objects"),  # presigned
        ("GET", "/media?list-type=2", {}, "other"),  # V2 names no owner unless asked
        ("GET", "/media?list-type=2&fetch-owner=true", {}, "list-objects"),
        ("GET", "/media?versions", {}, "list-object-versions"),
        ("GET", "/media?uploads", {}, "list-multipart-uploads"),
        ("GET", "/media?cors", {}, "get-bucket-cors"),
        ("PUT", "/media?acl", {}, "put-bucket-acl"),
        ("PUT", "/media", {}, "create-bucket"),
        ("PUT", "/media?cors", {}, "put-bucket-cors"),
        ("DELETE", "/media", {}, "delete-bucket"),
        ("DELETE", "/media?cors", {}, "delete-bucket-cors"),
        ("GET", "/media?acl", {}, "get-bucket-acl"),
        ("PUT", "/media/a.mp4", {}, "put"),
        ("PUT", "/media/a.mp4", COPY, "copy"),
        ("PUT", "/media/a.mp4?partNumber=1&uploadId=u", {}, "other"),
        ("PUT", "/media/a.mp4?tagging", {}, "other"),
        ("POST", "/media/a.mp4?uploadId=u", {}, "complete"),
        ("POST", "/media/a.mp4?uploads", {}, "other"),
        ("DELETE", "/media/a.mp4", {}, "delete"),
        ("DELETE", "/media/a.mp4?uploadId=u", {}, "other"),
        ("GET", "/media/a.mp4", {}, "other"),
        ("GET", "/media/a.mp4?acl", {}, "get-object-acl"),
        ("PUT", "/media/a.mp4?acl", {}, "put-object-acl"),
        ("GET", "/media/a.mp4?uploadId=u", {}, "list-parts"),
    ],
)
def test_operation_of_each_request(
    method: str, path: str, headers: dict[str, str], expected: str
) -> None:
    found = operation(method, parse_target(path, "127.0.0.1:9000", SETTINGS), headers)
    assert found is Operation(expected)
    assert found == expected  # the access log prints the same strings as before


def test_the_access_log_prints_the_operation_as_its_plain_string() -> None:
    record = logging.LogRecord("s3proxy.server.access", logging.INFO, "", 0, "x", (), None)
    record.operation = Operation.DELETE_OBJECTS
    assert json.loads(JsonFormatter().format(record))["operation"] == "delete-objects"


def _access_lines(proxy: ProxyUnderTest, request_ids: set[str]) -> dict[str, dict[str, Any]]:
    """The access-log entries of these requests, once all are written."""
    deadline = time.monotonic() + 10
    while True:
        found: dict[str, dict[str, Any]] = {}
        for line in proxy.log().splitlines():
            if line.startswith("{") and '"request_id"' in line:
                entry = json.loads(line)
                if entry.get("request_id") in request_ids and "operation" in entry:
                    found[entry["request_id"]] = entry
        if set(found) == request_ids:
            return found
        assert time.monotonic() < deadline, f"access lines missing for {request_ids - set(found)}"
        time.sleep(0.1)


def test_the_access_log_reports_what_each_exchange_did(proxy: ProxyUnderTest) -> None:
    s3 = s3_client(proxy.endpoint, proxy.admin)
    key = f"exchange/{uuid.uuid4().hex}.bin"

    def request_id(answer: Mapping[str, Any]) -> str:
        return str(answer["ResponseMetadata"]["RequestId"])

    put = request_id(s3.put_object(Bucket="media", Key=key, Body=b"x" * 10))
    copied = s3.copy_object(Bucket="media", Key=f"{key}.copy", CopySource=f"media/{key}")
    deleted = s3.delete_objects(Bucket="media", Delete={"Objects": [{"Key": f"{key}.copy"}]})
    delete = request_id(s3.delete_object(Bucket="media", Key=key))
    stranger = s3_client(proxy.endpoint, KeyPair("NKNEVERSEEN00000000", "secret"))
    with pytest.raises(ClientError) as refused:
        stranger.head_object(Bucket="media", Key=key)
    refused_id = request_id(refused.value.response)

    expected = {
        put: ("put", proxy.admin.access_key_id, 200),
        request_id(copied): ("copy", proxy.admin.access_key_id, 200),
        request_id(deleted): ("delete-objects", proxy.admin.access_key_id, 200),
        delete: ("delete", proxy.admin.access_key_id, 204),
        refused_id: (None, "NKNEVERSEEN00000000", 403),  # refused before it was verified
    }
    lines = _access_lines(proxy, set(expected))
    seen = {rid: (e["operation"], e["access_key"], e["status"]) for rid, e in lines.items()}
    assert seen == expected
