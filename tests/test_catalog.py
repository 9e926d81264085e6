"""Catalog behaviour, run on both PostgreSQL and SQLite (the ``catalog`` fixture)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from catalog import Asset, AssetStatus, Catalog, Job, JobKind, JobStatus, OutboxEvent, Rendition
from catalog.assets import (
    changed_since,
    deleted_ids,
    list_assets,
    record_delete,
    record_upload,
)
from catalog.buckets import (
    ADMIN_OWNER,
    bucket_owner,
    forget_owner,
    owner_id,
    record_owner,
    recorded_owner,
)
from catalog.db import alembic_config, current_revision, make_engine, upgrade
from catalog.keys import (
    KeyError_,
    SecretBox,
    active_key,
    allows,
    create_key,
    ensure_admin_key,
    list_keys,
    parse_scopes,
    revoke_key,
)
from tests.services import create_pg_database, drop_pg_database


def test_migrations_reach_head(catalog: Catalog) -> None:
    head = ScriptDirectory.from_config(alembic_config(catalog.url)).get_current_head()
    assert (
        head is not None and head >= "0004"
    )  # 0002: ladder retention, 0003: bucket owners, 0004: index
    assert current_revision(catalog.url) == head


def test_upload_records_asset_job_and_outbox_together(catalog: Catalog) -> None:
    with catalog.session() as s:
        asset, _job = record_upload(s, "media", "a/clip.mp4", '"abc"', 1234, "video/mp4")
        asset_id = asset.id
    with catalog.session() as s:
        stored = s.get(Asset, asset_id)
        assert stored is not None and stored.status == AssetStatus.QUEUED
        assert stored.created_at.tzinfo is not None and stored.created_at.tzinfo.utcoffset(
            None
        ) == UTC.utcoffset(None)
        jobs = s.scalars(select(Job).where(Job.asset_id == asset_id)).all()
        assert [(j.kind, j.status, j.source_etag) for j in jobs] == [
            (JobKind.TRANSCODE, JobStatus.QUEUED, '"abc"')
        ]
        events = s.scalars(select(OutboxEvent)).all()
        assert [e.payload for e in events] == [{"job_id": jobs[0].id, "asset_id": asset_id}]


def test_failed_transaction_leaves_neither_row_nor_event(catalog: Catalog) -> None:
    with pytest.raises(RuntimeError), catalog.session() as s:
        record_upload(s, "media", "x.mp4", None, 1, None)
        raise RuntimeError("crash before commit")
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(Asset)) == 0
        assert s.scalar(select(func.count()).select_from(OutboxEvent)) == 0


def test_overwrite_requeues_same_asset_and_cancels_old_job(catalog: Catalog) -> None:
    with catalog.session() as s:
        first, job1 = record_upload(s, "media", "v.mp4", '"1"', 10, "video/mp4")
        first.status = AssetStatus.READY
    with catalog.session() as s:
        second, _job2 = record_upload(s, "media", "v.mp4", '"2"', 20, "video/mp4")
        assert second.id == first.id and second.status == AssetStatus.QUEUED
    with catalog.session() as s:
        old = s.get(Job, job1.id)
        assert old is not None and old.status == JobStatus.CANCELLED
        assert s.get(Asset, first.id).etag == '"2"'  # type: ignore[union-attr]


def test_bucket_key_is_unique(catalog: Catalog) -> None:
    with pytest.raises(IntegrityError), catalog.session() as s:
        s.add(Asset(bucket="media", key="k"))
        s.add(Asset(bucket="media", key="k"))
        s.flush()


def test_delete_marks_asset_and_queues_removal(catalog: Catalog) -> None:
    with catalog.session() as s:
        asset, _ = record_upload(s, "media", "gone.mp4", None, 1, None)
    with catalog.session() as s:
        job = record_delete(s, "media", "gone.mp4")
        assert job is not None and job.kind == JobKind.REMOVE
        assert record_delete(s, "media", "unknown.mp4") is None
    with catalog.session() as s:
        assert s.get(Asset, asset.id).status == AssetStatus.DELETED  # type: ignore[union-attr]
        assert list_assets(s) == []
        assert [a.id for a in list_assets(s, include_deleted=True)] == [asset.id]


def test_changes_since_a_time_name_deletions_and_uploads_over(catalog: Catalog) -> None:
    with catalog.session() as s:
        kept, _ = record_upload(s, "media", "kept.mp4", None, 1, None)
        gone, _ = record_upload(s, "media", "gone.mp4", None, 1, None)
        kept_id, gone_id = kept.id, gone.id
    with catalog.session() as s:
        since = s.get(Asset, gone_id).updated_at  # type: ignore[union-attr]
        assert changed_since(s, since) == [] and deleted_ids(s) == []
        record_delete(s, "media", "gone.mp4")
    with catalog.session() as s:
        (change,) = changed_since(s, since)
        assert change.asset_id == gone_id and change.deleted and change.updated_at > since
        assert deleted_ids(s) == [gone_id]
        record_upload(s, "media", "gone.mp4", None, 2, None)  # uploaded again
    with catalog.session() as s:
        (change,) = changed_since(s, since)
        assert change.asset_id == gone_id and change.status == AssetStatus.QUEUED
        assert deleted_ids(s) == [] and kept_id not in {c.asset_id for c in changed_since(s, since)}


def test_renditions_belong_to_asset_and_cascade(catalog: Catalog) -> None:
    with catalog.session() as s:
        asset, _ = record_upload(s, "media", "r.mp4", None, 1, None)
        s.add(
            Rendition(
                asset=asset,
                name="720p",
                width=1280,
                height=720,
                bandwidth=3_000_000,
                codecs="avc1.64001f,mp4a.40.2",
                playlist="720p/index.m3u8",
            )
        )
    with catalog.session() as s:
        stored = s.get(Asset, asset.id)
        assert stored is not None and [r.name for r in stored.renditions] == ["720p"]
        s.delete(stored)
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(Rendition)) == 0


def test_keys_encrypted_at_rest_scoped_and_revocable(catalog: Catalog, tmp_path) -> None:
    box = SecretBox.from_key_file(tmp_path / "secret.key")
    with catalog.session() as s:
        pair = create_key(s, box, "phone", parse_scopes(["media:rw", "hls:r"]))
    with catalog.session() as s:
        key = active_key(s, pair.access_key_id)
        assert key is not None
        assert pair.secret.encode() not in key.secret_encrypted
        assert box.decrypt(key.secret_encrypted) == pair.secret
        assert allows(key, "media", "rw") and allows(key, "hls", "r")
        assert not allows(key, "hls", "rw") and not allows(key, "other", "r")
        assert not allows(key, None, "admin")
    with catalog.session() as s:
        revoke_key(s, pair.access_key_id)
    with catalog.session() as s:
        assert active_key(s, pair.access_key_id) is None
        assert list_keys(s) == [] and len(list_keys(s, include_revoked=True)) == 1
    other_box = SecretBox.from_key_file(tmp_path / "other.key")
    with catalog.session() as s, pytest.raises(KeyError_, match="NEBULA_SECRET_KEY"):
        other_box.decrypt(s.get(type(key), pair.access_key_id).secret_encrypted)  # type: ignore[union-attr]


def test_admin_key_is_created_once(catalog: Catalog, tmp_path) -> None:
    box = SecretBox.from_key_file(tmp_path / "secret.key")
    with catalog.session() as s:
        key1, secret1, created1 = ensure_admin_key(s, box)
    with catalog.session() as s:
        key2, secret2, created2 = ensure_admin_key(s, box)
    assert created1 and not created2
    assert (key1.access_key_id, secret1) == (key2.access_key_id, secret2)
    assert allows(key2, "anything", "admin")


@pytest.mark.parametrize("spec", ["media:write", ":rw", "media:x"])
def test_bad_scope_is_refused(spec: str) -> None:
    with pytest.raises(KeyError_):
        parse_scopes([spec])


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_at_0001(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each engine, migrated to revision 0001 only."""
    sqlite = request.param == "sqlite"
    url = f"sqlite:///{tmp_path / 'old.db'}" if sqlite else create_pg_database()
    upgrade(url, "0001")
    yield url
    if not sqlite:
        drop_pg_database(url)


