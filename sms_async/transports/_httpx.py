"""The httpx transport: any ``httpx.AsyncClient`` (a caller's, a mocked one, on trio, through a proxy).

The answer is streamed and held to the same caps as the fast transport's
(:data:`~sms_async.transports._base.MAX_BODY`), and, as there, the request
asks for ``Accept-Encoding: identity`` and an answer in any other
``Content-Encoding`` is refused rather than decoded without a bound.
httpx errors are mapped to the most specific sms_async error, and never
chained: their text may hold the request URL, password and all.

When the client sends through httpcore (httpx's own transports, proxies
included), httpcore's ``trace`` request extension tells when the request's
head starts to be written (``http11.send_request_headers.started``, or
``http2.``): until then, waiting for a pooled connection or connecting, a
cancellation or the batch deadline leaves nothing on the wire. Any other
transport (a mock, a caller's client whose transports we cannot see) is taken
to write as soon as it is handed the request.

For a client this library made, the connections open and idle are counted
from httpcore's pools (:func:`pools_of`); a caller's client shares its pool with
whatever else the caller sends, so its counts are not the sender's and are
not reported.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import httpcore
import httpx

from sms_async import _exceptions as exc
from sms_async._wire import Origin, WireRequest, WireResponse
from sms_async.transports._base import MAX_BODY, BeforeWrite, OnWrite, safe_detail

__all__ = ["HttpxTransport", "map_httpx_error", "pools_of"]

_IDENTITY = (("Accept-Encoding", "identity"),)
# httpcore's trace events for the start of a request's head, over HTTP/1.1 and HTTP/2.
_HEAD_STARTED = frozenset({"http11.send_request_headers.started", "http2.send_request_headers.started"})
_CONNECTING = "connection.connect_tcp.started"


class _Progress:
    """How far httpcore got with one request, from its trace events."""

    __slots__ = ("connecting", "on_write", "written")

    def __init__(self, on_write: OnWrite | None) -> None:
        self.on_write = on_write
        self.connecting = False
        self.written = False

    async def trace(self, event: str, info: dict[str, Any]) -> None:
        # No checkpoint in here: the mark and the write it announces are one step.
        if event in _HEAD_STARTED:
            request = info.get("request")
            if getattr(request, "method", None) == b"CONNECT":
                return  # a proxy tunnel's own request, not ours
            if not self.written:
                self.written = True
                if self.on_write is not None:
                    self.on_write()
        elif event == _CONNECTING:
            self.connecting = True


class HttpxTransport:
    """Sends through an ``httpx.AsyncClient``, mapping its errors exactly."""

    name = "httpx"

    def __init__(
        self,
        client: httpx.AsyncClient,
        origin: Origin,
        *,
        owns_client: bool = False,
        traced: bool = False,
        proxy: str | None = None,
    ) -> None:
        self._client = client
        self._base = f"{origin.scheme}://{origin.host_header}"
        self._owns_client = owns_client
        #: Whether the client's transport is httpcore's, which reports when it writes.
        self.traced = traced
        # The proxy the environment names, as fit for a message (no credentials), to blame it by name.
        self._proxy = proxy
        # The httpcore pools that hold this sender's connections, where they can be seen.
        self._pools = pools_of(client) if owns_client else None

    async def send(
        self,
        request: WireRequest,
        deadline_at: float | None = None,
        before_write: BeforeWrite | None = None,
        on_write: OnWrite | None = None,
    ) -> WireResponse:
        """Send over the client; never follows a redirect.

        httpx connects inside its own send, so ``before_write`` runs just before it.
        """
        client = self._client
        # Errors are built inside ``except`` but raised after it, so that the
        # httpx error (whose text may hold the URL, password and all) is
        # neither the cause nor the context of ours.
        failure: exc.TransportError | None = None
        progress = _Progress(on_write) if self.traced else None
        try:
            http_request = client.build_request(
                request.method,
                self._base + request.target,
                headers=request.headers + _IDENTITY,
                content=request.body if request.method != "GET" else None,
                extensions={"trace": progress.trace} if progress is not None else None,
            )
        except Exception as error:  # noqa: BLE001 - whatever building raised, nothing was sent
            failure = exc.ConnectError(
                f"the request could not be built ({type(error).__name__}); it was not sent"
            )
        if failure is not None:
            raise failure
        if before_write is not None:
            await before_write()
        if progress is None and on_write is not None:
            on_write()  # whether and when this transport writes is not known: from now on
        budget = None if deadline_at is None else deadline_at - time.monotonic()
        try:
            with anyio.fail_after(budget):
                answer = await self._exchange(client, http_request)
        except (httpx.HTTPError, httpx.InvalidURL, httpx.CookieConflict, httpx.StreamError) as error:
            failure = map_httpx_error(error, proxy=self._proxy)
        except TimeoutError:
            failure = _past_deadline(progress)
        if failure is not None:
            raise failure
        if answer.status == 407:
            # Only a proxy asks for proxy credentials: a forwarding proxy answers the
            # request itself and the gateway never saw it.
            raise exc.ConnectError(_proxy_refused(self._proxy, "the request"))
        return answer

    @staticmethod
    async def _exchange(client: httpx.AsyncClient, http_request: httpx.Request) -> WireResponse:
        response = await client.send(http_request, follow_redirects=False, stream=True)
        try:
            problem = _refused(response.headers)
            chunks: list[bytes] = []
            if problem is not None:
                pass
            elif response.is_stream_consumed:
                # Built in memory (a MockTransport's answer): already read whole.
                chunks.append(response.content)
                if len(response.content) > MAX_BODY:
                    problem = f"answer body over the {MAX_BODY}-byte cap"
            else:
                size = 0
                # Raw bytes: nothing is decoded, so nothing can grow past the cap in one step.
                async for chunk in response.aiter_raw():
                    size += len(chunk)
                    if size > MAX_BODY:
                        problem = f"answer body over the {MAX_BODY}-byte cap"
                        break
                    chunks.append(chunk)
        finally:
            await response.aclose()
        if problem is not None:
            raise exc.RemoteProtocolError(f"the gateway sent a malformed HTTP answer: {problem}")
        return WireResponse(
            response.status_code,
            {k.lower(): v for k, v in response.headers.items()},
            b"".join(chunks),
        )

    def connections(self) -> tuple[int, int] | None:
        """Connections open (connecting, busy or idle) and, of those, idle, over the client's pools.

        ``None`` for a caller's client (its pool is shared with the caller's
        other requests), for a transport that is not httpcore's (a mock), and
        should a later httpx or httpcore keep its pools or connections
        elsewhere. A closed connection the pool has not yet dropped is not
        counted; an idle one past its keep-alive expiry is, until the pool
        drops it (on its next request).
        """
        pools = self._pools
        if pools is None:
            return None
        opened = idle = 0
        try:
            for pool in pools:
                for connection in pool.connections:
                    if not connection.is_closed():
                        opened += 1
                        if connection.is_idle():
                            idle += 1
        except (AttributeError, TypeError):  # a later httpcore that keeps them elsewhere
            return None
        return opened, idle

    async def aclose(self) -> None:
        """Close the client if this transport created it."""
        if self._owns_client:
            await self._client.aclose()


def pools_of(client: httpx.AsyncClient) -> tuple[httpcore.AsyncConnectionPool, ...] | None:
    """The httpcore pools behind every transport of ``client``: its own and its proxy mounts'.

    httpx keeps them under private names (``client._transport``,
    ``client._mounts`` and each transport's ``_pool``): should a later httpx
    move them, or should one of the client's transports not be httpcore's
    (an ``httpx.MockTransport``), this is ``None``, for counts over some of
    the pools would be wrong rather than unknown.
    """
    mounts = getattr(client, "_mounts", None)
    if not isinstance(mounts, dict):  # pragma: no cover - depends on the installed httpx
        return None
    # A mount of None (a NO_PROXY pattern) sends through the client's own transport.
    transports = [getattr(client, "_transport", None), *(t for t in mounts.values() if t is not None)]
    pools: dict[int, httpcore.AsyncConnectionPool] = {}
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        if not isinstance(transport, httpx.AsyncHTTPTransport) or not isinstance(
            pool, httpcore.AsyncConnectionPool
        ):
            return None
        pools[id(pool)] = pool
    return tuple(pools.values())


def _past_deadline(progress: _Progress | None) -> exc.TransportError:
    if progress is None or progress.written:
        return exc.DeadlineExceeded("the batch deadline passed with the request in flight")
    if progress.connecting:
        return exc.ConnectTimeout("the batch deadline passed while connecting; nothing was sent")
    return exc.PoolTimeout(
        "the batch deadline passed while waiting for a pooled connection; nothing was sent"
    )


def _refused(headers: httpx.Headers) -> str | None:
    """Why an answer's head is refused before its body is read, if it is."""
    coding = headers.get("content-encoding", "identity").strip().lower()
    if coding not in {"identity", ""}:
        return f"the answer came in Content-Encoding {coding[:40]!r} though identity was asked for"
    length = headers.get("content-length")
    if length is not None and length.strip().isdigit() and int(length) > MAX_BODY:
        return f"answer body of {length.strip()} bytes is over the {MAX_BODY}-byte cap"
    return None


def _proxy_refused(proxy: str | None, what: str) -> str:
    by = f"the proxy {proxy}" if proxy is not None else "a proxy on the way to the gateway"
    return (
        f"{by} refused {what} with HTTP 407 (Proxy Authentication Required); the gateway did not see it: "
        "check the user name and password in the proxy URL (HTTPS_PROXY, HTTP_PROXY or ALL_PROXY)"
    )


def map_httpx_error(error: Exception, *, proxy: str | None = None) -> exc.TransportError:
    """The most specific sms_async error for an httpx error (never chained: its text may hold a URL).

    Every class httpx raises is covered, those outside ``httpx.HTTPError``
    (``InvalidURL``, ``CookieConflict``, the stream errors) included. ``proxy``
    names the proxy in use, if known, for errors that are the proxy's.
    """
    detail = safe_detail(error)
    match error:
        case httpx.ProxyError() if detail.startswith("407"):
            return exc.ConnectError(_proxy_refused(proxy, "the tunnel to the gateway"))
        case httpx.ProxyError():
            by = f"the proxy {proxy}" if proxy is not None else "the proxy"
            return exc.ConnectError(f"{by} could not open a tunnel to the gateway: {detail}")
        case httpx.InvalidURL() | httpx.CookieConflict():
            # Raised while the request is built or prepared, before any byte is sent.
            return exc.ConnectError(f"the request could not be built: {detail}")
        case httpx.ConnectTimeout():
            return exc.ConnectTimeout(f"connecting to the gateway timed out: {detail}")
        case httpx.PoolTimeout():
            return exc.PoolTimeout(f"no pooled connection became free in time: {detail}")
        case httpx.ConnectError() | httpx.UnsupportedProtocol():
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
            # TimeoutException, NetworkError, ProtocolError, a stream error or a future class:
            # we cannot tell whether bytes left, so assume they did.
            return exc.ReadError(f"the request failed: {detail}")
