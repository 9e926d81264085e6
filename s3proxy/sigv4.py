"""Verifying SigV4 signatures of incoming requests.

We parse what the client claims (credential, date, signed headers, signature), build the
canonical request botocore's ``S3SigV4Auth`` would have signed (one string, proven
identical to botocore's by ``tests/s3proxy/test_sigv4_lean.py``), sign it with the key's
derived signing key (cached per secret, day and region), and compare in constant time. Chunk and trailer signatures of
``aws-chunked`` bodies chain from the request's signature (see :class:`ChainSigner`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlsplit

from botocore.auth import EMPTY_SHA256_HASH

from nebulacore.s3 import UNSIGNED_PAYLOAD, canonical_header_lines, signing_key, sigv4_signature
from s3proxy.errors import ErrorCode, S3Error

ALGORITHM = "AWS4-HMAC-SHA256"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_MODES = frozenset(
    {STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER}
)
MAX_SKEW = timedelta(minutes=15)
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
TIMESTAMP_SHAPE = re.compile(r"[0-9]{8}T[0-9]{6}Z", re.ASCII)
SIGV4_REQUIRED = (
    "The authorization mechanism you have provided is not supported. "
    "Please use AWS4-HMAC-SHA256 (Signature Version 4)."
)
HEADERS_NOT_SIGNED = "There were headers present in the request which were not signed"
AMZ_PREFIX = "x-amz-"


@lru_cache(maxsize=256)
def parse_timestamp(value: str) -> datetime:
    """``20260101T120000Z`` as an aware datetime; ValueError if it is not one. Cached:
    concurrent requests carry the same few seconds, and strptime is slow. strptime alone
    takes fields of fewer digits (``20260101T12000Z``): the shape is checked first."""
    if not TIMESTAMP_SHAPE.fullmatch(value):
        raise ValueError(f"not an ISO 8601 basic timestamp: {value!r}")
    return datetime.strptime(value, TIMESTAMP_FORMAT).replace(tzinfo=UTC)


@dataclass(frozen=True)
class Credential:
    """``AKID/20260101/us-east-1/s3/aws4_request`` split into its parts."""

    access_key_id: str
    date: str
    region: str
    service: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


@dataclass(frozen=True)
class SigV4Authorization:
    """What a request says about its own signature; nothing here is trusted yet."""

    credential: Credential
    timestamp: str
    signed_headers: tuple[str, ...]
    signature: str
    payload_hash: str
    presigned: bool
    expires: int = 0

    @property
    def signed_at(self) -> datetime:
        return parse_timestamp(self.timestamp)


def parse_credential(value: str, malformed: ErrorCode) -> Credential:
    parts = value.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not all(parts):
        raise S3Error(
            malformed,
            'The credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".',
        )
    if parts[3] != "s3":
        raise S3Error(malformed, f"The service '{parts[3]}' is wrong; expecting 's3'.")
    return Credential(parts[0], parts[1], parts[2], parts[3])


def _request_timestamp(headers: Mapping[str, str]) -> str:
    if "x-amz-date" in headers:
        value = headers["x-amz-date"]
        try:
            parse_timestamp(value)
        except ValueError:
            raise S3Error(
                "AccessDenied", "X-Amz-Date is not a valid ISO 8601 basic timestamp."
            ) from None
        return value
    if "date" in headers:
        try:
            return parsedate_to_datetime(headers["date"]).astimezone(UTC).strftime(TIMESTAMP_FORMAT)
        except (TypeError, ValueError):
            pass
    raise S3Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")


def _header_claim(authorization: str, headers: Mapping[str, str]) -> SigV4Authorization:
    fields: dict[str, str] = {}
    for part in authorization[len(ALGORITHM) :].split(","):
        name, _, value = part.strip().partition("=")
        fields[name.strip()] = value.strip()
    missing = [n for n in ("Credential", "SignedHeaders", "Signature") if not fields.get(n)]
    if missing:
        raise S3Error(
            "AuthorizationHeaderMalformed",
            f"The authorization header is malformed; missing {', '.join(missing)}.",
        )
    payload_hash = headers.get("x-amz-content-sha256")
    if not payload_hash:
        raise S3Error(
            "InvalidRequest", "Missing required header for this request: x-amz-content-sha256"
        )
    return SigV4Authorization(
        credential=parse_credential(fields["Credential"], "AuthorizationHeaderMalformed"),
        timestamp=_request_timestamp(headers),
        signed_headers=tuple(fields["SignedHeaders"].lower().split(";")),
        signature=fields["Signature"],
        payload_hash=payload_hash,
        presigned=False,
    )


def _query_claim(params: Mapping[str, str], headers: Mapping[str, str]) -> SigV4Authorization:
    needed = (
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
    )
    missing = [n for n in needed if not params.get(n)]
    if missing or params.get("X-Amz-Algorithm") != ALGORITHM:
        raise S3Error(
            "AuthorizationQueryParametersError",
            "Query-string authentication version 4 requires the X-Amz-Algorithm, "
            "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, "
            "and X-Amz-Expires parameters.",
        )
    try:
        expires = int(params["X-Amz-Expires"])
        parse_timestamp(params["X-Amz-Date"])
    except ValueError:
        raise S3Error(
            "AuthorizationQueryParametersError", "X-Amz-Date or X-Amz-Expires is not valid."
        ) from None
    if expires < 0:
        raise S3Error("AuthorizationQueryParametersError", "X-Amz-Expires must be non-negative")
    if expires == 0:  # S3 takes 1 to 604800 seconds: 0 is a malformed URL, not an expired one
        raise S3Error("AuthorizationQueryParametersError", "X-Amz-Expires must be at least 1")
    if expires > MAX_PRESIGN_SECONDS:
        raise S3Error(
            "AuthorizationQueryParametersError",
            "X-Amz-Expires must be less than a week (in seconds) that is; 604800",
        )
    return SigV4Authorization(
        credential=parse_credential(
            params["X-Amz-Credential"], "AuthorizationQueryParametersError"
        ),
        timestamp=params["X-Amz-Date"],
        signed_headers=tuple(params["X-Amz-SignedHeaders"].lower().split(";")),
        signature=params["X-Amz-Signature"],
        payload_hash=headers.get("x-amz-content-sha256", UNSIGNED_PAYLOAD),
        presigned=True,
        expires=expires,
    )


def parse_claim(
    headers: Mapping[str, str], query: Iterable[tuple[str, str]]
) -> SigV4Authorization | None:
    """The request's SigV4 claim, None when anonymous; SigV2 and garbage raise S3Error.

    ``headers`` must have lower-case names.
    """
    params = dict(query)
    authorization = headers.get("authorization", "")
    if authorization:
        if authorization.startswith(ALGORITHM + " "):
            return _header_claim(authorization, headers)
        if authorization.startswith("AWS "):
            raise S3Error("InvalidRequest", SIGV4_REQUIRED)
        raise S3Error("AuthorizationHeaderMalformed", "Unsupported Authorization type")
    if "X-Amz-Signature" in params or "X-Amz-Algorithm" in params:
        return _query_claim(params, headers)
    if "Signature" in params and "AWSAccessKeyId" in params:
        raise S3Error("InvalidRequest", SIGV4_REQUIRED)
    return None


def check_time(
    claim: SigV4Authorization, regions: Sequence[str], now: datetime | None = None
) -> None:
    """Skew (header auth), expiry (presigned), credential date and region."""
    now = now or datetime.now(UTC)
    signed_at = claim.signed_at
    if claim.credential.date != claim.timestamp[:8]:
        code: ErrorCode = (
            "AuthorizationQueryParametersError" if claim.presigned else "SignatureDoesNotMatch"
        )
        raise S3Error(code, "The credential date does not match the request date.")
    if claim.presigned:
        if signed_at - now > MAX_SKEW:
            raise S3Error("AccessDenied", "Request is not valid yet")
        if now > signed_at + timedelta(seconds=claim.expires):
            raise S3Error(
                "AccessDenied",
                "Request has expired",
                Expires=(signed_at + timedelta(seconds=claim.expires)).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
                ServerTime=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
    elif abs(now - signed_at) > MAX_SKEW:
        raise S3Error(
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is too large.",
            RequestTime=claim.timestamp,
            ServerTime=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            MaxAllowedSkewMilliseconds="900000",
        )
    if claim.credential.region not in regions:
        code = (
            "AuthorizationQueryParametersError"
            if claim.presigned
            else "AuthorizationHeaderMalformed"
        )
        raise S3Error(
            code,
            f"The authorization header is malformed; the region '{claim.credential.region}' "
            f"is wrong; expecting '{regions[0]}'",
            Region=regions[0],
        )


@lru_cache(maxsize=1024)
def _signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    """Derived once per key, day and region: four HMACs saved on every request."""
    return signing_key(secret, day, region, service)


@dataclass(frozen=True)
class ChainSigner:
    """Signs chunk and trailer strings of one request, chained from its seed signature."""

    key: bytes = field(repr=False)
    claim: SigV4Authorization

    @property
    def seed_signature(self) -> str:
        return self.claim.signature

    def _sign(self, string_to_sign: str) -> str:
        return hmac.digest(self.key, string_to_sign.encode(), "sha256").hex()

    def chunk_signature(self, previous: str, chunk_sha256: str) -> str:
        return self._sign(
            "\n".join(
                (
                    "AWS4-HMAC-SHA256-PAYLOAD",
                    self.claim.timestamp,
                    self.claim.credential.scope,
                    previous,
                    EMPTY_SHA256_HASH,
                    chunk_sha256,
                )
            )
        )

    def trailer_signature(self, previous: str, trailer_text: bytes) -> str:
        return self._sign(
            "\n".join(
                (
                    "AWS4-HMAC-SHA256-TRAILER",
                    self.claim.timestamp,
                    self.claim.credential.scope,
                    previous,
                    hashlib.sha256(trailer_text).hexdigest(),
                )
            )
        )


def same_signature(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


def unsigned_headers(
    claim: SigV4Authorization, headers: Mapping[str, str], query: Iterable[tuple[str, str]]
) -> list[str]:
    """Headers the signature must cover but does not: ``host`` and every ``x-amz-*``.

    ``headers`` has lower-case names. A presigned URL may leave an ``x-amz-*`` header
    out of ``X-Amz-SignedHeaders`` when its query (which is signed) carries the same value.
    """
    signed = set(claim.signed_headers)
    carried = {name.lower(): value for name, value in query} if claim.presigned else {}
    missing = [] if "host" in signed else ["host"]
    for name, value in headers.items():
        if name.startswith(AMZ_PREFIX) and name not in signed and carried.get(name) != value:
            missing.append(name)
    return sorted(missing)


def verified_headers(claim: SigV4Authorization, headers: Mapping[str, str]) -> dict[str, str]:
    """The headers the signature vouches for, once :func:`verify` passed: the signed ones
    and every ``x-amz-*`` (verify refused any it does not cover)."""
    signed = set(claim.signed_headers)
    return {
        name: value
        for name, value in headers.items()
        if name in signed or name.startswith(AMZ_PREFIX)
    }


def _url_path(canonical_path: str) -> str:
    """The path botocore signs (``urlsplit(url).path``); a percent-encoded path without
    a ``?``, ``#`` or whitespace, starting at ``/``, is that already."""
    if canonical_path.startswith("/") and _UNSPLIT.isdisjoint(canonical_path):
        return canonical_path
    return urlsplit("http://s3" + canonical_path).path


