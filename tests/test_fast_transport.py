"""The default HTTP/1.1 transport against a tiny scripted server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from sms_async import ConfigurationError, Iton
from sms_async._exceptions import ConnectError, RemoteProtocolError
from sms_async._wire import Origin, WireRequest
from sms_async.transports import FastTransport

# The answer to the n-th request, or None to close the connection without one.
Answer = Callable[[int], bytes | None]


class ScriptedServer:
    """Answers the n-th request on any connection with ``answer(n)`` (None: hang up); counts connections."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests = 0
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Origin:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                while await reader.readuntil(b"\r\n\r\n"):
                    self.requests += 1
                    answer = self.answer(self.requests)
                    if answer is None:
                        break
                    writer.write(answer)
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return Origin.parse(f"http://127.0.0.1:{port}/api/")

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def get(target: str = "/api/?cmd=account") -> WireRequest:
    return WireRequest("GET", target, (), b"", "balance")


def http(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s%s" % (len(body), body, extra)


async def test_keep_alive_reuses_one_connection():
    """Answers with a Content-Length keep the connection for the next request."""
    server = ScriptedServer(lambda n: http(b"Remaining_Credits: %d" % n))
    async with server as origin:
        transport = FastTransport(origin, limit=4)
        bodies = [(await transport.send(get())).body for _ in range(3)]
        await transport.aclose()
    assert bodies == [b"Remaining_Credits: 1", b"Remaining_Credits: 2", b"Remaining_Credits: 3"]
    assert server.connections == 1


async def test_informational_answer_does_not_hide_the_body():
    """A 100 Continue before the real answer leaves the real answer's body intact."""
    server = ScriptedServer(lambda _: b"HTTP/1.1 100 Continue\r\n\r\n" + http(b"Remaining_Credits: 7"))
    async with server as origin:
        transport = FastTransport(origin, limit=1)
        response = await transport.send(get())
        await transport.aclose()
    assert (response.status, response.body) == (200, b"Remaining_Credits: 7")


async def test_chunked_answer_is_read_whole():
    """A chunked answer is put back together."""
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nSucce\r\n3\r\nss!\r\n0\r\n\r\n"
    server = ScriptedServer(lambda _: chunked)
    async with server as origin:
        transport = FastTransport(origin, limit=1)
        first = await transport.send(get())
        second = await transport.send(get())
        await transport.aclose()
    assert first.body == second.body == b"Success!"
    assert server.connections == 1


async def test_bytes_beyond_an_answer_retire_the_connection():
    """Bytes sent beyond an answer are never read as the next answer: a new connection is used."""
    server = ScriptedServer(lambda n: http(b"id-%d" % n, extra=http(b"STALE")))
    async with server as origin:
        transport = FastTransport(origin, limit=1)
        bodies = [(await transport.send(get())).body for _ in range(3)]
        await transport.aclose()
    assert b"STALE" not in bodies
    assert server.connections == 3


async def test_closing_without_an_answer_is_maybe_sent():
    """A connection closed after the request was written is a RemoteProtocolError (maybe sent)."""
    server = ScriptedServer(lambda _: None)
    async with server as origin:
        transport = FastTransport(origin, limit=1)
        with pytest.raises(RemoteProtocolError):
            await transport.send(get())
        await transport.aclose()
    assert server.requests == 1


@pytest.mark.parametrize("target", ["/api/?a=1\r\nX-Forged: 1", "/api/?a=1\nX"])
async def test_a_line_break_in_the_target_is_refused_unsent(target):
    """A target holding a line break is refused before anything is written."""
    server = ScriptedServer(lambda _: http(b"ok"))
    async with server as origin:
        transport = FastTransport(origin, limit=1)
        with pytest.raises(ConnectError, match="line break"):
            await transport.send(get(target))
        await transport.aclose()
    assert server.requests == 0


def test_a_token_with_a_line_break_is_refused_up_front():
    """A credential holding a line break is a configuration error, before any request."""
    with pytest.raises(ConfigurationError, match="control character"):
        Iton(token="good\r\nX-Injected: 1", base_url="http://127.0.0.1:9/api/")


async def test_before_write_runs_once_connected_and_before_any_byte():
    """The hook is awaited after the connection is open and before the server sees a byte."""
    server = ScriptedServer(lambda _n: http(b"ok"))
    seen: list[tuple[int, int]] = []
    async with server as origin:
        transport = FastTransport(origin, limit=1)

        async def before_write() -> None:
            await asyncio.sleep(0.05)  # time enough for the server to count the connection
            seen.append((server.connections, server.requests))

        response = await transport.send(get(), None, before_write)
        await transport.aclose()
    assert response.body == b"ok"
    assert seen == [(1, 0)]


async def test_before_write_raising_sends_nothing_and_keeps_the_connection():
    """A hook that raises (a journal that will not claim) leaves the request unwritten, the pool intact."""

    class Refused(Exception):
        pass

    async def refuse() -> None:
        raise Refused

    server = ScriptedServer(lambda _n: http(b"ok"))
    async with server as origin:
        transport = FastTransport(origin, limit=1)
        await transport.send(get())
        with pytest.raises(Refused):
            await transport.send(get(), None, refuse)
        response = await transport.send(get())
        await transport.aclose()
    assert response.body == b"ok"
    assert server.requests == 2
    assert server.connections == 1
