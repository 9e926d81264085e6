"""The list page, the watch page, /api/assets, the vendored hls.js, ops endpoints, the CLI URL."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from urllib.parse import parse_qs, urlsplit

from origin.pages import STATIC_FILES
from tests.origin.conftest import SIGNING_KEY, Published, add_transcoding_asset
from tests.origin.http import request
from tests.services import environ_without, metric_sample
from tests.stacks import OriginUnderTest


def test_list_page_shows_ready_assets_with_poster_duration_and_status(
    origin: OriginUnderTest, published: Published
) -> None:
    reply = request(origin.url, "/")
    assert reply.status == 200 and reply.need("Content-Type").startswith("text/html")
    page = reply.body.decode()
    assert f'href="/watch/{published.asset_id}"' in page
    assert f'src="/hls/{published.asset_id}/poster.jpg"' in page
    assert "source.mp4" in page and "0:08" in page and "ready" in page


def test_watch_page_loads_vendored_hls_js_and_the_master(
    origin: OriginUnderTest, published: Published
) -> None:
    page = request(origin.url, f"/watch/{published.asset_id}").body.decode()
    assert "/static/hls.min.js" in page and "/static/player.js" in page
    assert f'data-master="/hls/{published.asset_id}/master.m3u8"' in page
    assert 'id="quality"' in page and f"/hls/{published.asset_id}/thumbnails.vtt" in page
    script = request(origin.url, "/static/hls.min.js")
    assert script.status == 200 and len(script.body) > 100_000
    assert script.body == STATIC_FILES["hls.min.js"].read_bytes()


def test_static_names_outside_the_list_are_404_and_counted_so(origin: OriginUnderTest) -> None:
    """Only the pages' own files by their names: anything else (missing, another folder,
    escapes) is a 404, counted as one and never as the 200 it was not."""
    before = _counts(origin, "GET", 404, "NotFound")
    asked = ["/static/nope.js", "/static/..%2Fserver.py", "/static/%2e%2e/server.py"]
    for path in asked:
        reply = request(origin.url, path)
        assert reply.status == 404, path
        assert b"def create_app" not in reply.body
    after = _counts(origin, "GET", 404, "NotFound")
    assert (after[0] - before[0], after[1] - before[1]) == (len(asked), len(asked))


def test_api_assets_is_the_list_as_json(origin: OriginUnderTest, published: Published) -> None:
    reply = request(origin.url, "/api/assets")
    assert reply.need("Content-Type").startswith("application/json")
    assets = {a["id"]: a for a in json.loads(reply.body)["assets"]}
    mine = assets[published.asset_id]
    assert mine["status"] == "ready" and mine["duration"] == 8.0
    assert mine["master"] == f"/hls/{published.asset_id}/master.m3u8"
    assert {"360p", "180p"} <= {r["name"] for r in mine["renditions"]}
    one = json.loads(request(origin.url, f"/api/assets/{published.asset_id}").body)
    assert one["id"] == published.asset_id


def test_healthz_and_metrics(origin: OriginUnderTest) -> None:
    health = json.loads(request(origin.url, "/healthz").body)
    assert health["ok"] is True
    assert health["checks"] == {"backend": "ok", "catalog": "ok"}
    metrics = request(origin.url, "/metrics").body.decode()
    assert "nebula_origin_requests_total" in metrics and "nebula_origin_cache_bytes" in metrics
    # The shared gauges from the catalog and the queue, as on the s3proxy.
    assert 'nebula_jobs{state="done"}' in metrics and "nebula_queue_depth" in metrics


def test_an_http_error_raised_by_the_router_is_counted_under_its_status(
    origin: OriginUnderTest,
) -> None:
    """aiohttp's router raises an HTTP exception for a method a route lacks (405) and a
    path no route has (404): /metrics counts each under that status and its phrase
    (``nebulacore.ops.failed_status``, which also counts the s3proxy's cut answers under
    the status they sent), never as 500."""
    cases = (("POST", "/api/assets", 405, "MethodNotAllowed"), ("GET", NO_ROUTE, 404, "NotFound"))
    before = [_counts(origin, method, status, code) for method, _, status, code in cases]
    for method, path, status, _ in cases:
        assert request(origin.url, path, method=method).status == status, path
    after = [_counts(origin, method, status, code) for method, _, status, code in cases]
    assert [(a[0] - b[0], a[1] - b[1]) for a, b in zip(after, before, strict=True)] == [
        (1, 1),
        (1, 1),
    ]
    assert metric_sample(origin.url, REQUESTS, method="POST", status="500") == 0


NO_ROUTE = "/no-such-route"
REQUESTS = "nebula_origin_requests_total"


def _counts(origin: OriginUnderTest, method: str, status: int, code: str) -> tuple[float, float]:
    """Requests counted with ``method`` and ``status``, and errors with ``status`` and
    ``code``, so far."""
    requests = metric_sample(origin.url, REQUESTS, method=method, status=str(status))
    errors = metric_sample(origin.url, "nebula_origin_errors_total", status=str(status), code=code)
    return requests, errors


def _nebula(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = environ_without() | env
    return subprocess.run(
        [sys.executable, "-m", "nebula", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_prints_a_signed_url_the_origin_accepts(
    signed_origin: OriginUnderTest, published: Published
) -> None:
    env = published.env | {
        "NEBULA_ORIGIN_SIGNING_KEY": SIGNING_KEY,
        "NEBULA_ORIGIN_PUBLIC_URL": signed_origin.url,
    }
    done = _nebula(env, "assets", "url", published.asset_id, "--expires", "1h")
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    parts = urlsplit(url)
    assert url.startswith(f"{signed_origin.url}/hls/{published.asset_id}/master.m3u8?")
    expires = int(parse_qs(parts.query)["exp"][0])
    assert 3500 < expires - time.time() <= 3600
    assert request(signed_origin.url, f"{parts.path}?{parts.query}").status == 200
    watch = _nebula(env, "assets", "url", published.asset_id, "--watch", "--expires", "15m")
    parts = urlsplit(watch.stdout.strip())
    assert request(signed_origin.url, f"{parts.path}?{parts.query}").status == 200
    unknown = _nebula(env, "assets", "url", "zzzzzzzzzzzz")
    assert unknown.returncode == 2 and "no asset" in unknown.stderr
    bad = _nebula(env, "assets", "url", published.asset_id, "--expires", "soon")
    assert bad.returncode == 2


def test_list_shows_jobs_in_progress_with_their_percentage(
    origin: OriginUnderTest, published: Published
) -> None:
    asset_id = add_transcoding_asset(published.catalog_url, "busy/encoding.mov", 63.0)
    page = request(origin.url, "/").body.decode()
    card = page[page.index(f'data-id="{asset_id}"') :].split("</li>")[0]
    assert "encoding.mov" in card and "processing 63%" in card
    # Its watch page shows the progress and plays once it can; no poster yet.
    assert f'href="/watch/{asset_id}"' in card and "poster.jpg" not in card
    listed = {a["id"]: a for a in json.loads(request(origin.url, "/api/assets").body)["assets"]}
    mine = listed[asset_id]
    assert mine["progress"] == 63.0 and mine["job_status"] == "running"
    assert mine["status_text"] == "processing 63%" and mine["playable"] is False
    assert "master" not in mine and "poster" not in mine
