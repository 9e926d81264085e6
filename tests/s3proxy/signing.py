"""Raw S3 requests signed with botocore, for the edge cases boto3 will not produce."""

from __future__ import annotations

import base64
import hashlib
import hmac as _hmac
import http.client
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from unittest.mock import patch
from urllib.parse import urlsplit

import boto3
import botocore.auth
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.httpchecksum import (
    CrtCrc32cChecksum,
    CrtCrc32Checksum,
    CrtCrc64NvmeChecksum,
    Sha1Checksum,
    Sha256Checksum,
)

from catalog.keys import KeyPair


def s3_client(endpoint: str, key: KeyPair, **config: Any) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key.access_key_id,
        aws_secret_access_key=key.secret,
        region_name=config.pop("region_name", "us-east-1"),
        config=Config(
            s3={"addressing_style": config.pop("addressing_style", "path")},
            retries={"max_attempts": 1},
            **config,
        ),
    )


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def code(self) -> str | None:
        if not self.body:
            return None
        node = ET.fromstring(self.body).find("Code")
        return None if node is None else node.text

    def xml(self, tag: str) -> str | None:
        node = ET.fromstring(self.body).find(tag)
        return None if node is None else node.text


class _FixedTimeAuth(S3SigV4Auth):
    """botocore's signer with a chosen clock (skew tests), a chosen payload hash and
    headers it sends but leaves out of the signature (the attacks on unsigned headers)."""

    def __init__(
        self,
        credentials: Credentials,
        region: str,
        when: datetime | None,
        payload: str | None,
        leave_unsigned: Iterable[str] = (),
    ):
        super().__init__(credentials, "s3", region)
        self._when = when
        self._payload = payload
        self._leave_unsigned = {name.lower() for name in leave_unsigned}

    def payload(self, request: AWSRequest) -> str:
        return self._payload if self._payload is not None else super().payload(request)

    def headers_to_sign(self, request: AWSRequest) -> Any:
        signed = super().headers_to_sign(request)
        for name in self._leave_unsigned:
            del signed[name]
        return signed

    def add_auth(self, request: AWSRequest) -> None:
        if self._when is None:
            return super().add_auth(request)
        with signing_clock(self._when):
            super().add_auth(request)


def signing_clock(when: datetime) -> AbstractContextManager[object]:
    """botocore reads the signing time from ``botocore.auth.get_current_datetime``; this
    freezes it at ``when`` for the block (the stubs do not declare that function)."""
    return patch.object(botocore.auth, "get_current_datetime", lambda: when)


def signed_headers(
    method: str,
    url: str,
    key: KeyPair,
    headers: dict[str, str] | None = None,
    payload: str | None = None,
    body: bytes = b"",
    when: datetime | None = None,
    region: str = "us-east-1",
    leave_unsigned: Iterable[str] = (),
) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, headers=dict(headers or {}), data=body)
    auth = _FixedTimeAuth(
        Credentials(key.access_key_id, key.secret), region, when, payload, leave_unsigned
    )
    auth.add_auth(request)
    return dict(request.headers.items())


def presign(
    method: str, url: str, key: KeyPair, expires: int = 3600, when: datetime | None = None
) -> str:
    request = AWSRequest(method=method, url=url)
    auth = S3SigV4QueryAuth(
        Credentials(key.access_key_id, key.secret), "s3", "us-east-1", expires=expires
    )
    if when is None:
        auth.add_auth(request)
    else:
        with signing_clock(when):
            auth.add_auth(request)
    return str(request.url)


def send(
    method: str,
    url: str,
    headers: Mapping[str, str],  # a multidict sends a repeated header as separate lines
    body: bytes | Iterable[bytes] = b"",
    timeout: float = 60,
) -> Answer:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    names = {name.lower() for name in headers}
    if "host" not in names:
        conn.putheader("Host", parts.netloc)
    for name, value in headers.items():
        conn.putheader(name, value)
    if isinstance(body, bytes | bytearray):
        if "content-length" not in names and (body or method in ("PUT", "POST")):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(bytes(body) if body else None)
    else:
        conn.endheaders()
        for piece in body:
            conn.send(piece)
    response = conn.getresponse()
    answer = Answer(
        response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    )
    conn.close()
    return answer


