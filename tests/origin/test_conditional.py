"""Preconditions and ranges: one answer to one request whichever tier holds the object.

The same segment is served by three origins over the same published ladder: one from
memory (the default, warm), one from the disk cache (memory tier off) and one streamed
from the backend (cache off). /files/ is always streamed.
"""

from __future__ import annotations

from collections.abc import Callable
from email.utils import formatdate, parsedate_to_datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.origin.conftest import Published
from tests.origin.http import Reply, gauge, request
from tests.stacks import OriginUnderTest

SEGMENT = "v1/360p/seg_00002.m4s"
HUGE = 2**63
COMPARED = ("Content-Range", "Content-Length", "ETag", "Last-Modified", "Cache-Control")


@pytest.fixture(scope="module")
def tiers(
    launch: Callable[..., OriginUnderTest], published: Published
) -> dict[str, OriginUnderTest]:
    started = {
        "memory": launch(),
        "disk": launch(NEBULA_ORIGIN_MEMORY_CACHE_MB="0"),
        "streamed": launch(NEBULA_ORIGIN_CACHE_MAX_MB="0"),
    }
    for origin in started.values():
        assert request(origin.url, f"/hls/{published.asset_id}/{SEGMENT}").status == 200
    return started


def ask(
    origin: OriginUnderTest, published: Published, headers: dict[str, str], method: str = "GET"
) -> Reply:
    return request(origin.url, f"/hls/{published.asset_id}/{SEGMENT}", method, headers)


def same_everywhere(
    tiers: dict[str, OriginUnderTest],
    published: Published,
    headers: dict[str, str],
    method: str = "GET",
) -> Reply:
    """The one answer all three tiers give (asserted), and that it is the right bytes."""
    replies = {name: ask(origin, published, headers, method) for name, origin in tiers.items()}
    seen = {
        name: (r.status, r.body, *(r.header(h) for h in COMPARED)) for name, r in replies.items()
    }
    assert seen["memory"] == seen["disk"] == seen["streamed"], (headers, method, seen)
    reply = replies["memory"]
    whole = (published.files / SEGMENT).read_bytes()
    if reply.status == 206 and method == "GET":
        first, last = map(int, reply.need("Content-Range").split()[1].split("/")[0].split("-"))
        assert reply.body == whole[first : last + 1]
    elif reply.status == 200 and method == "GET":
        assert reply.body == whole
    else:
        assert reply.body == b""
    return reply


def validators(tiers: dict[str, OriginUnderTest], published: Published) -> tuple[str, str, float]:
    plain = ask(tiers["memory"], published, {})
    modified = plain.need("Last-Modified")
    return plain.need("ETag"), modified, parsedate_to_datetime(modified).timestamp()


def http_date(stamp: float) -> str:
    return formatdate(stamp, usegmt=True)


def test_zero_length_suffix_and_huge_starts_are_416_on_every_tier(
    tiers: dict[str, OriginUnderTest], published: Published
) -> None:
    size = (published.files / SEGMENT).stat().st_size
    for spec in (
        "bytes=-0",
        "bytes=-00",
        f"bytes={HUGE}-",
        f"bytes={HUGE}-{HUGE + 5}",
        f"bytes={2**64}-",
    ):
        reply = same_everywhere(tiers, published, {"Range": spec})
        assert reply.status == 416, spec
        assert reply.header("Content-Range") == f"bytes */{size}", spec


def test_huge_end_and_huge_suffix_are_the_whole_segment(
    tiers: dict[str, OriginUnderTest], published: Published
) -> None:
    size = (published.files / SEGMENT).stat().st_size
    for spec in (f"bytes=0-{HUGE}", f"bytes=-{HUGE}", f"bytes=10-{2**64}"):
        reply = same_everywhere(tiers, published, {"Range": spec})
        assert reply.status == 206, spec
        start = 10 if spec.startswith("bytes=10") else 0
        assert reply.header("Content-Range") == f"bytes {start}-{size - 1}/{size}", spec


