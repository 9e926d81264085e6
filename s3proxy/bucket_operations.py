"""Which bucket operations reach the backend: one allow-list, here and in docs/s3.md.

A request on a bucket (no key) is one of S3's bucket operations, named by its method and
its sub-resource (``PUT /photos?policy`` is PutBucketPolicy). The table of them is read
from botocore's S3 model, so no name is typed here twice. Only the operations in
:data:`ALLOWED` pass; every other one is refused before anything reaches the backend.
The refused ones are those that would grant access to someone else than Nebula's keys
(a bucket policy, a public access block, a website, replication or notification targets,
logging into another bucket) and those Nebula has no use for. A request naming two
sub-resources is refused too: which one the backend acts on is its router's choice; so
is a request on an object naming a bucket's sub-resource (:func:`check_object_operation`).
"""

from __future__ import annotations

from botocore.loaders import Loader

from s3proxy.addressing import Target
from s3proxy.errors import S3Error


def _operations(resource: str) -> dict[tuple[str, str], str]:
    """(method, sub-resource) -> operation name, from the S3 model's request URIs on
    ``resource`` (``/{Bucket}?policy``); "" for the resource itself. Of two operations on
    one pair, the current one is named, not its deprecated predecessor."""
    model = Loader().load_service_model("s3", "service-2")
    table: dict[tuple[str, str], str] = {}
    for name, op in model["operations"].items():
        path, _, query = op["http"]["requestUri"].partition("?")
        if path.rstrip("/") != resource:
            continue
        pair = (op["http"]["method"], query.partition("=")[0].partition("&")[0])
        if pair not in table or not op.get("deprecated"):
            table[pair] = name
    return table


BUCKET_OPERATIONS = _operations("/{Bucket}")
OBJECT_OPERATIONS = _operations("/{Bucket}/{Key+}")
SUB_RESOURCES = frozenset(sub for _, sub in BUCKET_OPERATIONS if sub)

# The bucket operations the backend receives (docs/s3.md lists them, each has a test in
# tests/s3proxy/test_trust_bucket_config.py). Nothing here can open a bucket to anyone
# else: ACLs are checked to name the owner alone (s3proxy.owners), CORS rules only let
# browsers send requests signed with a Nebula key, and a bucket policy can only be read
# or removed.
ALLOWED = frozenset(
    {
        "CreateBucket",
        "DeleteBucket",
        "HeadBucket",
        "ListObjects",
        "ListObjectsV2",
        "ListObjectVersions",
        "ListMultipartUploads",
        "DeleteObjects",
        "GetBucketLocation",
        "GetBucketAcl",
        "PutBucketAcl",
        "GetBucketCors",
        "PutBucketCors",
        "DeleteBucketCors",
        "GetBucketVersioning",
        "PutBucketVersioning",
        "GetBucketTagging",
        "PutBucketTagging",
        "DeleteBucketTagging",
        "GetBucketLifecycleConfiguration",
        "PutBucketLifecycleConfiguration",
        "DeleteBucketLifecycle",
        # Not PutBucketEncryption: SeaweedFS over HTTPS volumes reads large encrypted objects wrong.
        "GetBucketEncryption",
        "DeleteBucketEncryption",
        "GetBucketPolicy",
        "DeleteBucketPolicy",
        "GetObjectLockConfiguration",
        "PutObjectLockConfiguration",
    }
)
# Refused as S3 refuses them under Block Public Access: they are about who else may come in.
DENIED = frozenset({"PutBucketPolicy", "PutPublicAccessBlock", "DeletePublicAccessBlock"})


def named_sub_resources(target: Target) -> list[str]:
    return [name for name, _ in target.query if name in SUB_RESOURCES]


def bucket_operation_name(method: str, target: Target) -> str | None:
    """The S3 operation a request on a bucket is; None for two sub-resources or a method
    the sub-resource does not take."""
    named = named_sub_resources(target)
    if len(named) > 1:
        return None
    sub = named[0] if named else ""
    if method == "HEAD" and not sub:
        return "HeadBucket"
    return BUCKET_OPERATIONS.get((method, sub))


def check_bucket_operation(method: str, target: Target) -> None:
    """Refuse a bucket operation that is not in :data:`ALLOWED`."""
    name = bucket_operation_name(method, target)
    if name in ALLOWED:
        return
    named = named_sub_resources(target)
    if len(named) > 1:
        raise S3Error(
            "InvalidArgument",
            f"A request names one sub-resource at most, not {', '.join(named)}.",
            ArgumentName=named[1],
        )
    if name is None:
        raise S3Error(
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
            Method=method,
            ResourceType="BUCKET",
        )
    message = f"{name} is not accepted: only Nebula keys give access to a bucket (docs/s3.md)."
    raise S3Error("AccessDenied" if name in DENIED else "NotImplemented", message)


def check_object_operation(method: str, target: Target) -> None:
    """Refuse a request on an object that names a bucket's sub-resource its method does
    not take on an object: SeaweedFS routes ``GET /media/x?uploads`` to
    ListMultipartUploads and ``POST /media/x?delete`` to DeleteObjects, whatever the key,
    where the proxy saw an object request (unchecked keys, no catalog event)."""
    for name, _ in target.query:
        if name in SUB_RESOURCES and (method, name) not in OBJECT_OPERATIONS:
            raise S3Error(
                "MethodNotAllowed",
                "The specified method is not allowed against this resource.",
                Method=method,
                ResourceType="OBJECT",
            )
