"""The one way tests and benches run a process: spawn it, wait until it listens, stop it.

Every child runs in its own session (so stopping it also stops what it started), writes
stdout and stderr to one log file, and a failed start raises with that log attached.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Probe = Literal["tcp", "http"]


@dataclass
class Spawned:
    """A child process, its log file and, for a server, the address it listens on."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    host: str = "127.0.0.1"
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def nebula_argv(command: str, *args: str) -> list[str]:
    """``python -m nebula <command> ...`` with this interpreter (so PYTHONPATH applies)."""
    return [sys.executable, "-m", "nebula", command, *args]


def spawn(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None,
    log_path: Path,
    *,
    cwd: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> Spawned:
    """Start ``argv`` in its own session, stdout and stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            list(argv),
            env=None if env is None else dict(env),
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Spawned(name, process, log_path, host, port)


def accepts_tcp(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def answers_http(url: str) -> bool:
    """Anything answers HTTP at ``url``, whatever the status."""
    try:
        urllib.request.urlopen(url, timeout=2).close()
        return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def wait_until(
    ready: Callable[[], bool],
    what: str,
    timeout: float,
    alive: Callable[[], bool] = lambda: True,
    log: Callable[[], str] = str,
) -> None:
    """Poll ``ready`` until it holds; an ``AssertionError`` with ``log()`` if ``alive``
    turns false first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not ready():
        if not alive():
            raise AssertionError(f"{what}: the process exited:\n{log()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout:.0f} s:\n{log()}")
        time.sleep(0.2)


def wait_listening(
    spawned: Spawned, probe: Probe = "tcp", timeout: float = 60, path: str = "/healthz"
) -> Spawned:
    """Wait until the child accepts connections (``tcp``) or answers HTTP on ``path``
    (``http``, any status). If it exits or the time runs out it is stopped and the
    ``AssertionError`` carries its log."""

    def listening() -> bool:
        if probe == "tcp":
            return accepts_tcp(spawned.host, spawned.port)
        return answers_http(spawned.url + path)

    try:
        wait_until(
            listening,
            f"{spawned.name} listening on {spawned.host}:{spawned.port}",
            timeout,
            spawned.alive,
            spawned.log,
        )
    except AssertionError:
        stop(spawned)
        raise
    return spawned


def _signal_group(spawned: Spawned, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group is gone already
        os.killpg(spawned.pid, signum)


def stop(spawned: Spawned, timeout: float = 10) -> int:
    """SIGTERM the child's process group, wait up to ``timeout`` s for the child, then
    SIGKILL the group (also whatever the child left behind). Returns the exit status."""
    if spawned.alive():
        _signal_group(spawned, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            spawned.process.wait(timeout=timeout)
    _signal_group(spawned, signal.SIGKILL)
    return spawned.process.wait()
