"""The S3 error table: one entry per code the proxy can answer with, each with the
status Amazon S3 answers it with."""

from __future__ import annotations

from typing import get_args

import pytest

from s3proxy.errors import ERRORS, ErrorCode, S3Error

# (code, HTTP status) as published in Amazon S3's "List of error codes",
# https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html#ErrorCodeList
# (read 2026-12), for the codes Nebula answers with.
AWS_PUBLISHED = {
    "AccessControlListNotSupported": 400,
    "AccessDenied": 403,
    "AuthorizationHeaderMalformed": 400,
    "AuthorizationQueryParametersError": 400,
    "BadDigest": 400,
    "BucketAlreadyExists": 409,
    "BucketAlreadyOwnedByYou": 409,
    "EntityTooLarge": 400,
    "EntityTooSmall": 400,
    "IncompleteBody": 400,
    "InternalError": 500,
    "InvalidAccessKeyId": 403,
    "InvalidArgument": 400,
    "InvalidBucketAclWithObjectOwnership": 400,
    "InvalidBucketName": 400,
    "InvalidDigest": 400,
    "InvalidPolicyDocument": 400,
    "InvalidRequest": 400,
    "KeyTooLongError": 400,
    "MalformedACLError": 400,
    "MalformedPOSTRequest": 400,
    "MalformedXML": 400,
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
}

# Codes Amazon S3 answers with that its list leaves out, with where the status comes from.
UNLISTED = {
    # "If cors is not enabled on the bucket, then Amazon S3 returns a 403 Forbidden
    # response": https://docs.aws.amazon.com/AmazonS3/latest/API/RESTOPTIONSobject.html
    # and https://docs.aws.amazon.com/AmazonS3/latest/userguide/cors-troubleshooting.html
    "AccessForbidden": 403,
    # A preflight without Origin: Amazon S3's answer ("Insufficient information. Origin
    # request header needed."), which S3-compatible servers copy; the list leaves it out.
    "BadRequest": 400,
    # aws-chunked (SigV4 streaming) framing errors, as Amazon S3 answers them (the AWS
    # SDKs' issue trackers quote them, e.g. aws/aws-sdk-cpp#2727 for the chunk size).
    "InvalidChunkSizeError": 403,
    "MalformedTrailerError": 400,
    "XAmzContentSHA256Mismatch": 400,
}


def test_error_code_type_lists_exactly_the_tables_codes() -> None:
    assert get_args(ErrorCode) == tuple(ERRORS)


def test_table_is_sorted_so_concurrent_additions_merge() -> None:
    assert list(ERRORS) == sorted(ERRORS)


def test_every_code_is_accounted_for_by_aws() -> None:
    assert not set(AWS_PUBLISHED) & set(UNLISTED)
    assert set(ERRORS) <= set(AWS_PUBLISHED) | set(UNLISTED)


@pytest.mark.parametrize("code", sorted(ERRORS))
def test_status_is_the_one_amazon_answers_with(code: ErrorCode) -> None:
    expected = AWS_PUBLISHED.get(code, UNLISTED.get(code))
    assert ERRORS[code].status == expected
    assert S3Error(code).status == expected


def test_unknown_code_is_refused_when_raised() -> None:
    # The ignore is itself a test: mypy's warn_unused_ignores fails the build if mypy
    # ever stopped rejecting the typo.
    with pytest.raises(ValueError, match="NoSuchBuckt"):
        S3Error("NoSuchBuckt", "typo")  # type: ignore[arg-type]


def test_message_defaults_to_the_tables() -> None:
    assert S3Error("NoSuchBucket").message == ERRORS["NoSuchBucket"].message
    assert S3Error("NoSuchBucket", "Bucket x is gone.").message == "Bucket x is gone."
