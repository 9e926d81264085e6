"""The HLS ladder contract (nebulacore.hls): names, version prefixes, one content-type table,
and the bucket storing the types the origin serves (a real publish to SeaweedFS)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from nebulacore import hls
from nebulacore.config import Settings
from nebulacore.s3 import backend_client, ensure_buckets, list_keys
from origin import content
from origin.ids import hls_path, ladder_key
from transcoder.master import Measured, master_playlist
from transcoder.publish import Ladder, publish


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("master.m3u8", "application/vnd.apple.mpegurl"),
        ("v7/360p/index.m3u8", "application/vnd.apple.mpegurl"),
        ("v7/360p/seg_00001.m4s", "video/mp4"),
        ("v7/360p/init_0.mp4", "video/mp4"),
        ("v7/360p/seg_00001.ts", "video/mp2t"),
        ("poster.jpg", "image/jpeg"),
        ("v7/sprite.jpg", "image/jpeg"),
        ("thumbnails.vtt", "text/vtt"),
        ("V7/360P/SEG_00001.M4S", "video/mp4"),  # by suffix, whatever its case
        ("v7/360p/notes.txt", "application/octet-stream"),
        ("README", "application/octet-stream"),
    ],
)
def test_one_content_type_per_name(name: str, kind: str) -> None:
    assert hls.content_type(name) == kind
    assert content.content_type(name) == kind  # what the origin answers is the same table


def test_everything_published_has_a_content_type_and_segments_are_immutable() -> None:
    assert hls.CONTENT_TYPES.keys() >= hls.PUBLISHED_SUFFIXES
    assert hls.TEXT_SUFFIXES <= hls.PUBLISHED_SUFFIXES
    assert {".m4s", ".ts", ".mp4"} <= hls.SEGMENT_SUFFIXES
    assert not hls.SEGMENT_SUFFIXES & hls.TEXT_SUFFIXES
    for name in (hls.MASTER, hls.POSTER, hls.THUMBNAILS, hls.SPRITE, hls.MEDIA_PLAYLIST):
        assert hls.is_published(name)
    assert not hls.is_published("ffmpeg.log") and not hls.is_published("progress")
    assert "immutable" in content.cache_control("v7/360p/seg_00001.m4s", signed=False)
    assert "immutable" not in content.cache_control(hls.MASTER, signed=False)


def test_names_and_prefixes() -> None:
    assert hls.version_name(42) == "v42"
    assert hls.rendition_playlist("v42", "720p") == "v42/720p/index.m3u8"
    assert hls.asset_key("abcd2345efgh", hls.MASTER) == "abcd2345efgh/master.m3u8"
    assert hls.versions_prefix("abcd2345efgh") == "abcd2345efgh/v"
    assert hls.asset_key("abcd2345efgh", hls.version_name(42)).startswith(
        hls.versions_prefix("abcd2345efgh")
    )
    # The origin reads exactly the keys the transcoder writes, at a path of its own.
    assert ladder_key("abcd2345efgh", hls.MASTER) == hls.asset_key("abcd2345efgh", hls.MASTER)
    assert hls_path("abcd2345efgh", hls.POSTER) == "/hls/abcd2345efgh/poster.jpg"


def test_master_uris_are_rendition_playlists_of_the_version() -> None:
    video = Measured("360p", 500_000, 400_000, "avc1.64001e", 640, 360, 30.0)
    audio = Measured("audio", 130_000, 128_000, "mp4a.40.2")
    text = master_playlist([video], [audio], hls.version_name(9))
    assert hls.rendition_playlist("v9", "360p") in text.splitlines()
    assert f'URI="{hls.rendition_playlist("v9", "audio")}"' in text


def fake_ladder(root: Path, asset_id: str, version: str) -> Ladder:
    """The files ffmpeg and the thumbnailer leave in a work directory (bytes need not decode)."""
    out = root / "out"
    rendition = out / "360p"
    rendition.mkdir(parents=True)
    for name, data in {
        "init_0.mp4": b"\0\0\0\x18ftypiso6",
        "seg_00001.m4s": b"\0\0\0\x18styp" + b"m" * 100,
        "seg_00002.m4s": b"\0\0\0\x18styp" + b"n" * 100,
        hls.MEDIA_PLAYLIST: b"#EXTM3U\n#EXTINF:4.0,\nseg_00001.m4s\n",
        "ffmpeg-progress.log": b"frame=1\n",  # scratch: never published
    }.items():
        (rendition / name).write_bytes(data)
    (out / hls.SPRITE).write_bytes(b"\xff\xd8\xff\xe0sprite")
    poster = root / hls.POSTER
    poster.write_bytes(b"\xff\xd8\xff\xe0poster")
    master = f"#EXTM3U\n{hls.rendition_playlist(version, '360p')}\n"
    vtt = f"WEBVTT\n\n00:00.000 --> 00:04.000\n{version}/{hls.SPRITE}#xywh=0,0,160,90\n"
    return Ladder(asset_id, version, out, master, poster, vtt)


def test_the_bucket_stores_the_types_the_origin_serves(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(hls_bucket=f"hls-{uuid.uuid4().hex[:10]}")
    client = backend_client(settings)
    ensure_buckets(client, [settings.hls_bucket])
    asset_id, version = "abcd2345efgh", hls.version_name(3)
    publish(client, settings.hls_bucket, fake_ladder(tmp_path, asset_id, version))

    keys = sorted(list_keys(client, settings.hls_bucket, f"{asset_id}/"))
    prefix = hls.asset_key(asset_id, version)
    assert keys == sorted(
        [
            hls.asset_key(asset_id, hls.MASTER),
            hls.asset_key(asset_id, hls.POSTER),
            hls.asset_key(asset_id, hls.THUMBNAILS),
            f"{prefix}/{hls.SPRITE}",
            f"{prefix}/360p/{hls.MEDIA_PLAYLIST}",
            f"{prefix}/360p/init_0.mp4",
            f"{prefix}/360p/seg_00001.m4s",
            f"{prefix}/360p/seg_00002.m4s",
        ]
    )
    for key in keys:
        stored = client.head_object(Bucket=settings.hls_bucket, Key=key)["ContentType"]
        name = key.split("/", 1)[1]
        assert stored == hls.content_type(key) == content.content_type(name), key
    segment = client.head_object(Bucket=settings.hls_bucket, Key=f"{prefix}/360p/seg_00001.m4s")
    assert segment["ContentType"] == "video/mp4"
    assert segment["CacheControl"] == hls.IMMUTABLE


def test_a_playlist_without_endlist_is_growing() -> None:
    vod = "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:2.0,\nseg_00000.m4s\n#EXT-X-ENDLIST\n"
    event = vod.replace("VOD", "EVENT").replace("#EXT-X-ENDLIST\n", "")
    assert not hls.is_growing(vod) and not hls.is_growing(vod.replace("\n", "\r\n"))
    assert hls.is_growing(event)
    assert hls.is_growing("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv1/360p/index.m3u8\n")
    assert hls.is_growing("#EXTM3U\n# not the tag: #EXT-X-ENDLIST\n")
    assert hls.LIVE_CACHE == "public, max-age=1" and "immutable" not in hls.LIVE_CACHE


def test_a_playlist_grows_until_it_has_an_endlist() -> None:
    growing = "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXTINF:4.000000,\nseg_00000.m4s\n"
    assert hls.is_growing(growing)
    assert not hls.is_growing(growing + "#EXT-X-ENDLIST\n")
    assert not hls.is_growing(growing + "#EXT-X-ENDLIST")  # no final newline
    assert hls.is_growing(growing + "# EXT-X-ENDLIST is a comment here\n")
    assert hls.LIVE_CACHE == "public, max-age=1"  # shared with the origin, exactly
