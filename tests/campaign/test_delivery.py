"""Delivery tracking: state rules, poll schedule, the in-memory book, the tracker over the simulator."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

import anyio
import pytest
from delivery_support import drive

from sms_async import (
    AuthenticationError,
    BulkSender,
    ConfigurationError,
    DeliveryReport,
    DeliveryStatus,
    ItecPay,
    Iton,
    RetryPolicy,
)
from sms_async._limits import RateMeter
from sms_async.campaign._delivery import (
    DeliveryBook,
    DeliveryState,
    DeliveryTally,
    DeliveryTracker,
    MemoryDeliveryBook,
    NumberDelivery,
    PollOutcome,
    PollRound,
    PollSchedule,
    settle,
)
from sms_async.testing import DeliveryPlan, DeliveryRule, Fault, TestClock

START = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)
T1 = START + timedelta(minutes=1)
P, D, U, F, X = (
    DeliveryState.PENDING,
    DeliveryState.DELIVERED,
    DeliveryState.UNDELIVERED,
    DeliveryState.FAILED,
    DeliveryState.EXPIRED,
)


def report(status: DeliveryStatus, number: str | None = "+911", raw: str = "", error: str | None = None):
    return DeliveryReport("id1", number, status, raw or status.value.upper(), error)


# ------------------------------------------------------------------ the rules


def test_settle_moves_states_forward_only():
    """A final state never changes; pending moves to final; expired may still become final."""
    current = {
        "+911": NumberDelivery(D, "DELIVIRED", START),
        "+912": NumberDelivery(),
        "+913": NumberDelivery(X),
    }
    changes = settle(
        current,
        [
            report(DeliveryStatus.SENT, "+911"),
            report(DeliveryStatus.UNDELIVERED, "+911"),
            report(DeliveryStatus.FAILED, "+912"),
            report(DeliveryStatus.DELIVERED, "+913"),
        ],
        polled_at=T1,
    )
    assert changes == {"+912": NumberDelivery(F, "FAILED", T1), "+913": NumberDelivery(D, "DELIVERED", T1)}


def test_settle_invents_nothing_from_failed_unknown_or_foreign_reports():
    """A failed look-up, a word we do not know and a number the id does not cover change nothing."""
    current = {"+911": NumberDelivery(), "+912": NumberDelivery()}
    changes = settle(
        current,
        [
            report(DeliveryStatus.UNKNOWN, None, raw="", error="the gateway was busy"),
            report(DeliveryStatus.UNKNOWN, "+911", raw="LOST?"),
            report(DeliveryStatus.DELIVERED, "+999"),
        ],
        polled_at=T1,
    )
    assert changes == {}


def test_settle_a_report_without_number_speaks_for_the_whole_id_and_keeps_the_latest_word():
    """ItecPay's one letter applies to every number; a not-final word is kept without a date."""
    current = {"+911": NumberDelivery(), "+912": NumberDelivery(D, "D", START)}
    assert settle(current, [report(DeliveryStatus.SENT, None, raw="S")], polled_at=T1) == {
        "+911": NumberDelivery(P, "S", None)
    }
    assert settle(current, [report(DeliveryStatus.DELIVERED, None, raw="D")], polled_at=T1) == {
        "+911": NumberDelivery(D, "D", T1)
    }


def test_settle_gives_up_on_what_is_still_pending():
    """At the give-up age, numbers still pending after the last answer become expired; finals stay."""
    current = {
        "+911": NumberDelivery(P, "SENT"),
        "+912": NumberDelivery(),
        "+913": NumberDelivery(D, "D", START),
    }
    changes = settle(current, [report(DeliveryStatus.DELIVERED, "+912")], polled_at=T1, give_up=True)
    assert changes == {"+911": NumberDelivery(X, "SENT", T1), "+912": NumberDelivery(D, "DELIVERED", T1)}


def test_poll_schedule_backs_off_then_polls_hourly_until_the_give_up_age():
    """Polls come 30 s, 2 min, 10 min and 1 h apart, then hourly, the last one at 72 h."""
    schedule = PollSchedule()
    due = schedule.first_poll(START)
    times = []
    polls = 0
    while due is not None:
        times.append((due - START).total_seconds())
        polls += 1
        due = schedule.next_poll(START, polls, due)
    assert times[:6] == [30, 150, 750, 4350, 7950, 11550]
    assert times[-1] == 72 * 3600
    assert all(b - a <= 3600 for a, b in itertools.pairwise(times))
    with pytest.raises(ConfigurationError, match="at least one backoff step"):
        PollSchedule(backoff=())
    with pytest.raises(ConfigurationError, match="> 0 s"):
        PollSchedule(give_up=0)


def test_tally_counts_states_and_the_delivery_rate():
    """The tally adds up to the numbers counted; the rate is delivered over accepted."""
    tally = DeliveryTally.of([D, D, D, U, F, X, P, P])
    assert (tally.accepted, tally.delivered, tally.pending, tally.expired) == (8, 3, 2, 1)
    assert tally.rate == 3 / 8
    assert DeliveryTally().rate is None


# ------------------------------------------------------------------ the in-memory book


