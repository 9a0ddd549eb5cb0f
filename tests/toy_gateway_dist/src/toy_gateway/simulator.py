"""The toy gateway as ``sms_async.testing``'s simulated gateway speaks it."""

from __future__ import annotations

import json
from typing import ClassVar

from sms_async.testing import (
    GatewayState,
    Operation,
    Request,
    Response,
    SimulatedProtocol,
    json_response,
    parse_query,
)

__all__ = ["ToyProtocol"]


class ToyProtocol(SimulatedProtocol):
    """A made-up gateway: a JSON POST send and a status look-up by query string; no do-not-disturb list.

    Operation names are ``<name>.send`` and ``<name>.status``, so a subclass
    with another ``name`` (and ``operations``) is another gateway.
    """

    name = "toy"
    title = "Toy"
    operations = frozenset({"toy.send", "toy.status"})
    default_paths: ClassVar[dict[str, str]] = {"send": "/toy/v1/messages", "status": "/toy/v1/status"}
    answer_forms = ("plain", "verbose")
    shorthands: ClassVar[dict[str, str]] = {"toy_send_form": "answer_form"}

    def read(self, request: Request) -> Operation:
        """A send is a JSON body; a status look-up takes its credentials and id from the query."""
        if request.path == self.paths["send"]:
            operation = Operation(f"{self.name}.send", self, request)
            try:
                operation.data = json.loads(request.body)
            except ValueError:
                operation.error = json_response(400, {"error": "body is not JSON"})
            return operation
        operation = Operation(f"{self.name}.status", self, request)
        try:
            operation.params = dict(parse_query(request.query))
        except UnicodeDecodeError:
            operation.error = json_response(400, {"error": "the query is not UTF-8"})
        return operation

    def answer(self, operation: Operation, state: GatewayState, *, share: float | None = None) -> Response:
        """Send through the shared state, or report each number's stage (then outcome)."""
        if operation.name.endswith(".send"):
            return self._send(operation, state)
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

    def _send(self, operation: Operation, state: GatewayState) -> Response:
        data = operation.data
        if not isinstance(data, dict) or not isinstance(data.get("to"), list):
            return json_response(400, {"error": "a send is a JSON object with a list 'to'"})
        account = state.login(data.get("user"), data.get("key"))
        if account is None:
            return json_response(401, {"error": "bad credentials"})
        numbers = [str(number) for number in data["to"]]
        text = str(data.get("text", ""))
        state.received(len(numbers))
        if not state.charge(account, text, len(numbers)):
            return json_response(402, {"error": "no credit"})
        state.record_send(account, numbers, [])
        message_id = state.new_id()
        state.store(message_id, tuple(numbers), gateway=self.name, text=text, sender="TOY", account=account)
        if self.answer_form == "verbose":
            return json_response(201, {"id": message_id, "to": numbers})
        return json_response(201, {"id": message_id})
