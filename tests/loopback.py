"""Loopback sockets that misbehave on purpose, shared by the transport and hostile tests."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

__all__ = ["full_backlog"]


@contextlib.contextmanager
def full_backlog() -> Iterator[socket.socket]:
    """A listening socket whose accept queue is already full: new connections hang, then time out.

    Nobody accepts until a :class:`RawServer` is started on it; the sockets
    filling the queue are closed on exit.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(listener.getsockname())
            fillers.append(filler)
        yield listener
    finally:
        for filler in fillers:
            filler.close()
