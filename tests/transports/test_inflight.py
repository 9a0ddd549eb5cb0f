"""When a request counts as "maybe sent": from the moment its first byte is handed to a connection.

Cancelled before that (waiting for a slot or a pooled connection, connecting)
a batch is ``unsent``; after it, ``unknown``. Both transports, against
loopback servers that never answer, and a listener whose accept queue is
full (a client connecting to it stays in SYN-SENT).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest
from loopback import full_backlog

from sms_async import BatchResult, BulkSender, Iton, NotSentError, Outcome, RetryPolicy, Timeouts
from sms_async._wire import Origin, WireRequest
from sms_async.instrumentation import BatchSettled
from sms_async.transports import FastTransport, HttpxTransport

TRANSPORTS = ("fast", "httpx")
both_transports = pytest.mark.parametrize("http", TRANSPORTS)


@contextlib.contextmanager
def syn_sent_port() -> Iterator[int]:
    """A loopback port whose accept queue is full: a client connecting to it stays in SYN-SENT."""
    with full_backlog() as listener, contextlib.closing(listener):
        yield listener.getsockname()[1]


def numbers(count: int, start: int = 0) -> list[str]:
    """``count`` distinct valid Indian mobile numbers in E.164."""
    return [f"+9198{n:08d}" for n in range(start, start + count)]


class SilentServer:
    """Accepts connections, reads requests and never answers; keeps every request head it read."""

    def __init__(self, *, read: bool = True) -> None:
        self.read = read
        self.heads: list[bytes] = []
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._listener.getsockname()[1])

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
            if self.read:
                threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        buffer = b""
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            buffer += data
            while b"\r\n\r\n" in buffer:
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                with self._lock:
                    self.heads.append(head)

    def received(self) -> Counter[str]:
        """Every number in the ITON send requests read so far, in E.164."""
        seen: Counter[str] = Counter()
        with self._lock:
            heads = list(self.heads)
        for head in heads:
            target = head.split(b" ", 2)[1].decode()
            for to in parse_qs(urlsplit(target).query).get("to", []):
                seen.update(f"+{n}" for n in to.split(","))
        return seen

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self._listener.close()
        self._thread.join(timeout=5)
        with self._lock:
            for conn in self._conns:
                conn.close()


class Settled:
    """Hooks that keep every settled batch."""

    def __init__(self) -> None:
        self.batches: list[BatchResult] = []

    def on_batch(self, record: BatchSettled) -> None:
        """Keep the batch."""
        self.batches.append(record.result)

    def outcomes(self) -> dict[str, Outcome]:
        """Each number's outcome, checking that no number was settled twice."""
        seen: dict[str, Outcome] = {}
        for batch in self.batches:
            for number in batch.message_ids:
                assert number not in seen
                seen[number] = Outcome.ACCEPTED
            for number, failure in batch.failed.items():
                assert number not in seen
                seen[number] = failure.outcome
        return seen


def iton(port: int) -> Iton:
    return Iton("user", "secret-password", base_url=f"http://127.0.0.1:{port}/ItonSMSAPI/smsService/api/")


def make_sender(port: int, http: str, hooks: Settled, **options: object) -> BulkSender:
    return BulkSender(
        iton(port),
        retry=RetryPolicy(attempts=1),
        timeouts=Timeouts(connect=20.0, read=20.0, write=20.0, pool=20.0),
        http=http,  # type: ignore[arg-type]
        hooks=hooks,
        trust_env=False,
        **options,  # type: ignore[arg-type]
    )


async def wait_for(condition: object, what: str) -> None:
    """Poll ``condition()`` until it holds (a wait, never a time limit on the code under test)."""
    with anyio.fail_after(10):
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110 - another thread's state
            await anyio.sleep(0.01)


def assert_accounted(hooks: Settled, sent: list[str], received: Counter[str]) -> dict[str, Outcome]:
    """Every number settled once; none received twice; none received reported unsent."""
    seen = hooks.outcomes()
    assert sorted(seen) == sorted(sent)
    assert sum(b.total for b in hooks.batches) == len(sent)
    assert all(times == 1 for times in received.values())
    assert not {n for n, o in seen.items() if o is Outcome.UNSENT} & set(received)
    return seen


@both_transports
async def test_cancelled_while_connecting_is_unsent(http):
    """A send cancelled while its connections are still in SYN-SENT reports every number unsent."""
    hooks = Settled()
    sent = numbers(150)
    with syn_sent_port() as port:
        async with make_sender(port, http, hooks, concurrency=2) as bulk:
            with anyio.move_on_after(0.3) as scope:
                await bulk.send(sent, "Hello", sender_id="ITONAB")
    assert scope.cancelled_caught
    seen = assert_accounted(hooks, sent, Counter())
    assert set(seen.values()) == {Outcome.UNSENT}


