"""Fixtures that start real services: SeaweedFS, PostgreSQL databases, Redis DBs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import text

from catalog import Catalog
from catalog.models import Base
from nebulacore.config import Settings, load_settings
from tests.services import create_pg_database, drop_pg_database, fresh_redis_url
from tests.stacks import Seaweed, start_seaweed


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seaweed]:
    server = start_seaweed(tmp_path_factory.mktemp("seaweed"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    url = create_pg_database()
    Catalog(url).upgrade()
    yield url
    drop_pg_database(url)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = fresh_redis_url()
    yield url
    redis.Redis.from_url(url).flushdb()


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    """A migrated, empty catalog on each engine."""
    if request.param == "sqlite":
        cat = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
        cat.upgrade()
    else:
        cat = Catalog(request.getfixturevalue("pg_url"))
    yield cat
    if request.param == "postgresql":
        with cat.engine.begin() as conn:
            names = ", ".join(t.name for t in Base.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    cat.dispose()


@pytest.fixture
def make_settings(tmp_path: Path, seaweed: Seaweed) -> Callable[..., Settings]:
    """Settings pointing at the session's SeaweedFS, data under this test's tmp dir."""

    def make(**overrides: Any) -> Settings:
        env = {**seaweed.env, "NEBULA_DATA_DIR": str(tmp_path / "data")}
        return load_settings(env, **overrides)

    return make
