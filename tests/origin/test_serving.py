"""Serving the ladder: content types, Range, validators, HEAD, CORS, cache headers, cache."""

from __future__ import annotations

import concurrent.futures
import os
import re
from collections.abc import Callable
from pathlib import Path

from tests.origin.conftest import Published
from tests.origin.http import gauge, request
from tests.stacks import OriginUnderTest

PLAYLIST = "application/vnd.apple.mpegurl"


def hls(published: Published, name: str) -> str:
    return f"/hls/{published.asset_id}/{name}"


def test_every_file_kind_has_its_content_type(
    origin: OriginUnderTest, published: Published
) -> None:
    expected = {
        "master.m3u8": PLAYLIST,
        "v1/360p/index.m3u8": PLAYLIST,
        "v1/360p/init_1.mp4": "video/mp4",
        "v1/360p/seg_00001.m4s": "video/mp4",
        "poster.jpg": "image/jpeg",
        "v1/sprite.jpg": "image/jpeg",
        "thumbnails.vtt": "text/vtt",
    }
    for name, content_type in expected.items():
        reply = request(origin.url, hls(published, name))
        assert reply.status == 200, (name, reply.body)
        assert reply.need("Content-Type").split(";")[0] == content_type, name
        assert reply.body == (published.files / name).read_bytes(), name


def test_segments_are_immutable_for_a_year_and_playlists_short(
    origin: OriginUnderTest, published: Published
) -> None:
    segment = request(origin.url, hls(published, "v1/180p/seg_00000.m4s"))
    assert "immutable" in segment.need("Cache-Control")
    assert "max-age=31536000" in segment.need("Cache-Control")
    master = request(origin.url, hls(published, "master.m3u8"))
    found = re.search(r"max-age=(\d+)", master.need("Cache-Control"))
    assert found is not None, master.need("Cache-Control")
    max_age = int(found.group(1))
    assert max_age <= 60 and "immutable" not in master.need("Cache-Control")


def test_range_on_a_segment_gives_206_with_content_range(
    origin: OriginUnderTest, published: Published
) -> None:
    name = "v1/360p/seg_00002.m4s"
    whole = (published.files / name).read_bytes()
    reply = request(origin.url, hls(published, name), headers={"Range": "bytes=100-1099"})
    assert reply.status == 206
    assert reply.header("Content-Range") == f"bytes 100-1099/{len(whole)}"
    assert reply.body == whole[100:1100]
    tail = request(origin.url, hls(published, name), headers={"Range": "bytes=-500"})
    assert tail.status == 206 and tail.body == whole[-500:]


def test_range_on_the_master_playlist_as_vlc_asks(
    origin: OriginUnderTest, published: Published
) -> None:
    whole = (published.files / "master.m3u8").read_bytes()
    reply = request(origin.url, hls(published, "master.m3u8"), headers={"Range": "bytes=0-"})
    assert reply.status == 206
    assert reply.header("Content-Range") == f"bytes 0-{len(whole) - 1}/{len(whole)}"
    assert reply.body == whole


def test_unsatisfiable_range_is_416(origin: OriginUnderTest, published: Published) -> None:
    for name in ("master.m3u8", "v1/360p/seg_00001.m4s"):
        size = (published.files / name).stat().st_size
        reply = request(origin.url, hls(published, name), headers={"Range": f"bytes={size + 10}-"})
        assert reply.status == 416, name
        assert reply.header("Content-Range") == f"bytes */{size}", name


def test_etag_and_last_modified_give_304(origin: OriginUnderTest, published: Published) -> None:
    # A master playlist has no #EXT-X-ENDLIST: test_growing_playlists covers its validators.
    for name in ("v1/360p/index.m3u8", "v1/360p/seg_00003.m4s", "poster.jpg"):
        first = request(origin.url, hls(published, name))
        etag, modified = first.header("ETag"), first.header("Last-Modified")
        assert etag and modified, name
        again = request(origin.url, hls(published, name), headers={"If-None-Match": etag})
        assert again.status == 304 and again.body == b"", name
        since = request(origin.url, hls(published, name), headers={"If-Modified-Since": modified})
        assert since.status == 304, name
        other = request(origin.url, hls(published, name), headers={"If-None-Match": '"nope"'})
        assert other.status == 200, name


