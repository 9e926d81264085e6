"""Large bodies from memory on the wire: corked head and body (respond._HeadFirst).

A real aiohttp server on uvloop (as the origin runs) answers over a real socket; one
keep-alive connection asks for large answers, ranges, HEADs and small answers in turn, and
every answer must arrive whole and exact, and the connection must be uncorked again before
the next request (a cork left on would hold the next small answer in the kernel).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvloop
from aiohttp import web

from origin.backend import ObjectInfo
from origin.respond import HEAD_FIRST_BYTES, TCP_CORK, body_response

BIG = os.urandom(HEAD_FIRST_BYTES * 4 + 17)
SMALL = b"#EXTM3U\n" * 40
HUGE = bytes(16 << 20)  # more than the socket buffers of both ends hold
HEADERS = {"Content-Type": "video/mp4", "Cache-Control": "public, max-age=31536000, immutable"}
# Each request the handler saw: (path, whether its connection was corked when it came in).
Seen = list[tuple[str, int]]


def cork_of(request: web.BaseRequest) -> int:
    assert request.transport is not None and TCP_CORK is not None
    sock = request.transport.get_extra_info("socket")
    return int(sock.getsockopt(socket.IPPROTO_TCP, TCP_CORK))


@asynccontextmanager
async def serving(
    seen: Seen, connections: list[asyncio.Task[Any]] | None = None
) -> AsyncIterator[int]:
    """A server on a free port; ``connections`` collects the task serving each request's
    connection (it ends once the server is done with the connection, write errors and all)."""

    async def answer(request: web.Request) -> web.StreamResponse:
        seen.append((request.path, cork_of(request)))
        if connections is not None:
            task = asyncio.current_task()
            assert task is not None
            connections.append(task)
        body = {"/big": BIG, "/huge": HUGE}.get(request.path, SMALL)
        return body_response(request, body, ObjectInfo(len(body), 1_700_000_000), HEADERS)

    app = web.Application()
    app.router.add_route("*", "/{name}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield port
    finally:
        await runner.cleanup()


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: str
) -> tuple[int, dict[str, str], bytes]:
    """One request on the open connection; the answer's status, headers and body."""
    writer.write(request.encode())
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers = {}
    for line in head[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = 0 if request.startswith("HEAD") else int(headers["content-length"])
    return status, headers, await reader.readexactly(length)


async def ask_in_turn() -> tuple[list[tuple[int, dict[str, str], bytes]], Seen]:
    seen: Seen = []
    asks = [
        "GET /big HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /small HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /big HTTP/1.1\r\nHost: t\r\nRange: bytes=1000-400000\r\n\r\n",
        "HEAD /big HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /big HTTP/1.1\r\nHost: t\r\nRange: bytes=5-9\r\n\r\n",
        "GET /big HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /small HTTP/1.1\r\nHost: t\r\n\r\n",
    ]
    async with serving(seen) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            replies = [await exchange(reader, writer, ask) for ask in asks]
        finally:
            writer.close()
    return replies, seen


def test_large_answers_arrive_whole_and_leave_the_connection_uncorked() -> None:
    replies, seen = uvloop.run(ask_in_turn())
    expected = [
        (200, BIG),
        (200, SMALL),
        (206, BIG[1000:400001]),
        (200, b""),
        (206, BIG[5:10]),
        (200, BIG),
        (200, SMALL),
    ]
    assert [(status, body) for status, _, body in replies] == expected
    assert replies[0][1]["content-length"] == str(len(BIG))
    assert replies[2][1]["content-range"] == f"bytes 1000-400000/{len(BIG)}"
    assert replies[3][1]["content-length"] == str(len(BIG))  # HEAD: GET's length, no body
    assert replies[0][1]["cache-control"] == HEADERS["Cache-Control"]
    # Every request came in on the one connection, uncorked (the previous answer's cork
    # was lifted when it ended).
    assert len(seen) == len(expected) and all(corked == 0 for _, corked in seen), seen


async def hang_up_after_the_head() -> Seen:
    """A viewer that asks for a huge answer, reads its head and resets the connection
    while the server is still writing the body (corked)."""
    seen: Seen = []
    connections: list[asyncio.Task[Any]] = []
    async with serving(seen, connections) as port:
        viewer = socket.create_connection(("127.0.0.1", port))
        viewer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        viewer.sendall(b"GET /huge HTTP/1.1\r\nHost: t\r\n\r\n")
        viewer.setblocking(False)
        head = b""
        while b"\r\n\r\n" not in head:
            head += await asyncio.get_running_loop().sock_recv(viewer, 1024)
        # Reset, not a polite close: the server's next write fails at once.
        viewer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        viewer.close()
        # The server has met the reset and finished with the connection (and logged
        # whatever it logs about it) when the task that served it ends.
        await asyncio.wait(connections)
    return seen


def test_a_viewer_resetting_mid_body_leaves_no_unhandled_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The cork is lifted from a socket that is already closed (uvloop's stand-in socket
    then has no descriptor and raises ValueError, not OSError): a hang-up, never an
    "Unhandled exception" in aiohttp's log."""
    with caplog.at_level(logging.DEBUG, logger="aiohttp"):
        seen = uvloop.run(hang_up_after_the_head())
    assert seen == [("/huge", 0)]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
