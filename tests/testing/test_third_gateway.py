"""A third gateway is one driver module, one simulator module and one registry line: a toy one proves it.

``toy_gateway.Toy`` is everything a gateway needs on the library's side
(sans-I/O: it describes requests and reads answers); ``toy_gateway.ToyProtocol``
is the simulator's side. Registering both (the ``toy_gateway`` fixture) is all
it takes for the engine to send, look up statuses, refuse what the gateway
cannot do, and count every input.
"""

from __future__ import annotations

import pytest

from sms_async import BulkSender, DeliveryStatus, UnsupportedOperationError
from sms_async.providers import gateway, gateway_names


def numbers(count: int) -> list[str]:
    return [f"+9198{i:08d}" for i in range(count)]


async def test_a_registered_toy_gateway_sends_looks_up_and_refuses_what_it_lacks(
    toy_gateway, sms_gateway_factory
):
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


async def test_unregistered_gateway_names_are_refused_with_the_known_ones(toy_gateway):
    """Looking up a name nobody registered says which names exist."""
    with pytest.raises(Exception, match=r"unknown gateway 'nope'; choose one of: .*itecpay.*iton.*toy"):
        gateway("nope")
