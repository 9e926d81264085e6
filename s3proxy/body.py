"""The client's body on its way to the backend, verified before its last bytes leave.

Every payload mode becomes a stream of plain payload bytes plus a :class:`BodyDigests`.
:meth:`UploadBody.stream` forwards all but the last piece as they arrive and releases
the last piece only once every chunk signature, hash and checksum has been verified, so
a body that fails verification never reaches the backend complete: the upstream request
is aborted and the backend discards it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

from aiohttp import StreamReader

from nebulacore.s3 import UNSIGNED_PAYLOAD
from s3proxy.checksums import BodyDigests
from s3proxy.chunked import PIECE, AwsChunkedDecoder, incomplete_body
from s3proxy.errors import S3Error
from s3proxy.sigv4 import (
    STREAMING_MODES,
    STREAMING_SIGNED,
    STREAMING_UNSIGNED_TRAILER,
    ChainSigner,
)

log = logging.getLogger(__name__)


@dataclass
class UploadBody:
    pieces: AsyncIterator[bytes]
    digests: BodyDigests
    # Bytes the backend will receive (None: unknown, sent chunked).
    length: int | None
    # What the backend is told the payload hashes to (it verifies it again).
    payload_hash: str
    trailers: Callable[[], Mapping[str, str]] = dict
    error: S3Error | None = None
    # A plain (not aws-chunked) body's reader: a small one is read in one call.
    plain: StreamReader | None = None

    async def stream(self) -> AsyncIterator[bytes]:
        """The payload for the backend, holding back its last piece until all is verified.

        The backend is told :attr:`length` bytes, so it sees a complete body only once
        the held piece is released; any failure before raises instead, which makes
        aiohttp drop the upstream connection and the backend discard the partial body.
        """
        held = b""
        try:
            async for piece in self.pieces:
                if not piece:
                    continue
                self.digests.update(piece)
                if self.length is not None and self.digests.size > self.length:
                    raise incomplete_body()  # never let the backend see length bytes early
                if held:
                    yield held
                held = piece
            self.digests.verify(self.trailers())
            if self.length is not None and self.digests.size != self.length:
                raise incomplete_body()
        except S3Error as exc:
            self.error = exc
            raise
        except Exception as exc:  # the client went away or broke the framing
            log.info("upload body ended early: %s", exc)
            self.error = incomplete_body()
            raise
        if held:
            yield held

    async def read_whole(self) -> bytes:
        """A small body read whole, every check passed before any of it is sent (one
        bytes payload costs aiohttp far less per request than an async iterator)."""
        if self.plain is not None and self.length is not None:
            return await self._read_plain(self.plain, self.length)
        try:
            return b"".join([piece async for piece in self.stream()])
        except S3Error:
            raise
        except Exception as exc:  # stream() recorded what the client is told
            assert self.error is not None
            raise self.error from exc

    async def _read_plain(self, reader: StreamReader, length: int) -> bytes:
        """:meth:`read_whole` of a plain body: the same checks as :meth:`stream`'s, without
        its three async iterators per request."""
        try:
            data = await reader.readexactly(length)
            self.digests.update(data)
            self.digests.verify(self.trailers())
            return data
        except S3Error as exc:
            self.error = exc
            raise
        except Exception as exc:  # the client went away, or sent less than it said
            log.info("upload body ended early: %s", exc)
            self.error = incomplete_body()
            raise self.error from exc

    async def verify_whole(self) -> None:
        """For an empty forwarded body: check everything before anything is sent."""
        async for _ in self.stream():
            raise S3Error("IncompleteBody", "An empty body carried data")


async def _plain_pieces(reader: StreamReader) -> AsyncIterator[bytes]:
    async for piece in reader.iter_chunked(PIECE):
        yield piece


def _decoded_length(headers: Mapping[str, str]) -> int:
    value = headers.get("x-amz-decoded-content-length")
    if value is None:
        raise S3Error(
            "MissingContentLength",
            "You must provide x-amz-decoded-content-length with an aws-chunked body.",
        )
    if not (value.isascii() and value.isdigit()):  # int() takes "-5", "+5", "1_0", other digits
        raise S3Error(
            "InvalidArgument",
            "x-amz-decoded-content-length must be a non-negative decimal integer.",
            ArgumentName="x-amz-decoded-content-length",
            ArgumentValue=value,
        )
    return int(value)


def upload_body(
    reader: StreamReader,
    headers: Mapping[str, str],
    content_length: int | None,
    payload_hash: str,
    signer: ChainSigner | None,
    header_checksums: bool = True,
) -> UploadBody:
    """The verifying stream for the request's payload mode (``headers``: lower-case names).

    ``header_checksums``: whether ``x-amz-checksum-*`` headers describe this body (see
    :meth:`BodyDigests.from_request`)."""
    trailer = headers.get("x-amz-trailer")
    if payload_hash in STREAMING_MODES:
        has_trailer = payload_hash != STREAMING_SIGNED
        decoder = AwsChunkedDecoder(
            reader,
            None if payload_hash == STREAMING_UNSIGNED_TRAILER else signer,
            has_trailer,
            _decoded_length(headers),
        )
        digests = BodyDigests.from_request(
            headers, UNSIGNED_PAYLOAD, trailer if has_trailer else None, header_checksums
        )
        return UploadBody(
            decoder.pieces(),
            digests,
            decoder.decoded_length,
            UNSIGNED_PAYLOAD,
            lambda: decoder.trailers,
        )
    digests = BodyDigests.from_request(headers, payload_hash, None, header_checksums)
    if payload_hash != UNSIGNED_PAYLOAD and digests.sha256_hex is None:
        raise S3Error(
            "InvalidArgument",
            "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-… or a SHA-256 hex value",
        )
    return UploadBody(_plain_pieces(reader), digests, content_length, payload_hash, plain=reader)
