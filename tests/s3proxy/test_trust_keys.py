"""The backend does exactly what the proxy authorized and recorded (issue 19, hole 2).

A key SeaweedFS reads as another (an empty segment, a leading ``/``, ``%2F``, dot
segments) is refused with S3's error; any other spelling reaches the backend as the key
the proxy announced to the catalog. The differential test sends a generated corpus of
spellings and reads back, from the backend's listing and the catalog's assets, what each
side did.
"""

from __future__ import annotations

import contextlib
import itertools
import posixpath
import uuid
from urllib.parse import quote, unquote

import pytest
from botocore.exceptions import ClientError
from sqlalchemy import select

from catalog.keys import KeyPair
from catalog.models import Asset, AssetStatus
from nebulacore.s3 import backend_client
from tests.s3proxy.signing import Answer, md5_b64, s3_client, send, signed_headers
from tests.stacks import S3_DOMAIN, ProxyUnderTest

# Path segments as a client could spell them; the corpus is every pair, then a video name.
SEGMENTS = ["a", "", ".", "..", "%2e", "%2E%2e", "%2F", "b%2Fc", "%5C", ";x", "%3B", "~", "+"]
NAME = "v.mp4"


def corpus() -> list[str]:
    return ["/".join((*pair, NAME)) for pair in itertools.product(SEGMENTS, repeat=2)]


def signed_send(
    proxy: ProxyUnderTest, method: str, raw_path: str, key: KeyPair, body: bytes = b""
) -> Answer:
    """``raw_path`` sent as spelled, signed the way the proxy reads it (a client can always
    compute that signature: the attack needs no secret but its own)."""
    canonical = quote(unquote(raw_path), safe="/~")
    headers = signed_headers(method, proxy.endpoint + canonical, key, body=body)
    return send(method, proxy.endpoint + raw_path, headers, body)


def backend_keys(proxy: ProxyUnderTest, bucket: str = "media") -> set[str]:
    pages = backend_client(proxy.settings).get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def catalog_keys(proxy: ProxyUnderTest) -> set[str]:
    """The keys of the live assets the proxy announced in ``media``."""
    with proxy.catalog.session() as session:
        rows = session.scalars(
            select(Asset.key).where(Asset.bucket == "media", Asset.status != AssetStatus.DELETED)
        )
        return set(rows)


def test_every_spelling_reaches_the_backend_as_the_key_the_proxy_recorded(
    proxy: ProxyUnderTest,
) -> None:
    s3 = backend_client(proxy.settings)
    prefix = f"spell-{uuid.uuid4().hex[:8]}"
    refused = 0
    for spelling in corpus():
        raw = f"/media/{prefix}/{spelling}"
        # What a backend that collapses paths would reach instead of the key as spelled:
        # it must survive a refusal.
        spelled = unquote(raw).removeprefix("/media/")
        collapsed = posixpath.normpath(spelled).lstrip("/")
        if collapsed != spelled:
            with contextlib.suppress(ClientError):  # a name the backend does not take
                s3.put_object(Bucket="media", Key=collapsed, Body=b"bystander")
        stored, recorded = backend_keys(proxy), catalog_keys(proxy)
        answer = signed_send(proxy, "PUT", raw, proxy.admin, spelling.encode())
        new_stored, new_recorded = backend_keys(proxy) - stored, catalog_keys(proxy) - recorded
        if answer.status >= 400:
            refused += 1
            assert (answer.status, answer.code) == (400, "InvalidArgument"), (raw, answer.body)
            assert (new_stored, new_recorded) == (set(), set()), raw
            deleted = signed_send(proxy, "DELETE", raw, proxy.admin)
            assert (deleted.status, deleted.code) == (400, "InvalidArgument"), raw
            assert backend_keys(proxy) == stored, raw
            continue
        assert answer.status == 200, (raw, answer.body)
        assert new_stored == new_recorded and len(new_stored) == 1, (raw, new_stored, new_recorded)
        (key,) = new_stored
        assert s3.get_object(Bucket="media", Key=key)["Body"].read() == spelling.encode(), raw
        deleted = signed_send(proxy, "DELETE", raw, proxy.admin)
        assert deleted.status == 204, (raw, deleted.body)
        assert stored - backend_keys(proxy) == set() and key not in backend_keys(proxy), raw
        assert key not in catalog_keys(proxy), raw
    assert 0 < refused < len(corpus())


