"""Bounds that keep one client from holding the door for everyone else.

* :class:`IdleBodyTimer`: an upload whose client stops sending is cut after an idle time
  (never a total: a slow phone that keeps sending is never cut).
* :class:`StalledReaders`: a streamed answer whose client stops reading is cut after an
  idle time (never a total either).
* :class:`KeySlots`: one access key (or one presigned URL, which is the same key) may have
  only so many uploads, and so many other requests (downloads), in flight; each holds a
  backend connection for as long as its client takes to send or to read.

:class:`Limits` is how the front middleware and the handler apply them. The wait for a
free backend connection lives in :class:`nebulacore.backend.Backend` (``BackendBusy``,
answered 503 ``SlowDown`` by :func:`s3proxy.forward.open_upstream`); the header timeout is
aiohttp's keep-alive timer (:func:`nebulacore.web.serve`).
"""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
import sys
import termios
from collections import Counter
from contextlib import suppress
from types import TracebackType

from aiohttp import StreamReader, web

from nebulacore.aiohttp_private import BaseTimerContext, read_timer, set_read_timer
from nebulacore.config import Settings
from nebulacore.ops import ERROR_CODE_KEY
from s3proxy.errors import S3Error


def request_timeout() -> S3Error:
    return S3Error(
        "RequestTimeout",
        "Your socket connection to the server was not read from or written to within "
        "the timeout period.",
    )


class IdleBodyTimer(BaseTimerContext):
    """Bounds each wait for more request-body bytes.

    aiohttp's :class:`StreamReader` waits for data inside its ``timer`` context, the
    hook its client uses for ``sock_read``; the server leaves it unset. Entering notes
    when the wait began, leaving (data arrived) ends it; a wait longer than ``seconds``
    fails the reader with ``RequestTimeout``, which the body stream turns into an aborted
    upstream request. A wait happens only while the reader's buffer is empty, so a slow
    backend (which stops the proxy reading) never counts against the client.

    One timer serves every wait: when it fires it looks at the wait in progress and
    either expires it or sleeps until that wait's own deadline. A timer per wait was a
    measurable share of a large upload's CPU, as there is a wait per 64 KiB the socket
    delivers (docs/benchmarks.md#s3proxy).
    :meth:`disarm` cancels it when the request is done.
    """

    __slots__ = ("_handle", "_loop", "_reader", "_seconds", "_since")

    def __init__(self, reader: StreamReader, seconds: float) -> None:
        self._reader = reader
        self._seconds = seconds
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | None = None
        self._since: float | None = None  # when the wait in progress began

    def __enter__(self) -> BaseTimerContext:
        self._since = self._loop.time()
        if self._handle is None:
            self._handle = self._loop.call_at(self._since + self._seconds, self._check)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self._since = None

    def _check(self) -> None:
        self._handle = None
        if self._since is None:  # no wait in progress: the next one arms the timer again
            return
        deadline = self._since + self._seconds
        if self._loop.time() >= deadline:
            self._since = None
            self._reader.set_exception(request_timeout())
        else:
            self._handle = self._loop.call_at(deadline, self._check)

    def disarm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


