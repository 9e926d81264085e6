"""Who gets what: traversal attempts, unknown and pending assets, a down backend, signed URLs."""

from __future__ import annotations

import http.client
import socketserver
import threading
import time
from collections.abc import Callable
from urllib.parse import urlencode, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from origin.signing import PlaybackSigner
from tests.origin.conftest import SIGNING_KEY, Published, add_transcoding_asset, put_ladder_files
from tests.origin.http import request
from tests.services import metric_sample
from tests.stacks import OriginUnderTest

TRAVERSALS = [
    "/hls/{id}/../../etc/passwd",
    "/hls/{id}/%2e%2e/%2e%2e/etc/passwd",
    "/hls/{id}/..%2f..%2fetc%2fpasswd",
    "/hls/{id}/v1/..%2f..%2f{id}/master.m3u8",
    "/hls/..%2f{id}/master.m3u8",
    "/hls/%2e%2e/{id}/master.m3u8",
    "/hls/{id}/%2e%2e%2f%2e%2e%2fmaster.m3u8",
    "/hls/{id}/v1%5c..%5cmaster.m3u8",
    "/hls/{id}/master.m3u8%00.jpg",
    "/hls/{id}//etc/passwd",
    "/hls/{id}/.hidden",
    "/files/..%2f{id}",
    "/files/%2e%2e",
    "/watch/..%2f{id}",
]


def test_traversal_attempts_get_400_or_404_and_never_content(
    origin: OriginUnderTest, published: Published
) -> None:
    master = (published.files / "master.m3u8").read_bytes()
    for template in TRAVERSALS:
        path = template.format(id=published.asset_id)
        reply = request(origin.url, path)
        assert reply.status in (400, 404), (path, reply.status)
        assert b"#EXTM3U" not in reply.body and reply.body != master, path
        assert b"root:" not in reply.body, path


def test_unknown_asset_is_404(origin: OriginUnderTest) -> None:
    for path in ("/hls/zzzzzzzzzzzz/master.m3u8", "/files/zzzzzzzzzzzz", "/watch/zzzzzzzzzzzz"):
        assert request(origin.url, path).status == 404, path


def test_missing_file_of_a_ready_asset_is_404(
    origin: OriginUnderTest, published: Published
) -> None:
    reply = request(origin.url, f"/hls/{published.asset_id}/v1/360p/seg_99999.m4s")
    assert reply.status == 404


def test_asset_still_transcoding_is_404_with_retry_after_and_progress(
    origin: OriginUnderTest, published: Published
) -> None:
    asset_id = add_transcoding_asset(published.catalog_url, "pending.mp4", 42.0)
    reply = request(origin.url, f"/hls/{asset_id}/master.m3u8")
    assert reply.status == 404
    assert int(reply.need("Retry-After")) > 0
    import json

    body = json.loads(reply.body)
    assert body["status"] == "processing" and body["progress"] == 42.0


def test_backend_down_is_503(launch: Callable[..., OriginUnderTest], published: Published) -> None:
    from nebula.storage import free_internal_port

    down = launch(NEBULA_BACKEND_URL=f"http://127.0.0.1:{free_internal_port()}")
    for name in ("master.m3u8", "v1/360p/seg_00000.m4s"):
        reply = request(down.url, f"/hls/{published.asset_id}/{name}")
        assert reply.status == 503, name
        assert reply.header("Retry-After")
    assert request(down.url, f"/files/{published.asset_id}").status == 503
    health = request(down.url, "/healthz")
    assert health.status == 503 and b"backend" in health.body


