"""Nebula access keys: creation, lookup, revocation; secrets encrypted at rest (Fernet)."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.buckets import ADMIN_OWNER, valid_owner
from catalog.models import AccessKey, utcnow
from nebulacore.config import ConfigError, Settings
from nebulacore.private import write_private

# "create": write objects that do not exist yet, nothing else (no read, overwrite or
# delete): the kind of key `nebula upload-form` makes, so a form never overwrites.
PERMISSIONS = ("r", "rw", "admin", "create")
RANK = {"r": 1, "rw": 2, "admin": 3}  # "create" is in no order with them
# Secrets: letters and digits only. Unlike token_urlsafe's, they never start with "-"
# (which `aws configure set` and `rclone config create` read as an option), and need no
# quoting in a shell, a URL or an .env file.
SECRET_ALPHABET = string.ascii_letters + string.digits
SECRET_LENGTH = 40  # AWS's length; 62**40 is about 2**238
# A prefix scope names a bucket and a key prefix: "media/forms/x/". Bucket names have no
# "/", so the first one separates them.
PREFIX_SEPARATOR = "/"


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


def new_secret() -> str:
    """A key secret (see :data:`SECRET_ALPHABET`)."""
    return "".join(secrets.choice(SECRET_ALPHABET) for _ in range(SECRET_LENGTH))


def parse_scopes(specs: list[str]) -> dict[str, str]:
    """``["media:rw", "hls:r", "media/forms/:rw"]`` -> ``{"media": "rw", "hls": "r",
    "media/forms/": "rw"}``. A scope ``BUCKET/PREFIX`` reaches only the objects whose keys
    start with PREFIX, and nothing at the bucket's level (listings, configuration)."""
    scopes: dict[str, str] = {}
    for spec in specs:
        where, colon, perm = spec.rpartition(":")
        if not colon:
            where, perm = spec, "rw"
        bucket, slash, prefix = where.partition(PREFIX_SEPARATOR)
        valid = bucket and perm in PERMISSIONS and not (slash and (not prefix or bucket == "*"))
        if not valid or (slash and perm == "admin"):
            raise AccessKeyError(
                f"scope {spec!r} must be BUCKET:PERM or BUCKET/PREFIX:PERM, PERM one of "
                "r, rw, create (and admin for a whole bucket)"
            )
        scopes[where] = perm
    return scopes


def prefix_scope(bucket: str, prefix: str) -> str:
    """The scope name of the objects of ``bucket`` under ``prefix`` (not empty)."""
    return f"{bucket}{PREFIX_SEPARATOR}{prefix}"


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
    pair = KeyPair("NK" + secrets.token_hex(9).upper(), new_secret())
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


def active_keys_named(session: Session, name: str) -> list[AccessKey]:
    query = select(AccessKey).where(AccessKey.name == name, AccessKey.revoked_at.is_(None))
    return list(session.scalars(query))


def revoke_key(session: Session, which: str) -> AccessKey:
    """Revoke the key whose access key id is ``which``, else the one active key named so."""
    key = session.get(AccessKey, which)
    if key is None:
        named = active_keys_named(session, which)
        if len(named) > 1:
            ids = ", ".join(k.access_key_id for k in named)
            raise AccessKeyError(f"several active keys are named {which!r} ({ids}): give its id")
        if not named:
            raise AccessKeyError(f"no access key {which!r}")
        key = named[0]
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


def allows(key: AccessKey, bucket: str | None, need: str, object_key: str = "") -> bool:
    """Does ``key`` grant ``need`` (``r``, ``rw`` or ``admin``) on ``bucket`` (on its
    object ``object_key``, when given: a prefix scope may grant that)?"""
    if key.is_admin:
        return True
    if bucket is None:  # service-level calls (ListBuckets) need any scope at all
        return bool(key.scopes) if need == "r" else False
    return any(RANK.get(perm, 0) >= RANK[need] for perm in granted(key, bucket, object_key))


def may_create(key: AccessKey, bucket: str, object_key: str) -> bool:
    """Does ``key`` hold ``create`` on that object (a write that must not overwrite)?"""
    return "create" in granted(key, bucket, object_key)


def granted(key: AccessKey, bucket: str, object_key: str) -> list[str]:
    """The permissions ``key``'s scopes give on ``bucket`` (on its object ``object_key``,
    when given: prefix scopes count then)."""
    perms = [perm for name in (bucket, "*") if (perm := key.scopes.get(name)) is not None]
    if object_key:
        perms += [
            perm
            for scope, perm in key.scopes.items()
            if scope.startswith(bucket + PREFIX_SEPARATOR)
            and object_key.startswith(scope[len(bucket) + 1 :])
        ]
    return perms
