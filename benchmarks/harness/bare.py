"""The limit row: a bare ``asyncio.Protocol`` client writing pre-built request bytes.

It is the floor any client can reach against the gateway on one event loop:
``c`` keep-alive connections, each with one request in flight; when an answer
is complete, the connection's ``data_received`` writes the next request from
one shared iterator, with no task, coroutine or future per request. It reads
just enough of each answer to know where it ends (the head, then a
``Content-Length`` body) and counts it: no status check, no body check, no
accounting per recipient. Whether the gateway accepted everything is checked
outside the clock, from the simulator's own counters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

__all__ = ["BarePool", "encode"]

_END = b"\r\n\r\n"
_LENGTH = b"\r\ncontent-length:"


def encode(method: str, target: str, host: str, headers: Sequence[tuple[str, str]], body: bytes) -> bytes:
    """The bytes of one HTTP/1.1 request, with the header lines the library's own transport writes."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "User-Agent: bench-bare", "Accept: */*"]
    lines += [f"{name}: {value}" for name, value in headers]
    if body or method != "GET":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


def _body_length(head: bytes) -> int:
    # The simulator spells it "Content-Length"; lower-casing the head is the
    # general case and costs one small copy per answer.
    at = head.lower().find(_LENGTH)
    if at < 0:
        raise ConnectionError("an answer without Content-Length: the bare client cannot frame it")
    end = head.find(b"\r\n", at + 2)
    return int(head[at + len(_LENGTH) : end if end >= 0 else len(head)])


class _Connection(asyncio.Protocol):
    __slots__ = ("buffer", "pool", "transport")

    def __init__(self, pool: BarePool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport (uvloop's is no subclass)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        while True:
            end = buffer.find(_END)
            if end < 0:
                break
            stop = end + 4 + _body_length(buffer[: end + 2])
            if len(buffer) < stop:
                break
            buffer = buffer[stop:]
            self.pool.answered(self)
        self.buffer = buffer

    def connection_lost(self, error: Exception | None) -> None:
        self.pool.lost(error)


class BarePool:
    """``concurrency`` keep-alive connections sending pre-built requests, one in flight on each."""

    def __init__(self, host: str, port: int, concurrency: int) -> None:
        self.host, self.port, self.concurrency = host, port, concurrency
        self._connections: list[_Connection] = []
        self._todo: Iterator[bytes] = iter(())
        self._idle = 0
        self._answers = 0
        self._done: asyncio.Future[int] | None = None
        self._closing = False

    async def open(self) -> None:
        """Open every connection (outside any timed run)."""
        loop = asyncio.get_running_loop()
        opened = await asyncio.gather(
            *(
                loop.create_connection(lambda: _Connection(self), self.host, self.port)
                for _ in range(self.concurrency)
            )
        )
        self._connections = [protocol for _, protocol in opened]

    async def run(self, requests: Sequence[bytes]) -> int:
        """Send every request once; the number of answers read."""
        loop = asyncio.get_running_loop()
        self._done = done = loop.create_future()
        self._todo = todo = iter(requests)
        self._idle = self._answers = 0
        for connection in self._connections:
            if connection.transport is None or connection.transport.is_closing():
                raise ConnectionError("a connection closed between runs; the bare client opens none anew")
            request = next(todo, None)
            if request is None:
                self._idle += 1
            else:
                connection.transport.write(request)
        if self._idle == len(self._connections):
            done.set_result(0)
        answers: int = await done
        return answers

    def answered(self, connection: _Connection) -> None:
        self._answers += 1
        request = next(self._todo, None)
        if request is not None:
            assert connection.transport is not None
            connection.transport.write(request)
            return
        self._idle += 1
        if self._idle == len(self._connections) and self._done is not None and not self._done.done():
            self._done.set_result(self._answers)

    def lost(self, error: Exception | None) -> None:
        if self._closing:
            return
        if self._done is not None and not self._done.done():
            self._done.set_exception(ConnectionError(f"the gateway closed a connection: {error!r}"))

    def close(self) -> None:
        self._closing = True
        for connection in self._connections:
            if connection.transport is not None:
                connection.transport.close()
