"""CORS through the proxy: preflights answered from the bucket's configuration with S3's
matching rules, the matched rule's headers on signed answers (errors too), and a change
made through the proxy seen at once."""

from __future__ import annotations

import asyncio
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from catalog import Catalog
from catalog.cors import put_cors
from nebulacore.s3 import backend_client
from nebulacore.web import runtime_dir
from s3proxy.cors import NOT_ALLOWED, NOT_ENABLED, BucketCors, first_match, parse_rules
from s3proxy.errors import S3Error
from tests.harness import wait_until
from tests.s3proxy.conftest import proxy_to_scripted_backend
from tests.s3proxy.signing import s3_client
from tests.services import counters_by_worker, create_pg_database, drop_pg_database
from tests.stacks import ProxyUnderTest, Seaweed, start_proxy

APP = "http://app.example.org"
EVIL = "http://evil.example.com"
RULES: dict[str, list[dict[str, Any]]] = {
    "CORSRules": [
        {
            "AllowedOrigins": ["http://*.example.org"],
            "AllowedMethods": ["PUT", "GET"],
            "AllowedHeaders": ["content-type", "x-amz-meta-*"],
            "ExposeHeaders": ["ETag", "x-amz-request-id"],
            "MaxAgeSeconds": 600,
        },
        {"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]},
    ]
}
EVIL_ONLY = {"CORSRules": [{"AllowedOrigins": [EVIL], "AllowedMethods": ["PUT"]}]}
# The same rules as the catalog keeps them (s3proxy.cors_config).
RULE_DICTS: list[dict[str, Any]] = [
    {"AllowedHeaders": [], "ExposeHeaders": [], **rule} for rule in RULES["CORSRules"]
]


def preflight(
    proxy: ProxyUnderTest, path: str, origin: str | None, method: str, headers: str | None = None
) -> requests.Response:
    sent = {"Access-Control-Request-Method": method}
    if origin is not None:
        sent["Origin"] = origin
    if headers is not None:
        sent["Access-Control-Request-Headers"] = headers
    return requests.options(proxy.endpoint + path, headers=sent, timeout=30)


def error(answer: requests.Response) -> dict[str, str]:
    return {node.tag: node.text or "" for node in ET.fromstring(answer.content)}


def refused(answer: requests.Response, message: str) -> dict[str, str]:
    """S3's answer to a preflight it does not allow: 403 AccessForbidden, no CORS header."""
    assert answer.status_code == 403, answer.text
    assert "Access-Control-Allow-Origin" not in answer.headers
    found = error(answer)
    assert (found["Code"], found["Message"]) == ("AccessForbidden", message)
    return found


@pytest.fixture
def bucket(proxy: ProxyUnderTest) -> str:
    name = f"cors-{uuid.uuid4().hex[:10]}"
    s3_client(proxy.endpoint, proxy.admin).create_bucket(Bucket=name)
    return name


@pytest.fixture
def configured(proxy: ProxyUnderTest, bucket: str) -> str:
    s3_client(proxy.endpoint, proxy.admin).put_bucket_cors(Bucket=bucket, CORSConfiguration=RULES)
    return bucket


def test_no_configuration_no_bucket_no_origin(proxy: ProxyUnderTest, bucket: str) -> None:
    found = refused(preflight(proxy, f"/{bucket}/a.txt", APP, "PUT"), NOT_ENABLED)
    assert (found["Method"], found["ResourceType"]) == ("PUT", "BUCKET")
    # A bucket that does not exist answers the same: preflights are anonymous.
    refused(preflight(proxy, "/no-such-bucket-cors/a.txt", APP, "GET"), NOT_ENABLED)
    answer = preflight(proxy, f"/{bucket}/a.txt", None, "GET")
    assert answer.status_code == 400
    assert error(answer)["Code"] == "BadRequest"


def test_first_matching_rule_answers_the_preflight(proxy: ProxyUnderTest, configured: str) -> None:
    answer = preflight(proxy, f"/{configured}/a.txt", APP, "PUT", "Content-Type, X-Amz-Meta-Color")
    assert answer.status_code == 200, answer.text
    assert answer.content == b""
    headers = answer.headers
    assert headers["Access-Control-Allow-Origin"] == APP
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert headers["Access-Control-Allow-Methods"] == "PUT, GET"
    assert headers["Access-Control-Allow-Headers"] == "content-type, x-amz-meta-color"
    assert headers["Access-Control-Expose-Headers"] == "ETag, x-amz-request-id"
    assert headers["Access-Control-Max-Age"] == "600"
    assert [v.strip() for v in headers["Vary"].split(",")] == [
        "Origin",
        "Access-Control-Request-Headers",
        "Access-Control-Request-Method",
    ]
    assert headers["x-amz-request-id"]


def test_wildcard_origin_rule_answers_star(proxy: ProxyUnderTest, configured: str) -> None:
    answer = preflight(proxy, f"/{configured}/a.txt", EVIL, "GET")
    assert answer.status_code == 200, answer.text
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in answer.headers
    assert answer.headers["Access-Control-Allow-Methods"] == "GET"
    assert "Access-Control-Max-Age" not in answer.headers
    assert "Access-Control-Expose-Headers" not in answer.headers


@pytest.mark.parametrize(
    ("origin", "method", "headers"),
    [
        (EVIL, "PUT", None),  # method allowed only for *.example.org
        (APP, "DELETE", None),  # method in no rule
        (APP, "PUT", "content-type, x-custom"),  # one header no AllowedHeader matches
        (EVIL, "GET", "range"),  # the * rule allows no header
        ("http://example.org.evil.com", "PUT", None),  # the wildcard is not a prefix match
        ("https://app.example.org", "PUT", None),  # another scheme is another origin
    ],
)
def test_preflight_refused_when_no_rule_matches(
    proxy: ProxyUnderTest, configured: str, origin: str, method: str, headers: str | None
) -> None:
    found = refused(preflight(proxy, f"/{configured}/a.txt", origin, method, headers), NOT_ALLOWED)
    assert (found["Method"], found["ResourceType"]) == (method, "OBJECT")


def test_signed_answers_carry_the_matched_rule(proxy: ProxyUnderTest, configured: str) -> None:
    s3 = s3_client(proxy.endpoint, proxy.admin, signature_version="s3v4")
    s3.put_object(Bucket=configured, Key="a.txt", Body=b"hello")
    get = s3.generate_presigned_url("get_object", Params={"Bucket": configured, "Key": "a.txt"})
    answer = requests.get(get, headers={"Origin": APP}, timeout=30)
    assert (answer.status_code, answer.content) == (200, b"hello"), answer.text
    assert answer.headers["Access-Control-Allow-Origin"] == APP
    assert answer.headers["Access-Control-Expose-Headers"] == "ETag, x-amz-request-id"
    assert "Origin" in answer.headers["Vary"]
    # Errors too, whether the backend's (no such key) or the proxy's (a bad signature).
    missing = s3.generate_presigned_url(
        "get_object", Params={"Bucket": configured, "Key": "missing.txt"}
    )
    answer = requests.get(missing, headers={"Origin": APP}, timeout=30)
    assert answer.status_code == 404
    assert answer.headers["Access-Control-Allow-Origin"] == APP
    answer = requests.get(
        get.replace("X-Amz-Signature=", "X-Amz-Signature=0"), headers={"Origin": APP}, timeout=30
    )
    assert answer.status_code == 403 and error(answer)["Code"] == "SignatureDoesNotMatch"
    assert answer.headers["Access-Control-Allow-Origin"] == APP
    # No Origin, or one no rule allows for this method: no CORS header at all (the backend's
    # own are not relayed either).
    assert "Access-Control-Allow-Origin" not in requests.get(get, timeout=30).headers
    put = s3.generate_presigned_url("put_object", Params={"Bucket": configured, "Key": "b.txt"})
    answer = requests.put(put, data=b"from evil", headers={"Origin": EVIL}, timeout=30)
    assert answer.status_code == 200  # S3 does not refuse it: the browser would
    assert not [h for h in answer.headers if h.lower().startswith("access-control-")]


def test_changes_through_the_proxy_apply_at_once(proxy: ProxyUnderTest, configured: str) -> None:
    s3 = s3_client(proxy.endpoint, proxy.admin)
    path = f"/{configured}/a.txt"
    assert preflight(proxy, path, APP, "PUT").status_code == 200  # now cached
    other = {"CORSRules": [{"AllowedOrigins": [EVIL], "AllowedMethods": ["PUT"]}]}
    s3.put_bucket_cors(Bucket=configured, CORSConfiguration=other)
    refused(preflight(proxy, path, APP, "PUT"), NOT_ALLOWED)
    assert preflight(proxy, path, EVIL, "PUT").headers["Access-Control-Allow-Origin"] == EVIL
    s3.delete_bucket_cors(Bucket=configured)
    refused(preflight(proxy, path, EVIL, "PUT"), NOT_ENABLED)


def test_only_bucket_admins_change_cors(proxy: ProxyUnderTest, configured: str) -> None:
    writer = s3_client(proxy.endpoint, proxy.make_key({configured: "rw"}, "cors-writer"))
    wide = {"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["PUT", "DELETE"]}]}
    for call, kwargs in (
        (writer.put_bucket_cors, {"CORSConfiguration": wide}),
        (writer.delete_bucket_cors, {}),
    ):
        with pytest.raises(ClientError) as caught:
            call(Bucket=configured, **kwargs)
        assert caught.value.response["Error"]["Code"] == "AccessDenied"
    refused(preflight(proxy, f"/{configured}/a.txt", EVIL, "DELETE"), NOT_ALLOWED)
    rules = s3_client(proxy.endpoint, proxy.admin).get_bucket_cors(Bucket=configured)
    assert rules["CORSRules"][0]["AllowedOrigins"] == ["http://*.example.org"]


def test_workers_sharing_a_catalog_see_each_change_at_once(catalog: Catalog) -> None:
    """Two BucketCors on one catalog, as two workers or replicas (on each engine): a change
    written by one is what the other answers next; parsed rules are reused while their
    revision holds."""

    async def scenario() -> None:
        one, other = BucketCors(catalog), BucketCors(catalog)
        try:
            assert await other.rules("shared") is None
            await one.write("shared", RULE_DICTS)
            first = await other.rules("shared")
            assert first is not None and len(first) == 2
            assert await other.rules("shared") is first  # same revision: not parsed again
            await one.write("shared", RULE_DICTS[1:])
            assert len(await other.rules("shared") or ()) == 1
            await one.write("shared", None)
            assert await other.rules("shared") is None
            await one.write("shared", RULE_DICTS[1:])  # the same rules again, a new revision
            assert len(await other.rules("shared") or ()) == 1
        finally:
            one.close()
            other.close()

    asyncio.run(scenario())


WORKERS = 2
ROUNDS = 24  # preflights per step, each on a new connection: the kernel spreads them


def preflights_by_worker(proxy: ProxyUnderTest) -> dict[str, float]:
    """How many preflights each worker has answered (200 or 403), from its counters file."""
    files = counters_by_worker(runtime_dir(proxy.settings, "s3proxy", proxy.port))
    return {
        name: sum(values.get(("requests", "OPTIONS", status), 0) for status in ("200", "403"))
        for name, values in files.items()
    }


def answered_by_every_worker(proxy: ProxyUnderTest, before: dict[str, float]) -> bool:
    after = preflights_by_worker(proxy)
    return len(after) == WORKERS and all(after[name] > before.get(name, 0) for name in after)


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The proxy's catalog on each engine (SQLite: the default, in its data dir)."""
    if request.param == "sqlite":
        yield {}
        return
    url = create_pg_database()
    yield {"NEBULA_DATABASE_URL": url}
    drop_pg_database(url)


def test_a_change_through_one_worker_reaches_every_worker_at_once(
    tmp_path: Path, seaweed: Seaweed, catalog_env: dict[str, str]
) -> None:
    """Every worker answers preflights first (the old code then kept the rules 5 s in
    each); a change made through whichever worker takes it is what every worker answers
    next, checked on enough new connections that each worker answers some."""
    env = {"NEBULA_S3PROXY_WORKERS": str(WORKERS), **catalog_env}
    pooled = start_proxy(tmp_path, seaweed, env)
    try:
        s3 = s3_client(pooled.endpoint, pooled.admin)
        bucket = f"cors-workers-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=RULES)
        path = f"/{bucket}/a.txt"
        steps: list[tuple[Callable[[], object], str, int]] = [
            (lambda: None, APP, 200),
            (lambda: s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=EVIL_ONLY), APP, 403),
            (lambda: None, EVIL, 200),
            (lambda: s3.delete_bucket_cors(Bucket=bucket), EVIL, 403),
        ]
        for change, origin, status in steps:
            change()
            before = preflights_by_worker(pooled)
            for _ in range(ROUNDS):
                answer = preflight(pooled, path, origin, "PUT")
                assert answer.status_code == status, (origin, answer.text)
            # Counters are written once each answer is sent: wait for the last ones.
            every = partial(answered_by_every_worker, pooled, before)
            wait_until(every, "every worker answered some of the preflights", 10)
    finally:
        pooled.stop()


def test_cors_calls_never_reach_the_backend(tmp_path: Path, seaweed: Seaweed) -> None:
    """Rules kept in the catalog answer the preflight; the backend sees nothing but the
    health probe's GET / (a backend without per-bucket CORS, as MinIO's community
    edition, serves browsers the same)."""
    body = b"<Error><Code>NoSuchCORSConfiguration</Code></Error>"
    answer = (
        b"HTTP/1.1 404 Not Found\r\nContent-Type: application/xml\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    )
    with proxy_to_scripted_backend(tmp_path, seaweed, answer) as (proxy, heads):
        refused(preflight(proxy, "/media/a.txt", APP, "PUT", "content-type"), NOT_ENABLED)
        with proxy.catalog.session() as session:
            put_cors(session, "media", RULE_DICTS)
        allowed = preflight(proxy, "/media/a.txt", APP, "PUT", "content-type")
        assert allowed.headers["Access-Control-Allow-Origin"] == APP, allowed.text
        s3 = s3_client(proxy.endpoint, proxy.admin)
        assert s3.get_bucket_cors(Bucket="media")["CORSRules"][0]["MaxAgeSeconds"] == 600
    assert [h for h in heads if not h.startswith(b"GET / ")] == []


def test_put_get_delete_bucket_cors(
    seaweed: Seaweed, proxy: ProxyUnderTest, configured: str
) -> None:
    s3 = s3_client(proxy.endpoint, proxy.admin)
    rules = s3.get_bucket_cors(Bucket=configured)["CORSRules"]
    assert rules == RULES["CORSRules"]
    direct: Any = backend_client(seaweed.settings)
    with pytest.raises(ClientError):  # kept in the catalog, not on the backend
        direct.get_bucket_cors(Bucket=configured)
    s3.delete_bucket_cors(Bucket=configured)
    with pytest.raises(ClientError) as caught:
        s3.get_bucket_cors(Bucket=configured)
    assert caught.value.response["Error"]["Code"] == "NoSuchCORSConfiguration"
    with pytest.raises(ClientError) as caught:
        s3.put_bucket_cors(Bucket="no-such-bucket-cors", CORSConfiguration=RULES)
    assert caught.value.response["Error"]["Code"] == "NoSuchBucket"


@pytest.mark.parametrize(
    ("document", "code"),
    [
        (b"not xml", "MalformedXML"),
        (b"<CORSConfiguration/>", "MalformedXML"),
        (
            b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin></CORSRule>"
            b"</CORSConfiguration>",
            "MalformedXML",
        ),
        (
            b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin>"
            b"<AllowedMethod>PATCH</AllowedMethod></CORSRule></CORSConfiguration>",
            "InvalidRequest",
        ),
        (
            b"<CORSConfiguration><CORSRule><AllowedOrigin>http://*.*.org</AllowedOrigin>"
            b"<AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>",
            "InvalidRequest",
        ),
        (
            b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin>"
            b"<AllowedMethod>GET</AllowedMethod><MaxAgeSeconds>-1</MaxAgeSeconds></CORSRule>"
            b"</CORSConfiguration>",
            "MalformedXML",
        ),
    ],
)
def test_configurations_s3_refuses(document: bytes, code: str) -> None:
    with pytest.raises(S3Error) as caught:
        parse_rules(document)
    assert caught.value.code == code


def test_outside_the_allow_list_no_preflight(tmp_path: Path, seaweed: Seaweed) -> None:
    name = f"cors-closed-{uuid.uuid4().hex[:8]}"
    direct: Any = backend_client(seaweed.settings)
    direct.create_bucket(Bucket=name)
    direct.put_bucket_cors(Bucket=name, CORSConfiguration=RULES)
    closed = start_proxy(tmp_path, seaweed, {"NEBULA_ALLOW_CIDRS": "10.99.0.0/16"})
    try:
        answer = preflight(closed, f"/{name}/a.txt", EVIL, "GET")
        assert answer.status_code == 403 and error(answer)["Code"] == "AccessDenied"
        assert "Access-Control-Allow-Origin" not in answer.headers
    finally:
        closed.stop()


def test_patterns_are_literal_but_for_the_wildcard() -> None:
    rules = parse_rules(
        b'<CORSConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><CORSRule>'
        b"<AllowedOrigin>https://app.example.org</AllowedOrigin>"
        b"<AllowedOrigin>https://*.cdn.example.org</AllowedOrigin>"
        b"<AllowedMethod>GET</AllowedMethod><AllowedHeader>X-Amz-*</AllowedHeader>"
        b"</CORSRule></CORSConfiguration>"
    )
    assert first_match(rules, "https://app.example.org", "GET", ["x-amz-date"]) is rules[0]
    assert first_match(rules, "https://a.b.cdn.example.org", "GET", []) is rules[0]
    assert first_match(rules, "https://appXexample.org", "GET", []) is None  # "." is a dot
    assert first_match(rules, "https://app.example.org.evil", "GET", []) is None
    assert first_match(rules, "https://app.example.org", "get", []) is None  # methods exact
    assert first_match(rules, "https://app.example.org", "GET", ["content-type"]) is None