def test_segment_etag_is_the_same_from_backend_and_from_cache(
    origin: OriginUnderTest, published: Published
) -> None:
    # The first request of a fresh name misses the cache; the second comes from memory.
    name = hls(published, "v1/180p/seg_00003.m4s")
    first, second = request(origin.url, name), request(origin.url, name)
    assert first.header("ETag") == second.header("ETag")
    assert first.header("Last-Modified") == second.header("Last-Modified")


def test_head_everywhere(origin: OriginUnderTest, published: Published) -> None:
    for name in ("master.m3u8", "v1/360p/seg_00000.m4s", "thumbnails.vtt"):
        size = (published.files / name).stat().st_size
        reply = request(origin.url, hls(published, name), method="HEAD")
        assert reply.status == 200 and reply.body == b"", name
        assert int(reply.need("Content-Length")) == size, name
    original = request(origin.url, f"/files/{published.asset_id}", method="HEAD")
    assert original.status == 200
    assert int(original.need("Content-Length")) == published.source.stat().st_size


def test_cors_headers_and_preflight(origin: OriginUnderTest, published: Published) -> None:
    reply = request(
        origin.url, hls(published, "master.m3u8"), headers={"Origin": "https://player.example"}
    )
    assert reply.header("Access-Control-Allow-Origin") == "*"
    exposed = reply.need("Access-Control-Expose-Headers")
    assert "Content-Range" in exposed and "Content-Length" in exposed
    preflight = request(
        origin.url,
        hls(published, "v1/360p/seg_00000.m4s"),
        method="OPTIONS",
        headers={
            "Origin": "https://player.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "range",
        },
    )
    assert preflight.status == 204
    assert preflight.header("Access-Control-Allow-Origin") == "*"
    assert "Range" in preflight.need("Access-Control-Allow-Headers")
    assert "GET" in preflight.need("Access-Control-Allow-Methods")


# What every answer about a ladder file carries, whichever path served it.
SAME_HEADERS = (
    "Content-Type",
    "Cache-Control",
    "ETag",
    "Last-Modified",
    "Accept-Ranges",
    "Content-Range",
    "Access-Control-Allow-Origin",
    "Access-Control-Expose-Headers",
)


def test_the_front_and_the_router_answer_alike(
    origin: OriginUnderTest, published: Published
) -> None:
    """The front (origin.front) takes plain ``/hls/`` paths; one with a percent-escape
    goes through the app's router and its middlewares. Both give the same answers, error
    answers carry the CORS headers too, and /metrics counts both."""
    counts = ("206", "404")  # statuses a scrape of /metrics itself never has
    before = {status: requests_of(origin.url, status) for status in counts}
    for name, escaped, headers in (
        ("master.m3u8", "master%2Em3u8", {}),
        ("v1/360p/seg_00001.m4s", "v1/360p/seg_00001%2Em4s", {"Range": "bytes=10-99"}),
        ("v1/360p/seg_99999.m4s", "v1/360p/seg_99999%2Em4s", {}),
    ):
        front = request(origin.url, hls(published, name), headers=headers)
        routed = request(origin.url, hls(published, escaped), headers=headers)
        assert front.status == routed.status, name
        assert front.body == routed.body, name
        for header in SAME_HEADERS:
            assert front.header(header) == routed.header(header), (name, header)
        assert front.header("Access-Control-Allow-Origin") == "*", name
    assert {status: requests_of(origin.url, status) - before[status] for status in counts} == {
        "206": 2,
        "404": 2,
    }


def test_the_front_refuses_outside_the_allow_list_as_the_router_does(
    launch: Callable[..., OriginUnderTest], published: Published
) -> None:
    """The front decides the allow-list itself; a client outside it (here: every local
    peer) is passed to the app, whose guard refuses it: the same 403 both ways."""
    guarded = launch(NEBULA_ALLOW_CIDRS="100.64.0.0/10")
    front = request(guarded.url, hls(published, "master.m3u8"))
    routed = request(guarded.url, hls(published, "master%2Em3u8"))
    assert front.status == routed.status == 403
    assert (
        front.body
        == routed.body
        == (
            b"403 Forbidden: your network (127.0.0.1) is not allowed; "
            b"the operator can add it to NEBULA_ALLOW_CIDRS\n"
        )
    )