async def test_memory_book_gives_each_id_once_and_moves_it_on_when_recorded():
    """An id shared by many numbers is due once; recording a poll makes it due at its next poll."""
    book = MemoryDeliveryBook()
    assert isinstance(book, DeliveryBook)
    book.add({"+911": "a", "+912": "a", "+913": "b"}, START)
    book.add({"+911": "a"}, START + timedelta(hours=1))  # adding twice changes nothing
    assert await book.due(START, 10) == []
    due = await book.due(START + timedelta(seconds=30), 10)
    assert [d.message_id for d in due] == ["a", "b"]
    assert await book.due(START + timedelta(seconds=30), 1) == due[:1]
    later = START + timedelta(seconds=150)
    await book.record(
        [
            PollOutcome("a", T1, (DeliveryReport("a", "+911", DeliveryStatus.DELIVERED, "D"),), True, later),
            PollOutcome("b", T1, (), False, later),
        ]
    )
    assert await book.due(START + timedelta(seconds=100), 10) == []
    assert await book.next_due() == later
    assert book.delivery("+911") == NumberDelivery(D, "D", T1)
    assert book.tally() == DeliveryTally(pending=2, delivered=1)
    await book.record(
        [PollOutcome("a", T1, (DeliveryReport("a", "+912", DeliveryStatus.FAILED, "F"),), True, None)]
    )
    await book.record([PollOutcome("b", T1, (), True, None)])  # the give-up: b's number expires
    assert book.tally() == DeliveryTally(delivered=1, failed=1, expired=1)
    assert await book.next_due() is None
    assert book.pending == 0


# ------------------------------------------------------------------ the tracker over the simulator

PLAN = DeliveryPlan([DeliveryRule("delivered", 0.9), DeliveryRule("never", 0.1)])
NUMBERS = [f"+9198{n:08d}" for n in range(1, 1001)]
FAST_RETRIES = RetryPolicy(attempts=2, initial_wait=0.001, max_wait=0.001)


def iton(gw, **options):
    return BulkSender(Iton(username=gw.username, password=gw.password, base_url=gw.iton_url), **options)


async def sent_book(bulk, clock, numbers=NUMBERS, sender_id="ITONAB"):
    result = await bulk.send(numbers, "Hello", sender_id=sender_id)
    assert len(result.message_ids) == len(numbers)
    book = MemoryDeliveryBook()
    book.add(result.message_ids, clock.now())
    return book


@pytest.mark.parametrize(("form", "ids", "requests"), [("text", 10, 1), ("json", 1000, 10)])
async def test_iton_polls_each_id_once_in_ceil_ids_over_100_requests(
    sms_gateway_factory, form, ids, requests
):
    """A round asks for each id once, 100 ids a request, however many numbers share an id."""
    clock = TestClock(START)
    gw = sms_gateway_factory(clock=clock, delivery=PLAN, iton_send_form=form)
    async with iton(gw) as bulk:
        book = await sent_book(bulk, clock)
        tracker = DeliveryTracker(bulk, book, clock=clock)
        assert await tracker.poll_due() == (await tracker.poll_due())  # nothing due yet: empty rounds
        assert gw.stats.requests["iton.message_status"] == 0
        clock.advance(30)
        round_ = await tracker.poll_due()
    assert (round_.ids, round_.requests, round_.failed) == (ids, requests, 0)
    assert gw.stats.requests["iton.message_status"] == requests == math.ceil(ids / 100)
    expected = PLAN.expected(NUMBERS, 30)
    assert book.tally() == DeliveryTally(pending=expected["sent"], delivered=expected["delivered"])


async def test_itecpay_polls_one_id_a_request_and_applies_its_letter_to_every_number(sms_gateway_factory):
    """ItecPay's one-id status call is made once per id; its letter settles every number of the id."""
    clock = TestClock(START)
    gw = sms_gateway_factory(clock=clock, delivery=DeliveryPlan([DeliveryRule("delivered")]))
    driver = ItecPay(username=gw.username, password=gw.password, base_url=gw.itecpay_url)
    async with BulkSender(driver) as bulk:
        book = await sent_book(bulk, clock, NUMBERS[:300], sender_id="ITECPY")
        clock.advance(30)
        round_ = await DeliveryTracker(bulk, book, clock=clock).poll_due()
    assert (round_.ids, round_.requests) == (3, 3)
    assert gw.stats.requests["itecpay.status"] == 3
    assert book.tally() == DeliveryTally(delivered=300)


