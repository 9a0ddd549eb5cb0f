"""Shared helpers of the hostile suite: senders aimed at loopback, accounting checks, tiny servers.

Everything here talks to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

from sms_async import BulkResult, BulkSender, ItecPay, Iton, Outcome, RetryPolicy, Timeouts
from sms_async.testing import SimulatedGateway

TRANSPORTS = ("fast", "httpx")
GATEWAYS = ("iton", "itecpay")
SEND_OP = {"iton": "iton.sendSMS", "itecpay": "itecpay.send"}

#: Short timeouts so that a stalled request fails in a fraction of a second.
TIMEOUTS = Timeouts(connect=2.0, read=0.3, write=2.0, pool=5.0)


def policy(**options: Any) -> RetryPolicy:
    """A retry policy with tiny waits, so that retries cost milliseconds."""
    return RetryPolicy(**{"initial_wait": 0.001, "max_wait": 0.01, **options})


def numbers(count: int, start: int = 0) -> list[str]:
    """``count`` distinct valid Indian mobile numbers in E.164."""
    return [f"+9198{n:08d}" for n in range(start, start + count)]


def on_wire(gateway: str, e164: str) -> str:
    """How the simulated gateway counts a number: digits for ITON, E.164 for ItecPay."""
    return e164[1:] if gateway == "iton" else e164


def driver_for(
    gw: SimulatedGateway, gateway: str, *, password: str | None = None, token: bool = False
) -> Iton | ItecPay:
    """A driver aimed at the simulated gateway ``gw``."""
    if gateway == "iton":
        if token:
            return Iton(token=gw.token, base_url=gw.iton_url)
        return Iton(gw.username, password or gw.password, base_url=gw.iton_url)
    return ItecPay(gw.username, password or gw.password, base_url=gw.itecpay_url)


def sender(
    gw: SimulatedGateway,
    gateway: str,
    http: str,
    *,
    concurrency: int = 4,
    retry: RetryPolicy | None = None,
    timeouts: Timeouts = TIMEOUTS,
    **options: Any,
) -> BulkSender:
    """A BulkSender for ``gw`` over transport ``http`` with fast retries and short timeouts."""
    password = options.pop("password", None)
    token = options.pop("token", False)
    return BulkSender(
        driver_for(gw, gateway, password=password, token=token),
        concurrency=concurrency,
        retry=retry or policy(),
        timeouts=timeouts,
        http=http,
        **options,
    )


def assert_accounted(result: BulkResult, inputs: int | None = None) -> None:
    """Every input ends in exactly one outcome."""
    assert result.total == len(result.message_ids) + len(result.failed) + sum(result.duplicates.values())
    if inputs is not None:
        assert result.total == inputs
    assert not set(result.message_ids) & set(result.failed)


def assert_no_double_send(gw: SimulatedGateway) -> None:
    """The gateway processed no number twice."""
    assert not gw.stats.duplicate_numbers()


def outcomes(result: BulkResult) -> dict[str, Outcome]:
    """Input -> outcome, accepted ones included."""
    found = dict.fromkeys(result.message_ids, Outcome.ACCEPTED)
    found.update({n: f.outcome for n, f in result.failed.items()})
    return found


def with_outcome(result: BulkResult, outcome: Outcome) -> set[str]:
    """The inputs that ended in ``outcome``."""
    if outcome is Outcome.ACCEPTED:
        return set(result.message_ids)
    return set(result.by_outcome(outcome))


# -- a tiny raw HTTP server ------------------------------------------------------------


@attrs.frozen
class Seen:
    """One request a :class:`RawServer` read."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes


def http_response(
    status: int,
    body: bytes | str = b"",
    *,
    headers: tuple[tuple[str, str], ...] = (),
    content_type: str = "text/plain; charset=utf-8",
    close: bool = False,
) -> bytes:
    """A complete HTTP/1.1 answer with a correct Content-Length."""
    data = body.encode() if isinstance(body, str) else body
    head = [f"HTTP/1.1 {status} X", f"Content-Type: {content_type}", f"Content-Length: {len(data)}"]
    head += [f"{name}: {value}" for name, value in headers]
    if close:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data


class CloseAfter(bytes):
    """Raw bytes a :class:`RawServer` writes before closing the connection, whatever they say."""


Responder = Callable[[Seen], bytes | None]


class RawServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 whose every answer is chosen byte for byte.

    ``responder(request)`` returns the raw bytes to write (the connection is
    kept alive unless they say ``Connection: close`` or are :class:`CloseAfter`)
    or ``None`` to close the connection without answering. Every request read is kept in ``requests``.
    """

    def __init__(
        self, responder: Responder, *, listener: socket.socket | None = None, autostart: bool = True
    ) -> None:
        self.responder = responder
        self.autostart = autostart
        self.requests: list[Seen] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            timeout = 10

            def handle(self) -> None:
                while True:
                    line = self.rfile.readline(65537)
                    if not line:
                        return
                    if line in {b"\r\n", b"\n"}:
                        continue
                    method, target, _ = line.decode("latin-1").split(" ", 2)
                    headers: dict[str, str] = {}
                    while True:
                        header = self.rfile.readline(65537)
                        if header in {b"\r\n", b"\n", b""}:
                            break
                        name, _, value = header.decode("latin-1").partition(":")
                        headers[name.strip().lower()] = value.strip()
                    body = self.rfile.read(int(headers.get("content-length", "0") or 0))
                    seen = Seen(method, target, headers, body)
                    with outer.lock:
                        outer.requests.append(seen)
                    answer = outer.responder(seen)
                    if answer is None:
                        return
                    self.wfile.write(answer)
                    self.wfile.flush()
                    head = answer.split(b"\r\n\r\n", 1)[0].lower()
                    if isinstance(answer, CloseAfter) or b"\r\nconnection: close" in head:
                        return

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        if listener is None:
            self._server = Server(("127.0.0.1", 0), Handler)
        else:
            self._server = Server(listener.getsockname(), Handler, bind_and_activate=False)
            self._server.socket.close()
            self._server.socket = listener
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start accepting connections (``__enter__`` does, unless ``autostart=False``)."""
        self._thread.start()

    def __enter__(self) -> RawServer:
        if self.autostart:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()


# -- the simulated gateway in a process of its own -------------------------------------


_PROCESS_SCRIPT = Path(__file__).with_name("gateway_process.py")


class GatewayProcess:
    """A :class:`SimulatedGateway` in a child process, so that its memory is not the client's.

    ``faults`` are :class:`~sms_async.testing.Fault` keyword dictionaries.
    ``stats()`` returns a summary of the gateway's counters as a dictionary.
    """

    def __init__(self, *, faults: list[dict[str, Any]], **options: Any) -> None:
        self._config = json.dumps({"faults": faults, "options": options})
        self._process: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}

    def __enter__(self) -> GatewayProcess:
        self._process = subprocess.Popen(  # noqa: S603 - our own helper script, run by this interpreter
            [sys.executable, str(_PROCESS_SCRIPT), self._config],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.info = self._read()
        return self

    def _read(self) -> dict[str, Any]:
        assert self._process is not None
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("the gateway process ended early")
        return json.loads(line)

    def stats(self) -> dict[str, Any]:
        """The gateway's counters (see gateway_process.py)."""
        assert self._process is not None
        assert self._process.stdin is not None
        self._process.stdin.write("stats\n")
        self._process.stdin.flush()
        return self._read()

    def __exit__(self, *exc_info: object) -> None:
        process = self._process
        if process is None:
            return
        with contextlib.suppress(BrokenPipeError, OSError):
            assert process.stdin is not None
            process.stdin.write("quit\n")
            process.stdin.flush()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accept_all(seen: Seen) -> bytes:
    """A success answer for an ITON GET or an ItecPay POST."""
    if seen.method == "GET":
        return http_response(200, "Success Your MessageId is 532073f7e4b05199d2c3d812")
    return http_response(200, '{"status": 200, "messageid": "m-1"}', content_type="application/json")


def lazily(items: Iterator[str]) -> Iterator[str]:
    """Hide the type of an iterator (so nothing can take its length or index it)."""
    yield from items


class PlainTextOnly:
    """A loopback server that answers anything, a TLS ClientHello included, with plain HTTP 400 and closes.

    ``connections`` counts the connections it accepted; ``first_bytes`` keeps
    what each one sent first.
    """

    def __init__(self) -> None:
        self.first_bytes: list[bytes] = []
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.settimeout(5)
                with contextlib.suppress(OSError):
                    outer.first_bytes.append(self.request.recv(4096))
                    self.request.sendall(
                        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})

    @property
    def connections(self) -> int:
        """Connections accepted so far."""
        return len(self.first_bytes)

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_address[1])

    def __enter__(self) -> PlainTextOnly:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()
