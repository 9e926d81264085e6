"""Browser uploads (S3 POST Object): the form's credentials, its policy and conditions.

Pure functions over the form's fields (names lower-case: S3 matches form field names
case-insensitively, values case-sensitively), unit-testable without a request. What the
form must satisfy, as Amazon S3 documents it ("Browser-Based Uploads Using POST",
"Creating a POST Policy"):

* a ``policy``: base64 of a JSON document with an ``expiration`` and ``conditions``;
* its signature: SigV4 (``x-amz-algorithm``, ``x-amz-credential``, ``x-amz-date``,
  ``x-amz-signature``: HMAC-SHA256 of the base64 policy with the derived key) or SigV2
  (``AWSAccessKeyId``, ``signature``: base64 HMAC-SHA1 of the base64 policy), both
  computed by botocore's own signers;
* every condition holds (``eq``, ``starts-with``, ``content-length-range``), and every
  field but the signature, ``policy``, ``file`` and ``x-ignore-*`` is named by one.

:mod:`s3proxy.post_form` reads the form from the request and streams its file.
"""

from __future__ import annotations

import base64
import binascii
import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode, urlsplit

from botocore.auth import HmacV1Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from s3proxy.errors import XML_DECLARATION, S3Error
from s3proxy.sigv4 import (
    ALGORITHM,
    Credential,
    parse_credential,
    parse_timestamp,
    same_signature,
)

# Fields that authenticate the form or carry the file: no condition names them.
UNCONDITIONED = frozenset({"x-amz-signature", "signature", "awsaccesskeyid", "file", "policy"})
IGNORED_PREFIX = "x-ignore-"
# Form fields that become request headers for the backend (besides x-amz-*, below).
HEADER_FIELDS = frozenset(
    {"cache-control", "content-type", "content-disposition", "content-encoding", "expires"}
)
# The x-amz-* fields S3 lets a POST set on the object (a prefix each). Any other (the form's
# credentials, or x-amz-copy-source, which would turn the PutObject into a copy from a
# bucket the key may not read) never reaches the backend.
OBJECT_AMZ_FIELDS = (
    "x-amz-meta-",
    "x-amz-storage-class",
    "x-amz-tagging",
    "x-amz-server-side-encryption",
    "x-amz-website-redirect-location",
    "x-amz-checksum-",
    "x-amz-object-lock-",
    "x-amz-grant-",
    "x-amz-acl",
)
SUCCESS_STATUSES = frozenset({200, 201, 204})
DEFAULT_SUCCESS_STATUS = 204
FILENAME_VARIABLE = "${filename}"
MAX_KEY_BYTES = 1024
# A policy's longest life, from its signing (as a presigned URL's: S3 caps those at 7 days).
MAX_POLICY_LIFETIME = timedelta(days=7)
# Characters no field that becomes a header (or the redirect's Location) may hold: a CR or
# LF would split the header, the others make aiohttp refuse to send it.
# Fields that reach a header otherwise: the canned ACL, the answer's Location.
ANSWERED = frozenset({"acl", "success_action_redirect", "redirect"})
CONTROL_CHARACTERS = frozenset(chr(c) for c in range(32) if chr(c) != "\t") | {"\x7f"}


@dataclass(frozen=True)
class Condition:
    """One ``eq`` or ``starts-with`` condition on a (lower-case) field."""

    op: str
    field: str
    value: str
    # How it read in the policy, for the error message (as S3 quotes it).
    text: str

    def holds(self, fields: Mapping[str, str]) -> bool:
        given = fields.get(self.field, "")
        if self.op == "eq":
            return given == self.value
        if self.field == "content-type":  # a comma-separated list: each must match
            return all(part.strip().startswith(self.value) for part in given.split(","))
        return given.startswith(self.value)


@dataclass(frozen=True)
class Policy:
    expiration: datetime
    conditions: tuple[Condition, ...]
    # content-length-range: the file's smallest and largest allowed size.
    length_range: tuple[int, int] | None


@dataclass(frozen=True)
class FormAuth:
    """Who signed the form and how; nothing here is trusted until :func:`check_signature`."""

    access_key_id: str
    signature: str
    credential: Credential | None  # None: SigV2
    timestamp: str = ""
    signed_at: datetime | None = None  # SigV4's x-amz-date; SigV2 forms carry no date