def test_if_match_and_if_unmodified_since_on_every_tier(
    tiers: dict[str, OriginUnderTest], published: Published
) -> None:
    etag, modified, stamp = validators(tiers, published)
    failing = [
        {"If-Match": '"another"'},
        {"If-Match": "W/" + etag},  # If-Match compares strongly
        {"If-Unmodified-Since": http_date(stamp - 1)},
        {"If-Match": '"another"', "If-None-Match": etag},  # If-Match is judged first
        {"If-Match": '"another"', "Range": "bytes=0-9"},
    ]
    for headers in failing:
        assert same_everywhere(tiers, published, headers).status == 412, headers
    passing = [
        {"If-Match": etag},
        {"If-Match": "*"},
        {"If-Match": f'"another", {etag}'},
        {"If-Unmodified-Since": modified},
        {"If-Match": etag, "If-Unmodified-Since": http_date(stamp - 1)},  # If-Match wins
        {"If-Unmodified-Since": "not a date"},  # an invalid date is ignored
    ]
    for headers in passing:
        assert same_everywhere(tiers, published, headers).status == 200, headers


def test_not_modified_comes_before_range_on_every_tier(
    tiers: dict[str, OriginUnderTest], published: Published
) -> None:
    etag, modified, _stamp = validators(tiers, published)
    for headers in (
        {"If-None-Match": etag, "Range": "bytes=0-9"},
        {"If-Modified-Since": modified, "Range": "bytes=-0"},
        {"If-None-Match": f"W/{etag}"},  # If-None-Match compares weakly
    ):
        reply = same_everywhere(tiers, published, headers)
        assert reply.status == 304 and reply.header("ETag") == etag, headers
    # If-None-Match present: If-Modified-Since is not looked at.
    headers = {"If-None-Match": '"another"', "If-Modified-Since": modified}
    assert same_everywhere(tiers, published, headers).status == 200


def test_if_range_on_every_tier(tiers: dict[str, OriginUnderTest], published: Published) -> None:
    etag, modified, stamp = validators(tiers, published)
    for if_range, status in (
        (etag, 206),
        (modified, 206),
        ('"another"', 200),
        ("W/" + etag, 200),  # a weak tag never matches in If-Range
        (http_date(stamp + 1), 200),  # a date must equal Last-Modified exactly
        ("garbage", 200),
    ):
        reply = same_everywhere(tiers, published, {"Range": "bytes=5-14", "If-Range": if_range})
        assert reply.status == status, if_range


def test_head_and_other_units_ignore_range_on_every_tier(
    tiers: dict[str, OriginUnderTest], published: Published
) -> None:
    size = (published.files / SEGMENT).stat().st_size
    head = same_everywhere(tiers, published, {"Range": "bytes=0-9"}, method="HEAD")
    assert head.status == 200 and int(head.need("Content-Length")) == size
    items = same_everywhere(tiers, published, {"Range": "items=0-9"})
    assert items.status == 200 and int(items.need("Content-Length")) == size


def test_the_memory_tier_really_answered(
    tiers: dict[str, OriginUnderTest], published: Published
) -> None:
    """The comparison above means something only if each origin used its own tier."""
    before = gauge(tiers["memory"].url, "nebula_origin_memory_hits_total")
    ask(tiers["memory"], published, {"Range": "bytes=0-9"})
    assert gauge(tiers["memory"].url, "nebula_origin_memory_hits_total") == before + 1
    assert gauge(tiers["disk"].url, "nebula_origin_memory_objects") == 0
    assert gauge(tiers["disk"].url, "nebula_origin_cache_objects") >= 1
    assert gauge(tiers["streamed"].url, "nebula_origin_cache_objects") == 0


NUMBER = st.one_of(st.integers(0, 400_000), st.sampled_from([HUGE, HUGE - 1, 2**64, 10**30])).map(
    str
)
RANGES = st.one_of(
    st.builds(lambda a, b: f"bytes={a}-{b}", NUMBER, NUMBER),
    st.builds(lambda a: f"bytes={a}-", NUMBER),
    st.builds(lambda b: f"bytes=-{b}", NUMBER),
    st.sampled_from(
        [
            "bytes=-0",
            "bytes=0-0",
            "bytes=-",
            "bytes=1-2,4-5",
            "items=0-1",
            "bytes = 0-1",
            "bytes=²-3",
        ]
    ),
    st.text(max_size=12).filter(str.isprintable).filter(str.isascii),
)


def _tags(etag: str) -> st.SearchStrategy[str]:
    return st.sampled_from([etag, "W/" + etag, '"another"', "*", f'"x", {etag}', "garbage"])


