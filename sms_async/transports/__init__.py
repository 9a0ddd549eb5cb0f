"""Moving described requests over HTTP, and telling "never sent" from "maybe sent".

* :class:`FastTransport`: the default on asyncio and uvloop (``_fast``).
* :class:`HttpxTransport`: any ``httpx.AsyncClient`` (``_httpx``).
* :func:`open_transport`: which one a sender gets (``_open``).
"""

from sms_async.transports._base import Timeouts, Transport
from sms_async.transports._fast import FastTransport
from sms_async.transports._httpx import HttpxTransport, map_httpx_error
from sms_async.transports._open import HttpBackend, TransportOptions, check_backend_options, open_transport

__all__ = [
    "FastTransport",
    "HttpBackend",
    "HttpxTransport",
    "Timeouts",
    "Transport",
    "TransportOptions",
    "check_backend_options",
    "map_httpx_error",
    "open_transport",
]
