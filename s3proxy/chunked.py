"""Decoding ``aws-chunked`` bodies as a stream, verifying chunk and trailer signatures.

Wire format (``STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`` and
``STREAMING-UNSIGNED-PAYLOAD-TRAILER``)::

    <hex size>[;chunk-signature=<sig>]\\r\\n<data>\\r\\n ... 0[;chunk-signature=<sig>]\\r\\n
    [x-amz-checksum-crc32:<b64>\\r\\n [x-amz-trailer-signature:<sig>\\r\\n]]\\r\\n

Data is yielded in pieces of at most :data:`PIECE` bytes whatever the chunk size, so
memory stays flat; a chunk's signature is checked when its last byte has been read.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from s3proxy.errors import S3Error
from s3proxy.sigv4 import ChainSigner, same_signature

PIECE = 256 * 1024
MIN_CHUNK = 8192  # S3: only the last chunk may be smaller
TRAILER_SIGNATURE = "x-amz-trailer-signature"


class ByteSource(Protocol):
    """What we need of aiohttp's ``StreamReader``."""

    async def readline(self) -> bytes: ...

    async def read(self, n: int = -1) -> bytes: ...


def incomplete_body() -> S3Error:
    """The body ended before its declared length (S3's wording)."""
    return S3Error(
        "IncompleteBody",
        "You did not provide the number of bytes specified by the Content-Length HTTP header",
    )


def _malformed(what: str) -> S3Error:
    return S3Error("InvalidRequest", f"Malformed aws-chunked body: {what}")


@dataclass
class AwsChunkedDecoder:
    source: ByteSource
    signer: ChainSigner | None  # None for STREAMING-UNSIGNED-PAYLOAD-TRAILER
    has_trailer: bool
    decoded_length: int | None
    trailers: dict[str, str] = field(default_factory=dict)

    async def _line(self) -> str:
        try:
            line = await self.source.readline()
        except ValueError:  # longer than the reader's limit: not a chunk header
            raise _malformed("line too long") from None
        if not line.endswith(b"\n"):
            raise incomplete_body()
        return line.rstrip(b"\r\n").decode("latin-1")

    async def _chunk_header(self) -> tuple[int, str | None]:
        size_text, _, extension = (await self._line()).partition(";")
        try:
            size = int(size_text.strip(), 16)
        except ValueError:
            raise _malformed(f"chunk size {size_text[:20]!r}") from None
        name, _, value = extension.partition("=")
        signature = value.strip() if name.strip() == "chunk-signature" else None
        if self.signer is not None and not signature:
            raise S3Error(
                "SignatureDoesNotMatch", "A chunk of a signed body has no chunk-signature."
            )
        return size, signature

    async def _chunk_end(self) -> None:
        if await self._line() != "":
            raise S3Error("InvalidChunkSizeError", "A chunk is longer than its declared size.")

    def _check_chunk(self, previous: str, signature: str | None, sha256_hex: str) -> str:
        assert self.signer is not None and signature is not None
        expected = self.signer.chunk_signature(previous, sha256_hex)
        if not same_signature(expected, signature):
            raise S3Error(
                "SignatureDoesNotMatch",
                "The chunk signature we calculated does not match the signature you provided.",
            )
        return signature

    async def _read_trailers(self, previous: str) -> None:
        # Blank lines are skipped until the trailer is complete: minio-go writes one
        # between the checksum and the signature, the AWS SDKs only at the very end.
        canonical = b""
        trailer_signature = None
        while True:
            complete = trailer_signature is not None if self.signer else True
            try:
                line = await self._line()
            except S3Error:
                if complete and (self.trailers or trailer_signature):  # EOF after the trailer
                    break
                raise
            if line == "":
                if complete:
                    break
                continue
            name, sep, value = line.partition(":")
            if not sep:
                raise S3Error(
                    "MalformedTrailerError",
                    "The request contained trailing data that was not well-formed",
                )
            name, value = name.strip().lower(), value.strip()
            if name == TRAILER_SIGNATURE:
                trailer_signature = value
            else:
                self.trailers[name] = value
                canonical += f"{name}:{value}\n".encode()
        if self.signer is not None:
            assert trailer_signature is not None
            expected = self.signer.trailer_signature(previous, canonical)
            if not same_signature(expected, trailer_signature):
                raise S3Error(
                    "SignatureDoesNotMatch",
                    "The trailer signature we calculated does not match the signature you provided.",
                )

    async def pieces(self) -> AsyncIterator[bytes]:
        """The decoded payload; raises S3Error on the first bad chunk, signature or length."""
        previous = self.signer.seed_signature if self.signer else ""
        total, short_chunk_seen = 0, False
        while True:
            size, signature = await self._chunk_header()
            if self.signer is not None and size and short_chunk_seen:
                raise S3Error(
                    "InvalidChunkSizeError",
                    "Only the last chunk is allowed to have a size less than 8192 bytes",
                )
            short_chunk_seen = size < MIN_CHUNK
            total += size
            if self.decoded_length is not None and total > self.decoded_length:
                raise incomplete_body()  # before any byte of this chunk is passed on
            chunk_hash = hashlib.sha256()
            remaining = size
            while remaining:
                piece = await self.source.read(min(remaining, PIECE))
                if not piece:
                    raise incomplete_body()
                remaining -= len(piece)
                if self.signer is not None:
                    chunk_hash.update(piece)
                yield piece
            if self.signer is not None:
                previous = self._check_chunk(previous, signature, chunk_hash.hexdigest())
            if size == 0:
                break
            await self._chunk_end()
        if self.has_trailer:
            await self._read_trailers(previous)
        else:
            await self._chunk_end()
        if self.decoded_length is not None and total != self.decoded_length:
            raise incomplete_body()
        if await self.source.read(1):  # the client's body must end with the encoding
            raise _malformed("data after the final chunk")
