"""Who is asking, and may they: key lookup (cached briefly), signature check, scopes."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from catalog import Catalog
from catalog.keys import SecretBox, active_key, allows, may_create
from catalog.models import AccessKey
from nebulacore.blocking import Offload
from s3proxy.addressing import Target, check_copy_source, copy_source_bucket
from s3proxy.claims import SignatureClaim
from s3proxy.errors import S3Error

CACHE_SECONDS = 5.0  # a revoked key stops working within this long
LOOKUP_THREADS = 4


@dataclass(frozen=True)
class KnownKey:
    record: AccessKey  # detached row: is_admin, scopes
    secret: str = field(repr=False)


class KeyStore:
    """Active keys from the catalog with their decrypted secrets, cached for a few seconds.

    Lookups run on threads of their own, so they never queue behind catalog writes
    (upload events) that a locked catalog holds up.
    """

    def __init__(self, catalog: Catalog, box: SecretBox, ttl: float = CACHE_SECONDS) -> None:
        self._catalog = catalog
        self._box = box
        self._ttl = ttl
        self._cache: dict[str, tuple[float, KnownKey | None]] = {}
        self._threads = Offload(LOOKUP_THREADS, "key-lookup")

    def close(self) -> None:
        self._threads.close()

    def _load(self, access_key_id: str) -> KnownKey | None:
        with self._catalog.session() as session:
            row = active_key(session, access_key_id)
            if row is None:
                return None
            return KnownKey(row, self._box.decrypt(row.secret_encrypted))

    async def get(self, access_key_id: str) -> KnownKey | None:
        now = time.monotonic()
        cached = self._cache.get(access_key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            key = await self._threads.run(self._load, access_key_id)
        except Exception as exc:
            raise S3Error("ServiceUnavailable", "The key catalog is unavailable.") from exc
        if len(self._cache) > 10_000:  # unknown ids are cached too; bound the table
            self._cache.clear()
        self._cache[access_key_id] = (now + self._ttl, key)
        return key


async def known_key(keys: KeyStore, access_key_id: str) -> KnownKey:
    """The active key ``access_key_id``, or ``InvalidAccessKeyId``."""
    key = await keys.get(access_key_id)
    if key is None:
        raise S3Error(
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
            AWSAccessKeyId=access_key_id,
        )
    return key


async def identify(claim: SignatureClaim, keys: KeyStore, regions: Sequence[str]) -> KnownKey:
    claim.check_time(regions)
    return await known_key(keys, claim.access_key_id)


def required_access(
    method: str, target: Target, copy_source: str | None
) -> list[tuple[str | None, str]]:
    """The (bucket, permission) pairs a request needs: r, rw, or admin."""
    reading = method in ("GET", "HEAD")
    if target.bucket is None:
        return [(None, "r" if reading else "admin")]
    if not target.key:
        if reading:
            need = "r"
        elif method == "POST" and target.has("delete"):  # DeleteObjects
            need = "rw"
        else:  # CreateBucket, DeleteBucket, bucket configuration
            need = "admin"
        return [(target.bucket, need)]
    needs: list[tuple[str | None, str]] = [(target.bucket, "r" if reading else "rw")]
    if copy_source and method == "PUT":  # CopyObject, UploadPartCopy
        check_copy_source(copy_source)
        needs.append((copy_source_bucket(copy_source), "r"))
    return needs


def authorize(key: KnownKey, method: str, target: Target, copy_source: str | None) -> bool:
    """AccessDenied unless ``key`` may do this. True when it may only because it may
    create the object: the write must then not overwrite (``If-None-Match: *``)."""
    create_only = False
    for index, (bucket, need) in enumerate(required_access(method, target, copy_source)):
        # A prefix scope may grant the target's own object (listed first), never the
        # source of a copy, which would read outside the prefix.
        object_key = target.key if index == 0 else ""
        if allows(key.record, bucket, need, object_key):
            continue
        if index == 0 and creates(method, target, copy_source):
            assert bucket is not None  # an object's
            if may_create(key.record, bucket, object_key):
                create_only = True
                continue
        where = f"bucket '{bucket}'" if bucket else "this service"
        raise S3Error("AccessDenied", f"Access Denied: this key lacks '{need}' on {where}.")
    return create_only


def creates(method: str, target: Target, copy_source: str | None) -> bool:
    """A plain PutObject (a POST form's too): no copy, no part, no sub-resource."""
    return method == "PUT" and bool(target.key) and not copy_source and not target.backend_query()


def never_overwrite(headers: dict[str, str]) -> None:
    """Make a PutObject conditional on its key being free (S3's conditional write): the
    backend answers 412 PreconditionFailed, and stores nothing, when it is taken."""
    headers.pop("if-match", None)
    headers["if-none-match"] = "*"
