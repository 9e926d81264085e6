"""The one S3 helper: backend credentials, a boto3 client, and SigV4 signing for aiohttp.

The worker and the CLI use :func:`backend_client` (boto3). The async servers (s3proxy,
origin) stream with aiohttp and sign each request with :class:`BackendSigner`, which
wraps botocore's signer so no SigV4 code of ours talks to the backend.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials

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
        write_private(path, json.dumps(creds))
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


class _GivenPayloadAuth(S3SigV4Auth):
    """SigV4 over a payload hash the caller supplies: the body is a stream we never hold."""

    def payload(self, request: AWSRequest) -> str:
        return str(request.context.get("payload_hash", UNSIGNED_PAYLOAD))


class BackendSigner:
    """Signs requests to the backend with botocore's SigV4 (for aiohttp callers)."""

    def __init__(self, settings: Settings) -> None:
        creds = backend_credentials(settings)
        self.endpoint = settings.backend_endpoint.rstrip("/")
        self._auth = _GivenPayloadAuth(
            Credentials(creds.access_key, creds.secret_key), "s3", settings.backend_region
        )

    def url(self, bucket: str, key: str = "", query: str = "") -> str:
        from urllib.parse import quote

        path = f"/{bucket}/{quote(key, safe='/~')}" if key else f"/{bucket}"
        return f"{self.endpoint}{path}" + (f"?{query}" if query else "")

    def sign(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        payload_hash: str = UNSIGNED_PAYLOAD,
    ) -> dict[str, str]:
        """Return ``headers`` plus ``Authorization``, ``X-Amz-Date`` and the payload hash."""
        request = AWSRequest(method=method, url=url, headers=dict(headers or {}))
        request.context["payload_hash"] = payload_hash
        self._auth.add_auth(request)
        return dict(request.headers.items())