@both_transports
async def test_cancelled_after_writing_is_unknown_and_waiting_for_a_slot_is_unsent(http):
    """Cancelled with one request written and unanswered: that batch is unknown, the one behind it unsent."""
    hooks = Settled()
    sent = numbers(200)
    with SilentServer() as server:
        async with (
            make_sender(server.port, http, hooks, concurrency=1) as bulk,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(lambda: bulk.send(sent, "Hello", sender_id="ITONAB"))
            await wait_for(lambda: server.heads, "the first request to arrive")
            tg.cancel_scope.cancel()
        received = server.received()
    seen = assert_accounted(hooks, sent, received)
    assert {n for n, o in seen.items() if o is Outcome.UNKNOWN} == set(received) == set(sent[:100])
    assert {n for n, o in seen.items() if o is Outcome.UNSENT} == set(sent[100:])


async def test_cancelled_while_waiting_for_an_httpx_pooled_connection_is_unsent():
    """Batches queued in httpx's pool of one connection (held by an unanswered request) are unsent."""
    hooks = Settled()
    sent = numbers(300)
    with SilentServer() as server:
        transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=1))
        async with (
            make_sender(server.port, "httpx", hooks, concurrency=3, transport=transport) as bulk,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(lambda: bulk.send(sent, "Hello", sender_id="ITONAB"))
            await wait_for(lambda: server.heads, "the first request to arrive")
            await anyio.sleep(0.05)  # the other two batches reach the pool's queue
            tg.cancel_scope.cancel()
        received = server.received()
    seen = assert_accounted(hooks, sent, received)
    unknown = {n for n, o in seen.items() if o is Outcome.UNKNOWN}
    assert unknown == set(received)
    assert len(unknown) == 100
    assert Counter(seen.values())[Outcome.UNSENT] == 200


def request(port: int, body: bytes = b"") -> WireRequest:
    target = "/ItonSMSAPI/smsService/api/?cmd=sendSMS&to=919800000001"
    return WireRequest("POST" if body else "GET", target, (), body, "send")


@contextlib.contextmanager
def transport_for(http: str, port: int) -> Iterator[FastTransport | HttpxTransport]:
    origin = Origin.parse(f"http://127.0.0.1:{port}/ItonSMSAPI/smsService/api/")
    if http == "fast":
        yield FastTransport(origin, limit=1)
        return
    client = httpx.AsyncClient(limits=httpx.Limits(max_connections=1), trust_env=False)
    yield HttpxTransport(client, origin, owns_client=True, traced=True)


@both_transports
async def test_transport_marks_written_only_once_a_pooled_connection_is_free(http):
    """A request queued behind a busy single connection is never marked written; the one on the wire is."""
    marks: list[str] = []
    with SilentServer() as server, transport_for(http, server.port) as transport:
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                lambda: transport.send(request(server.port), None, None, lambda: marks.append("first"))
            )
            await wait_for(lambda: server.heads, "the first request to arrive")
            tg.start_soon(
                lambda: transport.send(request(server.port), None, None, lambda: marks.append("second"))
            )
            await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
        await transport.aclose()
    assert marks == ["first"]
    assert len(server.heads) == 1


@both_transports
async def test_transport_marks_written_while_a_large_request_is_still_being_written(http):
    """A request too large for the socket buffers, to a server that reads nothing, is marked written."""
    marks: list[str] = []
    with SilentServer(read=False) as server, transport_for(http, server.port) as transport:
        with anyio.move_on_after(0.5):
            await transport.send(
                request(server.port, b"x" * 32_000_000), None, None, lambda: marks.append("w")
            )
        await transport.aclose()
    assert marks == ["w"]


@both_transports
async def test_transport_connecting_is_not_written(http):
    """A request whose connection is still in SYN-SENT is not marked written when cancelled."""
    marks: list[str] = []
    with syn_sent_port() as port, transport_for(http, port) as transport:
        with anyio.move_on_after(0.3) as scope:
            await transport.send(request(0), None, None, lambda: marks.append("w"))
        await transport.aclose()
    assert scope.cancelled_caught
    assert marks == []


async def test_httpx_deadline_before_writing_is_not_sent():
    """The batch deadline passing while httpx is still connecting is a not-sent error, not maybe-sent."""
    with syn_sent_port() as port, transport_for("httpx", port) as transport:
        with pytest.raises(NotSentError, match="nothing was sent"):
            await transport.send(request(0), time.monotonic() + 0.2)
        await transport.aclose()


def test_cancelled_while_connecting_on_uvloop_is_unsent():
    """On uvloop too, a send cancelled while its connections are in SYN-SENT reports every number unsent."""
    uvloop = pytest.importorskip("uvloop")
    hooks = Settled()
    sent = numbers(150)

    async def main() -> None:
        with syn_sent_port() as port:
            async with make_sender(port, "fast", hooks, concurrency=2) as bulk:
                with anyio.move_on_after(0.3):
                    await bulk.send(sent, "Hello", sender_id="ITONAB")

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    seen = assert_accounted(hooks, sent, Counter())
    assert set(seen.values()) == {Outcome.UNSENT}