def _dates(stamp: float) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from([stamp - 86400, stamp - 1, stamp, stamp + 1]).map(http_date),
        st.just("garbage"),
    )


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_conditional_requests_get_one_answer_from_every_tier(
    tiers: dict[str, OriginUnderTest], published: Published, data: st.DataObject
) -> None:
    etag, _modified, stamp = validators(tiers, published)
    optional = {
        "Range": RANGES,
        "If-Match": _tags(etag),
        "If-None-Match": _tags(etag),
        "If-Modified-Since": _dates(stamp),
        "If-Unmodified-Since": _dates(stamp),
        "If-Range": st.one_of(_tags(etag), _dates(stamp)),
    }
    headers = {}
    for name, values in optional.items():
        if data.draw(st.booleans(), label=f"has {name}"):
            headers[name] = data.draw(values, label=name)
    method = data.draw(st.sampled_from(["GET", "GET", "HEAD"]), label="method")
    same_everywhere(tiers, published, headers, method)


def test_original_file_answers_the_same_edges(
    origin: OriginUnderTest, published: Published
) -> None:
    """/files/ is streamed from the backend: the same rules as the segment tiers."""
    path = f"/files/{published.asset_id}"
    whole = published.source.read_bytes()
    full = request(origin.url, path)
    etag, stamp = (
        full.need("ETag"),
        parsedate_to_datetime(full.need("Last-Modified")).timestamp(),
    )
    for spec in ("bytes=-0", f"bytes={HUGE}-", f"bytes={2**64}-"):
        reply = request(origin.url, path, headers={"Range": spec})
        assert reply.status == 416 and reply.body == b"", spec
        assert reply.header("Content-Range") == f"bytes */{len(whole)}", spec
    huge_end = request(origin.url, path, headers={"Range": f"bytes=100-{HUGE}"})
    assert huge_end.status == 206 and huge_end.body == whole[100:]
    assert request(origin.url, path, headers={"If-Match": '"another"'}).status == 412
    old = {"If-Unmodified-Since": http_date(stamp - 1), "Range": "bytes=0-9"}
    assert request(origin.url, path, headers=old).status == 412
    assert request(origin.url, path, headers={"If-Match": etag}).body == whole
    stale = request(origin.url, path, headers={"Range": "bytes=0-9", "If-Range": '"another"'})
    assert stale.status == 200 and stale.body == whole


def test_a_large_hot_segment_is_whole_and_exact_from_memory(
    tiers: dict[str, OriginUnderTest], published: Published
) -> None:
    """From 256 KiB on a body in memory leaves after its head, corked (respond._HeadFirst):
    the same bytes and headers as the streamed tier, whole, in ranges, and for HEAD."""
    import os

    from nebulacore.config import load_settings
    from nebulacore.s3 import backend_client

    name = "v1/360p/seg_large.m4s"
    blob = os.urandom(1024 * 1024 + 17)
    settings = load_settings(published.env)
    key = f"{published.asset_id}/{name}"
    backend_client(settings).put_object(Bucket=settings.hls_bucket, Key=key, Body=blob)
    path = f"/hls/{published.asset_id}/{name}"
    memory, streamed = tiers["memory"], tiers["streamed"]
    assert request(memory.url, path).body == blob  # fills the memory tier
    before = gauge(memory.url, "nebula_origin_memory_hits_total")
    cases: list[tuple[str, dict[str, str], bytes]] = [
        ("GET", {}, blob),
        ("GET", {"Range": "bytes=1000-400000"}, blob[1000:400001]),
        ("GET", {"Range": "bytes=-300000"}, blob[-300000:]),
        ("GET", {"Range": "bytes=5-9"}, blob[5:10]),
        ("HEAD", {}, b""),
    ]
    for method, headers, expected in cases:
        hot = request(memory.url, path, method, headers)
        relayed = request(streamed.url, path, method, headers)
        assert hot.body == expected and relayed.body == expected, (method, headers)
        assert hot.status == relayed.status, (method, headers)
        for header in COMPARED[:2]:
            assert hot.header(header) == relayed.header(header), (method, headers, header)
    assert gauge(memory.url, "nebula_origin_memory_hits_total") == before + len(cases)
