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
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

from aiohttp import web

from nebulacore.config import Settings
from nebulacore.counters import fresh_runtime_dir
from nebulacore.lifeline import die_with_parent
from nebulacore.ops import share_metrics

log = logging.getLogger(__name__)
STOP_TIMEOUT_SECONDS = 10.0
# A worker that dies sooner than this after its start is broken, not unlucky: the whole
# service stops (and its supervisor restarts it with backoff) rather than respawn in a loop.
MIN_WORKER_UPTIME_SECONDS = 5.0

Build = Callable[[Settings], web.Application]
PerWorker = Callable[[Settings, int, int], Settings]


def serve(
    app: web.Application, settings: Settings, port: int, name: str, reuse_port: bool = False
) -> None:
    """Serve until SIGINT/SIGTERM; aiohttp's runner handles both signals gracefully.

    aiohttp has no separate header timeout: its keep-alive timer, armed when a connection
    opens and after each answer, closes a connection on which no complete request head
    arrived in time, so ``header_timeout_seconds`` is that timer (slowloris clients that
    dribble a head are cut by it; idle kept-alive connections close after it too).
    """
    log.info("%s listening on %s:%d", name, settings.bind, port)
    web.run_app(
        app,
        host=settings.bind,
        port=port,
        print=None,
        access_log=None,
        shutdown_timeout=5.0,
        keepalive_timeout=settings.header_timeout_seconds,
        handle_signals=True,
        reuse_port=reuse_port or None,
        loop=event_loop() if name.startswith(FAST_LOOP_SERVICES) else None,
    )


# uvloop only where it wins on small and large answers alike (README, bench sections): the
# origin (about a fifth less CPU per small answer, segments unchanged) and the bare
# aiohttp reference. Under the s3proxy it saved 5-10 % per small request but doubled the
# CPU per GiB downloaded, so the s3proxy keeps asyncio's loop.
FAST_LOOP_SERVICES = ("origin", "hello")


def event_loop() -> asyncio.AbstractEventLoop | None:
    """uvloop's loop when it is installed (an optional dependency), else None: aiohttp
    then makes asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return None
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
) -> None:
    """Serve ``build(settings)`` on ``port`` in ``workers`` processes; ``per_worker``
    gives worker ``i`` of ``n`` its own settings (the origin: its own cache folder)."""
    if workers == 1:
        serve(build(settings), settings, port, name)
        return
    refuse_taken_port(settings.bind, port, name)
    Workers(name, settings, port, workers, build, per_worker).run()


class PortTaken(SystemExit):
    """The port already has a listener (a second copy of the service, or another program)."""


def bind_refusal(host: str, port: int) -> OSError | None:
    """Why ``host:port`` cannot be bound now (a plain bind, no ``SO_REUSEPORT``: it fails
    against any listener, ours included), or None when it is free."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc
    return None


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
) -> None:
    # A parent killed with SIGKILL must not leave workers holding the port.
    die_with_parent(signal.SIGTERM, parent)
    # A respawned worker is forked from a parent that has its own handlers: back to the
    # defaults until aiohttp installs its graceful ones.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    share_metrics(directory, index)
    serve(build(settings), settings, port, f"{name} worker {index}", reuse_port=True)


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
    ) -> None:
        self.name = name
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
