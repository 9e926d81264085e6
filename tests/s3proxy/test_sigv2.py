"""AWS Signature Version 2 (issue 10): the presigned URLs aws CLI v1, s3cmd and boto3 make
by default, s3cmd in SigV2 mode, and header auth signed by botocore's ``HmacV1Auth``, all
through the real proxy and SeaweedFS; every tampering refused with nothing stored.

The installed clients were checked to presign with SigV2 by default: ``aws s3 presign``
(aws CLI v1), ``s3cmd signurl`` (always) and boto3's ``generate_presigned_url`` without
``signature_version``; the tests assert the URLs they produce are SigV2 ones.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import time
import uuid
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from botocore.auth import HmacV1Auth, HmacV1QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from multidict import CIMultiDict

from catalog.keys import KeyPair
from nebulacore.config import Settings
from nebulacore.s3 import backend_client
from s3proxy.addressing import parse_target
from s3proxy.errors import S3Error
from s3proxy.sigv2 import parse_claim_v2, sign_v2
from tests.s3proxy.clients import Target, clean_env, run, s3cmd_config, wait_until_expired
from tests.s3proxy.signing import Answer, md5_b64, presign, s3_client, send
from tests.s3proxy.test_trust_signing import on_backend
from tests.stacks import S3_DOMAIN, ProxyUnderTest, Seaweed, start_proxy

BODY = b"signed the old way\n" * 32
NOT_SIGNED = "There were query parameters present in the request which were not signed"


# ----- signing with botocore's SigV2 -------------------------------------------------


class _DatedAuth(HmacV1Auth):
    """botocore's SigV2 header signer, dating the request at a chosen time (skew tests)."""

    def __init__(self, credentials: Credentials, when: float | None) -> None:
        super().__init__(credentials)
        self._when = when

    def _get_date(self) -> str:  # botocore's own hook for the Date it signs
        return formatdate(time.time() if self._when is None else self._when, usegmt=True)


def v2_headers(
    method: str,
    url: str,
    key: KeyPair,
    headers: CIMultiDict[str] | dict[str, str] | None = None,
    auth_path: str | None = None,
    when: float | None = None,
) -> CIMultiDict[str]:
    """The request's headers plus ``Date`` and ``Authorization: AWS …`` from botocore's
    ``HmacV1Auth`` (``auth_path``: the signed resource in virtual-hosted style; ``when``:
    the signing time, now by default)."""
    request = AWSRequest(method=method, url=url)
    for name, value in (headers or {}).items():  # a repeated header stays repeated
        request.headers[name] = value
    request.auth_path = auth_path
    _DatedAuth(Credentials(key.access_key_id, key.secret), when).add_auth(request)
    return CIMultiDict(request.headers.items())


def v2_presign(method: str, url: str, key: KeyPair, expires: int = 3600) -> str:
    """A SigV2 query URL from botocore's ``HmacV1QueryAuth``."""
    request = AWSRequest(method=method, url=url)
    HmacV1QueryAuth(Credentials(key.access_key_id, key.secret), expires=expires).add_auth(request)
    return str(request.url)


def curl(url: str, *args: str) -> tuple[int, bytes]:
    """Fetch ``url`` with curl as it is (``-g``: no globbing of [] {}): status and body."""
    result = subprocess.run(
        ["curl", "-sS", "-g", "--path-as-is", "-o", "-", "-w", "\n%{http_code}", *args, url],
        capture_output=True,
        timeout=60,
        check=True,
    )
    body, _, status = result.stdout.rpartition(b"\n")
    return int(status), body


def is_sigv2_url(url: str) -> bool:
    query = urlsplit(url).query
    return "AWSAccessKeyId=" in query and "Signature=" in query and "X-Amz-" not in query


def fresh(proxy: ProxyUnderTest, name: str = "obj.txt") -> tuple[str, str]:
    """A new key under media/ and its URL (percent-encoded as botocore encodes keys)."""
    key = f"sigv2/{uuid.uuid4().hex}/{name}"
    return key, f"{proxy.endpoint}/media/{quote(key, safe='/~')}"


