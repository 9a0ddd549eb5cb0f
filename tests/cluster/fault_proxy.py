"""A TCP proxy on loopback that a test turns faulty: black hole, stall, reset; then heals.

It runs an asyncio loop in a thread of its own, so that it keeps forwarding
whatever the test's own thread does. Everything stays on 127.0.0.1.

* ``pass``: bytes flow both ways.
* ``blackhole``: bytes are read and dropped, both ways; sockets stay open and
  new connections are accepted and then ignored, as when a firewall or NAT
  entry is lost.
* ``stall``: bytes are held, not lost, until the fault heals (the sender's
  buffers fill up); new connections wait to be joined to the server.
* ``reset``: every connection is reset, and so is each new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from typing import Literal

Mode = Literal["pass", "blackhole", "stall", "reset"]


def _reset(writer: asyncio.StreamWriter) -> None:
    raw = writer.get_extra_info("socket")
    if raw is not None:
        with contextlib.suppress(OSError):
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """Forwards 127.0.0.1:``port`` to ``target``; ``fault(mode)`` and ``heal()`` switch what it does."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        assert target_host == "127.0.0.1"  # loopback only
        self._target = (target_host, target_port)
        self.mode: Mode = "pass"
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._healed: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._every: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._every:
            writer.transport.abort()
        await asyncio.sleep(0.1)  # aborted transports close on the loop's next turns
        await self._server.wait_closed()

    def url(self, database_url: str, port: int) -> str:
        """``database_url`` with its port replaced by the proxy's."""
        return database_url.replace(f":{port}/", f":{self.port}/")

    def fault(self, mode: Mode) -> None:
        """Start fault ``mode`` now (``reset`` resets every open connection at once)."""
        asyncio.run_coroutine_threadsafe(self._set(mode), self._loop).result(10)

    def heal(self) -> None:
        """Forward again; bytes held by a stall go on their way."""
        asyncio.run_coroutine_threadsafe(self._set("pass"), self._loop).result(10)

    async def _set(self, mode: Mode) -> None:
        assert self._healed is not None
        self.mode = mode
        if mode == "pass":
            self._healed.set()
            return
        self._healed.clear()
        if mode == "reset":
            for writer in list(self._writers):
                _reset(writer)
            self._writers.clear()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._healed = asyncio.Event()
        self._healed.set()
        self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.run_until_complete(asyncio.sleep(0.05))
            self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._healed is not None
        self._every.append(writer)
        if self.mode == "reset":
            _reset(writer)
            return
        self._writers.add(writer)
        if self.mode == "blackhole":
            await self._drain_forever(reader, writer)
            return
        await self._healed.wait()  # a stalled connection is joined once the fault heals
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            _reset(writer)
            return
        self._every.append(up_writer)
        self._writers.add(up_writer)
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))

    async def _drain_forever(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while await reader.read(65536):
                pass
        self._writers.discard(writer)
        writer.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._healed is not None
        try:
            while data := await reader.read(65536):
                if self.mode == "blackhole":
                    continue  # dropped
                if self.mode == "stall":
                    await self._healed.wait()  # held: nothing more is read meanwhile
                if self.mode == "blackhole":
                    continue
                writer.write(data)
                await writer.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
