"""No framing error reaches the backend as a complete body (issue 9).

Every attack overwrites an existing object; the backend is then read directly (not through
the proxy) and must still hold the old object.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nebulacore.s3 import backend_client
from tests.s3proxy.signing import (
    Answer,
    checksum_b64,
    md5_b64,
    seed_request,
    send,
    signed_chunks,
    signed_headers,
    unsigned_chunks,
)
from tests.stacks import ProxyUnderTest

OLD = b"the old object, which no failed upload may replace"
NEW = os.urandom(65536)  # exactly one full chunk
SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
CRC = "x-amz-checksum-crc32"


def on_backend(proxy: ProxyUnderTest, key: str, bucket: str = "media") -> bytes | None:
    """The object as SeaweedFS holds it, read without the proxy."""
    try:
        return bytes(
            backend_client(proxy.settings).get_object(Bucket=bucket, Key=key)["Body"].read()
        )
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchKey"
        return None


def existing_object(proxy: ProxyUnderTest) -> tuple[str, str]:
    """A fresh key holding :data:`OLD` on the backend, and its URL through the proxy."""
    key = f"framing/{uuid.uuid4().hex}.bin"
    backend_client(proxy.settings).put_object(Bucket="media", Key=key, Body=OLD)
    return key, f"{proxy.endpoint}/media/{key}"


def chunked_put(
    proxy: ProxyUnderTest, url: str, mode: str, sent: bytes, declared: int
) -> tuple[dict[str, str], bytes]:
    """Headers and aws-chunked body carrying ``sent`` while declaring ``declared`` bytes."""
    extra = {"x-amz-decoded-content-length": str(declared)}
    if mode != SIGNED:
        extra["x-amz-trailer"] = CRC
    headers, seed = seed_request(url, proxy.admin, mode, sent, extra)
    trailer = (CRC, checksum_b64("crc32", sent))
    if mode == UNSIGNED_TRAILER:
        return headers, unsigned_chunks(sent, trailer)
    return headers, signed_chunks(
        sent, proxy.admin, headers, seed, trailer=trailer if mode == SIGNED_TRAILER else None
    )


def assert_refused_and_old_kept(proxy: ProxyUnderTest, key: str, answer: Answer) -> None:
    assert 400 <= answer.status < 500, (answer.status, answer.body)
    assert on_backend(proxy, key) == OLD


MODES = [SIGNED, SIGNED_TRAILER, UNSIGNED_TRAILER]


@pytest.mark.parametrize("mode", MODES)
def test_body_longer_than_decoded_length_is_not_stored(proxy: ProxyUnderTest, mode: str) -> None:
    """The issue's attack: the declared-length prefix used to replace the object."""
    key, url = existing_object(proxy)
    headers, body = chunked_put(proxy, url, mode, NEW + b"and more", declared=len(NEW))
    answer = send("PUT", url, headers, body)
    assert (answer.status, answer.code) == (400, "IncompleteBody")
    assert on_backend(proxy, key) == OLD


@pytest.mark.parametrize("mode", MODES)
def test_bytes_after_the_final_chunk_are_refused(proxy: ProxyUnderTest, mode: str) -> None:
    key, url = existing_object(proxy)
    headers, body = chunked_put(proxy, url, mode, NEW, declared=len(NEW))
    answer = send("PUT", url, headers, body + b"0\r\n\r\nsmuggled")
    assert_refused_and_old_kept(proxy, key, answer)
    assert answer.code == "InvalidRequest"


@pytest.mark.parametrize(
    "extra",
    [
        {"Content-MD5": md5_b64(b"other")},
        {"x-amz-checksum-sha256": checksum_b64("sha256", b"other")},
    ],
)
def test_plain_body_with_a_wrong_digest_is_not_stored(
    proxy: ProxyUnderTest, extra: dict[str, str]
) -> None:
    key, url = existing_object(proxy)
    headers = signed_headers("PUT", url, proxy.admin, extra, payload="UNSIGNED-PAYLOAD")
    assert_refused_and_old_kept(proxy, key, send("PUT", url, headers, NEW * 3))


def test_plain_body_with_a_wrong_sha256_is_not_stored(proxy: ProxyUnderTest) -> None:
    key, url = existing_object(proxy)
    headers = signed_headers("PUT", url, proxy.admin, payload=hashlib.sha256(b"x").hexdigest())
    assert_refused_and_old_kept(proxy, key, send("PUT", url, headers, NEW * 3))


