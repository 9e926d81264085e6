"""What a body must hash to: the signed SHA-256, Content-MD5, ``x-amz-checksum-*`` values.

The checksum algorithms are botocore's (CRC32C and CRC64NVME through ``awscrt``), so the
proxy computes exactly what the SDKs compute.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

from botocore.httpchecksum import (
    BaseChecksum,
    CrtCrc32cChecksum,
    CrtCrc32Checksum,
    CrtCrc64NvmeChecksum,
    Sha1Checksum,
    Sha256Checksum,
)

from s3proxy.errors import S3Error

ALGORITHMS: dict[str, type[BaseChecksum]] = {
    "crc32": CrtCrc32Checksum,
    "crc32c": CrtCrc32cChecksum,
    "crc64nvme": CrtCrc64NvmeChecksum,
    "sha1": Sha1Checksum,
    "sha256": Sha256Checksum,
}
CHECKSUM_PREFIX = "x-amz-checksum-"


def checksum_algorithm(header_name: str) -> str | None:
    """``x-amz-checksum-crc32`` -> ``crc32``; None for anything else."""
    name = header_name.lower()
    if name.startswith(CHECKSUM_PREFIX) and name[len(CHECKSUM_PREFIX) :] in ALGORITHMS:
        return name[len(CHECKSUM_PREFIX) :]
    return None


def _same(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def _md5_value(header: str) -> bytes:
    """The 16 bytes a ``Content-MD5`` header claims; S3's ``InvalidDigest`` when it is
    empty, not base64, or not the size of an MD5 (a wrong digest is ``BadDigest``)."""
    try:
        claimed = base64.b64decode(header, validate=True)
    except (binascii.Error, ValueError):
        claimed = b""
    if len(claimed) != hashlib.md5(usedforsecurity=False).digest_size:
        raise S3Error("InvalidDigest", "The Content-MD5 you specified was invalid.")
    return claimed


@dataclass
class _Expected:
    """One digest we compute while the body passes, and the value it must have."""

    name: str
    digest: BaseChecksum
    expected_b64: str | None  # None: known only from the trailer


@dataclass
class BodyDigests:
    """Hashes the body as it streams and checks every claimed digest at the end."""

    sha256_hex: str | None = None
    md5_b64: str | None = None
    checksums: list[_Expected] = field(default_factory=list)
    _sha256: hashlib._Hash | None = None
    _md5: hashlib._Hash | None = None
    size: int = 0

    @classmethod
    def from_request(
        cls,
        headers: Mapping[str, str],
        payload_hash: str,
        trailer: str | None,
        header_checksums: bool = True,
    ) -> BodyDigests:
        """``headers`` with lower-case names; ``trailer``: the ``x-amz-trailer`` value.

        ``header_checksums=False`` when ``x-amz-checksum-*`` headers describe the object
        rather than this body (CompleteMultipartUpload): the backend checks those.
        """
        digests = cls()
        if len(payload_hash) == 64 and all(c in "0123456789abcdef" for c in payload_hash.lower()):
            digests.sha256_hex = payload_hash.lower()
            digests._sha256 = hashlib.sha256()
        if "content-md5" in headers:
            digests.md5_b64 = headers["content-md5"]
            digests._md5 = hashlib.md5(usedforsecurity=False)
        for name, value in headers.items():
            algorithm = checksum_algorithm(name)
            if algorithm and header_checksums:
                digests.checksums.append(_Expected(algorithm, ALGORITHMS[algorithm](), value))
        if trailer:
            algorithm = checksum_algorithm(trailer.strip())
            if algorithm is None:
                raise S3Error("InvalidRequest", f"Unsupported x-amz-trailer: {trailer}")
            digests.checksums.append(_Expected(algorithm, ALGORITHMS[algorithm](), None))
        return digests

    def update(self, data: bytes) -> None:
        self.size += len(data)
        if self._sha256 is not None:
            self._sha256.update(data)
        if self._md5 is not None:
            self._md5.update(data)
        for expected in self.checksums:
            expected.digest.update(data)

    def verify(self, trailers: Mapping[str, str] | None = None) -> dict[str, str]:
        """Raise the S3 error of the first mismatch; return the verified checksum headers."""
        if self._sha256 is not None and self.sha256_hex is not None:
            computed = self._sha256.hexdigest()
            if not _same(computed.encode(), self.sha256_hex.encode()):
                raise S3Error(
                    "XAmzContentSHA256Mismatch",
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                    ClientComputedContentSHA256=self.sha256_hex,
                    S3ComputedContentSHA256=computed,
                )
        if self._md5 is not None and self.md5_b64 is not None:
            claimed = _md5_value(self.md5_b64)
            if not _same(self._md5.digest(), claimed):
                raise S3Error(
                    "BadDigest", "The Content-MD5 you specified did not match what we received."
                )
        verified: dict[str, str] = {}
        for expected in self.checksums:
            header = CHECKSUM_PREFIX + expected.name
            claimed_b64 = expected.expected_b64
            if claimed_b64 is None:
                claimed_b64 = (trailers or {}).get(header)
                if claimed_b64 is None:
                    raise S3Error(
                        "MalformedTrailerError",
                        f"The request declared x-amz-trailer {header} but did not send it.",
                    )
            computed = expected.digest.b64digest()
            if not _same(computed.encode(), claimed_b64.strip().encode("utf-8", "replace")):
                raise S3Error(
                    "BadDigest",
                    f"The {expected.name.upper()} you specified did not match the calculated checksum.",
                )
            verified[header] = computed
        return verified
