"""Choosing and opening the transport a sender uses.

* the fast transport on asyncio and uvloop, where httptools is installed and
  no proxy from the environment applies to the gateway;
* httpx on trio, through a proxy, without httptools, whenever the caller hands
  over an httpx client or transport, or asks for it.

Both get the same TLS context (:func:`~sms_async.transports._env.ssl_context_for`).
"""

from __future__ import annotations

import logging
import ssl
from typing import Any, Literal

import attrs
import httpx
import sniffio

from sms_async import _exceptions as exc
from sms_async._wire import Origin
from sms_async.transports import _answer
from sms_async.transports._base import Timeouts, Transport
from sms_async.transports._env import describe_proxy, environment_proxy, ssl_context_for
from sms_async.transports._fast import FastTransport
from sms_async.transports._httpx import HttpxTransport
from sms_async.transports._tunnel import close_failed_tunnels

__all__ = ["HttpBackend", "TransportOptions", "check_backend_options", "open_transport"]

HttpBackend = Literal["auto", "fast", "httpx"]

logger = logging.getLogger("sms_async")


def check_backend_options(
    http: str,
    *,
    client: httpx.AsyncClient | None,
    transport: httpx.AsyncBaseTransport | None,
    verify: ssl.SSLContext | bool = True,
    trust_env: bool = True,
) -> None:
    """Refuse combinations that cannot work, before anything is opened."""
    if client is not None and transport is not None:
        raise exc.ConfigurationError("pass client= or transport=, not both")
    if http not in {"auto", "fast", "httpx"}:
        raise exc.ConfigurationError(f"http must be 'auto', 'fast' or 'httpx', got {http!r}")
    if http == "fast" and (client is not None or transport is not None):
        raise exc.ConfigurationError("http='fast' cannot use a caller's httpx client or transport")
    if not isinstance(verify, ssl.SSLContext | bool):
        raise exc.ConfigurationError(
            f"verify must be True, False or an ssl.SSLContext, got {type(verify).__name__}: "
            "for a CA bundle file, pass ssl.create_default_context(cafile=...)"
        )
    if not isinstance(trust_env, bool):
        raise exc.ConfigurationError(f"trust_env must be True or False, got {trust_env!r}")
    if client is not None and (verify is not True or trust_env is not True):
        raise exc.ConfigurationError(
            "verify= and trust_env= do not apply to a client you pass in: "
            "set them on your httpx.AsyncClient instead"
        )


@attrs.frozen
class TransportOptions:
    """How a sender reaches its gateway; checked when made, opened in the event loop that uses it."""

    timeouts: Timeouts = attrs.Factory(Timeouts)
    http: HttpBackend = "auto"
    client: httpx.AsyncClient | None = None
    transport: httpx.AsyncBaseTransport | None = None
    verify: ssl.SSLContext | bool = True
    trust_env: bool = True

    def __attrs_post_init__(self) -> None:
        check_backend_options(
            self.http,
            client=self.client,
            transport=self.transport,
            verify=self.verify,
            trust_env=self.trust_env,
        )

    def open(self, origin: Origin, concurrency: int) -> Transport:
        """The transport for ``origin`` (see :func:`open_transport`)."""
        return open_transport(
            origin,
            concurrency=concurrency,
            timeouts=self.timeouts,
            http=self.http,
            client=self.client,
            transport=self.transport,
            verify=self.verify,
            trust_env=self.trust_env,
        )


def open_transport(
    origin: Origin,
    *,
    concurrency: int,
    timeouts: Timeouts,
    http: HttpBackend = "auto",
    client: httpx.AsyncClient | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    verify: ssl.SSLContext | bool = True,
    trust_env: bool = True,
) -> Transport:
    """The transport for ``origin``, opened in the running event loop.

    A caller's ``client`` is used as it is (and not closed for them); a
    caller's httpx ``transport`` is wrapped in a client this transport owns.
    ``verify`` is httpx's: ``True`` (certifi's CA bundle, or ``SSL_CERT_FILE``
    / ``SSL_CERT_DIR`` when ``trust_env``), ``False`` (no check) or an
    ``ssl.SSLContext``. With ``trust_env``, proxies named by ``HTTP_PROXY``,
    ``HTTPS_PROXY`` and ``ALL_PROXY`` (less ``NO_PROXY``) are used, through
    httpx; a request never goes direct when one applies.
    """
    check_backend_options(http, client=client, transport=transport, verify=verify, trust_env=trust_env)
    if client is not None:
        return HttpxTransport(client, origin)
    tls = ssl_context_for(verify, trust_env=trust_env) if origin.scheme == "https" else None
    proxy = environment_proxy(origin) if trust_env else None
    shown = None if proxy is None else describe_proxy(proxy)
    if transport is not None:
        owned = _owned_client(transport=transport, tls=tls, trust_env=trust_env)
        return HttpxTransport(
            owned,
            origin,
            owns_client=True,
            traced=isinstance(transport, httpx.AsyncHTTPTransport),
            proxy=shown,
        )
    backend = sniffio.current_async_library()
    if http == "fast":
        if backend != "asyncio":
            raise exc.ConfigurationError(f"http='fast' needs asyncio; this is running on {backend}")
        if not _answer.available():
            raise exc.ConfigurationError("http='fast' needs httptools: pip install httptools")
        if proxy is not None:
            raise exc.ConfigurationError(
                f"http='fast' cannot go through the proxy {describe_proxy(proxy)} that the environment "
                f"sets for {origin.url}: use http='auto' or 'httpx', or trust_env=False to go direct"
            )
    elif http == "auto" and backend == "asyncio":
        if proxy is not None:
            logger.debug(
                "a proxy from the environment (%s) applies to %s: sending through httpx",
                describe_proxy(proxy),
                origin.url,
            )
        elif not _answer.available():
            logger.debug("httptools is not installed: sending through httpx")
        else:
            return FastTransport(origin, limit=concurrency, timeouts=timeouts, ssl_context=tls)
    if http == "fast":
        return FastTransport(origin, limit=concurrency, timeouts=timeouts, ssl_context=tls)
    owned = _owned_client(
        limits=httpx.Limits(
            max_connections=concurrency,
            max_keepalive_connections=concurrency,
            keepalive_expiry=timeouts.keepalive_expiry,
        ),
        timeout=httpx.Timeout(
            connect=timeouts.connect, read=timeouts.read, write=timeouts.write, pool=timeouts.pool
        ),
        tls=tls,
        trust_env=trust_env,
    )
    return HttpxTransport(owned, origin, owns_client=True, traced=True, proxy=shown)


def _owned_client(*, tls: ssl.SSLContext | None, trust_env: bool, **options: Any) -> httpx.AsyncClient:
    failure = None
    try:
        client = httpx.AsyncClient(
            # Without an https origin no certificate is checked; httpx still wants a setting.
            verify=tls if tls is not None else True,
            trust_env=trust_env,
            follow_redirects=False,
            **options,
        )
    except (ImportError, ValueError) as error:
        # A proxy variable httpx cannot use: socks:// without socksio, or an unknown scheme.
        # Its text may quote the proxy URL, password and all: say what it is, not what it said.
        failure = exc.ConfigurationError(
            f"the proxy settings in the environment cannot be used ({type(error).__name__}): "
            "check HTTP_PROXY, HTTPS_PROXY and ALL_PROXY (socks:// needs 'pip install httpx[socks]'), "
            "or pass trust_env=False"
        )
    if failure is not None:
        raise failure
    # A tunnel whose TLS handshake fails must give its pool slot back (httpcore#1023).
    close_failed_tunnels(client)
    return client