def requests_of(base_url: str, status: str) -> float:
    """GET requests answered with ``status`` so far (0 before the first)."""
    metrics = request(base_url, "/metrics").body.decode()
    sample = f'nebula_origin_requests_total{{method="GET",status="{status}"}} '
    lines = [line for line in metrics.splitlines() if line.startswith(sample)]
    return float(lines[0].removeprefix(sample)) if lines else 0.0


def test_original_upload_streams_with_byte_ranges(
    origin: OriginUnderTest, published: Published
) -> None:
    whole = published.source.read_bytes()
    path = f"/files/{published.asset_id}"
    full = request(origin.url, path)
    assert full.status == 200 and full.body == whole
    assert full.header("Content-Type") == "video/mp4"
    assert full.header("Accept-Ranges") == "bytes"
    middle = request(origin.url, path, headers={"Range": "bytes=1000-4999"})
    assert middle.status == 206 and middle.body == whole[1000:5000]
    assert middle.header("Content-Range") == f"bytes 1000-4999/{len(whole)}"
    suffix = request(origin.url, path, headers={"Range": "bytes=-100"})
    assert suffix.status == 206 and suffix.body == whole[-100:]
    past = request(origin.url, path, headers={"Range": f"bytes={len(whole)}-"})
    assert past.status == 416
    assert past.header("Content-Range") == f"bytes */{len(whole)}"
    again = request(origin.url, path, headers={"If-None-Match": full.need("ETag")})
    assert again.status == 304


def test_concurrent_misses_fetch_from_the_backend_once(launch, published: Published) -> None:
    fresh = launch()
    name = hls(published, "v1/360p/seg_00001.m4s")
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda _: request(fresh.url, name), range(32)))
    whole = (published.files / "v1/360p/seg_00001.m4s").read_bytes()
    assert all(r.status == 200 and r.body == whole for r in replies)
    assert gauge(fresh.url, "nebula_origin_cache_fills_total") == 1
    # Whether the burst joined the one fetch or came after it, the next one is a hit.
    assert request(fresh.url, name).body == whole
    assert gauge(fresh.url, "nebula_origin_cache_fills_total") == 1
    hits = gauge(fresh.url, "nebula_origin_cache_hits_total")
    assert hits + gauge(fresh.url, "nebula_origin_memory_hits_total") >= 1


def test_cache_keeps_under_its_size_cap(launch, published: Published) -> None:
    small = launch(NEBULA_ORIGIN_CACHE_MAX_MB="1")
    segments = sorted(published.files.glob("v1/*/seg_*.m4s"))
    assert sum(p.stat().st_size for p in segments) > 1024 * 1024, "ladder too small for this test"
    for segment in segments:
        reply = request(small.url, hls(published, str(segment.relative_to(published.files))))
        assert reply.status == 200 and reply.body == segment.read_bytes()
    assert gauge(small.url, "nebula_origin_cache_bytes") <= 1024 * 1024
    assert gauge(small.url, "nebula_origin_cache_evictions_total") >= 1
    # An evicted segment comes back from the backend, byte for byte.
    first = segments[0]
    again = request(small.url, hls(published, str(first.relative_to(published.files))))
    assert again.status == 200 and again.body == first.read_bytes()


