"""What every sub-command shares: the --data-dir option and settings loading."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session

from catalog import Catalog
from nebulacore.config import Settings, load_settings


class CliError(Exception):
    """A user-facing failure: printed as ``nebula: <message>``, exit status 2."""


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        default=argparse.SUPPRESS,
        help="where the embedded stack keeps its data (NEBULA_DATA_DIR, default ./data)",
    )


def settings_from(args: argparse.Namespace, **overrides: Any) -> Settings:
    data_dir = getattr(args, "data_dir", None)
    if data_dir:
        overrides.setdefault("data_dir", data_dir)
    return load_settings(dict(os.environ), **overrides)


@contextmanager
def catalog_session(args: argparse.Namespace) -> Iterator[Session]:
    """One catalog session on the settings of ``args`` (engine disposed afterwards)."""
    with Catalog.opened(settings_from(args)) as catalog, catalog.session() as session:
        yield session


Commands = Any  # argparse's _SubParsersAction is private; this alias keeps signatures readable


def add_command(commands: Commands, name: str, help_text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=help_text, description=help_text
    )
    add_common_options(parser)
    return parser
