"""The simulated gateways' behaviour: accounts, credits, messages and both wire protocols.

This module knows nothing of sockets: the HTTP layer hands it a parsed
:class:`Request` and writes the :class:`Response` it gets back. Everything
here runs on the server's event loop thread.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import secrets
import time
from http import HTTPStatus
from typing import TYPE_CHECKING, Final, Literal, NamedTuple
from urllib.parse import unquote

import attrs

from sms_async._text import analyse

if TYPE_CHECKING:
    import random
    from collections.abc import Iterable

    from sms_async.testing._stats import GatewayStats

__all__ = [
    "Call",
    "Core",
    "DndAction",
    "ItecPaySendForm",
    "ItonSendForm",
    "Request",
    "Response",
    "SentMessage",
]

ItonSendForm = Literal["text", "json"]
ItecPaySendForm = Literal["single", "per_recipient"]
DndAction = Literal["allow", "omit", "refuse"]

MAX_BATCH: Final = 100
_TEXT: Final = "text/plain; charset=utf-8"
_JSON: Final = "application/json"
_HTML: Final = "text/html; charset=utf-8"
# A whole list of good numbers checked in one go; the per-number check only runs when this fails.
_ITON_NUMBERS = re.compile(r"[1-9][0-9]{6,14}(?:,[1-9][0-9]{6,14})*")
_ITECPAY_NUMBERS = re.compile(r"\+[1-9][0-9]{6,14}(?:,\+[1-9][0-9]{6,14})*")
_SENDER = re.compile(r"(?=[^A-Za-z]*[A-Za-z])[A-Za-z0-9 ]{1,11}|[0-9]{1,15}")
_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ITON_COMMANDS: Final = {
    "sendsms": "sendSMS",
    "account": "account",
    "message_status": "message_status",
    "check_dndnumber": "check_DNDnumber",
}
_HEX3: Final = tuple(f"{n:03x}" for n in range(4096))
_ITON_FINAL: Final = ("DELIVIRED", "UNDELIVERED", "FAILED")
_ITECPAY_FINAL: Final = ("D", "U", "E")
ITON_AUTH_ERROR: Final = "Invalid username or password"
ITECPAY_AUTH_ERROR: Final = "Authentication failed: invalid username or password"


class Request:
    """One HTTP request as the HTTP layer read it."""

    __slots__ = ("body", "headers", "keep_alive", "method", "path", "query")

    def __init__(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes, keep_alive: bool
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        #: Header names in lower case.
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive


class Response(NamedTuple):
    """An answer to write: status, content type, body and any extra headers."""

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


class Call:
    """A request read as a gateway operation, before it is carried out."""

    __slots__ = ("authorization", "data", "error", "gateway", "op", "params", "repeated")

    def __init__(self, gateway: str, op: str) -> None:
        self.gateway = gateway
        self.op = op
        self.params: dict[str, str] = {}
        self.repeated: str | None = None
        self.data: object = None
        self.error: Response | None = None
        self.authorization: str | None = None


@attrs.frozen
class SentMessage:
    """A message the simulated gateway accepted, as it stores it.

    Attributes:
        message_id: The id it issued.
        gateway: ``"iton"`` or ``"itecpay"``.
        numbers: The numbers it covers, as they were sent.
        text: The message text, exactly as received.
        sender: The sender id as received.
        username: The account that sent it.
        unicode: ITON's ``uniCode`` parameter as received (``None`` for ItecPay).
        created: When it was accepted, on the gateway's status clock
            (``time.monotonic()`` plus any ``advance_clock()``).
        sent_at: When it was accepted (``time.time()``).
    """

    message_id: str
    gateway: str
    numbers: tuple[str, ...]
    text: str
    sender: str
    username: str
    unicode: str | None
    created: float
    sent_at: float


class Account:
    """One account: credentials and credits."""

    __slots__ = ("credits", "password", "token", "username")

    def __init__(self, username: str, password: str, token: str | None, credits: int) -> None:  # noqa: A002  (the gateway's own word for an account's balance)
        self.username = username
        self.password = password
        self.token = token
        self.credits = credits


@functools.lru_cache(maxsize=128)
def _segments(text: str) -> int:
    return analyse(text).segments


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _text(status: int, text: str) -> Response:
    return Response(status, _TEXT, text.encode())


def _itecpay(http_status: int, body: dict[str, object]) -> Response:
    return Response(http_status, _JSON, _json(body))


def _itecpay_error(http_status: int, status: int, description: str) -> Response:
    return _itecpay(http_status, {"status": status, "description": description})


def parse_query(query: str) -> list[tuple[str, str]]:
    """Split a query string into decoded (name, value) pairs, in order, repeats kept.

    ``+`` is a space and ``%XX`` a UTF-8 byte, as in ``urllib.parse.parse_qsl``
    with blank values kept and strict decoding (a ``UnicodeDecodeError`` for
    bytes that are not UTF-8); only faster, as most pieces need no decoding.
    """
    pairs: list[tuple[str, str]] = []
    for piece in query.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        if "+" in name:
            name = name.replace("+", " ")
        if "%" in name:
            name = unquote(name, errors="strict")
        if "+" in value:
            value = value.replace("+", " ")
        if "%" in value:
            value = unquote(value, errors="strict")
        pairs.append((name, value))
    return pairs


def _iton_number_ok(number: str) -> bool:
    return 7 <= len(number) <= 15 and number.isdigit() and number.isascii() and number[0] != "0"


def _itecpay_number_ok(number: str) -> bool:
    return number[:1] == "+" and _iton_number_ok(number[1:])


def format_sending_date(epoch: float) -> str:
    """Format ``epoch`` the way ITON does: ``Mar 12, 2013 8:13:39 PM`` (UTC)."""
    t = time.gmtime(epoch)
    hour = t.tm_hour % 12 or 12
    half = "AM" if t.tm_hour < 12 else "PM"
    return f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday}, {t.tm_year} {hour}:{t.tm_min:02d}:{t.tm_sec:02d} {half}"


class Core:
    """Both gateways' state and protocol logic."""

    def __init__(
        self,
        *,
        stats: GatewayStats,
        rng: random.Random,
        seed: int,
        iton_path: str,
        itecpay_send_path: str,
        itecpay_status_path: str,
        iton_send_form: ItonSendForm,
        itecpay_send_form: ItecPaySendForm,
        dnd_numbers: Iterable[str],
        dnd_action: DndAction,
        status_delays: tuple[float, float],
        undelivered_rate: float,
        failed_rate: float,
        store_messages: bool,
        track_numbers: bool,
    ) -> None:
        self.stats = stats
        self.rng = rng
        self.seed = seed
        self.iton_path = iton_path
        self._iton_paths = {iton_path, iton_path.rstrip("/") or "/"}
        self.itecpay_send_path = itecpay_send_path
        self.itecpay_status_path = itecpay_status_path
        self.iton_send_form: ItonSendForm = iton_send_form
        self.itecpay_send_form: ItecPaySendForm = itecpay_send_form
        self.dnd: set[str] = {n.removeprefix("+") for n in dnd_numbers}
        self.dnd_action: DndAction = dnd_action
        self.status_delays = status_delays
        self.undelivered_rate = undelivered_rate
        self.failed_rate = failed_rate
        self.store_messages = store_messages
        self.track_numbers = track_numbers
        self.accounts: dict[str, Account] = {}
        self.tokens: dict[str, Account] = {}
        self.messages: dict[str, SentMessage] = {}
        self._id_prefix = f"{int(time.time()) & 0xFFFFFFFF:08x}{secrets.token_hex(3)}"
        self._next_id = 1
        #: Added to ``time.monotonic()`` for message ages: lets tests move statuses on without waiting.
        self.clock_offset = 0.0

    # ---------------------------------------------------------------- accounts

    def add_account(self, username: str, password: str, token: str | None, credits: int) -> None:  # noqa: A002  (as above)
        """Create or replace an account."""
        old = self.accounts.pop(username, None)
        if old is not None and old.token is not None:
            self.tokens.pop(old.token, None)
        account = Account(username, password, token, credits)
        self.accounts[username] = account
        if token is not None:
            self.tokens[token] = account

    def _login(self, username: object, password: object) -> Account | None:
        if not isinstance(username, str) or not isinstance(password, str):
            return None
        account = self.accounts.get(username)
        if account is None or not secrets.compare_digest(account.password.encode(), password.encode()):
            return None
        return account

    # ---------------------------------------------------------------- reading

    def prepare(self, request: Request) -> Call:
        """Read ``request`` as a gateway operation (cheap; nothing is carried out)."""
        path = request.path
        if path in self._iton_paths:
            return self._prepare_iton(request)
        if path == self.itecpay_send_path:
            return self._prepare_itecpay(request, "itecpay.send")
        if path == self.itecpay_status_path:
            return self._prepare_itecpay(request, "itecpay.status")
        call = Call("http", "http.other")
        call.error = _text(404, "Not Found")
        return call

    def _prepare_iton(self, request: Request) -> Call:
        call = Call("iton", "iton.unknown")
        if request.method not in {"GET", "POST"}:
            call.error = Response(405, _TEXT, b"Method Not Allowed", (("Allow", "GET, POST"),))
            return call
        try:
            pairs = parse_query(request.query)
            content_type = request.headers.get("content-type", "")
            if request.method == "POST" and content_type.startswith("application/x-www-form-urlencoded"):
                pairs += parse_query(request.body.decode())
        except UnicodeDecodeError:
            call.error = _text(200, "Invalid request: parameters must be UTF-8")
            return call
        params = dict(pairs)
        if len(params) != len(pairs):
            seen: set[str] = set()
            for name, _ in pairs:
                if name in seen:
                    call.repeated = name
                    break
                seen.add(name)
        call.params = params
        call.authorization = request.headers.get("authorization")
        command = _ITON_COMMANDS.get(params.get("cmd", "").lower())
        if command is not None:
            call.op = f"iton.{command}"
        return call

    def _prepare_itecpay(self, request: Request, op: str) -> Call:
        call = Call("itecpay", op)
        if request.method != "POST":
            call.error = Response(
                405,
                _JSON,
                _json({"status": 405, "description": "Method not allowed: use POST"}),
                (("Allow", "POST"),),
            )
            return call
        try:
            call.data = json.loads(request.body)
        except (ValueError, RecursionError):
            call.error = _itecpay_error(400, 400, "Malformed JSON")
            return call
        if not isinstance(call.data, dict):
            call.error = _itecpay_error(400, 400, "Malformed JSON: expected an object")
        return call

    # ---------------------------------------------------------------- answering

    def execute(self, call: Call, *, share: float | None = None) -> Response:
        """Carry ``call`` out and answer it; ``share`` accepts only part of a send's numbers."""
        if call.error is not None:
            return call.error
        if call.gateway == "iton":
            return self._iton(call, share)
        if call.op == "itecpay.send":
            return self._itecpay_send(call, share)
        return self._itecpay_status(call)

    def auth_failure(self, call: Call) -> Response:
        """The answer the gateway gives to bad credentials."""
        if call.gateway == "iton":
            return _text(200, ITON_AUTH_ERROR)
        if call.gateway == "itecpay":
            return _itecpay_error(401, 401, ITECPAY_AUTH_ERROR)
        return _text(401, "Unauthorized")

    def busy(self, call: Call, status: int, headers: tuple[tuple[str, str], ...]) -> Response:
        """A 429 or 503 answer, refused before processing."""
        phrase = HTTPStatus(status).phrase
        if call.gateway == "itecpay":
            return Response(status, _JSON, _json({"status": status, "description": phrase}), headers)
        return Response(status, _TEXT, phrase.encode(), headers)

    # ---------------------------------------------------------------- ITON

    def _iton(self, call: Call, share: float | None) -> Response:
        params = call.params
        if call.repeated is not None:
            return _text(200, f"Invalid request: repeated parameter {call.repeated}")
        account = self._iton_account(call)
        if account is None:
            return _text(200, ITON_AUTH_ERROR)
        if isinstance(account, Response):
            return account
        op = call.op
        if op == "iton.sendSMS":
            return self._iton_send(account, params, share)
        if op == "iton.account":
            return _text(200, f"Remaining_Credits: {account.credits}")
        if op == "iton.message_status":
            return self._iton_status(account, params)
        if op == "iton.check_DNDnumber":
            return self._iton_dnd(params)
        command = params.get("cmd")
        if not command:
            return _text(200, "Invalid request: missing parameter cmd")
        return _text(200, f"Invalid request: unknown command {command}")

    def _iton_account(self, call: Call) -> Account | Response | None:
        header = call.authorization
        params = call.params
        if header is not None:
            if "username" in params or "password" in params:
                return _text(
                    200, "Invalid request: give either an Authorization header or username and password"
                )
            scheme, _, token = header.strip().partition(" ")
            if scheme.lower() != "iton":
                return None
            return self.tokens.get(token.strip())
        return self._login(params.get("username"), params.get("password"))

    def _iton_send(self, account: Account, params: dict[str, str], share: float | None) -> Response:
        to = params.get("to")
        if not to:
            return _text(200, "Invalid request: missing parameter to")
        text = params.get("message")
        if not text:
            return _text(200, "Invalid request: missing parameter message")
        sender = params.get("sender")
        if not sender:
            return _text(200, "Invalid request: missing parameter sender")
        if _SENDER.fullmatch(sender) is None:
            return _text(200, "Invalid sender id")
        unicode = params.get("uniCode")
        if unicode is not None and unicode not in {"0", "2"}:
            return _text(200, "Invalid request: uniCode must be 0 or 2")
        numbers = to.split(",")
        if len(numbers) > MAX_BATCH:
            return _text(200, f"Too many numbers: at most {MAX_BATCH}")
        json_form = self.iton_send_form == "json"
        accepted: list[str] = []
        refused: list[str] = []
        dnd = self.dnd
        dnd_action = self.dnd_action
        if _ITON_NUMBERS.fullmatch(to) is not None and (
            dnd_action == "allow" or not dnd or dnd.isdisjoint(numbers)
        ):
            accepted = numbers
            numbers = []
        for number in numbers:
            if not _iton_number_ok(number):
                if not json_form:
                    return _text(200, f"Invalid number: {number}")
                refused.append(number)
            elif dnd_action != "allow" and number in dnd:
                if dnd_action == "refuse" and not json_form:
                    return _text(200, f"DND number: {number}")
                refused.append(number)
            else:
                accepted.append(number)
        if share is not None:
            accepted, left_out = self._split_share(accepted, share)
            refused += left_out
        if accepted:
            needed = _segments(text) * len(accepted)
            if account.credits < needed:
                return _text(200, "Insufficient credits")
            account.credits -= needed
        self._count(accepted, refused)
        if json_form:
            ids = self._new_ids(len(accepted))
            if self.store_messages:
                for message_id, number in zip(ids, accepted, strict=True):
                    self._store(
                        message_id,
                        (number,),
                        gateway="iton",
                        text=text,
                        sender=sender,
                        account=account,
                        unicode=unicode,
                    )
            if not ids:
                return Response(200, _JSON, b"{}")
            # Ids are hex and accepted numbers digits, so nothing needs escaping.
            body = '{"' + '","'.join(map('":"'.join, zip(ids, accepted, strict=True))) + '"}'
            return Response(200, _JSON, body.encode())
        message_id = self._new_id()
        if self.store_messages and accepted:
            self._store(
                message_id,
                tuple(accepted),
                gateway="iton",
                text=text,
                sender=sender,
                account=account,
                unicode=unicode,
            )
        return _text(200, f"Success Your MessageId is {message_id}")

    def _iton_status(self, account: Account, params: dict[str, str]) -> Response:
        ids = params.get("ids")
        if not ids:
            return _text(200, "Invalid request: missing parameter ids")
        wanted = ids.split(",")
        if len(wanted) > MAX_BATCH:
            return _text(200, f"Too many ids: at most {MAX_BATCH}")
        now = self.now()
        answer: dict[str, object] = {}
        for message_id in wanted:
            message = self.messages.get(message_id)
            if message is None or message.gateway != "iton" or message.username != account.username:
                continue
            answer[message_id] = {
                "phoneNumberWithRespectiveStatus": {
                    number: self.iton_status_word(message, number, now) for number in message.numbers
                },
                "message": message.text,
                "sender_Id": message.sender,
                "user_Id": message.username,
                "sending_Date": format_sending_date(message.sent_at),
            }
        return Response(200, _JSON, _json(answer))

    def _iton_dnd(self, params: dict[str, str]) -> Response:
        numbers = params.get("phoneNumbers")
        if not numbers:
            return _text(200, "Invalid request: missing parameter phoneNumbers")
        dnd = self.dnd
        return Response(200, _JSON, _json({n: n.removeprefix("+") in dnd for n in numbers.split(",")}))

    # ---------------------------------------------------------------- ItecPay

    def _itecpay_send(  # noqa: PLR0915  (one branch per documented error answer)
        self, call: Call, share: float | None
    ) -> Response:
        data = call.data
        if not isinstance(data, dict):  # prepare() refuses anything else; this tells the type checker
            return _itecpay_error(400, 400, "Malformed JSON: expected an object")
        account = self._login(data.get("username"), data.get("password"))
        if account is None:
            return _itecpay_error(401, 401, ITECPAY_AUTH_ERROR)
        recipients = data.get("recipients")
        if recipients is None or recipients == "":
            return _itecpay_error(400, 400, "Missing field: recipients")
        if not isinstance(recipients, str):
            return _itecpay_error(400, 400, "Invalid field: recipients must be a comma-separated string")
        sender = data.get("sender")
        if not sender:
            return _itecpay_error(400, 400, "Missing field: sender")
        if not isinstance(sender, str) or _SENDER.fullmatch(sender) is None:
            return _itecpay_error(400, 400, "Invalid sender")
        text = data.get("message")
        if not text:
            return _itecpay_error(400, 400, "Missing field: message")
        if not isinstance(text, str):
            return _itecpay_error(400, 400, "Invalid field: message must be a string")
        numbers = recipients.split(",")
        if len(numbers) > MAX_BATCH:
            return _itecpay_error(400, 400, f"Too many recipients: at most {MAX_BATCH}")
        per_recipient = self.itecpay_send_form == "per_recipient"
        # One reason per position (None: acceptable), so that a number given twice is answered twice.
        reasons: list[str | None] = []
        dnd = self.dnd
        dnd_action = self.dnd_action
        if _ITECPAY_NUMBERS.fullmatch(recipients) is not None and (
            dnd_action == "allow" or not dnd or dnd.isdisjoint(n[1:] for n in numbers)
        ):
            reasons = [None] * len(numbers)
            numbers_to_check: list[str] = []
        else:
            numbers_to_check = numbers
        for number in numbers_to_check:
            if not _itecpay_number_ok(number):
                if not per_recipient:
                    return _itecpay_error(400, 400, f"Invalid number: {number}")
                reasons.append("Invalid number")
            elif dnd_action != "allow" and number[1:] in dnd:
                if dnd_action == "refuse" and not per_recipient:
                    return _itecpay_error(400, 400, f"Number in DND list: {number}")
                reasons.append("Number in DND list")
            else:
                reasons.append(None)
        if share is not None:
            open_positions = [i for i, reason in enumerate(reasons) if reason is None]
            keep = set(self.rng.sample(open_positions, int(len(open_positions) * share)))
            for i in open_positions:
                if i not in keep:
                    reasons[i] = "Rejected by operator"
        accepted = [n for n, reason in zip(numbers, reasons, strict=True) if reason is None]
        if accepted:
            needed = _segments(text) * len(accepted)
            if account.credits < needed:
                return _itecpay_error(200, 400, "Insufficient balance")
            account.credits -= needed
        self._count(accepted, [n for n, reason in zip(numbers, reasons, strict=True) if reason is not None])
        if not per_recipient:
            message_id = self._new_id()
            if self.store_messages and accepted:
                self._store(
                    message_id,
                    tuple(accepted),
                    gateway="itecpay",
                    text=text,
                    sender=sender,
                    account=account,
                    unicode=None,
                )
            return _itecpay(200, {"status": 200, "description": "Message accepted", "messageid": message_id})
        messages: list[dict[str, object]] = []
        for number, reason in zip(numbers, reasons, strict=True):
            if reason is not None:
                messages.append({"recipient": number, "status": 400, "description": reason})
                continue
            message_id = self._new_id()
            if self.store_messages:
                self._store(
                    message_id,
                    (number,),
                    gateway="itecpay",
                    text=text,
                    sender=sender,
                    account=account,
                    unicode=None,
                )
            messages.append({"recipient": number, "messageid": message_id, "status": 200})
        if not accepted:
            return _itecpay(400, {"status": 400, "description": "No valid recipients", "messages": messages})
        description = (
            "Messages accepted"
            if len(accepted) == len(numbers)
            else f"{len(accepted)} of {len(numbers)} recipients accepted"
        )
        return _itecpay(200, {"status": 200, "description": description, "messages": messages})

    def _itecpay_status(self, call: Call) -> Response:
        data = call.data
        if not isinstance(data, dict):  # prepare() refuses anything else; this tells the type checker
            return _itecpay_error(400, 400, "Malformed JSON: expected an object")
        account = self._login(data.get("username"), data.get("password"))
        if account is None:
            return _itecpay_error(401, 401, ITECPAY_AUTH_ERROR)
        message_id = data.get("messageid")
        if not message_id or not isinstance(message_id, str):
            return _itecpay_error(400, 400, "Missing field: messageid")
        message = self.messages.get(message_id)
        if message is None or message.gateway != "itecpay" or message.username != account.username:
            return _itecpay_error(200, 400, "Unknown message id")
        return _itecpay(
            200,
            {
                "status": 200,
                "description": "OK",
                "messageid": message_id,
                "sms_status": self.itecpay_letter(message, self.now()),
            },
        )

    # ---------------------------------------------------------------- messages

    def now(self) -> float:
        """The clock message ages are measured on."""
        return time.monotonic() + self.clock_offset

    def _new_id(self) -> str:
        self._next_id += 1
        return f"{self._id_prefix}{self._next_id - 1:010x}"

    def _new_ids(self, count: int) -> list[str]:
        # Consecutive ids share all but their last three hex digits, which come
        # from a table: several times faster than formatting each id.
        ids: list[str] = []
        n = self._next_id
        end = n + count
        self._next_id = end
        while n < end:
            high, low = divmod(n, 4096)
            take = min(4096 - low, end - n)
            ids += map(f"{self._id_prefix}{high:07x}".__add__, _HEX3[low : low + take])
            n += take
        return ids

    def _store(
        self,
        message_id: str,
        numbers: tuple[str, ...],
        *,
        gateway: str,
        text: str,
        sender: str,
        account: Account,
        unicode: str | None,
    ) -> None:
        self.messages[message_id] = SentMessage(
            message_id=message_id,
            gateway=gateway,
            numbers=numbers,
            text=text,
            sender=sender,
            username=account.username,
            unicode=unicode,
            created=self.now(),
            sent_at=time.time(),
        )

    def _count(self, accepted: list[str], refused: list[str]) -> None:
        if not self.track_numbers:
            return
        self.stats.numbers.update(accepted)
        if refused:
            self.stats.numbers_refused.update(refused)

    def _split_share(self, numbers: list[str], share: float) -> tuple[list[str], list[str]]:
        keep = set(self.rng.sample(range(len(numbers)), int(len(numbers) * share)))
        return (
            [n for i, n in enumerate(numbers) if i in keep],
            [n for i, n in enumerate(numbers) if i not in keep],
        )

    def _outcome(self, message_id: str, number: str) -> int:
        """0 delivered, 1 undelivered, 2 failed: fixed per message and number by the seed."""
        digest = hashlib.blake2b(f"{self.seed}:{message_id}:{number}".encode(), digest_size=8).digest()
        draw = int.from_bytes(digest, "big") / 2**64
        if draw < self.undelivered_rate:
            return 1
        if draw < self.undelivered_rate + self.failed_rate:
            return 2
        return 0

    def iton_status_word(self, message: SentMessage, number: str, now: float) -> str:
        """ITON's status word for ``number`` of ``message`` at time ``now``."""
        queued, sent = self.status_delays
        age = now - message.created
        if age < queued:
            return "QUEUED"
        if age < queued + sent:
            return "SENT"
        return _ITON_FINAL[self._outcome(message.message_id, number)]

    def itecpay_letter(self, message: SentMessage, now: float) -> str:
        """ItecPay's status letter for ``message`` at time ``now``.

        Q, then P (the second half of the queued delay), then S, then D, U or
        E. A message to several numbers is D when all were delivered, else
        the letter of the first that was not.
        """
        queued, sent = self.status_delays
        age = now - message.created
        if age < queued / 2:
            return "Q"
        if age < queued:
            return "P"
        if age < queued + sent:
            return "S"
        for number in message.numbers:
            outcome = self._outcome(message.message_id, number)
            if outcome:
                return _ITECPAY_FINAL[outcome]
        return "D"
