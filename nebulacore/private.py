"""Files only this user may read: secrets, keys, the catalog, stored objects.

Nebula runs on machines other people log into; every file it writes under the data
directory is 0600 and every directory 0700, so another local user reads nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

# Processes Nebula starts (and Nebula itself under ``nebula up``) create 0600/0700 files.
PRIVATE_UMASK = 0o077


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if needed and make it 0700."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_private(path: Path, data: bytes | str) -> None:
    """Atomically replace ``path`` with ``data``, 0600 from the first byte (no readable window)."""
    payload = data.encode() if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    # A stale .tmp left by a crash may have other bits: fix them before writing.
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(payload)
    tmp.replace(path)


def ensure_private_file(path: Path) -> None:
    """Create ``path`` empty and 0600 if it does not exist; an existing file is left as is.

    For files another library creates on first use (SQLite databases): whichever process
    opens one first (a service, or a CLI command run from a shell with umask 022) must not
    decide its mode. SQLite gives its -wal and -shm files the database file's mode."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
