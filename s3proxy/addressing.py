"""Where a request points: bucket, key and query, path-style or virtual-hosted-style."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from nebulacore.config import Settings
from s3proxy.errors import S3Error

# Query parameters of presigned URLs (SigV4, then SigV2): they authenticate the request,
# the backend never sees them.
PRESIGN_PARAMS = frozenset(
    {
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-date",
        "x-amz-expires",
        "x-amz-signedheaders",
        "x-amz-signature",
        "x-amz-security-token",
        "awsaccesskeyid",
        "expires",
        "signature",
    }
)

# S3's bucket naming rules: 3-63 of a-z 0-9 . -, a letter or digit at each end.
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
IPV4_LIKE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")


def check_bucket_name(name: str) -> None:
    """Refuse what S3 would (a name with ``:`` or a space used to reach the backend
    unencoded and come back as a signature error or a plain-text 400)."""
    if not BUCKET_NAME.fullmatch(name) or ".." in name or IPV4_LIKE.fullmatch(name):
        raise S3Error("InvalidBucketName", "The specified bucket is not valid.", BucketName=name)


@dataclass(frozen=True)
class Target:
    bucket: str | None
    key: str
    # Decoded (name, value) pairs in the order the client sent them.
    query: tuple[tuple[str, str], ...]
    # The path as signed by clients: each segment percent-encoded once.
    canonical_path: str
    # The bucket came from the Host header (``bucket.<domain>``), not from the path.
    virtual_hosted: bool = False

    def has(self, name: str) -> bool:
        return any(k == name for k, _ in self.query)

    def backend_query(self) -> str:
        """The query for the backend: presign parameters removed, canonically encoded."""
        return "&".join(
            f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
            for k, v in self.query
            if k.lower() not in PRESIGN_PARAMS
        )


def parse_query(raw: str) -> tuple[tuple[str, str], ...]:
    """Split on ``&`` and ``=`` and percent-decode; ``+`` stays ``+`` as S3 clients mean it.

    A name given twice is refused: the proxy and the backend could each take another of
    its values (``fetch-owner=true&fetch-owner=false``: the proxy read the last, SeaweedFS
    the first), and no S3 operation takes a parameter twice."""
    pairs = []
    seen: set[str] = set()
    for part in raw.split("&"):
        if part:
            name, _, value = part.partition("=")
            name = unquote(name)
            if name in seen:
                raise S3Error(
                    "InvalidArgument",
                    f"The query parameter {name} is given more than once.",
                    ArgumentName=name,
                )
            seen.add(name)
            pairs.append((name, unquote(value)))
    return tuple(pairs)


def check_object_key(key: str) -> None:
    """Refuse a key the backend would read as another: SeaweedFS keeps its objects as
    files, so an empty segment (a leading ``/``, ``//``: ``DELETE /media//`` deleted the
    bucket, ``/media//video.mp4`` deleted ``video.mp4``) or a ``.``/``..`` segment names
    another path than the one the proxy authorized and announces; it also reads ``\\``
    as ``/``. A trailing ``/`` (a folder marker) is a key of its own on both sides."""
    segments = key.split("/")
    if "" in segments[:-1] or "." in segments or ".." in segments or "\\" in key:
        raise S3Error(
            "InvalidArgument",
            "Object keys with an empty segment (a leading '/' or '//'), a '.' or '..' "
            "segment or a backslash are not supported.",
            ArgumentName="key",
            ArgumentValue=key,
        )


def host_bucket(host: str, domain: str | None) -> str | None:
    """``photos.s3.example.org`` -> ``photos`` when the domain is ``s3.example.org``."""
    if not domain:
        return None
    name = host.lower().rsplit(":", 1)[0] if not host.startswith("[") else host
    suffix = "." + domain.lower().strip(".")
    if name.endswith(suffix) and len(name) > len(suffix):
        return name[: -len(suffix)]
    return None


def parse_target(raw_path: str, host: str, settings: Settings) -> Target:
    path, _, raw_query = raw_path.partition("?")
    decoded = unquote(path)
    canonical_path = quote(decoded, safe="/~")
    bucket = host_bucket(host, settings.s3_domain)
    virtual_hosted = bucket is not None
    if virtual_hosted:
        key = decoded[1:]
    else:
        name, _, key = decoded[1:].partition("/")
        bucket = name or None
    if bucket is not None:
        check_bucket_name(bucket)
    if key:
        check_object_key(key)
    return Target(bucket, key, parse_query(raw_query), canonical_path, virtual_hosted)


def copy_source_bucket(header: str) -> str:
    """``/src-bucket/some%20key?versionId=x`` -> ``src-bucket``."""
    return unquote(header.split("?", 1)[0]).lstrip("/").partition("/")[0]


def check_copy_source(header: str) -> None:
    """The bucket and key of ``x-amz-copy-source`` follow the rules of a request's own:
    the key is what the bucket's ``r`` scope was checked for, so it may not walk out of
    it (``/media/../hls/x``) or be read as another."""
    path = unquote(header.split("?", 1)[0])
    bucket, _, key = path.removeprefix("/").partition("/")
    check_bucket_name(bucket)
    if not key:
        raise S3Error("InvalidArgument", "Copy Source must mention the source bucket and key")
    check_object_key(key)
