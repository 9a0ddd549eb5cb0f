"""The default transport on asyncio: an HTTP/1.1 keep-alive pool on ``asyncio.Protocol`` connections.

It writes the driver's pre-encoded request target as it is: httpx spends
hundreds of microseconds parsing a long ITON URL and bookkeeping its pool;
here a request is one buffer write, and the answer is framed by llhttp
(:mod:`sms_async.transports._answer`), the parser of Node.js and uvicorn. It
checks a pooled connection before writing on it and expires idle ones early,
so that a connection the gateway closed while idle never turns a send into an
ambiguous one. New connections race the resolved addresses (happy eyeballs,
RFC 8305) so that a dead first address (broken IPv6) costs a quarter of a
second, not the connect timeout.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import socket
import ssl
import time
from collections.abc import Sequence
from typing import cast

import aiohappyeyeballs

from sms_async import _exceptions as exc
from sms_async._wire import Origin, WireRequest, WireResponse
from sms_async.transports._answer import AnswerError, AnswerReader
from sms_async.transports._base import USER_AGENT, BeforeWrite, OnWrite, Timeouts, safe_detail
from sms_async.transports._env import ssl_context_for

__all__ = ["FastTransport"]

# A request left over in the socket buffer beyond this many bytes starts the
# write timeout; a request is a few kilobytes, so this is "did not fit at once".
_WRITE_HIGH_WATER = 4096
# How long one address may try before the next one starts (RFC 8305 suggests 250 ms).
_HAPPY_EYEBALLS_DELAY = 0.25
# A connection's timer that fires this close to its time counts as on time:
# uvloop's timers run at millisecond precision and may fire a little early.
_TIMER_SLACK = 0.001


async def _resolve(host: str, port: int) -> Sequence[aiohappyeyeballs.AddrInfoType]:
    """Every TCP address of ``host`` (a seam the tests replace)."""
    loop = asyncio.get_running_loop()
    return await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)


class _Conn(asyncio.Protocol):
    """One HTTP/1.1 connection. At most one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reader: AnswerReader | None = None
        self.waiter: asyncio.Future[WireResponse] | None = None
        self.idle_since = 0.0
        self.expires_at = float("inf")
        self.server_keepalive: float | None = None
        # One timer per connection, re-armed only when it would fire too late:
        # a request moves ``fire_at``, not the timer (see _arm).
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = math.inf
        self.fire_at = math.inf
        self.fire_deadline = False
        self.read_timeout = 30.0
        self.write_timeout = 30.0
        self.deadline_at = math.inf
        self.keep_alive = True
        # True from writing the request until the kernel took all of it.
        self.writing = False
        self.paused = False

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio.Transport; both have its methods.
        self.transport = cast("asyncio.Transport", transport)
        # Told (pause_writing) when a request does not fit the socket at once,
        # and (resume_writing) when it all left: that is what the write timeout times.
        self.transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER, low=0)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.writing:
            self.writing = False
            waiter = self.waiter
            if waiter is not None and not waiter.done():
                self._rearm()

    def data_received(self, data: bytes) -> None:
        waiter = self.waiter
        reader = self.reader
        if waiter is None or waiter.done() or reader is None:
            # Bytes nobody asked for: the connection is out of step; drop it.
            self.close()
            return
        try:
            complete = reader.feed(data)
        except AnswerError as error:
            self._fail(exc.RemoteProtocolError(f"the gateway sent a malformed HTTP answer: {error}"))
            self.close()
            return
        if complete:
            self._finish(reader)
        else:
            # Progress, but not the whole answer: the timeout starts again (the
            # usual answer arrives whole, and needs no new timer).
            self._rearm()

    def eof_received(self) -> bool:
        reader = self.reader
        waiter = self.waiter
        if reader is not None and waiter is not None and not waiter.done() and reader.feed_eof():
            self._finish(reader)
        return False

    def connection_lost(self, error: Exception | None) -> None:
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        waiter = self.waiter
        reader = self.reader
        if waiter is None or waiter.done():
            return
        if reader is not None and reader.feed_eof():
            self._finish(reader)
            return
        detail = safe_detail(error) if error is not None else "connection closed"
        what = "in the middle of its answer" if reader is not None and reader.started else "without answering"
        self._fail(exc.RemoteProtocolError(f"the gateway closed the connection {what} ({detail})"))

    # request cycle

    def start(
        self, data: bytes, timeouts: Timeouts, deadline_at: float | None
    ) -> asyncio.Future[WireResponse]:
        reader = self.reader
        if reader is None:
            self.reader = AnswerReader()
        else:
            reader.reset()  # the last answer completed and kept the connection
        self.read_timeout = timeouts.read
        self.write_timeout = timeouts.write
        self.deadline_at = deadline_at if deadline_at is not None else math.inf
        waiter: asyncio.Future[WireResponse] = self.loop.create_future()
        self.waiter = waiter
        assert self.transport is not None  # noqa: S101 - set in connection_made
        self.writing = True
        self.transport.write(data)
        # pause_writing came (synchronously) if the socket did not take it all.
        self.writing = self.paused
        self._arm()
        return waiter

    def _rearm(self) -> None:
        self._arm()

    def _arm(self) -> None:
        # The write or read timeout restarts with every piece of progress; the
        # deadline does not, so a slow drip cannot hold a batch forever.
        now = time.monotonic()
        timeout = self.write_timeout if self.writing else self.read_timeout
        fire_at = now + timeout
        deadline = fire_at > self.deadline_at
        if deadline:
            fire_at = self.deadline_at
        self.fire_at = fire_at
        self.fire_deadline = deadline
        # A timer armed for an earlier request that fires no later than this
        # one must is kept: when it fires it looks at fire_at and, if that is
        # still ahead, waits the rest. That spares a call_later and a cancel
        # per request (and a handle for the garbage collector).
        timer = self.timer
        if timer is None or self.timer_at > fire_at:
            if timer is not None:
                timer.cancel()
            self.timer = self.loop.call_later(max(0.0, fire_at - now), self._on_timer)
            self.timer_at = fire_at

    def _on_timer(self) -> None:
        self.timer = None
        fire_at = self.fire_at
        if fire_at == math.inf:
            return  # no request pending: the next one arms a timer again
        left = fire_at - time.monotonic()
        if left > _TIMER_SLACK:
            self.timer = self.loop.call_later(left, self._on_timer)
            self.timer_at = fire_at
            return
        self._on_timeout(self.fire_deadline)

    def _disarm(self) -> None:
        self.fire_at = math.inf
        timer = self.timer
        if timer is not None:
            timer.cancel()
            self.timer = None

    def _on_timeout(self, deadline: bool) -> None:
        self.fire_at = math.inf
        if deadline:
            self._fail(exc.DeadlineExceeded("the batch deadline passed with the request in flight"))
        elif self.writing:
            self._fail(exc.WriteError(f"writing the request took longer than {self.write_timeout:g} s"))
        else:
            self._fail(exc.ReadTimeout(f"the gateway did not answer within {self.read_timeout:g} s"))
        self.close()

    def _finish(self, reader: AnswerReader) -> None:
        # The timer stays armed for the next request on this connection (see _arm).
        self.fire_at = math.inf
        # An answer that came before the whole request left (a gateway
        # refusing early) leaves the connection in an unknown state.
        self.keep_alive = reader.keep_alive and not self.writing
        self.server_keepalive = reader.server_keepalive
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(reader.response())

    def _fail(self, error: BaseException) -> None:
        self._disarm()
        self.keep_alive = False
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def close(self) -> None:
        self.closed = True
        self.keep_alive = False
        self._disarm()
        transport = self.transport
        if transport is not None:
            if transport.get_write_buffer_size():
                # A graceful close would wait, with the socket open, for a
                # gateway that stopped reading to take the rest of the request.
                transport.abort()
            else:
                transport.close()

    def usable(self, now: float) -> bool:
        transport = self.transport
        return (
            not self.closed and transport is not None and not transport.is_closing() and now < self.expires_at
        )


