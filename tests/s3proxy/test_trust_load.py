"""One client cannot take the door down: slow uploads, slow readers of answers, slow request
heads, a full backend pool, a locked catalog, and the error accounting under that load
(issue 9).

Each test performs the attack against a real proxy in front of the session's SeaweedFS,
with small limits from ``NEBULA_*`` settings so a few sockets stand for hundreds. No test
measures time: each shows that a request is answered while the attack still holds (the slow
uploads still open, the catalog still locked). The clients' socket timeout (``HANG``) only
ends a wait that would otherwise never end.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import select
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg2
import pytest
from botocore.exceptions import ClientError
from multidict import CIMultiDict
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select as sql_select

from catalog.assets import find_asset
from catalog.keys import KeyPair
from catalog.models import Job, JobKind
from nebulacore.s3 import backend_client
from tests.harness import wait_until
from tests.s3proxy.conftest import access_line
from tests.s3proxy.signing import Answer, presign, send, signed_headers
from tests.services import create_pg_database, drop_pg_database
from tests.stacks import ProxyUnderTest, Seaweed, start_proxy
from transcoder.reconcile import run_once
from transcoder.tasks import tasks_for

UNSIGNED = "UNSIGNED-PAYLOAD"
LIMITS = {
    "NEBULA_UPLOADS_PER_KEY": "4",
    "NEBULA_BODY_TIMEOUT_SECONDS": "2",
    "NEBULA_DOWNLOADS_PER_KEY": "2",
    "NEBULA_ANSWER_TIMEOUT_SECONDS": "2",
    "NEBULA_HEADER_TIMEOUT_SECONDS": "2",
    "NEBULA_BACKEND_CONNECTIONS": "8",
    "NEBULA_BACKEND_WAIT_SECONDS": "1",
}
# How long a socket read waits before the test calls it a hang: far above the 1-2 s limits,
# below the catalog's 30 s lock wait (which, to a client, is a hang).
HANG = 20.0
# The gap between the bytes of a slow but steady upload: under the 2 s body timeout.
DRIP_GAP = 0.4
# A slow reader's receive buffer: this small, the proxy's writes wait for the client after
# a few MiB at most (its send buffer grows to 4 MiB), well before the end of BIG.
RCVBUF = 16 << 10
BIG = 8 << 20
# The gap between a steady slow reader's reads: under the 2 s answer timeout.
READ_GAP = 0.25


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, seaweed: Seaweed) -> Iterator[ProxyUnderTest]:
    server = start_proxy(tmp_path_factory.mktemp("guarded"), seaweed, LIMITS)
    yield server
    server.process.terminate()
    server.process.wait(timeout=10)
    server.catalog.dispose()


def stop(server: ProxyUnderTest) -> None:
    server.process.terminate()
    server.process.wait(timeout=10)
    server.catalog.dispose()


# ----- raw clients that misbehave on purpose ------------------------------------------


class SlowUpload:
    """A PUT whose client sends its head at once and its body a byte at a time."""

    def __init__(self, url: str, headers: dict[str, str], length: int = 1_000_000) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=HANG)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [f"PUT {path} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Length: {length}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.sent = 0

    def answered(self) -> bool:
        return bool(select.select([self.sock], [], [], 0)[0])

    def drip(self, data: bytes = b"x") -> None:
        try:
            self.sock.sendall(data)
            self.sent += len(data)
        except OSError:
            pass  # the proxy answered and closed; answer() reads why

    def answer(self) -> Answer:
        response = http.client.HTTPResponse(self.sock)
        response.begin()
        answer = Answer(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
        self.sock.close()
        return answer


class Dripper:
    """Keeps slow uploads alive (a byte each half second, under the idle timeout) from
    a background thread until stopped."""

    def __init__(self, uploads: list[SlowUpload]) -> None:
        self.uploads = uploads
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for upload in self.uploads:
                upload.drip()

    def __enter__(self) -> Dripper:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


class SlowDownload:
    """A GET whose client reads the answer's head at once, then only what it is told to."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(url)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.sock.settimeout(HANG)
        self.sock.connect((parts.hostname, parts.port))
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [f"GET {path} HTTP/1.1", f"Host: {parts.netloc}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.response = http.client.HTTPResponse(self.sock)
        self.response.begin()
        self.status = self.response.status
        self.request_id = self.response.getheader("x-amz-request-id", "")

    def read(self, size: int) -> bytes:
        return self.response.read(size)

    def rest(self) -> bytes:
        """What the client still receives, until the answer ends or the proxy cuts it."""
        data = bytearray()
        try:
            while piece := self.response.read1(1 << 20):
                data += piece
        except ConnectionResetError:
            pass
        return bytes(data)

    def answer(self) -> Answer:
        headers = {k.lower(): v for k, v in self.response.getheaders()}
        answer = Answer(self.status, headers, self.rest())
        self.close()
        return answer

    def cut(self, wait: float = HANG) -> bool:
        """Whether the proxy closes the connection within ``wait``, reading nothing."""
        poll = select.poll()
        poll.register(self.sock, select.POLLRDHUP)
        return bool(poll.poll(wait * 1000))

    def close(self) -> None:
        self.response.close()
        self.sock.close()


def open_slow_uploads(urls_and_headers: list[tuple[str, dict[str, str]]]) -> list[SlowUpload]:
    uploads = []
    for url, headers in urls_and_headers:
        upload = SlowUpload(url, headers)
        upload.drip()
        uploads.append(upload)
    return uploads


def settle(uploads: list[SlowUpload], seconds: float = 2.0) -> None:
    """Give the proxy time to accept or refuse each upload, dripping meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.4)
        for upload in uploads:
            if not upload.answered():
                upload.drip()


def until_refused(uploads: list[SlowUpload], count: int) -> list[SlowUpload]:
    """Drip into every upload until ``count`` of them are answered (refused), waking as
    each answer arrives; the others keep their place. ``HANG`` ends the wait if the
    proxy never refuses that many."""
    refused: list[SlowUpload] = []
    deadline = time.monotonic() + HANG
    while len(refused) < count and time.monotonic() < deadline:
        pending = [u for u in uploads if u not in refused]
        readable, _, _ = select.select([u.sock for u in pending], [], [], DRIP_GAP)
        for upload in pending:
            if upload.sock in readable:
                refused.append(upload)
            else:
                upload.drip()
    return refused


def signed_put(url: str, key: KeyPair) -> dict[str, str]:
    """Headers of a header-signed PUT with an unsigned payload (any body fits them)."""
    return signed_headers("PUT", url, key, payload=UNSIGNED)


def get_object(url: str, key: KeyPair) -> Answer:
    return send("GET", url, signed_headers("GET", url, key), timeout=HANG)


def connect(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=HANG)


def healthz(server: ProxyUnderTest) -> tuple[int, dict[str, Any]]:
    conn = connect(server.endpoint)
    conn.request("GET", "/healthz")
    response = conn.getresponse()
    report = json.loads(response.read())
    conn.close()
    return response.status, report


def backend_has(server: ProxyUnderTest, bucket: str, key: str) -> bool:
    try:
        backend_client(server.settings).head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        assert exc.response["Error"]["Code"] in ("404", "NoSuchKey")
        return False
    return True


def put_plain(server: ProxyUnderTest, key: str, body: bytes) -> None:
    url = f"{server.endpoint}/media/{key}"
    answer = send("PUT", url, signed_headers("PUT", url, server.admin, body=body), body)
    assert answer.status == 200, answer


# ----- slow uploads, a full pool, slow heads ------------------------------------------


def test_one_key_cannot_hold_the_backend_from_other_keys(guarded: ProxyUnderTest) -> None:
    """Twelve slow uploads through one presigned PUT URL: four are let in (the per-key
    bound), the rest are refused at once with 503 SlowDown, and another key's GETs keep
    working while the four are held. Without the bound the twelve would fill the
    eight-connection pool and the GETs would wait for it."""
    attacker = guarded.make_key({"media": "rw"}, "attacker")
    reader = guarded.make_key({"media": "r"}, "reader")
    put_plain(guarded, "load/visible.txt", b"still here")
    target = f"load/{uuid.uuid4().hex}.bin"
    url = presign("PUT", f"{guarded.endpoint}/media/{target}", attacker)
    uploads = open_slow_uploads([(url, {})] * 12)
    # Eight refusals mean the other four hold the key's slots (a refusal needs them full).
    refused = until_refused(uploads, 8)
    held = [u for u in uploads if u not in refused]
    answers = [u.answer() for u in refused]
    assert [(a.status, a.code) for a in answers] == [(503, "SlowDown")] * 8
    assert len(held) == 4

    with Dripper(held):
        for _ in range(5):
            answer = get_object(f"{guarded.endpoint}/media/load/visible.txt", reader)
            assert (answer.status, answer.body) == (200, b"still here")
        status, report = healthz(guarded)
        assert status == 200 and report["checks"]["backend"] == "ok"
        # Answered while the four still hold their connections, not once they let go.
        assert not any(u.answered() for u in held)

    # Left idle, the held uploads are cut by the body timeout; nothing was stored.
    for upload in held:
        answer = upload.answer()
        assert (answer.status, answer.code) == (400, "RequestTimeout")
    assert not backend_has(guarded, "media", target)
    # Their slots are free again: the same URL uploads a whole body.
    answer = send("PUT", url, {}, b"complete")
    assert answer.status == 200
    assert get_object(f"{guarded.endpoint}/media/{target}", reader).body == b"complete"


def test_a_full_backend_pool_answers_slowdown_and_health_stays_true(
    guarded: ProxyUnderTest,
) -> None:
    """Two keys hold all eight backend connections with slow uploads: a third key's GET
    waits the short pool wait and gets 503 SlowDown instead of hanging, and /healthz,
    which has its own connection, still reports the backend up."""
    keys = [guarded.make_key({"media": "rw"}, f"hog{i}") for i in range(2)]
    reader = guarded.make_key({"media": "r"}, "pool-reader")
    put_plain(guarded, "load/pool.txt", b"pool")
    requests = []
    for key in keys:
        for _ in range(4):
            url = f"{guarded.endpoint}/media/load/{uuid.uuid4().hex}.bin"
            requests.append((url, signed_put(url, key)))
    uploads = open_slow_uploads(requests)
    settle(uploads)
    assert not any(u.answered() for u in uploads)

    with Dripper(uploads):
        answer = get_object(f"{guarded.endpoint}/media/load/pool.txt", reader)
        assert answer.status == 503 and answer.code == "SlowDown"
        status, report = healthz(guarded)
        assert (status, report["checks"]["backend"]) == (200, "ok")
        # Refused while the pool is still full, not served once it emptied.
        assert not any(u.answered() for u in uploads)

    for upload in uploads:
        assert upload.answer().code == "RequestTimeout"
    answer = get_object(f"{guarded.endpoint}/media/load/pool.txt", reader)
    assert (answer.status, answer.body) == (200, b"pool")


def test_an_idle_upload_is_cut_but_a_slow_steady_one_is_not(guarded: ProxyUnderTest) -> None:
    """The body timeout counts idle time, not the whole upload: a client that stops
    sending is answered 400 RequestTimeout and nothing is stored; one that sends a byte
    every 0.4 s for longer than the timeout in total completes intact."""
    idle_key = f"load/{uuid.uuid4().hex}.bin"
    url = f"{guarded.endpoint}/media/{idle_key}"
    idle = SlowUpload(url, signed_put(url, guarded.admin), length=10)
    idle.drip(b"abc")
    answer = idle.answer()
    assert (answer.status, answer.code) == (400, "RequestTimeout")
    assert not backend_has(guarded, "media", idle_key)

    steady_key = f"load/{uuid.uuid4().hex}.bin"
    url = f"{guarded.endpoint}/media/{steady_key}"
    data = b"slow-but-steady!"
    # Longer in total than twice the timeout, by construction.
    assert len(data) * DRIP_GAP > 2 * float(LIMITS["NEBULA_BODY_TIMEOUT_SECONDS"])
    steady = SlowUpload(url, signed_put(url, guarded.admin), length=len(data))
    for byte in data:
        steady.drip(bytes([byte]))
        time.sleep(DRIP_GAP)
    assert steady.answer().status == 200
    assert get_object(f"{guarded.endpoint}/media/{steady_key}", guarded.admin).body == data


def test_a_slow_request_head_is_cut(guarded: ProxyUnderTest) -> None:
    """Slowloris: twenty connections that send their request head a byte at a time are
    closed once the header timeout passes, while a normal client is served meanwhile."""
    parts = urlsplit(guarded.endpoint)
    head = f"GET /media/load/visible.txt HTTP/1.1\r\nHost: {parts.netloc}\r\nX-Slow: ".encode()
    socks = [
        socket.create_connection((parts.hostname, parts.port), timeout=HANG) for _ in range(20)
    ]
    for sock in socks:
        sock.sendall(head)
    put_plain(guarded, "load/served.txt", b"served")
    # Each keeps sending (never idle) until the proxy closes it; HANG ends the wait if it never does.
    closed: set[int] = set()
    deadline = time.monotonic() + HANG
    while len(closed) < len(socks) and time.monotonic() < deadline:
        for index, sock in enumerate(socks):
            if index in closed:
                continue
            try:
                sock.sendall(b"a")
                if select.select([sock], [], [], 0)[0] and not sock.recv(65536):
                    closed.add(index)
            except OSError:
                closed.add(index)
        # Wakes as soon as the proxy closes one; otherwise paces the next byte.
        select.select([s for i, s in enumerate(socks) if i not in closed], [], [], 0.3)
    for sock in socks:
        sock.close()
    assert len(closed) == len(socks), "slow request heads were kept open"
    assert get_object(f"{guarded.endpoint}/media/load/served.txt", guarded.admin).body == b"served"


# ----- slow readers of answers -----------------------------------------------------


@pytest.fixture(scope="module")
def big(guarded: ProxyUnderTest) -> tuple[str, str]:
    """An object large enough to be streamed, and to outlast every buffer on the way to a
    client that does not read: its key and SHA-256."""
    data = os.urandom(BIG)
    put_plain(guarded, "load/big.bin", data)
    return "load/big.bin", hashlib.sha256(data).hexdigest()


def test_one_key_cannot_hold_the_backend_with_slow_downloads(
    tmp_path: Path, seaweed: Seaweed, big: tuple[str, str]
) -> None:
    """Ten GETs of a large object through one presigned URL of a read-only key, whose
    client reads nothing past the head: four are streamed (the per-key bound), the other
    six refused at once with 503 SlowDown, and another key reads the whole object while
    the four are held. Without the bound the ten would fill the eight-connection pool.
    Once the four clients hang up, their slots are free again."""
    server = start_proxy(
        tmp_path,
        seaweed,
        {
            "NEBULA_DOWNLOADS_PER_KEY": "4",
            "NEBULA_BACKEND_CONNECTIONS": "8",
            "NEBULA_BACKEND_WAIT_SECONDS": "1",
        },
    )
    try:
        key, digest = big
        attacker = server.make_key({"media": "r"}, "slow-reader")
        reader = server.make_key({"media": "r"}, "reader")
        url = presign("GET", f"{server.endpoint}/media/{key}", attacker)
        downloads = [SlowDownload(url) for _ in range(10)]
        held, refused = downloads[:4], downloads[4:]
        assert [d.status for d in held] == [200] * 4
        answers = [d.answer() for d in refused]
        assert [(a.status, a.code) for a in answers] == [(503, "SlowDown")] * 6

        whole = get_object(f"{server.endpoint}/media/{key}", reader)
        assert whole.status == 200 and hashlib.sha256(whole.body).hexdigest() == digest
        # Served while the four still hold their connections.
        assert not any(d.cut(wait=0) for d in held)
        for download in held:
            download.close()
            assert access_line(server, download.request_id)["status"] == 200
        # Released: four more are streamed to the same URL.
        again = [SlowDownload(url) for _ in range(4)]
        assert [d.status for d in again] == [200] * 4
        for download in again:
            download.close()
    finally:
        server.stop()


def test_a_stalled_reader_is_cut_and_its_slot_comes_back(
    guarded: ProxyUnderTest, big: tuple[str, str]
) -> None:
    """Two GETs whose clients read the head and then nothing hold the key's two download
    slots (a third GET is refused); after the 2 s answer timeout both are cut, logged as
    RequestTimeout, and the key streams two answers again."""
    key, digest = big
    slow = guarded.make_key({"media": "r"}, "stalled")
    url = f"{guarded.endpoint}/media/{key}"
    stalled = [SlowDownload(url, signed_headers("GET", url, slow)) for _ in range(2)]
    assert [d.status for d in stalled] == [200, 200]
    third = get_object(url, slow)
    assert (third.status, third.code) == (503, "SlowDown")

    for download in stalled:
        assert download.cut(), "a client that reads nothing was never cut"
        assert len(download.rest()) < BIG
        download.close()
        entry = access_line(guarded, download.request_id)
        assert (entry["status"], entry["error"]) == (200, "RequestTimeout")
    again = [SlowDownload(url, signed_headers("GET", url, slow)) for _ in range(2)]
    assert [d.status for d in again] == [200, 200]
    body = again[0].rest()
    assert hashlib.sha256(body).hexdigest() == digest
    for download in again:
        download.close()


def test_a_slow_but_steady_reader_is_not_cut(guarded: ProxyUnderTest, big: tuple[str, str]) -> None:
    """A client reading 16 KiB every quarter second, for three times the answer timeout,
    while the proxy's writes wait for it, then the rest at once: it gets the whole object,
    and the answer is logged without an error."""
    key, digest = big
    url = f"{guarded.endpoint}/media/{key}"
    download = SlowDownload(url, signed_headers("GET", url, guarded.admin))
    assert download.status == 200
    hasher = hashlib.sha256()
    steps = int(3 * float(LIMITS["NEBULA_ANSWER_TIMEOUT_SECONDS"]) / READ_GAP)
    for _ in range(steps):
        hasher.update(download.read(RCVBUF))
        time.sleep(READ_GAP)
    hasher.update(download.rest())
    download.close()
    assert hasher.hexdigest() == digest
    entry = access_line(guarded, download.request_id)
    assert (entry["status"], entry["error"]) == (200, None)


# ----- what /metrics and the access log say about errors ------------------------------


def scrape(server: ProxyUnderTest) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    conn = connect(server.endpoint)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def counted(
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, **labels: str
) -> float:
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def test_metrics_and_access_log_carry_the_real_status_and_code(guarded: ProxyUnderTest) -> None:
    """A refused signature, an unknown key, and errors that come from the backend are
    counted under their own status and S3 code, never as 500, and logged with it."""
    before = scrape(guarded)
    base = f"{guarded.endpoint}/media"
    forged = signed_headers(
        "GET", f"{base}/load/visible.txt", KeyPair(guarded.admin.access_key_id, "wrong")
    )
    stranger = KeyPair("NKNOSUCHKEY000000000", "secret")
    missing = f"{base}/load/{uuid.uuid4().hex}"
    cases = [
        ("GET", f"{base}/load/visible.txt", forged, 403, "SignatureDoesNotMatch"),
        (
            "GET",
            f"{base}/x",
            signed_headers("GET", f"{base}/x", stranger),
            403,
            "InvalidAccessKeyId",
        ),
        ("GET", missing, signed_headers("GET", missing, guarded.admin), 404, "NoSuchKey"),
        ("HEAD", missing, signed_headers("HEAD", missing, guarded.admin), 404, "NotFound"),
        (
            "GET",
            f"{guarded.endpoint}/no-such-bucket-{uuid.uuid4().hex[:6]}/k",
            None,
            404,
            "NoSuchBucket",
        ),
    ]
    for method, url, headers, status, code in cases:
        answer = send(method, url, headers or signed_headers(method, url, guarded.admin))
        assert answer.status == status, (url, answer)
        entry = access_line(guarded, answer.headers["x-amz-request-id"])
        assert (entry["status"], entry["error"]) == (status, code)

    after = scrape(guarded)
    errors = "nebula_s3proxy_errors_total"
    for _method, _url, _headers, status, code in cases:
        grew = counted(after, errors, status=str(status), code=code) - counted(
            before, errors, status=str(status), code=code
        )
        assert grew == 1, (status, code)
    total = "nebula_s3proxy_requests_total"
    for method, label, times in (("GET", "403", 2), ("GET", "404", 2), ("HEAD", "404", 1)):
        grew = counted(after, total, method=method, status=label) - counted(
            before, total, method=method, status=label
        )
        assert grew == times, (method, label)
    assert counted(after, total, method="GET", status="500") == counted(
        before, total, method="GET", status="500"
    )


# ----- X-Forwarded-For: the chain, from the right, over every line --------------------


def test_a_client_cannot_choose_its_address_with_a_second_forwarded_line(
    tmp_path: Path, seaweed: Seaweed
) -> None:
    """Behind a trusted proxy (here: loopback), only 10.99.0.0/16 may use the endpoint.
    A client at 203.0.113.9 sends its own ``X-Forwarded-For: 10.99.0.5`` line and the
    proxy adds a second line with the real address: the chain is read from the right
    across both lines, so the upload is refused and nothing is stored."""
    server = start_proxy(
        tmp_path,
        seaweed,
        {"NEBULA_TRUSTED_PROXIES": "127.0.0.1/32", "NEBULA_ALLOW_CIDRS": "10.99.0.0/16"},
    )
    try:
        key = f"xff/{uuid.uuid4().hex}.txt"
        url = f"{server.endpoint}/media/{key}"
        body = b"spoofed"
        signed = signed_headers("PUT", url, server.admin, body=body)

        def put_forwarded_for(*lines: str) -> Answer:
            headers = CIMultiDict(signed)
            for line in lines:
                headers.add("X-Forwarded-For", line)
            return send("PUT", url, headers, body, timeout=HANG)

        spoofed = put_forwarded_for("10.99.0.5", "203.0.113.9")
        assert (spoofed.status, spoofed.code) == (403, "AccessDenied")
        assert not backend_has(server, "media", key)
        assert '"client": "203.0.113.9"' in server.log()

        # The same chain on one line is read the same way; an allowed client at the
        # right end gets through (so the refusal above is the address, not the key).
        one_line = put_forwarded_for("10.99.0.5, 203.0.113.9")
        assert (one_line.status, one_line.code) == (403, "AccessDenied")
        allowed = put_forwarded_for("203.0.113.9", "10.99.0.5")
        assert allowed.status == 200
        assert backend_has(server, "media", key)
    finally:
        stop(server)


# ----- a write-locked catalog ---------------------------------------------------------


class CatalogLock:
    """Another connection holding the catalog's write lock (reads still go through)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: Any = None

    def __enter__(self) -> CatalogLock:
        if self.url.startswith("sqlite"):
            self.conn = sqlite3.connect(self.url.split("///", 1)[1], isolation_level=None)
            self.conn.execute("BEGIN IMMEDIATE")
        else:
            self.conn = psycopg2.connect(self.url)
            with self.conn.cursor() as cursor:
                cursor.execute("LOCK TABLE assets, jobs, outbox IN EXCLUSIVE MODE")
        return self

    def __exit__(self, *_exc: object) -> None:
        self.conn.rollback()
        self.conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    env = {"NEBULA_CATALOG_WRITE_WAIT_SECONDS": "1.5"}
    if request.param == "sqlite":
        yield env
        return
    url = create_pg_database()
    yield {**env, "NEBULA_DATABASE_URL": url}
    drop_pg_database(url)


def test_a_locked_catalog_stalls_neither_uploads_nor_other_keys(
    tmp_path: Path, seaweed: Seaweed, catalog_env: dict[str, str]
) -> None:
    """While another connection holds the catalog's write lock, six video PUTs are each
    answered after the short write wait (not the 30 s lock wait), and a GET with another,
    never-seen key (its lookup reads the catalog) is answered at once, as is /healthz.
    Once the lock is gone, the reconcile records the uploads whose events were given up."""
    server = start_proxy(tmp_path, seaweed, catalog_env)
    try:
        reader = server.make_key({"media": "r"}, "reader")
        put_plain(server, "lock/plain.txt", b"plain")
        videos = [f"lock/{uuid.uuid4().hex}.mp4" for _ in range(6)]

        def upload(key: str) -> Answer:
            url = f"{server.endpoint}/media/{key}"
            headers = {"Content-Type": "video/mp4"}
            signed = signed_headers("PUT", url, server.admin, headers, body=b"video")
            return send("PUT", url, signed, b"video", timeout=HANG)

        with CatalogLock(server.settings.catalog_url), ThreadPoolExecutor(6) as pool:
            puts = [pool.submit(upload, key) for key in videos]
            # Stored means past the backend: each PUT is now at its catalog write.
            wait_until(
                lambda: all(backend_has(server, "media", key) for key in videos),
                "the six PUTs reached storage",
                HANG,
            )
            answer = get_object(f"{server.endpoint}/media/lock/plain.txt", reader)
            assert (answer.status, answer.body) == (200, b"plain")
            status, report = healthz(server)  # reads still work: the catalog is up
            assert status == 200 and report["checks"]["catalog"] == "ok"
            # All answered while the lock is still held: none waited for it to go.
            for put in puts:
                assert put.result().status == 200

        for key in videos:
            assert backend_has(server, "media", key)
        run_once(
            server.settings, server.catalog, tasks_for(server.settings).enqueue, grace_seconds=0
        )
        with server.catalog.session() as session:
            for key in videos:
                asset = find_asset(session, "media", key)
                assert asset is not None, key
                kinds = session.scalars(sql_select(Job.kind).where(Job.asset_id == asset.id))
                assert JobKind.TRANSCODE in set(kinds)
        assert "catalog did not record the upload" in server.log()
    finally:
        stop(server)
