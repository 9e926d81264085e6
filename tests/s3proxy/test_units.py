"""Unit tests of the proxy's pure parts: addressing, claims, scopes, digests, chunk decoding."""

from __future__ import annotations

import asyncio
import hashlib
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from multidict import CIMultiDict

from catalog.buckets import owner_id
from nebulacore.config import load_settings
from s3proxy.addressing import Target, copy_source_bucket, host_bucket, parse_target
from s3proxy.auth import required_access
from s3proxy.checksums import BodyDigests
from s3proxy.chunked import AwsChunkedDecoder
from s3proxy.errors import S3Error, error_xml, with_request_id
from s3proxy.listing import OBJECTS, PARTS, OwnerRewriter
from s3proxy.sigv4 import check_time, parse_claim, verify
from tests.s3proxy.signing import checksum_b64, unsigned_chunks

SETTINGS = load_settings({}, s3_domain="s3.example.org")


def test_path_and_virtual_hosted_addressing() -> None:
    path = parse_target("/media/a%20b/c.mp4?uploads", "127.0.0.1:9000", SETTINGS)
    assert (path.bucket, path.key, path.query) == ("media", "a b/c.mp4", (("uploads", ""),))
    assert path.canonical_path == "/media/a%20b/c.mp4"
    virtual = parse_target("/a%2Bb.txt", "media.s3.example.org:9000", SETTINGS)
    assert (virtual.bucket, virtual.key) == ("media", "a+b.txt")
    assert parse_target("/", "s3.example.org", SETTINGS).bucket is None
    assert host_bucket("media.s3.example.org", None) is None
    assert copy_source_bucket("/src/some%20key?versionId=1") == "src"


def test_backend_query_drops_presign_parameters() -> None:
    target = parse_target(
        "/bucket/k?X-Amz-Signature=s&X-Amz-Credential=c&response-content-type=a%2Fb", "h", SETTINGS
    )
    assert target.backend_query() == "response-content-type=a%2Fb"


def _signed(
    method: str, url: str, headers: dict[str, str], when: datetime | None = None
) -> AWSRequest:
    request = AWSRequest(method=method, url=url, headers=headers)
    S3SigV4Auth(Credentials("AKID", "SECRET"), "s3", "us-east-1").add_auth(request)
    return request


def _headers(request: AWSRequest) -> CIMultiDict[str]:
    headers = CIMultiDict(request.headers.items())
    headers["host"] = "127.0.0.1:9000"
    return headers


def test_botocore_signature_verifies_and_a_changed_one_does_not() -> None:
    url = "http://127.0.0.1:9000/media/k%C3%BC%20y?tagging=&x=1"
    request = _signed("PUT", url, {"Content-Type": "video/mp4"})
    headers = _headers(request)
    lower = {k.lower(): v for k, v in headers.items()}
    target = parse_target("/media/k%C3%BC%20y?tagging=&x=1", "127.0.0.1:9000", SETTINGS)
    claim = parse_claim(lower, target.query)
    assert claim is not None and not claim.presigned
    verify(claim, "SECRET", "PUT", target.canonical_path, target.query, headers)
    with pytest.raises(S3Error) as caught:
        verify(claim, "WRONG", "PUT", target.canonical_path, target.query, headers)
    assert caught.value.code == "SignatureDoesNotMatch"
    headers["Content-Type"] = "text/plain"
    with pytest.raises(S3Error):
        verify(claim, "SECRET", "PUT", target.canonical_path, target.query, headers)


def test_time_checks() -> None:
    request = _signed("GET", "http://127.0.0.1:9000/media/k", {})
    claim = parse_claim({k.lower(): v for k, v in request.headers.items()}, ())
    assert claim is not None
    check_time(claim, ["us-east-1"])
    with pytest.raises(S3Error) as caught:
        check_time(claim, ["us-east-1"], datetime.now(UTC) + timedelta(minutes=16))
    assert caught.value.code == "RequestTimeTooSkewed"
    with pytest.raises(S3Error) as caught:
        check_time(claim, ["eu-west-1"])
    assert caught.value.code == "AuthorizationHeaderMalformed"


def test_required_access() -> None:
    def target(path: str) -> Target:
        return parse_target(path, "h", SETTINGS)

    assert required_access("GET", target("/"), None) == [(None, "r")]
    assert required_access("PUT", target("/new-bucket"), None) == [("new-bucket", "admin")]
    assert required_access("POST", target("/media?delete"), None) == [("media", "rw")]
    assert required_access("PUT", target("/media/k"), "/hls/src.ts") == [
        ("media", "rw"),
        ("hls", "r"),
    ]
    assert required_access("HEAD", target("/media/k"), None) == [("media", "r")]


def test_digests() -> None:
    data = b"hello"
    digests = BodyDigests.from_request(
        {"x-amz-checksum-crc32c": checksum_b64("crc32c", data)},
        hashlib.sha256(data).hexdigest(),
        None,
    )
    digests.update(data)
    assert digests.verify() == {"x-amz-checksum-crc32c": checksum_b64("crc32c", data)}
    wrong = BodyDigests.from_request({"content-md5": "not base64!"}, "UNSIGNED-PAYLOAD", None)
    wrong.update(data)
    with pytest.raises(S3Error) as caught:
        wrong.verify()
    assert caught.value.code == "InvalidDigest"


