"""Nebula access keys: creation, lookup, revocation; secrets encrypted at rest (Fernet)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.buckets import ADMIN_OWNER, valid_owner
from catalog.models import AccessKey, utcnow
from nebulacore.config import ConfigError, Settings
from nebulacore.private import write_private

PERMISSIONS = ("r", "rw", "admin")


class AccessKeyError(Exception):
    """A key operation that cannot be done (unknown key, bad scope)."""


@dataclass(frozen=True)
class KeyPair:
    access_key_id: str
    secret: str = field(repr=False)


class SecretBox:
    """Encrypts key secrets with a Fernet key from NEBULA_SECRET_KEY or a key file."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def from_key_file(cls, path: Path) -> SecretBox:
        if not path.exists():
            write_private(path, Fernet.generate_key())
        return cls(path.read_bytes().strip())

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        if settings.secret_key is not None:
            try:
                return cls(settings.secret_key.get_secret_value().encode())
            except ValueError:
                raise ConfigError(
                    "NEBULA_SECRET_KEY: must be a urlsafe-base64 32-byte key "
                    "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key())')"
                ) from None
        return cls.from_key_file(settings.data_path / "secret.key")

    def encrypt(self, secret: str) -> bytes:
        return self._fernet.encrypt(secret.encode())

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken:
            raise AccessKeyError(
                "key secret cannot be decrypted: wrong NEBULA_SECRET_KEY?"
            ) from None


def parse_scopes(specs: list[str]) -> dict[str, str]:
    """``["media:rw", "hls:r"]`` -> ``{"media": "rw", "hls": "r"}``."""
    scopes: dict[str, str] = {}
    for spec in specs:
        bucket, _, perm = spec.partition(":")
        perm = perm or "rw"
        if not bucket or perm not in PERMISSIONS:
            raise AccessKeyError(f"scope {spec!r} must be BUCKET:r, BUCKET:rw or BUCKET:admin")
        scopes[bucket] = perm
    return scopes


def create_key(
    session: Session,
    box: SecretBox,
    name: str,
    scopes: dict[str, str] | None = None,
    is_admin: bool = False,
    owner: str | None = None,
) -> KeyPair:
    """A new key; its owner (whose buckets it creates) is ``owner``, or by default the
    admin for an admin key and the key's own name for any other."""
    owner = owner or default_owner(name, is_admin)
    if not valid_owner(owner):
        raise AccessKeyError(
            f"owner {owner!r}: 1-128 printable characters, no leading or trailing space"
        )
    pair = KeyPair("NK" + secrets.token_hex(9).upper(), secrets.token_urlsafe(30))
    session.add(
        AccessKey(
            access_key_id=pair.access_key_id,
            name=name,
            secret_encrypted=box.encrypt(pair.secret),
            is_admin=is_admin,
            scopes=scopes or {},
            owner=owner,
        )
    )
    session.flush()
    return pair


def default_owner(name: str, is_admin: bool) -> str:
    return ADMIN_OWNER if is_admin else name


def active_key(session: Session, access_key_id: str) -> AccessKey | None:
    key = session.get(AccessKey, access_key_id)
    return key if key is not None and key.active else None


def list_keys(session: Session, include_revoked: bool = False) -> list[AccessKey]:
    query = select(AccessKey).order_by(AccessKey.created_at)
    if not include_revoked:
        query = query.where(AccessKey.revoked_at.is_(None))
    return list(session.scalars(query))


def revoke_key(session: Session, access_key_id: str) -> AccessKey:
    key = session.get(AccessKey, access_key_id)
    if key is None:
        raise AccessKeyError(f"no access key {access_key_id!r}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    return key


def admin_key(session: Session) -> AccessKey | None:
    query = (
        select(AccessKey)
        .where(AccessKey.is_admin.is_(True), AccessKey.revoked_at.is_(None))
        .order_by(AccessKey.created_at)
    )
    return session.scalars(query).first()


def ensure_admin_key(session: Session, box: SecretBox) -> tuple[AccessKey, str, bool]:
    """Return the admin key and its secret, creating it on first start (third item: created)."""
    existing = admin_key(session)
    if existing is not None:
        return existing, box.decrypt(existing.secret_encrypted), False
    pair = create_key(session, box, "admin", {"*": "admin"}, is_admin=True)
    key = session.get(AccessKey, pair.access_key_id)
    assert key is not None
    return key, pair.secret, True


def allows(key: AccessKey, bucket: str | None, need: str) -> bool:
    """Does ``key`` grant ``need`` (``r``, ``rw`` or ``admin``) on ``bucket``?"""
    if key.is_admin:
        return True
    if bucket is None:  # service-level calls (ListBuckets) need any scope at all
        return bool(key.scopes) if need == "r" else False
    granted = key.scopes.get(bucket) or key.scopes.get("*")
    rank = {"r": 1, "rw": 2, "admin": 3}
    return granted is not None and rank[granted] >= rank[need]
