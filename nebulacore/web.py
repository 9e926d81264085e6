"""Running an aiohttp service, shared by s3proxy and origin: one process, or several on one port.

One Python process serves from one core; :func:`serve_service` runs ``workers`` processes
that all listen on the same port (``SO_REUSEPORT``: the kernel spreads new connections
over them). The parent only supervises: it restarts a worker that dies (a worker that dies
right after its start stops the service, which its own supervisor, ``nebula up`` or
Compose, restarts), and SIGTERM/SIGINT stops every worker gracefully. Each worker writes
its request counters to a file in the service's runtime directory, and /metrics sums them
(:mod:`nebulacore.counters`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

import uvloop
from aiohttp import web

from nebulacore.aiohttp_private import install_front
from nebulacore.config import Settings
from nebulacore.counters import fresh_runtime_dir
from nebulacore.lifeline import die_with_parent
from nebulacore.ops import METRICS_KEY
from nebulacore.ports import bind_refusal

log = logging.getLogger(__name__)
STOP_TIMEOUT_SECONDS = 10.0
# A worker that dies sooner than this after its start is broken, not unlucky: the whole
# service stops (and its supervisor restarts it with backoff) rather than respawn in a loop.
MIN_WORKER_UPTIME_SECONDS = 5.0

Build = Callable[[Settings], web.Application]
PerWorker = Callable[[Settings, int, int], Settings]


# The handler a server calls for every request.
ServerHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
# Given the app's own handler (router, middlewares, signals), the handler the server calls
# instead: it answers the requests it takes on a shorter path and passes the rest on.
Front = Callable[[ServerHandler], ServerHandler]
# Where an app keeps its front (:func:`serve` installs it).
FRONT = web.AppKey[Front]("nebula.front")
# An app that asks for it (set True) is served by a process whose start-up heap is left
# out of the cyclic collector's passes (:func:`serve`).
LONG_LIVED_HEAP = web.AppKey("nebula.long_lived_heap", bool)


def serve(
    app: web.Application,
    settings: Settings,
    port: int,
    name: str,
    reuse_port: bool = False,
    fast_loop: bool = False,
) -> None:
    """Serve until SIGINT/SIGTERM, which stop it gracefully; on uvloop's loop when
    ``fast_loop`` (:func:`event_loop`), with the app's :data:`FRONT` when it has one.

    aiohttp has no separate header timeout: its keep-alive timer, armed when a connection
    opens and after each answer, closes a connection on which no complete request head
    arrived in time, so ``header_timeout_seconds`` is that timer (slowloris clients that
    dribble a head are cut by it; idle kept-alive connections close after it too).
    """
    log.info("%s listening on %s:%d", name, settings.bind, port)
    if app.get(LONG_LIVED_HEAP):
        settle_heap()
    runner = web.AppRunner(
        app,
        access_log=None,
        shutdown_timeout=5.0,
        keepalive_timeout=settings.header_timeout_seconds,
        handle_signals=True,
    )
    site = partial(web.TCPSite, host=settings.bind, port=port, reuse_port=reuse_port or None)
    loop = event_loop() if fast_loop else asyncio.new_event_loop()
    _run(loop, _until_stopped(runner, site))


def settle_heap() -> None:
    """What this process allocated by now (modules, botocore's tables, the app) lives as
    long as it does: full collections would rescan all of it, so it is frozen out of them;
    a young generation of 10,000 objects keeps in-flight requests' objects from being
    promoted and rescanned (figures: docs/benchmarks.md). A serving process's own state,
    so it is done where the process starts serving, not where an app is built."""
    gc.freeze()
    gc.set_threshold(10_000)


async def _until_stopped(
    runner: web.AppRunner, site: Callable[[web.AppRunner], web.TCPSite]
) -> None:
    await runner.setup()
    front = runner.app.get(FRONT)
    if front is not None:  # web.run_app has no such hook
        install_front(runner, front)
    try:
        await site(runner).start()
        await asyncio.Event().wait()  # until a signal's GracefulExit ends the loop's run
    finally:
        await runner.cleanup()


def _run(loop: asyncio.AbstractEventLoop, main: Coroutine[Any, Any, None]) -> None:
    """What ``web.run_app`` does with its main task: run it until a signal, then cancel
    it (the runner's graceful cleanup) and whatever tasks are left, and close the loop."""
    asyncio.set_event_loop(loop)
    task = loop.create_task(main)
    try:
        loop.run_until_complete(task)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        try:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    loop.run_until_complete(task)
        finally:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler(
                {"message": "task failed while stopping", "exception": task.exception()}
            )


def event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop: where it wins on small and large answers alike, the origin (less
    CPU per small answer, segments unchanged) and the bare aiohttp reference. Under the
    s3proxy it saved a little per small request but cost far more per GiB downloaded, so
    the s3proxy keeps asyncio's loop (docs/benchmarks.md#s3proxy, #origin)."""
    return uvloop.new_event_loop()


def runtime_dir(settings: Settings, name: str, port: int) -> Path:
    """Where the workers of the service ``name`` on ``port`` keep their counters."""
    return settings.data_path / "run" / f"{name}-{port}"


def same_settings(settings: Settings, _index: int, _count: int) -> Settings:
    return settings


def serve_service(
    name: str,
    settings: Settings,
    port: int,
    workers: int,
    build: Build,
    per_worker: PerWorker = same_settings,
    *,
    fast_loop: bool = False,
) -> None:
    """Serve ``build(settings)`` on ``port`` in ``workers`` processes; ``per_worker``
    gives worker ``i`` of ``n`` its own settings (the origin: its own cache folder);
    ``fast_loop``: on uvloop's loop (:func:`serve`)."""
    if workers == 1:
        serve(build(settings), settings, port, name, fast_loop=fast_loop)
        return
    refuse_taken_port(settings.bind, port, name)
    Workers(name, settings, port, workers, build, per_worker, fast_loop).run()


class PortTaken(SystemExit):
    """The port already has a listener (a second copy of the service, or another program)."""


def refuse_taken_port(host: str, port: int, name: str) -> None:
    """Fail if anything listens on the port already. With ``SO_REUSEPORT`` a second copy
    of the service, started by mistake by the same user, would otherwise bind too and take
    half the connections."""
    refusal = bind_refusal(host, port)
    if refusal is not None:
        raise PortTaken(f"{name}: {host}:{port} is already in use: {refusal.strerror}")


def _serve_worker(
    build: Build,
    settings: Settings,
    port: int,
    name: str,
    directory: Path,
    index: int,
    parent: int,
    fast_loop: bool,
) -> None:
    # A parent killed with SIGKILL must not leave workers holding the port.
    die_with_parent(signal.SIGTERM, parent)
    # A respawned worker is forked from a parent that has its own handlers: back to the
    # defaults until aiohttp installs its graceful ones.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    app = build(settings)
    metrics = app.get(METRICS_KEY)
    if metrics is not None:  # its counters are summed with its siblings' for /metrics
        metrics.share(directory, index)
    serve(app, settings, port, f"{name} worker {index}", reuse_port=True, fast_loop=fast_loop)


class Workers:
    """The parent of a multi-process service: starts, restarts and stops its workers."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        port: int,
        count: int,
        build: Build,
        per_worker: PerWorker,
        fast_loop: bool = False,
    ) -> None:
        self.name = name
        self.fast_loop = fast_loop
        self.port = port
        self.build = build
        self.settings = [per_worker(settings, i, count) for i in range(count)]
        self.directory = fresh_runtime_dir(runtime_dir(settings, name, port))
        # fork: a worker needs nothing re-imported, and the parent holds no loop or thread.
        self.context = multiprocessing.get_context("fork")
        self.workers: list[BaseProcess] = []
        self.started: list[float] = []
        self.stopping = False
        self.failed = False

    def _start(self, index: int) -> BaseProcess:
        worker = self.context.Process(
            target=_serve_worker,
            args=(
                self.build,
                self.settings[index],
                self.port,
                self.name,
                self.directory,
                index,
                os.getpid(),
                self.fast_loop,
            ),
            name=f"{self.name}-{index}",
        )
        worker.start()
        return worker

    def _stop(self, _signum: int = signal.SIGTERM, _frame: FrameType | None = None) -> None:
        self.stopping = True
        for worker in self.workers:
            if worker.is_alive():
                worker.terminate()  # SIGTERM: aiohttp shuts down gracefully

    def run(self) -> None:
        self.workers = [self._start(i) for i in range(len(self.settings))]
        self.started = [time.monotonic()] * len(self.workers)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        while not self.stopping:
            multiprocessing.connection.wait([w.sentinel for w in self.workers])
            if not self.stopping:
                self._replace_dead()
        self._stop()
        for worker in self.workers:
            worker.join(STOP_TIMEOUT_SECONDS)
            if worker.is_alive():
                worker.kill()
                worker.join()
        if self.failed:
            sys.exit(1)

    def _replace_dead(self) -> None:
        for index, worker in enumerate(self.workers):
            if worker.is_alive():
                continue
            worker.join()
            uptime = time.monotonic() - self.started[index]
            log.error(
                "%s worker %d exited with %s after %.0fs",
                self.name,
                index,
                worker.exitcode,
                uptime,
            )
            if uptime < MIN_WORKER_UPTIME_SECONDS:
                self.failed = True
                self._stop()
                return
            # Its counters file stays: a new pid writes a new one, the sums go on.
            self.workers[index] = self._start(index)
            self.started[index] = time.monotonic()
