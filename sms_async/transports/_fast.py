"""The default transport on asyncio: an HTTP/1.1 keep-alive pool on ``asyncio.Protocol`` connections.

It writes the driver's pre-encoded request target as it is: httpx spends
hundreds of microseconds parsing a long ITON URL and bookkeeping its pool;
here a request is one buffer write and a small parse of the answer. It checks
a pooled connection before writing on it and expires idle ones early, so that
a connection the gateway closed while idle never turns a send into an
ambiguous one.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import ssl
import time
from typing import cast

from sms_async import _exceptions as exc
from sms_async._wire import Origin, WireRequest, WireResponse
from sms_async.transports._base import USER_AGENT, Timeouts, safe_detail

__all__ = ["FastTransport"]

_MAX_HEAD = 64 * 1024
_MAX_BODY = 16 * 1024 * 1024


class _Conn(asyncio.Protocol):
    """One HTTP/1.1 connection. At most one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.buf = bytearray()
        self.waiter: asyncio.Future[WireResponse] | None = None
        self.idle_since = 0.0
        self.expires_at = float("inf")
        self.server_keepalive: float | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.read_timeout = 30.0
        self.deadline_at = math.inf
        self.keep_alive = True
        self.got_bytes = False
        self._head: tuple[int, dict[str, str]] | None = None
        self._body_start = 0
        self._length: int | None = None
        self._chunked = False
        self._until_close = False
        self._head_only = False

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio.Transport; both have its methods.
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            # Bytes nobody asked for: the connection is out of step; drop it.
            self.close()
            return
        self.got_bytes = True
        self.buf += data
        if self.timer is not None:
            self.timer.cancel()
            self._arm()
        try:
            response = self._parse()
        except _BadResponse as error:
            self._fail(exc.RemoteProtocolError(f"the gateway sent a malformed HTTP answer: {error}"))
            return
        if response is not None:
            self._finish(response)

    def eof_received(self) -> bool:
        if (
            self._until_close
            and self._head is not None
            and self.waiter is not None
            and not self.waiter.done()
        ):
            status, headers = self._head
            self.keep_alive = False
            self._finish(WireResponse(status, headers, bytes(self.buf[self._body_start :])))
        return False

    def connection_lost(self, error: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            if self._until_close and self._head is not None:
                status, headers = self._head
                self._finish(WireResponse(status, headers, bytes(self.buf[self._body_start :])))
            else:
                detail = safe_detail(error) if error is not None else "connection closed"
                what = "in the middle of its answer" if self.got_bytes else "without answering"
                self._fail(exc.RemoteProtocolError(f"the gateway closed the connection {what} ({detail})"))

    # request cycle

    def start(
        self, data: bytes, read_timeout: float, deadline_at: float | None
    ) -> asyncio.Future[WireResponse]:
        self.buf.clear()
        self._head = None
        self._length = None
        self._chunked = self._until_close = self._head_only = False
        self.got_bytes = False
        self.read_timeout = read_timeout
        self.deadline_at = deadline_at if deadline_at is not None else math.inf
        waiter: asyncio.Future[WireResponse] = self.loop.create_future()
        self.waiter = waiter
        self._arm()
        assert self.transport is not None  # noqa: S101 - set in connection_made
        self.transport.write(data)
        return waiter

    def _arm(self) -> None:
        # The read timeout restarts with every piece of the answer; the
        # deadline does not, so a slow drip cannot hold a batch forever.
        now = time.monotonic()
        if now + self.read_timeout <= self.deadline_at:
            self.timer = self.loop.call_later(self.read_timeout, self._on_timeout, False)
        else:
            self.timer = self.loop.call_later(max(0.0, self.deadline_at - now), self._on_timeout, True)

    def _on_timeout(self, deadline: bool) -> None:
        self.timer = None
        if deadline:
            self._fail(exc.DeadlineExceeded("the batch deadline passed with the request in flight"))
        else:
            self._fail(exc.ReadTimeout(f"the gateway did not answer within {self.read_timeout:g} s"))
        self.close()

    def _finish(self, response: WireResponse) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    def _fail(self, error: BaseException) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.keep_alive = False
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def close(self) -> None:
        self.closed = True
        self.keep_alive = False
        if self.transport is not None:
            self.transport.close()

    def usable(self, now: float) -> bool:
        transport = self.transport
        return (
            not self.closed and transport is not None and not transport.is_closing() and now < self.expires_at
        )

    # parsing

    def _parse(self) -> WireResponse | None:
        buf = self.buf
        if self._head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEAD:
                    raise _BadResponse("header block too large")
                return None
            self._parse_head(bytes(buf[:end]))
            self._body_start = end + 4
            assert self._head is not None  # noqa: S101 - set by _parse_head
            if self._head[0] < 200:  # 100 Continue and friends: skip, read on
                del buf[: self._body_start]
                self._head = None
                return self._parse() if buf else None
        status, headers = self._head
        start = self._body_start
        if self._head_only:
            self._check_nothing_after(start)
            return WireResponse(status, headers, b"")
        if self._length is not None:
            end = start + self._length
            if len(buf) < end:
                return None
            self._check_nothing_after(end)
            return WireResponse(status, headers, bytes(buf[start:end]))
        if self._chunked:
            done = _dechunk(buf, start)
            if done is None:
                return None
            body, end = done
            self._check_nothing_after(end)
            return WireResponse(status, headers, body)
        if len(buf) - start > _MAX_BODY:
            raise _BadResponse("answer too large")
        return None  # read until the connection closes

    def _check_nothing_after(self, end: int) -> None:
        # Bytes beyond the answer were never asked for: the connection is out
        # of step with the gateway and must not carry another request.
        if len(self.buf) > end:
            self.keep_alive = False

    def _parse_head(self, head: bytes) -> None:
        # A 1xx head went before: its framing must not leak into this one.
        self._length = None
        self._chunked = self._until_close = self._head_only = False
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise _BadResponse("not an HTTP status line")
        try:
            status = int(parts[1])
        except ValueError:
            raise _BadResponse("bad status code") from None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise _BadResponse("bad header line")
            key = name.strip().decode("latin-1").lower()
            text = value.strip().decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        version_11 = parts[0] == b"HTTP/1.1"
        connection = headers.get("connection", "").lower()
        self.keep_alive = (version_11 and "close" not in connection) or (
            not version_11 and "keep-alive" in connection
        )
        keep_alive_header = headers.get("keep-alive")
        if keep_alive_header:
            self._note_keep_alive(keep_alive_header)
        self._head = (status, headers)
        if status in {204, 304} or 100 <= status < 200:
            self._head_only = True
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._chunked = True
        elif "content-length" in headers:
            try:
                length = int(headers["content-length"].split(",")[0])
            except ValueError:
                raise _BadResponse("bad Content-Length") from None
            if length < 0 or length > _MAX_BODY:
                raise _BadResponse("bad Content-Length")
            self._length = length
        else:
            self._until_close = True
            self.keep_alive = False

    def _note_keep_alive(self, value: str) -> None:
        # "Keep-Alive: timeout=5": leave a margin so we never write on a
        # connection the server is about to close.
        for item in value.split(","):
            key, _, number = item.strip().partition("=")
            if key.strip().lower() == "timeout":
                with contextlib.suppress(ValueError):
                    self.server_keepalive = max(0.0, float(number) - 1.0)


class _BadResponse(Exception):
    pass


def _dechunk(buf: bytearray, start: int) -> tuple[bytes, int] | None:
    """The body of a complete chunked answer and where it ends, or ``None`` if more is needed."""
    out = bytearray()
    pos = start
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size_text = bytes(buf[pos:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _BadResponse("bad chunk size") from None
        pos = line_end + 2
        if size == 0:
            # Trailers end with an empty line.
            trailer_end = buf.find(b"\r\n", pos)
            while trailer_end >= 0 and trailer_end != pos:
                pos = trailer_end + 2
                trailer_end = buf.find(b"\r\n", pos)
            return None if trailer_end < 0 else (bytes(out), trailer_end + 2)
        if len(buf) < pos + size + 2:
            return None
        out += buf[pos : pos + size]
        if len(out) > _MAX_BODY:
            raise _BadResponse("answer too large")
        pos += size + 2


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
            self._ssl = ssl_context or ssl.create_default_context()
        self._idle: collections.deque[_Conn] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._open = 0
        self._closed = False
        # Pre-encode the invariant part of every request head.
        self._host_line = f"\r\nHost: {origin.host_header}\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\n"
        #: Connections opened so far (for tests and benchmarks).
        self.connections_opened = 0

    async def send(self, request: WireRequest, deadline_at: float | None = None) -> WireResponse:
        """Send ``request`` on a pooled connection; map every failure exactly."""
        if self._closed:
            raise exc.ConnectError("the transport is closed")
        data = self._encode(request)
        conn = await self._acquire()
        failure: exc.TransportError | None = None
        try:
            waiter = conn.start(data, self._timeouts.read, deadline_at)
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
        # Request line, Host, User-Agent, Accept, each header, Content-Length, blank line:
        # any other line break sits inside the target or a header value and would forge a header.
        lines = 5 + len(request.headers) + has_length
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
                _, conn = await loop.create_connection(
                    lambda: _Conn(loop),
                    origin.host,
                    origin.port,
                    ssl=self._ssl,
                    server_hostname=origin.host if self._ssl is not None else None,
                )
        except TimeoutError:
            failure = exc.ConnectTimeout(
                f"connecting to {origin.host_header} took longer than {self._timeouts.connect:g} s"
            )
        except (OSError, ssl.SSLError) as error:
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

    async def aclose(self) -> None:
        """Close every pooled connection."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()
            self._open -= 1
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
