"""Processes that die with their parent.

``nebula up`` supervises its services, and some services start processes of their own
(ffmpeg, SeaweedFS, forked web workers). If the parent is killed with SIGKILL it cannot
stop them, and they would keep ports, files and CPU for nobody. Linux's parent-death
signal closes that gap: the kernel signals the child when the thread that started it
exits, whatever the reason.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from collections.abc import Callable
from functools import partial

PR_SET_PDEATHSIG = 1


def die_with_parent(signum: int = signal.SIGKILL, expected_parent: int | None = None) -> None:
    """Ask the kernel to send ``signum`` to this process when its parent dies.

    Safe between fork and exec (``preexec_fn``): one system call, no allocation to speak
    of. When ``expected_parent`` is given and the parent died before the call (we were
    re-parented already), the signal is sent at once: the kernel would never send it.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signum)
    if expected_parent is not None and os.getppid() != expected_parent:
        os.kill(os.getpid(), signum)


def dies_with_this_process(signum: int = signal.SIGKILL) -> Callable[[], None]:
    """A ``preexec_fn`` for ``subprocess.Popen`` (or a forked child's first call): the
    child gets ``signum`` when this process dies. The death signal survives ``exec``."""
    return partial(die_with_parent, signum, os.getpid())
