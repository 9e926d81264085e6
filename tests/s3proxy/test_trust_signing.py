"""What is signed is what happens (issue 9): unsigned ``x-amz-*`` headers and an unsigned
``host`` are refused, and the backend receives an allow-list of headers.

Each attack is performed against the real proxy and SeaweedFS; the backend is then read
directly to show that nothing was stored, copied or overwritten.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from nebulacore.s3 import backend_client
from tests.s3proxy.conftest import proxy_to_scripted_backend
from tests.s3proxy.signing import Answer, presign, send, signed_headers
from tests.stacks import S3_DOMAIN, ProxyUnderTest, Seaweed

SECRET = b"private: only for readers of hls"
NOT_SIGNED = "There were headers present in the request which were not signed"


def on_backend(proxy: ProxyUnderTest, bucket: str, key: str) -> bytes | None:
    try:
        body = backend_client(proxy.settings).get_object(Bucket=bucket, Key=key)["Body"]
        return bytes(body.read())
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchKey"
        return None


@pytest.fixture(scope="module")
def secret_key(proxy: ProxyUnderTest) -> str:
    key = f"trust/secret-{uuid.uuid4().hex}.txt"
    backend_client(proxy.settings).put_object(Bucket="hls", Key=key, Body=SECRET)
    return key


def fresh_target(proxy: ProxyUnderTest) -> tuple[str, str]:
    key = f"trust/{uuid.uuid4().hex}.bin"
    return key, f"{proxy.endpoint}/media/{key}"


def assert_not_signed(answer: Answer, header: str) -> None:
    assert (answer.status, answer.code) == (403, "AccessDenied"), answer.body
    assert answer.xml("Message") == NOT_SIGNED
    assert header in (answer.xml("HeadersNotSigned") or "")


def test_presigned_put_cannot_be_turned_into_a_copy(proxy: ProxyUnderTest, secret_key: str) -> None:
    """The issue's attack: a presigned PUT URL plus an unsigned x-amz-copy-source."""
    key, url = fresh_target(proxy)
    answer = send(
        "PUT", presign("PUT", url, proxy.admin), {"x-amz-copy-source": f"hls/{secret_key}"}
    )
    assert_not_signed(answer, "x-amz-copy-source")
    assert on_backend(proxy, "media", key) is None


def test_header_signed_put_cannot_be_turned_into_a_copy(
    proxy: ProxyUnderTest, secret_key: str
) -> None:
    key, url = fresh_target(proxy)
    headers = signed_headers("PUT", url, proxy.admin, body=b"")
    answer = send("PUT", url, {**headers, "x-amz-copy-source": f"/hls/{secret_key}"})
    assert_not_signed(answer, "x-amz-copy-source")
    assert on_backend(proxy, "media", key) is None


