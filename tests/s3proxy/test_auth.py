"""Authentication: header and presigned SigV4, skew, expiry, unknown keys, regions (SigV2:
test_sigv2.py)."""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from botocore.exceptions import ClientError

from catalog.keys import KeyPair
from tests.s3proxy.signing import Answer, now, presign, s3_client, send, signed_headers
from tests.stacks import S3_DOMAIN, ProxyUnderTest

BODY = b"presigned hello"


@pytest.fixture(scope="module")
def object_url(proxy: ProxyUnderTest) -> str:
    s3_client(proxy.endpoint, proxy.admin).put_object(
        Bucket="media", Key="auth/hello.txt", Body=BODY
    )
    return f"{proxy.endpoint}/media/auth/hello.txt"


def fetch(url: str) -> Answer:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return Answer(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, dict(exc.headers), exc.read())


def test_presigned_get_works_with_plain_http(proxy: ProxyUnderTest, object_url: str) -> None:
    answer = fetch(presign("GET", object_url, proxy.admin, expires=600))
    assert (answer.status, answer.body) == (200, BODY)


def test_presigned_url_from_boto3(proxy: ProxyUnderTest, object_url: str) -> None:
    params = {"Bucket": "media", "Key": "auth/hello.txt"}
    s3 = s3_client(proxy.endpoint, proxy.admin, signature_version="s3v4")
    assert fetch(s3.generate_presigned_url("get_object", Params=params)).body == BODY
    # Without signature_version, boto3 presigns with SigV2, accepted too (test_sigv2.py).
    legacy = s3_client(proxy.endpoint, proxy.admin).generate_presigned_url(
        "get_object", Params=params
    )
    assert "AWSAccessKeyId=" in legacy
    assert fetch(legacy).body == BODY


def test_presigned_put(proxy: ProxyUnderTest) -> None:
    url = presign("PUT", f"{proxy.endpoint}/media/auth/presigned-put.txt", proxy.admin)
    assert send("PUT", url, {}, b"uploaded").status == 200
    assert (
        fetch(presign("GET", f"{proxy.endpoint}/media/auth/presigned-put.txt", proxy.admin)).body
        == b"uploaded"
    )


def test_expired_presign_is_refused(proxy: ProxyUnderTest, object_url: str) -> None:
    url = presign("GET", object_url, proxy.admin, expires=60, when=now() - timedelta(minutes=5))
    answer = fetch(url)
    assert (answer.status, answer.code) == (403, "AccessDenied")
    assert "expired" in (answer.xml("Message") or "")


def test_week_long_presign_is_the_limit(proxy: ProxyUnderTest, object_url: str) -> None:
    week = 7 * 24 * 3600
    assert fetch(presign("GET", object_url, proxy.admin, expires=week)).status == 200
    answer = fetch(presign("GET", object_url, proxy.admin, expires=week + 1))
    assert (answer.status, answer.code) == (400, "AuthorizationQueryParametersError")


def test_tampered_presign_is_refused(proxy: ProxyUnderTest, object_url: str) -> None:
    url = presign("GET", object_url, proxy.admin).replace("auth/hello.txt", "auth/other.txt")
    answer = fetch(url)
    assert (answer.status, answer.code) == (403, "SignatureDoesNotMatch")


@pytest.mark.parametrize("minutes", [-20, 20])
def test_clock_skew_over_15_minutes(proxy: ProxyUnderTest, object_url: str, minutes: int) -> None:
    headers = signed_headers(
        "GET", object_url, proxy.admin, when=now() + timedelta(minutes=minutes)
    )
    answer = send("GET", object_url, headers)
    assert (answer.status, answer.code) == (403, "RequestTimeTooSkewed")


def test_clock_skew_within_15_minutes(proxy: ProxyUnderTest, object_url: str) -> None:
    headers = signed_headers("GET", object_url, proxy.admin, when=now() - timedelta(minutes=10))
    assert send("GET", object_url, headers).status == 200


def test_wrong_secret(proxy: ProxyUnderTest) -> None:
    s3 = s3_client(proxy.endpoint, KeyPair(proxy.admin.access_key_id, "not-the-secret"))
    with pytest.raises(ClientError) as caught:
        s3.list_objects_v2(Bucket="media")
    assert caught.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_unknown_key(proxy: ProxyUnderTest) -> None:
    s3 = s3_client(proxy.endpoint, KeyPair("NKUNKNOWN0000000000", "whatever"))
    with pytest.raises(ClientError) as caught:
        s3.list_objects_v2(Bucket="media")
    assert caught.value.response["Error"]["Code"] == "InvalidAccessKeyId"


def test_revoked_key_stops_working(proxy: ProxyUnderTest) -> None:
    from catalog.keys import revoke_key

    key = proxy.make_key({"media": "r"}, "to-revoke")
    s3 = s3_client(proxy.endpoint, key)
    with proxy.catalog.session() as session:
        revoke_key(session, key.access_key_id)
    import time

    deadline = time.monotonic() + 15  # the proxy caches keys for a few seconds
    while True:
        try:
            s3.list_objects_v2(Bucket="media", MaxKeys=1)
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "InvalidAccessKeyId"
            break
        assert time.monotonic() < deadline
        time.sleep(0.5)


def test_anonymous_is_refused(proxy: ProxyUnderTest, object_url: str) -> None:
    answer = fetch(object_url)
    assert (answer.status, answer.code) == (403, "AccessDenied")


def test_missing_content_sha256_header(proxy: ProxyUnderTest, object_url: str) -> None:
    headers = signed_headers("GET", object_url, proxy.admin)
    del headers["X-Amz-Content-SHA256"]
    answer = send("GET", object_url, headers)
    assert (answer.status, answer.code) == (400, "InvalidRequest")


def test_other_region_is_refused_with_the_expected_one(
    proxy: ProxyUnderTest, object_url: str
) -> None:
    answer = send(
        "GET", object_url, signed_headers("GET", object_url, proxy.admin, region="eu-west-3")
    )
    assert (answer.status, answer.code) == (400, "AuthorizationHeaderMalformed")
    assert answer.xml("Region") == "us-east-1"


def test_virtual_hosted_style(proxy: ProxyUnderTest, object_url: str) -> None:
    port = proxy.endpoint.rsplit(":", 1)[1]
    host = f"media.{S3_DOMAIN}:{port}"
    virtual = f"http://{host}/auth/hello.txt"
    headers = signed_headers("GET", virtual, proxy.admin)
    answer = send("GET", f"{proxy.endpoint}/auth/hello.txt", {**headers, "Host": host})
    assert (answer.status, answer.body) == (200, BODY)
    listing = f"http://{host}/?list-type=2&prefix=auth%2F"
    answer = send(
        "GET",
        f"{proxy.endpoint}/?list-type=2&prefix=auth%2F",
        {**signed_headers("GET", listing, proxy.admin), "Host": host},
    )
    assert answer.status == 200 and b"auth/hello.txt" in answer.body


def test_signed_special_characters_in_keys(proxy: ProxyUnderTest) -> None:
    s3 = s3_client(proxy.endpoint, proxy.admin)
    for key in [
        "auth/with space.txt",
        "auth/plus+sign.txt",
        "auth/ünïcødé.txt",
        "auth/a=b&c?d.txt",
        "auth/tilde~(x)*.txt",
    ]:
        s3.put_object(Bucket="media", Key=key, Body=key.encode())
        assert s3.get_object(Bucket="media", Key=key)["Body"].read() == key.encode()
        listed = s3.list_objects_v2(Bucket="media", Prefix=key)
        assert [o["Key"] for o in listed["Contents"]] == [key]
