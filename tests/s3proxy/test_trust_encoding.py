"""Request bodies are never decoded (issue 19, hole 4): the stored bytes are the bytes
sent, and ``Content-Encoding`` is the object's metadata, as on S3. aiohttp decoded a gzip
body before the proxy saw it, so an unsigned or presigned PUT stored other bytes than
were sent; a body that was not gzip at all logged a traceback."""

from __future__ import annotations

import gzip
import os
import uuid

import pytest

from nebulacore.s3 import backend_client
from tests.s3proxy.signing import presign, send, signed_headers
from tests.stacks import ProxyUnderTest

TEXT = b"subtitles, say, compressed by the client " * 2000


def stored(proxy: ProxyUnderTest, key: str) -> tuple[bytes, str | None]:
    answer = backend_client(proxy.settings).get_object(Bucket="media", Key=key)
    return bytes(answer["Body"].read()), answer.get("ContentEncoding")


def put(proxy: ProxyUnderTest, how: str, key: str, body: bytes) -> int:
    url = f"{proxy.endpoint}/media/{key}"
    encoding = {"Content-Encoding": "gzip"}
    if how == "presigned":
        return send("PUT", presign("PUT", url, proxy.admin), encoding, body).status
    payload = "UNSIGNED-PAYLOAD" if how == "unsigned" else None
    headers = signed_headers("PUT", url, proxy.admin, encoding, payload=payload, body=body)
    return send("PUT", url, headers, body).status


@pytest.mark.parametrize("how", ["unsigned", "presigned", "signed"])
def test_a_gzip_body_is_stored_as_sent(proxy: ProxyUnderTest, how: str) -> None:
    key = f"gzip/{uuid.uuid4().hex}.vtt.gz"
    body = gzip.compress(TEXT)
    assert put(proxy, how, key, body) == 200
    assert stored(proxy, key) == (body, "gzip")


@pytest.mark.parametrize("how", ["unsigned", "presigned"])
def test_a_body_that_is_not_gzip_is_stored_as_sent_without_a_traceback(
    proxy: ProxyUnderTest, how: str
) -> None:
    key = f"gzip/{uuid.uuid4().hex}.bin"
    body = os.urandom(100_000)
    assert put(proxy, how, key, body) == 200
    assert stored(proxy, key) == (body, "gzip")
    assert "Traceback" not in proxy.log()