@pytest.mark.parametrize(
    "header",
    [
        ("x-amz-meta-owner", "mallory"),
        ("x-amz-tagging", "public=yes"),
        ("x-amz-website-redirect-location", "/elsewhere"),
        ("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
    ],
)
def test_unsigned_amz_headers_are_refused_on_presigned_puts(
    proxy: ProxyUnderTest, header: tuple[str, str]
) -> None:
    key, url = fresh_target(proxy)
    answer = send("PUT", presign("PUT", url, proxy.admin), dict([header]), b"payload")
    assert_not_signed(answer, header[0])
    assert on_backend(proxy, "media", key) is None


@pytest.mark.parametrize(
    "header", [("x-amz-meta-owner", "mallory"), ("x-amz-tagging", "public=yes")]
)
def test_unsigned_amz_headers_are_refused_on_signed_puts(
    proxy: ProxyUnderTest, header: tuple[str, str]
) -> None:
    key, url = fresh_target(proxy)
    name, value = header
    headers = signed_headers(
        "PUT", url, proxy.admin, {name: value}, body=b"payload", leave_unsigned=[name]
    )
    answer = send("PUT", url, headers, b"payload")
    assert_not_signed(answer, name)
    assert on_backend(proxy, "media", key) is None
    # Signed, the same header is accepted and stored: the rule is coverage, not the header.
    headers = signed_headers("PUT", url, proxy.admin, {name: value}, body=b"payload")
    assert send("PUT", url, headers, b"payload").status == 200
    head = backend_client(proxy.settings).head_object(Bucket="media", Key=key)
    if name == "x-amz-meta-owner":
        assert head["Metadata"] == {"owner": "mallory"}


def test_a_header_carried_in_the_presigned_query_may_be_sent(proxy: ProxyUnderTest) -> None:
    key, url = fresh_target(proxy)
    signed_url = presign("PUT", url + "?x-amz-meta-origin=phone", proxy.admin)
    answer = send("PUT", signed_url, {"x-amz-meta-origin": "phone"}, b"payload")
    assert answer.status == 200, answer.body
    assert on_backend(proxy, "media", key) == b"payload"
    answer = send("PUT", signed_url, {"x-amz-meta-origin": "other"}, b"changed")
    assert_not_signed(answer, "x-amz-meta-origin")
    assert on_backend(proxy, "media", key) == b"payload"


def test_a_signature_without_host_is_refused(proxy: ProxyUnderTest) -> None:
    key, url = fresh_target(proxy)
    headers = signed_headers("PUT", url, proxy.admin, body=b"payload", leave_unsigned=["host"])
    assert "host;" not in headers["Authorization"]
    answer = send("PUT", url, headers, b"payload")
    assert_not_signed(answer, "host")
    assert on_backend(proxy, "media", key) is None


def test_virtual_hosted_signature_cannot_be_replayed_on_another_bucket(
    proxy: ProxyUnderTest,
) -> None:
    """Signed for media.<domain> without host, replayed against hls.<domain>."""
    port = proxy.endpoint.rsplit(":", 1)[1]
    key = f"trust/replay-{uuid.uuid4().hex}.txt"
    media_url = f"http://media.{S3_DOMAIN}:{port}/{key}"
    headers = signed_headers(
        "PUT", media_url, proxy.admin, body=b"replayed", leave_unsigned=["host"]
    )
    replay = {**headers, "Host": f"hls.{S3_DOMAIN}:{port}"}
    answer = send("PUT", f"{proxy.endpoint}/{key}", replay, b"replayed")
    assert_not_signed(answer, "host")
    assert on_backend(proxy, "hls", key) is None
    assert on_backend(proxy, "media", key) is None


REVERSE_PROXY_HEADERS = {
    "X-Forwarded-Host": "cloud.example.org",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Port": "443",
    "X-Forwarded-For": "100.64.0.7",
    "X-Real-Ip": "100.64.0.7",
    "Forwarded": "for=100.64.0.7;host=cloud.example.org;proto=https",
    "Via": "1.1 caddy",
}


def test_requests_behind_a_reverse_proxy_work(proxy: ProxyUnderTest) -> None:
    """Traefik and Caddy add X-Forwarded-Host; SeaweedFS used to verify against it."""
    key, url = fresh_target(proxy)
    headers = signed_headers("PUT", url, proxy.admin, body=b"behind traefik")
    answer = send("PUT", url, {**headers, **REVERSE_PROXY_HEADERS}, b"behind traefik")
    assert answer.status == 200, answer.body
    assert on_backend(proxy, "media", key) == b"behind traefik"
    get = send("GET", url, {**signed_headers("GET", url, proxy.admin), **REVERSE_PROXY_HEADERS})
    assert (get.status, get.body) == (200, b"behind traefik")


OK_EMPTY = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
S3_HEADERS = {
    "Content-Type": "text/plain",
    "Cache-Control": "no-cache",
    "Content-Disposition": "inline",
    "Content-Language": "fr",
    "Expires": "Thu, 01 Dec 2030 16:00:00 GMT",
    "If-None-Match": "*",
    "x-amz-meta-owner": "me",
    "x-amz-storage-class": "STANDARD",
}
JUNK = {
    **REVERSE_PROXY_HEADERS,
    "Cookie": "session=1",
    "X-Custom": "1",
    "Proxy-Authorization": "Basic eDp5",
    "Keep-Alive": "timeout=5",
    "Te": "trailers",
    "Connection": "keep-alive",
    "Origin": "https://player.example.org",  # the proxy answers CORS itself (s3proxy.cors)
}
# What the proxy adds itself: the framing and its own signature for the backend.
OWN_HEADERS = {"host", "content-length", "authorization", "x-amz-date", "x-amz-content-sha256"}


def test_the_backend_receives_only_the_allow_list(tmp_path: Path, seaweed: Seaweed) -> None:
    with proxy_to_scripted_backend(tmp_path, seaweed, OK_EMPTY) as (server, heads):
        url = f"{server.endpoint}/media/trust/allow.txt"
        headers = signed_headers("PUT", url, server.admin, S3_HEADERS, body=b"data")
        assert send("PUT", url, {**headers, **JUNK}, b"data").status == 200
    put = next(head for head in heads if head.startswith(b"PUT "))
    received = {line.split(b":", 1)[0].decode().lower() for line in put.split(b"\r\n")[1:]}
    s3_names = {name.lower() for name in S3_HEADERS}
    assert s3_names <= received
    assert received <= s3_names | OWN_HEADERS, received - s3_names - OWN_HEADERS
