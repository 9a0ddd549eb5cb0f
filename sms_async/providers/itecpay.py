"""ItecPay: JSON over POST.

The documentation names no URL and shows no response body, so ``base_url``
is required, the paths are parameters, and answers are read generously: a
``status`` inside the body (200 or 400, which may disagree with the HTTP
status: either 400 is a failure), a ``description``, and the id as
``messageid`` (or ``message_id``/``messageId``, or per recipient).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar, Self

from sms_async._exceptions import (
    AmbiguousResponseError,
    AuthenticationError,
    ConfigurationError,
    GatewayError,
    RejectedError,
    UnsupportedOperationError,
)
from sms_async._message import Message
from sms_async._models import DeliveryReport, DeliveryStatus
from sms_async._redact import keep_secrets
from sms_async._wire import Origin, WireRequest, WireResponse
from sms_async.providers._base import (
    Capabilities,
    SendAnswer,
    body_excerpt,
    check_credential,
    check_params,
    classify_http,
    classify_text_error,
    load_json,
    setting,
)

__all__ = ["ITECPAY_STATUS_LETTERS", "ItecPay"]

#: The documented status letters.
ITECPAY_STATUS_LETTERS: dict[str, DeliveryStatus] = {
    "P": DeliveryStatus.PROCESSING,
    "D": DeliveryStatus.DELIVERED,
    "Q": DeliveryStatus.QUEUED,
    "E": DeliveryStatus.FAILED,
    "S": DeliveryStatus.SENT,
    "U": DeliveryStatus.UNDELIVERED,
}

_ID_KEYS = ("messageid", "message_id", "messageId", "MessageId", "msgid", "id")
_STATUS_KEYS = ("sms_status", "message_status", "delivery_status", "smsStatus", "deliveryStatus")
_NUMBER_KEYS = ("recipient", "number", "phone", "msisdn", "to", "mobile")
_LIST_KEYS = ("messages", "recipients", "results", "data")
_JSON_HEADERS = (("Content-Type", "application/json"), ("Accept", "application/json"))
# The JSON fields ItecPay's commands use: extra parameters may not take these names.
_OWN_PARAMS = frozenset({"username", "password", "recipients", "sender", "message", "messageid"})


def _first(entry: dict[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        if key in entry and entry[key] not in (None, ""):
            return entry[key]
    return None


def _id_text(value: Any) -> str | None:
    """A message id as text, or ``None`` for anything that cannot be one (null, bool, objects)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.strip()):
        return str(value).strip()
    return None


def _is_failure_status(value: Any) -> bool:
    try:
        return int(value) >= 400
    except (TypeError, ValueError, OverflowError):
        return False


class _PreparedItecPay:
    __slots__ = ("_head", "_target")

    def __init__(self, target: str, head: bytes) -> None:
        self._target = target
        self._head = head

    def build(self, numbers: Sequence[str]) -> WireRequest:
        # E.164 holds only '+' and digits: nothing to escape inside the JSON string.
        body = self._head + ",".join(numbers).encode("ascii") + b'"}'
        return WireRequest("POST", self._target, _JSON_HEADERS, body, "send")


