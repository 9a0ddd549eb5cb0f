"""The exceptions of sms_async, one tree with one root.

::

    SmsError
    ├── UsageError (ValueError)              misuse found before any request
    │   ├── ConfigurationError               bad base URL, insecure URL, bad option
    │   ├── InvalidMessageError              empty text, lone surrogate, NUL, too many parts
    │   ├── InvalidSenderIdError             sender id too long or malformed
    │   └── InvalidNumberError               a recipient that is not a valid phone number
    ├── UnsupportedOperationError            the gateway has no such command
    ├── RecipientsError               *abort the caller's recipients iterable raised mid-run
    ├── InsufficientCreditError              a pre-flight check found the balance too low
    ├── CallStopped                          the caller's side stopped a send: the rest is unsent
    │   ├── SendTimeout                      the call's own ``timeout`` passed
    │   ├── SenderClosed                     the sender was closed while the call ran
    │   └── SendCancelled                    the call was cancelled (in ``into=``'s ``aborted``)
    ├── GatewayError                         the gateway answered, and it was not a success
    │   ├── AuthenticationError       *abort the gateway refused the credentials
    │   ├── OutOfCreditError          *abort the account cannot pay
    │   ├── EndpointError             *abort the first batches all got a wrong-endpoint answer
    │   ├── RejectedError                    the gateway refused this request, with its reason
    │   ├── GatewayBusyError                 429 / 503: refused before processing, retryable
    │   └── AmbiguousResponseError           5xx, or a 200 we cannot read: may have been sent
    └── TransportError                       the request did not complete over the network
        ├── NotSentError                     connect / pool / TLS failure: never left
        │   └── (ConnectError, ConnectTimeout, PoolTimeout)
        └── MaybeSentError                   written (or partly written), no full answer
            └── (ReadTimeout, ReadError, WriteError, RemoteProtocolError, DeadlineExceeded,
                 RequestCancelled)

Context travels as keyword-only attributes (``status_code``, ``raw``), never
glued into messages that could carry a credential. Every message is built by
this library from redacted parts; a lower-level exception is never chained,
neither as ``__cause__`` nor as ``__context__`` (ours are raised after the
``except`` block that caught it), because its text may hold a URL with a
password in it.
"""

from __future__ import annotations

__all__ = [
    "AmbiguousResponseError",
    "AuthenticationError",
    "CallStopped",
    "ConfigurationError",
    "ConnectError",
    "ConnectTimeout",
    "DeadlineExceeded",
    "EndpointError",
    "GatewayBusyError",
    "GatewayError",
    "InsufficientCreditError",
    "InvalidMessageError",
    "InvalidNumberError",
    "InvalidSenderIdError",
    "MaybeSentError",
    "NotSentError",
    "OutOfCreditError",
    "PoolTimeout",
    "ReadError",
    "ReadTimeout",
    "RecipientsError",
    "RejectedError",
    "RemoteProtocolError",
    "RequestCancelled",
    "SendCancelled",
    "SendTimeout",
    "SenderClosed",
    "SmsError",
    "TransportError",
    "UnsupportedOperationError",
    "UsageError",
    "WriteError",
]


class SmsError(Exception):
    """The root of every error this library raises or reports."""

    @property
    def reason(self) -> str:
        """The human-readable reason (the gateway's own words where it gave any)."""
        return str(self.args[0]) if self.args else type(self).__name__


class UsageError(SmsError, ValueError):
    """Misuse found before any request was made; nothing was sent."""


class ConfigurationError(UsageError):
    """A bad setting: a URL, an option, a credential that is missing."""


class InvalidMessageError(UsageError):
    """The text cannot be sent as it is (empty, unencodable, too many parts)."""


class InvalidSenderIdError(UsageError):
    """The sender id breaks the rules for alphanumeric or numeric sender ids."""


class InvalidNumberError(UsageError):
    """A recipient is not a valid phone number.

    ``raw`` is the input exactly as it was given.
    """

    def __init__(self, message: str, *, raw: str) -> None:
        super().__init__(message)
        self.raw = raw


class UnsupportedOperationError(SmsError):
    """The gateway documents no such command (for example an ItecPay balance)."""


class RecipientsError(SmsError):
    """Reading the recipients failed mid-run; the run stopped.

    Its ``__cause__`` is the caller's own exception. Inputs read before the
    failure are accounted for; the rest were never read.
    """


class InsufficientCreditError(SmsError):
    """A pre-flight check found that the account cannot pay for the campaign."""

    def __init__(self, message: str, *, needed: int, available: object) -> None:
        super().__init__(message)
        self.needed = needed
        self.available = available


class CallStopped(SmsError):
    """A send stopped early on the caller's side; it is the ``aborted`` of its result.

    No batch or retry starts after it; batches whose request was not yet
    written are ``unsent``; those in flight had a grace period to finish and
    are ``unknown`` if they did not.
    """


class SendTimeout(CallStopped):
    """The ``timeout`` given to ``send`` or ``stream`` passed before the call was done."""


class SenderClosed(CallStopped):
    """The sender was closed (``aclose()`` or leaving its ``async with``) while the call ran."""


class SendCancelled(CallStopped):
    """The call was cancelled; set on the ``BulkResult`` passed as ``into=``, never raised by ``send``."""


class GatewayError(SmsError):
    """The gateway answered, and the answer was not a success.

    ``status_code`` is the HTTP status; ``raw`` is the body as text (credentials
    are never echoed by either gateway, and are redacted if they were).
    """

    #: ``True`` when the run must stop: retrying or continuing cannot help.
    aborts_run: bool = False

    def __init__(self, message: str, *, status_code: int | None = None, raw: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.raw = raw


class AuthenticationError(GatewayError):
    """The gateway refused the credentials; the run stops."""

    aborts_run = True


class OutOfCreditError(GatewayError):
    """The account has no credit left; the run stops."""

    aborts_run = True


class EndpointError(GatewayError):
    """The first batches of a run all got the same wrong-endpoint answer; the run stops.

    HTTP 404/405, a redirect, an HTML page: the address is wrong, not the recipients.
    """

    aborts_run = True


class RejectedError(GatewayError):
    """The gateway refused this request and said why; retrying cannot help."""


class GatewayBusyError(GatewayError):
    """HTTP 429 or 503: refused before processing, safe to retry.

    ``retry_after`` is the wait the gateway asked for, in seconds, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        raw: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, raw=raw)
        self.retry_after = retry_after


class AmbiguousResponseError(GatewayError):
    """A 500/502/504 or a body we cannot read: the gateway may have acted on it."""


class TransportError(SmsError):
    """The request did not complete over the network."""


class NotSentError(TransportError):
    """The request never left this machine: safe to send again."""


class ConnectError(NotSentError):
    """The connection could not be made (refused, DNS, TLS handshake)."""


class ConnectTimeout(NotSentError):
    """The connection was not made within the connect timeout."""


class PoolTimeout(NotSentError):
    """No connection became free within the pool timeout."""


class MaybeSentError(TransportError):
    """The request may have reached the gateway: sending it again could double-send."""


class WriteError(MaybeSentError):
    """Writing the request failed part of the way."""


class ReadError(MaybeSentError):
    """The connection failed while waiting for the answer."""


class ReadTimeout(MaybeSentError):
    """No answer came within the read timeout."""


class RemoteProtocolError(MaybeSentError):
    """The gateway closed the connection or broke HTTP after the request was written."""


class DeadlineExceeded(MaybeSentError):
    """The batch's overall deadline passed while a request was in flight."""


class RequestCancelled(MaybeSentError):
    """The run was cancelled while this request was in flight."""
