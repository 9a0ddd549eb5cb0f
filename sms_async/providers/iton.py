"""ITON (sms.iton.in): query-string commands on one URL.

Commands: ``sendSMS`` (up to 100 numbers, digits without ``+``), ``account``,
``message_status`` (up to 100 ids) and ``check_DNDnumber``. Errors come as
short plain text in an HTTP 200; the documentation lists none, so the words
decide (see :func:`~sms_async.providers._base.classify_text_error`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar, Self
from urllib.parse import quote

from sms_async._exceptions import AmbiguousResponseError, ConfigurationError, GatewayError, RejectedError
from sms_async._message import Message
from sms_async._models import DeliveryReport, DeliveryStatus
from sms_async._redact import keep_secrets
from sms_async._wire import Origin, WireRequest, WireResponse
from sms_async.providers._base import (
    INVALID_JSON,
    Capabilities,
    SendAnswer,
    body_excerpt,
    check_credential,
    check_params,
    classify_http,
    classify_text_error,
    decimal_or_none,
    load_json,
    setting,
)

__all__ = ["ITON_STATUS_WORDS", "Iton"]

DEFAULT_BASE_URL = "https://sms.iton.in/ItonSMSAPI/smsService/api/"

# The query parameters ITON's commands use: extra parameters may not take these names.
_OWN_PARAMS = frozenset(
    {"username", "password", "cmd", "to", "sender", "message", "unicode", "ids", "phonenumbers"}
)

_SUCCESS = re.compile(
    r"^\s*success\b.*?message\s*id\s*(?:is\b|:)\s*([A-Za-z0-9_\-]+)\s*$", re.IGNORECASE | re.DOTALL
)
# The documented success answer exactly as the gateway writes it: read without
# decoding, stripping or the general pattern (the usual answer, on the hot path).
_EXACT_SUCCESS = re.compile(rb"Success Your MessageId is ([A-Za-z0-9_\-]{1,128})")
_JSON_SCALAR_START = frozenset('"-0123456789ntf')
_CREDITS = re.compile(r"remaining[_ ]credits\s*[:=]\s*([-+]?\d+(?:\.\d+)?)", re.IGNORECASE)

#: Every status word ITON is known to use, spelled as the gateway spells it.
ITON_STATUS_WORDS: dict[str, DeliveryStatus] = {
    "DELIVIRED": DeliveryStatus.DELIVERED,
    "DELIVERED": DeliveryStatus.DELIVERED,
    "DELIVRD": DeliveryStatus.DELIVERED,
    "UNDELIVERED": DeliveryStatus.UNDELIVERED,
    "UNDELIVIRED": DeliveryStatus.UNDELIVERED,
    "UNDELIV": DeliveryStatus.UNDELIVERED,
    "EXPIRED": DeliveryStatus.UNDELIVERED,
    "FAILED": DeliveryStatus.FAILED,
    "FAIL": DeliveryStatus.FAILED,
    "REJECTED": DeliveryStatus.FAILED,
    "REJECTD": DeliveryStatus.FAILED,
    "ERROR": DeliveryStatus.FAILED,
    "SENT": DeliveryStatus.SENT,
    "SUBMITTED": DeliveryStatus.SENT,
    "QUEUED": DeliveryStatus.QUEUED,
    "PENDING": DeliveryStatus.QUEUED,
    "PROCESSING": DeliveryStatus.PROCESSING,
}


def _q(value: str) -> str:
    return quote(value, safe="")


def _looks_like_html(text: str) -> bool:
    head = text.lstrip()[:200].lower()
    return head.startswith("<") or "<html" in head


def _split_numbers(value: object) -> list[str] | None:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value]
    return None


class _PreparedIton:
    __slots__ = ("_headers", "_prefix")

    def __init__(self, prefix: str, headers: tuple[tuple[str, str], ...]) -> None:
        self._prefix = prefix
        self._headers = headers

    def build(self, numbers: Sequence[str]) -> WireRequest:
        # E.164 holds only '+' and digits: one join, then every '+' dropped.
        to = ",".join(numbers).replace("+", "")
        return WireRequest("GET", self._prefix + to, self._headers, b"", "send")


class Iton:
    """The ITON gateway.

    Authenticate with ``username`` and ``password`` (sent in the query
    string, as the gateway requires) or with an API ``token`` (sent as
    ``Authorization: ITON <token>``). ``base_url`` is the command endpoint.
    ``params`` are extra query parameters for every send (such as India's DLT
    ``templateid`` and ``entityid``), under those given to each send.
    """

    name: ClassVar[str] = "iton"
    capabilities: ClassVar[Capabilities] = Capabilities(status=True, balance=True, dnd=True, token_auth=True)
    settings_keys: ClassVar[frozenset[str]] = frozenset(
        {"username", "password", "token", "base_url", "allow_insecure_http", "params"}
    )
    max_batch = 100
    max_status_batch = 100
    max_dnd_batch = 100

    def __init__(
        self,
        username: str | None = None,
        password: str | None = None,
        *,
        token: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        allow_insecure_http: bool = False,
        params: Mapping[str, str] | None = None,
    ) -> None:
        if token is not None and password is not None:
            raise ConfigurationError("Iton takes password= or token=, not both")
        if token is None and (not username or not password):
            raise ConfigurationError(
                "Iton needs username= and password=, or token= (the Web API token); "
                + ("the password is missing" if username else "the username is missing")
            )
        if token is not None and not token.strip():
            raise ConfigurationError("Iton token= is empty")
        check_credential("token", token)
        check_credential("username", username)
        self.origin = Origin.parse(base_url, allow_insecure_http=allow_insecure_http)
        keep_secrets(self, password, token)
        self.params = check_params(self, "Iton", _OWN_PARAMS, params)
        self.username = username
        self._password = password
        self._token = token
        if token is not None:
            # The Web API token replaces the password; the username, if given, still names the account.
            user = f"username={_q(username)}&" if username else ""
            self._auth_query = user
            self._headers: tuple[tuple[str, str], ...] = (("Authorization", f"ITON {token}"),)
        else:
            self._auth_query = f"username={_q(username or '')}&password={_q(password or '')}&"
            self._headers = ()
        self._command_prefix = f"{self.origin.base_path}?{self._auth_query}cmd="

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Self:
        """Build from settings: username and password, or token; base_url, params, allow_insecure_http."""
        params = settings.get("params")
        return cls(
            setting(settings, "username"),
            setting(settings, "password"),
            token=setting(settings, "token"),
            base_url=setting(settings, "base_url") or DEFAULT_BASE_URL,
            allow_insecure_http=bool(settings.get("allow_insecure_http", False)),
            params=params or None,
        )

    def __repr__(self) -> str:
        who = f"username={self.username!r}" if self.username else "token=[REDACTED]"
        return f"Iton({who}, base_url={self.origin.url!r})"

    def _request(self, command: str, params: str = "", operation: str = "send") -> WireRequest:
        return WireRequest("GET", f"{self._command_prefix}{command}{params}", self._headers, b"", operation)

    # -- send -------------------------------------------------------------

    def prepare_send(self, message: Message, params: Mapping[str, str] | None = None) -> _PreparedIton:
        """Build the constant part of the query string once per campaign (or per text)."""
        unicode_flag = "2" if message.is_unicode else "0"
        extra = check_params(self, "Iton", _OWN_PARAMS, self.params, params)
        extras = "".join(f"&{_q(name)}={_q(value)}" for name, value in extra.items())
        prefix = (
            f"{self._command_prefix}sendSMS&sender={_q(message.sender_id)}&message={_q(message.text)}"
            f"&uniCode={unicode_flag}{extras}&to="
        )
        return _PreparedIton(prefix, self._headers)

    def _error_from_body(self, response: WireResponse) -> GatewayError:
        text = response.text()
        raw = body_excerpt(response)
        if 400 <= response.status < 500 and (not text.strip() or _looks_like_html(text)):
            return RejectedError(
                f"the gateway refused the request with HTTP {response.status}",
                status_code=response.status,
                raw=raw,
            )
        if not text.strip():
            return AmbiguousResponseError(
                f"the gateway answered HTTP {response.status} with an empty body; it may have sent the SMS",
                status_code=response.status,
                raw=raw,
            )
        if _looks_like_html(text):
            return AmbiguousResponseError(
                f"the gateway answered HTTP {response.status} with an HTML page; it may have sent the SMS",
                status_code=response.status,
                raw=raw,
            )
        return classify_text_error(text, status_code=response.status, raw=raw)

    def parse_send(self, numbers: Sequence[str], response: WireResponse) -> SendAnswer:
        """Read either documented success form, or raise the error it means."""
        if response.status == 200:
            exact = _EXACT_SUCCESS.fullmatch(response.body)
            if exact is not None and "json" not in response.headers.get("content-type", "").lower():
                message_id = exact.group(1).decode("ascii")
                return SendAnswer(dict.fromkeys(numbers, message_id), {}, body_excerpt(response))
        error = classify_http(response)
        if error is not None:
            raise error
        if response.status != 200:
            raise self._error_from_body(response)
        text = response.text()
        stripped = text.strip()
        if stripped.startswith(("{", "[")) or "json" in response.headers.get("content-type", "").lower():
            return self._parse_send_json(numbers, stripped, response)
        match = _SUCCESS.match(stripped)
        if match is not None:
            message_id = match.group(1)
            return SendAnswer(dict.fromkeys(numbers, message_id), {}, body_excerpt(response))
        if stripped.lower().startswith("success"):
            raise AmbiguousResponseError(
                "the gateway reported success without a readable message id",
                status_code=response.status,
                raw=body_excerpt(response),
            )
        if stripped[:1] in _JSON_SCALAR_START and load_json(stripped) is not INVALID_JSON:
            # A bare JSON value (a number, null, a quoted string) is no
            # documented answer: the gateway may have sent the SMS.
            raise AmbiguousResponseError(
                "the gateway answered with a JSON value that is neither a message id nor an error text",
                status_code=response.status,
                raw=body_excerpt(response),
            )
        raise self._error_from_body(response)

    def _parse_send_json(self, numbers: Sequence[str], text: str, response: WireResponse) -> SendAnswer:
        raw = body_excerpt(response)
        data = load_json(text)
        if data is INVALID_JSON:
            raise AmbiguousResponseError(
                "the gateway's answer is not valid JSON; it may have sent the SMS", status_code=200, raw=raw
            )
        if not isinstance(data, dict) or not data:
            raise AmbiguousResponseError(
                "the gateway's JSON answer is not a map of message ids to numbers; it may have sent the SMS",
                status_code=200,
                raw=raw,
            )
        by_digits = {n[1:]: n for n in numbers}
        accepted: dict[str, str] = {}
        for key, value in data.items():
            if key in by_digits and isinstance(value, str) and value not in by_digits:
                accepted[by_digits[key]] = value  # number -> id, the other way round
                continue
            sent = _split_numbers(value)
            if sent is None:
                raise AmbiguousResponseError(
                    "the gateway's JSON answer has a value that is not a phone number; "
                    "it may have sent the SMS",
                    status_code=200,
                    raw=raw,
                )
            for digits in sent:
                e164 = by_digits.get(digits.lstrip("+"))
                if e164 is not None:
                    accepted[e164] = str(key)
        if not accepted:
            raise AmbiguousResponseError(
                "the gateway's JSON answer names none of the numbers sent; it may have sent the SMS",
                status_code=200,
                raw=raw,
            )
        return SendAnswer(accepted, {}, raw)

    # -- message_status ---------------------------------------------------

    def build_status(self, message_ids: Sequence[str]) -> WireRequest:
        """``cmd=message_status&ids=...`` for at most 100 ids."""
        return self._request("message_status", "&ids=" + ",".join(_q(i) for i in message_ids), "status")

    def parse_status(self, message_ids: Sequence[str], response: WireResponse) -> list[DeliveryReport]:
        """One report per (id, number); an id the gateway did not mention gets an UNKNOWN report."""
        data = self._json_object(response)
        reports: list[DeliveryReport] = []
        for message_id in message_ids:
            entry = data.get(message_id)
            if entry is None:
                reports.append(DeliveryReport(message_id, None, DeliveryStatus.UNKNOWN, ""))
                continue
            statuses = entry.get("phoneNumberWithRespectiveStatus") if isinstance(entry, dict) else None
            if not isinstance(statuses, dict):
                raise AmbiguousResponseError(
                    f"the status answer for {message_id!r} has no phoneNumberWithRespectiveStatus map",
                    status_code=response.status,
                    raw=body_excerpt(response),
                )
            for number, word in statuses.items():
                raw_word = str(word)
                status = ITON_STATUS_WORDS.get(raw_word.strip().upper(), DeliveryStatus.UNKNOWN)
                reports.append(DeliveryReport(message_id, _e164_from_wire(str(number)), status, raw_word))
        return reports

    # -- account ----------------------------------------------------------

    def build_balance(self) -> WireRequest:
        """``cmd=account``."""
        return self._request("account", "", "balance")

    def parse_balance(self, response: WireResponse) -> Decimal:
        """Read ``Remaining_Credits: 417``."""
        error = classify_http(response)
        if error is not None:
            raise error
        text = response.text()
        match = _CREDITS.search(text)
        if match is not None and response.status == 200:
            return Decimal(match.group(1))
        if text.strip().startswith("{"):
            data = load_json(text)
            if isinstance(data, dict):
                for key, value in data.items():
                    amount = decimal_or_none(value)
                    if "credit" in key.lower() and amount is not None:
                        return amount
        raise self._error_from_body(response)

    # -- check_DNDnumber --------------------------------------------------

    def build_dnd(self, numbers: Sequence[str]) -> WireRequest:
        """``cmd=check_DNDnumber&phoneNumbers=...`` for at most 100 numbers."""
        return self._request("check_DNDnumber", "&phoneNumbers=" + ",".join(n[1:] for n in numbers), "dnd")

    def parse_dnd(self, numbers: Sequence[str], response: WireResponse) -> dict[str, bool]:
        """Map the gateway's keys (as sent, or national) back to E.164."""
        data = self._json_object(response)
        by_digits = {n[1:]: n for n in numbers}
        result: dict[str, bool] = {}
        for key, value in data.items():
            if not isinstance(value, bool):
                raise AmbiguousResponseError(
                    f"the DND answer for {key!r} is not true/false",
                    status_code=response.status,
                    raw=body_excerpt(response),
                )
            digits = str(key).strip().lstrip("+")
            e164 = by_digits.get(digits)
            if e164 is None:
                # The documented example answers with the national number.
                matches = [n for d, n in by_digits.items() if d.endswith(digits) and len(digits) >= 6]
                e164 = matches[0] if len(matches) == 1 else None
            if e164 is not None:
                result[e164] = value
        missing = [n for n in numbers if n not in result]
        if missing:
            raise AmbiguousResponseError(
                f"the DND answer does not mention {len(missing)} of the {len(numbers)} numbers asked about",
                status_code=response.status,
                raw=body_excerpt(response),
            )
        return result

    def _json_object(self, response: WireResponse) -> dict[str, Any]:
        error = classify_http(response)
        if error is not None:
            raise error
        text = response.text().strip()
        if response.status == 200 and text.startswith("{"):
            data = load_json(text)
            if isinstance(data, dict):
                return data
            raise AmbiguousResponseError(
                "the gateway's answer is not a readable JSON object",
                status_code=response.status,
                raw=body_excerpt(response),
            )
        if response.status == 200 and text.startswith("["):
            raise AmbiguousResponseError(
                "the gateway's answer is a JSON list, not an object",
                status_code=response.status,
                raw=body_excerpt(response),
            )
        raise self._error_from_body(response)


def _e164_from_wire(number: str) -> str:
    digits = number.strip().lstrip("+")
    return "+" + digits if digits.isdigit() and len(digits) > 10 else number.strip()
