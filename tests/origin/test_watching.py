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

from catalog import Asset, AssetStatus, Catalog, Job, JobKind, JobStatus
from catalog.assets import record_upload
from catalog.jobs import cancel
from origin.assets import AssetView, RenditionView
from origin.pages import summary
from origin.signing import PlaybackSigner
from tests.origin.conftest import SIGNING_KEY, Published, add_transcoding_asset
from tests.origin.http import request
from tests.origin.test_players import BROWSER_DIR, _browser_ready, lines_of, stop_browser
from tests.stacks import OriginUnderTest

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