def kernel_queue(transport: asyncio.Transport) -> int:
    """Bytes in the socket's kernel send queue (sent and not yet acknowledged, or not
    yet sent); 0 where the system cannot tell (SIOCOUTQ is Linux's)."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        answer = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, bytes(4))
    except (OSError, ValueError):  # ValueError: closed meanwhile, its descriptor is -1
        return 0
    return int.from_bytes(answer, sys.byteorder, signed=True)


def delivered(request: web.Request) -> int | None:
    """How many bytes of the connection's answers its client has acknowledged (an offset
    good for differences only), or None when nothing waits for the client to read it."""
    transport = request.transport
    if transport is None or transport.is_closing():
        return None  # gone: the write in progress fails by itself
    pending = transport.get_write_buffer_size() + kernel_queue(transport)
    return request.writer.output_size - pending if pending else None


def cut(request: web.Request) -> None:
    """Close the client's connection with a reset: the kernel drops what it still holds
    for the client, and the write in progress fails, which ends the answer and releases
    its backend connection and slot."""
    request[ERROR_CODE_KEY] = "RequestTimeout"  # what the access log and /metrics report
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with suppress(OSError):  # closed anyway, without the reset
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class _Reader:
    """One streamed answer being watched: what its client had acknowledged at the last
    look, and since when that has not changed."""

    __slots__ = ("delivered", "request", "since")

    def __init__(self, request: web.Request, now: float) -> None:
        self.request = request
        self.delivered = delivered(request)
        self.since = now


WATCHED = web.RequestKey("s3proxy.watched", _Reader)


class StalledReaders:
    """Cuts a streamed answer whose client stopped reading it for ``seconds``.

    A client that reads nothing fills its socket's buffers, then the transport's, and
    aiohttp's ``write`` then waits (in ``drain``) for as long as the client pleases, holding
    a backend connection and a download slot. What the client reads shows as what its TCP
    acknowledges: the bytes written less those still in the transport's buffer and in the
    kernel's send queue. So a slow reader shows progress as it reads, not only when the
    kernel has room for another write (a third of a send buffer of up to 4 MiB, which a
    reader of a few KiB/s would take minutes to free). An answer with nothing pending waits
    for the backend, not for its client, and is never cut.

    One timer per worker looks at every streamed answer each quarter of ``seconds`` (a cut
    comes between 1 and 1.25 times ``seconds`` after the last progress seen); the writes
    themselves pay nothing (a timer per wait is what :class:`IdleBodyTimer` avoids).
    """

    LOOKS_PER_TIMEOUT = 4

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._readers: set[_Reader] = set()
        self._handle: asyncio.TimerHandle | None = None

    def watch(self, request: web.Request) -> None:
        """From now (the answer's head is sent) until :meth:`forget`."""
        loop = asyncio.get_running_loop()
        reader = request[WATCHED] = _Reader(request, loop.time())
        self._readers.add(reader)
        if self._handle is None:
            self._handle = loop.call_later(self._seconds / self.LOOKS_PER_TIMEOUT, self._look)

    def forget(self, request: web.Request) -> None:
        reader = request.get(WATCHED)
        if reader is not None:
            self._readers.discard(reader)

    def _look(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for reader in list(self._readers):
            acknowledged = delivered(reader.request)
            if acknowledged is None or acknowledged != reader.delivered:
                reader.delivered, reader.since = acknowledged, now
            elif now - reader.since >= self._seconds:
                self._readers.discard(reader)
                cut(reader.request)
        self._handle = None
        if self._readers:  # else the next watch arms it again
            self._handle = loop.call_later(self._seconds / self.LOOKS_PER_TIMEOUT, self._look)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class KeySlots:
    """At most ``per_key`` requests of one kind in flight for each access key; the next
    is refused at once with 503 ``SlowDown`` (S3 clients back off and retry it)."""

    def __init__(self, per_key: int, kind: str) -> None:
        self._per_key = per_key
        self._kind = kind
        self._busy: Counter[str] = Counter()

    def take(self, request: web.Request, access_key_id: str) -> None:
        """Claim a slot for this request; :meth:`Limits.release` releases it."""
        if self._busy[access_key_id] >= self._per_key:
            raise S3Error(
                "SlowDown",
                f"This key already has {self._per_key} {self._kind} in progress; retry later.",
            )
        self._busy[access_key_id] += 1
        request[SLOT] = (self, access_key_id)

    def release(self, access_key_id: str) -> None:
        self._busy[access_key_id] -= 1
        if self._busy[access_key_id] <= 0:
            del self._busy[access_key_id]


# The slot this request holds: its kind's slots and the access key.
SLOT: web.RequestKey[tuple[KeySlots, str]] = web.RequestKey("s3proxy.slot")


class Limits:
    """The bounds of one worker: a request with a body holds an upload slot, any other
    (GETs, listings, HEADs, DELETEs) a download slot, from before it takes a backend
    connection until its answer is done; a body has its idle timer, a streamed answer
    its stalled-reader watch."""

    def __init__(self, settings: Settings) -> None:
        self.uploads = KeySlots(settings.uploads_per_key, "uploads")
        self.downloads = KeySlots(settings.downloads_per_key, "downloads")
        self.readers = StalledReaders(settings.answer_timeout_seconds)
        self._body_seconds = settings.body_timeout_seconds

    def arm(self, request: web.Request) -> None:
        """Give the request's body an :class:`IdleBodyTimer` (the front middleware calls it
        before the handler, and :meth:`release` after)."""
        if request.body_exists and isinstance(request.content, StreamReader):
            set_read_timer(request.content, IdleBodyTimer(request.content, self._body_seconds))

    def take(self, request: web.Request, access_key_id: str) -> None:
        """Claim the request's slot (an upload's or a download's); raises SlowDown."""
        slots = self.uploads if request.body_exists else self.downloads
        slots.take(request, access_key_id)

    def release(self, request: web.Request) -> None:
        """Once the request's answer is done, however it ended: stop its body timer and
        its reader's watch, and release its slot."""
        timer = read_timer(request.content)
        if isinstance(timer, IdleBodyTimer):
            timer.disarm()
        self.readers.forget(request)
        held = request.get(SLOT)
        if held is not None:
            slots, access_key_id = held
            slots.release(access_key_id)


# The worker's stalled-reader watch, for :func:`s3proxy.exchange.answer_started`.
READERS = web.AppKey("s3proxy.readers", StalledReaders)
