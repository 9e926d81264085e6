"""A real browser (Debian's chromium, driven by playwright-core) uploading to the proxy from
a page of another origin: refused without a CORS configuration, working once the bucket's
owner puts one through the proxy."""

from __future__ import annotations

import json
import subprocess
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.s3proxy.signing import s3_client
from tests.stacks import ProxyUnderTest

BROWSER_DIR = Path(__file__).parents[1] / "origin" / "browser"
PAGE = b"<!doctype html><title>uploader</title><p>uploads to another origin</p>"


class PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def page_origin() -> Iterator[str]:
    """A tiny web server on another port: the page's origin differs from the proxy's."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), PageHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def upload_from_page(page: str, put: str, get: str, body: str) -> dict[str, Any]:
    assert (BROWSER_DIR / "node_modules" / "playwright-core").is_dir(), (
        "playwright-core missing: run `npm ci` in tests/origin/browser"
    )
    done = subprocess.run(
        ["node", str(BROWSER_DIR / "cors_upload.mjs"), page + "/", put, get, body],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert "error" not in report, report
    return report


def test_browser_upload_needs_the_buckets_cors(proxy: ProxyUnderTest, page_origin: str) -> None:
    s3 = s3_client(proxy.endpoint, proxy.admin, signature_version="s3v4")
    bucket = f"browser-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    where = {"Bucket": bucket, "Key": "from-page.txt"}
    put = s3.generate_presigned_url("put_object", Params=where, ExpiresIn=600)
    get = s3.generate_presigned_url("get_object", Params=where, ExpiresIn=600)

    refused = upload_from_page(page_origin, put, get, "first try")
    assert refused["pageOrigin"] == page_origin
    assert "Failed to fetch" in refused.get("putError", ""), refused
    assert "Failed to fetch" in refused.get("getError", ""), refused
    with pytest.raises(ClientError):  # the preflight failed: the PUT was never sent
        s3.head_object(**where)

    s3.put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedOrigins": [page_origin],
                    "AllowedMethods": ["PUT", "GET"],
                    "AllowedHeaders": ["content-type"],
                    "ExposeHeaders": ["ETag"],
                }
            ]
        },
    )
    allowed = upload_from_page(page_origin, put, get, "hello from the page")
    assert allowed.get("put", {}).get("status") == 200, allowed
    etag = s3.head_object(**where)["ETag"]
    assert allowed["put"]["etag"] == etag  # readable by the page: an exposed header
    assert allowed.get("get") == {"status": 200, "text": "hello from the page"}, allowed
