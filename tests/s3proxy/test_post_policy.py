"""Browser uploads (S3 POST Object with a POST policy) through the proxy.

Forms signed by boto3's ``generate_presigned_post`` (SigV4) and by a hand-computed
HMAC-SHA1 (SigV2), sent by ``requests`` and by a real headless Chromium; every refusal
checked on the backend itself (nothing stored); a 200 MiB file with the proxy's RSS flat;
``nebula upload-form`` end to end.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from botocore.exceptions import ClientError

from catalog.assets import find_asset
from catalog.keys import KeyPair
from nebulacore.s3 import backend_client
from s3proxy.errors import S3Error
from s3proxy.post_policy import (
    check_policy,
    check_size,
    decode_policy,
    form_auth,
    object_headers,
    object_key,
    success_answer,
)
from tests.harness import nebula_argv, wait_until
from tests.s3proxy.signing import s3_client, send
from tests.stacks import S3_DOMAIN, ProxyUnderTest, Seaweed, start_proxy

BROWSER_DIR = Path(__file__).parents[1] / "origin" / "browser"
Post = dict[str, Any]


# ----- the policy as pure functions ------------------------------------------------------


def encoded(document: object) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


IN_AN_HOUR = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.mark.parametrize(
    "policy",
    [
        "not base64 at all!",
        base64.b64encode(b"{not json").decode(),
        encoded(["a", "list"]),
        encoded({"conditions": []}),
        encoded({"expiration": IN_AN_HOUR}),
        encoded({"expiration": "tomorrow", "conditions": []}),
        encoded({"expiration": IN_AN_HOUR, "conditions": [["in", "$key", "a"]]}),
        encoded({"expiration": IN_AN_HOUR, "conditions": [["eq", "key", "a"]]}),
        encoded({"expiration": IN_AN_HOUR, "conditions": [{"key": "a", "acl": "b"}]}),
        encoded({"expiration": IN_AN_HOUR, "conditions": [["content-length-range", 9, 1]]}),
        encoded({"expiration": IN_AN_HOUR, "conditions": [["content-length-range", -1, 5]]}),
    ],
)
def test_malformed_policies_are_invalid_documents(policy: str) -> None:
    with pytest.raises(S3Error) as caught:
        decode_policy(policy)
    assert (caught.value.status, caught.value.code) == (400, "InvalidPolicyDocument")


def test_conditions_match_as_s3_documents_them() -> None:
    policy = decode_policy(
        encoded(
            {
                "expiration": IN_AN_HOUR,
                "conditions": [
                    {"bucket": "media"},
                    ["starts-with", "$key", "uploads/"],
                    ["starts-with", "$Content-Type", "video/"],
                    ["eq", "$X-Amz-Meta-Camera", "phone"],
                    ["starts-with", "$x-amz-meta-tag", ""],
                    ["content-length-range", "1", 100],
                ],
            }
        )
    )
    assert policy.length_range == (1, 100)
    fields = {
        "key": "uploads/a.mp4",
        "content-type": "video/mp4, video/webm",
        "x-amz-meta-camera": "phone",
        "x-amz-meta-tag": "anything",
        "x-ignore-note": "no condition needed",
        "policy": "p",
        "x-amz-signature": "s",
    }
    check_policy(policy, fields, "media")
    failures = [
        ({**fields, "key": "elsewhere/a.mp4"}, "media", "Policy Condition failed"),
        ({**fields, "content-type": "video/mp4, text/html"}, "media", "Policy Condition failed"),
        ({**fields, "x-amz-meta-camera": "Phone"}, "media", "Policy Condition failed"),
        (fields, "hls", "Policy Condition failed"),
        ({**fields, "x-amz-meta-other": "x"}, "media", "Extra input fields: x-amz-meta-other"),
    ]
    for form, bucket, message in failures:
        with pytest.raises(S3Error) as caught:
            check_policy(policy, form, bucket)
        assert caught.value.code == "AccessDenied" and message in caught.value.message
    with pytest.raises(S3Error, match="Policy expired"):
        check_policy(policy, fields, "media", now=datetime.now(UTC) + timedelta(hours=2))


def test_sizes_keys_headers_and_answers() -> None:
    check_size(100, (1, 100), final=True)
    with pytest.raises(S3Error, match="EntityTooLarge"):
        check_size(101, (1, 100), final=False)
    with pytest.raises(S3Error, match="EntityTooSmall"):
        check_size(0, (1, 100), final=True)
    assert object_key({"key": "in/${filename}"}, "clip.mp4") == "in/clip.mp4"
    with pytest.raises(S3Error, match="must contain a field named 'key'"):
        object_key({}, "clip.mp4")
    headers = object_headers(
        {
            "content-type": "video/mp4",
            "x-amz-meta-a": "b",
            "x-amz-credential": "c",
            "acl": "private",
        },
        "application/octet-stream",
    )
    assert headers == {"content-type": "video/mp4", "x-amz-meta-a": "b", "x-amz-acl": "private"}
    assert object_headers({}, "video/webm") == {"content-type": "video/webm"}
    created = success_answer(
        {"success_action_status": "201"}, "media", "k", '"e"', "http://x/media/k"
    )
    assert created.status == 201 and ET.fromstring(created.body).findtext("Key") == "k"
    assert success_answer({"success_action_status": "302"}, "media", "k", '"e"', "u").status == 204
    moved = success_answer({"success_action_redirect": "https://a/b?c=d"}, "m", "k", "e", "u")
    assert (
        moved.status == 303 and moved.headers["Location"] == "https://a/b?c=d&bucket=m&key=k&etag=e"
    )


def test_form_auth_tells_sigv4_from_sigv2() -> None:
    v4 = {
        "x-amz-algorithm": "AWS4-HMAC-SHA256",
        "x-amz-credential": "NK1/20260101/us-east-1/s3/aws4_request",
        "x-amz-date": "20260101T000000Z",
        "x-amz-signature": "ab",
    }
    auth = form_auth(v4, ["us-east-1"])
    assert auth.access_key_id == "NK1" and auth.credential is not None
    for wrong in (
        {"x-amz-date": "20260102T000000Z"},
        {"x-amz-credential": "NK1/20260101/eu-west-1/s3/aws4_request"},
    ):
        with pytest.raises(S3Error, match="InvalidArgument"):
            form_auth({**v4, **wrong}, ["us-east-1"])
    v2 = {"awsaccesskeyid": "NK2", "signature": "c2ln"}
    assert form_auth(v2, ["us-east-1"]).credential is None
    with pytest.raises(S3Error) as caught:
        form_auth(v2, ["us-east-1"], allow_sigv2=False)
    assert caught.value.code == "AccessDenied"


# ----- through the proxy -----------------------------------------------------------------


@pytest.fixture(scope="module")
def backend(proxy: ProxyUnderTest) -> Any:
    return backend_client(proxy.settings)


def unique(prefix: str = "post") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:10]}/"


def presigned(
    proxy: ProxyUnderTest,
    key: str,
    fields: dict[str, str] | None = None,
    conditions: list[Any] | None = None,
    expires: int = 600,
    bucket: str = "media",
    **client: Any,
) -> Post:
    # boto3 signs a presigned POST with SigV2 unless told s3v4.
    client.setdefault("signature_version", "s3v4")
    s3 = s3_client(proxy.endpoint, client.pop("keypair", proxy.admin), **client)
    post: Post = s3.generate_presigned_post(
        Bucket=bucket, Key=key, Fields=fields, Conditions=conditions, ExpiresIn=expires
    )
    return post


def submit(
    post: Post,
    data: bytes = b"hello",
    filename: str = "clip.mp4",
    extra: dict[str, str] | None = None,
) -> requests.Response:
    fields = {**post["fields"], **(extra or {})}
    return requests.post(
        post["url"], data=fields, files={"file": (filename, data, "video/mp4")}, timeout=60
    )


def error_code(response: requests.Response) -> str | None:
    return ET.fromstring(response.content).findtext("Code")


def stored(backend: Any, key: str, bucket: str = "media") -> dict[str, Any] | None:
    try:
        head: dict[str, Any] = backend.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "404"
        return None
    return head


def nothing_under(backend: Any, prefix: str, bucket: str = "media") -> bool:
    return "Contents" not in backend.list_objects_v2(Bucket=bucket, Prefix=prefix)


def test_boto3_presigned_post_stores_the_file_with_type_and_metadata(
    proxy: ProxyUnderTest, backend: Any
) -> None:
    prefix = unique()
    post = presigned(
        proxy,
        prefix + "${filename}",
        fields={"Content-Type": "video/mp4", "x-amz-meta-camera": "phone"},
        conditions=[
            ["starts-with", "$Content-Type", "video/"],
            {"x-amz-meta-camera": "phone"},
            ["content-length-range", 1, 1 << 20],
        ],
    )
    assert post["fields"]["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    answer = submit(post, b"\x00video" * 100, filename="clip.mp4")
    assert answer.status_code == 204, answer.text
    head = stored(backend, prefix + "clip.mp4")
    assert head is not None
    assert (head["ContentLength"], head["ContentType"]) == (600, "video/mp4")
    assert head["Metadata"] == {"camera": "phone"}
    assert answer.headers["ETag"] == head["ETag"]
    assert answer.headers["Location"].endswith(f"/media/{prefix}clip.mp4")


def test_an_empty_file_is_stored_empty(proxy: ProxyUnderTest, backend: Any) -> None:
    key = unique() + "empty.bin"
    answer = submit(presigned(proxy, key), b"")
    assert answer.status_code == 204, answer.text
    assert stored(backend, key)["ContentLength"] == 0  # type: ignore[index]


def test_field_names_match_whatever_their_case(proxy: ProxyUnderTest, backend: Any) -> None:
    prefix = unique()
    post = presigned(proxy, prefix + "a.bin", conditions=[["eq", "$content-type", "text/plain"]])
    fields = {name.upper(): value for name, value in post["fields"].items()}
    answer = submit({"url": post["url"], "fields": fields}, extra={"Content-TYPE": "text/plain"})
    assert answer.status_code == 204, answer.text
    head = stored(backend, prefix + "a.bin")
    assert head is not None and head["ContentType"] == "text/plain"


@pytest.mark.parametrize("status", ["200", "201", "204"])
def test_success_action_status(proxy: ProxyUnderTest, backend: Any, status: str) -> None:
    key = unique() + "s.bin"
    post = presigned(
        proxy,
        key,
        fields={"success_action_status": status},
        conditions=[{"success_action_status": status}],
    )
    answer = submit(post)
    assert answer.status_code == int(status), answer.text
    etag = stored(backend, key)["ETag"]  # type: ignore[index]
    if status == "201":
        document = ET.fromstring(answer.content)
        assert document.tag == "PostResponse"
        assert (document.findtext("Bucket"), document.findtext("Key")) == ("media", key)
        assert document.findtext("ETag") == etag
        assert document.findtext("Location", "").endswith(f"/media/{key}")
    else:
        assert answer.content == b""


def test_success_action_redirect(proxy: ProxyUnderTest, backend: Any) -> None:
    key = unique() + "r.bin"
    done = "https://example.org/done?from=form"
    post = presigned(
        proxy,
        key,
        fields={"success_action_redirect": done},
        conditions=[["starts-with", "$success_action_redirect", "https://example.org/"]],
    )
    answer = requests.post(
        post["url"],
        data=post["fields"],
        files={"file": ("r.bin", b"r")},
        allow_redirects=False,
        timeout=60,
    )
    assert answer.status_code == 303, answer.text
    location = urlsplit(answer.headers["Location"])
    assert location.netloc == "example.org" and location.path == "/done"
    query = parse_qs(location.query)
    assert query["bucket"] == ["media"] and query["key"] == [key] and query["from"] == ["form"]
    assert query["etag"] == [stored(backend, key)["ETag"]]  # type: ignore[index]


def test_virtual_hosted_style(proxy: ProxyUnderTest, backend: Any) -> None:
    key = unique() + "v.bin"
    post = presigned(proxy, key)
    answer = requests.post(
        f"{proxy.endpoint}/",
        data=post["fields"],
        files={"file": ("v.bin", b"vhost")},
        headers={"Host": f"media.{S3_DOMAIN}:{proxy.port}"},
        timeout=60,
    )
    assert answer.status_code == 204, answer.text
    assert stored(backend, key) is not None


def sigv2_form(secret: str, access_key: str, key: str, policy: dict[str, Any]) -> dict[str, str]:
    policy_b64 = encoded(policy)
    signature = base64.b64encode(
        hmac.new(secret.encode(), policy_b64.encode(), hashlib.sha1).digest()
    ).decode()
    return {"key": key, "AWSAccessKeyId": access_key, "policy": policy_b64, "signature": signature}


def test_sigv2_form_signed_by_hand(proxy: ProxyUnderTest, backend: Any) -> None:
    prefix = unique("v2")
    policy = {
        "expiration": IN_AN_HOUR,
        "conditions": [
            {"bucket": "media"},
            ["starts-with", "$key", prefix],
            ["starts-with", "$Content-Type", ""],
        ],
    }
    form = sigv2_form(proxy.admin.secret, proxy.admin.access_key_id, prefix + "${filename}", policy)
    form["Content-Type"] = "image/png"
    answer = requests.post(
        f"{proxy.endpoint}/media", data=form, files={"file": ("pic.png", b"png")}, timeout=60
    )
    assert answer.status_code == 204, answer.text
    head = stored(backend, prefix + "pic.png")
    assert head is not None and head["ContentType"] == "image/png"
    form["signature"] = base64.b64encode(b"\x00" * 20).decode()
    answer = requests.post(
        f"{proxy.endpoint}/media", data=form, files={"file": ("other.png", b"png")}, timeout=60
    )
    assert (answer.status_code, error_code(answer)) == (403, "SignatureDoesNotMatch")
    assert stored(backend, prefix + "other.png") is None


def test_sigv2_forms_refused_when_the_operator_disabled_sigv2(
    tmp_path: Path, seaweed: Seaweed, backend: Any
) -> None:
    v4_only = start_proxy(tmp_path, seaweed, {"NEBULA_ALLOW_SIGV2": "0"})
    try:
        prefix = unique("v2off")
        policy = {
            "expiration": IN_AN_HOUR,
            "conditions": [{"bucket": "media"}, ["starts-with", "$key", prefix]],
        }
        admin = v4_only.admin
        form = sigv2_form(admin.secret, admin.access_key_id, prefix + "x.bin", policy)
        answer = requests.post(
            f"{v4_only.endpoint}/media", data=form, files={"file": ("x.bin", b"x")}, timeout=60
        )
        assert (answer.status_code, error_code(answer)) == (403, "AccessDenied"), answer.text
        assert nothing_under(backend, prefix)
        signed_v4 = submit(presigned(v4_only, prefix + "y.bin"))
        assert signed_v4.status_code == 204, signed_v4.text
    finally:
        v4_only.stop()


# Each case: a change to a good form (its post dict and extra fields) and what S3 answers.
def _with_fields(**changes: str | None) -> Callable[[Post], Post]:
    def change(post: Post) -> Post:
        fields = {**post["fields"], **changes}
        return {**post, "fields": {k: v for k, v in fields.items() if v is not None}}

    return change


def _resign_policy(document: Callable[[dict[str, Any]], object]) -> Callable[[Post], Post]:
    """Replace the policy (then the signature no longer matches it)."""

    def change(post: Post) -> Post:
        current = json.loads(base64.b64decode(post["fields"]["policy"]))
        return {**post, "fields": {**post["fields"], "policy": encoded(document(current))}}

    return change


REFUSALS: dict[str, tuple[Callable[[Post], Post], int, str, str]] = {
    "malformed policy": (_with_fields(policy="eyJub3QgSlNPTg=="), 400, "InvalidPolicyDocument", ""),
    "policy without conditions": (
        _resign_policy(lambda p: {"expiration": p["expiration"]}),
        400,
        "InvalidPolicyDocument",
        "",
    ),
    "key outside the prefix": (
        _with_fields(key="elsewhere/x.bin"),
        403,
        "AccessDenied",
        "Invalid according to Policy: Policy Condition failed",
    ),
    "uncovered field": (
        _with_fields(**{"x-amz-meta-evil": "1"}),
        403,
        "AccessDenied",
        "Invalid according to Policy: Extra input fields: x-amz-meta-evil",
    ),
    "policy loosened after signing": (
        _resign_policy(
            lambda p: {**p, "conditions": [c for c in p["conditions"] if "$key" not in c]}
        ),
        403,
        "SignatureDoesNotMatch",
        "",
    ),
    "wrong signature": (
        _with_fields(**{"x-amz-signature": "0" * 64}),
        403,
        "SignatureDoesNotMatch",
        "",
    ),
    "missing key field": (
        _with_fields(key=None),
        400,
        "InvalidArgument",
        "Bucket POST must contain a field named 'key'",
    ),
    "missing credential": (
        _with_fields(**{"x-amz-credential": None}),
        400,
        "InvalidArgument",
        "Bucket POST must contain a field named 'x-amz-credential'",
    ),
    "anonymous (no policy)": (
        _with_fields(policy=None, **{"x-amz-signature": None}),
        403,
        "AccessDenied",
        "",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refused_forms_store_nothing(proxy: ProxyUnderTest, backend: Any, case: str) -> None:
    change, status, code, message = REFUSALS[case]
    prefix = unique("refused")
    post = change(
        presigned(proxy, prefix + "${filename}", conditions=[["content-length-range", 0, 1000]])
    )
    answer = submit(post)
    assert answer.status_code == status, (answer.status_code, answer.text)
    assert error_code(answer) == code, answer.text
    assert message in ET.fromstring(answer.content).findtext("Message", "")
    assert nothing_under(backend, prefix)


def test_unknown_access_key(proxy: ProxyUnderTest, backend: Any) -> None:
    prefix = unique("refused")
    answer = submit(presigned(proxy, prefix + "x.bin", keypair=KeyPair("nebula-nobody", "s3cret")))
    assert (answer.status_code, error_code(answer)) == (403, "InvalidAccessKeyId"), answer.text
    assert nothing_under(backend, prefix)


def test_expired_policy(proxy: ProxyUnderTest, backend: Any) -> None:
    prefix = unique("refused")
    answer = submit(presigned(proxy, prefix + "x.bin", expires=-5))
    assert (answer.status_code, error_code(answer)) == (403, "AccessDenied")
    assert "Policy expired" in answer.text
    assert nothing_under(backend, prefix)


@pytest.mark.parametrize(
    ("size", "code"),
    [(10, "EntityTooSmall"), (2000, "EntityTooLarge"), (3 << 20, "EntityTooLarge")],
)
def test_content_length_range(proxy: ProxyUnderTest, backend: Any, size: int, code: str) -> None:
    prefix = unique("refused")
    post = presigned(proxy, prefix + "x.bin", conditions=[["content-length-range", 100, 1000]])
    answer = submit(post, os.urandom(size))
    assert (answer.status_code, error_code(answer)) == (400, code), answer.text
    assert nothing_under(backend, prefix)


def test_scoped_keys_post_only_where_they_may_write(proxy: ProxyUnderTest, backend: Any) -> None:
    writer = proxy.make_key({"media": "rw"}, "media-writer")
    reader = proxy.make_key({"media": "r"}, "media-reader")
    hls = proxy.settings.hls_bucket
    prefix = unique("scoped")
    for keypair, bucket in ((writer, hls), (reader, "media")):
        answer = submit(presigned(proxy, prefix + "x.bin", bucket=bucket, keypair=keypair))
        assert (answer.status_code, error_code(answer)) == (403, "AccessDenied"), answer.text
        assert nothing_under(backend, prefix, bucket)
    answer = submit(presigned(proxy, prefix + "x.bin", keypair=writer))
    assert answer.status_code == 204
    assert stored(backend, prefix + "x.bin") is not None


def test_a_form_cannot_copy_from_a_bucket_its_key_may_not_read(
    proxy: ProxyUnderTest, backend: Any
) -> None:
    """x-amz-copy-source, even named by the policy, never reaches the backend: the PutObject
    stores the form's file, not a copy of another bucket's object."""
    hls = proxy.settings.hls_bucket
    secret_key = unique("secret") + "master.m3u8"
    backend.put_object(Bucket=hls, Key=secret_key, Body=b"not for media writers")
    writer = proxy.make_key({"media": "rw"}, "copy-attempt")
    key = unique("copy") + "x.bin"
    post = presigned(
        proxy,
        key,
        fields={"x-amz-copy-source": f"/{hls}/{secret_key}"},
        conditions=[["starts-with", "$x-amz-copy-source", ""]],
        keypair=writer,
    )
    answer = submit(post, b"mine")
    assert answer.status_code == 204, answer.text
    assert backend.get_object(Bucket="media", Key=key)["Body"].read() == b"mine"


def multipart(fields: dict[str, str], boundary: str) -> bytes:
    return b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )


@pytest.mark.parametrize(
    "body",
    [
        lambda fields: b"this is not multipart at all",
        lambda fields: (
            multipart(fields, "b0undary")
            + b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\n'
            + b"cut off before the closing boundary"
        ),
        lambda fields: (
            b"--b0undary\r\nContent-Disposition: form-data\r\n\r\nno name\r\n--b0undary--\r\n"
        ),
    ],
)
def test_broken_multipart_is_malformed(
    proxy: ProxyUnderTest, backend: Any, body: Callable[[dict[str, str]], bytes]
) -> None:
    prefix = unique("refused")
    post = presigned(proxy, prefix + "x")
    answer = send(
        "POST",
        post["url"],
        {"Content-Type": "multipart/form-data; boundary=b0undary"},
        body(post["fields"]),
    )
    assert (answer.status, answer.code) == (400, "MalformedPOSTRequest"), answer.body
    assert nothing_under(backend, prefix)


def test_too_many_fields_before_the_file(proxy: ProxyUnderTest, backend: Any) -> None:
    prefix = unique("refused")
    post = presigned(proxy, prefix + "x")
    padding = {f"x-ignore-{i}": "y" * 1000 for i in range(30)}
    answer = submit(post, extra=padding)
    assert (answer.status_code, error_code(answer)) == (400, "MaxPostPreDataLengthExceededError")
    assert nothing_under(backend, prefix)


def test_upload_into_the_ingest_bucket_is_an_upload_event(
    proxy: ProxyUnderTest, backend: Any
) -> None:
    key = unique("events") + "phone.mp4"
    post = presigned(
        proxy, key, fields={"Content-Type": "video/mp4"}, conditions=[{"Content-Type": "video/mp4"}]
    )
    answer = submit(post, b"\x00" * 4096)
    assert answer.status_code == 204, answer.text
    with proxy.catalog.session() as session:
        asset = find_asset(session, "media", key)
        assert asset is not None
        assert (asset.size, asset.content_type, asset.etag) == (
            4096,
            "video/mp4",
            answer.headers["ETag"],
        )


# ----- a large file streams --------------------------------------------------------------


def streamed_form(
    fields: dict[str, str], size: int, boundary: str = "nebulaB0undary"
) -> tuple[bytes, Iterator[bytes], bytes]:
    head = (
        multipart(fields, boundary)
        + (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
    )
    piece = os.urandom(1 << 20)
    tail = f"\r\n--{boundary}--\r\n".encode()
    return head, (piece for _ in range(size >> 20)), tail


def _vm_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} missing")


def test_200_mib_file_streams_with_flat_memory(proxy: ProxyUnderTest, backend: Any) -> None:
    size, key = 200 << 20, unique("large") + "big.bin"
    post = presigned(proxy, key, conditions=[["content-length-range", 1, 300 << 20]])
    head, pieces, tail = streamed_form(post["fields"], size)
    pid = proxy.process.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset VmHWM
    before = _vm_kib(pid, "VmRSS")
    answer = send(
        "POST",
        post["url"],
        {
            "Content-Type": "multipart/form-data; boundary=nebulaB0undary",
            "Content-Length": str(len(head) + size + len(tail)),
        },
        [head, *pieces, tail],
        timeout=300,
    )
    assert answer.status == 204, answer.body
    assert stored(backend, key)["ContentLength"] == size  # type: ignore[index]
    growth_mib = (_vm_kib(pid, "VmHWM") - before) / 1024
    print(f"proxy RSS before {before / 1024:.0f} MiB, peak growth {growth_mib:.1f} MiB")
    assert growth_mib < 64, f"proxy peak RSS grew {growth_mib:.0f} MiB for a 200 MiB POST"


def test_a_file_past_the_maximum_is_cut_off_and_not_stored(
    proxy: ProxyUnderTest, backend: Any
) -> None:
    refused = '"error": "EntityTooLarge"'
    earlier = proxy.log().count(refused)
    size, key = 64 << 20, unique("large") + "cut.bin"
    post = presigned(proxy, key, conditions=[["content-length-range", 1, 4 << 20]])
    head, pieces, tail = streamed_form(post["fields"], size)
    try:
        answer = send(
            "POST",
            post["url"],
            {
                "Content-Type": "multipart/form-data; boundary=nebulaB0undary",
                "Content-Length": str(len(head) + size + len(tail)),
            },
            [head, *pieces, tail],
        )
    except OSError:  # the proxy answered and closed while the client was still sending
        pass
    else:
        assert (answer.status, answer.code) == (400, "EntityTooLarge")
    assert stored(backend, key) is None
    assert proxy.log().count(refused) == earlier + 1  # refused as too large, not cut otherwise


# ----- nebula upload-form, and a real browser ---------------------------------------------


def upload_form(proxy: ProxyUnderTest, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        nebula_argv("upload-form", *args), env=proxy.env, capture_output=True, text=True, timeout=60
    )


def printed_form(done: subprocess.CompletedProcess[str]) -> Post:
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    url = lines[0].removeprefix("url: ")
    fields = dict(line.strip().split(": ", 1) for line in lines[2:] if line.startswith("  "))
    return {"url": url, "fields": fields}


def test_cli_prints_a_form_that_uploads(proxy: ProxyUnderTest, backend: Any) -> None:
    prefix, name = unique("cli"), f"form-cli-{uuid.uuid4().hex[:8]}"
    done = upload_form(
        proxy, "--bucket", "media", "--expires", "15m", "--max-size", "1M",
        "--key-prefix", prefix, "--name", name,
    )  # fmt: skip
    post = printed_form(done)
    url, fields = post["url"], post["fields"]
    assert url == f"{proxy.endpoint}/media"
    prefix += name + "/"  # each form's uploads under a prefix of its own
    assert fields["key"] == prefix + "${filename}"
    assert f"nebula keys revoke {name}" in done.stdout
    assert {"policy", "x-amz-signature", "x-amz-credential", "success_action_status"} <= set(fields)
    policy = json.loads(base64.b64decode(fields["policy"]))
    assert ["content-length-range", 1, 1 << 20] in policy["conditions"]
    answer = submit({"url": url, "fields": fields}, b"from the cli", filename="cli.bin")
    assert answer.status_code == 201, answer.text
    assert stored(backend, prefix + "cli.bin") is not None
    too_big = submit({"url": url, "fields": fields}, b"x" * ((1 << 20) + 1), filename="big.bin")
    assert error_code(too_big) == "EntityTooLarge"
    outside = submit({"url": url, "fields": {**fields, "key": "elsewhere/x"}})
    assert outside.status_code == 403


def test_curl_form_upload_waits_for_100_continue(
    proxy: ProxyUnderTest, backend: Any, tmp_path: Path
) -> None:
    """curl asks ``Expect: 100-continue``; the proxy must say continue before it can read
    the form (its credentials are in the body)."""
    key = unique("curl") + "clip.bin"
    post = presigned(proxy, key)
    clip = tmp_path / "clip.bin"
    clip.write_bytes(os.urandom(2 << 20))
    argv = [
        "curl",
        "-sS",
        "-v",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        "Expect: 100-continue",
    ]
    argv += [f"-F{name}={value}" for name, value in post["fields"].items()]
    done = subprocess.run(
        [*argv, f"-Ffile=@{clip}", post["url"]], capture_output=True, text=True, timeout=60
    )
    assert done.stdout == "204", done.stderr
    assert "HTTP/1.1 100 Continue" in done.stderr
    assert stored(backend, key)["ContentLength"] == 2 << 20  # type: ignore[index]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--expires", "soon"], "is not a duration"),
        (["--max-size", "huge"], "is not a size"),
        (["--expires", "8d"], "at most 7d"),
        (["--max-size", "6G"], "at most 5G"),
        (["--name", "Bad Name"], "lower-case letters"),
    ],
)
def test_cli_refuses_bad_arguments(proxy: ProxyUnderTest, args: list[str], message: str) -> None:
    done = upload_form(proxy, "--bucket", "media", *args)
    assert done.returncode != 0 and message in done.stderr, done.stderr


def test_cli_forms_cap_size_and_life_by_default(proxy: ProxyUnderTest) -> None:
    post = printed_form(upload_form(proxy, "--bucket", "media"))
    policy = json.loads(base64.b64decode(post["fields"]["policy"]))
    assert ["content-length-range", 1, 4 << 30] in policy["conditions"]
    expires = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert expires - datetime.now(UTC) <= timedelta(hours=1)


def test_a_cli_form_never_overwrites(proxy: ProxyUnderTest, backend: Any) -> None:
    """A second upload of the same name is refused (412) and the first stays as it was;
    the form's key can reach nothing outside its own prefix."""
    name = f"form-again-{uuid.uuid4().hex[:8]}"
    post = printed_form(upload_form(proxy, "--bucket", "media", "--name", name))
    key = f"uploads/{name}/clip.mp4"
    assert submit(post, b"first").status_code == 201
    again = submit(post, b"second")
    assert (again.status_code, error_code(again)) == (412, "PreconditionFailed"), again.text
    assert backend.get_object(Bucket="media", Key=key)["Body"].read() == b"first"
    backend.put_object(Bucket="media", Key="taken/clip.mp4", Body=b"someone else's")
    outside = submit({**post, "fields": {**post["fields"], "key": "taken/${filename}"}})
    assert outside.status_code == 403, outside.text
    assert backend.get_object(Bucket="media", Key="taken/clip.mp4")["Body"].read() == (
        b"someone else's"
    )


