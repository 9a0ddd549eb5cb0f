"""Delivery tracking: poll the gateway for accepted messages until each number's fate is known.

Both gateways tell delivery only when asked (ITON's ``message_status`` takes
up to 100 ids a request, ItecPay's status call one). A :class:`DeliveryTracker`
asks, in rounds, for every message id whose poll is due, on a backoff that
asks often at first (:class:`PollSchedule`: 30 s, 2 min, 10 min, 1 h, then
hourly) until every number of the id is final or the give-up age (72 h) is
reached. It works over a small protocol, :class:`DeliveryBook` ("which ids
are due at t?", "record what these polls found"), so that any store keeps
the states; :class:`MemoryDeliveryBook` is the one kept in memory.

The rules every book follows (and :func:`settle` implements once):

* a state only moves forward: ``pending`` -> ``expired`` (given up) -> a final
  state (``delivered``, ``undelivered``, ``failed``); a final state never changes;
* only a real answer moves it: a look-up that failed (a 429 storm, a body we
  could not read, a dead network), a status word we do not know and an id the
  gateway did not mention leave every number as it was;
* a report that names no number (ItecPay's one letter for a whole message)
  speaks for every number of the id; one naming a number the id does not
  cover is ignored;
* an id is polled once per round, however many numbers share it.

Polls are look-ups of the sender they are given, so they pass the same gates
as its sends (the shared 429 pause, the request meter, the concurrency
slots); ``report_share`` bounds what they take of them.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

import anyio
import attrs

from sms_async._clock import SYSTEM_CLOCK, Clock
from sms_async._exceptions import ConfigurationError, GatewayError, SmsError
from sms_async._limits import Meter, RateMeter
from sms_async._models import DeliveryReport, DeliveryStatus

if TYPE_CHECKING:
    from sms_async._engine import BulkSender

__all__ = [
    "DeliveryBook",
    "DeliveryState",
    "DeliveryTally",
    "DeliveryTracker",
    "DueMessage",
    "MemoryDeliveryBook",
    "NumberDelivery",
    "PollOutcome",
    "PollRound",
    "PollSchedule",
    "settle",
    "state_of_status",
]

_HOUR: Final = 3600.0


class DeliveryState(enum.StrEnum):
    """Where one accepted number stands, as a campaign keeps it."""

    #: No final answer yet (the gateway said queued, processing or sent, or has not answered).
    PENDING = "pending"
    #: The gateway said delivered.
    DELIVERED = "delivered"
    #: The gateway said the carrier could not deliver it.
    UNDELIVERED = "undelivered"
    #: The gateway said it failed.
    FAILED = "failed"
    #: No final answer by the give-up age; polling stopped (a later real answer still counts).
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        """Whether the gateway gave its last word (delivered, undelivered or failed)."""
        return self in _FINAL

    @property
    def rank(self) -> int:
        """Pending 0, expired 1, final 2: a state only moves to a higher rank."""
        return 2 if self in _FINAL else int(self is DeliveryState.EXPIRED)


_FINAL: Final = frozenset({DeliveryState.DELIVERED, DeliveryState.UNDELIVERED, DeliveryState.FAILED})
_FROM_STATUS: Final = {
    DeliveryStatus.DELIVERED: DeliveryState.DELIVERED,
    DeliveryStatus.UNDELIVERED: DeliveryState.UNDELIVERED,
    DeliveryStatus.FAILED: DeliveryState.FAILED,
}


def state_of_status(status: DeliveryStatus) -> DeliveryState:
    """The state a gateway's status puts a number in: a final one, or pending for any other."""
    return _FROM_STATUS.get(status, DeliveryState.PENDING)


@attrs.frozen
class NumberDelivery:
    """One number's delivery state, the gateway's last word for it, and when it became final."""

    state: DeliveryState = DeliveryState.PENDING
    #: The status exactly as the gateway last spelled it (``""`` before any answer).
    raw: str = ""
    #: When a poll first saw its final state (or gave up); None while pending.
    at: datetime | None = None