def now() -> datetime:
    return datetime.now(UTC)


# ----- aws-chunked bodies, built the way the AWS documentation describes them ---------------

CHECKSUMS = {
    "crc32": CrtCrc32Checksum,
    "crc32c": CrtCrc32cChecksum,
    "crc64nvme": CrtCrc64NvmeChecksum,
    "sha1": Sha1Checksum,
    "sha256": Sha256Checksum,
}
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def checksum_b64(algorithm: str, data: bytes) -> str:
    digest = CHECKSUMS[algorithm]()
    digest.update(data)
    return digest.b64digest()


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def _signing_key(secret: str, date: str, region: str = "us-east-1") -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, "s3", "aws4_request"):
        key = _hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _hmac_hex(key: bytes, text: str) -> str:
    return _hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def seed_request(
    url: str, key: KeyPair, mode: str, data: bytes, extra: dict[str, str] | None = None
) -> tuple[dict[str, str], str]:
    """Headers of an aws-chunked PUT signed by botocore, and the seed signature."""
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
        **(extra or {}),
    }
    signed = signed_headers("PUT", url, key, headers, payload=mode)
    seed = signed["Authorization"].rsplit("Signature=", 1)[1]
    return signed, seed


def signed_chunks(
    data: bytes,
    key: KeyPair,
    signed: dict[str, str],
    seed: str,
    chunk_size: int = 65536,
    trailer: tuple[str, str] | None = None,
    tamper_last: bool = False,
    bad_trailer_signature: bool = False,
    minio_layout: bool = False,
) -> bytes:
    """A STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER] body with each chunk signed."""
    stamp = signed["X-Amz-Date"]
    scope = f"{stamp[:8]}/us-east-1/s3/aws4_request"
    signing_key = _signing_key(key.secret, stamp[:8])
    pieces = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)] + [b""]
    out, previous = b"", seed
    for index, piece in enumerate(pieces):
        sts = "\n".join(
            (
                "AWS4-HMAC-SHA256-PAYLOAD",
                stamp,
                scope,
                previous,
                EMPTY_SHA256,
                hashlib.sha256(piece).hexdigest(),
            )
        )
        previous = _hmac_hex(signing_key, sts)
        sent = piece
        if tamper_last and index == len(pieces) - 2:
            sent = bytes([piece[0] ^ 1]) + piece[1:]
        out += f"{len(piece):x};chunk-signature={previous}\r\n".encode() + sent
        if piece or trailer is None:
            out += b"\r\n"
    if trailer is not None:
        name, value = trailer
        text = f"{name}:{value}\n"
        sts = "\n".join(
            (
                "AWS4-HMAC-SHA256-TRAILER",
                stamp,
                scope,
                previous,
                hashlib.sha256(text.encode()).hexdigest(),
            )
        )
        signature = _hmac_hex(signing_key, sts)
        if bad_trailer_signature:
            signature = "0" * 64
        # minio-go ends the checksum line with LF and adds a blank line before the signature.
        separator = "\n\r\n" if minio_layout else "\r\n"
        out += f"{name}:{value}{separator}x-amz-trailer-signature:{signature}\r\n\r\n".encode()
    return out


def unsigned_chunks(data: bytes, trailer: tuple[str, str], chunk_size: int = 65536) -> bytes:
    """A STREAMING-UNSIGNED-PAYLOAD-TRAILER body, as botocore's AwsChunkedWrapper writes it."""
    out = b""
    for i in range(0, len(data), chunk_size):
        piece = data[i : i + chunk_size]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return out + f"0\r\n{trailer[0]}:{trailer[1]}\r\n\r\n".encode()
