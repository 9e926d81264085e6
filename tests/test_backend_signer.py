"""The lean backend signer against botocore's own SigV4: byte-identical output for every
kind of request the proxy and the origin send (and stranger ones), at fixed times."""

from __future__ import annotations

import datetime
import hashlib
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from nebulacore.config import load_settings
from nebulacore.s3 import UNSIGNED_PAYLOAD, BackendSigner

KEY, SECRET = "nebula-4f1c2d3e", "s3cr3t/with+odd=chars"
TIMES = [
    datetime.datetime(2026, 11, 29, 12, 0, 5, tzinfo=datetime.UTC),
    datetime.datetime(2026, 11, 29, 23, 59, 59, tzinfo=datetime.UTC),
    datetime.datetime(2026, 11, 30, 0, 0, 0, tzinfo=datetime.UTC),  # a new day's key
    datetime.datetime(2027, 2, 28, 7, 30, 0, tzinfo=datetime.UTC),
]
ENDPOINTS = ["http://127.0.0.1:8333", "http://Storage.Example:80", "https://s3.example.org"]
METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE", "get"]
PAYLOADS = [
    UNSIGNED_PAYLOAD,
    hashlib.sha256(b"").hexdigest(),
    hashlib.sha256(b"nebula" * 999).hexdigest(),
]
KEYS = [
    "",
    "a.txt",
    "dir/sub dir/file name+plus.bin",
    "ünïcødé/日本語/файл.mp4",
    "odd chars !$&'()*,;=:@[]{}|^`%#?",
    "trailing/",
    "~tilde/.dot/..dots",
]
QUERIES = [
    "",
    "uploads",
    "uploadId=abc%2Fdef&partNumber=3",
    "list-type=2&prefix=a%20b%2Bc&delimiter=%2F&max-keys=10",
    "delete",
    "z=1&a=2&a=1&m",
    "tagging&versionId=%C3%BC",
    "a=&=b&&c",
]
HEADER_SETS: list[dict[str, str]] = [
    {},
    {"content-length": "4096"},
    {
        "content-type": "video/mp4",
        "content-length": "10",
        "content-md5": "1B2M2Y8AsgTpgAmY7PhCfg==",
    },
    {"Range": "bytes=0-1023"},
    {"x-amz-meta-title": "  a   title\twith  spaces ", "x-amz-copy-source": "/b/k%20e"},
    {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-meta-ünï": "välue"},
    {"Content-Type": "text/plain", "content-type": "text/html"},  # case twins, both sent
    {"user-agent": "nebula", "expect": "100-continue", "x-amzn-trace-id": "t"},  # unsigned
    {"Host": "other.example:9000", "if-none-match": '"etag"'},
    {"Authorization": "stale", "X-Amz-Date": "19990101T000000Z", "x-amz-content-sha256": "x"},
    {"Date": "Mon, 01 Jan 2024 00:00:00 GMT", "x-amz-date": "ignored"},
    {"cache-control": "no-cache", "content-disposition": 'attachment; filename="a b.txt"'},
]


def settings_for(endpoint: str) -> object:
    return load_settings(
        {
            "NEBULA_BACKEND_URL": endpoint,
            "NEBULA_BACKEND_ACCESS_KEY": KEY,
            "NEBULA_BACKEND_SECRET_KEY": SECRET,
            "NEBULA_BACKEND_REGION": "eu-central-1",
        }
    )


class GivenPayloadAuth(S3SigV4Auth):
    """What the signer replaced: botocore over the payload hash the caller supplies."""

    def payload(self, request: AWSRequest) -> str:
        return str(request.context["payload_hash"])


def botocore_sign(
    region: str, method: str, url: str, headers: dict[str, str], payload_hash: str
) -> list[tuple[str, str]]:
    request = AWSRequest(method=method, url=url, headers=dict(headers))
    request.context["payload_hash"] = payload_hash
    GivenPayloadAuth(Credentials(KEY, SECRET), "s3", region).add_auth(request)
    return list(request.headers.items())


@contextmanager
def frozen(moment: datetime.datetime) -> Iterator[str]:
    with patch("botocore.auth.get_current_datetime", return_value=moment):
        yield moment.strftime("%Y%m%dT%H%M%SZ")


def cases() -> Iterator[tuple[str, str, str, str, dict[str, str], str]]:
    combos = itertools.product(ENDPOINTS, METHODS, KEYS, QUERIES, HEADER_SETS, PAYLOADS)
    # Every value of every dimension appears; a stride keeps the count in the thousands.
    for index, (endpoint, method, key, query, headers, payload) in enumerate(combos):
        if index % 7 == 0:
            yield endpoint, method, key, query, headers, payload


@pytest.mark.parametrize("moment", TIMES, ids=[t.isoformat() for t in TIMES])
def test_signer_output_is_byte_identical_to_botocore(moment: datetime.datetime) -> None:
    signers = {endpoint: BackendSigner(settings_for(endpoint)) for endpoint in ENDPOINTS}  # type: ignore[arg-type]
    compared = 0
    with frozen(moment) as stamp:
        for endpoint, method, key, query, headers, payload in cases():
            signer = signers[endpoint]
            url = signer.url("media-bucket", key, query) if key else f"{endpoint}/?{query}"
            ours = signer.sign(method, url, headers, payload, timestamp=stamp)
            theirs = botocore_sign("eu-central-1", method, url, headers, payload)
            assert list(ours.items()) == theirs, (method, url, headers, payload)
            compared += 1
    assert compared > 3000


def test_signer_dates_requests_now() -> None:
    """Without a timestamp the signer signs at the current second, as botocore does."""
    signer = BackendSigner(settings_for(ENDPOINTS[0]))  # type: ignore[arg-type]
    url = signer.url("b", "k")
    for _ in range(3):  # retried if the second turns between the two signatures
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        ours = signer.sign("GET", url, {}, UNSIGNED_PAYLOAD)
        with frozen(now):
            theirs = botocore_sign("eu-central-1", "GET", url, {}, UNSIGNED_PAYLOAD)
        if ours["X-Amz-Date"] == now.strftime("%Y%m%dT%H%M%SZ"):
            assert list(ours.items()) == theirs
            return
    raise AssertionError("the clock kept turning")