class _Bytes:
    """An in-memory ByteSource."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def readline(self) -> bytes:
        index = self.data.find(b"\n")
        end = len(self.data) if index < 0 else index + 1
        line, self.data = self.data[:end], self.data[end:]
        return line

    async def read(self, n: int = -1) -> bytes:
        n = len(self.data) if n < 0 else n
        piece, self.data = self.data[:n], self.data[n:]
        return piece


def _decode(body: bytes, length: int) -> tuple[bytes, dict[str, str]]:
    decoder = AwsChunkedDecoder(_Bytes(body), None, True, length)

    async def collect() -> bytes:
        return b"".join([piece async for piece in decoder.pieces()])

    return asyncio.run(collect()), decoder.trailers


def test_unsigned_trailer_decoding() -> None:
    data = bytes(range(256)) * 1000
    body = unsigned_chunks(data, ("x-amz-checksum-crc32", "AAAA"), chunk_size=10_000)
    assert _decode(body, len(data)) == (data, {"x-amz-checksum-crc32": "AAAA"})
    with pytest.raises(S3Error) as caught:
        _decode(body[: len(body) // 2], len(data))
    assert caught.value.code == "IncompleteBody"
    with pytest.raises(S3Error) as caught:
        _decode(b"zz\r\n", 10)
    assert caught.value.code == "InvalidRequest"


def test_error_xml_carries_the_request_id() -> None:
    body = error_xml(S3Error("AccessDenied", "no"), "/media/k", "ABC123")
    assert b"<Code>AccessDenied</Code>" in body and b"<RequestId>ABC123</RequestId>" in body
    rewritten = with_request_id(
        b"<Error><Code>NoSuchKey</Code><RequestId>x</RequestId></Error>", "MINE"
    )
    assert b"<RequestId>MINE</RequestId>" in rewritten


def test_aws_documentation_streaming_example() -> None:
    """The worked example of Amazon's "sigv4-streaming" page: seed and chunk signatures."""
    seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    headers: CIMultiDict[str] = CIMultiDict(
        {
            "host": "s3.amazonaws.com",
            "x-amz-date": "20130524T000000Z",
            "x-amz-storage-class": "REDUCED_REDUNDANCY",
            "authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
            f"x-amz-decoded-content-length;x-amz-storage-class,Signature={seed}",
            "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "content-encoding": "aws-chunked",
            "x-amz-decoded-content-length": "66560",
            "content-length": "66824",
        }
    )
    claim = parse_claim({k.lower(): v for k, v in headers.items()}, ())
    assert claim is not None
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    signer = verify(claim, secret, "PUT", "/examplebucket/chunkObject.txt", (), headers)
    signatures = [
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
    ]
    body = (
        f"10000;chunk-signature={signatures[0]}\r\n".encode()
        + b"a" * 65536
        + b"\r\n"
        + f"400;chunk-signature={signatures[1]}\r\n".encode()
        + b"a" * 1024
        + b"\r\n"
        + f"0;chunk-signature={signatures[2]}\r\n\r\n".encode()
    )
    assert len(body) == 66824

    async def decode(data: bytes) -> bytes:
        decoder = AwsChunkedDecoder(_Bytes(data), signer, False, 66560)
        return b"".join([piece async for piece in decoder.pieces()])

    assert asyncio.run(decode(body)) == b"a" * 66560
    with pytest.raises(S3Error) as caught:
        asyncio.run(decode(body.replace(b"a\r\n400", b"b\r\n400")))
    assert caught.value.code == "SignatureDoesNotMatch"


LISTING = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult '
    b'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix></Prefix>'
    b"<Contents><Key>a&amp;&lt;\xc3\xa9</Key><Owner><ID>nebula</ID><DisplayName>nebula"
    b"</DisplayName></Owner></Contents><Contents><Key>b</Key></Contents></ListBucketResult>"
)


def rewritten(rewriter: OwnerRewriter, body: bytes, piece: int) -> bytes:
    out = [rewriter.feed(body[i : i + piece]) for i in range(0, len(body), piece)]
    return b"".join(out) + rewriter.close()


@pytest.mark.parametrize("piece", [1, 7, 1 << 20])
def test_listings_are_rewritten_whatever_the_pieces(piece: int) -> None:
    body = rewritten(OwnerRewriter(OBJECTS, "alice"), LISTING, piece)
    root = ET.fromstring(body)
    ns = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
    assert [k.text for k in root.iterfind("s3:Contents/s3:Key", ns)] == ["a&<\u00e9", "b"]
    owners = [
        (o.findtext("s3:ID", None, ns), o.findtext("s3:DisplayName", None, ns))
        for o in root.iterfind("s3:Contents/s3:Owner", ns)
    ]
    assert owners == [(owner_id("alice"), "alice")] * 2  # the missing one added
    assert b"nebula" not in body and body.count(b"xmlns=") == 1


def test_what_is_not_the_expected_listing_passes_unchanged() -> None:
    for body in (b"not xml", b"<Error><Code>X</Code></Error>", LISTING):
        assert rewritten(OwnerRewriter(PARTS, "alice"), body, 3) == body
