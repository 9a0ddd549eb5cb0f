"""A third gateway is one driver module, one simulator module and one registry line: a toy one proves it.

The driver below is everything a gateway needs on the library's side (sans-I/O:
it describes requests and reads answers); ``toy_protocol.ToyProtocol`` is the
simulator's side. Registering both is all it takes for the engine to send,
look up statuses, refuse what the gateway cannot do, and count every input.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar, Self
from urllib.parse import urlencode

import pytest
from toy_protocol import ToyProtocol

from sms_async import BulkSender, DeliveryReport, DeliveryStatus, Message, UnsupportedOperationError
from sms_async._exceptions import AmbiguousResponseError
from sms_async._wire import Origin, WireRequest, WireResponse
from sms_async.providers import Capabilities, SendAnswer, gateway, gateway_names, register_gateway
from sms_async.providers._base import check_params, classify_http, classify_text_error, setting
from sms_async.providers._registry import unregister_gateway
from sms_async.testing import register_protocol, unregister_protocol

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
    settings_keys: ClassVar[frozenset[str]] = frozenset({"username", "password", "base_url"})
    max_batch = 50
    max_status_batch = 1
    max_dnd_batch = 1

    def __init__(self, user: str, key: str, *, base_url: str) -> None:
        self.origin = Origin.parse(base_url)
        self._user = user
        self._key = key

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Self:
        """Build from a username, a password and a base URL."""
        return cls(
            setting(settings, "username") or "",
            setting(settings, "password") or "",
            base_url=setting(settings, "base_url") or "",
        )

    def prepare_send(self, message: Message, params: Mapping[str, str] | None = None) -> _PreparedToy:
        """The constant part of every send."""
        head = {"user": self._user, "key": self._key, "text": message.text}
        head.update(check_params(self, "Toy", frozenset({"user", "key", "to", "text"}), params))
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


@pytest.fixture
def toy():
    """The toy registered on both sides (driver registry, simulator), and only for this test."""
    register_gateway(Toy)
    register_protocol(ToyProtocol)
    yield
    unregister_gateway("toy")
    unregister_protocol("toy")


def numbers(count: int) -> list[str]:
    return [f"+9198{i:08d}" for i in range(count)]


async def test_a_registered_toy_gateway_sends_looks_up_and_refuses_what_it_lacks(toy, sms_gateway_factory):
    """Send (batches of the toy's own size), statuses, and unsupported look-ups refused before any request."""
    gw = sms_gateway_factory(status_delays=(0, 0))
    assert "toy" in gateway_names()
    driver = gateway("toy").from_settings(
        {"username": gw.username, "password": gw.password, "base_url": gw.url("toy")}
    )
    recipients = [*numbers(120), "+919800000001", "not a number"]
    async with BulkSender(driver, concurrency=4) as bulk:
        result = await bulk.send(recipients, "Hello from the toy", sender_id="TOYCO")
        assert result.total == len(recipients)
        assert set(result.message_ids) == set(numbers(120))
        assert result.duplicates == {"+919800000001": 1}
        assert list(result.failed) == ["not a number"]
        assert result.requests == 3  # 50 + 50 + 20: the toy's own max_batch
        reports = await bulk.delivery_reports(set(result.message_ids.values()))
        assert {r.number for r in reports} == set(numbers(120))
        assert {r.status for r in reports} == {DeliveryStatus.DELIVERED}
        requests_before = sum(gw.stats.requests.values())
        with pytest.raises(UnsupportedOperationError, match="do-not-disturb"):
            await bulk.send(numbers(3), "Hi", sender_id="TOYCO", skip_dnd=True)
        with pytest.raises(UnsupportedOperationError, match="do-not-disturb"):
            await bulk.check_dnd(numbers(1))
        with pytest.raises(UnsupportedOperationError, match="balance"):
            await bulk.balance()
        assert sum(gw.stats.requests.values()) == requests_before
    stats = gw.stats
    assert stats.requests["toy.send"] == 3
    assert not stats.duplicate_numbers()
    assert stats.accepted == 120


async def test_unregistered_gateway_names_are_refused_with_the_known_ones(toy):
    """Looking up a name nobody registered says which names exist."""
    with pytest.raises(Exception, match=r"unknown gateway 'nope'; choose one of: .*itecpay.*iton.*toy"):
        gateway("nope")
