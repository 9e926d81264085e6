"""A video's life as viewers see it: playlists that grow while it is transcoded, a deletion
that reaches every worker and every cache tier, viewers that hang up mid-segment."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import struct
import time
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from typing import TypeVar

from catalog.assets import find_asset
from nebulacore.hls import LIVE_CACHE
from tests.origin.conftest import (
    Published,
    add_transcoding_asset,
    event_playlist,
    ladder_names,
    put_ladder_files,
)
from tests.origin.http import gauge, request
from tests.s3proxy.signing import s3_client
from tests.stacks import OriginUnderTest, Seaweed, start_origin, start_proxy

T = TypeVar("T")
RUNG = "v1/360p/index.m3u8"
# Generous: every wait below ends as soon as its condition holds; this only bounds a failure.
CEILING_SECONDS = 10.0


def wait_for(ask: Callable[[], T], done: Callable[[T], bool]) -> T:
    """Ask until ``done``; the last answer either way (the caller asserts on it)."""
    deadline = time.monotonic() + CEILING_SECONDS
    while True:
        reply = ask()
        if done(reply) or time.monotonic() > deadline:
            return reply
        time.sleep(0.1)


# ----- growing playlists -------------------------------------------------------------


def test_growing_playlist_is_short_lived_and_validated_by_its_bytes(
    origin: OriginUnderTest, published: Published
) -> None:
    asset_id = add_transcoding_asset(published.catalog_url, "live/growing.mp4", 20.0)
    path = f"/hls/{asset_id}/{RUNG}"
    vod = (published.files / RUNG).read_text()
    two, three = event_playlist(vod, 2), event_playlist(vod, 3)
    assert "#EXT-X-ENDLIST" not in two and two.count(".m4s") == 2
    put_ladder_files(published, asset_id, {RUNG: two})
    first = request(origin.url, path)
    assert first.status == 200 and first.body == two.encode()
    assert first.need("Cache-Control") == LIVE_CACHE == "public, max-age=1"
    # One-second dates cannot tell two versions of one second apart: none is given, and a
    # date precondition is ignored; the ETag is a hash of the bytes.
    assert first.header("Last-Modified") is None
    etag = first.need("ETag")
    assert request(origin.url, path, headers={"If-None-Match": etag}).status == 304
    future = formatdate(time.time() + 3600, usegmt=True)
    assert request(origin.url, path, headers={"If-Modified-Since": future}).status == 200
    put_ladder_files(published, asset_id, {RUNG: three})
    grown = wait_for(
        lambda: request(origin.url, path, headers={"If-None-Match": etag}),
        lambda r: r.status != 304,
    )
    assert grown.status == 200 and grown.body == three.encode()
    assert grown.need("ETag") != etag and grown.need("Cache-Control") == LIVE_CACHE
    # Ended (#EXT-X-ENDLIST): cached and dated like any VOD playlist.
    put_ladder_files(published, asset_id, {RUNG: vod})
    ended = wait_for(lambda: request(origin.url, path), lambda r: r.body == vod.encode())
    assert ended.body == vod.encode() and "max-age=10" in ended.need("Cache-Control")
    assert ended.header("Last-Modified")
    # Segments of a growing rung are immutable as ever.
    put_ladder_files(published, asset_id, ["v1/360p/seg_00000.m4s"])
    segment = request(origin.url, f"/hls/{asset_id}/v1/360p/seg_00000.m4s")
    assert segment.status == 200 and "immutable" in segment.need("Cache-Control")


def test_a_master_replaced_by_one_of_the_same_size_never_answers_304(
    origin: OriginUnderTest, published: Published
) -> None:
    """A provisional master replaced by the final one within the same second, with the
    same length: a size-and-date validator would call them equal."""
    asset_id = add_transcoding_asset(published.catalog_url, "live/master.mp4", 50.0)
    path = f"/hls/{asset_id}/master.m3u8"
    final = (published.files / "master.m3u8").read_text()
    # Another BANDWIDTH of the same number of digits (its lowest bit flipped).
    provisional = re.sub(
        r"BANDWIDTH=(\d+)", lambda m: f"BANDWIDTH={int(m.group(1)) ^ 1}", final, count=1
    )
    assert len(provisional) == len(final) and provisional != final
    put_ladder_files(published, asset_id, {"master.m3u8": provisional})
    first = request(origin.url, path)
    assert first.status == 200 and first.body == provisional.encode()
    assert first.need("Cache-Control") == LIVE_CACHE
    put_ladder_files(published, asset_id, {"master.m3u8": final})
    etag = first.need("ETag")
    reply = wait_for(
        lambda: request(origin.url, path, headers={"If-None-Match": etag}),
        lambda r: r.status != 304,
    )
    assert reply.status == 200 and reply.body == final.encode()


def test_a_signed_growing_playlist_is_private_and_short_lived(
    signed_origin: OriginUnderTest, published: Published
) -> None:
    from origin.signing import PlaybackSigner
    from tests.origin.conftest import SIGNING_KEY

    asset_id = add_transcoding_asset(published.catalog_url, "live/signed.mp4", 5.0)
    vod = (published.files / RUNG).read_text()
    put_ladder_files(published, asset_id, {RUNG: event_playlist(vod, 1)})
    query = PlaybackSigner(SIGNING_KEY).query(asset_id, int(time.time()) + 600)
    reply = request(signed_origin.url, f"/hls/{asset_id}/{RUNG}?{query}")
    assert reply.status == 200 and reply.need("Cache-Control") == "private, max-age=1"
    assert f"seg_00000.m4s?{query}" in reply.body.decode()
    assert reply.header("Last-Modified") is None


def test_a_transcoding_asset_is_playable_once_its_master_exists(
    origin: OriginUnderTest, published: Published
) -> None:
    import json

    asset_id = add_transcoding_asset(published.catalog_url, "live/playable.mp4", 30.0)
    before = json.loads(request(origin.url, f"/api/assets/{asset_id}").body)
    assert before["playable"] is False and "master" not in before
    assert 'data-playable="false"' in request(origin.url, f"/watch/{asset_id}").body.decode()
    put_ladder_files(published, asset_id, ["master.m3u8"])
    after = wait_for(
        lambda: request(origin.url, f"/api/assets/{asset_id}"),
        lambda r: json.loads(r.body)["playable"],
    )
    body = json.loads(after.body)
    assert body["playable"] is True and body["master"] == f"/hls/{asset_id}/master.m3u8"
    assert body["status"] == "processing" and after.need("Cache-Control") == "no-store"
    assert 'data-playable="true"' in request(origin.url, f"/watch/{asset_id}").body.decode()


# ----- deletion ----------------------------------------------------------------------

DISK_ONLY = "v1/360p/seg_90000.m4s"  # over the memory tier's object limit: disk only
STREAMED = "v1/360p/seg_90001.m4s"  # over a worker's disk cap: streamed from the backend


def _cache_files(cache_dir: Path, keys: list[str]) -> dict[str, list[Path]]:
    """The files of each worker's cache (objects and fills under way) named for ``keys``."""
    hashes = tuple(hashlib.sha256(key.encode()).hexdigest() for key in keys)
    return {
        worker.name: [p for p in worker.rglob("*") if p.is_file() and p.name.startswith(hashes)]
        for worker in sorted(cache_dir.glob("worker-*"))
    }