@pytest.mark.parametrize(
    "fault",
    [
        Fault("wrong_type_body", rate=1.0, operations="iton.message_status"),
        Fault("html_body", rate=1.0, operations="iton.message_status"),
        Fault("truncated_body", rate=1.0, operations="iton.message_status"),
        Fault("status_429", rate=1.0, operations="iton.message_status", retry_after=0),
        Fault("status_500", rate=1.0, operations="iton.message_status"),
    ],
    ids=lambda f: f.kind,
)
async def test_a_bad_answer_or_a_429_storm_leaves_pending_numbers_pending(sms_gateway_factory, fault):
    """Malformed answers and refusals record nothing; the next real answer settles the numbers."""
    clock = TestClock(START)
    gw = sms_gateway_factory(clock=clock, delivery=PLAN, iton_send_form="json")
    async with iton(gw, retry=FAST_RETRIES) as bulk:
        book = await sent_book(bulk, clock, NUMBERS[:250])
        tracker = DeliveryTracker(bulk, book, clock=clock)
        gw.set_faults([fault])
        clock.advance(30)
        round_ = await tracker.poll_due()
        assert (round_.ids, round_.failed) == (250, 250)
        assert book.tally() == DeliveryTally(pending=250)
        assert {d.raw for _, d in book.items()} == {""}
        gw.set_faults([])
        clock.advance(120)
        await tracker.poll_due()
    expected = PLAN.expected(NUMBERS[:250], 150)
    assert book.tally() == DeliveryTally(pending=expected["sent"], delivered=expected["delivered"])


async def test_refused_credentials_stop_the_round_and_record_nothing(sms_gateway_factory):
    """An authentication failure while polling is raised, and no number moves."""
    clock = TestClock(START)
    gw = sms_gateway_factory(clock=clock, delivery=PLAN)
    async with iton(gw) as bulk:
        book = await sent_book(bulk, clock, NUMBERS[:100])
        gw.set_faults([Fault("auth_failure", rate=1.0, operations="iton.message_status")])
        clock.advance(30)
        with pytest.raises(AuthenticationError):
            await DeliveryTracker(bulk, book, clock=clock).poll_due()
    assert book.tally() == DeliveryTally(pending=100)
    assert [d.message_id for d in await book.due(clock.now(), 10)] == list(dict.fromkeys(book._ids))


async def test_polls_take_at_most_their_share_of_the_senders_slots_and_rate(sms_gateway_factory):
    """With report_share 0.1 of 20 slots, at most 2 look-ups are in flight; the rate share is a tenth."""
    clock = TestClock(START)
    gw = sms_gateway_factory(clock=clock, delivery=PLAN, iton_send_form="json")
    async with iton(gw, concurrency=20) as bulk:
        book = await sent_book(bulk, clock)
        gw.set_faults([Fault("latency", rate=1.0, seconds=0.02, operations="iton.message_status")])
        gw.reset_stats()
        clock.advance(30)
        tracker = DeliveryTracker(bulk, book, clock=clock, report_share=0.1)
        assert tracker.in_flight == 2
        assert tracker.meter is None
        await tracker.poll_due()
    assert gw.stats.requests["iton.message_status"] == 10
    assert gw.stats.max_in_flight == 2
    async with iton(gw, concurrency=20, requests_per_second=50) as bulk:
        tracker = DeliveryTracker(bulk, book, clock=clock, report_share=0.1)
        assert isinstance(tracker.meter, RateMeter)
        assert tracker.meter.per_second == pytest.approx(5.0)
        shared = RateMeter(1.0)
        assert DeliveryTracker(bulk, book, clock=clock, meter=shared).meter is shared
    with pytest.raises(ConfigurationError, match="report_share"):
        DeliveryTracker(bulk, book, report_share=0)


async def test_run_polls_on_the_schedule_until_every_number_is_final_or_given_up(sms_gateway_factory):
    """run() sleeps on the clock between rounds and ends at the give-up age, the undelivered expired."""
    clock = TestClock(START)
    gw = sms_gateway_factory(clock=clock, delivery=PLAN)
    async with iton(gw) as bulk:
        book = await sent_book(bulk, clock, NUMBERS[:200])
        tracker = DeliveryTracker(bulk, book, clock=clock)
        rounds: list = []
        with anyio.fail_after(30):
            await drive(clock, lambda: tracker.run(on_round=rounds.append))
    expected = PLAN.expected(NUMBERS[:200], 10**6)
    assert book.tally() == DeliveryTally(delivered=expected["delivered"], expired=expected["sent"])
    assert clock.now() == START + timedelta(hours=72)
    polls = 1 + 3 + (72 * 3600 - 4350) // 3600 + 1  # 30 s, 2.5 min, 12.5 min, 72.5 min, hourly, 72 h
    assert gw.stats.requests["iton.message_status"] == polls * 1  # both ids in one request a round
    assert rounds == [PollRound(ids=2, requests=1, failed=0)] * polls


async def test_every_poll_request_waits_its_turn_on_the_polls_meter(sms_gateway_factory):
    """Each status request takes one turn on the polls' meter before it goes, and no more."""

    class CountingMeter:
        def __init__(self) -> None:
            self.turns = 0

        async def acquire(self, cost: int = 1) -> None:
            self.turns += cost

    clock = TestClock(START)
    gw = sms_gateway_factory(clock=clock, delivery=PLAN, iton_send_form="json")
    meter = CountingMeter()
    async with iton(gw) as bulk:
        book = await sent_book(bulk, clock, NUMBERS[:450])
        clock.advance(30)
        done = await DeliveryTracker(bulk, book, clock=clock, meter=meter).poll_due()
    assert meter.turns == done.requests == gw.stats.requests["iton.message_status"] == 5