def _signed(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_signed_master_is_accepted_and_tokens_cover_every_uri(
    signed_origin: OriginUnderTest, published: Published
) -> None:
    signer = PlaybackSigner(SIGNING_KEY)
    master_url = _signed(signer.master_url(signed_origin.url, published.asset_id, 3600))
    query = master_url.split("?", 1)[1]
    master = request(signed_origin.url, master_url)
    assert master.status == 200
    assert "private" in master.need("Cache-Control")
    uris = [line for line in master.body.decode().splitlines() if line and not line.startswith("#")]
    assert uris and all(u.endswith("?" + query) for u in uris)
    variant = request(signed_origin.url, f"/hls/{published.asset_id}/{uris[0]}")
    assert variant.status == 200
    text = variant.body.decode()
    assert f'init_1.mp4?{query}"' in text
    segments = [line for line in text.splitlines() if line.endswith(".m4s?" + query)]
    assert len(segments) == 4
    segment = request(signed_origin.url, f"/hls/{published.asset_id}/v1/360p/{segments[0]}")
    assert segment.status == 200
    assert segment.body == (published.files / "v1/360p/seg_00000.m4s").read_bytes()
    vtt = request(signed_origin.url, f"/hls/{published.asset_id}/thumbnails.vtt?{query}")
    assert f"v1/sprite.jpg?{query}#xywh=0,0,160,90" in vtt.body.decode()


def test_signed_subtitle_segments_keep_their_cue_text(
    signed_origin: OriginUnderTest, published: Published
) -> None:
    """Only the thumbnails track's cue payloads are URIs; a subtitle cue is what is said."""
    asset = "subtitled1234"
    cues = "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:900,LOCAL:00:00:00.000\n\n"
    cues += "00:00:01.500 --> 00:00:02.500\nHello there\n"
    put_ladder_files(published, asset, {"v1/subs_0/seg_00000.vtt": cues})
    query = PlaybackSigner(SIGNING_KEY).query(asset, int(time.time()) + 600)
    reply = request(signed_origin.url, f"/hls/{asset}/v1/subs_0/seg_00000.vtt?{query}")
    assert reply.status == 200 and reply.body.decode() == cues


def test_unsigned_wrong_and_expired_tokens_are_refused(
    signed_origin: OriginUnderTest, published: Published
) -> None:
    signer = PlaybackSigner(SIGNING_KEY)
    asset = published.asset_id
    good = signer.query(asset, int(time.time()) + 600)
    expired = signer.query(asset, int(time.time()) - 1)
    wrong_key = PlaybackSigner("another key").query(asset, int(time.time()) + 600)
    other_asset = signer.query("otherasset12", int(time.time()) + 600)
    tampered = good.replace("exp=", "exp=1")
    for path in (
        f"/hls/{asset}/master.m3u8",
        f"/hls/{asset}/v1/360p/seg_00000.m4s",
        f"/hls/{asset}/v1/360p/seg_00000.m4s?{expired}",
        f"/hls/{asset}/master.m3u8?{expired}",
        f"/hls/{asset}/master.m3u8?{wrong_key}",
        f"/hls/{asset}/master.m3u8?{other_asset}",
        f"/hls/{asset}/master.m3u8?{tampered}",
        f"/hls/{asset}/master.m3u8?exp=abc&sig=x",
        f"/files/{asset}",
        f"/watch/{asset}",
    ):
        reply = request(signed_origin.url, path)
        assert reply.status == 403, path
        assert b"#EXTM3U" not in reply.body
    assert request(signed_origin.url, f"/hls/{asset}/v1/360p/seg_00000.m4s?{good}").status == 200
    assert request(signed_origin.url, f"/files/{asset}?{good}").status == 200
    assert request(signed_origin.url, f"/watch/{asset}?{good}").status == 200


TOKEN_PATHS = (
    "/hls/{id}/master.m3u8",
    "/hls/{id}/v1/360p/seg_00000.m4s",
    "/files/{id}",
    "/watch/{id}",
)


def _bad_tokens(asset: str) -> list[tuple[str | None, str | None]]:
    """(exp, sig) pairs of every wrong shape; None leaves the parameter out."""
    signer = PlaybackSigner(SIGNING_KEY)
    future = int(time.time()) + 600
    sig = signer.signature(asset, future)
    return [
        ("\u00b2", sig),  # a Unicode digit: str.isdigit() says yes, int() says no
        ("\u0661\u0662", sig),  # Arabic-Indic digits
        (
            str(future).translate(
                str.maketrans(
                    "0123456789", "\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19"
                )
            ),
            sig,
        ),
        ("9" * 40, sig),
        ("-1", sig),
        ("+" + str(future), sig),
        (" " + str(future), sig),
        ("", sig),
        (str(future), None),
        (None, sig),
        (str(future), ""),
        (str(future), sig[:-1]),
        (str(future), sig + "A"),
        (str(future), sig.encode().hex()),
        (str(future), "\u00e9" * 43),
        (str(future), "%" * 43),
        (str(future), sig[:-1] + ("A" if sig[-1] != "A" else "B")),
    ]


def _token_path(template: str, asset: str, exp: str | None, sig: str | None) -> str:
    params = [(name, value) for name, value in (("exp", exp), ("sig", sig)) if value is not None]
    return template.format(id=asset) + ("?" + urlencode(params) if params else "")


def assert_no_traceback(origin: OriginUnderTest) -> None:
    log = origin.log()
    assert "Traceback" not in log and "Error handling request" not in log, log[-3000:]


def test_tokens_of_every_bad_shape_are_403_without_a_traceback(
    signed_origin: OriginUnderTest, published: Published
) -> None:
    asset = published.asset_id
    for exp, sig in _bad_tokens(asset):
        for template in TOKEN_PATHS:
            path = _token_path(template, asset, exp, sig)
            reply = request(signed_origin.url, path)
            assert reply.status == 403, (path, reply.status, reply.body[:200])
            assert b"#EXTM3U" not in reply.body and b"<video" not in reply.body, path
    assert_no_traceback(signed_origin)
    # The same paths with a good token are served: the refusals above were about the token.
    good = PlaybackSigner(SIGNING_KEY).query(asset, int(time.time()) + 600)
    for template in TOKEN_PATHS:
        assert request(signed_origin.url, f"{template.format(id=asset)}?{good}").status == 200


TOKEN_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)


