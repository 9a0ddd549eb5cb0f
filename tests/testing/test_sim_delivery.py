"""The simulator's delivery outcomes over a test clock, on both gateways' status calls; its request log."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import httpx
import pytest

from sms_async import BulkSender, DeliveryStatus, ItecPay, Iton
from sms_async.testing import DeliveryPlan, DeliveryRule, RequestLog, TestClock

START = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)
HOUR = 3600.0
PLAN = DeliveryPlan(
    [
        DeliveryRule("delivered", 0.8),
        DeliveryRule("delivered", 0.15, after=HOUR),
        DeliveryRule("never", 0.05),
    ],
    overrides={
        "+919800000001": DeliveryRule("undelivered", after=600),
        "919800000002": DeliveryRule("failed"),
        "+919800000003": DeliveryRule("never"),
    },
)
NUMBERS = [f"+9198{n:08d}" for n in range(1, 401)]


def test_plan_shares_must_add_up_and_outcomes_be_known():
    """A plan whose shares do not add up to 1, or a rule with an unknown outcome, is refused."""
    with pytest.raises(ValueError, match="add up to 1"):
        DeliveryPlan([DeliveryRule("delivered", 0.5)])
    with pytest.raises(ValueError, match="one of"):
        DeliveryRule("lost")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="between 0 and 1"):
        DeliveryRule("delivered", 1.5)
    with pytest.raises(ValueError, match="finite number of seconds"):
        DeliveryRule("delivered", after=-1)
    with pytest.raises(ValueError, match="at least one rule"):
        DeliveryPlan([])


def test_plan_draws_each_number_once_with_overrides_first():
    """A number's rule is fixed by the seed and the number (with or without +); overrides win."""
    assert PLAN.rule_for("+919800000001") == DeliveryRule("undelivered", after=600)
    assert PLAN.rule_for("919800000002") == DeliveryRule("failed")
    assert PLAN.rule_for("+919800000123") == PLAN.rule_for("919800000123")
    many = Counter(PLAN.rule_for(f"+9197{n:08d}").after for n in range(20_000))
    assert abs(many[0.0] / 20_000 - 0.85) < 0.02  # 80% delivered at once + 5% never (no delay)
    assert abs(many[HOUR] / 20_000 - 0.15) < 0.02
    assert PLAN.status("+919800000003", 10**7, "final") == "sent"
    assert PLAN.status("+919800000001", 599, "final") == "sent"
    assert PLAN.status("+919800000001", 600, "final") == "undelivered"
    assert PLAN.status("+919800000001", 10**7, "queued") == "queued"


def statuses(reports) -> Counter[DeliveryStatus]:
    return Counter(r.status for r in reports)


async def test_iton_statuses_follow_the_plan_as_the_test_clock_moves(sms_gateway_factory):
    """ITON's message_status answers QUEUED, then each number's planned fate once its delay has passed."""
    clock = TestClock(START)
    gw = sms_gateway_factory(clock=clock, delivery=PLAN, iton_send_form="json")
    async with BulkSender(Iton(username=gw.username, password=gw.password, base_url=gw.iton_url)) as bulk:
        result = await bulk.send(NUMBERS, "Hello", sender_id="ITONAB")
        assert len(result.message_ids) == len(NUMBERS)
        ids = list(result.message_ids.values())
        assert statuses(await bulk.delivery_reports(ids)) == {DeliveryStatus.QUEUED: len(NUMBERS)}
        expected_now = PLAN.expected(NUMBERS, 1.0)
        clock.advance(1.0)
        now = statuses(await bulk.delivery_reports(ids))
        assert now[DeliveryStatus.DELIVERED] == expected_now["delivered"]
        assert now[DeliveryStatus.FAILED] == expected_now["failed"] == 1
        assert now[DeliveryStatus.SENT] == expected_now["sent"]
        clock.advance(HOUR)
        later = statuses(await bulk.delivery_reports(ids))
        expected_later = PLAN.expected(NUMBERS, HOUR + 1)
        assert later[DeliveryStatus.DELIVERED] == expected_later["delivered"] > now[DeliveryStatus.DELIVERED]
        assert later[DeliveryStatus.UNDELIVERED] == 1
        assert later[DeliveryStatus.SENT] == expected_later["sent"] > 0  # the 5% never delivered
        clock.advance(100 * HOUR)
        assert statuses(await bulk.delivery_reports(ids)) == later
    assert not gw.stats.duplicate_numbers()


