"""One owner per bucket, though every Nebula key reaches the backend as the same identity.

CreateBucket of a bucket another owner created here is refused with ``BucketAlreadyExists``
before it reaches the backend (which would answer ``BucketAlreadyOwnedByYou`` to anyone);
a successful one records the key's owner; DeleteBucket frees the name. ListBuckets and
GetBucketAcl show the owner instead of the backend's single identity. Buckets with no
recorded owner (made before, or directly on the backend) are the admin's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web

from catalog import Catalog
from catalog.buckets import ADMIN_OWNER, forget_owner, record_owner, recorded_owner
from nebulacore.backend import Backend
from nebulacore.blocking import Offload
from nebulacore.s3 import UNSIGNED_PAYLOAD
from s3proxy.addressing import Target
from s3proxy.errors import S3Error
from s3proxy.exchange import Exchange, Operation
from s3proxy.forward import open_upstream
from s3proxy.listing import listing_for, with_owner

log = logging.getLogger(__name__)

# The operations whose answers this module reads whole and rewrites.
OWNED = frozenset(
    {
        Operation.CREATE_BUCKET,
        Operation.DELETE_BUCKET,
        Operation.GET_BUCKET_ACL,
        Operation.LIST_BUCKETS,
    }
)


def already_exists(bucket: str) -> S3Error:
    return S3Error(
        "BucketAlreadyExists",
        "The requested bucket name is not available. The bucket namespace is shared by all "
        "users of the system. Please select a different name and try again.",
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
            forget_owner(session, bucket)

    async def recorded(self, bucket: str) -> str | None:
        try:
            return await self._threads.run(self._recorded, bucket)
        except Exception as exc:
            raise S3Error("ServiceUnavailable", "The catalog is unavailable.") from exc

    async def owner(self, bucket: str) -> str:
        return await self.recorded(bucket) or ADMIN_OWNER

    async def before_create(self, x: Exchange) -> None:
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

    async def answer(self, x: Exchange, response: web.Response, data: bytes) -> web.Response:
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
            case Operation.GET_BUCKET_ACL if ok:
                response.body = with_owner(data, await self.owner(bucket))
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
