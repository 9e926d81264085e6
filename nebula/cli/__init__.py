"""``nebula``: the command line. Each module here registers one group of sub-commands."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Sequence
from types import ModuleType

from nebula import __version__
from nebula.cli.base import STACK_HELP, CliError, add_common_options
from nebulacore.config import ConfigError

# module of nebula.cli -> the commands it registers. Only the module of the command asked
# for is imported: `nebula up` (which lives as long as the stack) and each service start
# do not carry the catalog, botocore and aiohttp of the other commands.
COMMAND_MODULES = {
    "services": ("up", "storage", "s3proxy", "origin", "worker"),
    "status": ("status",),
    "admin": ("db", "keys"),
    "assets": ("assets",),
    "buckets": ("buckets",),
    "upload_form": ("upload-form",),
    "compose": ("prepare", "healthcheck"),
    "jobs": ("jobs", "queue"),
    "doctor": ("doctor",),
}


def modules_for(argv: Sequence[str]) -> list[ModuleType]:
    """The module of the first command named in ``argv``; every module for help or an
    unknown command (argparse then lists them all)."""
    for word in argv:
        for module, commands in COMMAND_MODULES.items():
            if word in commands:
                return [importlib.import_module(f"nebula.cli.{module}")]
    return [importlib.import_module(f"nebula.cli.{module}") for module in COMMAND_MODULES]


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nebula",
        description="Nebula: a self-hosted S3 endpoint that streams your videos.",
        epilog=STACK_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"nebula {__version__}")
    add_common_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in modules_for(argv):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(words).parse_args(words)
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