@pytest.mark.parametrize("good", [True, False])
def test_http_chunked_plain_body_is_verified_before_it_ends(
    proxy: ProxyUnderTest, good: bool
) -> None:
    """Transfer-Encoding: chunked, no length: the backend gets a chunked body whose end
    (the zero-size chunk) is sent only after the digest matched."""
    key, url = existing_object(proxy)
    data = NEW * 3
    claimed = data if good else data[:-1] + b"!"
    headers = signed_headers("PUT", url, proxy.admin, body=claimed)
    http_chunks = b"".join(
        f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        for piece in (data[i : i + 50_000] for i in range(0, len(data), 50_000))
    )
    answer = send(
        "PUT", url, {**headers, "Transfer-Encoding": "chunked"}, [http_chunks, b"0\r\n\r\n"]
    )
    if good:
        assert answer.status == 200, answer.body
        assert on_backend(proxy, key) == data
    else:
        assert (answer.status, answer.code) == (400, "XAmzContentSHA256Mismatch")
        assert on_backend(proxy, key) == OLD


@pytest.mark.parametrize("mode", MODES)
def test_a_good_chunked_body_still_replaces_the_object(proxy: ProxyUnderTest, mode: str) -> None:
    key, url = existing_object(proxy)
    data = NEW * 2 + b"tail"
    headers, body = chunked_put(proxy, url, mode, data, declared=len(data))
    answer = send("PUT", url, headers, body)
    assert answer.status == 200, answer.body
    assert on_backend(proxy, key) == data


# ----- property: any mutation of a chunked body leaves the old object or the intended one ----

DATA = bytes(range(256)) * 300  # 76,800 bytes: one full 64 KiB chunk and a short one
FIRST_CHUNK_SHORTFALL = len(DATA) - 65536


def _mutations() -> st.SearchStrategy[Callable[[bytes], bytes]]:
    """Byte-level changes anywhere in the encoded body: sizes, signatures, data, trailers."""
    position = st.floats(min_value=0, max_value=1, exclude_max=True)

    def flip(where: float, bit: int) -> Callable[[bytes], bytes]:
        def apply(body: bytes) -> bytes:
            if not body:
                return body
            i = int(where * len(body))
            return body[:i] + bytes([body[i] ^ (1 << bit)]) + body[i + 1 :]

        return apply

    def cut(where: float) -> Callable[[bytes], bytes]:
        return lambda body: body[: int(where * len(body))]

    def insert(where: float, extra: bytes) -> Callable[[bytes], bytes]:
        return lambda body: body[: int(where * len(body))] + extra + body[int(where * len(body)) :]

    def delete(where: float, count: int) -> Callable[[bytes], bytes]:
        def apply(body: bytes) -> bytes:
            i = int(where * len(body))
            return body[:i] + body[i + count :]

        return apply

    def append(extra: bytes) -> Callable[[bytes], bytes]:
        return lambda body: body + extra

    def resize(which: int, delta: int) -> Callable[[bytes], bytes]:
        """Change one chunk-size field, keeping the rest of the body."""

        def apply(body: bytes) -> bytes:
            lines, start = [], 0
            while (end := body.find(b"\r\n", start)) >= 0:
                head = body[start:end]
                size_text = head.split(b";")[0]
                try:
                    size = int(size_text, 16)
                except ValueError:
                    break
                lines.append((start, start + len(size_text), size))
                start = end + 2 + size + 2
            if not lines:
                return body
            begin, stop, size = lines[which % len(lines)]
            return body[:begin] + f"{max(size + delta, 0):x}".encode() + body[stop:]

        return apply

    interesting = st.sampled_from(
        [b"\r\n", b"0\r\n\r\n", b"x", b";", b"\n", b"0;chunk-signature=0\r\n", b"x-amz-a:b\r\n"]
    )
    return st.one_of(
        st.builds(flip, position, st.integers(0, 7)),
        st.builds(cut, position),
        st.builds(insert, position, st.one_of(interesting, st.binary(min_size=1, max_size=64))),
        st.builds(delete, position, st.integers(1, 64)),
        st.builds(append, st.one_of(interesting, st.binary(min_size=1, max_size=64))),
        st.builds(resize, st.integers(0, 3), st.integers(-3, 3).filter(bool)),
    )


