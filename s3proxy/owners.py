"""One owner per bucket, though every Nebula key reaches the backend as the same identity.

CreateBucket of a bucket another owner created here is refused with ``BucketAlreadyExists``
before it reaches the backend (which would answer ``BucketAlreadyOwnedByYou`` to anyone);
a successful one records the key's owner; DeleteBucket frees the name. Buckets with no
recorded owner (made before, or directly on the backend) are the admin's.

Every answer that names a person names the bucket's owner instead of the backend's
identity: ListBuckets (the requester), GetBucketAcl, GetObjectAcl, and the listings
(ListObjects V1 and V2 with ``fetch-owner``, ListObjectVersions, ListMultipartUploads,
ListParts), rewritten as they stream (:class:`s3proxy.listing.OwnerRewriter`).

ACLs are as on an S3 bucket whose Object Ownership is "bucket owner enforced": the owner
has full control of the bucket and every object in it, and nobody else has anything. An
ACL saying so (canned ``private`` or ``bucket-owner-full-control``, grants naming only the
owner's id) is accepted; the backend then gets canned ``private`` (PutBucketAcl,
PutObjectAcl) or no ACL at all (uploads, copies, CreateBucket). Any other ACL is refused
with S3's ``AccessControlListNotSupported`` (``InvalidBucketAclWithObjectOwnership`` for
CreateBucket), so no key can make the backend serve a bucket or object to anyone else.
GetBucketAcl and GetObjectAcl answer, as S3 does there, the owner alone with FULL_CONTROL,
whatever grants the backend holds besides (:func:`s3proxy.listing.owner_alone`).

S3's bucket owner condition (``x-amz-expected-bucket-owner``, and
``x-amz-source-expected-bucket-owner`` for the source of a copy) is judged here against the
bucket's Nebula owner ID, the one the answers show: a mismatch is S3's ``403 AccessDenied``
before anything reaches the backend, and the backend never sees the condition (it would
compare it with its own identity, the wrong way round). S3 says whether the bucket exists
before it judges its owner, so a mismatch on a bucket the backend does not have is ``404
NoSuchBucket``; only a mismatch pays for asking the backend.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import aiohttp
from aiohttp import web

from catalog import Catalog
from catalog.buckets import ADMIN_OWNER, forget_bucket, owner_id, record_owner, recorded_owner
from nebulacore.backend import Backend
from nebulacore.blocking import Offload
from nebulacore.s3 import UNSIGNED_PAYLOAD
from s3proxy.addressing import Target, check_bucket_name, copy_source_bucket
from s3proxy.body import UploadBody
from s3proxy.chunked import PIECE
from s3proxy.errors import S3Error, client_document
from s3proxy.exchange import AuthenticatedExchange, Operation, answer_started, operation
from s3proxy.forward import (
    SMALL_BODY,
    close_if_body_unread,
    open_upstream,
    read_limited,
    response_headers,
)
from s3proxy.listing import (
    OBJECTS,
    PARTS,
    UPLOADS,
    VERSIONS,
    OwnerRewriter,
    Shape,
    child_text,
    children,
    listing_for,
    owner_alone,
)

log = logging.getLogger(__name__)

# The operations whose answers this module reads whole and rewrites.
OWNED = frozenset(
    {
        Operation.CREATE_BUCKET,
        Operation.DELETE_BUCKET,
        Operation.GET_BUCKET_ACL,
        Operation.GET_OBJECT_ACL,
        Operation.LIST_BUCKETS,
    }
)
# The listings whose 2xx answers stream through :class:`OwnerRewriter`.
LISTINGS: dict[Operation, Shape] = {
    Operation.LIST_OBJECTS: OBJECTS,
    Operation.LIST_VERSIONS: VERSIONS,
    Operation.LIST_UPLOADS: UPLOADS,
    Operation.LIST_PARTS: PARTS,
}
# The ACL writes: their body is read and checked here, the backend gets canned "private".
ACL_WRITES = frozenset({Operation.PUT_BUCKET_ACL, Operation.PUT_OBJECT_ACL})
GRANT_HEADERS = tuple(
    f"x-amz-grant-{p}" for p in ("read", "write", "read-acp", "write-acp", "full-control")
)
ACL_HEADERS = ("x-amz-acl", *GRANT_HEADERS)
# Canned ACLs that leave the owner alone with full control (one owner per bucket, so the
# bucket owner and the object owner are the same).
OWNER_ONLY_CANNED = frozenset({"private", "bucket-owner-full-control"})
ACL_BODY_LIMIT = 64 << 10  # S3 allows 100 grants: a few KiB
EXPECTED_OWNER = "x-amz-expected-bucket-owner"
EXPECTED_SOURCE_OWNER = "x-amz-source-expected-bucket-owner"
OWNER_CONDITIONS = (EXPECTED_OWNER, EXPECTED_SOURCE_OWNER)


def names_acl(headers: Mapping[str, str]) -> bool:
    """Whether a request sets an ACL with headers (canned or grants)."""
    return any(name in headers for name in ACL_HEADERS)


def expects_owner(headers: Mapping[str, str], query: Sequence[tuple[str, str]]) -> bool:
    """Whether a request states a bucket owner condition: as headers (boto3's
    ``ExpectedBucketOwner``, signed like every ``x-amz-*``) or in a presigned URL's signed
    query, where the AWS SDK for JavaScript v3 hoists ``x-amz-*`` headers. Two dict lookups
    when there is no query, as on most object reads and writes."""
    if EXPECTED_OWNER in headers or EXPECTED_SOURCE_OWNER in headers:
        return True
    # Most object reads and writes have no query: no generator is built for them.
    return bool(query) and any(name.lower() in OWNER_CONDITIONS for name, _ in query)


def stated(name: str, headers: Mapping[str, str], query: Sequence[tuple[str, str]]) -> list[str]:
    """Every value a request gives a condition, header and query alike (each must hold)."""
    values = [value for key, value in query if key.lower() == name]
    if name in headers:
        values.append(headers[name])
    return values


def owner_mismatch() -> S3Error:
    return S3Error("AccessDenied", "Access Denied")


def no_such_bucket(bucket: str) -> S3Error:
    return S3Error("NoSuchBucket", "The specified bucket does not exist", BucketName=bucket)


def acl_not_supported(operation: Operation | None) -> S3Error:
    if operation is Operation.CREATE_BUCKET:
        return S3Error(
            "InvalidBucketAclWithObjectOwnership",
            "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
        )
    return S3Error("AccessControlListNotSupported", "The bucket does not allow ACLs")


def malformed_acl() -> S3Error:
    return S3Error(
        "MalformedACLError",
        "The XML you provided was not well-formed or did not validate against our published schema",
    )


def grantees(value: str) -> list[tuple[str, str]]:
    """An ``x-amz-grant-*`` value (``id="…", uri="…"``) as (kind, who) pairs."""
    pairs = []
    for item in value.split(","):
        kind, _, who = item.strip().partition("=")
        pairs.append((kind.strip().lower(), who.strip().strip('"')))
    return pairs


def grants_only(headers: Mapping[str, str], owner: str) -> bool:
    """Whether every ``x-amz-grant-*`` header names the owner's canonical id alone."""
    me = ("id", owner_id(owner))
    return all(
        all(pair == me for pair in grantees(headers[name]))
        for name in GRANT_HEADERS
        if name in headers
    )


