"""Verifying AWS Signature Version 2 with botocore's own string-to-sign builder.

S3's SigV2 ("Signing and Authenticating REST Requests"): ``Authorization: AWS
AKID:signature`` or the ``AWSAccessKeyId``, ``Expires`` and ``Signature`` query
parameters; the signature is a base64 HMAC-SHA1 of the verb, ``Content-MD5``,
``Content-Type``, the date (empty when ``x-amz-date`` is sent; ``Expires`` for a presigned
URL), every ``x-amz-*`` header and the resource (``/bucket/key`` in either addressing
style, plus the sub-resources). botocore's :class:`~botocore.auth.HmacV1Auth`, which
signs for aws CLI v1 and boto3, builds that string here from the request as received.

SigV2 signs no ``host`` and only the sub-resources of the query: every other query
parameter must be one that merely pages a listing, or the request is refused, so what the
request does is still decided from signed content only. (Header values folded over
lines, which the specification unfolds, never get here: aiohttp answers them 400.)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import SplitResult, unquote

from botocore.auth import HmacV1Auth
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

from nebulacore.s3 import UNSIGNED_PAYLOAD
from s3proxy.addressing import Target
from s3proxy.errors import S3Error
from s3proxy.sigv4 import (
    AMZ_PREFIX,
    MAX_PRESIGN_SECONDS,
    MAX_SKEW,
    STREAMING_MODES,
    TIMESTAMP_FORMAT,
    same_signature,
)

HEADER_PREFIX = "AWS "
QUERY_PARAMS = ("AWSAccessKeyId", "Expires", "Signature")
# The sub-resources botocore signs: the S3 specification's list and s3cmd's, and more.
SUBRESOURCES = frozenset(HmacV1Auth.QSAOfInterest)
# Parameters S3 reads that only page or shape a listing (or name the operation, botocore's
# ``x-id``): SigV2 clients send them unsigned, as S3 allows. Any other unsigned one, a
# sub-resource SigV2 does not sign (``retention``, ``legal-hold``…) above all, is refused.
UNSIGNED_ALLOWED = frozenset(
    {
        "continuation-token",
        "delimiter",
        "encoding-type",
        "fetch-owner",
        "key-marker",
        "list-type",
        "marker",
        "max-keys",
        "max-parts",
        "max-uploads",
        "part-number-marker",
        "prefix",
        "start-after",
        "upload-id-marker",
        "version-id-marker",
        "x-id",
    }
)
# Headers a presigned URL's query repeats (botocore's HmacV1QueryAuth puts them there);
# they are accepted when the request sends the same, signed, header.
QUERY_COPIED_HEADERS = ("content-md5", "content-type")
QUERY_REQUIRED = (
    "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters"
)
DATE_REQUIRED = "AWS authentication requires a valid Date or x-amz-date header"
PARAMETERS_NOT_SIGNED = "There were query parameters present in the request which were not signed"
DISABLED = (
    "AWS Signature Version 2 is disabled on this endpoint by its operator "
    "(NEBULA_ALLOW_SIGV2=0). Please use AWS4-HMAC-SHA256 (Signature Version 4)."
)


def sign_v2(secret: str, string_to_sign: str) -> str:
    """The SigV2 signature: base64 of the HMAC-SHA1 of ``string_to_sign`` under ``secret``."""
    digest = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def is_sigv2(headers: Mapping[str, str], params: Mapping[str, str]) -> bool:
    """Whether the request claims SigV2 (``headers`` with lower-case names)."""
    if headers.get("authorization", "").startswith(HEADER_PREFIX):
        return True
    return "AWSAccessKeyId" in params or "Signature" in params


class _Canonical(HmacV1Auth):
    """botocore's SigV2 string-to-sign builder with the date the request carries, not now."""

    def __init__(self, date: str) -> None:
        super().__init__(Credentials("", ""))  # building the string needs no key
        self._date = date

    def _get_date(self) -> str:
        return self._date


def string_to_sign(method: str, raw_path: str, target: Target, headers: Any, date: str) -> str:
    """The SigV2 StringToSign of a request as received: ``raw_path`` is its request
    target as sent (path and query, percent-encoded as the client encoded them, which is
    what it signed), ``headers`` a multi-dict (``getall``), ``date`` the Date line."""
    path, _, query = raw_path.partition("?")
    # Virtual-hosted style: the bucket from the Host header leads the signed resource.
    resource = f"/{target.bucket}{path}" if target.virtual_hosted else path
    request_headers = HTTPHeaders()
    for name, value in headers.items():  # a repeated header adds a value (botocore joins them)
        request_headers[name] = value
    split = SplitResult("http", "s3", path, query, "")
    build = _Canonical(date).canonical_string
    # HTTPHeaders is what botocore passes here itself; the stubs say Mapping.
    text = build(method, split, request_headers, auth_path=resource)  # type: ignore[arg-type]
    return str(text)


