"""Helpers shared by the sans-I/O driver tests."""

from __future__ import annotations

import json
from collections.abc import Callable

from sms_async import Message, SmsError
from sms_async._wire import WireRequest, WireResponse
from sms_async.providers import Driver


def ok(body: bytes | str | dict, status: int = 200, headers: dict[str, str] | None = None) -> WireResponse:
    """A response with ``body`` (a dict is sent as JSON)."""
    if isinstance(body, dict):
        body = json.dumps(body)
    data = body.encode() if isinstance(body, str) else body
    return WireResponse(status, headers or {}, data)


def raised(call: Callable[[], object]) -> BaseException | None:
    """The exception ``call`` raised, or ``None``."""
    try:
        call()
    except Exception as error:
        return error
    return None


def assert_only_sms_errors(call: Callable[[], object]) -> None:
    """``call`` either works or raises one of the library's own errors."""
    error = raised(call)
    assert error is None or isinstance(error, SmsError), f"{type(error).__name__}: {error}"


def build_send(driver: Driver, text: str, numbers: list[str]) -> WireRequest:
    """The request ``driver`` builds to send ``text`` from ITONAB to ``numbers``."""
    return driver.prepare_send(Message.create(text, "ITONAB")).build(numbers)