@pytest.mark.parametrize("spelling", ["/media//", "/media/%2F", "/media/%2F%2F"])
def test_an_rw_key_cannot_delete_a_bucket_through_a_slash_key(
    proxy: ProxyUnderTest, spelling: str
) -> None:
    bucket = f"slash-{uuid.uuid4().hex[:8]}"
    backend_client(proxy.settings).create_bucket(Bucket=bucket)
    rw = proxy.make_key({bucket: "rw"}, "phone")
    answer = signed_send(proxy, "DELETE", spelling.replace("media", bucket), rw)
    assert (answer.status, answer.code) == (400, "InvalidArgument"), answer.body
    backend_client(proxy.settings).head_bucket(Bucket=bucket)  # still there


def test_a_slash_key_on_a_bucket_with_objects_is_s3s_error_not_a_500(
    proxy: ProxyUnderTest,
) -> None:
    answer = signed_send(proxy, "DELETE", "/media//", proxy.admin)
    assert (answer.status, answer.code) == (400, "InvalidArgument"), answer.body


def test_a_leading_slash_does_not_delete_another_video(proxy: ProxyUnderTest) -> None:
    key = f"lead-{uuid.uuid4().hex[:8]}.mp4"
    backend_client(proxy.settings).put_object(Bucket="media", Key=key, Body=b"video")
    answer = signed_send(proxy, "DELETE", f"/media//{key}", proxy.make_key({"media": "rw"}))
    assert (answer.status, answer.code) == (400, "InvalidArgument"), answer.body
    assert key in backend_keys(proxy)


@pytest.mark.parametrize("odd", ["/", "/{key}", "./{key}", "x/../{key}", "x//{key}"])
def test_delete_objects_refuses_keys_the_backend_reads_differently(
    proxy: ProxyUnderTest, odd: str
) -> None:
    bucket = f"multi-{uuid.uuid4().hex[:8]}"
    backend = backend_client(proxy.settings)
    backend.create_bucket(Bucket=bucket)
    key = "video.mp4"
    backend.put_object(Bucket=bucket, Key=key, Body=b"video")
    client = s3_client(proxy.endpoint, proxy.make_key({bucket: "rw"}, "phone"))
    objects = [{"Key": odd.format(key=key)}]
    with pytest.raises(ClientError) as refused:
        client.delete_objects(Bucket=bucket, Delete={"Objects": objects})
    assert refused.value.response["Error"]["Code"] == "InvalidArgument"
    assert backend_keys(proxy, bucket) == {key}


def test_delete_objects_with_two_keys_in_one_object_is_malformed(proxy: ProxyUnderTest) -> None:
    bucket = f"multi-{uuid.uuid4().hex[:8]}"
    backend = backend_client(proxy.settings)
    backend.create_bucket(Bucket=bucket)
    backend.put_object(Bucket=bucket, Key="keep", Body=b"x")
    body = b"<Delete><Object><Key>other</Key><Key>keep</Key></Object></Delete>"
    url = f"{proxy.endpoint}/{bucket}?delete"
    headers = signed_headers("POST", url, proxy.admin, {"Content-MD5": md5_b64(body)}, body=body)
    answer = send("POST", url, headers, body)
    assert (answer.status, answer.code) == (400, "MalformedXML"), answer.body
    assert backend_keys(proxy, bucket) == {"keep"}


@pytest.mark.parametrize(
    "source", ["/media/../hls/{key}", "/media/%2e%2e/hls/{key}", "media//../hls/{key}"]
)
def test_a_copy_source_cannot_walk_out_of_its_bucket(proxy: ProxyUnderTest, source: str) -> None:
    key = f"secret-{uuid.uuid4().hex[:8]}"
    backend_client(proxy.settings).put_object(Bucket="hls", Key=key, Body=b"secret")
    url = f"{proxy.endpoint}/media/copied-{key}"
    extra = {"x-amz-copy-source": source.format(key=key)}
    answer = send("PUT", url, signed_headers("PUT", url, proxy.make_key({"media": "rw"}), extra))
    assert answer.status == 400, answer.body
    assert f"copied-{key}" not in backend_keys(proxy)