def invalid_policy(reason: str) -> S3Error:
    return S3Error("InvalidPolicyDocument", f"Invalid Policy: {reason}")


def policy_failed(reason: str) -> S3Error:
    return S3Error("AccessDenied", f"Invalid according to Policy: {reason}")


def missing_field(name: str) -> S3Error:
    return S3Error(
        "InvalidArgument",
        f"Bucket POST must contain a field named '{name}'.  If it is specified, please check "
        "the order of the fields.",
        ArgumentName=name,
        ArgumentValue="",
    )


def _condition_text(item: object) -> str:
    return json.dumps(item, separators=(", ", ": "))


def _field_name(name: object, item: object) -> str:
    if not isinstance(name, str) or not name.startswith("$") or len(name) < 2:
        raise invalid_policy(f"Invalid Condition: {_condition_text(item)}")
    return name[1:].lower()


def _length_bound(value: object, item: object) -> int:
    # S3 takes the bounds as JSON numbers or as strings of digits.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise invalid_policy(f"Invalid content-length-range: {_condition_text(item)}")
    text = str(value)
    if not (text.isascii() and text.isdigit()):
        raise invalid_policy(f"Invalid content-length-range: {_condition_text(item)}")
    return int(text)


def _parse_condition(item: object) -> Condition | tuple[int, int]:
    """A condition, or the (min, max) of a content-length-range."""
    if isinstance(item, dict):
        if len(item) != 1:
            raise invalid_policy(f"Invalid Condition: {_condition_text(item)}")
        [(name, value)] = item.items()
        if not isinstance(value, str):
            raise invalid_policy(f"Invalid Condition: {_condition_text(item)}")
        return Condition("eq", str(name).lower(), value, _condition_text(["eq", f"${name}", value]))
    if not isinstance(item, list) or len(item) != 3 or not isinstance(item[0], str):
        raise invalid_policy(f"Invalid Condition: {_condition_text(item)}")
    op = item[0].lower()
    if op == "content-length-range":
        low, high = _length_bound(item[1], item), _length_bound(item[2], item)
        if low > high:
            raise invalid_policy(f"Invalid content-length-range: {_condition_text(item)}")
        return low, high
    if op not in ("eq", "starts-with") or not isinstance(item[2], str):
        raise invalid_policy(f"Invalid Condition: {_condition_text(item)}")
    return Condition(op, _field_name(item[1], item), item[2], _condition_text(item))


def _parse_expiration(value: object) -> datetime:
    if not isinstance(value, str):
        raise invalid_policy("Invalid 'expiration' value: must be an ISO 8601 date and time.")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid_policy(f"Invalid 'expiration' value: '{value}'") from None
    if when.tzinfo is None:  # S3 reads the expiration as GMT
        when = when.replace(tzinfo=UTC)
    return when