def _header_time(headers: Mapping[str, str]) -> tuple[str, datetime]:
    """The Date line of the string to sign and the request time: ``x-amz-date`` (then the
    Date line is empty) or ``Date``, RFC 1123 or ISO 8601 basic."""
    name = "x-amz-date" if "x-amz-date" in headers else "date"
    value = headers.get(name, "")
    try:
        when = datetime.strptime(value, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            raise S3Error("AccessDenied", DATE_REQUIRED) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return ("" if name == "x-amz-date" else value), when


def _payload_hash(headers: Mapping[str, str]) -> str:
    """What the body must hash to: a (signed) ``x-amz-content-sha256``, or nothing."""
    value = headers.get("x-amz-content-sha256", UNSIGNED_PAYLOAD)
    if value in STREAMING_MODES:
        raise S3Error(
            "InvalidRequest",
            "aws-chunked payloads (x-amz-content-sha256: STREAMING-…) need Signature Version 4.",
        )
    return value


@dataclass(frozen=True)
class ClaimV2:
    """What a SigV2 request says about its signature; nothing here is trusted yet."""

    access_key_id: str
    signature: str
    presigned: bool
    # The string to sign's date line: the Date header, "" beside x-amz-date, or Expires.
    date: str
    # When it was signed (header auth) or when it expires (query auth).
    time: datetime
    payload_hash: str

    def check_time(self, regions: Sequence[str], now: datetime | None = None) -> None:
        """Expiry (presigned, at most a week ahead) or skew (header auth); SigV2 has no region."""
        now = now or datetime.now(UTC)
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        if self.presigned:
            if now > self.time:
                raise S3Error(
                    "AccessDenied",
                    "Request has expired",
                    Expires=self.time.strftime(stamp),
                    ServerTime=now.strftime(stamp),
                )
            if self.time - now > timedelta(seconds=MAX_PRESIGN_SECONDS) + MAX_SKEW:
                raise S3Error(
                    "AuthorizationQueryParametersError",
                    "Expires must be less than a week (604800 seconds) from now.",
                )
        elif abs(now - self.time) > MAX_SKEW:
            raise S3Error(
                "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.",
                RequestTime=self.time.strftime(stamp),
                ServerTime=now.strftime(stamp),
                MaxAllowedSkewMilliseconds="900000",
            )

    def verify(
        self,
        secret: str,
        method: str,
        target: Target,
        raw_path: str,
        headers: Any,
        lower: Mapping[str, str] | None = None,
    ) -> None:
        """Raise ``SignatureDoesNotMatch`` (with S3's ``StringToSign``) unless the signature
        is right for ``secret``, then ``AccessDenied`` for an unsigned query parameter that
        could change the request. ``headers`` is the request's multi-dict."""
        text = string_to_sign(method, raw_path, target, headers, self.date)
        if not same_signature(sign_v2(secret, text), self.signature):
            raise S3Error(
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. "
                "Check your key and signing method.",
                AWSAccessKeyId=self.access_key_id,
                StringToSign=text,
                SignatureProvided=self.signature,
                StringToSignBytes=" ".join(f"{byte:02x}" for byte in text.encode()),
            )
        present = {name.lower(): ",".join(headers.getall(name)) for name in headers}
        unsigned = self._unsigned_parameters(raw_path.partition("?")[2], present)
        if unsigned:
            raise S3Error(
                "AccessDenied", PARAMETERS_NOT_SIGNED, ParametersNotSigned=", ".join(unsigned)
            )

    def _unsigned_parameters(self, raw_query: str, headers: Mapping[str, str]) -> list[str]:
        """Query parameters the signature does not cover and that could change the request.

        A name counts as a signed sub-resource only as sent (``%61cl`` is not ``acl`` to the
        string to sign, but would be to the backend)."""
        unsigned = []
        for part in raw_query.split("&"):
            raw_name, _, raw_value = part.partition("=")
            name = unquote(raw_name)
            if not part or raw_name in SUBRESOURCES:
                continue
            if name in UNSIGNED_ALLOWED or (self.presigned and name in QUERY_PARAMS):
                continue
            lower = name.lower()
            copied = lower.startswith(AMZ_PREFIX) or lower in QUERY_COPIED_HEADERS
            if self.presigned and copied and headers.get(lower) == unquote(raw_value):
                continue
            unsigned.append(name)
        return sorted(set(unsigned))

    def verified_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The headers the signature covers: Content-MD5, Content-Type, Date, ``x-amz-*``."""
        return {
            name: value
            for name, value in headers.items()
            if name.startswith(AMZ_PREFIX) or name in ("content-md5", "content-type", "date")
        }


def _header_claim(authorization: str, headers: Mapping[str, str]) -> ClaimV2:
    access_key_id, _, signature = authorization[len(HEADER_PREFIX) :].strip().partition(":")
    if not access_key_id or not signature:
        raise S3Error(
            "InvalidArgument",
            "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature",
            ArgumentName="Authorization",
            ArgumentValue=authorization,
        )
    date, when = _header_time(headers)
    return ClaimV2(access_key_id, signature, False, date, when, _payload_hash(headers))


def _query_claim(params: Mapping[str, str], headers: Mapping[str, str]) -> ClaimV2:
    if not all(params.get(name) for name in QUERY_PARAMS):
        raise S3Error("AccessDenied", QUERY_REQUIRED)
    expires = params["Expires"]
    if not (expires.isascii() and expires.isdigit()):  # int() takes "+5", " 5", "1_0"
        raise S3Error("AccessDenied", f"Invalid date (should be seconds since epoch): {expires}")
    try:
        when = datetime.fromtimestamp(int(expires), UTC)
    except (OverflowError, ValueError, OSError):
        raise S3Error(
            "AccessDenied", f"Invalid date (should be seconds since epoch): {expires}"
        ) from None
    return ClaimV2(
        params["AWSAccessKeyId"], params["Signature"], True, expires, when, _payload_hash(headers)
    )


def parse_claim_v2(headers: Mapping[str, str], query: Iterable[tuple[str, str]]) -> ClaimV2:
    """The request's SigV2 claim (see :func:`is_sigv2`); ``headers`` with lower-case names."""
    authorization = headers.get("authorization", "")
    if authorization:
        return _header_claim(authorization, headers)
    return _query_claim(dict(query), headers)