def test_a_deleted_video_stops_being_served_by_every_worker_from_every_tier(
    seaweed: Seaweed, published: Published, tmp_path: Path
) -> None:
    (tmp_path / "proxy").mkdir()
    proxy = start_proxy(tmp_path / "proxy", seaweed)
    origin: OriginUnderTest | None = None
    try:
        client = s3_client(proxy.endpoint, proxy.admin)
        client.put_object(Bucket="media", Key="gone/clip.mp4", Body=published.source.read_bytes())
        with proxy.catalog.session() as session:
            asset = find_asset(session, "media", "gone/clip.mp4")
            assert asset is not None
            asset_id = asset.id
        # Its ladder, as the transcoder publishes it. No worker runs here, so the remove
        # job never does: every file stays in storage and only the origin can refuse it.
        put_ladder_files(published, asset_id, ladder_names(published))
        put_ladder_files(
            published,
            asset_id,
            {DISK_ONLY: os.urandom(1536 * 1024), STREAMED: os.urandom(5 * 1024 * 1024)},
        )
        origin = start_origin(
            tmp_path / "origin",
            {**proxy.env, "NEBULA_DATABASE_URL": proxy.settings.catalog_url},
            NEBULA_ORIGIN_WORKERS="2",
            NEBULA_ORIGIN_CACHE_MAX_MB="8",  # 4 MiB a worker
            NEBULA_ORIGIN_MEMORY_CACHE_MB="1",  # objects up to 1 MiB in memory
        )
        names = [
            "master.m3u8",
            RUNG,
            "v1/360p/init_1.mp4",
            "v1/360p/seg_00001.m4s",
            "poster.jpg",
            DISK_ONLY,
            STREAMED,
        ]
        for name in names:  # a new connection each time: the kernel spreads them
            for _ in range(8):
                reply = request(origin.url, f"/hls/{asset_id}/{name}")
                assert reply.status == 200 and len(reply.body) > 0, (name, reply.status)
        cached_keys = [
            f"{asset_id}/{name}" for name in names if name.endswith((".mp4", ".m4s", ".jpg"))
        ]
        warm = _cache_files(origin.cache_dir, cached_keys)
        assert len(warm) == 2 and all(warm.values()), warm  # both workers hold some
        held = {p.name[:64] for files in warm.values() for p in files}
        expected = {hashlib.sha256(f"{asset_id}/{n}".encode()).hexdigest() for n in names[2:6]}
        assert held == expected, "segment, init, poster and the disk-only object on disk"
        assert gauge(origin.url, "nebula_origin_memory_objects") > 0

        client.delete_object(Bucket="media", Key="gone/clip.mp4")  # the user's path

        def every_name() -> list[int]:
            return [request(origin.url, f"/hls/{asset_id}/{n}").status for n in names * 4]

        deadline = time.monotonic() + CEILING_SECONDS
        while set(statuses := every_name()) != {404} and time.monotonic() < deadline:
            time.sleep(0.2)
        assert set(statuses) == {404}, statuses
        for _ in range(3):
            assert set(every_name()) == {404}
        assert _cache_files(origin.cache_dir, cached_keys) == {"worker-0": [], "worker-1": []}
        # Only that asset: another one's files are served as before.
        other = request(origin.url, f"/hls/{published.asset_id}/v1/360p/seg_00001.m4s")
        assert other.status == 200
    finally:
        if origin is not None:
            origin.stop()
        proxy.stop()