def decode_policy(policy_b64: str) -> Policy:
    """The policy form field, decoded and parsed; ``InvalidPolicyDocument`` when it is
    not base64 of a JSON object with an expiration and a list of valid conditions."""
    try:
        document = json.loads(base64.b64decode(policy_b64, validate=True).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid_policy("Invalid JSON.") from None
    if not isinstance(document, dict):
        raise invalid_policy("Invalid JSON.")
    if "expiration" not in document:
        raise invalid_policy("Policy missing expiration.")
    if not isinstance(document.get("conditions"), list):
        raise invalid_policy("Policy missing conditions.")
    conditions: list[Condition] = []
    ranges: list[tuple[int, int]] = []
    for item in document["conditions"]:
        parsed = _parse_condition(item)
        if isinstance(parsed, Condition):
            conditions.append(parsed)
        else:
            ranges.append(parsed)
    expiration = _parse_expiration(document["expiration"])
    return Policy(expiration, tuple(conditions), tightest(ranges))


def tightest(ranges: Sequence[tuple[int, int]]) -> tuple[int, int] | None:
    """Several content-length-range conditions must all hold: the largest minimum and the
    smallest maximum (a file then fits none when they do not overlap)."""
    if not ranges:
        return None
    return max(low for low, _ in ranges), min(high for _, high in ranges)


def form_auth(
    fields: Mapping[str, str], regions: Sequence[str], allow_sigv2: bool = True
) -> FormAuth:
    """The form's claimed signer (SigV4 when it has ``x-amz-signature``, else SigV2, which
    ``allow_sigv2=False`` refuses)."""
    if "x-amz-signature" in fields or "x-amz-algorithm" in fields:
        for name in ("x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-signature"):
            if not fields.get(name):
                raise missing_field(name)
        if fields["x-amz-algorithm"] != ALGORITHM:
            raise S3Error(
                "InvalidArgument",
                "Only the AWS4-HMAC-SHA256 algorithm is supported.",
                ArgumentName="x-amz-algorithm",
                ArgumentValue=fields["x-amz-algorithm"],
            )
        credential = parse_credential(fields["x-amz-credential"], "InvalidArgument")
        timestamp = fields["x-amz-date"]
        try:
            signed_at = parse_timestamp(timestamp)
        except ValueError:
            raise S3Error(
                "InvalidArgument",
                "x-amz-date must be an ISO 8601 basic timestamp.",
                ArgumentName="x-amz-date",
                ArgumentValue=timestamp,
            ) from None
        if credential.date != timestamp[:8] or credential.region not in regions:
            raise S3Error(
                "InvalidArgument",
                f"The credential's date or region is wrong; expecting region '{regions[0]}'.",
                ArgumentName="x-amz-credential",
                ArgumentValue=fields["x-amz-credential"],
            )
        return FormAuth(
            credential.access_key_id, fields["x-amz-signature"], credential, timestamp, signed_at
        )
    if not allow_sigv2:
        raise S3Error(
            "AccessDenied", "Signature Version 2 is disabled here: sign the form with SigV4."
        )
    for name in ("awsaccesskeyid", "signature"):
        if not fields.get(name):
            raise missing_field("AWSAccessKeyId" if name == "awsaccesskeyid" else name)
    return FormAuth(fields["awsaccesskeyid"], fields["signature"], None)


def expected_signature(auth: FormAuth, secret: str, policy_b64: str) -> str:
    """The signature ``secret`` gives the base64 policy, by botocore's own signers."""
    credentials = Credentials(auth.access_key_id, secret)
    if auth.credential is None:
        return str(HmacV1Auth(credentials).sign_string(policy_b64))
    request = AWSRequest(method="POST", url="http://s3/")
    request.context["timestamp"] = auth.timestamp
    signer = SigV4Auth(credentials, auth.credential.service, auth.credential.region)
    return str(signer.signature(policy_b64, request))


def check_signature(auth: FormAuth, secret: str, policy_b64: str) -> None:
    if not same_signature(expected_signature(auth, secret, policy_b64), auth.signature):
        raise S3Error(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
        )


def object_key(fields: Mapping[str, str], filename: str | None) -> str:
    """The ``key`` field with ``${filename}`` replaced by the uploaded file's name."""
    key = fields.get("key")
    if key is None:
        raise missing_field("key")
    key = key.replace(FILENAME_VARIABLE, filename or "")
    if not key:
        raise S3Error("InvalidArgument", "User key must have a length greater than 0.")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError", "Your key is too long.")
    return key


def check_lifetime(policy: Policy, signed_at: datetime | None, now: datetime) -> None:
    """``InvalidPolicyDocument`` for a policy that expires more than
    :data:`MAX_POLICY_LIFETIME` after it was signed (SigV4: its ``x-amz-date``) or from now
    (a SigV2 form carries no date; a SigV4 date in the future proves nothing)."""
    start = now if signed_at is None else min(signed_at, now)
    if policy.expiration - start > MAX_POLICY_LIFETIME:
        raise invalid_policy(
            f"Policy expiration must be at most {MAX_POLICY_LIFETIME.days} days after signing."
        )


def check_field_values(fields: Mapping[str, str]) -> None:
    """``InvalidArgument`` for a field that becomes a header, or the redirect, holding a
    control character (a CR or LF would split the header): refused before anything is
    stored, not when the answer is written."""
    for name, value in fields.items():
        sent_on = name in HEADER_FIELDS or name.startswith(OBJECT_AMZ_FIELDS) or name in ANSWERED
        if sent_on and not CONTROL_CHARACTERS.isdisjoint(value):
            raise S3Error(
                "InvalidArgument",
                f"POST form field '{name}' holds a control character.",
                ArgumentName=name,
            )


def check_policy(
    policy: Policy,
    fields: Mapping[str, str],
    bucket: str,
    now: datetime | None = None,
    signed_at: datetime | None = None,
) -> None:
    """AccessDenied unless the policy is in date, every condition holds and every field is
    named by a condition (InvalidPolicyDocument when it lives too long, InvalidArgument for a
    field that would break a header). ``fields``: lower-case names, ``key`` already
    substituted; ``signed_at``: the form's x-amz-date (SigV4)."""
    now = now or datetime.now(UTC)
    check_lifetime(policy, signed_at, now)
    if now > policy.expiration:
        raise policy_failed("Policy expired.")
    check_field_values(fields)
    values = {**fields, "bucket": bucket}
    for condition in policy.conditions:
        if not condition.holds(values):
            raise policy_failed(f"Policy Condition failed: {condition.text}")
    named = {condition.field for condition in policy.conditions}
    extra = sorted(
        name
        for name in fields
        if name not in UNCONDITIONED and not name.startswith(IGNORED_PREFIX) and name not in named
    )
    if extra:
        raise policy_failed(f"Extra input fields: {', '.join(extra)}")


def check_size(size: int, length_range: tuple[int, int] | None, final: bool) -> None:
    """``EntityTooLarge`` once ``size`` passes the maximum (checked as bytes arrive);
    ``EntityTooSmall`` when the whole file (``final``) is under the minimum."""
    if length_range is None:
        return
    low, high = length_range
    if size > high:
        raise S3Error(
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed size",
            ProposedSize=str(size),
            MaxSizeAllowed=str(high),
        )
    if final and size < low:
        raise S3Error(
            "EntityTooSmall",
            "Your proposed upload is smaller than the minimum allowed size",
            ProposedSize=str(size),
            MinSizeAllowed=str(low),
        )


def object_headers(fields: Mapping[str, str], file_content_type: str | None) -> dict[str, str]:
    """The PutObject headers (lower-case) the form's fields ask for: Content-Type (else
    the file part's own), Cache-Control and the like, ``acl`` and the ``x-amz-*`` fields of
    :data:`OBJECT_AMZ_FIELDS` (metadata, storage class, ...)."""
    headers: dict[str, str] = {}
    for name, value in fields.items():
        if name in HEADER_FIELDS or name.startswith(OBJECT_AMZ_FIELDS):
            headers[name] = value
    if "acl" in fields:
        headers["x-amz-acl"] = fields["acl"]
    if "content-type" not in headers and file_content_type:
        headers["content-type"] = file_content_type
    return headers


@dataclass(frozen=True)
class Success:
    status: int
    headers: dict[str, str]
    body: bytes


def success_answer(
    fields: Mapping[str, str], bucket: str, key: str, etag: str, location: str
) -> Success:
    """What S3 answers a stored POST: a 303 to ``success_action_redirect`` (when it is an
    http(s) URL) with bucket, key and etag in its query, else ``success_action_status``
    (204 by default; 201 carries a PostResponse document)."""
    headers = {"ETag": etag, "Location": location}
    redirect = fields.get("success_action_redirect", "")
    if urlsplit(redirect).scheme in ("http", "https"):
        query = urlencode({"bucket": bucket, "key": key, "etag": etag})
        target = redirect + ("&" if "?" in redirect else "?") + query
        return Success(303, {**headers, "Location": target}, b"")
    status = fields.get("success_action_status", "")
    code = int(status) if status.isdigit() and int(status) in SUCCESS_STATUSES else None
    if code != 201:
        return Success(code or DEFAULT_SUCCESS_STATUS, headers, b"")
    root = ET.Element("PostResponse")
    for tag, text in (("Location", location), ("Bucket", bucket), ("Key", key), ("ETag", etag)):
        ET.SubElement(root, tag).text = text
    body = XML_DECLARATION + ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return Success(201, {**headers, "Content-Type": "application/xml"}, body)