def settle(
    current: Mapping[str, NumberDelivery],
    reports: Iterable[DeliveryReport],
    *,
    polled_at: datetime,
    give_up: bool = False,
) -> dict[str, NumberDelivery]:
    """What one poll of one message id changes: the numbers whose delivery moves, and where to.

    Args:
        current: Every number the id covers (E.164), with its state now.
        reports: The gateway's reports for the id (a failed look-up's reports
            carry an ``error`` and change nothing).
        polled_at: When the poll was made (the time a final state is dated).
        give_up: The id reached its give-up age: numbers still pending
            after this answer become expired.

    Returns only the numbers that change; never moves a state backwards and
    never takes one from a report that is not a real answer.
    """
    changes: dict[str, NumberDelivery] = {}
    for report in reports:
        if report.error is not None or report.status is DeliveryStatus.UNKNOWN:
            continue
        new = state_of_status(report.status)
        targets = current if report.number is None else (report.number,)
        for number in targets:
            was = changes.get(number) or current.get(number)
            if was is None:  # a number this id does not cover: not ours to record
                continue
            if new.rank > was.state.rank:
                changes[number] = NumberDelivery(new, report.raw, polled_at)
            elif not was.state.is_final and new is DeliveryState.PENDING and report.raw != was.raw:
                # Still on its way: keep the gateway's latest word (queued, sent) without a date.
                changes[number] = NumberDelivery(was.state, report.raw, was.at)
    if give_up:
        for number, was in current.items():
            now = changes.get(number, was)
            if now.state is DeliveryState.PENDING:
                changes[number] = NumberDelivery(DeliveryState.EXPIRED, now.raw, polled_at)
    return changes


@attrs.frozen
class PollSchedule:
    """When each message id is polled: often at first, then hourly, until the give-up age.

    Args:
        backoff: Seconds before each of the first polls, counted from the
            previous one (the first from acceptance).
        then: Seconds between polls after those.
        give_up: Seconds after acceptance when polling stops; a last poll is
            made at that age, and numbers still pending become expired.
    """

    backoff: tuple[float, ...] = (30.0, 120.0, 600.0, _HOUR)
    then: float = _HOUR
    give_up: float = 72 * _HOUR

    def __attrs_post_init__(self) -> None:
        if not self.backoff or any(not s > 0 for s in (*self.backoff, self.then, self.give_up)):
            raise ConfigurationError(
                "a poll schedule needs at least one backoff step, and every wait and the give-up age > 0 s"
            )

    def delay(self, polls: int) -> float:
        """Seconds to wait after ``polls`` polls (0 before the first) before the next."""
        return self.backoff[polls] if polls < len(self.backoff) else self.then

    def first_poll(self, accepted_at: datetime) -> datetime:
        """When a message accepted at ``accepted_at`` is first polled."""
        return min(accepted_at + timedelta(seconds=self.delay(0)), self.give_up_at(accepted_at))

    def give_up_at(self, accepted_at: datetime) -> datetime:
        """When polling of a message accepted at ``accepted_at`` stops."""
        return accepted_at + timedelta(seconds=self.give_up)

    def next_poll(self, accepted_at: datetime, polls: int, polled_at: datetime) -> datetime | None:
        """When to poll again after the ``polls``-th poll, made at ``polled_at``; None: that was the last."""
        last = self.give_up_at(accepted_at)
        if polled_at >= last:
            return None
        return min(polled_at + timedelta(seconds=self.delay(polls)), last)


@attrs.frozen
class DueMessage:
    """A message id whose poll is due."""

    message_id: str
    accepted_at: datetime
    #: Polls made so far.
    polls: int = 0


@attrs.frozen
class PollOutcome:
    """What one poll of one message id found, for a book to record.

    A book applies :func:`settle` to the id's numbers with ``reports`` and
    ``give_up``, counts the poll, and makes the id due again at
    ``next_poll_at`` while any of its numbers is pending.
    """

    message_id: str
    polled_at: datetime
    #: The gateway's reports (empty when the look-up failed).
    reports: tuple[DeliveryReport, ...]
    #: Whether the gateway answered (False: the look-up failed after retries; nothing was learnt).
    answered: bool
    #: When to poll again; None when this was the last poll (the give-up age is reached).
    next_poll_at: datetime | None

    @property
    def give_up(self) -> bool:
        """Whether numbers still pending after this poll become expired."""
        return self.next_poll_at is None


