"""What every transport shares: the contract, the timeouts, and safe error text.

A transport moves one described request (:class:`~sms_async._wire.WireRequest`)
and returns the answer (:class:`~sms_async._wire.WireResponse`) whatever its
HTTP status. It raises only :class:`~sms_async.NotSentError` (the request
never left: safe to send again) or :class:`~sms_async.MaybeSentError` (it may
have reached the gateway) subclasses, and never repeats a request on its own:
retrying is the retry policy's decision, made per operation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import attrs

from sms_async._redact import redact
from sms_async._wire import WireRequest, WireResponse

__all__ = [
    "MAX_BODY",
    "MAX_HEAD",
    "USER_AGENT",
    "BeforeWrite",
    "OnWrite",
    "Timeouts",
    "Transport",
    "safe_detail",
]

#: Awaited once a connection is ready, just before the request is written (a journal's claim).
BeforeWrite = Callable[[], Awaitable[None]]
#: Called (without a checkpoint) as the request's first byte is handed to a connection: from then
#: on the request may reach the gateway, and a cancellation leaves it ``unknown``, not ``unsent``.
OnWrite = Callable[[], None]

USER_AGENT = "sms_async/0.1"

#: The longest answer head (status line and headers, 1xx heads included) a transport reads.
MAX_HEAD = 64 * 1024
#: The longest answer body a transport reads, whatever its framing; a gateway's
#: answer to one batch is a few kilobytes.
MAX_BODY = 16 * 1024 * 1024


@attrs.frozen
class Timeouts:
    """Per-phase network timeouts, in seconds.

    ``read`` bounds the wait for each piece of the answer; the retry policy's
    ``deadline`` bounds a whole batch, retries included.
    """

    connect: float = 10.0
    read: float = 30.0
    write: float = 30.0
    pool: float = 30.0
    #: Close a pooled connection idle for longer than this.
    keepalive_expiry: float = 5.0


class Transport(Protocol):
    """Sends one described request; never repeats it."""

    #: ``"fast"`` or ``"httpx"``.
    name: str

    async def send(
        self,
        request: WireRequest,
        deadline_at: float | None = None,
        before_write: BeforeWrite | None = None,
        on_write: OnWrite | None = None,
    ) -> WireResponse:
        """Send ``request`` and return the answer, whatever its HTTP status.

        ``deadline_at`` (a ``time.monotonic()`` value) bounds the whole
        exchange; past it, :class:`~sms_async._exceptions.DeadlineExceeded` is raised
        if the request was written, a :class:`~sms_async.NotSentError` if not.
        ``before_write`` is awaited as late as the transport can: once a
        connection is ready, just before the first byte is written; whatever
        it raises goes through, and nothing is written. ``on_write`` is called
        when the first byte is handed to a connection (or, where the transport
        cannot tell, when the request is handed to the library that writes it):
        a cancellation before it left nothing on the wire.
        """

    def connections(self) -> tuple[int, int] | None:
        """Connections open (connecting, busy or idle) and, of those, idle; ``None`` if not known."""

    async def aclose(self) -> None:
        """Close pooled connections (and the client, if this transport owns it)."""


def safe_detail(error: BaseException) -> str:
    """An error's text for our own messages: redacted and capped (a library's text may hold a URL)."""
    text = str(error) or type(error).__name__
    return redact(text)[:300]
