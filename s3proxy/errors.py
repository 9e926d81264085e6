"""S3 errors as exceptions, rendered as the XML body every S3 client understands."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Final, Literal, NamedTuple

XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def local_name(tag: str) -> str:
    """An element's name without its ``{namespace}``."""
    return tag.rsplit("}", 1)[-1]


def client_document(body: bytes, root_name: str, invalid: S3Error) -> ET.Element:
    """A client's XML document whose root is ``root_name``, or ``invalid`` raised."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise invalid from exc
    if local_name(root.tag) != root_name:
        raise invalid
    return root


# Every S3 error code the proxy answers with, as one type: mypy refuses a code that is not
# listed (``S3Error("NoSuchBuckt")``), and ``ERRORS`` below must list exactly these
# (tests/s3proxy/test_errors.py). Add a code in both places, alphabetically.
ErrorCode = Literal[
    "AccessControlListNotSupported",
    "AccessDenied",
    "AccessForbidden",
    "AuthorizationHeaderMalformed",
    "AuthorizationQueryParametersError",
    "BadDigest",
    "BadRequest",
    "BucketAlreadyExists",
    "BucketAlreadyOwnedByYou",
    "EntityTooLarge",
    "EntityTooSmall",
    "IncompleteBody",
    "InternalError",
    "InvalidAccessKeyId",
    "InvalidArgument",
    "InvalidBucketAclWithObjectOwnership",
    "InvalidBucketName",
    "InvalidChunkSizeError",
    "InvalidDigest",
    "InvalidPolicyDocument",
    "InvalidRequest",
    "KeyTooLongError",
    "MalformedACLError",
    "MalformedPOSTRequest",
    "MalformedTrailerError",
    "MalformedXML",
    "MaxMessageLengthExceeded",
    "MaxPostPreDataLengthExceededError",
    "MethodNotAllowed",
    "MissingContentLength",
    "NoSuchBucket",
    "NoSuchCORSConfiguration",
    "NotImplemented",
    "RequestTimeTooSkewed",
    "RequestTimeout",
    "ServiceUnavailable",
    "SignatureDoesNotMatch",
    "SlowDown",
    "XAmzContentSHA256Mismatch",
]


class ErrorSpec(NamedTuple):
    """What Amazon S3 answers with a code: its HTTP status and a generic message, used
    when the raiser has nothing more precise to say."""

    status: int
    message: str


# The one table of S3 errors (as MinIO's cmd/api-errors.go): code -> status, message.
# Statuses are Amazon's; tests/s3proxy/test_errors.py holds them to its published list.
ERRORS: Final[Mapping[ErrorCode, ErrorSpec]] = {
    "AccessControlListNotSupported": ErrorSpec(400, "The bucket does not allow ACLs."),
    "AccessDenied": ErrorSpec(403, "Access Denied"),
    # A CORS preflight the bucket's rules do not allow.
    "AccessForbidden": ErrorSpec(403, "CORSResponse: This CORS request is not allowed."),
    "AuthorizationHeaderMalformed": ErrorSpec(400, "The authorization header is malformed."),
    "AuthorizationQueryParametersError": ErrorSpec(
        400, "The authorization query parameters are not valid."
    ),
    "BadDigest": ErrorSpec(400, "The checksum you specified did not match what we received."),
    # A CORS preflight without an Origin header.
    "BadRequest": ErrorSpec(400, "Insufficient information. Origin request header needed."),
    "BucketAlreadyExists": ErrorSpec(409, "The requested bucket name is not available."),
    "BucketAlreadyOwnedByYou": ErrorSpec(
        409, "The bucket you tried to create already exists, and you own it."
    ),
    "EntityTooLarge": ErrorSpec(400, "Your proposed upload exceeds the maximum allowed size."),
    "EntityTooSmall": ErrorSpec(400, "Your proposed upload is smaller than the minimum allowed."),
    "IncompleteBody": ErrorSpec(
        400, "You did not provide the number of bytes specified by the Content-Length header."
    ),
    "InternalError": ErrorSpec(500, "We encountered an internal error. Please try again."),
    "InvalidAccessKeyId": ErrorSpec(
        403, "The AWS Access Key Id you provided does not exist in our records."
    ),
    "InvalidArgument": ErrorSpec(400, "Invalid Argument"),
    "InvalidBucketAclWithObjectOwnership": ErrorSpec(
        400, "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting."
    ),
    "InvalidBucketName": ErrorSpec(400, "The specified bucket is not valid."),
    "InvalidChunkSizeError": ErrorSpec(403, "A chunk does not have the size it declares."),
    "InvalidDigest": ErrorSpec(400, "The checksum you specified is not valid."),
    "InvalidPolicyDocument": ErrorSpec(
        400, "The content of the form does not meet the conditions specified in the policy."
    ),
    "InvalidRequest": ErrorSpec(400, "Invalid Request"),
    "KeyTooLongError": ErrorSpec(400, "Your key is too long."),
    "MalformedACLError": ErrorSpec(
        400, "The ACL you provided was not well-formed or did not validate against our schema."
    ),
    "MalformedPOSTRequest": ErrorSpec(
        400, "The body of your POST request is not well-formed multipart/form-data."
    ),
    "MalformedTrailerError": ErrorSpec(
        400, "The request contained trailing data that was not well-formed."
    ),
    "MalformedXML": ErrorSpec(400, "The XML you provided was not well-formed or did not validate."),
    "MaxMessageLengthExceeded": ErrorSpec(400, "Your request was too big."),
    "MaxPostPreDataLengthExceededError": ErrorSpec(
        400, "Your POST request fields preceding the upload file were too large."
    ),
    "MethodNotAllowed": ErrorSpec(
        405, "The specified method is not allowed against this resource."
    ),
    "MissingContentLength": ErrorSpec(411, "You must provide the Content-Length HTTP header."),
    "NoSuchBucket": ErrorSpec(404, "The specified bucket does not exist."),
    "NoSuchCORSConfiguration": ErrorSpec(404, "The CORS configuration does not exist."),
    "NotImplemented": ErrorSpec(
        501, "A header you provided implies functionality that is not implemented."
    ),
    "RequestTimeTooSkewed": ErrorSpec(
        403, "The difference between the request time and the current time is too large."
    ),
    "RequestTimeout": ErrorSpec(
        400, "Your socket connection to the server was not read from or written to in time."
    ),
    "ServiceUnavailable": ErrorSpec(503, "The service is unable to handle the request; try again."),
    "SignatureDoesNotMatch": ErrorSpec(
        403, "The request signature we calculated does not match the signature you provided."
    ),
    "SlowDown": ErrorSpec(503, "Please reduce your request rate."),
    "XAmzContentSHA256Mismatch": ErrorSpec(
        400, "The provided 'x-amz-content-sha256' header does not match what was computed."
    ),
}


class S3Error(Exception):
    """An S3 error answer: ``code`` (e.g. ``SignatureDoesNotMatch``), message, extra fields.

    The code must be in ``ERRORS`` (mypy checks literals; this checks the rest at run
    time); without a message, the table's generic one is used."""

    def __init__(self, code: ErrorCode, message: str | None = None, **fields: str) -> None:
        spec = ERRORS.get(code)
        if spec is None:
            raise ValueError(f"{code!r} is not an S3 error code in s3proxy.errors.ERRORS")
        message = spec.message if message is None else message
        super().__init__(f"{code}: {message}")
        self.code: ErrorCode = code
        self.message = message
        self.status = spec.status
        self.fields = fields


def new_request_id() -> str:
    """16 upper-case hex characters, the shape of Amazon's ``x-amz-request-id``. An id,
    not a secret: the process's PRNG, without ``secrets``' system call per request."""
    return f"{random.getrandbits(64):016X}"


def error_xml(error: S3Error, resource: str, request_id: str) -> bytes:
    root = ET.Element("Error")
    ET.SubElement(root, "Code").text = error.code
    ET.SubElement(root, "Message").text = error.message
    for name, value in error.fields.items():
        ET.SubElement(root, name).text = value
    ET.SubElement(root, "Resource").text = resource
    ET.SubElement(root, "RequestId").text = request_id
    return XML_DECLARATION + ET.tostring(root, encoding="utf-8", xml_declaration=False)


def with_request_id(body: bytes, request_id: str) -> bytes:
    """The backend's error XML with our request id, so the client's id is in our log."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return body
    if root.tag != "Error":
        return body
    node = root.find("RequestId")
    if node is None:
        node = ET.SubElement(root, "RequestId")
    node.text = request_id
    return XML_DECLARATION + ET.tostring(root, encoding="utf-8", xml_declaration=False)
