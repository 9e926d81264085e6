"""``nebula upload-form``: a signed POST policy for browser uploads into one bucket.

Each form gets a key of its own (``form-…``, listed by ``nebula keys list``, revoked by
name with ``nebula keys revoke``), whose only right is to *create* objects under the
form's own prefix, ``<key-prefix><form name>/``: its uploads land there as
``${filename}``, never overwrite an existing object (the proxy makes each write
conditional: 412 PreconditionFailed when the name is taken), and cannot read, list or
delete anything. The policy carries a size cap (4 GiB unless ``--max-size``) and expires
within 7 days. boto3's ``generate_presigned_post`` signs it (SigV4) for the proxy's public
endpoint; printed as URL and fields, or as a self-contained HTML form a phone can use.
"""

from __future__ import annotations

import argparse
import html
import re
import secrets
import shlex
import sys
from typing import Any

from botocore.config import Config

from catalog.keys import (
    AccessKeyError,
    KeyPair,
    SecretBox,
    active_keys_named,
    create_key,
    prefix_scope,
)
from nebula.cli.base import CliError, Commands, add_command, catalog_session, settings_from
from nebula.cli.playback import parse_duration
from nebulacore.config import Settings

SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
# What the proxy answers a stored upload: the PostResponse document, which a browser shows.
SUCCESS_STATUS = "201"
DEFAULT_MAX_SIZE = 4 << 30
MAX_SIZE = 5 << 30  # S3's largest single upload (a form is one request)
MAX_EXPIRES = 7 * 24 * 3600  # the proxy refuses policies that live longer
FORM_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def parse_size(text: str) -> int:
    """``"500"``, ``"200M"``, ``"4G"`` (binary units, an optional trailing B) -> bytes."""
    match = re.fullmatch(r"(\d+)\s*([kmgt]?)i?b?", text.strip().lower())
    if not match or int(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 500M or 4G")
    size = int(match.group(1)) * SIZE_UNITS[match.group(2)]
    if size > MAX_SIZE:
        raise argparse.ArgumentTypeError(f"{text!r}: a form uploads at most 5G")
    return size


def parse_expires(text: str) -> int:
    seconds = parse_duration(text)
    if seconds > MAX_EXPIRES:
        raise argparse.ArgumentTypeError(f"{text!r}: a form is valid for at most 7d")
    return seconds


def parse_form_name(text: str) -> str:
    if not FORM_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: 1-63 lower-case letters, digits and dashes, starting with a letter or digit"
        )
    return text


def register(commands: Commands) -> None:
    form = add_command(
        commands, "upload-form", "a signed form (POST policy) for browser uploads into a bucket"
    )
    form.add_argument("--bucket", required=True, help="the bucket uploads go into, e.g. media")
    form.add_argument(
        "--expires",
        type=parse_expires,
        default=parse_duration("1h"),
        metavar="DURATION",
        help="how long the form stays valid: 90s, 15m, 1h, at most 7d (default 1h)",
    )
    form.add_argument(
        "--max-size",
        type=parse_size,
        default=DEFAULT_MAX_SIZE,
        metavar="SIZE",
        help="largest file accepted: 500M, 4G (default 4G, at most 5G)",
    )
    form.add_argument(
        "--key-prefix",
        default="uploads/",
        metavar="PREFIX",
        help="uploads land under PREFIX<form name>/ (default uploads/)",
    )
    form.add_argument(
        "--name",
        type=parse_form_name,
        metavar="NAME",
        help="the form's key name, to revoke it by (default form-<random>)",
    )
    form.add_argument("--html", action="store_true", help="print an HTML page with the form")
    form.set_defaults(handler=upload_form)


def form_key(args: argparse.Namespace, settings: Settings, name: str, prefix: str) -> KeyPair:
    """A new key that may only create objects under ``prefix`` of the form's bucket."""
    with catalog_session(args) as session:
        if active_keys_named(session, name):
            raise CliError(f"an active key is already named {name!r}: choose another --name")
        try:
            box = SecretBox.from_settings(settings)
            return create_key(session, box, name, {prefix_scope(args.bucket, prefix): "create"})
        except AccessKeyError as exc:
            raise CliError(str(exc)) from None


def presigned_post(
    args: argparse.Namespace, settings: Settings, pair: KeyPair, prefix: str
) -> dict[str, Any]:
    # boto3 here, not at the top: every service starts through this CLI and would carry it.
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=settings.s3proxy_url,
        aws_access_key_id=pair.access_key_id,
        aws_secret_access_key=pair.secret,
        region_name=settings.region,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    conditions: list[Any] = [
        {"success_action_status": SUCCESS_STATUS},
        ["content-length-range", 1, args.max_size],
    ]
    # A key ending in ${filename} makes boto3 add ["starts-with", "$key", prefix].
    post: dict[str, Any] = client.generate_presigned_post(
        Bucket=args.bucket,
        Key=prefix + "${filename}",
        Fields={"success_action_status": SUCCESS_STATUS},
        Conditions=conditions,
        ExpiresIn=args.expires,
    )
    return post


def upload_form(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    form_name = args.name or f"form-{secrets.token_hex(4)}"
    prefix = f"{args.key_prefix}{form_name}/"
    pair = form_key(args, settings, form_name, prefix)
    post = presigned_post(args, settings, pair, prefix)
    if args.html:
        print(form_html(post["url"], post["fields"], args.bucket))
        print(f"form key {form_name}: nebula keys revoke {form_name} stops it", file=sys.stderr)
        return 0
    print(f"url: {post['url']}")
    print("fields:")
    for name, value in post["fields"].items():
        print(f"  {name}: {value}")
    curl = ["curl", *[f"-F{name}={value}" for name, value in post["fields"].items()]]
    print()
    print(shlex.join([*curl, "-Ffile=@VIDEO.mp4", post["url"]]))
    print()
    print(f"form key: {form_name} ({pair.access_key_id}); uploads land under {prefix}")
    print(f"stop the form at once: nebula keys revoke {form_name}")
    return 0


def form_html(url: str, fields: dict[str, str], bucket: str) -> str:
    """A page with nothing but the form: hidden signed fields, then the file (which S3
    requires last), then the button."""
    hidden = "\n".join(
        f'    <input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
        for name, value in fields.items()
    )
    title = html.escape(f"Upload to {bucket}")
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title}</title>
  <style>
    body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 28rem; padding: 0 1rem; }}
    input[type=file], button {{ display: block; width: 100%; margin: 1rem 0; font-size: 1.1rem; }}
    button {{ padding: .8rem; }}
  </style>
</head>
<body>
  <h1>{title}</h1>
  <form action="{html.escape(url)}" method="post" enctype="multipart/form-data">
{hidden}
    <input type="file" name="file" required>
    <button type="submit">Upload</button>
  </form>
</body>
</html>"""
