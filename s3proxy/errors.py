"""S3 errors as exceptions, rendered as the XML body every S3 client understands."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET

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


# code -> HTTP status, as Amazon S3 answers them.
STATUS = {
    "AccessDenied": 403,
    "AccessForbidden": 403,  # a CORS preflight no rule allows
    "BucketAlreadyExists": 409,
    "BucketAlreadyOwnedByYou": 409,
    "AuthorizationHeaderMalformed": 400,
    "AuthorizationQueryParametersError": 400,
    "BadDigest": 400,
    "EntityTooLarge": 400,
    "EntityTooSmall": 400,
    "IncompleteBody": 400,
    "InternalError": 500,
    "InvalidAccessKeyId": 403,
    "InvalidArgument": 400,
    "InvalidBucketName": 400,
    "InvalidChunkSizeError": 403,
    "InvalidDigest": 400,
    "InvalidPolicyDocument": 400,
    "InvalidRequest": 400,
    "KeyTooLongError": 400,
    "MalformedPOSTRequest": 400,
    "MalformedXML": 400,
    "MalformedTrailerError": 400,
    "MaxMessageLengthExceeded": 400,
    "MaxPostPreDataLengthExceededError": 400,
    "MethodNotAllowed": 405,
    "MissingContentLength": 411,
    "NoSuchBucket": 404,
    "NoSuchCORSConfiguration": 404,
    "NotImplemented": 501,
    "RequestTimeTooSkewed": 403,
    "RequestTimeout": 400,
    "ServiceUnavailable": 503,
    "SignatureDoesNotMatch": 403,
    "SlowDown": 503,
    "XAmzContentSHA256Mismatch": 400,
}


class S3Error(Exception):
    """An S3 error answer: ``code`` (e.g. ``SignatureDoesNotMatch``), message, extra fields."""

    def __init__(self, code: str, message: str, **fields: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = STATUS.get(code, 400)
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
