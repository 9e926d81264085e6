"""Attacks on browser uploads (POST forms), each checked on the backend: nothing stored.

Header injection through form fields, part headers and bodies aiohttp cannot read, a
Content-Encoding on the form, content-length-range conditions that disagree, a malformed
``x-amz-date`` and policies that live for months.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from nebulacore.s3 import backend_client
from s3proxy.post_policy import MAX_POLICY_LIFETIME
from tests.s3proxy.signing import send
from tests.s3proxy.test_post_policy import (
    Post,
    error_code,
    multipart,
    nothing_under,
    presigned,
    stored,
    submit,
)
from tests.stacks import ProxyUnderTest

ANY_VALUE = ["starts-with", "$x-amz-meta-note", ""]
BOUNDARY = "b0undary"


@pytest.fixture(scope="module")
def backend(proxy: ProxyUnderTest) -> Any:
    return backend_client(proxy.settings)


def prefix() -> str:
    return f"attack/{uuid.uuid4().hex[:10]}/"


def refused(answer: requests.Response, status: int, code: str) -> None:
    assert (answer.status_code, error_code(answer)) == (status, code), answer.text


@pytest.mark.parametrize(
    ("field", "condition"),
    [
        ("success_action_redirect", ["starts-with", "$success_action_redirect", ""]),
        ("x-amz-meta-note", ANY_VALUE),
        ("content-disposition", ["starts-with", "$Content-Disposition", ""]),
    ],
)
def test_crlf_in_a_field_that_becomes_a_header(
    proxy: ProxyUnderTest, backend: Any, field: str, condition: list[str]
) -> None:
    """The policy allows any value; a CR/LF in it would split the stored object's header or
    the answer's Location (which once failed after the object was stored)."""
    where = prefix()
    value = "http://app.example.org/done\r\nSet-Cookie: session=stolen"
    post = presigned(proxy, where + "x.bin", fields={field: value}, conditions=[condition])
    refused(submit(post), 400, "InvalidArgument")
    assert nothing_under(backend, where)


