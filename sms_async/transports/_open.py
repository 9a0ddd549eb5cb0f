"""Choosing and opening the transport a sender uses.

The fast transport on asyncio and uvloop; httpx on trio, and whenever the
caller hands over an httpx client or transport, or asks for it.
"""

from __future__ import annotations

from typing import Literal

import httpx
import sniffio

from sms_async import _exceptions as exc
from sms_async._wire import Origin
from sms_async.transports._base import Timeouts, Transport
from sms_async.transports._fast import FastTransport
from sms_async.transports._httpx import HttpxTransport

__all__ = ["HttpBackend", "check_backend_options", "open_transport"]

HttpBackend = Literal["auto", "fast", "httpx"]


def check_backend_options(
    http: str,
    *,
    client: httpx.AsyncClient | None,
    transport: httpx.AsyncBaseTransport | None,
) -> None:
    """Refuse combinations that cannot work, before anything is opened."""
    if client is not None and transport is not None:
        raise exc.ConfigurationError("pass client= or transport=, not both")
    if http not in {"auto", "fast", "httpx"}:
        raise exc.ConfigurationError(f"http must be 'auto', 'fast' or 'httpx', got {http!r}")
    if http == "fast" and (client is not None or transport is not None):
        raise exc.ConfigurationError("http='fast' cannot use a caller's httpx client or transport")


def open_transport(
    origin: Origin,
    *,
    concurrency: int,
    timeouts: Timeouts,
    http: HttpBackend = "auto",
    client: httpx.AsyncClient | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Transport:
    """The transport for ``origin``, opened in the running event loop.

    A caller's ``client`` is used as it is (and not closed for them); a
    caller's httpx ``transport`` is wrapped in a client this transport owns.
    """
    check_backend_options(http, client=client, transport=transport)
    if client is not None:
        return HttpxTransport(client, origin)
    if transport is not None:
        owned = httpx.AsyncClient(transport=transport, follow_redirects=False)
        return HttpxTransport(owned, origin, owns_client=True)
    backend = sniffio.current_async_library()
    if http == "fast" and backend != "asyncio":
        raise exc.ConfigurationError(f"http='fast' needs asyncio; this is running on {backend}")
    if http != "httpx" and backend == "asyncio":
        return FastTransport(origin, limit=concurrency, timeouts=timeouts)
    owned = httpx.AsyncClient(
        limits=httpx.Limits(
            max_connections=concurrency,
            max_keepalive_connections=concurrency,
            keepalive_expiry=timeouts.keepalive_expiry,
        ),
        timeout=httpx.Timeout(
            connect=timeouts.connect, read=timeouts.read, write=timeouts.write, pool=timeouts.pool
        ),
        follow_redirects=False,
    )
    return HttpxTransport(owned, origin, owns_client=True)
