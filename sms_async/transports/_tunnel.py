"""Proxy tunnels that give their pool slot back when they fail to open.

httpcore opens an HTTPS request through a proxy as a CONNECT tunnel: it asks
the proxy for the tunnel, then starts TLS with the origin inside it. When that
TLS handshake fails (the origin or a middlebox resets it), httpcore raises but
never closes the connection it made to the proxy: its HTTP/1.1 state stays
"active" after the CONNECT answer, so the pool neither reuses nor drops it, and
it holds one of the pool's slots for as long as the client lives
(https://github.com/encode/httpcore/issues/1023, unfixed in httpcore 1.0.9).
Each such failure costs the sender a slot for good; with ``concurrency=1``
every later request waits for a slot until ``PoolTimeout``.

The workaround wraps each tunnel the proxy pool creates, and closes a tunnel
whose request failed before it carried an answer, so the pool drops it and the
retry opens a fresh tunnel. A tunnel carries one HTTP/1.1 request at a time,
and httpcore already closes a connection whose request failed mid-way, so the
extra close never ends a connection another request is using.
"""

from __future__ import annotations

import logging

import anyio
import httpcore
import httpx

__all__ = ["close_failed_tunnels"]

logger = logging.getLogger("sms_async")


class _ClosingTunnel(httpcore.AsyncConnectionInterface):
    """A CONNECT tunnel that is closed when its opening fails, so its pool slot is freed."""

    def __init__(self, tunnel: httpcore.AsyncConnectionInterface) -> None:
        self._tunnel = tunnel
        self._opened = False

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        try:
            response = await self._tunnel.handle_async_request(request)
        except httpcore.ConnectionNotAvailable:
            # The pool's signal to try another connection: this one is in use, not broken.
            raise
        except BaseException:
            if not self._opened:
                # Shielded: a cancelled request (a deadline) must still free the slot.
                with anyio.CancelScope(shield=True):
                    await self._tunnel.aclose()
            raise
        self._opened = True
        return response

    def can_handle_request(self, origin: httpcore.Origin) -> bool:
        return self._tunnel.can_handle_request(origin)

    async def aclose(self) -> None:
        await self._tunnel.aclose()

    def info(self) -> str:
        return self._tunnel.info()

    def is_available(self) -> bool:
        return self._tunnel.is_available()

    def has_expired(self) -> bool:
        return self._tunnel.has_expired()

    def is_idle(self) -> bool:
        return self._tunnel.is_idle()

    def is_closed(self) -> bool:
        return self._tunnel.is_closed()

    def __repr__(self) -> str:
        return f"<ClosingTunnel {self._tunnel!r}>"


class _TunnelGuard:
    """Wraps what an ``httpcore.AsyncHTTPProxy``'s own ``create_connection`` returns."""

    def __init__(self, pool: httpcore.AsyncHTTPProxy) -> None:
        self._create = pool.create_connection

    def __call__(self, origin: httpcore.Origin) -> httpcore.AsyncConnectionInterface:
        connection = self._create(origin)
        # Plain-HTTP requests go through a forwarding connection, which has no tunnel to leak.
        return _ClosingTunnel(connection) if origin.scheme == b"https" else connection


def close_failed_tunnels(client: httpx.AsyncClient) -> None:
    """Apply the workaround to every proxy transport of a client this library created.

    httpx keeps its proxy transports in ``client._mounts`` and each one's
    httpcore pool in ``transport._pool``; neither is public. Should a later
    httpx move them, nothing is wrapped (and a debug line says so): the
    client works as httpx made it, leak included.
    """
    mounts = getattr(client, "_mounts", None)
    if not isinstance(mounts, dict):  # pragma: no cover - depends on the installed httpx
        logger.debug("httpx keeps its proxy transports elsewhere: tunnels are not guarded")
        return
    for transport in mounts.values():
        pool = getattr(transport, "_pool", None)
        if isinstance(pool, httpcore.AsyncHTTPProxy) and not isinstance(pool.create_connection, _TunnelGuard):
            # An instance attribute shadows the method, for this pool only.
            pool.create_connection = _TunnelGuard(pool)  # type: ignore[method-assign]