def test_a_cli_form_is_listed_and_revoked_by_name(proxy: ProxyUnderTest, backend: Any) -> None:
    name = f"form-revoked-{uuid.uuid4().hex[:8]}"
    post = printed_form(upload_form(proxy, "--bucket", "media", "--name", name))
    listed = subprocess.run(
        nebula_argv("keys", "list"), env=proxy.env, capture_output=True, text=True, timeout=60
    )
    assert name in listed.stdout and f"media/uploads/{name}/:create" in listed.stdout
    revoked = subprocess.run(
        nebula_argv("keys", "revoke", name),
        env=proxy.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert revoked.returncode == 0, revoked.stderr
    tries = iter(range(1000))

    def refused() -> bool:  # the proxy caches a key a few seconds (s3proxy.auth)
        answer = submit(post, b"late", filename=f"late-{next(tries)}.bin")
        return answer.status_code == 403 and error_code(answer) == "InvalidAccessKeyId"

    wait_until(refused, "the revoked form refused", 30)
    last = next(tries) - 1
    assert stored(backend, f"uploads/{name}/late-{last}.bin") is None


def test_chromium_submits_the_html_form(
    proxy: ProxyUnderTest, backend: Any, tmp_path: Path
) -> None:
    assert shutil.which("node") and Path("/usr/bin/chromium").exists(), "node or chromium missing"
    assert (BROWSER_DIR / "node_modules" / "playwright-core").is_dir(), (
        "run npm ci in tests/origin/browser"
    )
    prefix, name = unique("browser"), f"form-browser-{uuid.uuid4().hex[:8]}"
    done = upload_form(proxy, "--bucket", "media", "--key-prefix", prefix, "--name", name, "--html")
    prefix += name + "/"
    assert done.returncode == 0, done.stderr
    page = tmp_path / "upload.html"
    page.write_text(done.stdout)
    video = tmp_path / "holiday.mp4"
    video.write_bytes(os.urandom(300_000))
    run = subprocess.run(
        ["node", str(BROWSER_DIR / "post_form.mjs"), page.as_uri(), str(video)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["ok"], report
    assert report["status"] == 201, report
    assert f"<Key>{prefix}holiday.mp4</Key>" in report["body"], report
    head = stored(backend, prefix + "holiday.mp4")
    assert head is not None and head["ContentLength"] == 300_000
    assert head["ContentType"] == "video/mp4"


def test_a_form_into_a_missing_bucket_is_no_such_bucket(
    proxy: ProxyUnderTest, backend: Any
) -> None:
    missing = f"never-made-{uuid.uuid4().hex[:12]}"
    writer = proxy.make_key({"*": "rw"}, "form-writer")
    answer = submit(presigned(proxy, "clip.mp4", bucket=missing, keypair=writer))
    assert (answer.status_code, error_code(answer)) == (404, "NoSuchBucket"), answer.text
    assert missing not in {b["Name"] for b in backend.list_buckets()["Buckets"]}