def test_a_repeated_query_parameter_is_refused(proxy: ProxyUnderTest) -> None:
    """fetch-owner=true&fetch-owner=false: the proxy read the last, SeaweedFS the first."""
    url = f"{proxy.endpoint}/media?list-type=2&fetch-owner=true&fetch-owner=false"
    answer = send("GET", url, signed_headers("GET", url, proxy.admin))
    assert (answer.status, answer.code) == (400, "InvalidArgument"), answer.body
    assert b"nebula" not in answer.body


@pytest.mark.parametrize("value", ["1", "t", "TRUE", "True"])
def test_fetch_owner_as_go_reads_true_never_shows_the_backend_identity(
    proxy: ProxyUnderTest, value: str
) -> None:
    backend_client(proxy.settings).put_object(Bucket="media", Key="owned.txt", Body=b"x")
    url = f"{proxy.endpoint}/media?list-type=2&fetch-owner={value}&prefix=owned.txt"
    answer = send("GET", url, signed_headers("GET", url, proxy.admin))
    assert answer.status == 200, answer.body
    assert b"<DisplayName>nebula</DisplayName>" not in answer.body
    assert b"<ID>nebula</ID>" not in answer.body


def test_backend_specific_response_headers_are_not_relayed(proxy: ProxyUnderTest) -> None:
    key = f"hdr-{uuid.uuid4().hex[:8]}.txt"
    backend = backend_client(proxy.settings)
    backend.put_object(Bucket="media", Key=key, Body=b"x")
    direct = backend.get_object(Bucket="media", Key=key)["ResponseMetadata"]["HTTPHeaders"]
    assert "seaweed-x-amz-owner" in direct  # what there is to strip
    for method in ("GET", "HEAD"):
        url = f"{proxy.endpoint}/media/{key}"
        answer = send(method, url, signed_headers(method, url, proxy.admin))
        assert answer.status == 200
        leaked = [name for name in answer.headers if "seaweed" in name]
        assert leaked == [], leaked


def test_an_object_request_naming_a_bucket_sub_resource_is_refused(proxy: ProxyUnderTest) -> None:
    """SeaweedFS routes these by their query whatever the key: ``POST /media/x?delete``
    was a DeleteObjects whose keys the proxy never saw, ``GET /media/x?uploads`` a
    ListMultipartUploads naming the backend identity."""
    victim = f"victim-{uuid.uuid4().hex[:8]}.mp4"
    backend_client(proxy.settings).put_object(Bucket="media", Key=victim, Body=b"v")
    body = f"<Delete><Object><Key>{victim}</Key></Object></Delete>".encode()
    url = f"{proxy.endpoint}/media/anything?delete"
    headers = signed_headers("POST", url, proxy.admin, {"Content-MD5": md5_b64(body)}, body=body)
    answer = send("POST", url, headers, body)
    assert (answer.status, answer.code) == (405, "MethodNotAllowed"), answer.body
    assert victim in backend_keys(proxy)
    url = f"{proxy.endpoint}/media/anything?uploads"
    answer = send("GET", url, signed_headers("GET", url, proxy.admin))
    assert (answer.status, answer.code) == (405, "MethodNotAllowed"), answer.body


@pytest.mark.parametrize("path", ["//", "/%2F", "//video.mp4", "/./video.mp4"])
def test_virtual_hosted_spellings_follow_the_same_rule(proxy: ProxyUnderTest, path: str) -> None:
    """``Host: <bucket>.s3.nebula.test`` with ``DELETE //``: the key is ``/`` there too."""
    bucket = f"vhost-{uuid.uuid4().hex[:8]}"
    backend = backend_client(proxy.settings)
    backend.create_bucket(Bucket=bucket)
    backend.put_object(Bucket=bucket, Key="video.mp4", Body=b"v")
    host = f"{bucket}.{S3_DOMAIN}:{proxy.port}"
    canonical = quote(unquote(path), safe="/~")
    headers = signed_headers("DELETE", f"http://{host}{canonical}", proxy.make_key({bucket: "rw"}))
    answer = send("DELETE", f"{proxy.endpoint}{path}", {**headers, "Host": host})
    assert (answer.status, answer.code) == (400, "InvalidArgument"), answer.body
    assert backend_keys(proxy, bucket) == {"video.mp4"}