def test_hot_segments_answer_from_memory_exactly_as_from_disk(launch, published: Published) -> None:
    in_memory, on_disk = launch(), launch(NEBULA_ORIGIN_MEMORY_CACHE_MB="0")
    name = "v1/360p/seg_00002.m4s"
    whole = (published.files / name).read_bytes()
    for origin in (in_memory, on_disk):
        request(origin.url, hls(published, name))  # fill the caches
    answers = {}
    for origin in (in_memory, on_disk):
        full = request(origin.url, hls(published, name))
        part = request(origin.url, hls(published, name), headers={"Range": "bytes=100-299"})
        tail = request(origin.url, hls(published, name), headers={"Range": "bytes=-50"})
        head = request(origin.url, hls(published, name), method="HEAD")
        same = request(
            origin.url, hls(published, name), headers={"If-None-Match": full.need("ETag")}
        )
        assert full.status == 200 and full.body == whole
        assert part.status == 206 and part.body == whole[100:300]
        assert tail.status == 206 and tail.body == whole[-50:]
        assert head.status == 200 and head.body == b""
        assert same.status == 304
        answers[origin.url] = [
            (r.status, r.header("ETag"), r.header("Last-Modified"), r.header("Content-Range"))
            for r in (full, part, tail)
        ] + [head.header("Content-Length"), head.header("Cache-Control")]
    assert answers[in_memory.url] == answers[on_disk.url]
    assert gauge(in_memory.url, "nebula_origin_memory_hits_total") >= 5
    assert gauge(on_disk.url, "nebula_origin_memory_objects") == 0


def test_memory_tier_keeps_under_its_cap(launch, published: Published) -> None:
    small = launch(NEBULA_ORIGIN_MEMORY_CACHE_MB="1")
    segments = sorted(published.files.glob("v1/*/seg_*.m4s"))
    assert sum(p.stat().st_size for p in segments) > 1024 * 1024, "ladder too small for this test"
    for _ in range(2):
        for segment in segments:
            reply = request(small.url, hls(published, str(segment.relative_to(published.files))))
            assert reply.status == 200 and reply.body == segment.read_bytes()
    assert 0 < gauge(small.url, "nebula_origin_memory_bytes") <= 1024 * 1024


def test_several_workers_share_the_port_and_stop_together(launch, published: Published) -> None:
    from tests.services import alive, descendants

    pooled = launch(NEBULA_ORIGIN_WORKERS="2")
    children = descendants(pooled.process.pid)
    assert len(children) >= 2
    whole = (published.files / "v1/360p/seg_00002.m4s").read_bytes()
    for _ in range(8):  # a new connection each time: the kernel spreads them over workers
        reply = request(pooled.url, hls(published, "v1/360p/seg_00002.m4s"))
        assert reply.status == 200 and reply.body == whole
    pooled.process.terminate()
    assert pooled.process.wait(timeout=20) == 0
    assert not [pid for pid in children if alive(pid)]


def _peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    peak = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    assert peak is not None, status
    return int(peak.group(1)) / 1024


def test_memory_does_not_grow_with_object_size(launch, published: Published) -> None:
    """48 MiB through /files/ (streamed) and through /hls/ (cache fill, then sendfile)."""
    from catalog import Catalog
    from catalog.models import Asset, AssetStatus
    from nebulacore.config import load_settings
    from nebulacore.s3 import backend_client

    size = 48 * 1024 * 1024
    settings = load_settings(published.env)
    client = backend_client(settings)
    blob = os.urandom(1024 * 1024) * 48
    client.put_object(Bucket="media", Key="big/original.mp4", Body=blob)
    catalog = Catalog(published.catalog_url)
    with catalog.session() as session:
        asset = Asset(bucket="media", key="big/original.mp4", size=size, status=AssetStatus.READY)
        session.add(asset)
        session.flush()
        big_id = asset.id
    catalog.dispose()
    client.put_object(Bucket=settings.hls_bucket, Key=f"{big_id}/v1/2160p/seg_00000.m4s", Body=blob)
    del blob
    fresh = launch()
    request(fresh.url, "/healthz")
    before = _peak_rss_mib(fresh.process.pid)
    for path in (f"/files/{big_id}", f"/hls/{big_id}/v1/2160p/seg_00000.m4s"):
        received = _drain(fresh.url, path)
        assert received == size, path
    growth = _peak_rss_mib(fresh.process.pid) - before
    assert growth < 24, f"peak RSS grew by {growth:.1f} MiB for 48 MiB bodies"


def _drain(base_url: str, path: str) -> int:
    """Read a body in small pieces without keeping it."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        assert response.status == 200, path
        total = 0
        while chunk := response.read(256 * 1024):
            total += len(chunk)
        return total
    finally:
        conn.close()
