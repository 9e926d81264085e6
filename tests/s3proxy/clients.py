"""Shared pieces of the real-client matrix: the target, shared test data, client configs.

Every client module (aws CLI, rclone, s3cmd, boto3, minio-py) runs the same scenarios
against a :class:`Target`: by default the s3proxy in front of the session's SeaweedFS.
``NEBULA_TEST_CLIENTS_TARGET=backend`` points the same tests at SeaweedFS directly,
which is how each client's invocation was checked before the proxy existed (the
scoped-key tests skip there: SeaweedFS knows only the backend key).

The 100 MiB file and the 1,500-key listing are made once per session and shared by
every client module (module-level caches: each module imports the fixtures, so pytest
would otherwise build them once per module).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config as BotoConfig

from catalog.keys import KeyPair
from nebulacore.s3 import backend_client, ensure_buckets, ensure_embedded_credentials

TARGET_ENV = "NEBULA_TEST_CLIENTS_TARGET"
REGION = "us-east-1"
BUCKET = "clients"  # every client writes under its own prefix here
OTHER_BUCKET = "clients-other"  # a key scoped to BUCKET must be refused here
MANY_PREFIX = "many/"
MANY_COUNT = 1500
BIG_SIZE = 100 * 1024 * 1024
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Target:
    """An S3 endpoint and the keys the clients use against it."""

    name: str  # "proxy" or "backend"
    endpoint: str
    key: KeyPair
    make_key: Callable[[dict[str, str]], KeyPair] | None
    # A boto3 client straight to the storage, where a refusal must have changed nothing
    # (None where a Target only configures a client).
    backend: Any = None

    @property
    def hostport(self) -> str:
        return urlsplit(self.endpoint).netloc

    def scoped_key(self, scopes: dict[str, str]) -> KeyPair:
        if self.make_key is None:
            pytest.skip("scoped keys exist only behind the s3proxy")
        return self.make_key(scopes)

    def wrong_secret(self) -> KeyPair:
        return KeyPair(self.key.access_key_id, "wrong-" + self.key.secret[6:])

    def unknown_key(self) -> KeyPair:
        return KeyPair("NKUNKNOWN0000000000000", "x" * 40)


@dataclass(frozen=True)
class BigFile:
    path: Path
    sha256: str
    size: int


# ----- fixtures (imported by every client module) ------------------------------------


@pytest.fixture(scope="module")
def target(request: pytest.FixtureRequest) -> Target:
    if os.environ.get(TARGET_ENV, "proxy") == "backend":
        seaweed = request.getfixturevalue("seaweed")
        creds = ensure_embedded_credentials(seaweed.settings)
        settings = seaweed.settings
        found = Target(
            "backend",
            seaweed.endpoint,
            KeyPair(creds.access_key, creds.secret_key),
            None,
            backend_client(settings),
        )
    else:
        proxy = request.getfixturevalue("proxy")
        settings = proxy.settings
        found = Target(
            "proxy", proxy.endpoint, proxy.admin, proxy.make_key, backend_client(settings)
        )
    # Bucket creation is set-up, not the subject: it goes straight to the backend.
    ensure_buckets(found.backend, [BUCKET, OTHER_BUCKET])
    return found


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> BigFile:
    return _shared_big_file(tmp_path_factory.getbasetemp() / "clients-big.bin")


@pytest.fixture(scope="module")
def many_keys(target: Target) -> str:
    """The prefix under which MANY_COUNT small objects exist (uploaded through the target)."""
    _ensure_many_keys(target)
    return MANY_PREFIX


_lock = threading.Lock()
_big_files: dict[Path, BigFile] = {}
_many_done: set[str] = set()


def _shared_big_file(path: Path) -> BigFile:
    with _lock:
        if path not in _big_files:
            digest = hashlib.sha256()
            with path.open("wb") as out:
                for _ in range(BIG_SIZE // CHUNK):
                    block = os.urandom(CHUNK)
                    digest.update(block)
                    out.write(block)
            _big_files[path] = BigFile(path, digest.hexdigest(), BIG_SIZE)
        return _big_files[path]


def _ensure_many_keys(target: Target) -> None:
    with _lock:
        if target.endpoint in _many_done:
            return
        client = boto_client(target, max_pool_connections=16)

        def put(index: int) -> None:
            client.put_object(
                Bucket=BUCKET, Key=f"{MANY_PREFIX}k{index:05d}", Body=f"object {index}".encode()
            )

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(put, range(MANY_COUNT)))
        _many_done.add(target.endpoint)


def many_key_names() -> list[str]:
    return [f"{MANY_PREFIX}k{i:05d}" for i in range(MANY_COUNT)]


# ----- clients ----------------------------------------------------------------------


def boto_client(target: Target, key: KeyPair | None = None, **config: Any) -> Any:
    """A boto3 S3 client for ``target`` (path-style, us-east-1); ``config`` goes to botocore."""
    key = key or target.key
    return boto3.client(
        "s3",
        endpoint_url=target.endpoint,
        aws_access_key_id=key.access_key_id,
        aws_secret_access_key=key.secret,
        region_name=REGION,
        config=BotoConfig(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            retries={"max_attempts": 1, "mode": "standard"},
            **config,
        ),
    )


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a client CLI: no AWS_* from the user, no home config files."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env.update(extra)
    return env


def run(
    argv: list[str], env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv[:4])}... exited {result.returncode}\n"
            f"stdout: {result.stdout[-3000:]}\nstderr: {result.stderr[-3000:]}"
        )
    return result


class CliClient:
    """A command-line S3 client under test: call it with arguments, expect S3 error codes."""

    # How the client prints an S3 error code in its stderr ("(AccessDenied)" for most).
    error_format = "({code})"

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        raise NotImplementedError

    def fails_with(self, code: str, *args: str) -> None:
        result = self(*args, check=False)
        assert result.returncode != 0, result.stdout
        assert self.error_format.format(code=code) in result.stderr, result.stderr


def run_for_bytes(argv: list[str], env: dict[str, str]) -> bytes:
    """Run a client that writes object bytes to stdout; return them undecoded."""
    result = subprocess.run(argv, env=env, capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-3000:]
    return result.stdout


def aws_env(target: Target, key: KeyPair, directory: Path) -> dict[str, str]:
    """Env for the aws CLI with its config and credentials in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "aws-config"
    credentials = directory / "aws-credentials"
    config.write_text(
        f"[default]\nregion = {REGION}\ns3 =\n    addressing_style = path\n"
        # aws CLI v1 presigns with SigV2 unless told otherwise; these tests presign with
        # SigV4 (its default SigV2 URLs: tests/s3proxy/test_sigv2.py).
        "    signature_version = s3v4\n"
        "    multipart_threshold = 8MB\n    multipart_chunksize = 16MB\n"
    )
    credentials.write_text(
        f"[default]\naws_access_key_id = {key.access_key_id}\n"
        f"aws_secret_access_key = {key.secret}\n"
    )
    return clean_env(
        AWS_CONFIG_FILE=str(config),
        AWS_SHARED_CREDENTIALS_FILE=str(credentials),
        HOME=str(directory),
    )


