"""What every driver shares: the driver protocol and HTTP-level classification.

A driver is sans-I/O: it describes each request as a :class:`WireRequest` and
turns each :class:`WireResponse` into values or a typed error. It never sends,
retries or waits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar, Protocol, Self

import attrs

from sms_async._exceptions import (
    AmbiguousResponseError,
    AuthenticationError,
    ConfigurationError,
    GatewayBusyError,
    GatewayError,
    OutOfCreditError,
    RejectedError,
)
from sms_async._message import Message
from sms_async._models import DeliveryReport
from sms_async._redact import keep_secrets, redact
from sms_async._wire import Origin, WireRequest, WireResponse, parse_retry_after

__all__ = [
    "RAW_LIMIT",
    "Capabilities",
    "Driver",
    "PreparedSend",
    "SendAnswer",
    "body_excerpt",
    "check_credential",
    "check_params",
    "classify_http",
    "classify_text_error",
    "setting",
]

#: The most of a body kept on a result or an error.
RAW_LIMIT = 4096

_AUTH_WORDS = re.compile(
    r"user\s*name|password|passwd|login|log in|authenticat|unauthori|credential|token|api\s*key|forbidden"
    r"|access denied",
    re.IGNORECASE,
)
_CREDIT_WORDS = re.compile(r"credit|balance|insufficient funds|top.?up|recharge", re.IGNORECASE)


@attrs.frozen
class SendAnswer:
    """What the gateway said about one send request.

    ``accepted`` maps E.164 -> message id; ``rejected`` maps E.164 -> the
    gateway's reason for numbers it refused while accepting others;
    ``unknown`` maps E.164 -> why its fate cannot be read from the answer. A
    number in none of them was not mentioned; the engine reports it as
    rejected.
    """

    accepted: dict[str, str]
    rejected: dict[str, str]
    raw: str
    unknown: dict[str, str] = attrs.Factory(dict)


@attrs.frozen
class Capabilities:
    """What a gateway offers besides sending, as its driver declares it.

    The engine, the command line and the simulator ask this instead of
    trying an operation to see whether it fails.
    """

    #: Delivery-status look-ups.
    status: bool = True
    #: A balance look-up.
    balance: bool = False
    #: A do-not-disturb look-up.
    dnd: bool = False
    #: Authentication by API token instead of a password.
    token_auth: bool = False


class PreparedSend(Protocol):
    """A send of one message, prepared once; builds each batch's request cheaply."""

    def build(self, numbers: Sequence[str]) -> WireRequest:
        """The request that sends the message to ``numbers`` (E.164, at most ``max_batch``)."""


class Driver(Protocol):
    """One gateway's wire protocol: describes requests and reads answers, never does I/O.

    A driver class is registered under its ``name``
    (:func:`sms_async.providers.register_gateway`) and built from settings
    with :meth:`from_settings`.
    """

    #: Short name used in logs, results, the registry and the command line ("iton", "itecpay").
    name: ClassVar[str]
    #: What the gateway offers.
    capabilities: ClassVar[Capabilities]
    #: The settings :meth:`from_settings` reads (config-file keys and command-line options).
    settings_keys: ClassVar[frozenset[str]]
    #: Most recipients per send request.
    max_batch: int
    #: Most ids per status request.
    max_status_batch: int
    #: Most numbers per do-not-disturb request.
    max_dnd_batch: int
    #: Where the gateway is.
    origin: Origin

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Self:
        """Build the driver from settings (keys of :attr:`settings_keys`); raise ConfigurationError."""

    def prepare_send(self, message: Message, params: Mapping[str, str] | None = None) -> PreparedSend:
        """Prepare the constant part of every send request for ``message``.

        ``params`` are extra request parameters (such as India's DLT ids),
        merged over the driver's own defaults; a name the driver owns is refused.
        """

    def parse_send(self, numbers: Sequence[str], response: WireResponse) -> SendAnswer:
        """Read a send answer, or raise the matching :class:`GatewayError`."""

    def build_status(self, message_ids: Sequence[str]) -> WireRequest:
        """Describe a delivery-status look-up for at most ``max_status_batch`` ids."""

    def parse_status(self, message_ids: Sequence[str], response: WireResponse) -> list[DeliveryReport]:
        """Read a delivery-status answer."""

    def build_balance(self) -> WireRequest:
        """Describe a balance look-up (raise UnsupportedOperationError if there is none)."""

    def parse_balance(self, response: WireResponse) -> Decimal:
        """Read a balance answer."""

    def build_dnd(self, numbers: Sequence[str]) -> WireRequest:
        """Describe a do-not-disturb look-up (raise UnsupportedOperationError if there is none)."""

    def parse_dnd(self, numbers: Sequence[str], response: WireResponse) -> dict[str, bool]:
        """Read a do-not-disturb answer: E.164 -> listed."""


_SECRET_NAME = re.compile(r"pass|secret|token|key|auth|sign", re.IGNORECASE)