async def test_itecpay_one_letter_per_message_is_its_least_advanced_number(sms_gateway_factory):
    """ItecPay's status letter for one id over several numbers is S while any is on its way, then final."""
    clock = TestClock(START)
    plan = DeliveryPlan(
        [DeliveryRule("delivered")], overrides={"+919800000007": DeliveryRule("delivered", after=HOUR)}
    )
    gw = sms_gateway_factory(clock=clock, delivery=plan)
    driver = ItecPay(username=gw.username, password=gw.password, base_url=gw.itecpay_url)
    async with BulkSender(driver) as bulk:
        result = await bulk.send(NUMBERS[:10], "Hello", sender_id="ITECPY")
        (message_id,) = set(result.message_ids.values())
        assert [r.raw for r in await bulk.delivery_reports([message_id])] == ["Q"]
        clock.advance(60)
        assert [r.raw for r in await bulk.delivery_reports([message_id])] == ["S"]
        clock.advance(HOUR)
        (report,) = await bulk.delivery_reports([message_id])
        assert (report.raw, report.status) == ("D", DeliveryStatus.DELIVERED)


async def test_itecpay_final_letters_come_from_the_plan(sms_gateway_factory):
    """A number planned undelivered reads U, one planned failed reads E, on ItecPay's status call."""
    clock = TestClock(START)
    gw = sms_gateway_factory(clock=clock, delivery=PLAN)
    driver = ItecPay(username=gw.username, password=gw.password, base_url=gw.itecpay_url)
    async with BulkSender(driver) as bulk:
        first = await bulk.send(["+919800000001"], "Hello", sender_id="ITECPY")
        second = await bulk.send(["+919800000002"], "Hello", sender_id="ITECPY")
        clock.advance(HOUR)
        reports = await bulk.delivery_reports([*first.message_ids.values(), *second.message_ids.values()])
    assert [r.raw for r in reports] == ["U", "E"]


def test_the_request_log_records_each_request_on_the_gateways_clock(sms_gateway_factory):
    """Every request, faulted or not, is logged with its time on the test clock and its operation."""
    clock = TestClock(START)
    log = RequestLog()
    gw = sms_gateway_factory(clock=clock, request_log=log)
    with httpx.Client(timeout=10) as client:
        base = {"username": gw.username, "password": gw.password}
        client.get(gw.iton_url, params={**base, "cmd": "account"})
        clock.advance(HOUR)
        client.get(gw.iton_url, params={**base, "cmd": "message_status", "ids": "x"})
        client.get(gw.origin + "/nowhere")
    entries = log.entries()
    assert [(e.at, e.operation) for e in entries] == [
        (START, "iton.account"),
        (datetime(2026, 12, 6, 16, 0, tzinfo=UTC), "iton.message_status"),
        (datetime(2026, 12, 6, 16, 0, tzinfo=UTC), "http.other"),
    ]
    assert [e.operation for e in log.entries("iton.")] == ["iton.account", "iton.message_status"]
    assert len(log.between(START, datetime(2026, 12, 6, 15, 59, tzinfo=UTC))) == 1
    log.clear()
    assert len(log) == 0


def test_without_a_plan_statuses_are_as_before(sms_gateway_factory):
    """With no plan and no clock, the gateway keeps its own status delays and rates."""
    gw = sms_gateway_factory(status_delays=(0, 0), failed_rate=1.0)
    with httpx.Client(timeout=10) as client:
        base = {"username": gw.username, "password": gw.password}
        sent = client.get(
            gw.iton_url,
            params={
                **base,
                "cmd": "sendSMS",
                "to": "919812345678",
                "sender": "ITONAB",
                "message": "Hi",
                "uniCode": "0",
            },
        )
        message_id = sent.text.rsplit(" ", 1)[-1]
        answer = client.get(gw.iton_url, params={**base, "cmd": "message_status", "ids": message_id}).json()
    assert answer[message_id]["phoneNumberWithRespectiveStatus"] == {"919812345678": "FAILED"}
