"""A small HTTP/1.1 server on ``asyncio.Protocol``, with the gateway's faults wired in.

It reads one request at a time per connection (pipelined requests wait in the
buffer), bodies by Content-Length only, and answers with Content-Length. The
common case, a request with no fault or latency, is parsed, carried out and
answered inside ``data_received`` without a task or a coroutine.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import time
from http import HTTPStatus
from typing import TYPE_CHECKING, Final, cast

from sms_async.testing._protocol import Operation, Request, Response

if TYPE_CHECKING:
    from sms_async.testing._faults import Fault, FaultPlan
    from sms_async.testing._router import Router
    from sms_async.testing._stats import GatewayStats

__all__ = ["HttpServer", "encode_response", "is_loopback"]

MAX_HEAD: Final = 64 * 1024
MAX_BODY: Final = 4 * 1024 * 1024
_SERVER_HEADER: Final = b"Server: sms-async-simulator\r\n"
_REASONS: Final = {s.value: s.phrase.encode() for s in HTTPStatus}
_HTML_PAGE: Final = (
    b"<!DOCTYPE html>\n<html><head><title>Service maintenance</title></head>"
    b"<body><h1>We'll be back soon</h1><p>The service is down for maintenance.</p></body></html>\n"
)
_WRONG_SHAPES: Final = {
    "list": b'["532073f7e4b05199d2c3d812","919812345678"]',
    "number": b"417",
    "string": b'"Success"',
    "null": b"null",
    "map_of_lists": b'{"532073f7e4b05199d2c3d812":["919812345678"]}',
}
_BUSY_KINDS: Final = {"status_429": 429, "status_503": 503}
_ERROR_KINDS: Final = {"status_500": 500, "status_502": 502, "status_504": 504}


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` names this machine only (``localhost`` or a loopback address)."""
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.partition("%")[0]).is_loopback
    except ValueError:
        return False


class _BadRequestError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def encode_response(response: Response, *, keep_alive: bool) -> bytes:
    """The bytes of ``response``: status line, headers and body."""
    status, content_type, body, extra = response
    parts = [
        b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Unknown")),
        _SERVER_HEADER,
        b"Content-Type: %s\r\nContent-Length: %d\r\n" % (content_type.encode(), len(body)),
    ]
    parts.extend(b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1")) for name, value in extra)
    if not keep_alive:
        parts.append(b"Connection: close\r\n")
    parts.append(b"\r\n")
    parts.append(body)
    return b"".join(parts)


def _retry_after(fault: Fault) -> tuple[tuple[str, str], ...]:
    value = fault.retry_after
    if value is None:
        return ()
    if isinstance(value, str):
        return (("Retry-After", value),)
    if fault.retry_after_form == "http_date":
        return (("Retry-After", email.utils.formatdate(time.time() + value, usegmt=True)),)
    return (("Retry-After", f"{value:g}"),)


def _connection_tokens(value: str | None) -> set[str]:
    if not value:
        return set()
    return {token.strip().lower() for token in value.split(",")}


class HttpServer:
    """The listening socket, the open connections and what they share."""

    def __init__(
        self,
        router: Router,
        plan: FaultPlan,
        stats: GatewayStats,
        *,
        host: str,
        port: int,
        idle_timeout: float | None,
        backlog: int,
    ) -> None:
        self.router = router
        self.plan = plan
        self.stats = stats
        self.host = host
        self.port = port
        self.idle_timeout = idle_timeout
        self.backlog = backlog
        self.connections: set[_Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def listening(self) -> bool:
        """Whether the listening socket is open."""
        return self._server is not None

    async def start_listening(self) -> None:
        """Open the listening socket (on the same port as before, once one is known)."""
        if self._server is not None:
            return
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), self.host, self.port, backlog=self.backlog, reuse_address=True
        )
        if self.port == 0:
            self.port = self._server.sockets[0].getsockname()[1]

    def stop_listening(self, *, close_connections: bool) -> None:
        """Close the listening socket; optionally close open connections as they go idle."""
        if self._server is not None:
            self._server.close()
            self._server = None
        if close_connections:
            for connection in list(self.connections):
                connection.close_when_idle()

    def close_idle_connections(self) -> int:
        """Close every connection that is not handling a request; say how many."""
        idle = [c for c in self.connections if not c.busy]
        for connection in idle:
            connection.close()
        return len(idle)

    async def close(self) -> None:
        """Stop everything: the listener, every connection, every task."""
        server = self._server
        self.stop_listening(close_connections=False)
        for connection in list(self.connections):
            connection.close()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        # Let the transports finish closing before the loop goes away.
        await asyncio.sleep(0)