class ItecPay:
    """The ItecPay gateway.

    ``base_url`` is the gateway's origin (its documentation names none);
    ``send_path`` and ``status_path`` are appended to it. ``params`` are extra
    JSON fields for every send, under those given to each send.
    """

    name: ClassVar[str] = "itecpay"
    capabilities: ClassVar[Capabilities] = Capabilities(status=True, balance=False, dnd=False)
    settings_keys: ClassVar[frozenset[str]] = frozenset(
        {"username", "password", "base_url", "send_path", "status_path", "allow_insecure_http", "params"}
    )
    max_batch = 100
    max_status_batch = 1
    max_dnd_batch = 100

    def __init__(
        self,
        username: str,
        password: str,
        *,
        base_url: str,
        send_path: str = "/api/sms/send",
        status_path: str = "/api/sms/status",
        allow_insecure_http: bool = False,
        params: Mapping[str, str] | None = None,
    ) -> None:
        if not username:
            raise ConfigurationError("ItecPay needs username=")
        if not password:
            raise ConfigurationError("ItecPay needs password=")
        check_credential("username", username)
        self.origin = Origin.parse(base_url, allow_insecure_http=allow_insecure_http)
        keep_secrets(self, password)
        self.params = check_params(self, "ItecPay", _OWN_PARAMS, params)
        self.username = username
        self._password = password
        self.send_path = self.origin.join(send_path)
        self.status_path = self.origin.join(status_path)
        self._auth_json = json.dumps({"username": username, "password": password}, ensure_ascii=False)[:-1]

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Self:
        """Build from settings: username, password, base_url (required), paths, params."""
        base_url = setting(settings, "base_url")
        if base_url is None:
            raise ConfigurationError(
                "ItecPay has no published address: give its base_url (the gateway's origin)"
            )
        paths = {key: value for key in ("send_path", "status_path") if (value := setting(settings, key))}
        params = settings.get("params")
        return cls(
            setting(settings, "username") or "",
            setting(settings, "password") or "",
            base_url=base_url,
            allow_insecure_http=bool(settings.get("allow_insecure_http", False)),
            params=params or None,
            **paths,
        )

    def __repr__(self) -> str:
        return f"ItecPay(username={self.username!r}, base_url={self.origin.url!r})"

    # -- send -------------------------------------------------------------

    def prepare_send(self, message: Message, params: Mapping[str, str] | None = None) -> _PreparedItecPay:
        """Encode everything but the recipients once per campaign (or per text)."""
        fields = {"sender": message.sender_id, "message": message.text}
        fields.update(check_params(self, "ItecPay", _OWN_PARAMS, self.params, params))
        rest = json.dumps(fields, ensure_ascii=False)[1:-1]
        head = f'{self._auth_json}, {rest}, "recipients": "'.encode()
        return _PreparedItecPay(self.send_path, head)

    def _read_json(self, response: WireResponse) -> tuple[dict[str, Any], str]:
        """The body as a JSON object and as redacted text, or the error the answer means."""
        error = classify_http(response)
        if error is not None:
            raise error
        raw = body_excerpt(response)
        text = response.text().strip()
        data = load_json(text) if text else None
        if not isinstance(data, dict):
            if response.status >= 400:
                raise classify_text_error(
                    text or f"HTTP {response.status}", status_code=response.status, raw=raw
                )
            raise AmbiguousResponseError(
                "the gateway's answer is not a JSON object; it may have processed the request",
                status_code=response.status,
                raw=raw,
            )
        body_status = data.get("status")
        if response.status >= 400 or _is_failure_status(body_status):
            raise self._failure(data, response.status, body_status, raw)
        return data, raw

    @staticmethod
    def _failure(data: dict[str, Any], http_status: int, body_status: Any, raw: str) -> GatewayError:
        description = data.get("description") or data.get("message") or data.get("error")
        reason = (
            str(description) if description else f"the gateway refused the request (status {body_status})"
        )
        if str(body_status) in {"401", "403"}:
            return AuthenticationError(reason, status_code=http_status, raw=raw)
        return classify_text_error(reason, status_code=http_status, raw=raw)

    def parse_send(self, numbers: Sequence[str], response: WireResponse) -> SendAnswer:
        """Read the ids, whole-request or per recipient."""
        data, raw = self._read_json(response)
        accepted: dict[str, str] = {}
        rejected: dict[str, str] = {}
        unknown: dict[str, str] = {}
        entries = next((data[k] for k in _LIST_KEYS if isinstance(data.get(k), list)), None)
        if entries is not None:
            wanted = set(numbers)
            for entry in entries:
                if not isinstance(entry, dict):
                    raise AmbiguousResponseError(
                        "a per-recipient entry of the answer is not an object", status_code=200, raw=raw
                    )
                number = _first(entry, _NUMBER_KEYS)
                e164 = _match_number(str(number), wanted) if number is not None else None
                if e164 is None:
                    continue
                message_id = _id_text(_first(entry, _ID_KEYS))
                if _is_failure_status(entry.get("status")):
                    description = entry.get("description") or entry.get("error") or "refused by the gateway"
                    rejected[e164] = str(description)
                elif message_id is not None:
                    accepted[e164] = message_id
                else:
                    unknown[e164] = "the gateway's entry for this number holds no readable message id"
            if not accepted and not rejected and not unknown:
                raise AmbiguousResponseError(
                    "the per-recipient answer names none of the numbers sent", status_code=200, raw=raw
                )
            return SendAnswer(accepted, rejected, raw, unknown)
        message_id = _first(data, _ID_KEYS)
        single = _id_text(message_id)
        if single is not None:
            return SendAnswer(dict.fromkeys(numbers, single), {}, raw)
        if isinstance(message_id, list) and len(message_id) == len(numbers):
            ids = [_id_text(i) for i in message_id]
            if all(i is not None for i in ids):
                return SendAnswer({n: str(i) for n, i in zip(numbers, ids, strict=True)}, {}, raw)
        if isinstance(message_id, dict):
            wanted = set(numbers)
            for key, value in message_id.items():
                e164 = _match_number(str(key), wanted)
                value_id = _id_text(value)
                if e164 is not None and value_id is not None:
                    accepted[e164] = value_id
                    continue
                e164 = _match_number(str(value), wanted)
                if e164 is not None:
                    accepted[e164] = str(key)
            if accepted:
                return SendAnswer(accepted, {}, raw)
        raise AmbiguousResponseError(
            "the gateway reported success but gave no message id; it may have sent the SMS",
            status_code=response.status,
            raw=raw,
        )

    # -- status -----------------------------------------------------------

    def build_status(self, message_ids: Sequence[str]) -> WireRequest:
        """One ``messageid`` per request, as documented."""
        (message_id,) = message_ids
        body = (self._auth_json + ", " + json.dumps({"messageid": message_id})[1:]).encode()
        return WireRequest("POST", self.status_path, _JSON_HEADERS, body, "status")

    def parse_status(self, message_ids: Sequence[str], response: WireResponse) -> list[DeliveryReport]:
        """Read the status letter (P, D, Q, E, S, U)."""
        (message_id,) = message_ids
        try:
            data, _ = self._read_json(response)
        except RejectedError as exc:
            # "Unknown message id" and the like: the look-up itself worked.
            return [DeliveryReport(message_id, None, DeliveryStatus.UNKNOWN, exc.reason)]
        entries = next((data[k] for k in _LIST_KEYS if isinstance(data.get(k), list)), None)
        if entries is None:
            entries = [data]
        reports = []
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            letter = _first(entry, _STATUS_KEYS)
            if letter is None and isinstance(entry.get("status"), str):
                letter = entry["status"]
            raw_word = "" if letter is None else str(letter)
            status = ITECPAY_STATUS_LETTERS.get(raw_word.strip().upper(), DeliveryStatus.UNKNOWN)
            number = _first(entry, _NUMBER_KEYS)
            reports.append(
                DeliveryReport(message_id, None if number is None else str(number), status, raw_word)
            )
        if not reports:
            raise AmbiguousResponseError(
                "the status answer holds no status", status_code=response.status, raw=body_excerpt(response)
            )
        return reports

    # -- not offered --------------------------------------------------------

    def build_balance(self) -> WireRequest:
        """ItecPay documents no balance command."""
        raise UnsupportedOperationError(
            "ItecPay documents no balance command: check the balance on the ItecPay dashboard"
        )

    def parse_balance(self, response: WireResponse) -> Decimal:
        """ItecPay documents no balance command."""
        raise UnsupportedOperationError("ItecPay documents no balance command")

    def build_dnd(self, numbers: Sequence[str]) -> WireRequest:
        """ItecPay documents no do-not-disturb command."""
        raise UnsupportedOperationError("ItecPay documents no do-not-disturb look-up")

    def parse_dnd(self, numbers: Sequence[str], response: WireResponse) -> dict[str, bool]:
        """ItecPay documents no do-not-disturb command."""
        raise UnsupportedOperationError("ItecPay documents no do-not-disturb look-up")


def _match_number(value: str, wanted: set[str]) -> str | None:
    value = value.strip()
    if value in wanted:
        return value
    plus = "+" + value.lstrip("+")
    return plus if plus in wanted else None