def check_params(
    owner: object, gateway: str, owned: frozenset[str], *layers: Mapping[str, str] | None
) -> dict[str, str]:
    """Merge extra request parameters (later layers win) and check them before any request.

    Names must be non-empty text and not one the gateway's own protocol
    uses (compared without regard to case); values must be text. A value
    whose name sounds like a secret is redacted for as long as ``owner`` lives.

    Raises:
        ConfigurationError: a name the driver owns, an empty name, or a value that is not text.
    """
    merged: dict[str, str] = {}
    for layer in layers:
        if not layer:
            continue
        if not isinstance(layer, Mapping):
            raise ConfigurationError(f"gateway parameters must be a mapping of name to text, got {layer!r}")
        for name, value in layer.items():
            if not isinstance(name, str) or not name.strip():
                raise ConfigurationError(f"{gateway}: a gateway parameter needs a name, got {name!r}")
            if name.lower() in owned:
                raise ConfigurationError(
                    f"{gateway}: the parameter {name!r} is set by the driver itself and cannot be overridden "
                    f"(its own parameters: {', '.join(sorted(owned))})"
                )
            if not isinstance(value, str):
                raise ConfigurationError(
                    f"{gateway}: the value of parameter {name!r} must be text, got {type(value).__name__} "
                    f"(write it as a string, such as '{value}')"
                )
            check_credential(f"parameter {name!r}", value)
            if _SECRET_NAME.search(name):
                keep_secrets(owner, value)
            merged[name] = value
    return merged


def setting(settings: Mapping[str, Any], key: str) -> str | None:
    """A text setting, or ``None`` when it is absent or empty."""
    value = settings.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"the setting {key!r} must be text, got {type(value).__name__}")
    return value


def body_excerpt(response: WireResponse) -> str:
    """The body as text, capped and redacted, to keep on a result or error."""
    body = response.body[:RAW_LIMIT].decode("utf-8", "replace")
    return redact(body)


def classify_text_error(text: str, *, status_code: int | None, raw: str | None = None) -> GatewayError:
    """Turn the gateway's own error words into the most specific error.

    Words about the username, password, login or authentication mean the
    credentials were refused; words about credit or balance mean the account
    cannot pay; anything else is a rejection with the text as its reason.
    """
    reason = redact(text.strip())[:500] or "the gateway refused the request without saying why"
    raw = raw if raw is not None else reason
    if _AUTH_WORDS.search(text):
        return AuthenticationError(reason, status_code=status_code, raw=raw)
    if _CREDIT_WORDS.search(text):
        return OutOfCreditError(reason, status_code=status_code, raw=raw)
    return RejectedError(reason, status_code=status_code, raw=raw)


def classify_http(response: WireResponse) -> GatewayError | None:
    """The error an HTTP status means whatever the gateway, or ``None`` to read the body.

    429 and 503 were refused before processing (retry, honouring
    Retry-After); any other 5xx may have been processed; 401/403 refuse the
    credentials; a redirect is never followed (the password would go to
    another host).
    """
    status = response.status
    if 200 <= status < 300:
        return None
    raw = body_excerpt(response)
    if status in {429, 503}:
        return GatewayBusyError(
            f"the gateway is busy (HTTP {status})",
            status_code=status,
            raw=raw,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    if status >= 500:
        return AmbiguousResponseError(
            f"the gateway failed with HTTP {status}; it may have processed the request",
            status_code=status,
            raw=raw,
        )
    if status in {401, 403}:
        return AuthenticationError(
            f"the gateway refused the credentials (HTTP {status})"
            + (f": {raw.strip()[:200]}" if raw.strip() else ""),
            status_code=status,
            raw=raw,
        )
    if 300 <= status < 400:
        location = redact(response.headers.get("location", ""))[:200]
        return RejectedError(
            f"the gateway answered with a redirect (HTTP {status}) to {location!r}, which is not followed "
            "because it would carry the credentials elsewhere: check base_url",
            status_code=status,
            raw=raw,
        )
    if status < 200:
        return AmbiguousResponseError(f"unexpected HTTP {status}", status_code=status, raw=raw)
    return None  # other 4xx: the driver reads the body for the gateway's reason


def check_credential(name: str, value: str | None) -> None:
    """Refuse a credential holding control characters (a line break would forge an HTTP header)."""
    if value is not None and any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ConfigurationError(
            f"the {name} holds a control character (such as a line break): check how it was read "
            "(a trailing newline from a file is the usual cause)"
        )


def load_json(text: str) -> Any:
    """Parse JSON, or return ``_INVALID`` for anything unreadable (deep nesting included)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return INVALID_JSON


#: Returned by :func:`load_json` for a body that is not JSON.
INVALID_JSON: Any = object()


def decimal_or_none(value: object) -> Decimal | None:
    """A Decimal from a gateway's number or numeric string, or ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | str):
        try:
            result = Decimal(str(value).strip())
        except ArithmeticError:
            return None
        return result if result.is_finite() else None
    return None
