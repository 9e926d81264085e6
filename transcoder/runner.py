"""Running ffmpeg with its progress fed to a guard that may stop it.

The guard is the job's lease: it records progress, and when the lease is lost (job
cancelled, superseded, reaped) or the worker is stopping, it kills ffmpeg; ``check()``
then raises so nothing is published.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import replace
from typing import IO, Protocol

from nebulacore.lifeline import dies_with_this_process
from transcoder.errors import MediaError, one_line
from transcoder.progress import Progress, parse_progress


class Guard(Protocol):
    def check(self) -> None:
        """Raise LeaseLost or Interrupted when the work must stop."""

    def confirm(self) -> None:
        """Like :meth:`check`, but asks the catalog now: before a step that cannot be undone."""

    def attach(self, process: subprocess.Popen[str] | None) -> None:
        """The running ffmpeg (to kill on lease loss or shutdown), or None when it exited."""

    def progress(self, snapshot: Progress, duration: float) -> None:
        """Called for every ``-progress`` block."""


class NoGuard:
    """Direct calls (tests, benchmarks): nothing to renew, nothing can take the job away."""

    def check(self) -> None:
        return None

    def confirm(self) -> None:
        return None

    def attach(self, process: subprocess.Popen[str] | None) -> None:
        return None

    def progress(self, snapshot: Progress, duration: float) -> None:
        return None


def run_ffmpeg(argv: list[str], duration: float, guard: Guard, start: float = 0.0) -> None:
    """Run ``argv`` (which writes ``-progress pipe:1``); MediaError with ffmpeg's reason on
    failure. ``start``: where in the source a resumed encode starts (ffmpeg counts from 0)."""
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            # A worker killed with SIGKILL must not leave ffmpeg transcoding for nobody.
            preexec_fn=dies_with_this_process(),
        )
        guard.attach(process)
        try:
            _follow(process.stdout, duration, guard, start)
            code = process.wait()
        finally:
            guard.attach(None)
            if process.poll() is None:
                process.kill()
                process.wait()
        guard.check()  # killed because the lease was lost or we are stopping
        if code != 0:
            stderr.seek(0)
            raise MediaError(f"ffmpeg: {one_line(stderr.read() or f'exit status {code}')}")


def _follow(stdout: IO[str] | None, duration: float, guard: Guard, start: float) -> None:
    if stdout is None:
        return
    for snapshot in parse_progress(stdout):
        guard.progress(replace(snapshot, seconds=snapshot.seconds + start), duration)
