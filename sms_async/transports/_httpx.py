"""The httpx transport: any ``httpx.AsyncClient`` (a caller's own, a mocked one, or one on trio).

httpx errors are mapped to the most specific sms_async error, and never
chained: their text may hold the request URL, password and all.
"""

from __future__ import annotations

import time

import anyio
import httpx

from sms_async import _exceptions as exc
from sms_async._wire import Origin, WireRequest, WireResponse
from sms_async.transports._base import safe_detail

__all__ = ["HttpxTransport", "map_httpx_error"]


class HttpxTransport:
    """Sends through an ``httpx.AsyncClient``, mapping its errors exactly."""

    name = "httpx"

    def __init__(self, client: httpx.AsyncClient, origin: Origin, *, owns_client: bool = False) -> None:
        self._client = client
        self._base = f"{origin.scheme}://{origin.host_header}"
        self._owns_client = owns_client

    async def send(self, request: WireRequest, deadline_at: float | None = None) -> WireResponse:
        """Send over the client; never follows a redirect."""
        client = self._client
        budget = None if deadline_at is None else deadline_at - time.monotonic()
        # Errors are built inside ``except`` but raised after it, so that the
        # httpx error (whose text may hold the URL, password and all) is
        # neither the cause nor the context of ours.
        failure: exc.TransportError | None = None
        try:
            http_request = client.build_request(
                request.method,
                self._base + request.target,
                headers=request.headers,
                content=request.body if request.method != "GET" else None,
            )
            with anyio.fail_after(budget):
                response = await client.send(http_request, follow_redirects=False)
        except httpx.HTTPError as error:
            failure = map_httpx_error(error)
        except TimeoutError:
            failure = exc.DeadlineExceeded("the batch deadline passed with the request in flight")
        if failure is not None:
            raise failure
        return WireResponse(
            response.status_code,
            {k.lower(): v for k, v in response.headers.items()},
            response.content,
        )

    async def aclose(self) -> None:
        """Close the client if this transport created it."""
        if self._owns_client:
            await self._client.aclose()


def map_httpx_error(error: httpx.HTTPError) -> exc.TransportError:
    """The most specific sms_async error for an httpx error (never chained: its text may hold a URL)."""
    detail = safe_detail(error)
    match error:
        case httpx.ConnectTimeout():
            return exc.ConnectTimeout(f"connecting to the gateway timed out: {detail}")
        case httpx.PoolTimeout():
            return exc.PoolTimeout(f"no pooled connection became free in time: {detail}")
        case httpx.ConnectError() | httpx.ProxyError() | httpx.UnsupportedProtocol():
            return exc.ConnectError(f"could not connect to the gateway: {detail}")
        case httpx.ReadTimeout():
            return exc.ReadTimeout(f"the gateway did not answer in time: {detail}")
        case httpx.WriteTimeout():
            return exc.WriteError(f"writing the request timed out: {detail}")
        case httpx.WriteError():
            return exc.WriteError(f"writing the request failed: {detail}")
        case httpx.ReadError():
            return exc.ReadError(f"reading the answer failed: {detail}")
        case httpx.RemoteProtocolError():
            return exc.RemoteProtocolError(f"the gateway broke the connection: {detail}")
        case httpx.LocalProtocolError():
            # Raised while preparing the request, before any byte is sent.
            return exc.ConnectError(f"the request could not be encoded: {detail}")
        case httpx.TooManyRedirects() | httpx.DecodingError():
            return exc.RemoteProtocolError(f"the gateway's answer could not be read: {detail}")
        case _:
            # TimeoutException, NetworkError, ProtocolError or a future class:
            # we cannot tell whether bytes left, so assume they did.
            return exc.ReadError(f"the request failed: {detail}")
