"""The simulated ItecPay gateway: JSON over POST, a send path and a status path.

What it answers follows ItecPay's published API and the assumptions stated in
the manual's wire reference (``docs/reference/wire.md``; the API shows no
response bodies): JSON with a
``status`` (200 or 400, which may disagree with the HTTP status), a
``description`` and a ``messageid``; a status look-up answers a letter in
``sms_status`` (Q, P, S, then D, U or E). A send takes extra JSON fields with
string values (DLT's entity and template ids, say) and records them on the
message.
"""

from __future__ import annotations

import json
import re
from http import HTTPStatus
from typing import TYPE_CHECKING, ClassVar, Final, Literal, cast

from sms_async.testing._protocol import (
    SENDER_ID,
    GatewayView,
    Operation,
    Request,
    Response,
    SimulatedProtocol,
    json_response,
    phone_digits_ok,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sms_async.testing._state import Account, GatewayState, SentMessage

__all__ = ["AUTH_ERROR", "ItecPayProtocol", "ItecPaySendForm", "ItecPayShorthands", "status_letter"]

#: How ItecPay answers a send: one ``messageid``, or a ``messages`` list with one entry per recipient.
ItecPaySendForm = Literal["single", "per_recipient"]

AUTH_ERROR: Final = "Authentication failed: invalid username or password"
MAX_BATCH: Final = 100
_NUMBERS = re.compile(r"\+[1-9][0-9]{6,14}(?:,\+[1-9][0-9]{6,14})*")
#: The fields of a send that are ItecPay's own; any other is recorded on the message.
OWN_FIELDS: Final = frozenset({"username", "password", "recipients", "sender", "message"})
_LETTERS: Final = {"queued": "Q", "processing": "P", "sent": "S"}
_FINAL_LETTERS: Final = {"undelivered": "U", "failed": "E"}
_STAGE_ORDER: Final = ("queued", "processing", "sent")


def _number_ok(number: str) -> bool:
    return number[:1] == "+" and phone_digits_ok(number[1:])


def _error(http_status: int, status: int, description: str) -> Response:
    return json_response(http_status, {"status": status, "description": description})


def status_letter(state: GatewayState, message: SentMessage, now: float) -> str:
    """ItecPay's status letter for ``message`` at time ``now``.

    Q, then P (the second half of the queued delay), then S, then D, U or E.
    A message to several numbers shows the letter of its least advanced
    number while any is on its way; then D when all were delivered, else the
    letter of the first that was not.
    """
    statuses = [state.number_status(message, number, now) for number in message.numbers]
    on_the_way = [s for s in statuses if s in _LETTERS]
    if on_the_way:
        return _LETTERS[min(on_the_way, key=_STAGE_ORDER.index)]
    for status in statuses:
        if status != "delivered":
            return _FINAL_LETTERS[status]
    return "D"


class ItecPayProtocol(SimulatedProtocol):
    """ItecPay's send and status calls.

    Paths: ``send`` (default ``/api/sms/send``) and ``status`` (default
    ``/api/sms/status``), both POST only. Answer forms of a send:
    ``"single"`` (one ``messageid``) or ``"per_recipient"`` (a ``messages``
    list, one entry per recipient).
    """

    name = "itecpay"
    title = "ItecPay"
    operations = frozenset({"itecpay.send", "itecpay.status"})
    default_paths: ClassVar[Mapping[str, str]] = {"send": "/api/sms/send", "status": "/api/sms/status"}
    answer_forms = ("single", "per_recipient")
    shorthands: ClassVar[Mapping[str, str]] = {
        "itecpay_send_form": "answer_form",
        "itecpay_send_path": "paths.send",
        "itecpay_status_path": "paths.status",
    }

    # ---------------------------------------------------------------- reading

    def read(self, request: Request) -> Operation:
        """Parse the JSON body; the operation is named after the path."""
        name = "itecpay.send" if request.path == self.paths["send"] else "itecpay.status"
        operation = Operation(name, self, request)
        if request.method != "POST":
            operation.error = json_response(
                405, {"status": 405, "description": "Method not allowed: use POST"}, (("Allow", "POST"),)
            )
            return operation
        try:
            operation.data = json.loads(request.body)
        except (ValueError, RecursionError):
            operation.error = _error(400, 400, "Malformed JSON")
            return operation
        if not isinstance(operation.data, dict):
            operation.error = _error(400, 400, "Malformed JSON: expected an object")
        return operation

    # ---------------------------------------------------------------- answering

    def auth_failure(self, operation: Operation) -> Response:
        """An HTTP 401 with status 401 in the body."""
        return _error(401, 401, AUTH_ERROR)

    def busy(self, operation: Operation, status: int, headers: tuple[tuple[str, str], ...]) -> Response:
        """A JSON body carrying the same status."""
        return json_response(status, {"status": status, "description": HTTPStatus(status).phrase}, headers)

    def answer(self, operation: Operation, state: GatewayState, *, share: float | None = None) -> Response:
        """Authenticate from the body, then send or look the status up."""
        data = operation.data
        if not isinstance(data, dict):  # read() refuses anything else; this tells the type checker
            return _error(400, 400, "Malformed JSON: expected an object")
        account = state.login(data.get("username"), data.get("password"))
        if account is None:
            return _error(401, 401, AUTH_ERROR)
        if operation.name == "itecpay.send":
            return self._send(state, account, data, share)
        return self._status(state, account, data)

    def _send(  # noqa: PLR0915  (one branch per documented error answer)
        self, state: GatewayState, account: Account, data: dict[str, object], share: float | None
    ) -> Response:
        recipients = data.get("recipients")
        if recipients is None or recipients == "":
            return _error(400, 400, "Missing field: recipients")
        if not isinstance(recipients, str):
            return _error(400, 400, "Invalid field: recipients must be a comma-separated string")
        sender = data.get("sender")
        if not sender:
            return _error(400, 400, "Missing field: sender")
        if not isinstance(sender, str) or SENDER_ID.fullmatch(sender) is None:
            return _error(400, 400, "Invalid sender")
        text = data.get("message")
        if not text:
            return _error(400, 400, "Missing field: message")
        if not isinstance(text, str):
            return _error(400, 400, "Invalid field: message must be a string")
        extra: dict[str, str] | None = None
        if not data.keys() <= OWN_FIELDS:
            extra = {}
            for name, value in data.items():
                if name in OWN_FIELDS:
                    continue
                if not isinstance(value, str):
                    return _error(400, 400, f"Invalid field: {name} must be a string")
                extra[name] = value
        numbers = recipients.split(",")
        if len(numbers) > MAX_BATCH:
            return _error(400, 400, f"Too many recipients: at most {MAX_BATCH}")
        state.received(len(numbers))
        per_recipient = self.answer_form == "per_recipient"
        # One reason per position (None: acceptable), so that a number given twice is answered twice.
        reasons: list[str | None] = []
        if _NUMBERS.fullmatch(recipients) is not None and state.dnd_clear(n[1:] for n in numbers):
            reasons = [None] * len(numbers)
            numbers_to_check: list[str] = []
        else:
            numbers_to_check = numbers
        for number in numbers_to_check:
            if not _number_ok(number):
                if not per_recipient:
                    return _error(400, 400, f"Invalid number: {number}")
                reasons.append("Invalid number")
            elif state.dnd_blocks(number[1:]):
                if state.dnd_action == "refuse" and not per_recipient:
                    return _error(400, 400, f"Number in DND list: {number}")
                reasons.append("Number in DND list")
            else:
                reasons.append(None)
        if share is not None:
            open_positions = [i for i, reason in enumerate(reasons) if reason is None]
            keep = state.keep_share(open_positions, share)
            for i in open_positions:
                if i not in keep:
                    reasons[i] = "Rejected by operator"
        accepted = [n for n, reason in zip(numbers, reasons, strict=True) if reason is None]
        if not state.charge(account, text, len(accepted)):
            return _error(200, 400, "Insufficient balance")
        refused = [n for n, reason in zip(numbers, reasons, strict=True) if reason is not None]
        state.record_send(account, accepted, refused, extra)
        if not per_recipient:
            message_id = state.new_id()
            if accepted:
                state.store(
                    message_id,
                    tuple(accepted),
                    gateway=self.name,
                    text=text,
                    sender=sender,
                    account=account,
                    params=extra,
                )
            return json_response(
                200, {"status": 200, "description": "Message accepted", "messageid": message_id}
            )
        messages: list[dict[str, object]] = []
        for number, reason in zip(numbers, reasons, strict=True):
            if reason is not None:
                messages.append({"recipient": number, "status": 400, "description": reason})
                continue
            message_id = state.new_id()
            if state.store_messages:
                state.store(
                    message_id,
                    (number,),
                    gateway=self.name,
                    text=text,
                    sender=sender,
                    account=account,
                    params=extra,
                )
            messages.append({"recipient": number, "messageid": message_id, "status": 200})
        if not accepted:
            return json_response(
                400, {"status": 400, "description": "No valid recipients", "messages": messages}
            )
        description = (
            "Messages accepted"
            if len(accepted) == len(numbers)
            else f"{len(accepted)} of {len(numbers)} recipients accepted"
        )
        return json_response(200, {"status": 200, "description": description, "messages": messages})

    def _status(self, state: GatewayState, account: Account, data: dict[str, object]) -> Response:
        message_id = data.get("messageid")
        if not message_id or not isinstance(message_id, str):
            return _error(400, 400, "Missing field: messageid")
        message = state.message_for(message_id, self.name, account)
        if message is None:
            return _error(200, 400, "Unknown message id")
        return json_response(
            200,
            {
                "status": 200,
                "description": "OK",
                "messageid": message_id,
                "sms_status": status_letter(state, message, state.now()),
            },
        )


class ItecPayShorthands:
    """``SimulatedGateway``'s ItecPay properties: its URLs and the send answer form."""

    __slots__ = ()

    @property
    def itecpay_url(self: GatewayView) -> str:
        """ItecPay's origin, such as ``http://127.0.0.1:PORT``."""
        return self.url(ItecPayProtocol.name)

    @property
    def itecpay_send_url(self: GatewayView) -> str:
        """ItecPay's full send URL."""
        return self.origin + self.protocol(ItecPayProtocol.name).paths["send"]

    @property
    def itecpay_status_url(self: GatewayView) -> str:
        """ItecPay's full status URL."""
        return self.origin + self.protocol(ItecPayProtocol.name).paths["status"]

    @property
    def itecpay_send_form(self: GatewayView) -> ItecPaySendForm:
        """How ItecPay answers a send: ``"single"`` or ``"per_recipient"``."""
        return cast("ItecPaySendForm", self.answer_form(ItecPayProtocol.name))

    @itecpay_send_form.setter
    def itecpay_send_form(self: GatewayView, value: ItecPaySendForm) -> None:
        self.set_answer_form(ItecPayProtocol.name, value)
