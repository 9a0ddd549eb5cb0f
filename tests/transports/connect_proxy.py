"""A loopback CONNECT proxy whose tunnels a test scripts: relay, reset the origin's TLS, ask for credentials.

It runs in threads of its own and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from typing import Literal

#: What the proxy does with the n-th tunnel asked of it (counted from 0).
Action = Literal["relay", "reset", "407"]

ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"
NEEDS_CREDENTIALS = (
    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
    b'Proxy-Authenticate: Basic realm="loopback"\r\nContent-Length: 0\r\n\r\n'
)


def reset(conn: socket.socket) -> None:
    """Close ``conn`` with a TCP reset rather than a FIN."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


class ConnectProxy:
    """Accepts CONNECT requests; ``plan(n)`` says what becomes of tunnel ``n``.

    ``"relay"`` joins the tunnel to the origin it names; ``"reset"`` answers
    200, waits for the client's first TLS bytes (its ClientHello) and resets
    the connection, as a middlebox that kills the origin's handshake does;
    ``"407"`` asks for proxy credentials. ``tunnels`` counts CONNECT requests.
    """

    def __init__(self, plan: Callable[[int], Action]) -> None:
        self._plan = plan
        self.tunnels = 0
        self.actions: list[Action] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        """The proxy URL to put in ``HTTPS_PROXY``."""
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> ConnectProxy:
        self._acceptor.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._acceptor.join()
        for thread in self._threads:
            thread.join(timeout=10)
        self._listener.close()

    def _start(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._start(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    conn.close()
                    return
                head += chunk
            method, target, _ = head.split(b"\r\n", 1)[0].split(b" ", 2)
            assert method == b"CONNECT", method
            host, _, port = target.decode("ascii").rpartition(":")
            assert host in {"127.0.0.1", "localhost"}, host  # loopback only
            with self._lock:
                number = self.tunnels
                self.tunnels += 1
            action = self._plan(number)
            self.actions.append(action)
            if action == "407":
                conn.sendall(NEEDS_CREDENTIALS)
                conn.close()
                return
            conn.sendall(ESTABLISHED)
            if action == "reset":
                conn.recv(4096)  # the ClientHello
                reset(conn)
                return
            origin = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
        except OSError:
            conn.close()
            return
        self._start(self._pump, origin, conn)
        self._pump(conn, origin)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        source.settimeout(0.05)
        try:
            while not self._stop.is_set():
                try:
                    data = source.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)
            with contextlib.suppress(OSError):
                source.close()
