"""The one S3 helper: backend credentials, a boto3 client, and SigV4 signing for aiohttp.

The worker and the CLI use :func:`backend_client` (boto3). The async servers (s3proxy,
origin) stream with aiohttp and sign each request with :class:`BackendSigner`: SigV4
built directly as one canonical string with the day's derived key cached, proven
byte-identical to botocore's ``S3SigV4Auth`` by ``tests/test_backend_signer.py``.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from botocore.auth import (  # type: ignore[attr-defined]  # the stubs omit the private helper
    SIGNED_HEADERS_BLACKLIST,
    SIGV4_TIMESTAMP,
    _host_from_url,
)
from botocore.config import Config as BotoConfig

from nebulacore.config import ConfigError, Settings
from nebulacore.private import write_private

if TYPE_CHECKING:  # the stubs are a dev dependency; at run time the client is plain boto3
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef, ObjectTypeDef
else:
    S3Client = Any

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


@dataclass(frozen=True)
class BackendCredentials:
    access_key: str
    secret_key: str

    def __repr__(self) -> str:  # keeps the secret out of logs and tracebacks
        return f"BackendCredentials(access_key={self.access_key!r}, secret_key='***')"


def embedded_credentials_path(settings: Settings) -> Path:
    return settings.data_path / "storage" / "credentials.json"


def ensure_embedded_credentials(settings: Settings) -> BackendCredentials:
    """Create (first start) or read the embedded SeaweedFS admin key pair."""
    path = embedded_credentials_path(settings)
    if not path.exists():
        creds = {
            "access_key": "nebula-" + secrets.token_hex(8),
            "secret_key": secrets.token_hex(24),
        }
        # Workers may start together on a new data dir: one pair wins, all read it.
        write_private(path, json.dumps(creds), replace=False)
    data = json.loads(path.read_text())
    return BackendCredentials(data["access_key"], data["secret_key"])


def backend_credentials(settings: Settings) -> BackendCredentials:
    if settings.backend_access_key and settings.backend_secret_key:
        return BackendCredentials(
            settings.backend_access_key, settings.backend_secret_key.get_secret_value()
        )
    if settings.embedded_storage:
        return ensure_embedded_credentials(settings)
    raise ConfigError(
        "NEBULA_BACKEND_ACCESS_KEY and NEBULA_BACKEND_SECRET_KEY are required with NEBULA_BACKEND_URL"
    )


def backend_client(settings: Settings, **config: Any) -> S3Client:
    """A boto3 S3 client for the backend (path-style, retries from botocore's standard mode)."""
    # boto3 (~6 MB) only where a client is made: the async services sign with BackendSigner.
    import boto3

    creds = backend_credentials(settings)
    boto_config = BotoConfig(
        s3={"addressing_style": "path"},
        retries={"max_attempts": 3, "mode": "standard"},
        signature_version="s3v4",
        **config,
    )
    return boto3.client(
        "s3",
        endpoint_url=settings.backend_endpoint,
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        region_name=settings.backend_region,
        config=boto_config,
    )


def ensure_buckets(client: S3Client, names: Iterable[str]) -> list[str]:
    """Create the buckets among ``names`` that do not exist yet; return those it created."""
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    created = [name for name in dict.fromkeys(names) if name not in existing]
    for name in created:
        client.create_bucket(Bucket=name)
    return created


def iter_objects(client: S3Client, bucket: str, prefix: str = "") -> Iterator[ObjectTypeDef]:
    """Every object's listing entry under ``prefix``, all pages."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", [])


def list_keys(client: S3Client, bucket: str, prefix: str = "") -> list[str]:
    return [item["Key"] for item in iter_objects(client, bucket, prefix)]


def delete_keys(client: S3Client, bucket: str, keys: list[str]) -> None:
    """DeleteObjects in batches of 1,000, the most one request may name."""
    for start in range(0, len(keys), 1000):
        batch: list[ObjectIdentifierTypeDef] = [{"Key": key} for key in keys[start : start + 1000]]
        client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})


def signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    """SigV4's derived key (``kSigning``): four HMACs, the same all day for one scope."""
    key = ("AWS4" + secret).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    return key


def canonical_header_lines(headers: Sequence[tuple[str, list[str]]]) -> tuple[str, str]:
    """(canonical headers, signed headers) of SigV4, from lower-case names and their
    values in order, as botocore's ``SigV4Auth`` writes them: names sorted, each value's
    runs of whitespace collapsed, repeated values joined by ``,``."""
    lines = []
    for name, values in sorted(headers):
        lines.append(name + ":" + ",".join(" ".join(v.split()) for v in values))
    return "\n".join(lines), ";".join(sorted(name.strip() for name, _ in headers))


def sigv4_signature(key: bytes, timestamp: str, scope: str, canonical_request: str) -> str:
    """The hex signature of a canonical request, signed at ``timestamp`` for ``scope``."""
    digest = hashlib.sha256(canonical_request.encode()).hexdigest()
    string_to_sign = f"AWS4-HMAC-SHA256\n{timestamp}\n{scope}\n{digest}"
    return hmac.digest(key, string_to_sign.encode(), "sha256").hex()


class BackendSigner:
    """Signs requests to the backend with SigV4 for aiohttp callers, as botocore's
    ``S3SigV4Auth.add_auth`` would over the payload hash given.

    botocore rebuilds a generic ``AWSRequest`` (e-mail headers, URL parsing, four HMACs
    for the key) per request, which was most of the proxy's CPU on small objects. Here
    the canonical request is one string and the derived key is kept for its day;
    ``tests/test_backend_signer.py`` proves the output byte-identical to botocore's.
    """

    def __init__(self, settings: Settings) -> None:
        creds = backend_credentials(settings)
        self.endpoint = settings.backend_endpoint.rstrip("/")
        self._access_key = creds.access_key
        self._secret = creds.secret_key
        self._region = settings.backend_region
        self._day_key: tuple[str, bytes] = ("", b"")
        self._hosts: dict[str, str] = {}
        self._second = -1
        self._stamp = ""
        base = urlsplit(self.endpoint)
        # URLs under a bare endpoint (no path of its own) are split without urlsplit.
        self._bare = "" if base.path or base.query else self.endpoint + "/"
        self._netloc = base.netloc

    def url(self, bucket: str, key: str = "", query: str = "") -> str:
        path = f"/{bucket}/{quote(key, safe='/~')}" if key else f"/{bucket}"
        return f"{self.endpoint}{path}" + (f"?{query}" if query else "")

    def _key(self, day: str) -> bytes:
        if self._day_key[0] != day:  # a new day, a new key
            self._day_key = (day, signing_key(self._secret, day, self._region, "s3"))
        return self._day_key[1]

    def _now(self) -> str:
        """The current second as SigV4 writes it, formatted once per second."""
        now = int(time.time())
        if now != self._second:
            self._second, self._stamp = now, time.strftime(SIGV4_TIMESTAMP, time.gmtime(now))
        return self._stamp

    def _split(self, url: str) -> tuple[str, str, str]:
        """(path, query, netloc) of ``url`` as ``urlsplit`` gives them; our own URLs
        (:meth:`url`: percent-encoded, no fragment) are cut at the ``?`` directly."""
        if self._bare and url.startswith(self._bare) and not _UNSPLIT.intersection(url):
            path, _, query = url[len(self.endpoint) :].partition("?")
            return path, query, self._netloc
        parts = urlsplit(url)
        return parts.path, parts.query, parts.netloc

    def _host(self, netloc: str, url: str) -> str:
        """The ``host`` botocore signs for a URL (default port dropped, lower case)."""
        host = self._hosts.get(netloc)
        if host is None:
            host = self._hosts[netloc] = _host_from_url(url)
        return host

    def sign(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        payload_hash: str = UNSIGNED_PAYLOAD,
        timestamp: str | None = None,
    ) -> dict[str, str]:
        """Return ``headers`` plus ``Authorization``, ``X-Amz-Date`` and the payload hash.

        ``timestamp`` (``YYYYMMDDTHHMMSSZ``) is now unless given."""
        stamp = timestamp or self._now()
        path, query, netloc = self._split(url)
        signed: dict[str, str] = {}
        to_sign: dict[str, list[str]] = {}
        date = False
        for name, value in (headers or {}).items():
            lower = name.lower()
            if lower in _REPLACED:
                date = date or lower == "date"
                continue
            signed[name] = value
            if lower not in SIGNED_HEADERS_BLACKLIST:
                to_sign.setdefault(lower, []).append(value)
        if date:  # botocore keeps a Date header (re-dated) and then sends no X-Amz-Date
            signed["Date"] = formatdate(calendar.timegm(time.strptime(stamp, SIGV4_TIMESTAMP)))
            to_sign["date"] = [signed["Date"]]
        else:
            signed["X-Amz-Date"] = stamp
            to_sign["x-amz-date"] = [stamp]
        signed["X-Amz-Content-SHA256"] = payload_hash
        to_sign["x-amz-content-sha256"] = [payload_hash]
        if "host" not in to_sign:
            to_sign["host"] = [self._host(netloc, url)]
        canonical_headers, signed_names = canonical_header_lines(list(to_sign.items()))
        canonical = "\n".join(
            (
                method.upper(),
                path,
                canonical_query(query),
                canonical_headers + "\n",
                signed_names,
                payload_hash,
            )
        )
        scope = f"{stamp[:8]}/{self._region}/s3/aws4_request"
        signature = sigv4_signature(self._key(stamp[:8]), stamp, scope, canonical)
        signed["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self._access_key}/{scope}, "
            f"SignedHeaders={signed_names}, Signature={signature}"
        )
        return signed


# Characters that make urlsplit do more than cut at "?" (a fragment; stripped whitespace).
_UNSPLIT = frozenset("#\t\r\n")
# Headers the signer sets itself (botocore deletes what the caller gave).
_REPLACED = frozenset({"authorization", "x-amz-date", "x-amz-content-sha256", "date"})


def canonical_query(query: str) -> str:
    """SigV4's canonical query of an already-encoded query string: pairs sorted as they are."""
    if not query:
        return ""
    pairs = []
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        pairs.append((name, value))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))
