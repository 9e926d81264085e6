"""The watching pages in Chromium: what they say about each state, the player's controls,
the library's folders, search, sort and filters. Each browser script writes screenshots at
1280x800 and 390x844 to tests/artifacts/ and runs axe-core on every page it opens."""

from __future__ import annotations

import json
import queue
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from catalog import Asset, AssetStatus, Catalog, Job, JobKind, JobStatus
from catalog.assets import record_upload
from catalog.jobs import cancel
from nebulacore.config import load_settings
from nebulacore.s3 import backend_client
from origin.assets import AssetView, RenditionView
from origin.pages import summary
from origin.signing import PlaybackSigner
from tests.origin.conftest import (
    MEDIA_BUCKET,
    SIGNING_KEY,
    VERSION,
    Published,
    add_transcoding_asset,
    publish_first_segments,
)
from tests.origin.http import request
from tests.origin.test_players import BROWSER_DIR, _browser_ready, lines_of, stop_browser
from tests.stacks import OriginUnderTest
from transcoder.pipeline import transcode_asset
from transcoder.samples import make_source

ARTIFACTS = Path(__file__).parents[1] / "artifacts"
FAILURE = "ffprobe: moov atom not found"


def _upload(catalog_url: str, key: str) -> tuple[str, int]:
    """An upload as the s3proxy records it: the asset queued with its transcode job; both ids."""
    catalog = Catalog(catalog_url)
    try:
        with catalog.session() as session:
            asset, job = record_upload(session, "media", key, None, 1000, "video/mp4")
            return asset.id, job.id
    finally:
        catalog.dispose()


def _fail(catalog_url: str, asset_id: str, job_id: int) -> None:
    """What the transcoder records when the source cannot be read."""
    catalog = Catalog(catalog_url)
    try:
        with catalog.session() as session:
            asset = session.get(Asset, asset_id)
            job = session.get(Job, job_id)
            assert asset is not None and job is not None
            asset.status, asset.error = AssetStatus.FAILED, FAILURE
            job.status, job.error = JobStatus.FAILED, FAILURE
    finally:
        catalog.dispose()


def _running_job(catalog_url: str, asset_id: str) -> int:
    catalog = Catalog(catalog_url)
    try:
        with catalog.session() as session:
            job = session.query(Job).filter_by(asset_id=asset_id, kind=JobKind.TRANSCODE).one()
            return job.id
    finally:
        catalog.dispose()


