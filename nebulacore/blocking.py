"""The one way Nebula runs blocking work (catalog queries, file reads) off the event loop.

An :class:`Offload` is either the loop's default executor (:meth:`Offload.default`, what
``asyncio.to_thread`` uses) or a few threads of its own, for work that must not queue
behind the rest (key lookups behind catalog writes held up by a locked catalog).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class Offload:
    def __init__(self, threads: int | None, name: str) -> None:
        """``threads`` of its own named ``name``; None: the loop's default executor."""
        self.name = name
        self._executor = (
            None if threads is None else ThreadPoolExecutor(threads, thread_name_prefix=name)
        )

    @classmethod
    def default(cls) -> Offload:
        return cls(None, "default")

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` on a thread (with this task's context variables, as ``to_thread``).

        Cancelling the caller cancels a call that has not started yet; one already
        running finishes on its thread.
        """
        call = functools.partial(contextvars.copy_context().run, fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def run_within(self, seconds: float, fn: Callable[..., T], *args: object) -> T:
        """:meth:`run`, raising ``TimeoutError`` after ``seconds`` (see run on cancelling)."""
        return await asyncio.wait_for(self.run(fn, *args), seconds)

    def close(self) -> None:
        """Drop calls not started yet; running ones finish (the default executor stays)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
