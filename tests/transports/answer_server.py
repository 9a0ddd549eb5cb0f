"""A loopback server that answers every request with bytes a test chose, and helpers to send to it.

Everything here talks to 127.0.0.1 only. The server runs in a thread of its
own, so that a client that froze its event loop cannot freeze the server too.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import anyio
import anyio.lowlevel

from sms_async import BulkResult, BulkSender, Iton, Outcome, RetryPolicy, Timeouts

#: An answer: bytes to write, or an iterable of pieces to write one after the other.
Answer = bytes | Iterable[bytes]

SUCCESS_ID = "532073f7e4b05199d2c3d812"
SUCCESS = f"Success Your MessageId is {SUCCESS_ID}".encode()
NUMBERS = [f"+9198{n:08d}" for n in range(5)]


def http_answer(body: bytes = SUCCESS, *, version: bytes = b"HTTP/1.1", extra_headers: bytes = b"") -> bytes:
    """A well-formed answer with a Content-Length."""
    return b"%s 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (version, len(body), extra_headers, body)


def chunked(pieces: Iterable[bytes], *, extension: bytes = b"", trailers: bytes = b"") -> bytes:
    """``pieces`` as the chunks of a chunked body, the last chunk and trailers included."""
    out = bytearray(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    for piece in pieces:
        out += b"%x%s\r\n%s\r\n" % (len(piece), extension, piece)
    out += b"0\r\n" + trailers + b"\r\n"
    return bytes(out)


class AnswerServer:
    """Answers each request with ``answer()`` and then closes the connection or keeps it open.

    ``close=True``: the connection closes after the answer (a read-until-close
    body ends there); ``False``: it stays open, reading and answering further
    requests, until the client closes it. ``requests`` counts requests read;
    ``targets`` keeps their request lines' targets and ``heads`` their heads.
    With ``tls`` (a server-side context), connections are TLS; handshakes
    that fail are counted in ``handshake_failures``.
    """

    def __init__(
        self,
        answer: Callable[[], Answer] | Answer,
        *,
        close: bool = True,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._answer = answer
        self.close = close
        self.tls = tls
        self.requests = 0
        self.targets: list[str] = []
        self.heads: list[bytes] = []
        self.handshake_failures = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._listener.getsockname()[1])

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` with TLS)."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def __enter__(self) -> AnswerServer:
        self._acceptor.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._acceptor.join()
        for thread in self._threads:
            thread.join(timeout=10)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(0.05)
        conn: socket.socket = raw
        try:
            if self.tls is not None:
                raw.settimeout(5)
                try:
                    conn = self.tls.wrap_socket(raw, server_side=True)
                except (ssl.SSLError, OSError):
                    self.handshake_failures += 1
                    return
                conn.settimeout(0.05)
            while self._read_request(conn):
                self.requests += 1
                answer = self._answer() if callable(self._answer) else self._answer
                conn.settimeout(5)  # a client slowed by tracemalloc still keeps up
                for piece in [answer] if isinstance(answer, bytes) else answer:
                    if self._stop.is_set():
                        return
                    conn.sendall(piece)
                conn.settimeout(0.05)
                if self.close:
                    return
        except OSError:
            return  # the client went away: what a hostile answer is for
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def _read_request(self, conn: socket.socket) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self._recv(conn)
            if not chunk:
                return False
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            chunk = self._recv(conn)
            if not chunk:
                return False
            rest += chunk
        self.heads.append(head)
        self.targets.append(head.split(b" ")[1].decode("latin-1"))
        return True

    def _recv(self, conn: socket.socket) -> bytes:
        while not self._stop.is_set():
            try:
                return conn.recv(65536)
            except TimeoutError:
                continue
        return b""


def streamed(head: bytes, piece: bytes, count: int) -> Iterator[bytes]:
    """``head``, then ``piece`` ``count`` times: a large answer without holding it in memory."""
    yield head
    for _ in range(count):
        yield piece


def policy(**options: Any) -> RetryPolicy:
    """A retry policy with tiny waits."""
    return RetryPolicy(**{"initial_wait": 0.001, "max_wait": 0.01, "deadline": 20.0, **options})


TIMEOUTS = Timeouts(connect=2.0, read=2.0, write=2.0, pool=2.0)


async def send_once(origin: str, backend: str, *, http: str | None = None, **options: Any) -> BulkResult:
    """Send one batch of :data:`NUMBERS` through ITON at ``origin``; the sender must pick ``backend``.

    ``http`` is the sender's option (``backend`` unless given).
    """
    driver = Iton("user", "pass-word-1", base_url=origin + "/api/")
    options = {"retry": policy(), "timeouts": TIMEOUTS, **options}
    async with BulkSender(driver, http=http or backend, **options) as bulk:
        assert bulk.http_backend == backend
        return await bulk.send(NUMBERS, "Hello", sender_id="ITONAB")


def outcome_of(result: BulkResult) -> str:
    """``"accepted"`` if every number got :data:`SUCCESS_ID`, else the one outcome they all share."""
    assert result.total == len(result.message_ids) + len(result.failed) + sum(result.duplicates.values())
    if set(result.message_ids) == set(NUMBERS):
        assert set(result.message_ids.values()) == {SUCCESS_ID}
        return "accepted"
    outcomes = {failure.outcome for failure in result.failed.values()}
    assert len(outcomes) == 1, result.failed
    (outcome,) = outcomes
    return "unknown" if outcome is Outcome.UNKNOWN else str(outcome)


class Heartbeat:
    """Counts how often a task got the event loop while a send was in flight."""

    def __init__(self) -> None:
        self.ticks = 0

    async def run(self) -> None:
        """Tick every time the loop comes round, until cancelled."""
        while True:
            await anyio.lowlevel.checkpoint()
            self.ticks += 1
