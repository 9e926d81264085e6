"""Attacks on the origin (issue 19), each against the real stack: a stored script, a swept
version still cached, the asset list without a token, another site's host name."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from catalog import Catalog, Rendition
from catalog.assets import find_asset, record_ready
from catalog.models import Job, JobKind, JobStatus
from nebulacore.s3 import backend_client, list_keys
from origin.signing import LIST_SCOPE, PlaybackSigner
from tests.origin.conftest import SIGNING_KEY, Published, ladder_names, put_ladder_files
from tests.origin.http import Reply, request
from tests.origin.test_live import wait_for
from tests.origin.test_players import BROWSER_DIR, _browser_ready
from tests.s3proxy.signing import s3_client, send, signed_headers
from tests.stacks import (
    S3_DOMAIN,
    OriginUnderTest,
    ProxyUnderTest,
    Seaweed,
    start_origin,
    start_proxy,
)
from transcoder.removal import sweep
from transcoder.work import run_job

WORKERS = 2
SANDBOX = "sandbox; default-src 'none'"
# What a stored page would do in a victim's browser: mark the page, read the asset list
# from the same origin and send it away.
SCRIPT = (
    'document.title = "ran";'
    'fetch("/api/assets").then(function (r) { return r.text(); })'
    '.then(function (t) { return fetch("/stolen?" + encodeURIComponent(t.slice(0, 200))); });'
)
HTML = f"<!doctype html><html><head><title>page</title><script>{SCRIPT}</script></head><body>hi</body></html>"
SVG = f'<svg xmlns="http://www.w3.org/2000/svg"><script>{SCRIPT}</script></svg>'


@dataclass
class Stack:
    proxy: ProxyUnderTest
    origin: OriginUnderTest  # WORKERS processes on one port
    catalog_url: str

    def upload(self, key: str, body: bytes, content_type: str | None = None) -> str:
        """PUT through the proxy as a user's key would; the asset's id."""
        extra = {"ContentType": content_type} if content_type else {}
        s3_client(self.proxy.endpoint, self.proxy.admin).put_object(
            Bucket="media", Key=key, Body=body, **extra
        )
        with self.proxy.catalog.session() as session:
            asset = find_asset(session, "media", key)
            assert asset is not None, key
            return asset.id


@pytest.fixture(scope="module")
def stack(
    seaweed: Seaweed, published: Published, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("trust")
    (root / "proxy").mkdir()
    proxy = start_proxy(root / "proxy", seaweed)
    catalog_url = proxy.settings.catalog_url
    origin = None
    try:
        origin = start_origin(
            root / "origin",
            {**proxy.env, "NEBULA_DATABASE_URL": catalog_url},
            NEBULA_ORIGIN_WORKERS=str(WORKERS),
        )
        yield Stack(proxy, origin, catalog_url)
    finally:
        if origin is not None:
            origin.stop()
        proxy.stop()


def open_in_chromium(*urls: str, resolve: str | None = None) -> list[dict[str, Any]]:
    missing = _browser_ready()
    assert missing is None, missing
    env = None if resolve is None else {**os.environ, "RESOLVE": resolve}
    done = subprocess.run(
        ["node", str(BROWSER_DIR / "stored_script.mjs"), *urls],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ok"], report
    pages: list[dict[str, Any]] = report["pages"]
    return pages


# ----- hole 1: a stored script ----------------------------------------------------------


def test_a_stored_script_never_runs_in_the_origins_origin(stack: Stack) -> None:
    """Uploaded under a video's name as a page, an SVG, or labelled video over HTML
    bytes: opened from /files/<id>, none of them runs a script, so none reads /api/assets."""
    ids = {
        "html": stack.upload("trap/page.mp4", HTML.encode(), "text/html"),
        "svg": stack.upload("trap/image.mov", SVG.encode(), "image/svg+xml"),
        "xhtml": stack.upload("trap/doc.webm", HTML.encode(), "application/xhtml+xml"),
        "video": stack.upload("trap/clip.mp4", HTML.encode(), "video/mp4"),
    }
    pages = open_in_chromium(*(f"{stack.origin.url}/files/{i}" for i in ids.values()))
    for (name, _), page in zip(ids.items(), pages, strict=True):
        sent = [url for url in page["requests"] if "/api/" in url or "/stolen" in url]
        assert not sent, (name, page)
        assert page["title"] != "ran", (name, page)
        if name == "video":  # playable media is shown, as media: nothing of it runs
            assert page["shown"], (name, page)
        else:  # everything else is saved, never shown
            assert not page["shown"] and page["download"], (name, page)


@pytest.mark.parametrize(
    ("key", "declared", "served", "disposition"),
    [
        ("types/clip.mp4", "video/mp4", "video/mp4", "inline"),
        ("types/clip.mov", "Video/QuickTime; charset=x", "video/quicktime", "inline"),
        ("types/sound.mp3", None, "audio/mpeg", "inline"),  # no type: the key's
        ("types/photo.mp4", "image/jpeg", "image/jpeg", "attachment"),
        ("types/page.mp4", "text/html", "application/octet-stream", "attachment"),
        ("types/page.mkv", "text/html; charset=utf-8", "application/octet-stream", "attachment"),
        ("types/image.mp4", "image/svg+xml", "application/octet-stream", "attachment"),
        ("types/doc.mp4", "application/xhtml+xml", "application/octet-stream", "attachment"),
        ("types/text.mp4", "text/plain", "application/octet-stream", "attachment"),
    ],
)
def test_originals_are_media_or_attachments_and_always_inert(
    stack: Stack, key: str, declared: str | None, served: str, disposition: str
) -> None:
    asset_id = stack.upload(key, b"<html><script>1</script></html>", declared)
    for headers in ({}, {"Range": "bytes=0-3"}):
        reply = request(stack.origin.url, f"/files/{asset_id}", headers=headers)
        assert reply.status in (200, 206)
        assert reply.need("Content-Type") == served
        assert reply.need("Content-Disposition").startswith(disposition + ";")
        assert reply.need("X-Content-Type-Options") == "nosniff"
        policy = reply.need("Content-Security-Policy")
        assert policy.startswith(SANDBOX + ";" if disposition == "inline" else SANDBOX)


def test_ladder_files_are_inert_and_pages_carry_a_strict_policy(
    stack: Stack, published: Published
) -> None:
    for name in ("master.m3u8", "v1/360p/seg_00001.m4s", "poster.jpg", "thumbnails.vtt"):
        reply = request(stack.origin.url, f"/hls/{published.asset_id}/{name}")
        assert reply.need("X-Content-Type-Options") == "nosniff", name
        assert reply.need("Content-Security-Policy") == SANDBOX, name
    asset_id = stack.upload("pages/clip.mp4", b"bytes", "video/mp4")
    for path in ("/", f"/watch/{asset_id}"):
        policy = request(stack.origin.url, path).need("Content-Security-Policy")
        assert "script-src 'self';" in policy and "unsafe-inline" not in policy, path
        assert "frame-ancestors 'none'" in policy, path


# ----- hole 5: caches outliving storage -----------------------------------------------

SEGMENT = "360p/seg_00001.m4s"
SERVED = ("360p/index.m3u8", "360p/init_1.mp4", SEGMENT)


def _renditions(asset_id: str, version: str) -> list[Rendition]:
    return [
        Rendition(
            asset_id=asset_id,
            name="360p",
            width=640,
            height=360,
            bandwidth=900_000,
            codecs="avc1.64001e,mp4a.40.2",
            playlist=f"{version}/360p/index.m3u8",
        )
    ]


def _publish(published: Published, catalog: Catalog, asset_id: str, version: str) -> None:
    """The published ladder's files as ``version`` of ``asset_id``, its master last, and
    the catalog told it is ready (the versions it replaces retired)."""
    names = [n for n in ladder_names(published) if n.startswith("v1/")]
    put_ladder_files(
        published,
        asset_id,
        {version + n[2:]: (published.files / n).read_bytes() for n in names},
    )
    master = (published.files / "master.m3u8").read_text().replace("v1/", version + "/")
    put_ladder_files(published, asset_id, {"master.m3u8": master})
    with catalog.session() as session:
        record_ready(session, asset_id, _renditions(asset_id, version), 8.0)


def _cached(cache_dir: Path, keys: list[str]) -> dict[str, int]:
    """How many of ``keys`` each worker holds on disk."""
    hashes = tuple(hashlib.sha256(key.encode()).hexdigest() for key in keys)
    return {
        worker.name: sum(1 for p in worker.rglob("*") if p.is_file() and p.name.startswith(hashes))
        for worker in sorted(cache_dir.glob("worker-*"))
    }


def test_a_swept_version_leaves_every_cache_of_every_worker(
    stack: Stack, published: Published
) -> None:
    asset_id = stack.upload("sweep/clip.mp4", published.source.read_bytes(), "video/mp4")
    catalog = Catalog(stack.catalog_url)
    try:
        _publish(published, catalog, asset_id, "v1")
        old = [f"/hls/{asset_id}/v1/{name}" for name in SERVED]
        cached_keys = [f"{asset_id}/v1/{name}" for name in SERVED[1:]]

        def warm() -> dict[str, int]:
            for path in old * 4:  # a new connection each: the kernel spreads them
                assert request(stack.origin.url, path).status == 200, path
            return _cached(stack.origin.cache_dir, cached_keys)

        held = wait_for(warm, lambda held: sorted(held.values()) == [2] * WORKERS)
        assert sorted(held.values()) == [2] * WORKERS, held  # every worker holds both
        _publish(published, catalog, asset_id, "v2")  # an upload over it: v1 retired
        assert request(stack.origin.url, old[2]).status == 200  # kept while retained

        settings = stack.proxy.settings.model_copy(update={"hls_retain_seconds": 0})
        assert f"{asset_id}/v1" in sweep(settings, catalog)  # the worker's own sweep
        client = backend_client(settings)
        assert list_keys(client, settings.hls_bucket, f"{asset_id}/v1/") == []

        def statuses() -> set[int]:
            return {request(stack.origin.url, path).status for path in old * 4}

        assert wait_for(statuses, lambda seen: seen == {404}) == {404}
        for _ in range(3):  # and stays so, whichever worker answers
            assert statuses() == {404}
        assert _cached(stack.origin.cache_dir, cached_keys) == {"worker-0": 0, "worker-1": 0}
        for name in ("master.m3u8", f"v2/{SEGMENT}"):  # the current version plays on
            assert request(stack.origin.url, f"/hls/{asset_id}/{name}").status == 200
    finally:
        catalog.dispose()


def test_a_failed_upload_over_a_ready_video_keeps_the_previous_version_playing(
    stack: Stack, published: Published
) -> None:
    """The page, the API and the origin agree: the previous ladder plays, and the new
    version's failure is said with its reason."""
    key = "again/clip.mp4"
    asset_id = stack.upload(key, published.source.read_bytes(), "video/mp4")
    catalog = Catalog(stack.catalog_url)
    try:
        _publish(published, catalog, asset_id, "v1")
        assert stack.upload(key, b"not a video at all" * 100, "video/mp4") == asset_id
        with catalog.session() as session:
            job = session.query(Job).filter(
                Job.asset_id == asset_id,
                Job.kind == JobKind.TRANSCODE,
                Job.status == JobStatus.QUEUED,
            )
            job_id = job.one().id
        assert run_job(stack.proxy.settings, catalog, job_id) == "failed"  # the real worker
    finally:
        catalog.dispose()

    api = json.loads(request(stack.origin.url, f"/api/assets/{asset_id}").body)
    assert api["status"] == "failed" and api["error"], api
    assert api["playable"] is True and api["playing_previous"] is True, api
    assert "playing the previous version" in api["status_text"], api
    assert api["master"] == f"/hls/{asset_id}/master.m3u8" and "original" not in api, api
    listed = json.loads(request(stack.origin.url, "/api/assets").body)["assets"]
    assert next(a for a in listed if a["id"] == asset_id)["playable"] is True
    page = request(stack.origin.url, f"/watch/{asset_id}").body.decode()
    assert 'data-playable="true"' in page and 'data-state="failed"' in page
    assert "playing the previous version" in page
    master = request(stack.origin.url, api["master"])
    assert master.status == 200 and b"v1/360p/vod.m3u8" in master.body
    for name in SERVED:
        assert request(stack.origin.url, f"/hls/{asset_id}/v1/{name}").status == 200, name