@runtime_checkable
class DeliveryBook(Protocol):
    """Where delivery states are kept: what a store implements for :class:`DeliveryTracker`.

    Implementations must be safe against a poll recorded twice (the states
    only move forward) and must return each id at most once per call of :meth:`due`.
    """

    async def due(self, now: datetime, limit: int) -> Sequence[DueMessage]:
        """Up to ``limit`` ids, earliest due first, that have a pending number and a poll due by ``now``."""

    async def record(self, outcomes: Sequence[PollOutcome]) -> None:
        """Apply the outcomes of polls (see :class:`PollOutcome`)."""

    async def next_due(self) -> datetime | None:
        """When the earliest poll is due; None when no number is pending."""


@attrs.frozen
class DeliveryTally:
    """Accepted numbers by delivery state."""

    pending: int = 0
    delivered: int = 0
    undelivered: int = 0
    failed: int = 0
    expired: int = 0

    @property
    def accepted(self) -> int:
        """Every number tracked: the sum of the states."""
        return self.pending + self.delivered + self.undelivered + self.failed + self.expired

    @property
    def rate(self) -> float | None:
        """Delivered over accepted (None when nothing was accepted)."""
        return self.delivered / self.accepted if self.accepted else None

    @classmethod
    def of(cls, states: Iterable[DeliveryState]) -> DeliveryTally:
        """Count ``states``."""
        counts = dict.fromkeys(DeliveryState, 0)
        for state in states:
            counts[state] += 1
        return cls(**{state.value: count for state, count in counts.items()})


@attrs.define
class _Tracked:
    accepted_at: datetime
    numbers: list[str]
    next_poll_at: datetime | None
    polls: int = 0
    pending: int = 0


