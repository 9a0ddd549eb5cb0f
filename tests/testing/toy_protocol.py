"""A made-up third gateway for the simulator: one protocol class, registered with one call.

Shared by the simulator's own tests and the end-to-end test of a third
gateway (driver, simulator module and registry line), so both speak the
same protocol.
"""

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
)
from sms_async.testing._protocol import parse_query

__all__ = ["ToyProtocol"]


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
