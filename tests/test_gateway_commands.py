"""Every documented gateway command end to end over loopback: reports, polling, balance, DND, text, cost."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from sms_async import (
    BulkSender,
    DeliveryStatus,
    InsufficientCreditError,
    InvalidMessageError,
    InvalidNumberError,
    ItecPay,
    Iton,
    Outcome,
    UnsupportedOperationError,
)
from sms_async.testing import SimulatedGateway

NUMBERS = [f"+9198{i:08d}" for i in range(250)]


def iton(gw: SimulatedGateway, **kwargs: object) -> Iton:
    return Iton(username=gw.username, password=gw.password, base_url=gw.iton_url, **kwargs)  # type: ignore[arg-type]


def itecpay(gw: SimulatedGateway) -> ItecPay:
    return ItecPay(gw.username, gw.password, base_url=gw.itecpay_url)


def accounted(result) -> bool:
    return result.total == len(result.message_ids) + len(result.failed) + sum(result.duplicates.values())


@pytest.mark.parametrize("form", ["text", "json"])
async def test_iton_delivery_reports_chunked_at_100_ids(form):
    """ITON reports come back per (id, number), with ids looked up at most 100 per request."""
    with SimulatedGateway(iton_send_form=form, status_delays=(0.0, 0.0)) as gw:
        async with BulkSender(iton(gw), concurrency=8) as bulk:
            result = await bulk.send(NUMBERS, "Hello", sender_id="ITONAB")
            assert len(result.message_ids) == len(NUMBERS)
            gw.advance_clock(5)
            ids = list(dict.fromkeys(result.message_ids.values()))
            gw.reset_stats()
            reports = await bulk.delivery_reports(ids)
        status_requests = gw.stats.requests["iton.message_status"]
    assert status_requests == -(-len(ids) // 100)
    assert {r.number for r in reports} == set(NUMBERS)
    assert {r.status for r in reports} == {DeliveryStatus.DELIVERED}
    assert {r.raw for r in reports} == {"DELIVIRED"}


async def test_itecpay_delivery_reports_one_id_per_request():
    """ItecPay status is asked one id per request and its letters are normalised."""
    with SimulatedGateway(itecpay_send_form="per_recipient", status_delays=(0.0, 0.0)) as gw:
        async with BulkSender(itecpay(gw), concurrency=8) as bulk:
            result = await bulk.send(NUMBERS[:30], "Hello", sender_id="ACME")
            gw.advance_clock(5)
            ids = list(result.message_ids.values())
            gw.reset_stats()
            reports = await bulk.delivery_reports(ids)
        assert gw.stats.requests["itecpay.status"] == len(ids)
    assert len(reports) == len(ids)
    assert {r.status for r in reports} == {DeliveryStatus.DELIVERED}
    assert {r.raw for r in reports} == {"D"}


async def test_polling_yields_changes_until_all_are_final():
    """poll_delivery_reports re-asks only what is not final and stops when everything is."""
    with SimulatedGateway(status_delays=(0.05, 0.1), undelivered_rate=0.3, seed=7) as gw:
        async with BulkSender(iton(gw, token=None), concurrency=4) as bulk:
            result = await bulk.send(NUMBERS[:200], "Hello", sender_id="ITONAB")
            ids = list(dict.fromkeys(result.message_ids.values()))
            seen = [r async for r in bulk.poll_delivery_reports(ids, interval=0.05, timeout=10)]
    final = {}
    for report in seen:
        final[(report.message_id, report.number)] = report
    assert len(final) == 200
    assert all(r.is_final for r in final.values())
    statuses = Counter(r.status for r in final.values())
    assert statuses[DeliveryStatus.UNDELIVERED] > 0
    assert statuses[DeliveryStatus.DELIVERED] > 0


async def test_polling_stops_at_its_timeout():
    """A poll whose reports never become final ends at its timeout."""
    with SimulatedGateway(status_delays=(60.0, 60.0)) as gw:
        async with BulkSender(iton(gw)) as bulk:
            result = await bulk.send(NUMBERS[:5], "Hello", sender_id="ITONAB")
            seen = [
                r
                async for r in bulk.poll_delivery_reports(
                    set(result.message_ids.values()), interval=0.05, timeout=0.2
                )
            ]
    assert seen
    assert not any(r.is_final for r in seen)


async def test_balance_and_cost():
    """balance() reads Remaining_Credits, and a send costs parts x recipients."""
    with SimulatedGateway(credits=10_000) as gw:
        async with BulkSender(iton(gw)) as bulk:
            assert await bulk.balance() == Decimal(10_000)
            text = "a" * 161  # two GSM-7 parts
            estimate = await bulk.estimate([*NUMBERS[:50], "bad", NUMBERS[0]], text, sender_id="ITONAB")
            assert (estimate.recipients, estimate.segments, estimate.cost) == (50, 2, 100)
            assert estimate.affordable
            await bulk.send(NUMBERS[:50], text, sender_id="ITONAB")
            assert await bulk.balance() == Decimal(10_000 - 100)


async def test_check_balance_refuses_a_campaign_the_account_cannot_pay_for():
    """check_balance=True raises before any send when parts x recipients exceed the balance."""
    with SimulatedGateway(credits=10) as gw:
        async with BulkSender(iton(gw)) as bulk:
            with pytest.raises(InsufficientCreditError) as info:
                await bulk.send(NUMBERS[:20], "Hello", sender_id="ITONAB", check_balance=True)
        assert gw.stats.requests["iton.sendSMS"] == 0
    assert info.value.needed == 20
    assert "20 credits" in str(info.value)


async def test_itecpay_balance_and_dnd_are_typed_unsupported():
    """ItecPay has no balance or DND command: a typed error, and no request."""
    with SimulatedGateway() as gw:
        async with BulkSender(itecpay(gw)) as bulk:
            with pytest.raises(UnsupportedOperationError):
                await bulk.balance()
            with pytest.raises(UnsupportedOperationError):
                await bulk.check_dnd(NUMBERS[:2])
            with pytest.raises(UnsupportedOperationError):
                await bulk.send(NUMBERS[:2], "Hi", sender_id="ACME", skip_dnd=True)
            estimate = await bulk.estimate(NUMBERS[:3], "Hi", sender_id="ACME")
        assert sum(gw.stats.requests.values()) == 0
    assert estimate.balance is None
    assert estimate.affordable is None


async def test_check_dnd_chunks_at_100_and_maps_back_to_e164():
    """check_dnd answers per E.164 number, 100 numbers per request."""
    listed = {n[1:] for n in NUMBERS[::7]}
    with SimulatedGateway(dnd_numbers=listed) as gw:
        async with BulkSender(iton(gw), default_region="IN") as bulk:
            answer = await bulk.check_dnd(NUMBERS)
        assert gw.stats.requests["iton.check_DNDnumber"] == 3
    assert set(answer) == set(NUMBERS)
    assert {n for n, dnd in answer.items() if dnd} == set(NUMBERS[::7])


async def test_check_dnd_refuses_a_bad_number_before_any_request():
    """A bad number given to check_dnd is a clear InvalidNumberError, not a request."""
    with SimulatedGateway() as gw:
        async with BulkSender(iton(gw)) as bulk:
            with pytest.raises(InvalidNumberError, match="12ab"):
                await bulk.check_dnd(["+919812345678", "12ab"])
        assert sum(gw.stats.requests.values()) == 0


async def test_skip_dnd_accounts_for_filtered_numbers():
    """skip_dnd=True never sends to a listed number and reports it as skipped."""
    listed = {n[1:] for n in NUMBERS[:40]}
    with SimulatedGateway(dnd_numbers=listed, dnd_action="refuse") as gw:
        async with BulkSender(iton(gw)) as bulk:
            result = await bulk.send(NUMBERS, "Hello", sender_id="ITONAB", skip_dnd=True)
        received = gw.stats.numbers
    assert accounted(result)
    skipped = result.by_outcome(Outcome.SKIPPED)
    assert set(skipped) == set(NUMBERS[:40])
    assert len(result.message_ids) == len(NUMBERS) - 40
    assert not any(n in received for n in listed)


async def test_max_segments_refuses_a_long_text_before_sending():
    """A text over max_segments is refused with its part count, before any request."""
    with SimulatedGateway() as gw:
        async with BulkSender(iton(gw)) as bulk:
            with pytest.raises(InvalidMessageError, match="3 SMS parts"):
                await bulk.send(NUMBERS[:3], "x" * 400, sender_id="ITONAB", max_segments=2)
        assert sum(gw.stats.requests.values()) == 0


async def test_unicode_flag_follows_the_text():
    """ITON's uniCode is 2 for a UCS-2 text and 0 for GSM-7, and the gateway stores the text exactly."""
    with SimulatedGateway(iton_send_form="json") as gw:
        async with BulkSender(iton(gw)) as bulk:
            gsm = await bulk.send(NUMBERS[:1], "Price: 5€ [ok]", sender_id="ITONAB")
            ucs = await bulk.send(NUMBERS[1:2], "ça va? 😀", sender_id="ITONAB")
        gsm_message = gw.message(next(iter(gsm.message_ids.values())))
        ucs_message = gw.message(next(iter(ucs.message_ids.values())))
    assert gsm_message is not None
    assert ucs_message is not None
    assert gsm_message.text == "Price: 5€ [ok]"
    assert ucs_message.text == "ça va? 😀"
    assert gsm_message.unicode == "0"
    assert ucs_message.unicode == "2"