def raw_form(post: Post, file_part_headers: str, data: bytes = b"hello") -> bytes:
    return (
        multipart(post["fields"], BOUNDARY)
        + f"--{BOUNDARY}\r\n{file_part_headers}\r\n\r\n".encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def post_raw(post: Post, body: bytes, **headers: str) -> Any:
    sent = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", **headers}
    return send("POST", post["url"], sent, body)


def test_a_one_mib_part_header_line(proxy: ProxyUnderTest, backend: Any) -> None:
    where = prefix()
    post = presigned(proxy, where + "x.bin")
    disposition = 'Content-Disposition: form-data; name="file"; filename="x.bin"'
    long_line = f"{disposition}\r\nX-Padding: {'a' * (1 << 20)}"
    answer = post_raw(post, raw_form(post, long_line))
    assert (answer.status, answer.code) == (400, "MalformedPOSTRequest"), answer.body[:300]
    assert nothing_under(backend, where)


@pytest.mark.parametrize("garbage", [True, False])
def test_a_gzip_encoded_form(proxy: ProxyUnderTest, backend: Any, garbage: bool) -> None:
    """S3 never decodes a request body: gzip garbage, and a gzipped good form alike, are
    not multipart/form-data as sent."""
    where = prefix()
    post = presigned(proxy, where + "x.bin")
    form = raw_form(post, 'Content-Disposition: form-data; name="file"; filename="x.bin"')
    body = os.urandom(4096) if garbage else gzip.compress(form)
    answer = post_raw(post, body, **{"Content-Encoding": "gzip"})
    assert (answer.status, answer.code) == (400, "MalformedPOSTRequest"), answer.body[:300]
    assert nothing_under(backend, where)


@pytest.mark.parametrize(
    "ranges",
    [
        [["content-length-range", 0, 1000], ["content-length-range", 0, 1 << 30]],
        [["content-length-range", 0, 1 << 30], ["content-length-range", 0, 1000]],
    ],
)
def test_the_tightest_content_length_range_wins(
    proxy: ProxyUnderTest, backend: Any, ranges: list[Any]
) -> None:
    where = prefix()
    post = presigned(proxy, where + "x.bin", conditions=ranges)
    refused(submit(post, os.urandom(2000)), 400, "EntityTooLarge")
    assert nothing_under(backend, where)
    assert submit(post, os.urandom(1000)).status_code == 204
    assert stored(backend, where + "x.bin") is not None


def signed_by_hand(proxy: ProxyUnderTest, key: str, stamp: str) -> Post:
    """A SigV4 form whose policy takes any ``x-amz-date`` of the day (boto3's would pin the
    exact value), signed by botocore for the timestamp ``stamp``."""
    pair, region = proxy.admin, proxy.settings.region
    credential = f"{pair.access_key_id}/{stamp[:8]}/{region}/s3/aws4_request"
    expiration = (datetime.now(UTC) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    conditions = [
        {"bucket": "media"},
        {"key": key},
        {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
        {"x-amz-credential": credential},
        ["starts-with", "$x-amz-date", stamp[:8]],
    ]
    policy = base64.b64encode(
        json.dumps({"expiration": expiration, "conditions": conditions}).encode()
    ).decode()
    request = AWSRequest(method="POST", url="http://s3/")
    request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(pair.access_key_id, pair.secret), "s3", region)
    fields = {
        "key": key,
        "x-amz-algorithm": "AWS4-HMAC-SHA256",
        "x-amz-credential": credential,
        "x-amz-date": stamp,
        "policy": policy,
        "x-amz-signature": signer.signature(policy, request),
    }
    return {"url": f"{proxy.endpoint}/media", "fields": fields}


@pytest.mark.parametrize(
    "time_of_day",
    ["T12000Z", "T1:2:3Z", " 120000Z", "T1200000Z", "T120000"],
)
def test_a_malformed_x_amz_date(proxy: ProxyUnderTest, backend: Any, time_of_day: str) -> None:
    """Only the date part enters the signing key: a mangled time still verified, and
    strptime alone took fields of fewer digits."""
    where = prefix()
    today = datetime.now(UTC).strftime("%Y%m%d")
    good = signed_by_hand(proxy, where + "good.bin", today + "T120000Z")
    assert submit(good).status_code == 204  # the hand-made form is right otherwise
    post = signed_by_hand(proxy, where + "x.bin", today + time_of_day)
    refused(submit(post), 400, "InvalidArgument")
    assert stored(backend, where + "x.bin") is None


def test_a_policy_living_longer_than_seven_days(proxy: ProxyUnderTest, backend: Any) -> None:
    where = prefix()
    week = int(MAX_POLICY_LIFETIME.total_seconds())
    too_long = presigned(proxy, where + "x.bin", expires=week + 3600)
    refused(submit(too_long), 400, "InvalidPolicyDocument")
    assert nothing_under(backend, where)
    assert submit(presigned(proxy, where + "x.bin", expires=week - 60)).status_code == 204
    assert stored(backend, where + "x.bin") is not None


def test_a_file_name_cannot_walk_out_of_the_forms_prefix(
    proxy: ProxyUnderTest, backend: Any
) -> None:
    """``${filename}`` is the browser's word: ``../../x`` passes the policy's starts-with
    and a prefix scope as text, and SeaweedFS would store it outside both."""
    where, escape = prefix(), f"escape-{uuid.uuid4().hex[:10]}"
    post = presigned(proxy, where + "${filename}", conditions=[["starts-with", "$key", where]])
    refused(submit(post, filename=f"../../{escape}/v.mp4"), 400, "InvalidArgument")
    assert nothing_under(backend, escape)
    assert nothing_under(backend, where)
    assert submit(post, filename="v.mp4").status_code == 204  # the form itself still works


@pytest.mark.parametrize(
    "fields",
    [
        {"x-amz-server-side-encryption": "AES256"},
        {"x-amz-server-side-encryption-customer-algorithm": "AES256"},
    ],
)
def test_a_form_asking_for_encryption_is_refused_as_a_put(
    proxy: ProxyUnderTest, backend: Any, fields: dict[str, str]
) -> None:
    where = prefix()
    name, value = next(iter(fields.items()))
    post = presigned(proxy, where + "x.bin", fields=fields, conditions=[{name: value}])
    refused(submit(post), 501, "NotImplemented")
    assert nothing_under(backend, where)
