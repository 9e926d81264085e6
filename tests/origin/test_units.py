"""Pure functions: name checks, token signing, playlist rewriting, cache eviction."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from catalog.models import Asset, AssetStatus
from nebula.cli.playback import parse_duration
from origin.assets import _view
from origin.backend import Missing, ObjectInfo
from origin.cache import HotObject, MemoryTier, SegmentCache, SizedLru
from origin.ids import BadName, check_asset_id, check_ladder_path
from origin.rewrite import sign_playlist, sign_vtt, with_query
from origin.signing import PlaybackSigner, Refused


@pytest.mark.parametrize(
    "path", ["master.m3u8", "v12/720p/seg_00001.m4s", "v3/sprite.jpg", "v1/audio/init_0.mp4"]
)
def test_ladder_paths_accepted(path: str) -> None:
    assert check_ladder_path(path) == path


@pytest.mark.parametrize(
    "path",
    ["", "../x", "a/../b", "a//b", "/etc/passwd", ".hidden", "a\\b", "a/b/c/d.m4s", "x\x00.m4s",
     "seg.m4s?x", "%2e%2e"],
)  # fmt: skip
def test_ladder_paths_refused(path: str) -> None:
    with pytest.raises(BadName):
        check_ladder_path(path)


@pytest.mark.parametrize("asset_id", ["..", "ABC", "a/b", "a", "x" * 40, "abc-def"])
def test_asset_ids_refused(asset_id: str) -> None:
    with pytest.raises(BadName):
        check_asset_id(asset_id)


def test_tokens_verify_and_refuse() -> None:
    signer = PlaybackSigner("k")
    query = signer.query("abcd1234", 2_000_000_000)
    params = dict(p.split("=", 1) for p in query.split("&"))
    assert signer.verify("abcd1234", params, now=1_900_000_000) == query
    with pytest.raises(Refused, match="expired"):
        signer.verify("abcd1234", params, now=2_000_000_001)
    with pytest.raises(Refused, match="bad signature"):
        signer.verify("abcd1235", params, now=0)
    with pytest.raises(Refused):
        signer.verify("abcd1234", {}, now=0)


@settings(max_examples=500, deadline=None)
@example(exp="\u00b2", sig="x" * 43)  # a Unicode digit: str.isdigit() but not int()
@example(exp="\u0661" * 12, sig="x" * 43)
@example(exp="1", sig="\u00e9" * 43)
@given(
    exp=st.one_of(st.text(max_size=40), st.integers().map(str)),
    sig=st.one_of(st.text(max_size=60), st.binary(max_size=43).map(lambda b: b.hex())),
)
def test_tokens_of_any_shape_are_refused_never_crash(exp: str, sig: str) -> None:
    """Only Refused comes out of verify for a token not made by the key (ValueError,
    TypeError or UnicodeError would be a 500 with a traceback)."""
    with pytest.raises(Refused):
        PlaybackSigner("k").verify("abcd1234", {"exp": exp, "sig": sig}, now=0)


def test_playlist_rewrite_covers_uri_lines_and_attributes() -> None:
    text = (
        "#EXTM3U\n"
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",URI="audio/index.m3u8"\n'
        '#EXT-X-MAP:URI="init_0.mp4"\n'
        "#EXTINF:4,\nseg_1.m4s\n\nhttps://elsewhere.example/x.m4s\n"
        '#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,CODECS="avc1.64001e",URI="v1/360p/iframes.m3u8"\n'
        "#EXT-X-BYTERANGE:100@76\nseg_2.m4s\n"
    )
    out = sign_playlist(text, "exp=1&sig=s")
    assert 'URI="v1/360p/iframes.m3u8?exp=1&sig=s"' in out
    assert "#EXT-X-BYTERANGE:100@76\nseg_2.m4s?exp=1&sig=s\n" in out
    assert 'URI="audio/index.m3u8?exp=1&sig=s"' in out
    assert 'URI="init_0.mp4?exp=1&sig=s"' in out
    assert "\nseg_1.m4s?exp=1&sig=s\n" in out
    assert "https://elsewhere.example/x.m4s\n" in out
    assert with_query("a.m4s?x=1", "q") == "a.m4s?x=1&q"


def test_vtt_rewrite_keeps_the_fragment_last() -> None:
    vtt = "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nv1/sprite.jpg#xywh=0,0,160,90\n"
    assert "v1/sprite.jpg?q#xywh=0,0,160,90" in sign_vtt(vtt, "q")


def test_durations() -> None:
    assert parse_duration("1h") == 3600 and parse_duration("90") == 90
    assert parse_duration("15m") == 900 and parse_duration("7d") == 7 * 86400


def test_cache_evicts_least_recently_used(tmp_path: Path) -> None:
    async def fetch(key: str, file: io.BufferedWriter) -> float:
        file.write(b"x" * 400)
        return 1_700_000_000.0

    async def scenario() -> SegmentCache:
        cache = SegmentCache(tmp_path, 1000, fetch)  # type: ignore[arg-type]
        cache.reset()
        await cache.get("a")
        await cache.get("b")
        await cache.get("a")  # a is now the most recent
        await cache.get("c")  # over the cap: b goes
        return cache

    cache = asyncio.run(scenario())
    assert cache.total_bytes == 800 and cache.evictions == 1
    assert [key for key in "abc" if key in cache._files] == ["a", "c"]


def test_dropping_a_prefix_removes_its_files_now_and_voids_a_fill_under_way(
    tmp_path: Path,
) -> None:
    """What a deletion does to one worker's disk cache: the asset's files go at once, other
    assets' stay, and a fill that was under way never lands (its waiters get Missing)."""
    release = asyncio.Event()

    async def fetch(key: str, file: io.BufferedWriter) -> float:
        if key.endswith("slow.m4s"):
            await release.wait()
        file.write(b"x" * 10)
        return 1_700_000_000.0

    async def scenario() -> tuple[SegmentCache, list[Path], BaseException | None]:
        cache = SegmentCache(tmp_path, 1000, fetch)  # type: ignore[arg-type]
        cache.reset()
        gone = [await cache.get(f"asset1/v1/360p/seg_{n}.m4s") for n in range(3)]
        await cache.get("asset1/poster.jpg")
        await cache.get("asset10/poster.jpg")  # another asset whose id starts alike
        waiting = asyncio.ensure_future(cache.get("asset1/v1/360p/slow.m4s"))
        await asyncio.sleep(0)
        assert cache.drop_prefix("asset1/") == 4
        release.set()
        outcome = (await asyncio.gather(waiting, return_exceptions=True))[0]
        assert isinstance(outcome, BaseException | None)
        return cache, [c.path for c in gone if c is not None], outcome

    cache, paths, outcome = asyncio.run(scenario())
    assert isinstance(outcome, Missing)
    assert paths and not any(path.exists() for path in paths)
    assert list(cache._files._entries) == ["asset10/poster.jpg"]
    assert cache.total_bytes == 10
    assert len(list((tmp_path / "objects").iterdir())) == 1
    assert not list((tmp_path / "tmp").iterdir())


