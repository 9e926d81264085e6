"""What every sub-command shares: the --data-dir option and settings loading."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from nebula.stack import Stack, stack_of
from nebulacore.config import Settings, load_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


class CliError(Exception):
    """A user-facing failure: printed as ``nebula: <message>``, exit status 2."""


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        default=argparse.SUPPRESS,
        help="where the embedded stack keeps its data (NEBULA_DATA_DIR, default ./data)",
    )


def settings_from(args: argparse.Namespace, **overrides: Any) -> Settings:
    """The settings of a command that talks to a running stack (see :mod:`nebula.stack`)."""
    return stack_from(args, **overrides).settings


def stack_from(args: argparse.Namespace, **overrides: Any) -> Stack:
    return stack_of(getattr(args, "data_dir", None), **overrides)


def own_settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    """The settings of a command that IS the stack (``nebula up``, a service): the
    environment alone, never what an earlier ``nebula up`` recorded."""
    data_dir = getattr(args, "data_dir", None)
    if data_dir:
        overrides.setdefault("data_dir", data_dir)
    return load_settings(dict(os.environ), **overrides)


@contextmanager
def catalog_session(args: argparse.Namespace) -> Iterator[Session]:
    """One catalog session on the settings of ``args`` (engine disposed afterwards)."""
    from catalog import Catalog  # imported by the commands that use it (see nebula.cli)

    with Catalog.opened(settings_from(args)) as catalog, catalog.session() as session:
        yield session


Commands = Any  # argparse's _SubParsersAction is private; this alias keeps signatures readable


STACK_HELP = """\
the stack this command talks to is found, in this order, from:
  1. <data dir>/run/up.json, which a running `nebula up` writes (its ports and endpoints)
  2. the environment:
       NEBULA_DATA_DIR      the data directory (default ./data; or --data-dir)
       NEBULA_BIND          the address the listeners bind to (default 127.0.0.1)
       NEBULA_S3PROXY_PORT  the S3 endpoint (default 9000)
       NEBULA_ORIGIN_PORT   the HLS origin (default 8080)
       NEBULA_STORAGE_PORT  the embedded SeaweedFS (default 8333)
       NEBULA_S3PROXY_PUBLIC_URL, NEBULA_ORIGIN_PUBLIC_URL  the URLs printed in links
  3. the defaults above"""


def add_command(
    commands: Commands, name: str, help_text: str, epilog: str | None = None
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_options(parser)
    return parser