@settings(max_examples=150, deadline=None)
@given(
    exp=st.one_of(st.none(), TOKEN_TEXT, st.integers().map(str)),
    sig=st.one_of(st.none(), TOKEN_TEXT),
)
def test_random_tokens_are_403_without_a_traceback(
    signed_origin: OriginUnderTest, published: Published, exp: str | None, sig: str | None
) -> None:
    template = TOKEN_PATHS[len(exp or "") % len(TOKEN_PATHS)]
    path = _token_path(template, published.asset_id, exp, sig)
    reply = request(signed_origin.url, path)
    assert reply.status == 403, (path, reply.status, reply.body[:200])
    assert_no_traceback(signed_origin)


def test_signed_original_is_private(signed_origin: OriginUnderTest, published: Published) -> None:
    """A signed answer is one viewer's: no shared cache may keep it for another."""
    good = PlaybackSigner(SIGNING_KEY).query(published.asset_id, int(time.time()) + 600)
    for path in (
        f"/files/{published.asset_id}?{good}",
        f"/hls/{published.asset_id}/master.m3u8?{good}",
    ):
        for headers in ({}, {"Range": "bytes=0-99"}):
            reply = request(signed_origin.url, path, headers=headers)
            assert reply.status in (200, 206), path
            cache_control = reply.need("Cache-Control")
            assert cache_control.startswith("private") and "public" not in cache_control, path


def test_signed_list_page_hands_out_no_links(
    signed_origin: OriginUnderTest, published: Published
) -> None:
    page = request(signed_origin.url, "/").body.decode()
    assert published.asset_id in page
    assert f"/watch/{published.asset_id}" not in page and "poster.jpg" not in page


def test_catalog_down_still_streams_published_ladders(
    launch: Callable[..., OriginUnderTest], published: Published
) -> None:
    from nebula.storage import free_internal_port

    blind = launch(NEBULA_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_internal_port()}/x")
    for name in ("master.m3u8", "v1/360p/seg_00000.m4s"):
        assert request(blind.url, f"/hls/{published.asset_id}/{name}").status == 200, name
    # What needs the catalog says so, and an unknown asset is still a plain 404.
    assert request(blind.url, "/").status == 503
    assert request(blind.url, "/api/assets").status == 503
    assert request(blind.url, f"/files/{published.asset_id}").status == 503
    assert request(blind.url, "/hls/zzzzzzzzzzzz/master.m3u8").status == 404
    health = request(blind.url, "/healthz")
    assert health.status == 503 and b"catalog" in health.body


REQUESTS = "nebula_origin_requests_total"


class _CutShortBackend(socketserver.ThreadingTCPServer):
    """A backend that promises a megabyte, sends a kilobyte and hangs up."""

    daemon_threads = True
    allow_reuse_address = True

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\nContent-Type: video/mp4\r\n"
                b"Last-Modified: Wed, 01 Jan 2025 00:00:00 GMT\r\n\r\n" + b"x" * 1024
            )

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), self.Handler)


def test_backend_failing_mid_body_is_never_cached_or_passed_off_as_whole(
    launch: Callable[..., OriginUnderTest], published: Published
) -> None:
    backend = _CutShortBackend()
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    try:
        flaky = launch(NEBULA_BACKEND_URL=f"http://127.0.0.1:{backend.server_address[1]}")
        # A cache fill that breaks off is a 503, and leaves nothing in the cache.
        reply = request(flaky.url, f"/hls/{published.asset_id}/v1/360p/seg_00000.m4s")
        assert reply.status == 503
        metrics = request(flaky.url, "/metrics").body.decode()
        assert "nebula_origin_cache_objects 0" in metrics
        assert not list((flaky.cache_dir / "objects").iterdir())
        # A streamed original has sent its headers already: the viewer sees a cut body,
        # counted under the 200 it was sent, never as a 500 it was not.
        counted = metric_sample(flaky.url, REQUESTS, method="GET", status="200")
        with pytest.raises(http.client.IncompleteRead):
            request(flaky.url, f"/files/{published.asset_id}")
        # + the /files answer and the /metrics read that gave ``counted``
        assert metric_sample(flaky.url, REQUESTS, method="GET", status="200") == counted + 2
        assert metric_sample(flaky.url, REQUESTS, method="GET", status="500") == 0
    finally:
        backend.shutdown()
        backend.server_close()