def test_memory_tier_drops_a_prefix_and_keeps_no_load_that_overlapped_a_drop(
    tmp_path: Path,
) -> None:
    for name in ("a1", "a2", "b1"):
        (tmp_path / name).write_bytes(b"x" * 10)

    async def scenario() -> MemoryTier:
        tier = MemoryTier(1000)
        for name in ("a1", "b1"):
            await tier.load(f"{name[0]}/{name}", tmp_path / name, 10)
        loading = asyncio.ensure_future(tier.load("a/a2", tmp_path / "a2", 10))
        await asyncio.sleep(0)  # the read is on its thread now
        assert tier.drop_prefix("a/") == 1
        assert await loading is None  # read before the drop: not kept
        return tier

    tier = asyncio.run(scenario())
    assert tier.get("a/a1") is None and tier.get("a/a2") is None
    assert tier.get("b/b1") is not None


def test_memory_tier_keeps_the_most_recent_under_its_cap(tmp_path: Path) -> None:
    files = {}
    for name, size in (("a", 400), ("b", 400), ("c", 400), ("big", 700)):
        files[name] = tmp_path / name
        files[name].write_bytes(name[0].encode() * size)

    def load(tier: MemoryTier, name: str) -> HotObject | None:
        path = files.get(name, tmp_path / name)
        size = path.stat().st_size if path.exists() else 1
        return asyncio.run(tier.load(name, path, size))

    tier = MemoryTier(1000, max_object_bytes=600)
    mtime = files["a"].stat().st_mtime
    assert load(tier, "a") == HotObject(b"a" * 400, ObjectInfo(400, mtime))
    load(tier, "b")
    assert tier.get("a") is not None  # a is now the most recent
    load(tier, "c")  # over the cap: b goes
    assert load(tier, "big") is None  # over the per-object limit
    assert load(tier, "gone") is None  # evicted from disk meanwhile
    assert tier.get("b") is None and tier.get("c") is not None
    assert tier.get("c").body == b"c" * 400  # type: ignore[union-attr]
    gauges = tier.gauges()
    assert gauges["nebula_origin_memory_bytes"] == 800
    assert gauges["nebula_origin_memory_objects"] == 2


