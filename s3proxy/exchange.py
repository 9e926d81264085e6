"""One S3 request on its way through the proxy, and the operations the proxy acts on."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import cast

from aiohttp import web
from botocore.auth import HmacV1Auth

from nebulacore.ops import STATUS_KEY
from s3proxy.addressing import Target
from s3proxy.auth import KnownKey
from s3proxy.bucket_operations import bucket_operation_name
from s3proxy.limits import READERS

# Object sub-resources: a PUT or DELETE with one of these is not an upload or deletion.
SUBRESOURCES = frozenset(
    {"tagging", "acl", "retention", "legal-hold", "uploadId", "partNumber", "restore", "torrent"}
)


# S3's sub-resources (botocore's list of those SigV2 signs): a GET on a bucket with none
# of them is a listing, whatever paging or presign parameters it carries.
BUCKET_SUB_RESOURCES = frozenset(HmacV1Auth.QSAOfInterest)


class Operation(StrEnum):
    """The few operations the proxy acts on after success; the values are what the access
    log prints."""

    LIST_BUCKETS = "list-buckets"
    CREATE_BUCKET = "create-bucket"
    DELETE_BUCKET = "delete-bucket"
    GET_BUCKET_ACL = "get-bucket-acl"
    PUT_BUCKET_ACL = "put-bucket-acl"
    GET_OBJECT_ACL = "get-object-acl"
    PUT_OBJECT_ACL = "put-object-acl"
    # Answered by s3proxy.cors from the catalog, never forwarded.
    GET_BUCKET_CORS = "get-bucket-cors"
    PUT_BUCKET_CORS = "put-bucket-cors"
    DELETE_BUCKET_CORS = "delete-bucket-cors"
    # The listings that name owners (ListObjectsV2 only with fetch-owner=true).
    LIST_OBJECTS = "list-objects"
    LIST_VERSIONS = "list-object-versions"
    LIST_UPLOADS = "list-multipart-uploads"
    LIST_PARTS = "list-parts"
    PREFLIGHT = "preflight"  # a CORS OPTIONS, answered by s3proxy.cors
    DELETE_OBJECTS = "delete-objects"
    PUT = "put"
    POST_OBJECT = "post-object"  # a browser upload: a form with a signed POST policy
    COPY = "copy"
    COMPLETE = "complete"
    DELETE = "delete"
    OTHER = "other"


def operation(method: str, target: Target, headers: dict[str, str]) -> Operation:
    """What a request does, from its method, address and (signed) headers."""
    if target.bucket is None:
        return Operation.LIST_BUCKETS if method == "GET" else Operation.OTHER
    if not target.key:
        return bucket_operation(method, target)
    if target.has("acl") and method in ("GET", "PUT"):
        return Operation.GET_OBJECT_ACL if method == "GET" else Operation.PUT_OBJECT_ACL
    if method == "GET" and target.has("uploadId"):
        return Operation.LIST_PARTS
    plain = not any(target.has(name) for name in SUBRESOURCES)
    if method == "PUT" and plain:
        return Operation.COPY if "x-amz-copy-source" in headers else Operation.PUT
    if method == "POST" and target.has("uploadId"):
        return Operation.COMPLETE
    if method == "DELETE" and plain:
        return Operation.DELETE
    return Operation.OTHER


# Bucket operations the proxy acts on, by their S3 names (s3proxy.bucket_operations).
NAMED_BUCKET_OPERATIONS = {
    "DeleteObjects": Operation.DELETE_OBJECTS,
    "CreateBucket": Operation.CREATE_BUCKET,
    "DeleteBucket": Operation.DELETE_BUCKET,
    "PutBucketAcl": Operation.PUT_BUCKET_ACL,
    "PutBucketCors": Operation.PUT_BUCKET_CORS,
    "DeleteBucketCors": Operation.DELETE_BUCKET_CORS,
}


def bucket_operation(method: str, target: Target) -> Operation:
    """Named as the backend's router names it: by the one sub-resource in the query, so
    ``PUT /bucket?x-id=CreateBucket`` is a CreateBucket here too."""
    if method == "GET":
        return bucket_read(target)
    name = bucket_operation_name(method, target)
    return Operation.OTHER if name is None else NAMED_BUCKET_OPERATIONS.get(name, Operation.OTHER)


# GET on a bucket with one of these sub-resources: the answer names owners.
BUCKET_READS = {
    "acl": Operation.GET_BUCKET_ACL,
    "cors": Operation.GET_BUCKET_CORS,
    "versions": Operation.LIST_VERSIONS,
    "uploads": Operation.LIST_UPLOADS,
}


def bucket_read(target: Target) -> Operation:
    """A GET on a bucket: the reads whose answers name owners, or OTHER."""
    query = dict(target.query)
    named = [op for name, op in BUCKET_READS.items() if name in query]
    if named:
        return named[0]
    if not BUCKET_SUB_RESOURCES.isdisjoint(query):
        return Operation.OTHER  # another sub-resource (?cors, ?location, ?tagging…)
    # V1 always names each object's owner; V2 only when asked to (S3's FetchOwner). Any
    # other parameter is left to the backend: the rewriting passes a non-listing through.
    # Any fetch-owner but "false" is rewritten: a value the backend reads as true (Go's
    # ParseBool takes "1", "t", "TRUE"…) must never let its identity through.
    if query.get("list-type") != "2" or query.get("fetch-owner", "false").lower() != "false":
        return Operation.LIST_OBJECTS
    return Operation.OTHER


@dataclass(slots=True)
class Exchange:
    """What the access log reports about one request, however it ended.

    The front middleware creates it (with the request id); the handler fills in the
    access key as soon as it is read and the operation once the signature is verified,
    when the request becomes an :class:`AuthenticatedExchange`. It holds no reference to
    its request, which holds it: that cycle would leave every request's memory to the
    cyclic garbage collector.
    """

    request_id: str
    # The access key the request claims, logged even when it is refused.
    access_key: str | None = None
    # Known once the signature is verified (None: refused before).
    operation: Operation | None = None
    # The streamed answer, set once its headers are sent: an error can no longer become XML.
    answer_started: web.StreamResponse | None = None


class AuthenticatedExchange:
    """A request whose signature (or POST policy) is verified, and what that made known:
    nothing here is ever unset. The answer is decided on it.

    Its operation is the :class:`Exchange`'s, so the access log reports the one decided."""

    __slots__ = ("exchange", "headers", "key", "target", "versioned_keys")

    def __init__(
        self,
        exchange: Exchange,
        operation: Operation,
        target: Target,
        headers: dict[str, str],
        key: KnownKey,
    ) -> None:
        exchange.operation = operation
        self.exchange = exchange
        self.target = target
        self.headers = headers  # the client's headers, names lower-case
        self.key = key
        # The keys a DeleteObjects request names with a VersionId (set once its body is read).
        self.versioned_keys: frozenset[str] = frozenset()

    @property
    def operation(self) -> Operation:
        return cast(Operation, self.exchange.operation)  # set by __init__, never unset

    @operation.setter
    def operation(self, operation: Operation) -> None:
        self.exchange.operation = operation

    @property
    def request_id(self) -> str:
        return self.exchange.request_id


EXCHANGE = web.RequestKey("s3proxy.exchange", Exchange)


def answer_started(request: web.Request, x: Exchange, response: web.StreamResponse) -> None:
    """Note that ``response``'s head is sent: an error can no longer become XML, and if
    the answer is cut, /metrics and the access log count it under the status sent
    (:func:`nebulacore.ops.failed_status`); from now on the answer is cut if its client
    stops reading (:class:`s3proxy.limits.StalledReaders`)."""
    x.answer_started = response
    request[STATUS_KEY] = response.status
    request.app[READERS].watch(request)
