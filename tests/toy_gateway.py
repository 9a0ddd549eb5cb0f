"""A made-up third gateway: one driver class and one simulator protocol, each registered with one call.

Shared by the tests that prove a third gateway needs nothing else: the
simulator's own, the engine's end to end, and the command line's
(``--gateway toy``). The ``toy_gateway`` fixture (``tests/conftest.py``)
registers both for one test.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar, Self
from urllib.parse import urlencode

from sms_async import DeliveryReport, DeliveryStatus, Message, UnsupportedOperationError
from sms_async._exceptions import AmbiguousResponseError
from sms_async._redact import keep_secrets
from sms_async._wire import Origin, WireRequest, WireResponse
from sms_async.providers import Capabilities, SendAnswer
from sms_async.providers._base import check_params, classify_http, classify_text_error, setting
from sms_async.testing import GatewayState, Operation, Request, Response, SimulatedProtocol, json_response
from sms_async.testing._protocol import parse_query

__all__ = ["Toy", "ToyProtocol"]

# The names the toy's own send uses: extra parameters may not take them.
_OWN = frozenset({"user", "key", "to", "text"})

STATES = {
    "queued": DeliveryStatus.QUEUED,
    "processing": DeliveryStatus.PROCESSING,
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "undelivered": DeliveryStatus.UNDELIVERED,
    "failed": DeliveryStatus.FAILED,
}


class _PreparedToy:
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
        {"username", "password", "base_url", "allow_insecure_http", "params"}
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
    ) -> None:
        self.origin = Origin.parse(base_url, allow_insecure_http=allow_insecure_http)
        keep_secrets(self, key)
        self._user = user
        self._key = key
        self.params = check_params(self, "Toy", _OWN, params)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Self:
        """Build from a username, a password, a base URL, and optionally extra parameters."""
        return cls(
            setting(settings, "username") or "",
            setting(settings, "password") or "",
            base_url=setting(settings, "base_url") or "",
            allow_insecure_http=bool(settings.get("allow_insecure_http", False)),
            params=settings.get("params") or None,
        )

    def prepare_send(self, message: Message, params: Mapping[str, str] | None = None) -> _PreparedToy:
        """The constant part of every send."""
        head = {"user": self._user, "key": self._key, "text": message.text}
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
                "the toy's answer holds no id", status_code=response.status
            ) from None
        return SendAnswer(dict.fromkeys(numbers, str(message_id)), {}, response.text())

    def build_status(self, message_ids: Sequence[str]) -> WireRequest:
        """One id per look-up."""
        (message_id,) = message_ids
        query = urlencode({"user": self._user, "key": self._key, "id": message_id})
        return WireRequest("GET", f"{self.origin.join('/toy/v1/status')}?{query}", (), b"", "status")

    def parse_status(self, message_ids: Sequence[str], response: WireResponse) -> list[DeliveryReport]:
        """A report per number the toy names."""
        (message_id,) = message_ids
        states = json.loads(response.body)["states"]
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


class ToyProtocol(SimulatedProtocol):
    """A made-up gateway: a JSON POST send and a status look-up by query string; no do-not-disturb list."""

    name = "toy"
    title = "Toy"
    operations = frozenset({"toy.send", "toy.status"})
    default_paths: ClassVar[dict[str, str]] = {"send": "/toy/v1/messages", "status": "/toy/v1/status"}
    answer_forms = ("plain", "verbose")

    def read(self, request: Request) -> Operation:
        """A send is a JSON body; a status look-up takes its credentials and id from the query."""
        if request.path == self.paths["send"]:
            operation = Operation("toy.send", self, request)
            try:
                operation.data = json.loads(request.body)
            except ValueError:
                operation.error = json_response(400, {"error": "body is not JSON"})
            return operation
        operation = Operation("toy.status", self, request)
        operation.params = dict(parse_query(request.query))
        return operation

    def answer(self, operation: Operation, state: GatewayState, *, share: float | None = None) -> Response:
        """Send through the shared state, or report each number's stage (then outcome)."""
        if operation.name == "toy.send":
            data = operation.data
            assert isinstance(data, dict)
            account = state.login(data.get("user"), data.get("key"))
            if account is None:
                return json_response(401, {"error": "bad credentials"})
            numbers = list(data["to"])
            state.received(len(numbers))
            if not state.charge(account, data["text"], len(numbers)):
                return json_response(402, {"error": "no credit"})
            state.record_send(account, numbers, [])
            message_id = state.new_id()
            state.store(
                message_id,
                tuple(numbers),
                gateway=self.name,
                text=data["text"],
                sender="TOY",
                account=account,
            )
            if self.answer_form == "verbose":
                return json_response(201, {"id": message_id, "to": numbers})
            return json_response(201, {"id": message_id})
        params = operation.params
        account = state.login(params.get("user"), params.get("key"))
        if account is None:
            return json_response(401, {"error": "bad credentials"})
        message = state.message_for(params.get("id", ""), self.name, account)
        if message is None:
            return json_response(404, {"error": "no such message"})
        stage = state.stage(message, state.now())
        states = {
            number: stage if stage != "final" else state.outcome(message.message_id, number)
            for number in message.numbers
        }
        return json_response(200, {"id": message.message_id, "states": states})