def policy_only(body: bytes, owner: str) -> bool:
    """Whether an AccessControlPolicy document names nobody but ``owner``; raises
    MalformedACLError for anything else than such a document."""
    root = client_document(body, "AccessControlPolicy", malformed_acl())
    me = owner_id(owner)
    if any(child_text(o, "ID") not in (None, me) for o in children(root, "Owner")):
        return False
    people = [
        grantee
        for acl in children(root, "AccessControlList")
        for grant in children(acl, "Grant")
        for grantee in children(grant, "Grantee")
    ]
    return all(child_text(grantee, "ID") == me for grantee in people)


def already_exists(bucket: str) -> S3Error:
    return S3Error(
        "BucketAlreadyExists",
        "The requested bucket name is not available. The bucket namespace is shared by all "
        "users of the system. Please select a different name and try again.",
        BucketName=bucket,
    )


def already_owned(bucket: str) -> S3Error:
    return S3Error(
        "BucketAlreadyOwnedByYou",
        "Your previous request to create the named bucket succeeded and you already own it.",
        BucketName=bucket,
    )


class BucketOwners:
    """The catalog's bucket owners, read and written on threads of their own."""

    def __init__(self, catalog: Catalog, backend: Backend) -> None:
        self._catalog = catalog
        self._backend = backend
        self._threads = Offload(2, "bucket-owners")

    def close(self) -> None:
        self._threads.close()

    def _recorded(self, bucket: str) -> str | None:
        with self._catalog.session() as session:
            return recorded_owner(session, bucket)

    def _record(self, bucket: str, owner: str) -> None:
        with self._catalog.session() as session:
            record_owner(session, bucket, owner)

    def _forget(self, bucket: str) -> None:
        with self._catalog.session() as session:
            forget_bucket(session, bucket)

    async def recorded(self, bucket: str) -> str | None:
        try:
            return await self._threads.run(self._recorded, bucket)
        except Exception as exc:
            raise S3Error("ServiceUnavailable", "The catalog is unavailable.") from exc

    async def owner(self, bucket: str) -> str:
        return await self.recorded(bucket) or ADMIN_OWNER

    async def before_create(self, x: AuthenticatedExchange) -> None:
        """Refuse, without asking the backend to create it, a bucket another owner made."""
        bucket = x.target.bucket
        assert bucket is not None  # CreateBucket names one
        holder = await self.recorded(bucket)
        if holder is None or holder == x.key.record.owner:
            return  # the backend says whether the name is free
        if await self._exists(bucket):
            raise already_exists(bucket)
        # Deleted on the backend directly: the row is stale and the name is free.
        await self._threads.run(self._forget, bucket)

    async def _exists(self, bucket: str) -> bool:
        head = Target(bucket, "", (), f"/{bucket}")
        answer = await open_upstream(self._backend, "HEAD", head, {}, None, UNSIGNED_PAYLOAD)
        answer.release()
        if answer.status >= 500:
            raise S3Error("ServiceUnavailable", "The storage backend failed to answer.")
        return answer.status != 404

    async def refuse_if_missing(self, bucket: str) -> None:
        """404 NoSuchBucket when the backend has no ``bucket``."""
        if not await self._exists(bucket):
            raise no_such_bucket(bucket)

    expects_owner = staticmethod(expects_owner)  # the server's hook, no import to add

    async def check_expected(
        self, x: AuthenticatedExchange, method: str, verified: dict[str, str]
    ) -> Target:
        """Judge a request's bucket owner condition against the Nebula owners, then take it
        out of the request (headers and query) and return the target the backend gets.

        ``verified``: the headers the signature covers. CreateBucket and ListBuckets have no
        owner to compare with (S3 takes no condition on them): the condition is only dropped."""
        target = x.target
        expected = stated(EXPECTED_OWNER, verified, target.query)
        source = stated(EXPECTED_SOURCE_OWNER, verified, target.query)
        for name in OWNER_CONDITIONS:
            x.headers.pop(name, None)
        query = tuple(p for p in target.query if p[0].lower() not in OWNER_CONDITIONS)
        x.target = target = replace(target, query=query)
        # A hoisted condition in the query hid a bare bucket (CreateBucket, DeleteBucket).
        x.operation = operation(method, target, verified)
        if expected and target.bucket is not None and x.operation is not Operation.CREATE_BUCKET:
            await self._expect(target.bucket, expected)
        copy_source = verified.get("x-amz-copy-source")
        if source and copy_source and method == "PUT":  # CopyObject, UploadPartCopy
            await self._expect(copy_source_bucket(copy_source), source)
        return target

    async def _expect(self, bucket: str, values: list[str]) -> None:
        """Nothing if every stated ID is the bucket's Nebula owner's (IDs are hex: compared
        stripped and lower-cased; not secret, so plain equality); else 404 NoSuchBucket if
        the backend has no such bucket (S3 judges existence first; a bucket with no row
        counts as the admin's, and a row can outlive a bucket deleted on the backend), and
        403 AccessDenied if it has. Only a mismatch asks the backend."""
        actual = owner_id(await self.owner(bucket))
        if all(value.strip().lower() == actual for value in values):
            return
        check_bucket_name(bucket)  # a copy source's name was not checked yet
        await self.refuse_if_missing(bucket)
        raise owner_mismatch()

    async def refuse_foreign_acl(self, x: AuthenticatedExchange) -> None:
        """A request setting an ACL with headers: refused unless the ACL leaves the owner
        alone with full control; then the headers are dropped (the backend's default is
        exactly that)."""
        headers = x.headers
        canned = headers.get("x-amz-acl")
        if canned is not None and canned not in OWNER_ONLY_CANNED:
            raise await self._acl_refusal(x)
        if any(name in headers for name in GRANT_HEADERS):
            mine = x.operation is Operation.CREATE_BUCKET or x.target.bucket is None
            owner = x.key.record.owner if mine else await self.owner(x.target.bucket or "")
            if not grants_only(headers, owner):
                raise await self._acl_refusal(x)
        for name in ACL_HEADERS:
            headers.pop(name, None)

    async def _acl_refusal(self, x: AuthenticatedExchange) -> S3Error:
        """The error for an ACL that names someone else. S3 says whether a bucket to
        create exists, and whose it is, before it judges the ACL: re-creating one's own
        bucket with ``public-read`` is ``BucketAlreadyOwnedByYou``, as without it."""
        bucket = x.target.bucket
        if x.operation is Operation.CREATE_BUCKET and bucket and await self._exists(bucket):
            if await self.owner(bucket) == x.key.record.owner:
                return already_owned(bucket)
            return already_exists(bucket)
        return acl_not_supported(x.operation)

    async def put_acl(self, x: AuthenticatedExchange, body: UploadBody) -> aiohttp.ClientResponse:
        """PutBucketAcl or PutObjectAcl, its headers already checked: the body, if any,
        must name nobody but the owner; the backend is told canned ``private``."""
        if body.length is None or body.length > ACL_BODY_LIMIT:
            raise malformed_acl()
        # An empty body was verified whole before this (verify_whole): read it once only.
        document = await body.read_whole() if body.length else b""
        if document.strip():
            bucket = x.target.bucket or ""
            if not policy_only(document, await self.owner(bucket)):
                raise acl_not_supported(x.operation)
        private = {"x-amz-acl": "private"}
        return await open_upstream(self._backend, "PUT", x.target, private, None, UNSIGNED_PAYLOAD)

    async def relay_listing(
        self, request: web.Request, x: AuthenticatedExchange, upstream: aiohttp.ClientResponse
    ) -> web.StreamResponse:
        """A 2xx listing with the bucket's owner in every ``Owner`` and ``Initiator``.

        Its length changes, so a long one streams chunked, rewritten piece by piece (memory
        holds one piece's entries); one of at most SMALL_BODY bytes is rewritten whole and keeps a
        ``Content-Length``."""
        rewriter = OwnerRewriter(LISTINGS[x.operation], await self.owner(x.target.bucket or ""))
        headers = response_headers(upstream, x.request_id)
        length = upstream.content_length
        if length is not None and length <= SMALL_BODY:
            data = await read_limited(upstream, SMALL_BODY)
            body = rewriter.feed(data) + rewriter.close()
            small = web.Response(
                status=upstream.status, reason=upstream.reason, headers=headers, body=body
            )
            close_if_body_unread(request, small)
            return small
        response = web.StreamResponse(
            status=upstream.status, reason=upstream.reason, headers=headers
        )
        close_if_body_unread(request, response)
        await response.prepare(request)
        answer_started(request, x.exchange, response)
        async for piece in upstream.content.iter_chunked(PIECE):
            out = rewriter.feed(piece)
            if out:
                await response.write(out)
        await response.write_eof(rewriter.close())
        return response

    async def answer(
        self, x: AuthenticatedExchange, response: web.Response, data: bytes
    ) -> web.Response:
        """The backend's buffered answer to one of :data:`OWNED`, as its owner sees it."""
        bucket, me = x.target.bucket or "", x.key.record.owner
        ok = 200 <= response.status < 300
        match x.operation:
            case Operation.CREATE_BUCKET if ok:
                await self._after_success(self._record, bucket, me)
            case Operation.CREATE_BUCKET if response.status == 409:
                # The backend owns every bucket; whether it is "yours" is ours to say.
                if await self.owner(bucket) != me:
                    raise already_exists(bucket)
            case Operation.DELETE_BUCKET if ok:
                await self._after_success(self._forget, bucket)
            case Operation.GET_BUCKET_ACL | Operation.GET_OBJECT_ACL if ok:
                response.body = owner_alone(data, await self.owner(bucket))
            case Operation.LIST_BUCKETS if ok:
                response.body = listing_for(data, x.key.record)
        return response

    async def _after_success(self, change: Callable[..., None], *args: str) -> None:
        """A change after the backend's success: the client gets that success even if the
        catalog fails now (the bucket then counts as the admin's), so it is only logged."""
        try:
            await self._threads.run(change, *args)
        except Exception:
            log.exception("bucket owner not updated: %s", args)