def test_a_new_ladder_replaces_the_poster_and_a_video_uploaded_again_plays_again(
    origin: OriginUnderTest, published: Published
) -> None:
    """A change that is not a deletion drops only the replaceable names (master, poster,
    thumbnails): a ``v<job>/`` name never changes, and an old version stays playable."""
    from catalog import Catalog
    from catalog.assets import record_delete, record_upload

    catalog = Catalog(published.catalog_url)
    uploads = iter(range(1, 100))

    def upload() -> str:
        """The same key uploaded (again): another size, so the row changes."""
        with catalog.session() as session:
            size = next(uploads)
            asset, _job = record_upload(session, "media", "live/again.mp4", None, size, None)
            return asset.id

    def two_polls() -> None:
        """Until the origin (one worker) has polled twice: it has seen what changed."""
        target = gauge(origin.url, "nebula_origin_revocation_polls_total") + 2
        deadline = time.monotonic() + CEILING_SECONDS
        while gauge(origin.url, "nebula_origin_revocation_polls_total") < target:
            assert time.monotonic() < deadline, "the origin stopped polling the catalog"
            time.sleep(0.1)

    try:
        asset_id = upload()
        put_ladder_files(published, asset_id, ladder_names(published))
        two_polls()  # the new asset's first sighting is behind us
        segment, poster = (f"/hls/{asset_id}/{n}" for n in ("v1/360p/seg_00001.m4s", "poster.jpg"))
        old_poster = (published.files / "poster.jpg").read_bytes()
        assert request(origin.url, segment).status == 200
        assert request(origin.url, poster).body == old_poster
        # Its next ladder brings another poster; until the asset changes, the cached one.
        new_poster = b"\xff\xd8\xff\xe0 another poster"
        put_ladder_files(published, asset_id, {"poster.jpg": new_poster})
        two_polls()
        assert request(origin.url, poster).body == old_poster
        assert upload() == asset_id  # uploaded over
        replaced = wait_for(lambda: request(origin.url, poster), lambda r: r.body == new_poster)
        assert replaced.body == new_poster
        assert request(origin.url, segment).status == 200  # the old version plays on
        # Deleted, then uploaded again: refused, then served again.
        with catalog.session() as session:
            record_delete(session, "media", "live/again.mp4")
        refused = wait_for(lambda: request(origin.url, segment), lambda r: r.status == 404)
        assert refused.status == 404
        assert upload() == asset_id
        served = wait_for(lambda: request(origin.url, segment), lambda r: r.status == 200)
        assert served.status == 200
    finally:
        catalog.dispose()