def test_upgrade_from_0001_keeps_keys_and_gives_them_owners(
    catalog_at_0001: str, tmp_path: Path
) -> None:
    """A catalog made before owners existed: its keys keep working, each with the owner a
    new key of its kind would get, and its assets are untouched."""
    box = SecretBox.from_key_file(tmp_path / "secret.key")
    old = sa.table(
        "access_keys",
        *(sa.column(c) for c in ("access_key_id", "name", "is_admin", "scopes", "created_at")),
        sa.column("secret_encrypted", sa.LargeBinary),
    )
    engine = make_engine(catalog_at_0001)
    with engine.begin() as conn:
        for key_id, name, is_admin in (
            ("NKOLDPHONE", "phone", False),
            ("NKOLDADMIN", "root", True),
        ):
            conn.execute(
                old.insert().values(
                    access_key_id=key_id,
                    name=name,
                    is_admin=is_admin,
                    scopes=sa.literal('{"media": "rw"}'),
                    created_at=datetime.now(UTC),
                    secret_encrypted=box.encrypt(f"secret-of-{name}"),
                )
            )
    engine.dispose()
    upgrade(catalog_at_0001)
    head = ScriptDirectory.from_config(alembic_config(catalog_at_0001)).get_current_head()
    assert current_revision(catalog_at_0001) == head
    catalog = Catalog(catalog_at_0001)
    try:
        with catalog.session() as s:
            phone = active_key(s, "NKOLDPHONE")
            root = active_key(s, "NKOLDADMIN")
            assert phone is not None and root is not None
            assert (phone.owner, phone.scopes) == ("phone", {"media": "rw"})
            assert box.decrypt(phone.secret_encrypted) == "secret-of-phone"
            assert (root.owner, root.is_admin) == (ADMIN_OWNER, True)
            record_owner(s, "photos", phone.owner)
        with catalog.session() as s:
            assert bucket_owner(s, "photos") == "phone"
            assert bucket_owner(s, "made-before") == ADMIN_OWNER
    finally:
        catalog.dispose()


def test_bucket_owner_rows(catalog: Catalog) -> None:
    with catalog.session() as s:
        record_owner(s, "photos", "alice")
    with catalog.session() as s:
        record_owner(s, "photos", "bob")  # the name was free again on the backend
        assert recorded_owner(s, "photos") == "bob"
        forget_owner(s, "photos")
        assert recorded_owner(s, "photos") is None
        assert bucket_owner(s, "photos") == ADMIN_OWNER
    assert owner_id("alice") != owner_id("bob") and len(owner_id("alice")) == 64
