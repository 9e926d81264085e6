"""Backend answers that arrive in many small pieces reach the client whole.

The proxy reads some answers whole before it sends them (ListBuckets, ACLs, DeleteObjects,
errors, short listings). CI once saw s3cmd get a ListBuckets cut off
mid-element: the proxy had taken the first piece that had arrived for the whole answer.
Here the backend is the session's SeaweedFS behind a relay that passes its answers on
in pieces of ``PIECE_BYTES`` with a pause between each, as a slow or busy network would,
so every answer longer than one piece comes in several reads.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.s3proxy.clients import Target, boto_client, clean_env, run, s3cmd_config
from tests.stacks import ProxyUnderTest, Seaweed, start_proxy

PIECE_BYTES = 512
PAUSE_SECONDS = 0.002


def _pump(source: socket.socket, sink: socket.socket, piece: int, pause: float) -> None:
    """Copy ``source`` to ``sink`` in writes of at most ``piece`` bytes, ``pause`` apart."""
    try:
        while data := source.recv(65536):
            for start in range(0, len(data), piece):
                sink.sendall(data[start : start + piece])
                if pause:
                    time.sleep(pause)
    except OSError:  # the other side went first
        pass
    finally:
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


@pytest.fixture(scope="module")
def trickling_backend(seaweed: Seaweed) -> Iterator[str]:
    """A relay to SeaweedFS that passes requests on as they come and answers in pieces."""
    backend = urlsplit(seaweed.endpoint)
    listener = socket.create_server(("127.0.0.1", 0))

    def relay(client: socket.socket) -> None:
        upstream = socket.create_connection((backend.hostname, backend.port))
        for end in (client, upstream):
            end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_pump, args=(client, upstream, 65536, 0), daemon=True).start()
        _pump(upstream, client, PIECE_BYTES, PAUSE_SECONDS)

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=relay, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


@pytest.fixture(scope="module")
def slow_proxy(
    tmp_path_factory: pytest.TempPathFactory, seaweed: Seaweed, trickling_backend: str
) -> Iterator[ProxyUnderTest]:
    server = start_proxy(
        tmp_path_factory.mktemp("slow-proxy"),
        seaweed,
        {"NEBULA_BACKEND_URL": trickling_backend},
    )
    yield server
    server.stop()


@pytest.fixture
def s3(slow_proxy: ProxyUnderTest) -> Any:
    return boto_client(Target("proxy", slow_proxy.endpoint, slow_proxy.admin, None))


@pytest.fixture
def many_buckets(s3: Any) -> Iterator[list[str]]:
    """Forty buckets of this test's own: ListBuckets is then several KiB, many pieces."""
    names = [f"pieces-{uuid.uuid4().hex[:16]}" for _ in range(40)]
    for name in names:
        s3.create_bucket(Bucket=name)
    yield names
    for name in names:
        s3.delete_bucket(Bucket=name)


@pytest.fixture
def bucket(s3: Any) -> Iterator[str]:
    """An empty bucket of the test's own, emptied and removed afterwards."""
    name = f"pieces-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    yield name
    for listed in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        for entry in listed.get("Contents", []):
            s3.delete_object(Bucket=name, Key=entry["Key"])
    s3.delete_bucket(Bucket=name)


def put_each(s3: Any, bucket: str, keys: list[str]) -> None:
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")


def test_list_buckets_in_many_pieces_reaches_s3cmd_and_boto3_whole(
    slow_proxy: ProxyUnderTest, s3: Any, many_buckets: list[str], tmp_path: Path
) -> None:
    listed = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert set(many_buckets) <= listed
    target = Target("proxy", slow_proxy.endpoint, slow_proxy.admin, None)
    s3cmd = ["s3cmd", "-c", str(s3cmd_config(target, slow_proxy.admin, tmp_path))]
    printed = run([*s3cmd, "ls"], clean_env(HOME=str(tmp_path))).stdout
    assert all(f"s3://{name}" in printed for name in many_buckets), printed


def test_delete_objects_answer_in_many_pieces_names_every_key(s3: Any, bucket: str) -> None:
    keys = [f"a fairly long key name to make the answer long/{n:04d}.txt" for n in range(120)]
    put_each(s3, bucket, keys)
    answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key} for key in keys]})
    assert sorted(d["Key"] for d in answer["Deleted"]) == keys
    assert "Errors" not in answer
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_short_listing_in_many_pieces_has_every_key_and_the_owner(s3: Any, bucket: str) -> None:
    keys = [f"listed/{n:04d}-{'k' * 40}" for n in range(60)]
    put_each(s3, bucket, keys)
    listed = s3.list_objects_v2(Bucket=bucket, FetchOwner=True)
    assert [o["Key"] for o in listed["Contents"]] == keys
    requester = s3.list_buckets()["Owner"]  # S3 names the requester there: the admin
    assert {o["Owner"]["ID"] for o in listed["Contents"]} == {requester["ID"]}
