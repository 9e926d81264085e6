"""Files only this user may read: secrets, keys, the catalog, stored objects.

Nebula runs on machines other people log into; every file it writes under the data
directory is 0600 and every directory 0700, so another local user reads nothing.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

# Processes Nebula starts (and Nebula itself under ``nebula up``) create 0600/0700 files.
PRIVATE_UMASK = 0o077


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if needed and make it 0700."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_private(path: Path, data: bytes | str, replace: bool = True) -> None:
    """Atomically replace ``path`` with ``data``, 0600 from the first byte (no readable
    window). ``replace=False``: create it only if it does not exist, the first writer
    winning when several processes race (s3proxy workers starting on a new data dir)."""
    payload = data.encode() if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name of this writer's own: racing writers never rename each other's file.
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as file:  # mkstemp made it 0600
            file.write(payload)
        if replace:
            tmp.replace(path)
        else:
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def ensure_private_file(path: Path) -> None:
    """Create ``path`` empty and 0600 if it does not exist; an existing file is left as is.

    For files another library creates on first use (SQLite databases): whichever process
    opens one first (a service, or a CLI command run from a shell with umask 022) must not
    decide its mode. SQLite gives its -wal and -shm files the database file's mode."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
