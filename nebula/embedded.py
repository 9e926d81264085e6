"""``nebula up``: the whole system in the foreground, each service a supervised child.

Children run in their own process groups so a signal to ``nebula up`` becomes an orderly
stop (reverse start order, SIGTERM, then SIGKILL after a grace period) and nothing is
left behind. A child that dies unexpectedly is reported and restarted with backoff; when
it is the worker, the jobs it held are given back and queued again at once (their leases
would otherwise keep them "running" until they expire). Children get SIGTERM from the
kernel when the supervisor dies, even by SIGKILL, and one ``nebula up`` holds a data
directory at a time (:mod:`nebula.leftovers`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

from nebula import storage
from nebula.leftovers import LeftoversRunning, Proc, RunDirectory, this_process
from nebula.leftovers import stop as stop_leftovers
from nebula.stack import ENDPOINT_SETTINGS
from nebulacore.config import Settings, is_unknown_variable
from nebulacore.lifeline import dies_with_this_process
from nebulacore.ports import bind_refusal
from nebulacore.private import PRIVATE_UMASK, private_dir

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 8.0
MAX_BACKOFF_SECONDS = 30.0


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)

    def start(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            self.argv,
            env=env,
            start_new_session=True,
            # SIGTERM, not SIGKILL: an orphaned worker still gives its jobs back.
            preexec_fn=dies_with_this_process(signal.SIGTERM),
        )
        self.started_at = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.process.pid)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def proc(self) -> Proc | None:
        return this_process(self.name, self.process.pid) if self.alive() and self.process else None

    def signal_group(self, signum: int) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)


def child_argv(service: str) -> list[str]:
    return [sys.executable, "-m", "nebula", service]


def child_env(settings: Settings) -> dict[str, str]:
    # An unknown NEBULA_* was warned about once, here; the children need not repeat it.
    env = {name: value for name, value in os.environ.items() if not is_unknown_variable(name)}
    # Children must agree on the data directory whatever their working directory.
    env["NEBULA_DATA_DIR"] = str(settings.data_path)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def stack_record(settings: Settings) -> dict[str, object]:
    """The endpoints of this stack, recorded in ``run/up.json`` (setting name -> value)."""
    values = {name: getattr(settings, name) for name in ENDPOINT_SETTINGS}
    return {name: value for name, value in values.items() if value is not None}


class PreparationFailed(Exception):
    """The catalog, admin key or buckets could not be made ready."""


class PortInUse(Exception):
    """A port ``nebula up`` must listen on is taken by another program."""


def check_ports_free(settings: Settings) -> None:
    """Fail before starting anything: a taken port would otherwise look like a healthy service."""
    wanted = {"NEBULA_S3PROXY_PORT": (settings.bind, settings.s3proxy_port)}
    wanted["NEBULA_ORIGIN_PORT"] = (settings.bind, settings.origin_port)
    if settings.embedded_storage:
        wanted["NEBULA_STORAGE_PORT"] = ("127.0.0.1", settings.storage_port)
    for variable, (host, port) in wanted.items():
        refusal = bind_refusal(host, port)
        if refusal is not None:
            raise PortInUse(
                f"{host}:{port} ({variable}) is not available: {refusal.strerror}; "
                f"stop what uses it or set {variable}"
            )


@dataclass(frozen=True)
class AdminKey:
    access_key_id: str
    # Set only on the start that created the key.
    new_secret: str | None = field(default=None, repr=False)


def show_admin_command(settings: Settings, *options: str) -> str:
    """The command that prints the admin secret from this data directory's catalog."""
    argv = ["nebula", "keys", "show-admin", "--data-dir", str(settings.data_path), *options]
    return shlex.join(argv)