async def test_token_authentication_and_bad_token():
    """An ITON token authenticates as the password does, and a bad one aborts the run."""
    with SimulatedGateway() as gw:
        good = Iton(token=gw.token, base_url=gw.iton_url)
        async with BulkSender(good) as bulk:
            ok = await bulk.send(NUMBERS[:10], "Hi", sender_id="ITONAB")
            assert await bulk.balance() > 0
        async with BulkSender(Iton(token="wrong-token-value", base_url=gw.iton_url)) as bulk:
            bad = await bulk.send(NUMBERS[:10], "Hi", sender_id="ITONAB")
    assert len(ok.message_ids) == 10
    assert bad.aborted is not None
    assert "wrong-token-value" not in repr(bad) + str(bad.aborted)
    assert set(bad.counts().items()) >= {(Outcome.UNSENT, 10)}


async def test_stream_reports_the_abort_on_its_batches():
    """A stream stopped by bad credentials says so on its batches, and every input is still accounted for."""
    with SimulatedGateway() as gw:
        driver = Iton(username=gw.username, password="not-the-password", base_url=gw.iton_url)
        async with BulkSender(driver, concurrency=2) as bulk:
            batches = [b async for b in bulk.stream(NUMBERS, "Hi", sender_id="ITONAB")]
    assert sum(b.total for b in batches) == len(NUMBERS)
    assert any(b.aborted is not None for b in batches)
    assert all(f.outcome is Outcome.UNSENT for b in batches for f in b.failed.values())