def stored(proxy: ProxyUnderTest, name: str = "obj.txt", body: bytes = BODY) -> tuple[str, str]:
    key, url = fresh(proxy, name)
    backend_client(proxy.settings).put_object(Bucket="media", Key=key, Body=body)
    return key, url


def assert_refused(answer: Answer, status: int, code: str) -> None:
    assert (answer.status, answer.code) == (status, code), answer.body


def code_of(body: bytes) -> str | None:
    return Answer(0, {}, body).code


# ----- the clients' default presigned URLs, fetched with curl ---------------------------


def default_aws_env(key: KeyPair, directory: Path) -> dict[str, str]:
    """aws CLI v1 with its defaults: no ``signature_version`` in its config."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config").write_text("[default]\nregion = us-east-1\n")
    (directory / "credentials").write_text(
        f"[default]\naws_access_key_id = {key.access_key_id}\n"
        f"aws_secret_access_key = {key.secret}\n"
    )
    return clean_env(
        AWS_CONFIG_FILE=str(directory / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(directory / "credentials"),
        HOME=str(directory),
    )


@pytest.mark.parametrize("name", ["plain.txt", "a key with spaces/été ü 日本 +&=.txt"])
def test_aws_cli_presign_fetched_with_curl(
    proxy: ProxyUnderTest, tmp_path: Path, name: str
) -> None:
    key, _ = stored(proxy, name)
    env = default_aws_env(proxy.admin, tmp_path / "aws")
    argv = ["aws", "--endpoint-url", proxy.endpoint, "s3", "presign", f"s3://media/{key}"]
    url = run(argv, env).stdout.strip()
    assert is_sigv2_url(url), url
    assert curl(url) == (200, BODY)
    # The same URL for another key is refused.
    status, body = curl(url.replace("sigv2/", "sigv2-other/", 1))
    assert (status, code_of(body)) == (403, "SignatureDoesNotMatch")


def s3cmd_v2(proxy: ProxyUnderTest, key: KeyPair, directory: Path) -> list[str]:
    """The s3cmd argv prefix with a config pointing at the proxy, SigV2 switched on."""
    target = Target("proxy", proxy.endpoint, key, None)
    config = s3cmd_config(target, key, directory)
    config.write_text(config.read_text().replace("signature_v2 = False", "signature_v2 = True"))
    return ["s3cmd", "-c", str(config)]


def test_s3cmd_signurl_fetched_with_curl(proxy: ProxyUnderTest, tmp_path: Path) -> None:
    key, _ = stored(proxy, "signed url é.txt")
    s3cmd = s3cmd_v2(proxy, proxy.admin, tmp_path / "s3cmd")
    env = clean_env(HOME=str(tmp_path))
    url = run([*s3cmd, "signurl", f"s3://media/{key}", "+600"], env).stdout.strip()
    assert is_sigv2_url(url), url
    assert curl(url) == (200, BODY)
    brief = run([*s3cmd, "signurl", f"s3://media/{key}", "+1"], env).stdout.strip()
    wait_until_expired(1)
    status, body = curl(brief)
    assert (status, code_of(body)) == (403, "AccessDenied")
    assert b"Request has expired" in body


def test_boto3_default_presigned_urls_fetched_with_curl(proxy: ProxyUnderTest) -> None:
    key, _ = stored(proxy, "boto3 default.txt")
    params = {"Bucket": "media", "Key": key}
    default = s3_client(proxy.endpoint, proxy.admin).generate_presigned_url(
        "get_object", Params=params
    )
    assert is_sigv2_url(default), default  # botocore 1.43 still presigns S3 with SigV2
    assert curl(default) == (200, BODY)
    explicit = s3_client(proxy.endpoint, proxy.admin, signature_version="s3")
    assert curl(explicit.generate_presigned_url("get_object", Params=params)) == (200, BODY)


def test_boto3_presigned_put_with_content_type_and_metadata(
    proxy: ProxyUnderTest, tmp_path: Path
) -> None:
    key, _ = fresh(proxy)
    s3 = s3_client(proxy.endpoint, proxy.admin, signature_version="s3")
    params = {"Bucket": "media", "Key": key, "ContentType": "text/plain", "Metadata": {"by": "me"}}
    url = s3.generate_presigned_url("put_object", Params=params)
    upload = tmp_path / "upload.txt"
    upload.write_bytes(BODY)
    # Without the signed headers the URL is refused and nothing is stored.
    status, body = curl(url, "-T", str(upload))
    assert (status, code_of(body)) == (403, "SignatureDoesNotMatch")
    assert on_backend(proxy, "media", key) is None
    signed = ["-H", "Content-Type: text/plain", "-H", "x-amz-meta-by: me"]
    assert curl(url, "-T", str(upload), *signed)[0] == 200
    head = backend_client(proxy.settings).head_object(Bucket="media", Key=key)
    assert (head["ContentType"], head["Metadata"]) == ("text/plain", {"by": "me"})
    assert on_backend(proxy, "media", key) == BODY
    # Another metadata value than the signed one is refused; the object is unchanged.
    other = ["-H", "Content-Type: text/plain", "-H", "x-amz-meta-by: mallory"]
    upload.write_bytes(b"replaced")
    status, body = curl(url, "-T", str(upload), *other)
    assert (status, code_of(body)) == (403, "SignatureDoesNotMatch")
    assert on_backend(proxy, "media", key) == BODY


# ----- s3cmd in SigV2 mode: a full round trip ----------------------------------------


def test_s3cmd_signature_v2_round_trip(proxy: ProxyUnderTest, tmp_path: Path) -> None:
    s3cmd = s3cmd_v2(proxy, proxy.admin, tmp_path / "s3cmd")
    env = clean_env(HOME=str(tmp_path))
    bucket = f"sigv2-{uuid.uuid4().hex[:12]}"
    made = run([*s3cmd, "--debug", "mb", f"s3://{bucket}"], env)
    assert "Using signature v2" in made.stderr and "Using signature v4" not in made.stderr
    source = tmp_path / "put me.txt"
    source.write_bytes(BODY)
    run([*s3cmd, "put", str(source), f"s3://{bucket}/dir/put me.txt"], env)
    assert f"s3://{bucket}/dir/put me.txt" in run([*s3cmd, "ls", f"s3://{bucket}/dir/"], env).stdout
    back = tmp_path / "back.txt"
    run([*s3cmd, "get", f"s3://{bucket}/dir/put me.txt", str(back)], env)
    assert back.read_bytes() == BODY
    stored_body = backend_client(proxy.settings).get_object(Bucket=bucket, Key="dir/put me.txt")
    assert stored_body["Body"].read() == BODY
    assert f"s3://{bucket}" in run([*s3cmd, "ls"], env).stdout  # ListBuckets
    # Multipart (16 MiB parts): uploads, uploadId and partNumber are signed sub-resources.
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(20 * 1024 * 1024))
    run([*s3cmd, "put", str(big), f"s3://{bucket}/big.bin"], env)
    head = backend_client(proxy.settings).head_object(Bucket=bucket, Key="big.bin")
    assert head["ETag"].strip('"').endswith("-2") and head["ContentLength"] == 20 * 1024 * 1024
    run([*s3cmd, "del", f"s3://{bucket}/big.bin"], env)
    run([*s3cmd, "del", f"s3://{bucket}/dir/put me.txt"], env)
    assert "put me.txt" not in run([*s3cmd, "ls", f"s3://{bucket}/dir/"], env).stdout
    run([*s3cmd, "rb", f"s3://{bucket}"], env)
    names = [b["Name"] for b in backend_client(proxy.settings).list_buckets()["Buckets"]]
    assert bucket not in names


# ----- header auth signed by botocore's HmacV1Auth -----------------------------------


def test_header_auth_put_and_get(proxy: ProxyUnderTest) -> None:
    key, url = fresh(proxy, "header é+ü.txt")
    extra = {"Content-Type": "text/plain", "Content-MD5": md5_b64(BODY), "x-amz-meta-a": "1"}
    answer = send("PUT", url, v2_headers("PUT", url, proxy.admin, extra), BODY)
    assert answer.status == 200, answer.body
    head = backend_client(proxy.settings).head_object(Bucket="media", Key=key)
    assert (head["ContentType"], head["Metadata"]) == ("text/plain", {"a": "1"})
    got = send("GET", url, v2_headers("GET", url, proxy.admin))
    assert (got.status, got.body) == (200, BODY)
    listing = f"{proxy.endpoint}/media?prefix={quote(key, safe='')}"
    listed = send("GET", listing, v2_headers("GET", listing, proxy.admin))
    assert listed.status == 200 and key.encode() in listed.body


def test_header_auth_virtual_hosted_and_no_replay_on_another_bucket(
    proxy: ProxyUnderTest,
) -> None:
    port = proxy.endpoint.rsplit(":", 1)[1]
    key = f"sigv2/{uuid.uuid4().hex}.txt"
    signed = v2_headers(
        "PUT", f"http://media.{S3_DOMAIN}:{port}/{key}", proxy.admin, auth_path=f"/media/{key}"
    )
    host = {"Host": f"media.{S3_DOMAIN}:{port}"}
    assert send("PUT", f"{proxy.endpoint}/{key}", {**signed, **host}, BODY).status == 200
    assert on_backend(proxy, "media", key) == BODY
    replay = {**signed, "Host": f"hls.{S3_DOMAIN}:{port}"}
    answer = send("PUT", f"{proxy.endpoint}/{key}", replay, b"replayed")
    assert_refused(answer, 403, "SignatureDoesNotMatch")
    assert on_backend(proxy, "hls", key) is None


def test_repeated_amz_headers_are_signed_comma_joined(proxy: ProxyUnderTest) -> None:
    key, url = fresh(proxy)
    extra = CIMultiDict([("x-amz-meta-who", "fred"), ("x-amz-meta-who", "barney")])
    headers = v2_headers("PUT", url, proxy.admin, extra)
    assert send("PUT", url, headers, BODY).status == 200
    head = backend_client(proxy.settings).head_object(Bucket="media", Key=key)
    assert head["Metadata"] == {"who": "fred,barney"}
    dropped = CIMultiDict(headers)
    dropped.popall("x-amz-meta-who")
    dropped.add("x-amz-meta-who", "fred")
    assert_refused(send("PUT", url, dropped, b"changed"), 403, "SignatureDoesNotMatch")
    assert on_backend(proxy, "media", key) == BODY


# ----- tampering: refused with S3's code, nothing stored -------------------------------


def test_tampered_signature(proxy: ProxyUnderTest) -> None:
    key, url = fresh(proxy)
    headers = v2_headers("PUT", url, proxy.admin)
    access, _, signature = headers["Authorization"].partition(":")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    answer = send("PUT", url, {**headers, "Authorization": f"{access}:{flipped}"}, BODY)
    assert_refused(answer, 403, "SignatureDoesNotMatch")
    # As S3, the answer says what was expected to be signed (never the right signature).
    assert answer.xml("StringToSign") == f"PUT\n\n\n{headers['Date']}\n/media/{key}"
    assert answer.xml("SignatureProvided") == flipped
    assert on_backend(proxy, "media", key) is None


def test_tampered_path(proxy: ProxyUnderTest) -> None:
    key, url = fresh(proxy)
    other_key, other_url = fresh(proxy)
    answer = send("PUT", other_url, v2_headers("PUT", url, proxy.admin), BODY)
    assert_refused(answer, 403, "SignatureDoesNotMatch")
    assert on_backend(proxy, "media", key) is None
    assert on_backend(proxy, "media", other_key) is None
    presigned = v2_presign("GET", stored(proxy)[1], proxy.admin)
    answer = send("GET", presigned.replace("/media/sigv2/", "/hls/sigv2/"), {})
    assert_refused(answer, 403, "SignatureDoesNotMatch")


@pytest.mark.parametrize(
    "added",
    [
        {"x-amz-meta-owner": "mallory"},
        {"x-amz-copy-source": "/media/sigv2/secret.txt"},
        {"x-amz-tagging": "public=yes"},
        {"x-amz-meta-a": "2"},
    ],
)
def test_tampered_amz_header(proxy: ProxyUnderTest, added: dict[str, str]) -> None:
    key, url = fresh(proxy)
    headers = v2_headers("PUT", url, proxy.admin, {"x-amz-meta-a": "1"})
    tampered = CIMultiDict(headers)
    for name, value in added.items():
        tampered[name] = value
    assert_refused(send("PUT", url, tampered, BODY), 403, "SignatureDoesNotMatch")
    assert on_backend(proxy, "media", key) is None


@pytest.mark.parametrize(
    "changed",
    [
        {"Content-MD5": md5_b64(b"other body")},
        {"Content-Type": "text/html"},
        {"Date": "a minute before signing"},  # made when the test runs, not when collected
    ],
)
def test_tampered_standard_header(proxy: ProxyUnderTest, changed: dict[str, str]) -> None:
    if "Date" in changed:
        changed = {"Date": formatdate(time.time() - 60, usegmt=True)}
    key, url = fresh(proxy)
    signed = {"Content-MD5": md5_b64(BODY), "Content-Type": "text/plain"}
    headers = v2_headers("PUT", url, proxy.admin, signed)
    assert_refused(send("PUT", url, {**headers, **changed}, BODY), 403, "SignatureDoesNotMatch")
    assert on_backend(proxy, "media", key) is None


def test_signed_content_md5_of_another_body_is_bad_digest(proxy: ProxyUnderTest) -> None:
    key, url = fresh(proxy)
    headers = v2_headers("PUT", url, proxy.admin, {"Content-MD5": md5_b64(BODY)})
    assert_refused(send("PUT", url, headers, b"not the signed body"), 400, "BadDigest")
    assert on_backend(proxy, "media", key) is None
    # A signed x-amz-content-sha256 is verified too.
    sha = {"x-amz-content-sha256": hashlib.sha256(BODY).hexdigest()}
    headers = v2_headers("PUT", url, proxy.admin, sha)
    answer = send("PUT", url, headers, b"not the signed body")
    assert_refused(answer, 400, "XAmzContentSHA256Mismatch")
    assert on_backend(proxy, "media", key) is None


def test_unsigned_sub_resources_are_refused(proxy: ProxyUnderTest) -> None:
    """SigV2 signs only the sub-resources of its list: one added to a signed URL either
    breaks the signature or, outside the list, is refused as unsigned."""
    key, url = stored(proxy)
    presigned_get = v2_presign("GET", url, proxy.admin)
    assert send("GET", presigned_get, {}).body == BODY
    answer = send("GET", presigned_get + "&tagging", {})
    assert_refused(answer, 403, "SignatureDoesNotMatch")
    for added in ("&retention", "&legal-hold", "&%61cl", "&attributes"):
        answer = send("GET", presigned_get + added, {})
        assert_refused(answer, 403, "AccessDenied")
        assert answer.xml("Message") == NOT_SIGNED
    new_key, new_url = fresh(proxy)
    presigned_put = v2_presign("PUT", new_url, proxy.admin)
    answer = send("PUT", presigned_put + "&x-amz-acl=public-read", {}, BODY)
    assert_refused(answer, 403, "AccessDenied")
    assert answer.xml("ParametersNotSigned") == "x-amz-acl"
    assert on_backend(proxy, "media", new_key) is None
    # Listing parameters are not signed by SigV2 clients and only page the listing.
    listing = f"{proxy.endpoint}/media"
    signed = v2_headers("GET", listing, proxy.admin)
    paged = send("GET", f"{listing}?prefix={key}&max-keys=1&list-type=2", signed)
    assert paged.status == 200 and key.encode() in paged.body


def test_tampered_expires(proxy: ProxyUnderTest) -> None:
    _, url = stored(proxy)
    presigned = v2_presign("GET", url, proxy.admin, expires=60)
    expires = presigned.rsplit("Expires=", 1)[1]
    longer = presigned.replace(f"Expires={expires}", f"Expires={int(expires) + 3600}")
    assert_refused(send("GET", longer, {}), 403, "SignatureDoesNotMatch")


def test_expired_and_too_long_urls(proxy: ProxyUnderTest) -> None:
    _, url = stored(proxy)
    answer = send("GET", v2_presign("GET", url, proxy.admin, expires=-5), {})
    assert_refused(answer, 403, "AccessDenied")
    assert answer.xml("Message") == "Request has expired"
    # As SigV4: a presigned URL lives a week at most.
    assert send("GET", v2_presign("GET", url, proxy.admin, expires=6 * 86400), {}).status == 200
    answer = send("GET", v2_presign("GET", url, proxy.admin, expires=8 * 86400), {})
    assert_refused(answer, 400, "AuthorizationQueryParametersError")
    key, new_url = fresh(proxy)
    answer = send("PUT", v2_presign("PUT", new_url, proxy.admin, expires=-5), {}, BODY)
    assert_refused(answer, 403, "AccessDenied")
    assert on_backend(proxy, "media", key) is None


def test_header_auth_time(proxy: ProxyUnderTest) -> None:
    _, url = stored(proxy)
    for skew in (-20 * 60, 20 * 60):
        answer = send("GET", url, v2_headers("GET", url, proxy.admin, when=time.time() + skew))
        assert_refused(answer, 403, "RequestTimeTooSkewed")
    within = v2_headers("GET", url, proxy.admin, when=time.time() - 10 * 60)
    assert send("GET", url, within).status == 200
    no_date = CIMultiDict(v2_headers("GET", url, proxy.admin))
    del no_date["Date"]
    assert_refused(send("GET", url, no_date), 403, "AccessDenied")


def test_unknown_key(proxy: ProxyUnderTest) -> None:
    key, url = fresh(proxy)
    stranger = KeyPair("NKUNKNOWN0000000000000", "x" * 40)
    answer = send("PUT", url, v2_headers("PUT", url, stranger), BODY)
    assert_refused(answer, 403, "InvalidAccessKeyId")
    assert on_backend(proxy, "media", key) is None
    assert_refused(send("GET", v2_presign("GET", url, stranger), {}), 403, "InvalidAccessKeyId")


def test_wrong_secret(proxy: ProxyUnderTest) -> None:
    key, url = fresh(proxy)
    wrong = KeyPair(proxy.admin.access_key_id, "wrong-secret")
    assert_refused(
        send("PUT", url, v2_headers("PUT", url, wrong), BODY), 403, "SignatureDoesNotMatch"
    )
    assert on_backend(proxy, "media", key) is None


def test_scoped_key_cannot_escape_its_bucket(proxy: ProxyUnderTest) -> None:
    scoped = proxy.make_key({"media": "rw"}, "sigv2-scoped")
    key, url = fresh(proxy)
    assert send("PUT", url, v2_headers("PUT", url, scoped), BODY).status == 200
    hls_key = f"sigv2/{uuid.uuid4().hex}.txt"
    hls_url = f"{proxy.endpoint}/hls/{hls_key}"
    answer = send("PUT", hls_url, v2_headers("PUT", hls_url, scoped), BODY)
    assert_refused(answer, 403, "AccessDenied")
    assert on_backend(proxy, "hls", hls_key) is None
    backend_client(proxy.settings).put_object(Bucket="hls", Key=hls_key, Body=b"private")
    answer = send("GET", v2_presign("GET", hls_url, scoped), {})
    assert_refused(answer, 403, "AccessDenied")
    assert b"private" not in answer.body
    # Nor copy from it: x-amz-copy-source is signed, and authorized on its bucket.
    copy = {"x-amz-copy-source": f"/hls/{hls_key}"}
    answer = send("PUT", url, v2_headers("PUT", url, scoped, copy))
    assert_refused(answer, 403, "AccessDenied")
    assert on_backend(proxy, "media", key) == BODY


def test_one_auth_mechanism_only(proxy: ProxyUnderTest) -> None:
    _, url = stored(proxy)
    presigned = v2_presign("GET", url, proxy.admin)
    answer = send("GET", presigned, v2_headers("GET", url, proxy.admin))
    assert_refused(answer, 400, "InvalidArgument")
    v4 = presign("GET", url, proxy.admin)
    both = v4 + "&" + urlsplit(presigned).query
    assert_refused(send("GET", both, {}), 400, "InvalidArgument")


def test_malformed_claims(proxy: ProxyUnderTest) -> None:
    _, url = stored(proxy)
    date = {"Date": formatdate(usegmt=True)}
    bad = send("GET", url, {**date, "Authorization": "AWS no-colon"})
    assert_refused(bad, 400, "InvalidArgument")
    answer = send("GET", f"{url}?AWSAccessKeyId={proxy.admin.access_key_id}&Signature=x", {})
    assert_refused(answer, 403, "AccessDenied")
    query = f"AWSAccessKeyId={proxy.admin.access_key_id}&Signature=x&Expires=+99999999999"
    assert_refused(send("GET", f"{url}?{query}", {}), 403, "AccessDenied")
    streaming = {"x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"}
    key, new_url = fresh(proxy)
    answer = send("PUT", new_url, v2_headers("PUT", new_url, proxy.admin, streaming), BODY)
    assert_refused(answer, 400, "InvalidRequest")
    assert on_backend(proxy, "media", key) is None


# ----- the operator's switch ----------------------------------------------------------


@pytest.fixture(scope="module")
def v4_only(tmp_path_factory: pytest.TempPathFactory, seaweed: Seaweed) -> Any:
    server = start_proxy(tmp_path_factory.mktemp("v4only"), seaweed, {"NEBULA_ALLOW_SIGV2": "0"})
    yield server
    server.stop()


def test_sigv2_can_be_switched_off(v4_only: ProxyUnderTest) -> None:
    _, url = stored(v4_only)
    answer = send("GET", v2_presign("GET", url, v4_only.admin), {})
    assert_refused(answer, 403, "AccessDenied")
    assert "disabled" in (answer.xml("Message") or "")
    new_key, new_url = fresh(v4_only)
    answer = send("PUT", new_url, v2_headers("PUT", new_url, v4_only.admin), BODY)
    assert_refused(answer, 403, "AccessDenied")
    assert on_backend(v4_only, "media", new_key) is None
    # SigV4 is unaffected.
    assert send("GET", presign("GET", url, v4_only.admin), {}).body == BODY


def test_sign_v2_is_botocores_signature() -> None:
    """The helper other modules (POST policy) use signs as botocore does."""
    credentials = Credentials("AK", "secret")
    expected = HmacV1Auth(credentials).sign_string("policy document")
    assert sign_v2("secret", "policy document") == expected
    assert base64.b64decode(expected)  # base64 of the HMAC-SHA1


# ----- the string to sign, against botocore's signer directly ---------------------------


def test_botocore_signatures_verify_and_mutations_do_not() -> None:
    """Sub-resources (sorted, values decoded), response-* overrides, x-amz-* headers and
    both addressing styles, as botocore's HmacV1Auth signs them."""
    settings = Settings(s3_domain="s3.example.org")
    key = KeyPair("AK", "secret")
    cases = [
        ("GET", "http://h/media/k%20y/%C3%A9?versionId=v1&response-content-type=a%2Fb", None),
        ("PUT", "http://h/media/k?partNumber=2&uploadId=u%2B1", None),
        ("POST", "http://h/media?delete", None),
        ("GET", "http://media.s3.example.org/dir/k?acl", "/media/dir/k"),
    ]
    for method, url, auth_path in cases:
        extra = {"x-amz-meta-b": " 2 ", "X-Amz-Meta-A": "1", "Content-Type": "text/plain"}
        headers = v2_headers(method, url, key, extra, auth_path=auth_path)
        parts = urlsplit(url)
        raw = f"{parts.path}?{parts.query}"
        target = parse_target(raw, parts.netloc, settings)
        claim = parse_claim_v2({k.lower(): v for k, v in headers.items()}, target.query)
        claim.verify(key.secret, method, target, raw, headers)  # accepted
        mutations = [
            ("DELETE" if method != "DELETE" else "GET", raw, headers),
            (method, raw.replace("/k", "/K", 1) if "/k" in raw else raw + "&acl", headers),
            (method, raw.replace("?", "?uploads&", 1), headers),
            (method, raw, CIMultiDict({**headers, "x-amz-meta-a": "2"})),
            (method, raw, CIMultiDict({**headers, "Content-Type": "text/html"})),
            (method, raw, CIMultiDict({**headers, "Content-MD5": md5_b64(b"x")})),
        ]
        for changed_method, changed_raw, changed_headers in mutations:
            changed_target = parse_target(changed_raw, parts.netloc, settings)
            with pytest.raises(S3Error) as caught:
                claim.verify(
                    key.secret, changed_method, changed_target, changed_raw, changed_headers
                )
            assert caught.value.code == "SignatureDoesNotMatch", (changed_method, changed_raw)