def announcement(settings: Settings, admin: AdminKey, buckets: str | None = None) -> str:
    """What ``nebula up`` prints once everything answers.

    The admin secret is printed in full only on the start that created it: ``nebula up``
    often runs under systemd or Docker, whose logs keep every line for good. Later starts
    name the key and the command that prints the secret from the local catalog.
    """
    s = settings
    bucket = s.ingest_buckets[0] if s.ingest_buckets else "media"
    key_id = admin.access_key_id
    if admin.new_secret is not None:
        secret = admin.new_secret
        secret_lines = [
            f"  secret key:    {secret}",
            "                 (printed this once; later: nebula keys show-admin)",
        ]
    else:
        secret = f"$({show_admin_command(s, '--secret-only')})"
        secret_lines = [f"  secret key:    not printed again; see it with: {show_admin_command(s)}"]
    lines = [
        "",
        "Nebula is up.",
        f"  S3 endpoint:   {s.s3proxy_url}",
        f"  access key:    {key_id}",
        *secret_lines,
        f"  origin:        {s.origin_url}",
        f"  data dir:      {s.data_path}",
        *([f"  {buckets}"] if buckets else []),
        "",
        "Upload a video:",
        f"  AWS_ACCESS_KEY_ID={key_id} AWS_SECRET_ACCESS_KEY={secret} "
        f"aws --endpoint-url {s.s3proxy_url} s3 cp video.mp4 s3://{bucket}/",
        "",
        "Press Ctrl-C to stop.",
        "",
    ]
    # The secret goes to the terminal only; the log never carries it.
    return "\n".join(lines)


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        out: Callable[[str], None] = print,
        *,
        stop_leftovers: bool = False,
    ) -> None:
        self.settings = settings
        self.out = out
        self.env = child_env(settings)
        self.children: list[Child] = []
        self.stopping = False
        self.stop_leftovers = stop_leftovers
        self.run_dir = RunDirectory(settings.data_path)

    # ----- start-up ------------------------------------------------------------------

    def run(self) -> int:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        try:
            # The catalog, queue, keys and every stored object: no other local user reads them.
            os.umask(PRIVATE_UMASK)
            private_dir(self.settings.data_path)
            self.run_dir.claim()
            self._deal_with_leftovers()
            check_ports_free(self.settings)
            if self.settings.embedded_storage:
                self._start_storage()
            if self.stopping:
                return 0
            admin, untranscoded = self._prepare()
            for service in ("s3proxy", "origin", "worker"):
                self._spawn(service)
            self.out(announcement(self.settings, admin, untranscoded))
            sys.stdout.flush()
            self._watch()
            return 0
        except Exception as exc:
            if self.stopping:
                return 0
            log.error("nebula up failed: %s", exc)
            self.out(f"error: {exc}")
            return 1
        finally:
            self.stop_all()
            self.run_dir.release()

    def _deal_with_leftovers(self) -> None:
        leftovers = self.run_dir.leftovers()
        if not leftovers:
            return
        if not self.stop_leftovers:
            raise LeftoversRunning(self.settings.data_path, leftovers)
        named = ", ".join(f"{p.name} (pid {p.pid})" for p in leftovers)
        self.out(f"stopping leftovers of an earlier nebula up: {named}")
        survivors = stop_leftovers(leftovers)
        if survivors:
            raise LeftoversRunning(self.settings.data_path, survivors)

    def _record_tree(self) -> None:
        me = this_process("nebula up", os.getpid())
        procs = [me, *(child.proc() for child in self.children)]
        self.run_dir.write((p for p in procs if p is not None), stack_record(self.settings))

    def _start_storage(self) -> None:
        child = self._spawn("storage")
        endpoint = self.settings.backend_endpoint
        storage.wait_ready(endpoint, timeout=90, alive=lambda: child.alive() or self.stopping)

    def _prepare(self) -> tuple[AdminKey, str | None]:
        """Catalog, admin key and buckets, done by a child (:mod:`nebula.preparation`)
        so that what it imports never weighs on this long-lived process."""
        argv = [*child_argv("prepare"), "--for-up"]
        child = subprocess.Popen(
            argv,
            env=self.env,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=dies_with_this_process(signal.SIGTERM),
        )
        while True:
            try:
                out, _ = child.communicate(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if self.stopping:
                    child.kill()
                    child.communicate()
                    raise PreparationFailed("stopped during start-up") from None
        if child.returncode != 0 or not out.strip():
            raise PreparationFailed(
                f"preparing the catalog and buckets failed (status {child.returncode}); see the lines above"
            )
        done = json.loads(out.strip().splitlines()[-1])
        admin = AdminKey(done["access_key_id"], done["new_secret"])
        return admin, done["untranscoded"]

    def _spawn(self, service: str) -> Child:
        child = Child(service, child_argv(service))
        child.start(self.env)
        self.children.append(child)
        self._record_tree()
        return child

    # ----- running -------------------------------------------------------------------

    def _watch(self) -> None:
        while not self.stopping:
            for child in self.children:
                if self.stopping:
                    break
                self._check(child)
            time.sleep(0.5)

    def _check(self, child: Child) -> None:
        if child.process is None or child.alive():
            return
        now = time.monotonic()
        if child.next_start == 0.0:
            code = child.process.returncode
            uptime = now - child.started_at
            # A child that ran a while earns a fresh backoff; a crash loop backs off.
            child.restarts = 0 if uptime > 60 else child.restarts + 1
            delay = min(MAX_BACKOFF_SECONDS, 0.5 * 2**child.restarts)
            child.next_start = now + delay
            log.error("%s exited with status %s; restarting in %.1fs", child.name, code, delay)
            self.out(f"{child.name} exited with status {code}; restarting in {delay:.1f}s")
            if child.name == "worker":
                self._release_leases(child.process.pid, code)
        elif now >= child.next_start:
            child.next_start = 0.0
            child.start(self.env)
            self._record_tree()

    def _release_leases(self, pid: int, code: int | None) -> None:
        """The worker ``pid`` died: its jobs back to the queue now, for the next worker."""
        # Imported on use: a dead worker is rare, the catalog and queue are heavy, and this
        # process lives as long as the stack.
        from catalog import Catalog, jobs
        from catalog.workers import host_id
        from nebulaqueue.relay import relay_pending
        from transcoder.tasks import tasks_for

        reason = f"worker pid {pid} exited with status {code}"
        try:
            with Catalog.opened(self.settings) as catalog:
                released = jobs.release_owner(
                    catalog, host_id(), pid, reason, self.settings.job_max_attempts
                )
                if released:
                    relay_pending(catalog, tasks_for(self.settings).enqueue)
        except Exception as exc:  # catalog down: the restarted worker or the lease expiry will
            log.warning("could not release the leases of worker %d: %s", pid, exc)
            return
        if released:
            self.out(f"re-queued jobs {released} of the dead worker")

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if not self.stopping:
            self.out(f"\nstopping ({signal.Signals(signum).name})...")
        self.stopping = True

    # ----- shutdown ------------------------------------------------------------------

    def stop_all(self) -> None:
        self.stopping = True
        for child in reversed(self.children):
            if child.alive():
                child.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in reversed(self.children):
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", child.name)
                child.signal_group(signal.SIGKILL)
                child.process.wait()
            # Anything the child itself started (ffmpeg) dies with its group.
            child.signal_group(signal.SIGKILL)
        log.info("all services stopped")