class MemoryDeliveryBook:
    """A :class:`DeliveryBook` in memory: for tests, and for one-shot sends that poll after sending.

    Args:
        schedule: When ids fall due (the same schedule the tracker uses).
    """

    def __init__(self, schedule: PollSchedule | None = None) -> None:
        self.schedule = schedule or PollSchedule()
        self._ids: dict[str, _Tracked] = {}
        self._numbers: dict[str, NumberDelivery] = {}
        self._by_number: dict[str, str] = {}
        self._heap: list[tuple[datetime, int, str]] = []
        self._order = itertools.count()
        self._pending = 0

    def __repr__(self) -> str:
        return (
            f"MemoryDeliveryBook(ids={len(self._ids)}, numbers={len(self._numbers)}, pending={self._pending})"
        )

    def add(self, message_ids: Mapping[str, str], accepted_at: datetime) -> None:
        """Track accepted numbers, ``{E.164: message id}`` as ``BulkResult.message_ids`` gives them.

        Numbers already tracked are left as they are (adding twice changes nothing).
        """
        for number, message_id in message_ids.items():
            if number in self._numbers:
                continue
            tracked = self._ids.get(message_id)
            if tracked is None:
                tracked = _Tracked(accepted_at, [], self.schedule.first_poll(accepted_at))
                self._ids[message_id] = tracked
                self._push(tracked.next_poll_at, message_id)
            tracked.numbers.append(number)
            tracked.pending += 1
            self._pending += 1
            self._numbers[number] = NumberDelivery()
            self._by_number[number] = message_id

    def restore(
        self, number: str, message_id: str, accepted_at: datetime, delivery: NumberDelivery | None = None
    ) -> bool:
        """Track one accepted number with the delivery an earlier run recorded for it (``None``: pending).

        A number already tracked is left as it is. A pending number's id is
        due at its first poll (at once, if that is past): the polls an
        earlier run made are not known, and asking once more changes nothing
        that is final. Returns whether the number was added.
        """
        if number in self._numbers:
            return False
        delivery = delivery if delivery is not None else NumberDelivery()
        tracked = self._ids.get(message_id)
        if tracked is None:
            tracked = _Tracked(accepted_at, [], None)
            self._ids[message_id] = tracked
        tracked.numbers.append(number)
        self._numbers[number] = delivery
        self._by_number[number] = message_id
        if delivery.state is DeliveryState.PENDING:
            tracked.pending += 1
            self._pending += 1
            if tracked.next_poll_at is None:
                tracked.next_poll_at = self.schedule.first_poll(tracked.accepted_at)
                self._push(tracked.next_poll_at, message_id)
        return True

    def _push(self, when: datetime | None, message_id: str) -> None:
        if when is not None:
            heapq.heappush(self._heap, (when, next(self._order), message_id))

    def _live(self, entry: tuple[datetime, int, str]) -> bool:
        when, _, message_id = entry
        tracked = self._ids[message_id]
        return tracked.pending > 0 and tracked.next_poll_at == when

    async def due(self, now: datetime, limit: int) -> list[DueMessage]:
        """Up to ``limit`` ids due at ``now``, earliest first, each once."""
        heap = self._heap
        found: list[DueMessage] = []
        seen: set[str] = set()
        kept: list[tuple[datetime, int, str]] = []
        while heap and heap[0][0] <= now and len(found) < limit:
            entry = heapq.heappop(heap)
            message_id = entry[2]
            if not self._live(entry) or message_id in seen:
                continue
            seen.add(message_id)
            kept.append(entry)
            tracked = self._ids[message_id]
            found.append(DueMessage(message_id, tracked.accepted_at, tracked.polls))
        # Handed out, not yet recorded: they stay due until record() moves them on.
        for entry in kept:
            heapq.heappush(heap, entry)
        return found

    async def record(self, outcomes: Sequence[PollOutcome]) -> None:
        """Apply the polls' outcomes; an outcome for an id no longer due still moves states forward only."""
        for outcome in outcomes:
            tracked = self._ids.get(outcome.message_id)
            if tracked is None:
                continue
            current = {n: self._numbers[n] for n in tracked.numbers}
            changes = settle(current, outcome.reports, polled_at=outcome.polled_at, give_up=outcome.give_up)
            for number, new in changes.items():
                if current[number].state is DeliveryState.PENDING and new.state is not DeliveryState.PENDING:
                    tracked.pending -= 1
                    self._pending -= 1
                self._numbers[number] = new
            tracked.polls += 1
            tracked.next_poll_at = outcome.next_poll_at if tracked.pending else None
            self._push(tracked.next_poll_at, outcome.message_id)

    async def next_due(self) -> datetime | None:
        """When the earliest poll is due, or None when no number is pending."""
        heap = self._heap
        while heap and not self._live(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    # ---------------------------------------------------------------- reading

    @property
    def pending(self) -> int:
        """Numbers still pending."""
        return self._pending

    def delivery(self, number: str) -> NumberDelivery:
        """The delivery of one tracked number (KeyError if it is not tracked)."""
        return self._numbers[number]

    def message_id(self, number: str) -> str:
        """The message id a tracked number was accepted with (KeyError if it is not tracked)."""
        return self._by_number[number]

    def accepted_at(self, number: str) -> datetime:
        """When a tracked number's message was accepted (KeyError if it is not tracked)."""
        return self._ids[self._by_number[number]].accepted_at

    def items(self) -> Iterable[tuple[str, NumberDelivery]]:
        """Every tracked number with its delivery, in the order they were added."""
        return self._numbers.items()

    def tally(self) -> DeliveryTally:
        """Tracked numbers by state."""
        return DeliveryTally.of(d.state for d in self._numbers.values())


@attrs.frozen
class PollRound:
    """What one round of polls did."""

    #: Message ids polled (each once).
    ids: int = 0
    #: Look-up calls made (one request each, before retries): ceil(ids / the gateway's ids per request).
    requests: int = 0
    #: Ids whose look-up failed after retries (their numbers stay as they were).
    failed: int = 0


class DeliveryTracker:
    """Polls a :class:`DeliveryBook`'s due message ids through a sender, and records what it learns.

    Args:
        sender: An open :class:`~sms_async.BulkSender`: polls pass its gates
            (the shared 429 pause, the request meter, the concurrency slots).
        book: Where the states are kept.
        schedule: When ids are polled.
        report_share: The share (0 < share <= 1) of the sender's concurrency
            and request rate that polls may take, so that sends running
            alongside keep the rest.
        clock: Where time comes from (a :class:`~sms_async.testing.TestClock` in tests).
        round_limit: Ids fetched from the book at a time within a round.
        meter: The polls' own meter in front of the sender's; default: a
            :class:`~sms_async._limits.RateMeter` at ``report_share`` of the
            sender's request rate, if it has one. Processes that share one
            account's rate pass a meter they share, so that the polls of all
            of them together keep to the share.
    """

    def __init__(
        self,
        sender: BulkSender,
        book: DeliveryBook,
        *,
        schedule: PollSchedule | None = None,
        report_share: float = 0.1,
        clock: Clock = SYSTEM_CLOCK,
        round_limit: int = 10_000,
        meter: Meter | None = None,
    ) -> None:
        if isinstance(report_share, bool) or not 0 < report_share <= 1:
            raise ConfigurationError(f"report_share must be > 0 and <= 1, got {report_share!r}")
        if round_limit < 1:
            raise ConfigurationError(f"round_limit must be >= 1, got {round_limit!r}")
        self.sender = sender
        self.book = book
        self.schedule = schedule or PollSchedule()
        self.report_share = report_share
        self.clock = clock
        self.round_limit = round_limit
        #: Look-ups in flight at most: the share of the sender's concurrency (at least one).
        self.in_flight = max(1, math.floor(sender.concurrency * report_share))
        rate = getattr(sender.limits.requests, "per_second", None)
        # The share of the request rate, on a meter of the polls' own, in
        # front of the shared one: polls never hold more than their share of
        # its turns. It paces real requests, so it runs on real time.
        self.meter: Meter | None = (
            meter if meter is not None else RateMeter(rate * report_share) if rate else None
        )

    def __repr__(self) -> str:
        return f"DeliveryTracker({self.sender!r}, report_share={self.report_share:g})"

    async def poll_due(self) -> PollRound:
        """One round: poll every id due now, each once, recording as each answer comes.

        Raises:
            AuthenticationError, OutOfCreditError: the gateway refused the
                account; what was recorded stays, nothing else changes.
        """
        now = self.clock.now()
        per_request = max(1, self.sender.driver.max_status_batch)
        limiter = anyio.CapacityLimiter(self.in_flight)
        fatal: list[SmsError] = []
        ids = requests = failed = 0
        polled: set[str] = set()

        async def one(chunk: list[DueMessage]) -> None:
            nonlocal failed
            async with limiter:
                if fatal:
                    return
                if self.meter is not None:
                    await self.meter.acquire()
                try:
                    reports = await self.sender.delivery_reports([d.message_id for d in chunk])
                except GatewayError as error:
                    if error.aborts_run:
                        fatal.append(error)
                        return
                    raise
            polled_at = self.clock.now()
            outcomes, lost = self._outcomes(chunk, reports, polled_at)
            failed += lost
            await self.book.record(outcomes)

        while not fatal:
            due = [d for d in await self.book.due(now, self.round_limit) if d.message_id not in polled]
            if not due:
                break
            polled.update(d.message_id for d in due)
            ids += len(due)
            chunks = [due[i : i + per_request] for i in range(0, len(due), per_request)]
            requests += len(chunks)
            async with anyio.create_task_group() as tg:
                for chunk in chunks:
                    tg.start_soon(one, chunk)
        if fatal:
            raise fatal[0]
        return PollRound(ids, requests, failed)

    def _outcomes(
        self, chunk: list[DueMessage], reports: list[DeliveryReport], polled_at: datetime
    ) -> tuple[list[PollOutcome], int]:
        by_id: dict[str, list[DeliveryReport]] = {}
        for report in reports:
            by_id.setdefault(report.message_id, []).append(report)
        outcomes: list[PollOutcome] = []
        lost = 0
        for due in chunk:
            mine = by_id.get(due.message_id, [])
            answered = bool(mine) and all(r.error is None for r in mine)
            lost += not answered
            outcomes.append(
                PollOutcome(
                    due.message_id,
                    polled_at,
                    tuple(mine) if answered else (),
                    answered,
                    self.schedule.next_poll(due.accepted_at, due.polls + 1, polled_at),
                )
            )
        return outcomes, lost

    async def run(
        self,
        *,
        until_settled: bool = True,
        idle: float | None = None,
        on_round: Callable[[PollRound], object] | None = None,
    ) -> None:
        """Poll round after round, sleeping on the clock until the next poll is due.

        With ``until_settled`` it returns once no number is pending; without,
        it runs until cancelled (new ids may be added meanwhile), looking
        again every ``idle`` seconds (default: the first backoff step) when
        nothing is due. ``on_round`` hears of each round that polled
        something (a progress display, say).
        """
        idle = self.schedule.backoff[0] if idle is None else idle
        while True:
            done = await self.poll_due()
            if on_round is not None and done.ids:
                on_round(done)
            upcoming = await self.book.next_due()
            if upcoming is None:
                if until_settled:
                    return
                await self.clock.sleep(idle)
                continue
            await self.clock.sleep((upcoming - self.clock.now()).total_seconds())
