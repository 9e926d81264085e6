"""``nebula``: the command line. Each module here registers one group of sub-commands."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from nebula import __version__
from nebula.cli import admin, assets, buckets, doctor, jobs, services, status, upload_form
from nebula.cli import compose as compose_commands
from nebula.cli.base import CliError, add_common_options
from nebulacore.config import ConfigError

COMMAND_MODULES = (
    services,
    status,
    admin,
    assets,
    buckets,
    upload_form,
    compose_commands,
    jobs,
    doctor,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nebula", description="Nebula: a self-hosted S3 endpoint that streams your videos."
    )
    parser.add_argument("--version", action="version", version=f"nebula {__version__}")
    add_common_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except BrokenPipeError:
        # The reader stopped reading (``| head``): nothing went wrong here. Point stdout at
        # /dev/null so the interpreter's final flush does not raise again, and exit as a
        # Unix tool killed by SIGPIPE does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except (ConfigError, CliError) as exc:
        print(f"nebula: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
