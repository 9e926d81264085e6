"""The proxy's own SigV4 verification against botocore's: for many requests the canonical
request, the expected signature and the chunk/trailer signatures are byte-identical to
what botocore's ``S3SigV4Auth`` computes, and verify() accepts exactly that signature."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials
from multidict import CIMultiDict

from s3proxy.errors import S3Error
from s3proxy.sigv4 import (
    STREAMING_SIGNED,
    STREAMING_SIGNED_TRAILER,
    Credential,
    SigV4Authorization,
    canonical_request,
    verify,
)

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TIMESTAMP = "20261129T120005Z"
KEYS = ["", "photo.jpg", "dir/a b+c.txt", "ünïcødé/日本語.mp4", "odd !$&'()*,;=:@[]~%", "x/"]
QUERIES: list[list[tuple[str, str]]] = [
    [],
    [("uploads", "")],
    [("uploadId", "a/b=c"), ("partNumber", "7")],
    [("prefix", "a b+c/ü"), ("delimiter", "/"), ("list-type", "2")],
    [("z", "1"), ("a", "2"), ("a", "1")],  # a repeated key, both signed
    [("X-Amz-Signature", "dropped-when-presigned"), ("versionId", "v~1")],
]
BASE = [("host", "127.0.0.1:9000"), ("x-amz-date", TIMESTAMP)]
HEADER_SETS: list[list[tuple[str, str]]] = [
    BASE,
    [*BASE, ("Content-Type", "video/mp4"), ("Content-Length", "4096")],
    [*BASE, ("x-amz-meta-title", "  a   title\twith  spaces  ")],
    [*BASE, ("x-amz-meta-ü", "välue"), ("X-Amz-Meta-Twice", "one"), ("x-amz-meta-twice", "two")],
    [*BASE, ("Range", "bytes=0-99"), ("If-None-Match", '"e"'), ("user-agent", "aws-cli")],
    [*BASE, ("x-amz-content-sha256", "first"), ("x-amz-content-sha256", "second")],
]
SIGNED_SETS: list[tuple[str, ...]] = [
    ("host", "x-amz-date"),
    ("host", "x-amz-content-sha256", "x-amz-date"),
    ("content-type", "host", "x-amz-date", "x-amz-meta-title", "x-amz-meta-twice"),
    ("host", "range", "user-agent", "x-amz-date", "x-amz-meta-ü"),
    ("host", "host", "x-amz-date"),  # listed twice: botocore repeats the values
    ("host", "x-amz-date", "x-amz-missing"),  # listed but absent: drops out
]
PAYLOADS = [
    "UNSIGNED-PAYLOAD",
    hashlib.sha256(b"").hexdigest(),
    hashlib.sha256(b"4k" * 2048).hexdigest(),
    STREAMING_SIGNED,
    STREAMING_SIGNED_TRAILER,
]


class ReferenceAuth(S3SigV4Auth):
    """What verify() used before: botocore fed the claimed headers and payload hash."""

    def __init__(self, claim: SigV4Authorization) -> None:
        super().__init__(
            Credentials(claim.credential.access_key_id, SECRET), "s3", claim.credential.region
        )
        self._claim = claim

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        signed = HTTPHeaders()
        for name in self._claim.signed_headers:
            for value in request.headers.get_all(name) or []:
                signed[name] = value
        return signed

    def payload(self, request: AWSRequest) -> str:
        return self._claim.payload_hash


def reference(
    claim: SigV4Authorization,
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: CIMultiDict[str],
) -> tuple[ReferenceAuth, AWSRequest, str, str]:
    request = AWSRequest(method=method, url="http://s3" + path)
    for name in claim.signed_headers:
        for value in headers.getall(name, []):
            request.headers[name] = value
    request.params = [  # type: ignore[assignment]
        (k, v) for k, v in query if not (claim.presigned and k == "X-Amz-Signature")
    ]
    request.context["timestamp"] = claim.timestamp
    auth = ReferenceAuth(claim)
    canonical = auth.canonical_request(request)
    return (
        auth,
        request,
        canonical,
        auth.signature(auth.string_to_sign(request, canonical), request),
    )


def cases() -> Iterator[
    tuple[str, str, list[tuple[str, str]], list[tuple[str, str]], tuple[str, ...], str, bool, str]
]:
    combos = itertools.product(
        ["GET", "PUT", "HEAD", "POST", "DELETE"],
        KEYS,
        QUERIES,
        HEADER_SETS,
        SIGNED_SETS,
        PAYLOADS,
        [False, True],
        ["us-east-1", "eu-west-3"],
    )
    for index, case in enumerate(combos):
        if index % 11 == 0:
            yield case


def claim_for(
    signed: tuple[str, ...], payload: str, presigned: bool, region: str
) -> SigV4Authorization:
    return SigV4Authorization(
        credential=Credential("NKTESTKEY", TIMESTAMP[:8], region, "s3"),
        timestamp=TIMESTAMP,
        signed_headers=signed,
        signature="",
        payload_hash=payload,
        presigned=presigned,
        expires=3600 if presigned else 0,
    )


def test_canonical_request_and_signature_match_botocore() -> None:
    compared = 0
    for method, key, query, header_list, signed, payload, presigned, region in cases():
        path = "/bucket" + (f"/{quote(key, safe='/~')}" if key else "")
        headers: CIMultiDict[str] = CIMultiDict(header_list)
        claim = claim_for(signed, payload, presigned, region)
        _, _, their_canonical, their_signature = reference(claim, method, path, query, headers)
        assert canonical_request(claim, method, path, query, headers) == their_canonical
        right = SigV4Authorization(**{**claim.__dict__, "signature": their_signature})
        lower = {n.lower(): ",".join(headers.getall(n)) for n in headers}
        if any(n.startswith("x-amz-") and n not in signed for n in lower):
            continue  # refused before any signature: covered by test_trust_signing
        verify(right, SECRET, method, path, query, headers, lower)
        wrong = SigV4Authorization(**{**claim.__dict__, "signature": their_signature[:-1] + "0"})
        if wrong.signature != their_signature:
            with pytest.raises(S3Error) as refused:
                verify(wrong, SECRET, method, path, query, headers)
            assert refused.value.code == "SignatureDoesNotMatch"
        compared += 1
    assert compared > 1000


def test_chunk_and_trailer_signatures_match_botocore() -> None:
    headers: CIMultiDict[str] = CIMultiDict(BASE)
    for payload, region in itertools.product(
        (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER), ("us-east-1", "eu-west-3")
    ):
        claim = claim_for(("host", "x-amz-date"), payload, False, region)
        auth, request, _, seed = reference(claim, "PUT", "/b/k", [], headers)
        signer = verify(
            SigV4Authorization(**{**claim.__dict__, "signature": seed}),
            SECRET,
            "PUT",
            "/b/k",
            [],
            headers,
        )
        previous = seed
        for chunk in (b"a" * 65536, b"tail", b""):
            digest = hashlib.sha256(chunk).hexdigest()
            sts = "\n".join(
                (
                    "AWS4-HMAC-SHA256-PAYLOAD",
                    TIMESTAMP,
                    claim.credential.scope,
                    previous,
                    hashlib.sha256(b"").hexdigest(),
                    digest,
                )
            )
            expected = auth.signature(sts, request)
            assert signer.chunk_signature(previous, digest) == expected
            previous = expected
        trailer = b"x-amz-checksum-crc32:AAAAAA==\n"
        sts = "\n".join(
            (
                "AWS4-HMAC-SHA256-TRAILER",
                TIMESTAMP,
                claim.credential.scope,
                previous,
                hashlib.sha256(trailer).hexdigest(),
            )
        )
        assert signer.trailer_signature(previous, trailer) == auth.signature(sts, request)