@pytest.fixture(scope="module")
def attacked() -> dict[str, bytes]:
    """Every example's own key and what the backend must hold there: OLD, or DATA when the
    proxy answered 200. Checked after each example and again after all of them, so an
    upload the backend completes after the proxy's answer (a late write) is seen for every
    example, whatever order the tests run in."""
    return {}


def assert_backend_holds(proxy: ProxyUnderTest, expected: dict[str, bytes]) -> None:
    changed = [key for key, held in expected.items() if on_backend(proxy, key) != held]
    assert not changed, f"{len(changed)} refused uploads replaced the object late: {changed[:3]}"


@pytest.mark.parametrize("mode", MODES)
def test_mutated_chunked_bodies_never_replace_the_object(
    proxy: ProxyUnderTest, attacked: dict[str, bytes], mode: str
) -> None:
    mine: dict[str, bytes] = {}

    # Nested so that a falsifying example prints the mutations, not the proxy's settings.
    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        mutations=st.lists(_mutations(), min_size=1, max_size=3),
        # -FIRST_CHUNK_SHORTFALL declares exactly the first chunk: the old prefix attack.
        declared_delta=st.sampled_from([0, 0, 0, -1, 1, -FIRST_CHUNK_SHORTFALL, -65536]),
    )
    def attack(mutations: list[Callable[[bytes], bytes]], declared_delta: int) -> None:
        key, url = existing_object(proxy)  # its own object: no example sees another's effect
        headers, body = chunked_put(proxy, url, mode, DATA, declared=len(DATA) + declared_delta)
        for mutate in mutations:
            body = mutate(body)
        answer = send("PUT", url, {**headers, "Content-Length": str(len(body))}, body)
        held = on_backend(proxy, key)
        if answer.status == 200:
            # Only a harmless change may succeed, and then the object is exactly the data.
            assert declared_delta == 0 and held == DATA, answer.body
            mine[key] = DATA
        else:
            assert 400 <= answer.status < 500, (answer.status, answer.body)
            assert held == OLD
            mine[key] = OLD

    attack()
    attacked.update(mine)
    assert_backend_holds(proxy, mine)


# A plain body's claimed digest: (x-amz-content-sha256, extra signed headers).
PLAIN_CLAIMS: dict[str, tuple[str, dict[str, str]]] = {
    "sha256": (hashlib.sha256(DATA).hexdigest(), {}),
    "md5": ("UNSIGNED-PAYLOAD", {"Content-MD5": md5_b64(DATA)}),
    "crc32c": ("UNSIGNED-PAYLOAD", {"x-amz-checksum-crc32c": checksum_b64("crc32c", DATA)}),
}


@pytest.mark.parametrize("claim", sorted(PLAIN_CLAIMS))
def test_mutated_plain_bodies_never_replace_the_object(
    proxy: ProxyUnderTest, attacked: dict[str, bytes], claim: str
) -> None:
    """The same property for plain bodies whose digest is claimed in a header."""
    payload, claimed = PLAIN_CLAIMS[claim]
    position = st.floats(min_value=0, max_value=1, exclude_max=True)
    mine: dict[str, bytes] = {}

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(where=position, change=st.sampled_from(["flip", "cut", "append", "delete"]))
    def attack(where: float, change: str) -> None:
        key, url = existing_object(proxy)
        headers = signed_headers("PUT", url, proxy.admin, claimed, payload=payload)
        i = int(where * len(DATA))
        body = {
            "flip": DATA[:i] + bytes([DATA[i] ^ 1]) + DATA[i + 1 :],
            "cut": DATA[:i],
            "append": DATA + DATA[i : i + 10],
            "delete": DATA[:i] + DATA[i + 1 :],
        }[change]
        answer = send("PUT", url, {**headers, "Content-Length": str(len(body))}, body)
        mine[key] = OLD
        assert_refused_and_old_kept(proxy, key, answer)

    attack()
    attacked.update(mine)
    assert_backend_holds(proxy, mine)


def test_property_objects_were_never_replaced_late(
    proxy: ProxyUnderTest, attacked: dict[str, bytes]
) -> None:
    """Every example of the property tests above, checked once more after all of them."""
    assert_backend_holds(proxy, attacked)