class _Connection(asyncio.Protocol):
    """One client connection."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.stats = server.stats
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.busy = False
        self.closed = False
        self.close_after = False
        self._head: tuple[str, str, dict[str, str], int, bool] | None = None
        self._idle_handle: asyncio.TimerHandle | None = None
        self._paused = False
        # A stalled request: counted in flight until the connection ends.
        self._holding = False
        # The client will send nothing more: close once what it sent is answered.
        self._eof = False
        self.client: str | None = None

    # ---------------------------------------------------------------- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream server's transport (uvloop's is not a subclass of asyncio.Transport).
        self.transport = cast("asyncio.Transport", transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self.client = str(peer[0])
        self.server.connections.add(self)
        self.stats.connections_opened += 1
        self.stats.connections_open += 1
        self._arm_idle_timer()

    def connection_lost(self, _exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        self.stats.connections_open -= 1
        self._cancel_idle_timer()
        self._end_hold()

    def data_received(self, data: bytes) -> None:
        self.stats.bytes_in += len(data)
        self.buffer += data
        if self.busy:
            if len(self.buffer) > MAX_HEAD + MAX_BODY and not self._paused and self.transport is not None:
                self.transport.pause_reading()
                self._paused = True
            return
        self._cancel_idle_timer()
        self._process_buffer()

    def eof_received(self) -> bool | None:
        # A half-closed client still gets the answer it is waiting for (then
        # the connection closes); a stalled one has given up.
        self._eof = True
        if self.busy and not self._holding:
            return True
        return None

    # ---------------------------------------------------------------- helpers

    def close(self) -> None:
        """Close the connection now."""
        self.closed = True
        self._cancel_idle_timer()
        if self.transport is not None:
            self.transport.close()

    def close_when_idle(self) -> None:
        """Close now if idle, else after the answer being prepared."""
        if self.busy:
            self.close_after = True
        else:
            self.close()

    def _arm_idle_timer(self) -> None:
        timeout = self.server.idle_timeout
        if timeout is not None and not self.closed:
            self._cancel_idle_timer()
            self._idle_handle = asyncio.get_running_loop().call_later(timeout, self._on_idle)

    def _cancel_idle_timer(self) -> None:
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None

    def _on_idle(self) -> None:
        self._idle_handle = None
        if not self.busy and not self.buffer:
            self.close()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.stats.bytes_out += len(data)
            self.transport.write(data)

    def _send_error(self, status: int, reason: str) -> None:
        self._write(
            encode_response(Response(status, "text/plain; charset=utf-8", reason.encode()), keep_alive=False)
        )
        self.close()

    # ---------------------------------------------------------------- parsing

    def _process_buffer(self) -> None:
        while not self.busy and not self.closed and self.buffer:
            try:
                request = self._parse()
            except _BadRequestError as error:
                self._send_error(error.status, str(error))
                return
            if request is None:
                return
            self._dispatch(request)
        if not self.busy and not self.closed:
            if self._eof:
                self.close()
                return
            if self._paused and self.transport is not None:
                self.transport.resume_reading()
                self._paused = False
            if not self.buffer:
                self._arm_idle_timer()

    def _parse(self) -> Request | None:
        buffer = self.buffer
        if self._head is None:
            # RFC 9112 2.2: ignore empty lines before a request line.
            while buffer[:2] == b"\r\n":
                del buffer[:2]
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    raise _BadRequestError(431, "Request Header Fields Too Large")
                return None
            if end > MAX_HEAD:
                raise _BadRequestError(431, "Request Header Fields Too Large")
            head = bytes(buffer[:end])
            del buffer[: end + 4]
            self._head = self._parse_head(head)
        method, target, headers, length, keep_alive = self._head
        if len(buffer) < length:
            return None
        self._head = None
        body = bytes(buffer[:length])
        del buffer[:length]
        path, _, query = target.partition("?")
        return Request(method, path, query.partition("#")[0], headers, body, keep_alive, self.client)

    def _parse_head(self, head: bytes) -> tuple[str, str, dict[str, str], int, bool]:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            raise _BadRequestError(400, "Bad Request: malformed request line")
        raw_method, raw_target, version = parts
        if version not in {b"HTTP/1.1", b"HTTP/1.0"}:
            raise _BadRequestError(505, "HTTP Version Not Supported")
        if not raw_method.isalpha() or not raw_method.isupper():
            raise _BadRequestError(400, "Bad Request: malformed method")
        try:
            target = raw_target.decode("utf-8")
        except UnicodeDecodeError:
            raise _BadRequestError(400, "Bad Request: request target is not UTF-8") from None
        if target.startswith(("http://", "https://")):
            target = "/" + target.split("/", 3)[3] if target.count("/") >= 3 else "/"
        if not target.startswith("/"):
            raise _BadRequestError(400, "Bad Request: malformed request target")
        headers: dict[str, str] = {}
        content_lengths: set[str] = set()
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip() or b" " in name:
                raise _BadRequestError(400, "Bad Request: malformed header line")
            key = name.decode("latin-1").lower()
            text = value.strip().decode("latin-1")
            if key == "content-length":
                content_lengths.add(text)
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        if "transfer-encoding" in headers:
            raise _BadRequestError(411, "Length Required: chunked request bodies are not accepted")
        length = 0
        if content_lengths:
            if len(content_lengths) != 1:
                raise _BadRequestError(400, "Bad Request: conflicting Content-Length")
            text = content_lengths.pop()
            if not text.isdigit() or not text.isascii():
                raise _BadRequestError(400, "Bad Request: malformed Content-Length")
            length = int(text)
            if length > MAX_BODY:
                raise _BadRequestError(413, "Content Too Large")
        tokens = _connection_tokens(headers.get("connection"))
        keep_alive = "close" not in tokens if version == b"HTTP/1.1" else "keep-alive" in tokens
        if (
            length
            and len(self.buffer) < length
            and headers.get("expect", "").lower() == "100-continue"
            and version == b"HTTP/1.1"
        ):
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return raw_method.decode("ascii"), target, headers, length, keep_alive

    # ---------------------------------------------------------------- answering

    def _dispatch(self, request: Request) -> None:
        server = self.server
        stats = self.stats
        call = server.router.read(request)
        keep_alive = request.keep_alive and not self.close_after
        if call.protocol is server.router.admin:
            # The simulator's own endpoint: no fault, no latency, not counted as a gateway request.
            self._write(encode_response(server.router.carry_out(call), keep_alive=keep_alive))
            if not keep_alive:
                self.close()
            return
        stats.requests[call.name] += 1
        if server.router.state.request_log is not None:
            server.router.state.log_request(call.name)
        latency, fault = server.plan.select(call.name, stats)
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        if latency == 0.0 and (fault is None or fault.kind != "slow_drip"):
            self._answer(call, fault, keep_alive)
            return
        self.busy = True
        task = asyncio.get_running_loop().create_task(self._answer_later(call, fault, keep_alive, latency))
        server.tasks.add(task)
        task.add_done_callback(server.tasks.discard)

    async def _answer_later(
        self, call: Operation, fault: Fault | None, keep_alive: bool, latency: float
    ) -> None:
        try:
            if latency > 0:
                await asyncio.sleep(latency)
            if fault is not None and fault.kind == "slow_drip":
                data = encode_response(self.server.router.carry_out(call), keep_alive=keep_alive)
                pause = fault.delay(self.server.plan.rng)
                for i in range(len(data)):
                    if self.transport is None or self.transport.is_closing():
                        break
                    self._write(data[i : i + 1])
                    await asyncio.sleep(pause)
                self._finish(keep_alive)
            else:
                self.busy = False
                self._answer(call, fault, keep_alive)
        except asyncio.CancelledError:
            self.stats.in_flight -= 1
            raise
        if not self.busy and not self.closed:
            self._process_buffer()

    def _answer(self, call: Operation, fault: Fault | None, keep_alive: bool) -> None:
        """Answer ``call``, showing ``fault`` if one fired."""
        response = self._respond(call, fault) if fault is not None else self.server.router.carry_out(call)
        if response is None:
            return
        self._write(encode_response(response, keep_alive=keep_alive))
        self._finish(keep_alive)

    def _respond(self, call: Operation, fault: Fault) -> Response | None:
        """The answer that ``fault`` gives instead of the real one; None when there is none."""
        router = self.server.router
        kind = fault.kind
        if kind in _BUSY_KINDS:
            return call.protocol.busy(call, _BUSY_KINDS[kind], _retry_after(fault))
        if kind == "auth_failure":
            return call.protocol.auth_failure(call)
        if kind == "partial_accept":
            return router.carry_out(call, share=fault.share)
        if kind == "truncated_body":
            real = router.carry_out(call)
            return real._replace(body=real.body[: len(real.body) // 2])
        if kind in {"latency", "slow_drip"}:  # handled by the caller: the answer itself is right
            return router.carry_out(call)
        if fault.process:
            router.carry_out(call)
        if kind in _ERROR_KINDS:
            status = _ERROR_KINDS[kind]
            page = b"<html><body><h1>%d %s</h1></body></html>\n" % (status, _REASONS[status])
            return Response(status, "text/html; charset=utf-8", page)
        if kind == "html_body":
            return Response(200, "text/html; charset=utf-8", _HTML_PAGE)
        if kind == "wrong_type_body":
            return Response(200, "application/json", _WRONG_SHAPES[fault.shape])
        if kind == "drop_after_read":
            self.stats.in_flight -= 1
            self.close()
            return None
        # Stall: answer nothing; close after `seconds` if given, else when the client does.
        self.busy = True
        self._holding = True
        if fault.seconds is not None:
            delay = fault.delay(self.server.plan.rng)
            asyncio.get_running_loop().call_later(delay, self.close)
        return None

    def _end_hold(self) -> None:
        if self._holding:
            self._holding = False
            self.stats.in_flight -= 1

    def _finish(self, keep_alive: bool) -> None:
        self.stats.in_flight -= 1
        self.busy = False
        if not keep_alive or self.close_after:
            self.close()