_UNSPLIT = frozenset("?#\t\r\n")


def canonical_request(
    claim: SigV4Authorization,
    method: str,
    canonical_path: str,
    query: Sequence[tuple[str, str]],
    headers: Any,
) -> str:
    """The canonical request the client must have signed, as botocore's ``S3SigV4Auth``
    builds it over exactly the headers and payload hash the client claims
    (``tests/s3proxy/test_sigv4_lean.py`` proves the two identical).

    A name listed twice in SignedHeaders repeats its values, as botocore's e-mail headers
    do; a listed name the request lacks drops out, so its signature cannot match."""
    listed = Counter(claim.signed_headers)
    values: dict[str, list[str]] = {}
    for name, times in listed.items():
        found = headers.getall(name, ())
        if found:
            values[name] = list(found) * (times * times)
    canonical_headers, signed_names = canonical_header_lines(list(values.items()))
    if "x-amz-content-sha256" in values:  # botocore reads the signed header's first value
        payload_hash = values["x-amz-content-sha256"][0]
    else:
        payload_hash = claim.payload_hash
    pairs = sorted(
        (quote(k, safe="-_.~"), quote(v, safe="-_.~"))
        for k, v in query
        if not (claim.presigned and k == "X-Amz-Signature")
    )
    return "\n".join(
        (
            method.upper(),
            _url_path(canonical_path),
            "&".join(f"{k}={v}" for k, v in pairs),
            canonical_headers + "\n",
            signed_names,
            payload_hash,
        )
    )