def rclone_config(target: Target, key: KeyPair, directory: Path) -> Path:
    """An rclone config with one remote named ``t`` (S3, path-style, no bucket creation)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "rclone.conf"
    path.write_text(
        "[t]\ntype = s3\nprovider = Other\n"
        f"access_key_id = {key.access_key_id}\nsecret_access_key = {key.secret}\n"
        f"endpoint = {target.endpoint}\nregion = {REGION}\n"
        "force_path_style = true\nno_check_bucket = true\n"
        # Multipart from 16 MiB so the 100 MiB file goes up in parts.
        "upload_cutoff = 16Mi\nchunk_size = 16Mi\n"
    )
    return path


def s3cmd_config(target: Target, key: KeyPair, directory: Path) -> Path:
    """An s3cmd config: SigV4, path-style (host_bucket without %(bucket)s), plain HTTP."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "s3cfg"
    path.write_text(
        "[default]\n"
        f"access_key = {key.access_key_id}\nsecret_key = {key.secret}\n"
        f"host_base = {target.hostport}\nhost_bucket = {target.hostport}\n"
        f"bucket_location = {REGION}\nuse_https = False\nsignature_v2 = False\n"
        "multipart_chunk_size_mb = 16\nprogress_meter = False\n"
    )
    return path


# ----- checks -----------------------------------------------------------------------


def unique_key(prefix: str) -> str:
    """A key no other test (or earlier run against the same storage) has written."""
    return f"{prefix}/{uuid.uuid4().hex}"


def assert_not_stored(target: Target, bucket: str, key: str) -> None:
    """A refused write left nothing in storage (asked of the backend, not the proxy)."""
    listed = target.backend.list_objects_v2(Bucket=bucket, Prefix=key)
    assert listed.get("KeyCount", 0) == 0, f"refused write stored {bucket}/{key}"


def plant(target: Target, bucket: str, key: str, body: bytes) -> None:
    """Put an object straight into storage, for a refused DELETE or overwrite to aim at."""
    target.backend.put_object(Bucket=bucket, Key=key, Body=body)


def assert_still_stored(target: Target, bucket: str, key: str, body: bytes) -> None:
    """A refused DELETE or overwrite left the object as it was (read from the backend)."""
    stored = target.backend.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert stored == body, f"refused request changed {bucket}/{key}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str) -> tuple[int, bytes]:
    """Plain HTTP GET (no S3 client involved): status and body, errors included."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def error_code(body: bytes) -> str:
    """The ``<Code>`` of an S3 error document."""
    return ET.fromstring(body).findtext("Code") or ""


def wait_until_expired(expires_in: int) -> None:
    """Sleep past a presign's lifetime (X-Amz-Date has whole-second resolution)."""
    time.sleep(expires_in + 1.5)


def assert_presign_lifetime(lasting: str, brief: str, payload: bytes) -> None:
    """A URL presigned for an hour serves ``payload``; one presigned for a second is
    refused, once expired, with AccessDenied saying so."""
    assert fetch(lasting) == (200, payload)
    wait_until_expired(1)
    status, body = fetch(brief)
    assert status == 403
    assert error_code(body) == "AccessDenied"
    assert b"expired" in body.lower()


def small_payload(tag: str) -> bytes:
    return f"hello from {tag}\n".encode() * 64


def ranged_source() -> bytes:
    """A 64 KiB object whose every byte position is recognisable."""
    return bytes(i % 251 for i in range(64 * 1024))
