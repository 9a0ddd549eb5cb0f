"""The httpx transport: any ``httpx.AsyncClient`` (a caller's, a mocked one, on trio, through a proxy).

The answer is streamed and held to the same caps as the fast transport's
(:data:`~sms_async.transports._base.MAX_BODY`), and, as there, the request
asks for ``Accept-Encoding: identity`` and an answer in any other
``Content-Encoding`` is refused rather than decoded without a bound.
httpx errors are mapped to the most specific sms_async error, and never
chained: their text may hold the request URL, password and all.
"""

from __future__ import annotations

import time

import anyio
import httpx

from sms_async import _exceptions as exc
from sms_async._wire import Origin, WireRequest, WireResponse
from sms_async.transports._base import MAX_BODY, BeforeWrite, safe_detail

__all__ = ["HttpxTransport", "map_httpx_error"]

_IDENTITY = (("Accept-Encoding", "identity"),)


class HttpxTransport:
    """Sends through an ``httpx.AsyncClient``, mapping its errors exactly."""

    name = "httpx"

    def __init__(
        self,
        client: httpx.AsyncClient,
        origin: Origin,
        *,
        owns_client: bool = False,
        proxy: str | None = None,
    ) -> None:
        self._client = client
        self._base = f"{origin.scheme}://{origin.host_header}"
        self._owns_client = owns_client
        # The proxy the environment names, as fit for a message (no credentials), to blame it by name.
        self._proxy = proxy

    async def send(
        self, request: WireRequest, deadline_at: float | None = None, before_write: BeforeWrite | None = None
    ) -> WireResponse:
        """Send over the client; never follows a redirect.

        httpx connects inside its own send, so ``before_write`` runs just before it.
        """
        client = self._client
        # Errors are built inside ``except`` but raised after it, so that the
        # httpx error (whose text may hold the URL, password and all) is
        # neither the cause nor the context of ours.
        failure: exc.TransportError | None = None
        try:
            http_request = client.build_request(
                request.method,
                self._base + request.target,
                headers=request.headers + _IDENTITY,
                content=request.body if request.method != "GET" else None,
            )
        except Exception as error:  # noqa: BLE001 - whatever building raised, nothing was sent
            failure = exc.ConnectError(
                f"the request could not be built ({type(error).__name__}); it was not sent"
            )
        if failure is not None:
            raise failure
        if before_write is not None:
            await before_write()
        budget = None if deadline_at is None else deadline_at - time.monotonic()
        try:
            with anyio.fail_after(budget):
                answer = await self._exchange(client, http_request)
        except (httpx.HTTPError, httpx.InvalidURL, httpx.CookieConflict, httpx.StreamError) as error:
            failure = map_httpx_error(error, proxy=self._proxy)
        except TimeoutError:
            failure = exc.DeadlineExceeded("the batch deadline passed with the request in flight")
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

    async def aclose(self) -> None:
        """Close the client if this transport created it."""
        if self._owns_client:
            await self._client.aclose()


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