def verify(
    claim: SigV4Authorization,
    secret: str,
    method: str,
    canonical_path: str,
    query: Iterable[tuple[str, str]],
    headers: Any,
    lower: Mapping[str, str] | None = None,
) -> ChainSigner:
    """Raise ``SignatureDoesNotMatch`` unless the claim's signature is right for ``secret``,
    and ``AccessDenied`` when it leaves ``host`` or an ``x-amz-*`` header uncovered (AWS's
    rule: an unsigned header could otherwise change what the request does).

    ``headers`` is a multi-dict (``getall``) of the request's headers; ``lower``, when the
    caller has it, the same with lower-case names and repeated values joined by ``,``.
    """
    query = list(query)
    if lower is None:
        lower = {name.lower(): ",".join(headers.getall(name)) for name in headers}
    missing = unsigned_headers(claim, lower, query)
    if missing:
        raise S3Error("AccessDenied", HEADERS_NOT_SIGNED, HeadersNotSigned=", ".join(missing))
    timestamp = claim.timestamp
    region = claim.credential.region
    key = _signing_key(secret, timestamp[:8], region, "s3")
    scope = f"{timestamp[:8]}/{region}/s3/aws4_request"
    canonical = canonical_request(claim, method, canonical_path, query, headers)
    expected = sigv4_signature(key, timestamp, scope, canonical)
    if not same_signature(expected, claim.signature):
        raise S3Error(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
        )
    return ChainSigner(key, claim)
