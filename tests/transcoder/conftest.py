"""Fixtures of the transcoder tests: settings on the session SeaweedFS, uploads, ffprobe."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from catalog import Catalog
from catalog.assets import record_upload
from nebulacore.config import Settings
from nebulacore.s3 import backend_client, ensure_buckets, list_keys
from tests.services import environ_without

# Small ladders keep the tests quick on a 2-core machine; the rules are the same.
TEST_LADDER = "360:500,240:300,144:150"


@dataclass
class Env:
    settings: Settings
    catalog: Catalog
    root: Path

    def upload(self, path: Path, key: str | None = None) -> tuple[str, int]:
        """Put ``path`` in the ingest bucket and record it as the proxy would: (asset, job)."""
        key = key or path.name
        bucket = self.settings.ingest_buckets[0]
        client = backend_client(self.settings)
        client.upload_file(str(path), bucket, key)
        head = client.head_object(Bucket=bucket, Key=key)
        with self.catalog.session() as session:
            asset, job = record_upload(
                session, bucket, key, head["ETag"].strip('"'), head["ContentLength"], None
            )
            return asset.id, job.id

    def hls_keys(self, asset_id: str) -> list[str]:
        client = backend_client(self.settings)
        return sorted(list_keys(client, self.settings.hls_bucket, f"{asset_id}/"))

    def download_ladder(self, asset_id: str, target: Path) -> Path:
        client = backend_client(self.settings)
        for key in self.hls_keys(asset_id):
            local = target / key
            local.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(self.settings.hls_bucket, key, str(local))
        return target / asset_id

    def env_vars(self) -> dict[str, str]:
        """NEBULA_* variables describing these settings, for a worker subprocess."""
        s = self.settings
        env = environ_without()
        env.update(
            {
                "NEBULA_BACKEND_URL": s.backend_endpoint,
                "NEBULA_BACKEND_ACCESS_KEY": s.backend_access_key or "",
                "NEBULA_BACKEND_SECRET_KEY": s.backend_secret_key.get_secret_value()
                if s.backend_secret_key
                else "",
                "NEBULA_DATA_DIR": str(s.data_path),
                "NEBULA_DATABASE_URL": s.catalog_url,
                "NEBULA_INGEST_BUCKETS": ",".join(s.ingest_buckets),
                "NEBULA_HLS_BUCKET": s.hls_bucket,
                "NEBULA_LADDER": s.ladder,
                "NEBULA_HWACCEL": s.hwaccel,
                "NEBULA_JOB_LEASE_SECONDS": str(s.job_lease_seconds),
                "NEBULA_JOB_MAX_ATTEMPTS": str(s.job_max_attempts),
                "NEBULA_RECONCILE_SECONDS": str(s.reconcile_seconds),
                "NEBULA_LOG_FORMAT": "text",
            }
        )
        if s.queue_url:
            env["NEBULA_QUEUE_URL"] = s.queue_url
        return env


@pytest.fixture
def make_env(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> Iterator[Callable[..., Env]]:
    """An ``Env`` with its own ingest bucket and a SQLite catalog (or ``database_url``)."""
    made: list[Env] = []

    def make(**overrides: Any) -> Env:
        overrides.setdefault("ingest_buckets", f"tx-{uuid.uuid4().hex[:10]}")
        overrides.setdefault("hls_bucket", "hls-tx")
        overrides.setdefault("ladder", TEST_LADDER)
        overrides.setdefault("hwaccel", "none")
        settings = make_settings(**overrides)
        ensure_buckets(backend_client(settings), [*settings.ingest_buckets, settings.hls_bucket])
        catalog = Catalog.from_settings(settings)
        catalog.upgrade()
        env = Env(settings, catalog, tmp_path)
        made.append(env)
        return env

    yield make
    for env in made:
        env.catalog.dispose()


@pytest.fixture(scope="session")
def tasks_module(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``transcoder.tasks`` with its ``huey_consumer`` queue under a temporary data dir
    (that Huey is built from the environment on first access; keep it out of the repo)."""
    saved = os.environ.get("NEBULA_DATA_DIR")
    data = tmp_path_factory.mktemp("tasks-data")
    os.environ["NEBULA_DATA_DIR"] = str(data)
    try:
        import transcoder.tasks

        # First access binds it, now, while the environment names the temporary dir.
        assert Path(transcoder.tasks.huey.storage.filename).parent == data
        return transcoder.tasks
    finally:
        if saved is None:
            del os.environ["NEBULA_DATA_DIR"]
        else:
            os.environ["NEBULA_DATA_DIR"] = saved


def ffprobe(target: str | Path, *args: str) -> dict[str, Any]:
    argv = ["ffprobe", "-v", "error", "-of", "json", *args, str(target)]
    result = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120)
    return dict(json.loads(result.stdout))
