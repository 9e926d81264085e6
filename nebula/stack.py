"""Which stack a command talks to: the one ``nebula up`` recorded in the data directory
(``run/up.json``), else the ``NEBULA_*`` environment, else the defaults.

A user runs ``nebula up`` with its own ports in one shell and the CLI in another, where
none of those variables is set: the record in the data directory is what both share.
Each setting remembers where it came from, so a refused connection can say which value
was tried and why.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nebula.leftovers import read_record
from nebulacore.config import Settings, load_settings

RECORD = Path("run") / "up.json"
# Settings a stack is reached by (never a secret): `nebula up` records them in its record.
ENDPOINT_SETTINGS = (
    "bind",
    "s3proxy_port",
    "origin_port",
    "storage_port",
    "s3proxy_public_url",
    "origin_public_url",
    "backend_url",
    "hls_bucket",
)


def variable(name: str) -> str:
    return f"NEBULA_{name.upper()}"


def shown_path(path: Path) -> str:
    """``path`` with the home directory as ``~``, as a user would type it."""
    home = Path.home()
    return f"~/{path.relative_to(home)}" if path.is_relative_to(home) else str(path)


@dataclass(frozen=True)
class Stack:
    settings: Settings
    # setting name -> where its value came from ("~/data/run/up.json", "NEBULA_X");
    # a setting not named here has its default.
    sources: Mapping[str, str] = field(default_factory=dict)

    def source_of(self, name: str) -> str:
        return self.sources.get(name) or f"the default; set {variable(name)}"

    def unreachable(self, address: str, *names: str) -> str:
        """What to say when nothing answers on ``address``, made of the settings ``names``."""
        chosen = next((n for n in names if n in self.sources), names[0])
        return (
            f"nothing answers on {address} (from {self.source_of(chosen)}); is `nebula up` running?"
        )


def discover(environ: Mapping[str, str], data_dir: str | None = None, **overrides: object) -> Stack:
    """The stack of ``data_dir`` (or ``NEBULA_DATA_DIR``): its record, the environment,
    the defaults, in that order."""
    env = dict(environ)
    if data_dir:
        overrides.setdefault("data_dir", data_dir)
    plain = load_settings(env, **overrides)
    record_path = plain.data_path / RECORD
    recorded = read_record(record_path).get("stack") or {}
    sources = {name: variable(name) for name in ENDPOINT_SETTINGS if variable(name) in env}
    found = {
        name: value
        for name, value in recorded.items()
        if name in ENDPOINT_SETTINGS and name not in overrides
    }
    if not found:
        return Stack(plain, sources)
    sources.update(dict.fromkeys(found, shown_path(record_path)))
    return Stack(load_settings(env, **{**overrides, **found}), sources)


def stack_of(data_dir: str | None, **overrides: object) -> Stack:
    return discover(os.environ, data_dir, **overrides)
