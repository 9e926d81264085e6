"""The s3proxy as several processes on one port: /metrics sums them, keys revoke in each."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator

import pytest

from catalog.keys import revoke_key
from nebulacore.web import runtime_dir
from s3proxy.auth import CACHE_SECONDS
from tests.s3proxy.signing import send, signed_headers
from tests.services import counters_by_worker, descendants, metric_sample
from tests.stacks import ProxyUnderTest, Seaweed, start_proxy

WORKERS = 2


@pytest.fixture(scope="module")
def pooled(tmp_path_factory: pytest.TempPathFactory, seaweed: Seaweed) -> Iterator[ProxyUnderTest]:
    proxy = start_proxy(
        tmp_path_factory.mktemp("workers"), seaweed, {"NEBULA_S3PROXY_WORKERS": str(WORKERS)}
    )
    yield proxy
    proxy.stop()


def test_the_workers_share_the_port(pooled: ProxyUnderTest) -> None:
    assert len(descendants(pooled.process.pid)) >= WORKERS


def test_metrics_report_the_sum_of_every_worker(pooled: ProxyUnderTest) -> None:
    requests = 40
    for _ in range(requests):  # a new connection each: the kernel spreads them over workers
        assert send("GET", f"{pooled.url}/media/anonymous", {}).status == 403
    for _ in range(6):  # whichever worker answers the scrape
        assert (
            metric_sample(pooled.url, "nebula_s3proxy_requests_total", method="GET", status="403")
            == requests
        )
        assert (
            metric_sample(
                pooled.url, "nebula_s3proxy_errors_total", status="403", code="AccessDenied"
            )
            == requests
        )
    # Both workers served some of them, so the figure above is a sum, not one worker's.
    files = counters_by_worker(runtime_dir(pooled.settings, "s3proxy", pooled.port))
    served = [values.get(("requests", "GET", "403"), 0) for values in files.values()]
    assert len(served) == WORKERS and all(served) and sum(served) == requests


def test_a_revoked_key_stops_in_every_worker_within_the_cache_time(
    pooled: ProxyUnderTest,
) -> None:
    key = pooled.make_key({"media": "r"}, "revoked-in-workers")
    url = f"{pooled.url}/media?list-type=2&max-keys=1"
    for _ in range(16):  # every worker caches the key
        assert send("GET", url, signed_headers("GET", url, key)).status == 200
    with pooled.catalog.session() as session:
        revoke_key(session, key.access_key_id)
    time.sleep(CACHE_SECONDS + 0.5)  # the promise: refused everywhere once the cache time is up
    for _ in range(16):
        answer = send("GET", url, signed_headers("GET", url, key))
        assert answer.status == 403 and b"InvalidAccessKeyId" in answer.body


def test_other_methods_do_not_grow_the_metrics(pooled: ProxyUnderTest) -> None:
    """Methods beyond the standard ones (aiohttp's parser takes the WebDAV and other
    registered ones; it refuses made-up ones itself) share one OTHER sample."""
    others = ["PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH"]
    others += ["REPORT", "PURGE", "MKCALENDAR", "CHECKOUT", "MERGE", "NOTIFY", "ACL"]
    for method in others:
        assert send(method, f"{pooled.url}/media/anonymous", {}).status == 403, method
    with urllib.request.urlopen(f"{pooled.url}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    assert not [method for method in others if f'method="{method}"' in text]
    assert metric_sample(
        pooled.url, "nebula_s3proxy_requests_total", method="OTHER", status="403"
    ) == len(others)


def test_every_workers_uploads_reach_the_queue(pooled: ProxyUnderTest) -> None:
    """Each worker relays the uploads it recorded into the one queue (each opens the queue
    itself: a SQLite queue opened before the fork would be shared by the workers)."""
    from tests.s3proxy.test_events import jobs_of, queued_job_ids

    keys = [f"workers/{index:02d}.mp4" for index in range(12)]
    for key in keys:  # a new connection each: the uploads land in both workers
        url = f"{pooled.url}/media/{key}"
        body = b"\x00" * 1000
        headers = signed_headers("PUT", url, pooled.admin, {"Content-Type": "video/mp4"}, body=body)
        assert send("PUT", url, headers, body).status == 200
    wanted = {jobs_of(pooled, "media", key)[0].id for key in keys}
    deadline = time.monotonic() + 20
    while not wanted <= queued_job_ids(pooled):
        assert time.monotonic() < deadline, wanted - queued_job_ids(pooled)
        time.sleep(0.2)
