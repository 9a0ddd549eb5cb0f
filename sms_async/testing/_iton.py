"""The simulated ITON gateway: query-string commands on one endpoint (``cmd=sendSMS`` and friends).

What it answers follows ITON's published API and the wire reference in the
manual (``docs/reference/wire.md``): ``sendSMS`` (plain text ``Success Your MessageId is <id>``, or a
JSON map of one id per number), ``account``, ``message_status`` (statuses
spelled as ITON spells them, ``DELIVIRED`` included) and ``check_DNDnumber``;
errors are short plain text in an HTTP 200. Credentials come as ``username``
and ``password`` parameters or as an ``Authorization: ITON <token>`` header.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, ClassVar, Final, Literal, cast

from sms_async.testing._protocol import (
    SENDER_ID,
    TEXT,
    GatewayView,
    Operation,
    Request,
    Response,
    SimulatedProtocol,
    json_response,
    parse_query,
    phone_digits_ok,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from sms_async.testing._state import Account, GatewayState, SentMessage

__all__ = [
    "AUTH_ERROR",
    "ItonProtocol",
    "ItonSendForm",
    "ItonShorthands",
    "format_sending_date",
    "status_word",
]

#: How ITON answers a send: one id for the request as text, or a JSON map of one id per number.
ItonSendForm = Literal["text", "json"]

AUTH_ERROR: Final = "Invalid username or password"
MAX_BATCH: Final = 100
# A whole list of good numbers checked in one go; the per-number check only runs when this fails.
_NUMBERS = re.compile(r"[1-9][0-9]{6,14}(?:,[1-9][0-9]{6,14})*")
_COMMANDS: Final = {
    "sendsms": "iton.sendSMS",
    "account": "iton.account",
    "message_status": "iton.message_status",
    "check_dndnumber": "iton.check_DNDnumber",
}
#: The parameters of a send that are ITON's own; any other is recorded on the message.
OWN_PARAMETERS: Final = frozenset({"username", "password", "cmd", "to", "sender", "message", "uniCode"})
_WORDS: Final = {
    "queued": "QUEUED",
    "processing": "QUEUED",
    "sent": "SENT",
}
_FINAL_WORDS: Final = {"delivered": "DELIVIRED", "undelivered": "UNDELIVERED", "failed": "FAILED"}
_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_sending_date(epoch: float) -> str:
    """Format ``epoch`` the way ITON does: ``Mar 12, 2013 8:13:39 PM`` (UTC)."""
    t = time.gmtime(epoch)
    hour = t.tm_hour % 12 or 12
    half = "AM" if t.tm_hour < 12 else "PM"
    return f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday}, {t.tm_year} {hour}:{t.tm_min:02d}:{t.tm_sec:02d} {half}"


def _plain(text: str) -> Response:
    """ITON answers everything but JSON look-ups as plain text in an HTTP 200, errors included."""
    return Response(200, TEXT, text.encode())


class ItonProtocol(SimulatedProtocol):
    """ITON's command endpoint.

    Paths: ``endpoint`` (default ``/ItonSMSAPI/smsService/api/``, served with
    and without its trailing slash). Answer forms of a send: ``"text"`` (one
    id for the request) or ``"json"`` (a map of one id per accepted number).
    """

    name = "iton"
    title = "ITON"
    operations = frozenset({*_COMMANDS.values(), "iton.unknown"})
    default_paths: ClassVar[Mapping[str, str]] = {"endpoint": "/ItonSMSAPI/smsService/api/"}
    answer_forms = ("text", "json")
    shorthands: ClassVar[Mapping[str, str]] = {"iton_send_form": "answer_form", "iton_path": "paths.endpoint"}

    def served_paths(self) -> Iterable[str]:
        """The endpoint, with and without its trailing slash."""
        path = self.paths["endpoint"]
        return {path, path.rstrip("/") or "/"}

    def base_url(self, origin: str) -> str:
        """The command endpoint's full URL, as ``Iton(base_url=...)`` takes it."""
        return origin + self.paths["endpoint"]

    # ---------------------------------------------------------------- reading

    def read(self, request: Request) -> Operation:
        """Decode the query (and a form-encoded POST body); the operation is named after ``cmd``."""
        operation = Operation("iton.unknown", self, request)
        if request.method not in {"GET", "POST"}:
            operation.error = Response(405, TEXT, b"Method Not Allowed", (("Allow", "GET, POST"),))
            return operation
        try:
            pairs = parse_query(request.query)
            content_type = request.headers.get("content-type", "")
            if request.method == "POST" and content_type.startswith("application/x-www-form-urlencoded"):
                pairs += parse_query(request.body.decode())
        except UnicodeDecodeError:
            operation.error = _plain("Invalid request: parameters must be UTF-8")
            return operation
        params = dict(pairs)
        if len(params) != len(pairs):
            seen: set[str] = set()
            for name, _ in pairs:
                if name in seen:
                    operation.error = _plain(f"Invalid request: repeated parameter {name}")
                    break
                seen.add(name)
        operation.params = params
        command = _COMMANDS.get(params.get("cmd", "").lower())
        if command is not None:
            operation.name = command
        return operation

    # ---------------------------------------------------------------- answering

    def auth_failure(self, operation: Operation) -> Response:
        """ITON's plain-text refusal, in an HTTP 200."""
        return _plain(AUTH_ERROR)

    def answer(self, operation: Operation, state: GatewayState, *, share: float | None = None) -> Response:
        """Authenticate, then carry out the command."""
        params = operation.params
        account = self._account(operation, state)
        if account is None:
            return _plain(AUTH_ERROR)
        if isinstance(account, Response):
            return account
        name = operation.name
        if name == "iton.sendSMS":
            return self._send(state, account, params, share)
        if name == "iton.account":
            return _plain(f"Remaining_Credits: {account.credits}")
        if name == "iton.message_status":
            return self._status(state, account, params)
        if name == "iton.check_DNDnumber":
            return self._dnd(state, params)
        command = params.get("cmd")
        if not command:
            return _plain("Invalid request: missing parameter cmd")
        return _plain(f"Invalid request: unknown command {command}")

    @staticmethod
    def _account(operation: Operation, state: GatewayState) -> Account | Response | None:
        header = operation.request.headers.get("authorization")
        params = operation.params
        if header is not None:
            if "username" in params or "password" in params:
                return _plain("Invalid request: give either an Authorization header or username and password")
            scheme, _, token = header.strip().partition(" ")
            if scheme.lower() != "iton":
                return None
            return state.account_for_token(token.strip())
        return state.login(params.get("username"), params.get("password"))

    def _send(
        self, state: GatewayState, account: Account, params: dict[str, str], share: float | None
    ) -> Response:
        to = params.get("to")
        if not to:
            return _plain("Invalid request: missing parameter to")
        text = params.get("message")
        if not text:
            return _plain("Invalid request: missing parameter message")
        sender = params.get("sender")
        if not sender:
            return _plain("Invalid request: missing parameter sender")
        if SENDER_ID.fullmatch(sender) is None:
            return _plain("Invalid sender id")
        unicode = params.get("uniCode")
        if unicode is not None and unicode not in {"0", "2"}:
            return _plain("Invalid request: uniCode must be 0 or 2")
        numbers = to.split(",")
        if len(numbers) > MAX_BATCH:
            return _plain(f"Too many numbers: at most {MAX_BATCH}")
        state.received(len(numbers))
        json_form = self.answer_form == "json"
        accepted: list[str] = []
        refused: list[str] = []
        if _NUMBERS.fullmatch(to) is not None and state.dnd_clear(numbers):
            accepted = numbers
            numbers = []
        for number in numbers:
            if not phone_digits_ok(number):
                if not json_form:
                    return _plain(f"Invalid number: {number}")
                refused.append(number)
            elif state.dnd_blocks(number):
                if state.dnd_action == "refuse" and not json_form:
                    return _plain(f"DND number: {number}")
                refused.append(number)
            else:
                accepted.append(number)
        if share is not None:
            keep = state.keep_share(list(range(len(accepted))), share)
            refused += [n for i, n in enumerate(accepted) if i not in keep]
            accepted = [n for i, n in enumerate(accepted) if i in keep]
        if not state.charge(account, text, len(accepted)):
            return _plain("Insufficient credits")
        extra = None if params.keys() <= OWN_PARAMETERS else self._extra(params)
        state.record_send(account, accepted, refused, extra)
        if json_form:
            ids = state.new_ids(len(accepted))
            if state.store_messages:
                for message_id, number in zip(ids, accepted, strict=True):
                    state.store(
                        message_id,
                        (number,),
                        gateway=self.name,
                        text=text,
                        sender=sender,
                        account=account,
                        unicode=unicode,
                        params=extra,
                    )
            if not ids:
                return Response(200, "application/json", b"{}")
            # Ids are hex and accepted numbers digits, so nothing needs escaping.
            body = '{"' + '","'.join(map('":"'.join, zip(ids, accepted, strict=True))) + '"}'
            return Response(200, "application/json", body.encode())
        message_id = state.new_id()
        if accepted and state.store_messages:
            state.store(
                message_id,
                tuple(accepted),
                gateway=self.name,
                text=text,
                sender=sender,
                account=account,
                unicode=unicode,
                params=extra,
            )
        return _plain(f"Success Your MessageId is {message_id}")

    @staticmethod
    def _extra(params: dict[str, str]) -> dict[str, str]:
        return {name: value for name, value in params.items() if name not in OWN_PARAMETERS}

    def _status(self, state: GatewayState, account: Account, params: dict[str, str]) -> Response:
        ids = params.get("ids")
        if not ids:
            return _plain("Invalid request: missing parameter ids")
        wanted = ids.split(",")
        if len(wanted) > MAX_BATCH:
            return _plain(f"Too many ids: at most {MAX_BATCH}")
        now = state.now()
        answer: dict[str, object] = {}
        for message_id in wanted:
            message = state.message_for(message_id, self.name, account)
            if message is None:
                continue
            answer[message_id] = {
                "phoneNumberWithRespectiveStatus": {
                    number: status_word(state, message, number, now) for number in message.numbers
                },
                "message": message.text,
                "sender_Id": message.sender,
                "user_Id": message.username,
                "sending_Date": format_sending_date(message.sent_at),
            }
        return json_response(200, answer)

    @staticmethod
    def _dnd(state: GatewayState, params: dict[str, str]) -> Response:
        numbers = params.get("phoneNumbers")
        if not numbers:
            return _plain("Invalid request: missing parameter phoneNumbers")
        dnd = state.dnd
        return json_response(200, {n: n.removeprefix("+") in dnd for n in numbers.split(",")})


def status_word(state: GatewayState, message: SentMessage, number: str, now: float) -> str:
    """ITON's status word for ``number`` of ``message`` at time ``now``."""
    status = state.number_status(message, number, now)
    return _WORDS[status] if status in _WORDS else _FINAL_WORDS[status]


class ItonShorthands:
    """``SimulatedGateway``'s ITON properties: the endpoint's URL and the send answer form."""

    __slots__ = ()

    @property
    def iton_url(self: GatewayView) -> str:
        """ITON's command endpoint, such as ``http://127.0.0.1:PORT/ItonSMSAPI/smsService/api/``."""
        return self.url(ItonProtocol.name)

    @property
    def iton_send_form(self: GatewayView) -> ItonSendForm:
        """How ITON answers a send: ``"text"`` or ``"json"``."""
        return cast("ItonSendForm", self.answer_form(ItonProtocol.name))

    @iton_send_form.setter
    def iton_send_form(self: GatewayView, value: ItonSendForm) -> None:
        self.set_answer_form(ItonProtocol.name, value)
