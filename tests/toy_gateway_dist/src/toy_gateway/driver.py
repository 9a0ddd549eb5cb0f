"""The toy gateway's driver: it describes each request and reads each answer, and does no I/O."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar, Self
from urllib.parse import urlencode

from sms_async import (
    AmbiguousResponseError,
    ConfigurationError,
    DeliveryReport,
    DeliveryStatus,
    Message,
    UnsupportedOperationError,
)
from sms_async.providers import (
    Capabilities,
    Origin,
    SendAnswer,
    WireRequest,
    WireResponse,
    body_excerpt,
    check_params,
    classify_http,
    classify_text_error,
    keep_secrets,
    setting,
)

__all__ = ["CHANNELS", "STATES", "Toy"]

#: The toy's own setting, which no other gateway has: the channel a send goes out on.
CHANNELS = ("promo", "service")

# The names the toy's own send uses: extra parameters may not take them.
_OWN = frozenset({"user", "key", "to", "text", "channel"})

#: The toy's status words.
STATES = {
    "queued": DeliveryStatus.QUEUED,
    "processing": DeliveryStatus.PROCESSING,
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "undelivered": DeliveryStatus.UNDELIVERED,
    "failed": DeliveryStatus.FAILED,
}


class _PreparedToy:
    """One message's send, prepared once: each batch only adds its numbers."""

    def __init__(self, target: str, head: dict[str, Any]) -> None:
        self._target = target
        self._head = head

    def build(self, numbers: Sequence[str]) -> WireRequest:
        body = json.dumps({**self._head, "to": list(numbers)}).encode()
        return WireRequest("POST", self._target, (("Content-Type", "application/json"),), body, "send")


class Toy:
    """The toy gateway's driver: a JSON POST send, a status look-up by query string, nothing else."""

    name: ClassVar[str] = "toy"
    capabilities: ClassVar[Capabilities] = Capabilities(status=True, balance=False, dnd=False)
    settings_keys: ClassVar[frozenset[str]] = frozenset(
        {"username", "password", "base_url", "allow_insecure_http", "params", "channel"}
    )
    max_batch = 50
    max_status_batch = 1
    max_dnd_batch = 1

    def __init__(
        self,
        user: str,
        key: str,
        *,
        base_url: str,
        allow_insecure_http: bool = False,
        params: Mapping[str, str] | None = None,
        channel: str | None = None,
    ) -> None:
        if channel is not None and channel not in CHANNELS:
            raise ConfigurationError(f"the toy's channel is one of {', '.join(CHANNELS)}, not {channel!r}")
        self.channel = channel
        self.origin = Origin.parse(base_url, allow_insecure_http=allow_insecure_http)
        # The key travels in every body: from here on it is redacted from errors and logs.
        keep_secrets(self, key)
        self._user = user
        self._key = key
        self.params = check_params(self, "Toy", _OWN, params)

    def __repr__(self) -> str:
        return f"Toy(user={self._user!r}, base_url={self.origin.url!r})"

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Self:
        """Build from a username, a password, a base URL, and optionally extra parameters and a channel."""
        return cls(
            setting(settings, "username") or "",
            setting(settings, "password") or "",
            base_url=setting(settings, "base_url") or "",
            allow_insecure_http=bool(settings.get("allow_insecure_http", False)),
            params=settings.get("params") or None,
            channel=setting(settings, "channel"),
        )

    def prepare_send(self, message: Message, params: Mapping[str, str] | None = None) -> _PreparedToy:
        """The constant part of every send."""
        head = {"user": self._user, "key": self._key, "text": message.text}
        if self.channel is not None:
            head["channel"] = self.channel
        head.update(check_params(self, "Toy", _OWN, self.params, params))
        return _PreparedToy(self.origin.join("/toy/v1/messages"), head)

    def parse_send(self, numbers: Sequence[str], response: WireResponse) -> SendAnswer:
        """One id for the whole request."""
        error = classify_http(response)
        if error is not None:
            raise error
        if response.status >= 400:
            raise classify_text_error(response.text(), status_code=response.status)
        try:
            message_id = json.loads(response.body)["id"]
        except (ValueError, KeyError, TypeError):
            raise AmbiguousResponseError(
                "the toy's answer holds no id", status_code=response.status, raw=body_excerpt(response)
            ) from None
        return SendAnswer(dict.fromkeys(numbers, str(message_id)), {}, body_excerpt(response))

    def build_status(self, message_ids: Sequence[str]) -> WireRequest:
        """One id per look-up."""
        (message_id,) = message_ids
        query = urlencode({"user": self._user, "key": self._key, "id": message_id})
        return WireRequest("GET", f"{self.origin.join('/toy/v1/status')}?{query}", (), b"", "status")

    def parse_status(self, message_ids: Sequence[str], response: WireResponse) -> list[DeliveryReport]:
        """A report per number the toy names."""
        error = classify_http(response)
        if error is not None:
            raise error
        (message_id,) = message_ids
        try:
            states = json.loads(response.body)["states"]
        except (ValueError, KeyError, TypeError):
            raise classify_text_error(response.text(), status_code=response.status) from None
        return [
            DeliveryReport(message_id, number, STATES.get(word, DeliveryStatus.UNKNOWN), word)
            for number, word in states.items()
        ]

    def build_balance(self) -> WireRequest:
        """The toy has no balance command."""
        raise UnsupportedOperationError("the toy gateway has no balance command")

    def parse_balance(self, response: WireResponse) -> Decimal:
        """The toy has no balance command."""
        raise UnsupportedOperationError("the toy gateway has no balance command")

    def build_dnd(self, numbers: Sequence[str]) -> WireRequest:
        """The toy keeps no do-not-disturb list."""
        raise UnsupportedOperationError("the toy gateway keeps no do-not-disturb list")

    def parse_dnd(self, numbers: Sequence[str], response: WireResponse) -> dict[str, bool]:
        """The toy keeps no do-not-disturb list."""
        raise UnsupportedOperationError("the toy gateway keeps no do-not-disturb list")