class FastTransport:
    """HTTP/1.1 keep-alive pool on asyncio protocols (asyncio and uvloop only)."""

    name = "fast"

    def __init__(
        self,
        origin: Origin,
        *,
        limit: int,
        timeouts: Timeouts | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._origin = origin
        self._limit = max(1, limit)
        self._timeouts = timeouts or Timeouts()
        self._ssl: ssl.SSLContext | None = None
        if origin.scheme == "https":
            self._ssl = ssl_context or ssl_context_for(True, trust_env=True)
        self._idle: collections.deque[_Conn] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._open = 0
        self._closed = False
        # Pre-encode the invariant part of every request head.
        self._host_line = (
            f"\r\nHost: {origin.host_header}\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\n"
            "Accept-Encoding: identity\r\n"
        )
        #: Connections opened so far (for tests and benchmarks).
        self.connections_opened = 0

    async def send(
        self,
        request: WireRequest,
        deadline_at: float | None = None,
        before_write: BeforeWrite | None = None,
        on_write: OnWrite | None = None,
    ) -> WireResponse:
        """Send ``request`` on a pooled connection; map every failure exactly.

        Waiting for a pooled connection, connecting and ``before_write`` come
        before ``on_write``; the request is written in the same step as it.
        """
        if self._closed:
            raise exc.ConnectError("the transport is closed")
        data = self._encode(request)
        conn = await self._acquire()
        if before_write is not None:
            try:
                await before_write()
            except BaseException:
                self._release(conn)  # nothing was written: the connection is as good as it was
                raise
            if not conn.usable(time.monotonic()):
                # The gateway closed it while we waited: a new one, with nothing written yet.
                conn.close()
                self._release(conn)
                conn = await self._acquire()
        failure: exc.TransportError | None = None
        if on_write is not None:
            on_write()  # no checkpoint from here to the write: a cancellation cannot come between
        try:
            waiter = conn.start(data, self._timeouts, deadline_at)
        except Exception as error:  # noqa: BLE001 - whatever a broken transport raises, nothing was read
            conn.close()
            self._release(conn)
            failure = exc.WriteError(f"writing the request failed: {safe_detail(error)}")
        if failure is not None:
            raise failure  # raised outside the except: no chain back to the request bytes
        try:
            response = await waiter
        except BaseException:
            # Timed out, lost, or cancelled with the request on the wire:
            # the connection's state is unknown; never reuse it.
            conn.close()
            self._release(conn)
            raise
        conn.waiter = None
        self._release(conn)
        return response

    def _encode(self, request: WireRequest) -> bytes:
        head = [request.method, " ", request.target, " HTTP/1.1", self._host_line]
        for name, value in request.headers:
            head.append(f"{name}: {value}\r\n")
        body = request.body
        has_length = bool(body) or request.method != "GET"
        if has_length:
            head.append(f"Content-Length: {len(body)}\r\n")
        head.append("\r\n")
        text = "".join(head)
        if not text.isascii():
            # Checked, not caught: a UnicodeEncodeError would carry the whole target, password and all.
            raise exc.ConnectError("the request target holds non-ASCII characters; it was not sent")
        # Request line, Host, User-Agent, Accept, Accept-Encoding, each header, Content-Length,
        # blank line: any other line break sits inside the target or a header value and would
        # forge a header.
        lines = 6 + len(request.headers) + has_length
        if text.count("\n") != lines or text.count("\r") != lines:
            raise exc.ConnectError(
                "the request holds a line break in its target or a header; it was not sent"
            )
        encoded = text.encode("ascii")
        return encoded + body if body else encoded

    async def _acquire(self) -> _Conn:
        now = time.monotonic()
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.usable(now):
                return conn
            conn.close()
            self._open -= 1
        if self._open >= self._limit:
            await self._wait_for_slot()
            return await self._acquire()
        self._open += 1
        try:
            return await self._connect()
        except BaseException:
            self._open -= 1
            self._wake()
            raise

    async def _wait_for_slot(self) -> None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        timed_out = False
        try:
            await asyncio.wait_for(waiter, self._timeouts.pool)
        except TimeoutError:
            timed_out = True
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
        if timed_out:
            raise exc.PoolTimeout(f"no connection became free within {self._timeouts.pool:g} s")

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _connect(self) -> _Conn:
        loop = asyncio.get_running_loop()
        origin = self._origin
        failure: exc.NotSentError | None = None
        try:
            async with asyncio.timeout(self._timeouts.connect):
                addresses = await _resolve(origin.host, origin.port)
                # uvloop's create_connection has no happy_eyeballs_delay: race here, for both loops.
                sock = await aiohappyeyeballs.start_connection(
                    addresses, happy_eyeballs_delay=_HAPPY_EYEBALLS_DELAY, interleave=1
                )
                # From here the loop owns the socket, and closes it if the TLS handshake fails.
                _, conn = await loop.create_connection(
                    lambda: _Conn(loop),
                    sock=sock,
                    ssl=self._ssl,
                    server_hostname=origin.host if self._ssl is not None else None,
                )
        except TimeoutError:
            failure = exc.ConnectTimeout(
                f"connecting to {origin.host_header} took longer than {self._timeouts.connect:g} s"
            )
        except (OSError, ssl.SSLError, RuntimeError, ValueError) as error:
            # OSError covers refusals, DNS and certificate errors; uvloop may raise
            # RuntimeError, and an empty address list is a ValueError.
            failure = exc.ConnectError(f"could not connect to {origin.host_header}: {safe_detail(error)}")
        if failure is not None:
            raise failure
        self.connections_opened += 1
        return conn

    def _release(self, conn: _Conn) -> None:
        if self._closed or conn.closed or not conn.keep_alive:
            conn.close()
            self._open -= 1
        else:
            now = time.monotonic()
            conn.idle_since = now
            expiry = self._timeouts.keepalive_expiry
            if conn.server_keepalive is not None:
                expiry = min(expiry, conn.server_keepalive)
            conn.expires_at = now + expiry
            self._idle.append(conn)
        self._wake()

    def connections(self) -> tuple[int, int]:
        """Connections open (connecting, busy or idle) and, of those, idle."""
        return self._open, len(self._idle)

    async def aclose(self) -> None:
        """Close every pooled connection."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()
            self._open -= 1
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
