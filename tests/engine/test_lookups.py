"""Look-ups (sms_async/_lookups.py): balance, delivery reports and DND, retried on any transient fault."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from decimal import Decimal

import httpx
import pytest
from engine_support import FAST, Fault, itecpay, iton, numbers, raise_, respond

from sms_async import BulkSender, DeliveryStatus, UnsupportedOperationError


def lookup_gateway(
    faults: list[Fault] | None = None,
) -> tuple[Callable[[httpx.Request], object], Counter[str]]:
    """An ITON fake for `account`, `message_status` and `check_DNDnumber`, with scripted faults first."""
    script = list(faults or [])
    calls: Counter[str] = Counter()

    def handler(request: httpx.Request) -> httpx.Response:
        command = request.url.params["cmd"]
        calls[command] += 1
        if script:
            return script.pop(0)(request)
        if command == "account":
            return httpx.Response(200, text="Remaining_Credits: 417")
        if command == "message_status":
            ids = request.url.params["ids"].split(",")
            body = {i: {"phoneNumberWithRespectiveStatus": {"919812345678": "DELIVIRED"}} for i in ids}
            return httpx.Response(200, json=body)
        if command == "check_DNDnumber":
            listed = request.url.params["phoneNumbers"].split(",")
            return httpx.Response(200, json={n: n.endswith("9") for n in listed})
        return httpx.Response(400, text="Unknown command")

    return handler, calls


def lookup_sender(handler, driver=None) -> BulkSender:
    return BulkSender(
        driver or iton(), default_region="IN", retry=FAST, transport=httpx.MockTransport(handler)
    )


async def test_balance_status_and_dnd_lookups():
    """balance(), delivery_reports() and check_dnd() read the ITON answers into values."""
    handler, calls = lookup_gateway()
    async with lookup_sender(handler) as bulk:
        assert await bulk.balance() == Decimal(417)
        reports = await bulk.delivery_reports([f"id-{i}" for i in range(150)] + ["id-0"])
        dnd = await bulk.check_dnd(["+919032728149", "098123 45678"])
    assert len(reports) == 150
    assert {r.status for r in reports} == {DeliveryStatus.DELIVERED}
    assert {r.raw for r in reports} == {"DELIVIRED"}
    assert calls["message_status"] == 2
    assert dnd == {"+919032728149": True, "+919812345678": False}


@pytest.mark.parametrize(
    "fault",
    [
        raise_(httpx.ReadTimeout),
        raise_(httpx.ConnectError),
        respond(500),
        respond(503),
        respond(200, "<html>"),
    ],
    ids=["read-timeout", "connect-error", "500", "503", "200-html"],
)
async def test_lookups_are_retried_on_any_transient_fault(fault):
    """A look-up changes nothing at the gateway, so even an ambiguous fault is retried."""
    handler, calls = lookup_gateway([fault])
    async with lookup_sender(handler) as bulk:
        assert await bulk.balance() == Decimal(417)
    assert calls["account"] == 2


async def test_status_lookup_failing_for_good_gives_unknown_reports():
    """A status look-up that keeps failing gives UNKNOWN reports saying why, not an exception."""
    handler, _ = lookup_gateway([raise_(httpx.ConnectError)] * 10)
    async with lookup_sender(handler) as bulk:
        reports = await bulk.delivery_reports(["id-1", "id-2"])
    assert [r.message_id for r in reports] == ["id-1", "id-2"]
    assert {r.status for r in reports} == {DeliveryStatus.UNKNOWN}
    assert all(r.error for r in reports)


async def test_itecpay_has_no_balance_or_dnd():
    """ItecPay's balance and DND look-ups raise UnsupportedOperationError before any request."""
    handler, calls = lookup_gateway()
    async with lookup_sender(handler, driver=itecpay()) as bulk:
        with pytest.raises(UnsupportedOperationError):
            await bulk.balance()
        with pytest.raises(UnsupportedOperationError):
            await bulk.check_dnd(["+919032728149"])
        with pytest.raises(UnsupportedOperationError):
            await bulk.send(numbers(3), "Hello", sender_id="ITONAB", skip_dnd=True)
    assert sum(calls.values()) == 0
