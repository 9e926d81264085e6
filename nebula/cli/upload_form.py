"""``nebula upload-form``: a signed POST policy for browser uploads into one bucket.

boto3's ``generate_presigned_post`` signs it (SigV4) with a Nebula key read from the
catalog (the admin key, or ``--access-key``), for the proxy's public endpoint; printed
as URL and fields, or as a self-contained HTML form a phone browser can use.
"""

from __future__ import annotations

import argparse
import html
import re
import shlex
from typing import Any

from botocore.config import Config

from catalog.keys import AccessKeyError, SecretBox, active_key, admin_key, allows
from nebula.cli.base import CliError, Commands, add_command, catalog_session, settings_from
from nebula.cli.playback import parse_duration
from nebulacore.config import Settings

SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
# What the proxy answers a stored upload: the PostResponse document, which a browser shows.
SUCCESS_STATUS = "201"


def parse_size(text: str) -> int:
    """``"500"``, ``"200M"``, ``"4G"`` (binary units, an optional trailing B) -> bytes."""
    match = re.fullmatch(r"(\d+)\s*([kmgt]?)i?b?", text.strip().lower())
    if not match or int(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 500M or 4G")
    return int(match.group(1)) * SIZE_UNITS[match.group(2)]


def register(commands: Commands) -> None:
    form = add_command(
        commands, "upload-form", "a signed form (POST policy) for browser uploads into a bucket"
    )
    form.add_argument("--bucket", required=True, help="the bucket uploads go into, e.g. media")
    form.add_argument(
        "--expires",
        type=parse_duration,
        default=parse_duration("1h"),
        metavar="DURATION",
        help="how long the form stays valid: 90s, 15m, 1h, 7d (default 1h)",
    )
    form.add_argument(
        "--max-size", type=parse_size, metavar="SIZE", help="largest file accepted: 500M, 4G"
    )
    form.add_argument(
        "--key-prefix", default="", metavar="PREFIX", help="uploads land under it: uploads/"
    )
    form.add_argument(
        "--access-key", metavar="ID", help="sign with this key (default: the admin key)"
    )
    form.add_argument("--html", action="store_true", help="print an HTML page with the form")
    form.set_defaults(handler=upload_form)


def signing_key(args: argparse.Namespace, settings: Settings) -> tuple[str, str]:
    """(access key id, secret) of the key that signs, which must be allowed to write the bucket."""
    with catalog_session(args) as session:
        if args.access_key:
            key = active_key(session, args.access_key)
            if key is None:
                raise CliError(f"no active key {args.access_key!r}")
        else:
            key = admin_key(session)
            if key is None:
                raise CliError("no admin key yet: `nebula up` creates it on its first start")
        if not allows(key, args.bucket, "rw"):
            raise CliError(f"key {key.access_key_id} may not write to bucket {args.bucket!r}")
        try:
            secret = SecretBox.from_settings(settings).decrypt(key.secret_encrypted)
        except AccessKeyError as exc:
            raise CliError(str(exc)) from None
        return key.access_key_id, secret


def presigned_post(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    # boto3 here, not at the top: every service starts through this CLI and would carry it.
    import boto3

    access_key_id, secret = signing_key(args, settings)
    client = boto3.client(
        "s3",
        endpoint_url=settings.s3proxy_url,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret,
        region_name=settings.region,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    conditions: list[Any] = [{"success_action_status": SUCCESS_STATUS}]
    if args.max_size is not None:
        conditions.append(["content-length-range", 1, args.max_size])
    # A key ending in ${filename} makes boto3 add ["starts-with", "$key", prefix].
    post: dict[str, Any] = client.generate_presigned_post(
        Bucket=args.bucket,
        Key=args.key_prefix + "${filename}",
        Fields={"success_action_status": SUCCESS_STATUS},
        Conditions=conditions,
        ExpiresIn=args.expires,
    )
    return post


def upload_form(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    post = presigned_post(args, settings)
    if args.html:
        print(form_html(post["url"], post["fields"], args.bucket))
        return 0
    print(f"url: {post['url']}")
    print("fields:")
    for name, value in post["fields"].items():
        print(f"  {name}: {value}")
    curl = ["curl", *[f"-F{name}={value}" for name, value in post["fields"].items()]]
    print()
    print(shlex.join([*curl, "-Ffile=@VIDEO.mp4", post["url"]]))
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
