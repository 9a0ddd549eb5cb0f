"""The rules every delivery book keeps, run over each book (a store adds its own to BOOKS)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from delivery_support import BOOKS

from sms_async import DeliveryReport, DeliveryStatus
from sms_async.campaign import DeliveryState, DeliveryTally, NumberDelivery, PollOutcome

START = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)
S30 = START + timedelta(seconds=30)
S150 = START + timedelta(seconds=150)


@pytest.fixture(params=sorted(BOOKS))
async def subject(request):
    async with BOOKS[request.param]() as opened:
        yield opened


def answer(message_id: str, polled_at: datetime, next_poll_at: datetime | None, *reports) -> PollOutcome:
    return PollOutcome(
        message_id, polled_at, tuple(DeliveryReport(message_id, *r) for r in reports), True, next_poll_at
    )


async def test_an_id_is_due_once_from_its_first_poll_on_earliest_first(subject):
    """Ids fall due 30 s after acceptance, each once however many numbers share it, earliest first."""
    await subject.add({"+911": "late"}, START + timedelta(seconds=10))
    await subject.add({"+912": "early", "+913": "early", "+914": "early"}, START)
    book = subject.book
    assert await book.due(START + timedelta(seconds=29), 10) == []
    assert [d.message_id for d in await book.due(START + timedelta(seconds=40), 10)] == ["early", "late"]
    assert [d.message_id for d in await book.due(START + timedelta(seconds=40), 1)] == ["early"]
    (due,) = await book.due(S30, 10)
    assert (due.message_id, due.accepted_at, due.polls) == ("early", START, 0)
    assert await book.next_due() == S30


async def test_recording_moves_the_id_to_its_next_poll_and_counts_it(subject):
    """After a recorded poll the id is due at next_poll_at, with one poll more."""
    await subject.add({"+911": "a"}, START)
    await subject.book.record([answer("a", S30, S150, ("+911", DeliveryStatus.SENT, "SENT"))])
    assert await subject.book.due(S30 + timedelta(seconds=60), 10) == []
    (due,) = await subject.book.due(S150, 10)
    assert due.polls == 1
    assert await subject.delivery("+911") == NumberDelivery(DeliveryState.PENDING, "SENT", None)


async def test_a_poll_recorded_twice_changes_nothing_more(subject):
    """The same outcome recorded twice (a poll done twice) leaves the same states."""
    await subject.add({"+911": "a", "+912": "a"}, START)
    outcome = answer(
        "a", S30, S150, ("+911", DeliveryStatus.DELIVERED, "DELIVIRED"), ("+912", DeliveryStatus.SENT, "SENT")
    )
    await subject.book.record([outcome])
    once = (await subject.delivery("+911"), await subject.delivery("+912"), await subject.tally())
    await subject.book.record([outcome])
    assert (await subject.delivery("+911"), await subject.delivery("+912"), await subject.tally()) == once
    assert once[2] == DeliveryTally(pending=1, delivered=1)


async def test_states_never_move_backwards_and_failed_lookups_invent_nothing(subject):
    """Delivered stays delivered against a later word; a failed look-up leaves pending numbers pending."""
    await subject.add({"+911": "a", "+912": "a"}, START)
    await subject.book.record([answer("a", S30, S150, ("+911", DeliveryStatus.DELIVERED, "DELIVIRED"))])
    later = S150 + timedelta(minutes=1)
    await subject.book.record(
        [
            answer("a", S150, later, ("+911", DeliveryStatus.UNDELIVERED, "UNDELIVERED")),
            PollOutcome("a", S150, (), False, later),
            answer("a", S150, later, (None, DeliveryStatus.UNKNOWN, "", "the gateway was busy")),
        ]
    )
    assert await subject.delivery("+911") == NumberDelivery(DeliveryState.DELIVERED, "DELIVIRED", S30)
    assert await subject.delivery("+912") == NumberDelivery()


async def test_the_last_poll_expires_what_is_pending_and_nothing_is_due_after(subject):
    """A poll with no next time expires pending numbers; an id with nothing pending is never due again."""
    await subject.add({"+911": "a", "+912": "a", "+913": "b"}, START)
    end = START + timedelta(hours=72)
    await subject.book.record(
        [
            answer("a", end, None, ("+911", DeliveryStatus.FAILED, "FAILED")),
            answer("b", S30, S150, ("+913", DeliveryStatus.DELIVERED, "DELIVIRED")),
        ]
    )
    assert await subject.tally() == DeliveryTally(delivered=1, failed=1, expired=1)
    assert await subject.delivery("+912") == NumberDelivery(DeliveryState.EXPIRED, "", end)
    assert await subject.book.due(end + timedelta(days=30), 10) == []
    assert await subject.book.next_due() is None
    # A real answer after the give-up age still counts.
    await subject.book.record([answer("a", end, None, ("+912", DeliveryStatus.DELIVERED, "DELIVIRED"))])
    assert await subject.tally() == DeliveryTally(delivered=2, failed=1)


async def test_adding_a_number_twice_changes_nothing(subject):
    """A number already tracked keeps its state and its id when added again (a batch settled twice)."""
    await subject.add({"+911": "a"}, START)
    await subject.book.record([answer("a", S30, S150, ("+911", DeliveryStatus.DELIVERED, "DELIVIRED"))])
    await subject.add({"+911": "a"}, START + timedelta(hours=1))
    assert await subject.tally() == DeliveryTally(delivered=1)
    assert await subject.book.next_due() is None