@contextmanager
def _browser(script: str, *args: str) -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str]]]:
    missing = _browser_ready()
    assert missing is None, missing
    ARTIFACTS.mkdir(exist_ok=True)
    process = subprocess.Popen(
        ["node", str(BROWSER_DIR / script), str(ARTIFACTS), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield process, lines_of(process)
    finally:
        stop_browser(process)


def _step(lines: queue.Queue[str], name: str) -> dict[str, Any]:
    line = lines.get(timeout=240)
    report: dict[str, Any] = json.loads(line) if line.startswith("{") else {"line": line}
    assert report.get("step") == name, report
    return report


def _answer(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None
    process.stdin.write("go\n")
    process.stdin.flush()


def _no_policy_errors(report: dict[str, Any]) -> None:
    blocked = [line for line in report["console"] if "Content Security Policy" in line]
    assert not blocked, blocked
    assert not [line for line in report["console"] if line.startswith("pageerror")], report


def test_pages_say_failed_cancelled_and_queued_with_the_reason_and_place(
    signed_origin: OriginUnderTest, published: Published
) -> None:
    """With signing on: a failed upload's page gives the reason instead of a player, a
    queued one its place in line (never "Transcoding"), and a page open while its job is
    cancelled says so with the reason and stops polling."""
    url = published.catalog_url
    failed, failed_job = _upload(url, "broken/corrupt.mp4")
    _fail(url, failed, failed_job)
    cancelled, cancelled_job = _upload(url, "gone/cancelled.mp4")
    assert cancel(Catalog(url), cancelled_job)
    first, _ = _upload(url, "queue/first.mp4")
    second, _ = _upload(url, "queue/second.mp4")
    processing = add_transcoding_asset(url, "busy/cancel-me.mp4", 30.0)
    signer = PlaybackSigner(SIGNING_KEY)

    def watch(asset_id: str) -> str:
        return signer.watch_url(signed_origin.url, asset_id, 600)

    plan = {
        "list": signed_origin.url + "/",
        "failed": watch(failed),
        "cancelled": watch(cancelled),
        "queued": watch(second),
        "processing": watch(processing),
    }
    with _browser("status.mjs", json.dumps(plan)) as (process, lines):
        opened = _step(lines, "opened")
        assert not any(opened["axe"].values()), opened["axe"]
        pages = opened["pages"]
        assert FAILURE in pages["failed"]["notice"] and not pages["failed"]["playerShown"]
        assert pages["failed"]["status"] == f"failed: {FAILURE}"
        assert "cancelled by user" in pages["cancelled"]["notice"], pages["cancelled"]
        assert not pages["cancelled"]["playerShown"] and pages["cancelled"]["polling"] is False
        queued = pages["queued"]
        assert queued["status"].startswith("queued, ") and "in line" in queued["status"]
        assert "Queued" in queued["notice"] and "Transcoding" not in queued["body"], queued
        assert "failed" in opened["count"] and "cancelled" in opened["count"], opened["count"]
        assert opened["processing"]["polling"] is True
        assert cancel(Catalog(url), _running_job(url, processing))
        _answer(process)
        done = _step(lines, "done")
    assert done["ok"], done
    assert "cancelled by user" in done["notice"] and done["status"] == "cancelled by user"
    assert not done["playerShown"]
    _no_policy_errors(done)
    # The queue's order is the jobs' creation order.
    api = signer.list_url(signed_origin.url, 600).removeprefix(signed_origin.url)
    listed = {a["id"]: a for a in json.loads(request(signed_origin.url, api).body)["assets"]}
    assert listed[second]["queue_position"] == listed[first]["queue_position"] + 1
    assert listed[failed]["queue_position"] is None


def _view(status: AssetStatus, content_type: str = "video/mp4", **extra: Any) -> AssetView:
    fields: dict[str, Any] = {
        "id": "x",
        "bucket": "media",
        "key": "a/b.mp4",
        "status": status.value,
        "duration": 1.0,
        "size": 1,
        "content_type": content_type,
        "created_at": "",
        "error": None,
        "job_status": None,
        "progress": None,
    }
    return AssetView(**(fields | extra))


def test_library_counts_say_what_they_count() -> None:
    """Failed and cancelled uploads are not videos; songs are counted as songs; a failed
    upload over a ready video still plays, so it is a video."""
    ladder = [RenditionView("360p", 640, 360, 1)]
    assets = [_view(AssetStatus.READY) for _ in range(11)]
    assets += [_view(AssetStatus.QUEUED)]
    assets += [_view(AssetStatus.READY, "audio/mpeg"), _view(AssetStatus.READY, "audio/flac")]
    assets += [_view(AssetStatus.FAILED), _view(AssetStatus.CANCELLED)]
    assets += [_view(AssetStatus.FAILED, renditions=ladder)]
    assert summary(assets) == "13 videos, 2 songs, 1 failed, 1 cancelled"
    assert summary([_view(AssetStatus.READY)]) == "1 video"
    assert summary([]) == "0 videos"


@pytest.fixture(scope="module")
def portrait(published: Published, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 9:16 phone video put through the real transcoder (rungs 360x640 and 180x320); its id."""
    root = tmp_path_factory.mktemp("portrait")
    settings = load_settings(published.env)
    source = make_source(root / "portrait.mp4", seconds=2, size="360x640", rate=25)
    backend_client(settings).upload_file(str(source), MEDIA_BUCKET, "phone/portrait.mp4")
    catalog = Catalog(published.catalog_url)
    try:
        with catalog.session() as session:
            asset, _job = record_upload(
                session,
                MEDIA_BUCKET,
                "phone/portrait.mp4",
                None,
                source.stat().st_size,
                "video/mp4",
            )
            asset_id = asset.id
        transcode_asset(settings, catalog, asset_id, version=VERSION)
    finally:
        catalog.dispose()
    return asset_id


def _probed(catalog_url: str, asset_id: str, seconds: float) -> None:
    """What the transcoder records first: the source's probed duration."""
    catalog = Catalog(catalog_url)
    try:
        with catalog.session() as session:
            asset = session.get(Asset, asset_id)
            assert asset is not None
            asset.duration = seconds
    finally:
        catalog.dispose()


def test_watch_page_controls_sound_seeking_download_and_portrait(
    signed_origin: OriginUnderTest, published: Published, portrait: str
) -> None:
    """One seek bar over the whole title (marking the published part, refusing past it with
    a message), sound on where allowed and one unmute button where not, the original as a
    download, previews kept inside the player, and a portrait video that fits 1280x800."""
    transcoding = add_transcoding_asset(published.catalog_url, "live/half.mp4", 25.0)
    _probed(published.catalog_url, transcoding, 8.0)
    publish_first_segments(published, transcoding, segments=2)  # 4 s of 8
    signer = PlaybackSigner(SIGNING_KEY)
    plan = {
        name: signer.watch_url(signed_origin.url, asset_id, 600)
        for name, asset_id in (
            ("ready", published.asset_id),
            ("transcoding", transcoding),
            ("portrait", portrait),
        )
    }
    with _browser("player.mjs", json.dumps(plan)) as (_process, lines):
        first = json.loads(lines.get(timeout=240))
        second = json.loads(lines.get(timeout=240))
    assert first["ok"], first
    assert second["ok"], second
    assert not any(second["axe"].values()), second["axe"]
    _no_policy_errors(second)

    ready = first["ready"]
    assert ready["ranges"] == 1 and ready["nativeControls"] is False, ready
    assert ready["mutedAtStart"] and ready["unmuteShown"], ready
    assert not ready["mutedAfterClick"] and not ready["unmuteAfterClick"], ready
    assert ready["download"]["href"].startswith(f"/files/{published.asset_id}?exp=")
    assert ready["download"]["attribute"] is not None and ready["downloadStatus"] == 200
    player = ready["player"]
    for preview in ready["previews"]:
        assert preview["x"] >= player["x"], (preview, player)
        assert preview["x"] + preview["width"] <= player["x"] + player["width"], (preview, player)

    seen = second["transcoding"]
    assert seen["muted"] is False and seen["unmuteShown"] is False, seen
    assert seen["clock"].endswith("/ 0:08"), seen
    assert 0 < seen["published"] < seen["track"] * 0.75, seen
    assert "still being transcoded" in seen["note"], seen
    assert seen["after"]["currentTime"] <= seen["after"]["end"] < 7, seen
    assert seen["after"]["thumb"] <= seen["published"] / seen["track"], seen

    tall = second["portrait"]
    assert any(o.startswith("360p") for o in tall["options"]), tall
    assert any(o.startswith("180p") for o in tall["options"]), tall
    assert not any(o.startswith(("640p", "320p")) for o in tall["options"]), tall
    for width, height in ((1280, 800), (390, 844)):
        boxes = tall[str(width)]
        for name in ("video", "controls"):
            assert boxes[name]["y"] + boxes[name]["height"] <= height, (width, name, boxes)


def test_library_shows_folders_and_searches_sorts_and_filters(
    origin: OriginUnderTest, published: Published
) -> None:
    """Two aaaa.mp4 from different folders are told apart; search (title or folder), sort
    (name, duration) and the status filter work on the list, and keep working on uploads
    the page picks up while it is open."""
    url = published.catalog_url
    _upload(url, "trip/a/aaaa.mp4")
    _upload(url, "work/b/aaaa.mp4")
    broken, job = _upload(url, "broken/bbbb.mp4")
    _fail(url, broken, job)
    with _browser("library.mjs", origin.url + "/") as (process, lines):
        seen = _step(lines, "searched")
        assert not seen["axe"], seen["axe"]
        assert sorted(seen["twins"]) == ["media/trip/a/", "media/work/b/"], seen
        assert [c["title"] for c in seen["searched"]] == ["aaaa.mp4", "aaaa.mp4"], seen
        assert seen["counter"].startswith("showing 2 of "), seen
        assert [c["folder"] for c in seen["byFolder"]] == ["media/trip/a/"], seen
        assert seen["crumb"]["search"] == "media/work/", seen
        assert [c["folder"] for c in seen["crumb"]["shown"]] == ["media/work/b/"], seen
        assert seen["byName"] == sorted(seen["byName"], key=str.lower), seen
        assert seen["byDuration"] == sorted(seen["byDuration"], reverse=True), seen
        assert seen["failed"] and set(seen["failed"]) <= {"failed", "cancelled"}, seen
        assert "ready" in seen["ready"] and set(seen["ready"]) <= {"ready", "playable"}, seen
        _upload(url, "later/aaaa.mp4")
        _answer(process)
        done = _step(lines, "done")
    assert done["ok"], done
    assert sorted(c["folder"] for c in done["after"]) == [
        "media/later/",
        "media/trip/a/",
        "media/work/b/",
    ]
    _no_policy_errors(done)
