"""Connections: happy eyeballs, the write timeout, what goes on the wire, the fallback without httptools."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from answer_server import SUCCESS_ID, AnswerServer, http_answer, policy
from loopback import full_backlog

from sms_async import BulkSender, ConfigurationError, Iton, Timeouts
from sms_async import _exceptions as exc
from sms_async._wire import Origin, WireRequest
from sms_async.transports import FastTransport, HttpxTransport, _answer, _fast, open_transport

uvloop = pytest.importorskip("uvloop")

pytestmark = pytest.mark.timeout(60)

LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


def run_on(loop: str, coroutine_function, *args):
    """Run ``coroutine_function(*args)`` on a fresh event loop of kind ``loop``."""
    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        return runner.run(coroutine_function(*args))


@contextlib.contextmanager
def black_hole() -> Iterator[tuple[str, int]]:
    """A loopback address whose connections hang (its accept queue is full) until they time out."""
    with full_backlog() as listener, contextlib.closing(listener):
        yield listener.getsockname()


def addresses(*pairs: tuple[str, int]) -> list[tuple]:
    return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", pair) for pair in pairs]


@pytest.mark.parametrize("loop", list(LOOPS))
def test_a_dead_first_address_does_not_cost_the_connect_timeout(monkeypatch, loop):
    """With the first resolved address dead, the next one is tried alongside it and the send succeeds."""
    with black_hole() as dead, AnswerServer(http_answer(), close=False) as server:
        resolved = addresses(dead, ("127.0.0.1", server.port))

        async def resolve(host: str, port: int) -> list[tuple]:
            return resolved

        monkeypatch.setattr(_fast, "_resolve", resolve)

        async def send() -> bytes:
            # A connect timeout the dead address alone would use up, several times over.
            transport = FastTransport(
                Origin.parse(server.origin + "/"), limit=1, timeouts=Timeouts(connect=5.0)
            )
            try:
                return (await transport.send(WireRequest("GET", "/x"))).body
            finally:
                await transport.aclose()

        body = run_on(loop, send)
    assert SUCCESS_ID.encode() in body
    assert server.requests == 1


@contextlib.contextmanager
def never_reads() -> Iterator[int]:
    """A loopback port whose server accepts connections and never reads from them."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


BIG_POST = WireRequest("POST", "/x", (("Content-Type", "application/octet-stream"),), b"\0" * (32 << 20))


async def post_to(port: int, http: str) -> type[BaseException]:
    """The error a large POST to ``port`` ends in, with a short write timeout and a long read timeout."""
    timeouts = Timeouts(connect=2.0, read=30.0, write=0.3, pool=2.0)
    transport = open_transport(
        Origin.parse(f"http://127.0.0.1:{port}/"), concurrency=1, timeouts=timeouts, http=http
    )
    try:
        await transport.send(BIG_POST, time.monotonic() + 50)
    except exc.TransportError as error:
        return type(error)
    finally:
        await transport.aclose()
    return type(None)


@pytest.mark.parametrize(("http", "loop"), [("fast", "asyncio"), ("fast", "uvloop"), ("httpx", "asyncio")])
def test_a_request_the_gateway_never_reads_ends_at_the_write_timeout(http, loop):
    """A request body the gateway never reads fails as a WriteError (maybe sent), not a read timeout."""
    with never_reads() as port:
        error = run_on(loop, post_to, port, http)
    assert error is exc.WriteError


@pytest.mark.parametrize("http", ["fast", "httpx"])
async def test_the_wire_carries_the_ascii_host_the_encoded_path_and_identity(monkeypatch, http):
    """An IDNA host goes out as xn--, a configured path percent-encoded once, Accept-Encoding: identity."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=http_answer().split(b"\r\n\r\n", 1)[1])

    with AnswerServer(http_answer(), close=False) as server:
        port = server.port

        async def resolve(host: str, port: int) -> list[tuple]:
            assert host == "xn--bcher-kva.example"
            return addresses(("127.0.0.1", server.port))

        monkeypatch.setattr(_fast, "_resolve", resolve)
        driver = Iton(
            "user",
            "pass-word-1",
            base_url=f"http://bücher.example:{port}/sms api/ä%20x/",
            allow_insecure_http=True,
        )
        options = {"transport": httpx.MockTransport(handler)} if http == "httpx" else {"http": "fast"}
        async with BulkSender(driver, retry=policy(), **options) as bulk:
            result = await bulk.send(["+919800000001"], "Hello", sender_id="ITONAB")
    assert result.message_ids == {"+919800000001": SUCCESS_ID}
    if http == "fast":
        (head,) = server.heads
        target = server.targets[0]
        assert f"\r\nHost: xn--bcher-kva.example:{port}\r\n".encode() in head
        assert b"Accept-Encoding: identity" in head.split(b"\r\n")
    else:
        (request,) = seen
        target = request.url.raw_path.decode("ascii")
        assert request.url.raw_host == b"xn--bcher-kva.example"
        assert request.headers["host"] == f"xn--bcher-kva.example:{port}"
        assert request.headers["accept-encoding"] == "identity"
    assert target.startswith("/sms%20api/%C3%A4%20x/?")


async def test_without_httptools_auto_falls_back_to_httpx(monkeypatch, caplog):
    """Where httptools cannot be imported, 'auto' sends through httpx (and says so); 'fast' is refused."""
    monkeypatch.setattr(_answer, "httptools", None)
    caplog.set_level(logging.DEBUG, logger="sms_async")
    origin = Origin.parse("http://127.0.0.1:9/api/")
    transport = open_transport(origin, concurrency=1, timeouts=Timeouts())
    try:
        assert isinstance(transport, HttpxTransport)
    finally:
        await transport.aclose()
    assert "httptools is not installed" in caplog.text
    with pytest.raises(ConfigurationError, match="pip install httptools"):
        open_transport(origin, concurrency=1, timeouts=Timeouts(), http="fast")


async def test_a_sender_without_httptools_still_sends(monkeypatch):
    """A whole send works on the fallback."""
    monkeypatch.setattr(_answer, "httptools", None)
    with AnswerServer(http_answer(), close=False) as server:
        driver = Iton("user", "pass-word-1", base_url=server.origin + "/api/")
        async with BulkSender(driver, retry=policy()) as bulk:
            assert bulk.http_backend == "httpx"
            result = await bulk.send(["+919800000001"], "Hello", sender_id="ITONAB")
    assert result.message_ids == {"+919800000001": SUCCESS_ID}