# ----- the asset list, and other sites' host names ---------------------------------------


@pytest.fixture(scope="module")
def signed(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OriginUnderTest]:
    origin = start_origin(
        tmp_path_factory.mktemp("signed"),
        {**stack.proxy.env, "NEBULA_DATABASE_URL": stack.catalog_url},
        NEBULA_ORIGIN_SIGNING_KEY=SIGNING_KEY,
    )
    yield origin
    origin.stop()


def test_the_api_needs_a_token_when_playback_is_signed(
    stack: Stack, signed: OriginUnderTest
) -> None:
    asset_id = stack.upload("api/clip.mp4", b"bytes", "video/mp4")
    other = stack.upload("api/other.mp4", b"bytes", "video/mp4")
    signer = PlaybackSigner(SIGNING_KEY)
    later = int(time.time()) + 600
    mine, theirs = signer.query(asset_id, later), signer.query(other, later)
    listing = signer.query(LIST_SCOPE, later)
    expired = signer.query(LIST_SCOPE, int(time.time()) - 1)

    def status(path: str) -> Reply:
        return request(signed.url, path)

    for query in ("", "?" + mine, "?" + expired, "?exp=1&sig=" + "A" * 43):
        refused = status("/api/assets" + query)
        assert refused.status == 403, query
        assert asset_id.encode() not in refused.body and b"api/clip" not in refused.body
    assert asset_id in status("/api/assets?" + listing).body.decode()
    made = urlsplit(signer.list_url(signed.url, 60))  # what an admin is handed
    assert status(f"{made.path}?{made.query}").status == 200
    for query in ("", "?" + theirs, "?" + listing):
        assert status(f"/api/assets/{asset_id}{query}").status == 403, query
    assert json.loads(status(f"/api/assets/{asset_id}?{mine}").body)["id"] == asset_id
    # The watch page polls the API with its own token.
    page = status(f"/watch/{asset_id}?{mine}").body.decode()
    api = page.split('data-api="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert status(api).status == 200, api


REBOUND = "rebound.example"


def test_another_sites_host_name_is_refused_by_the_origin(
    stack: Stack, published: Published
) -> None:
    """DNS rebinding: a page of rebound.example whose name now resolves to the origin."""
    port = stack.origin.port
    paths = ["/", "/api/assets", f"/hls/{published.asset_id}/master.m3u8"]
    asset_id = stack.upload("rebound/clip.mp4", b"bytes", "video/mp4")
    paths += [f"/hls/{published.asset_id}/v1/{SEGMENT}", f"/watch/{asset_id}"]
    paths += [f"/files/{asset_id}", f"/api/assets/{asset_id}"]
    for path in paths:
        refused = request(stack.origin.url, path, headers={"Host": f"{REBOUND}:{port}"})
        assert refused.status == 403, path
        assert b"NEBULA_ORIGIN_HOSTS" in refused.body, path
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
            assert request(stack.origin.url, path, headers={"Host": host}).status == 200
    # In a browser: the rebound page reads nothing of the list.
    (page,) = open_in_chromium(
        f"http://{REBOUND}:{port}/api/assets", resolve=f"MAP {REBOUND} 127.0.0.1"
    )
    assert page["shown"] and "NEBULA_ORIGIN_HOSTS" in page["text"], page
    assert asset_id not in page["text"] and '"assets"' not in page["text"], page


def test_configured_names_and_the_public_urls_host_are_answered(
    stack: Stack, published: Published, tmp_path: Path
) -> None:
    origin = start_origin(
        tmp_path,
        {**stack.proxy.env, "NEBULA_DATABASE_URL": stack.catalog_url},
        NEBULA_ORIGIN_HOSTS="nebula.example, tv.example.",
        NEBULA_ORIGIN_PUBLIC_URL="https://media.example",
    )
    try:
        path = f"/hls/{published.asset_id}/master.m3u8"
        for host in ("nebula.example", "TV.example:8080", "media.example", "media.example."):
            assert request(origin.url, path, headers={"Host": host}).status == 200, host
        for host in ("example", "x.nebula.example", "nebula.example.evil"):
            assert request(origin.url, path, headers={"Host": host}).status == 403, host
    finally:
        origin.stop()


def test_another_sites_host_name_is_refused_by_the_s3_endpoint(stack: Stack) -> None:
    """Refused before anything, so a request signed for that name stores nothing."""
    port = stack.proxy.endpoint.rsplit(":", 1)[1]
    url = f"http://{REBOUND}:{port}/media/s3-rebound/object.txt"
    headers = signed_headers("PUT", url, stack.proxy.admin, body=b"stored?")
    headers["Host"] = f"{REBOUND}:{port}"
    answer = send("PUT", stack.proxy.endpoint + "/media/s3-rebound/object.txt", headers, b"stored?")
    assert answer.status == 403 and b"<Code>AccessDenied</Code>" in answer.body
    assert b"NEBULA_S3PROXY_HOSTS" in answer.body
    client = backend_client(stack.proxy.settings)
    assert list_keys(client, "media", "s3-rebound/") == []
    # Its own names: the virtual-host domain (with a bucket under it) and addresses.
    virtual = f"http://media.{S3_DOMAIN}:{port}/s3-rebound/object.txt"
    headers = signed_headers("PUT", virtual, stack.proxy.admin, body=b"stored")
    answer = send(
        "PUT",
        stack.proxy.endpoint + "/s3-rebound/object.txt",
        {**headers, "Host": f"media.{S3_DOMAIN}:{port}"},
        b"stored",
    )
    assert answer.status == 200, answer.body
    assert list_keys(client, "media", "s3-rebound/") == ["s3-rebound/object.txt"]