# ----- viewers hanging up --------------------------------------------------------------


def _hang_up_after_a_few_bytes(base_url: str, path: str) -> bytes:
    """GET ``path``, read the first bytes, then reset the connection (SO_LINGER 0)."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        head = sock.recv(64)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return head


def test_viewers_hanging_up_mid_segment_log_no_error(
    launch: Callable[..., OriginUnderTest], published: Published
) -> None:
    from catalog import Catalog
    from catalog.models import Asset, AssetStatus

    asset_id = "hangup" + os.urandom(4).hex()
    big = {
        "v1/360p/seg_00000.m4s": os.urandom(6 * 1024 * 1024),  # from memory
        "v1/360p/seg_00001.m4s": os.urandom(24 * 1024 * 1024),  # from disk (sendfile)
        "v1/360p/seg_00002.m4s": os.urandom(40 * 1024 * 1024),  # streamed: over the cap
    }
    put_ladder_files(published, asset_id, big)
    catalog = Catalog(published.catalog_url)
    with catalog.session() as session:  # an original to stream through /files/ too
        original = Asset(id=asset_id, bucket="hls", key=f"{asset_id}/v1/360p/seg_00002.m4s")
        original.status = AssetStatus.READY
        session.add(original)
    catalog.dispose()
    origin = launch(NEBULA_ORIGIN_CACHE_MAX_MB="32", NEBULA_LOG_LEVEL="DEBUG")
    paths = [f"/hls/{asset_id}/{name}" for name in big] + [f"/files/{asset_id}"]
    for path in paths:
        assert _hang_up_after_a_few_bytes(origin.url, path).startswith(b"HTTP/1.1 200"), path
    # The two streamed answers say so at debug once they met the closed connection.
    deadline = time.monotonic() + 30
    while origin.log().count("viewer hung up") < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    log = origin.log()
    assert log.count("viewer hung up") >= 2, log[-3000:]
    assert '"level": "error"' not in log and "Traceback" not in log, log[-3000:]
    # And the origin serves on.
    assert request(origin.url, f"/hls/{published.asset_id}/master.m3u8").status == 200