def test_memory_tier_of_zero_holds_nothing(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a")
    tier = MemoryTier(0)
    assert asyncio.run(tier.load("a", tmp_path / "a", 1)) is None
    assert tier.gauges()["nebula_origin_memory_bytes"] == 0


def test_sized_lru_replaces_a_key_and_evicts_oldest_first() -> None:
    lru: SizedLru[str] = SizedLru(10)
    assert lru.add("a", "A", 4) == [] and lru.add("b", "B", 4) == []
    assert lru.add("a", "A2", 5) == []  # replaced: 5 + 4 fits
    assert lru.add("c", "C", 3) == ["B"]  # b is now the oldest
    assert lru.total_bytes == 8 and lru.get("a") == "A2" and "b" not in lru


@pytest.mark.parametrize(
    ("name", "kind", "immutable"),
    [
        ("master.m3u8", "application/vnd.apple.mpegurl", False),
        ("v1/720p/seg_00001.ts", "video/mp2t", True),
        ("v1/720p/seg_00001.m4s", "video/mp4", True),
        ("v1/720p/init_0.mp4", "video/mp4", True),
        ("poster.jpg", "image/jpeg", False),
        ("thumbnails.vtt", "text/vtt", False),
    ],
)
def test_content_types_and_lifetimes(name: str, kind: str, immutable: bool) -> None:
    from origin import content

    assert content.content_type(name) == kind
    assert ("immutable" in content.cache_control(name, signed=False)) is immutable
    assert content.cache_control(name, signed=True).startswith("private")


@pytest.mark.parametrize(
    "name",
    ["master.m3u8", "v1/720p/index.m3u8", "v1/720p/seg_00001.m4s", "thumbnails.vtt", "v1/x.bin"],
)
@pytest.mark.parametrize("signed", [False, True])
def test_ladder_headers_are_what_each_name_would_get_on_its_own(name: str, signed: bool) -> None:
    """Built once per kind and found again by name: the same headers as made afresh."""
    from origin import content

    table = content.LadderHeaders({"Access-Control-Allow-Origin": "*"})
    for _ in range(2):  # built, then found
        kind = table.kind(name, signed)
        assert kind.text is content.is_text(name)
        assert dict(kind.headers) == {
            "Content-Type": content.content_type(name),
            "Cache-Control": content.cache_control(name, signed),
            **content.INERT,
            "Access-Control-Allow-Origin": "*",
        }
        assert kind.growing_headers["Cache-Control"] == content.growing_cache_control(signed)


@pytest.mark.parametrize(
    ("method", "path", "headers", "parts"),
    [
        ("GET", "/hls/abcd1234/v1/360p/seg_00001.m4s", {}, ("abcd1234", "v1/360p/seg_00001.m4s")),
        ("HEAD", "/hls/abcd1234/master.m3u8", {}, ("abcd1234", "master.m3u8")),
        ("GET", "/hls/abcd1234/master.m3u8?exp=1&sig=x", {}, ("abcd1234", "master.m3u8")),
        ("OPTIONS", "/hls/abcd1234/master.m3u8", {}, None),  # the preflight route
        ("POST", "/hls/abcd1234/master.m3u8", {}, None),
        ("GET", "/hls/abcd1234/master.m3u8", {"Expect": "100-continue"}, None),
        ("GET", "/hls/abcd1234", {}, None),
        ("GET", "/hls/abcd1234/", {}, None),
        ("GET", "/hls//master.m3u8", {}, None),
        ("GET", "/hlsx/abcd1234/master.m3u8", {}, None),
        ("GET", "/files/abcd1234", {}, None),
    ],
)
def test_the_front_takes_only_what_the_hls_route_would_match_alike(
    method: str, path: str, headers: dict[str, str], parts: tuple[str, str] | None
) -> None:
    """(A mocked request's URL is normalised, so paths with percent-escapes, which the
    front leaves to the router, are asked of a real server in test_serving.)"""
    from aiohttp.test_utils import make_mocked_request

    from origin.front import ladder_parts

    assert ladder_parts(make_mocked_request(method, path, headers=headers)) == parts


def test_the_api_lists_what_the_ladder_does_not_carry() -> None:
    dropped = {"kind": "subtitle", "index": 4, "codec": "hdmv_pgs_subtitle", "reason": "PGS"}
    asset = Asset(
        id="abcd2345efgh",
        bucket="media",
        key="film.mkv",
        status=AssetStatus.READY,
        created_at=datetime.now(UTC),
        probe={"duration": 9.0, "not_carried": [dropped]},
    )
    assert _view(asset, {}).as_json()["not_carried"] == [dropped]
    asset.probe = None  # not probed yet
    assert _view(asset, {}).as_json()["not_carried"] == []
