"""A transcode's commit: one S3 client per job, and no storage work under the job's row lock."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from sqlalchemy import event

from catalog import Asset, AssetStatus, Job, JobStatus
from tests.rows import existing
from tests.transcoder.conftest import Env
from transcoder.samples import make_source
from transcoder.work import run_job


class Relay:
    """A TCP relay to the backend that can be taken down: then every connection through it
    is cut and new ones are refused, as with a backend that went away."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                if self.down.is_set():
                    client.close()
                    upstream.close()
                    continue
                self._sockets += [client, upstream]
            threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()

    def take_down(self) -> None:
        with self._lock:
            if self.down.is_set():
                return
            self.down.set()
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept(): nothing listens now
            self.listener.close()
            for sock in self._sockets:
                with contextlib.suppress(OSError):  # already closed by its peer
                    sock.shutdown(socket.SHUT_RDWR)


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
        target.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the relay was taken down


@pytest.fixture
def relay(make_settings: Any) -> Iterator[Relay]:
    backend = urlsplit(make_settings().backend_endpoint)
    made = Relay((backend.hostname or "127.0.0.1", backend.port or 80))
    yield made
    made.take_down()


def test_the_commit_under_the_job_row_lock_needs_no_storage(
    make_env, pg_url: str, relay: Relay, tmp_path: Path
) -> None:
    """An overwrite of the video (``jobs.supersede``) waits on the job row's lock, so the
    commit does nothing under it but catalog writes: storage goes away the moment the lock
    is taken, and the job still commits (listing storage there would fail it)."""
    env: Env = make_env(ladder="144:150", database_url=pg_url, backend_url=relay.url)
    asset_id, job_id = env.upload(make_source(tmp_path / "a.mp4", seconds=2))

    def storage_down_once_locked(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FOR UPDATE" in statement and "FROM jobs" in statement:
            relay.take_down()

    event.listen(env.catalog.engine, "before_cursor_execute", storage_down_once_locked)
    try:
        assert run_job(env.settings, env.catalog, job_id) == "done"
    finally:
        event.remove(env.catalog.engine, "before_cursor_execute", storage_down_once_locked)
    assert relay.down.is_set(), "the commit never locked the job row"
    with env.catalog.session() as session:
        assert existing(session, Job, job_id).status == JobStatus.DONE
        asset = existing(session, Asset, asset_id)
        assert asset.status == AssetStatus.READY
        assert sorted(r.name for r in asset.renditions) == ["144p", "audio"]


def test_a_job_makes_one_s3_client(make_env, tmp_path: Path, monkeypatch) -> None:
    env: Env = make_env(ladder="144:150")
    asset_id, job_id = env.upload(make_source(tmp_path / "a.mp4", seconds=2))
    made: list[str] = []
    make_client = boto3.client

    def counted(*args: Any, **kwargs: Any) -> Any:
        made.append(threading.current_thread().name)
        return make_client(*args, **kwargs)

    monkeypatch.setattr(boto3, "client", counted)
    assert run_job(env.settings, env.catalog, job_id) == "done"
    assert len(made) == 1, made
    assert f"{asset_id}/master.m3u8" in env.hls_keys(asset_id)
