"""Catalog administration: ``nebula db`` and ``nebula keys``."""

from __future__ import annotations

import argparse

from sqlalchemy.orm import Session

from catalog.db import current_revision, upgrade
from catalog.keys import (
    AccessKeyError,
    SecretBox,
    admin_key,
    create_key,
    default_owner,
    list_keys,
    parse_scopes,
    revoke_key,
)
from catalog.models import AccessKey
from nebula.cli.base import CliError, Commands, add_command, catalog_session, settings_from
from nebula.cli.table import render


def register(commands: Commands) -> None:
    db = add_command(commands, "db", "catalog schema migrations")
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    add_command(db_commands, "upgrade", "apply every migration").set_defaults(handler=db_upgrade)
    add_command(db_commands, "current", "print the schema revision").set_defaults(
        handler=db_current
    )

    keys = add_command(commands, "keys", "Nebula S3 access keys")
    key_commands = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = add_command(key_commands, "create", "create a key and print its secret once")
    create.add_argument("--name", required=True, help="a label, e.g. phone")
    create.add_argument(
        "--bucket",
        action="append",
        default=[],
        metavar="BUCKET:PERM",
        help="scope, repeatable: media:rw, hls:r, media:admin (* for every bucket), "
        "media/phone/:create (only new objects under a prefix)",
    )
    create.add_argument("--admin", action="store_true", help="full access, may create buckets")
    create.add_argument(
        "--owner",
        metavar="NAME",
        help="whose buckets the key creates (default: the key's name; admin for --admin)",
    )
    create.set_defaults(handler=keys_create)
    listing = add_command(key_commands, "list", "list keys (never their secrets)")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    listing.set_defaults(handler=keys_list)
    revoke = add_command(key_commands, "revoke", "revoke keys at once, by access key id or name")
    revoke.add_argument("keys", nargs="+", metavar="KEY", help="an access key id or a key's name")
    revoke.set_defaults(handler=keys_revoke)
    show_admin = add_command(
        key_commands, "show-admin", "print the admin key and its secret (reads the local catalog)"
    )
    show_admin.add_argument(
        "--secret-only", action="store_true", help="print only the secret, e.g. for $(...)"
    )
    show_admin.set_defaults(handler=keys_show_admin)


def db_upgrade(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    upgrade(settings.catalog_url)
    print(f"catalog at revision {current_revision(settings.catalog_url)}")
    return 0


def db_current(args: argparse.Namespace) -> int:
    print(current_revision(settings_from(args).catalog_url) or "(empty)")
    return 0


def keys_create(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        scopes = parse_scopes(args.bucket)
    except AccessKeyError as exc:
        raise CliError(str(exc)) from None
    if not scopes and not args.admin:
        raise CliError("give at least one --bucket BUCKET:PERM, or --admin")
    box = SecretBox.from_settings(settings)
    with catalog_session(args) as session:
        try:
            pair = create_key(session, box, args.name, scopes, args.admin, args.owner)
        except AccessKeyError as exc:
            raise CliError(str(exc)) from None
    print(f"access key: {pair.access_key_id}")
    print(f"secret key: {pair.secret}")
    print(f"scopes:     {'admin' if args.admin else _scopes_text(scopes)}")
    print(f"owner:      {args.owner or default_owner(args.name, args.admin)}")
    print()
    print(
        f"AWS_ACCESS_KEY_ID={pair.access_key_id} AWS_SECRET_ACCESS_KEY={pair.secret} "
        f"aws --endpoint-url {settings.s3proxy_url} s3 ls"
    )
    return 0


def _scopes_text(scopes: dict[str, str]) -> str:
    return ",".join(f"{bucket}:{perm}" for bucket, perm in sorted(scopes.items())) or "-"


def keys_list(args: argparse.Namespace) -> int:
    with catalog_session(args) as session:
        rows = [
            (
                key.access_key_id,
                key.name,
                key.owner,
                "admin" if key.is_admin else _scopes_text(key.scopes),
                f"{key.created_at:%Y-%m-%d %H:%M:%S}",
                "active" if key.active else f"revoked {key.revoked_at:%Y-%m-%d %H:%M}",
            )
            for key in list_keys(session, include_revoked=args.all)
        ]
    print(render(("ACCESS KEY", "NAME", "OWNER", "SCOPES", "CREATED", "STATE"), rows))
    return 0


def find_key(session: Session, wanted: str) -> AccessKey:
    """The key whose access key id is ``wanted``, else the one key named so (an active one
    before a revoked one); ambiguous names are refused with the ids to choose from."""
    key = session.get(AccessKey, wanted)
    if key is not None:
        return key
    named = [k for k in list_keys(session, include_revoked=True) if k.name == wanted]
    active = [k for k in named if k.active]
    choices = active or named
    if not choices:
        raise CliError(f"no access key with the id or name {wanted!r} (see `nebula keys list`)")
    if len(choices) > 1:
        ids = ", ".join(k.access_key_id for k in choices)
        raise CliError(f"{len(choices)} keys are named {wanted!r}: {ids}; give the access key id")
    return choices[0]


def keys_revoke(args: argparse.Namespace) -> int:
    """Each key revoked, or said to be revoked already (not an error: the wish holds)."""
    with catalog_session(args) as session:
        for wanted in args.keys:
            key = find_key(session, wanted)
            if not key.active:
                print(
                    f"{key.access_key_id} ({key.name}) was already revoked on "
                    f"{key.revoked_at:%Y-%m-%d %H:%M}"
                )
                continue
            revoke_key(session, key.access_key_id)
            print(f"revoked {key.access_key_id} ({key.name})")
    return 0


def keys_show_admin(args: argparse.Namespace) -> int:
    """The admin secret on demand: ``nebula up`` prints it only on the start that made it."""
    settings = settings_from(args)
    with catalog_session(args) as session:
        key = admin_key(session)
        if key is None:
            raise CliError("no admin key yet: `nebula up` creates it on its first start")
        try:
            secret = SecretBox.from_settings(settings).decrypt(key.secret_encrypted)
        except AccessKeyError as exc:
            raise CliError(str(exc)) from None
    if args.secret_only:
        print(secret)
        return 0
    print(f"access key: {key.access_key_id}")
    print(f"secret key: {secret}")
    return 0
