"""Bounds that keep one client from holding the door for everyone else.

* :class:`IdleBodyTimer`: an upload whose client stops sending is cut after an idle time
  (never a total: a slow phone that keeps sending is never cut).
* :class:`UploadSlots`: one access key (or one presigned URL, which is the same key) may
  have only so many uploads in flight; each holds a backend connection for as long as
  its client takes to send.

The wait for a free backend connection lives in :class:`nebulacore.backend.Backend`
(``BackendBusy``, answered 503 ``SlowDown`` by :func:`s3proxy.forward.open_upstream`); the
header timeout is aiohttp's keep-alive timer (:func:`nebulacore.web.serve`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from types import TracebackType

from aiohttp import StreamReader, web
from aiohttp.helpers import BaseTimerContext

from s3proxy.errors import S3Error

# The access key whose upload slot this request holds.
UPLOAD_SLOT = web.RequestKey("s3proxy.upload_slot", str)


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
    either expires it or sleeps until that wait's own deadline. A timer per wait cost
    a large upload about 9 % of the proxy's CPU (a wait per 64 KiB the socket delivers).
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


class UploadSlots:
    """At most ``per_key`` concurrent uploads for each access key; the next is refused
    at once with 503 ``SlowDown`` (S3 clients back off and retry it)."""

    def __init__(self, per_key: int) -> None:
        self._per_key = per_key
        self._busy: Counter[str] = Counter()

    def take(self, request: web.Request, access_key_id: str) -> None:
        """Claim a slot for this request's upload; :func:`release_limits` releases it."""
        if not request.body_exists:
            return
        if self._busy[access_key_id] >= self._per_key:
            raise S3Error(
                "SlowDown",
                f"This key already has {self._per_key} uploads in progress; retry later.",
            )
        self._busy[access_key_id] += 1
        request[UPLOAD_SLOT] = access_key_id

    def release(self, access_key_id: str) -> None:
        self._busy[access_key_id] -= 1
        if self._busy[access_key_id] <= 0:
            del self._busy[access_key_id]


def arm_body_timer(request: web.Request, body_seconds: float) -> None:
    """Give the request's body an :class:`IdleBodyTimer` (the front middleware calls it
    before the handler, and :func:`release_limits` after)."""
    if request.body_exists and isinstance(request.content, StreamReader):
        request.content._timer = IdleBodyTimer(request.content, body_seconds)


def release_limits(request: web.Request, slots: UploadSlots) -> None:
    """Once the request's answer is done, however it ended: stop its body timer and
    release its upload slot (:meth:`UploadSlots.take`)."""
    timer = getattr(request.content, "_timer", None)
    if isinstance(timer, IdleBodyTimer):
        timer.disarm()
    holder = request.get(UPLOAD_SLOT)
    if holder is not None:
        slots.release(holder)
