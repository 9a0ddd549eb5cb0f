"""``poll_reports``: poll a stored campaign's delivery reports with a :class:`~sms_async.BulkSender`.

Polls ask the gateway about message ids the store's delivery book hands out
(leased, so that any number of pollers may work on one campaign at once:
``campaign reports``, a ``campaign run --reports``, Celery's poll tasks), and
record what they learn there. Polls share the account's rate and 429 pause
with the sends, through the store's meter, at the campaign's report share of
its rate. Windows and pause do not stop polling: a report may come at any hour.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from datetime import datetime

import attrs

from sms_async._clock import SYSTEM_CLOCK, Clock
from sms_async._engine import BulkSender
from sms_async._retry import RetryPolicy
from sms_async.campaign import (
    DeliveryTally,
    DeliveryTracker,
    PollRound,
    PollSchedule,
    Store,
    StoreUnavailableError,
)
from sms_async.cluster._rate import StoreMeter, StorePause
from sms_async.cluster._settings import account_key
from sms_async.providers import Driver
from sms_async.transports import HttpBackend, Timeouts

__all__ = ["ReportsPolled", "poll_reports"]


@attrs.frozen
class ReportsPolled:
    """What one call of :func:`poll_reports` did, and where the campaign's delivery stands."""

    campaign: int
    #: Rounds that polled something, ids polled and look-up requests made.
    rounds: int
    ids: int
    requests: int
    #: Numbers by delivery state when it returned.
    tally: DeliveryTally
    #: When the next poll is due (None: no number is pending).
    next_due: datetime | None


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for error in group.exceptions:
        found += _leaves(error) if isinstance(error, BaseExceptionGroup) else [error]
    return found


@contextlib.contextmanager
def _one_error() -> Iterator[None]:
    """A round's requests run in a task group: its failure, a group, is raised as the error it holds.

    The store out of reach (the rest of the round met it too) is raised as itself, so that the
    poll task retries it as a store error and the command line says so in one line.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        unavailable = [error for error in leaves if isinstance(error, StoreUnavailableError)]
        if unavailable:
            raise unavailable[0] from group
        if len(leaves) == 1:
            raise leaves[0] from group
        raise


async def poll_reports(
    store: Store,
    campaign: int,
    *,
    driver: Driver,
    until_settled: bool = False,
    budget: float = math.inf,
    concurrency: int = 32,
    account: str | None = None,
    schedule: PollSchedule | None = None,
    clock: Clock = SYSTEM_CLOCK,
    retry: RetryPolicy | None = None,
    timeouts: Timeouts | None = None,
    http: HttpBackend = "auto",
    on_round: Callable[[PollRound], object] | None = None,
) -> ReportsPolled:
    """Poll ``campaign``'s due message ids through ``driver`` and record what the gateway says.

    Args:
        store: The open campaign store.
        campaign: The campaign's id.
        driver: The gateway driver, with this process's own credentials.
        until_settled: Keep polling, sleeping on ``clock`` until the next poll is
            due, until no number is pending (or ``budget`` runs out); without,
            one round of what is due now.
        budget: Seconds (of ``clock``) to keep polling at most, with ``until_settled``.
        concurrency: The sender's slots; polls take the campaign's report share of them.
        account: The name of the account's shared rate limit (default: :func:`account_key` of ``driver``).
        schedule: When ids are polled (the default backoff and 72 h give-up age).
        clock: Where time comes from.
        retry: The retry policy (as for :class:`~sms_async.BulkSender`).
        timeouts: Network timeouts (as for :class:`~sms_async.BulkSender`).
        http: The transport (as for :class:`~sms_async.BulkSender`).
        on_round: Hears of each round that polled something.

    Raises:
        AuthenticationError, OutOfCreditError: the gateway refused the account;
            what was recorded stays.
        StoreUnavailableError: the store could not be reached (past its patience)
            in the middle of a round: what was recorded stays; ids leased and not
            recorded are polled again once their lease runs out.
    """
    found = await store.campaign(campaign)
    key = account or account_key(driver)
    # The polls' own meter at the share of the account's rate, shared through the store
    # by every process polling this account, in front of the sender's (none: the share
    # of the sender's concurrency is the bound).
    meter = StoreMeter(store, f"{key}:reports", found.rate * found.report_share) if found.rate else None
    sender = BulkSender(
        driver,
        concurrency=concurrency,
        default_region=found.region,
        # A look-up is a request too: it takes its turn on the account's meter, as sends do.
        messages_per_second=StoreMeter(store, key, found.rate) if found.rate else None,
        pause=StorePause(store, key),
        retry=retry,
        timeouts=timeouts,
        http=http,
    )
    book = store.delivery_book(campaign)
    rounds = ids = requests = 0

    def heard(done: PollRound) -> None:
        nonlocal rounds, ids, requests
        rounds, ids, requests = rounds + 1, ids + done.ids, requests + done.requests
        if on_round is not None:
            on_round(done)

    async with sender as bulk:
        tracker = DeliveryTracker(
            bulk, book, schedule=schedule, report_share=found.report_share, clock=clock, meter=meter
        )
        if until_settled:
            end = clock.monotonic() + budget
            while await book.next_due() is not None and clock.monotonic() < end:
                with _one_error():
                    done = await tracker.poll_due()
                if done.ids:
                    heard(done)
                upcoming = await book.next_due()
                if upcoming is None:
                    break
                wait = (upcoming - clock.now()).total_seconds()
                if wait <= 0 and not done.ids:
                    # Due, but nothing was handed out (another poller holds it): look again soon.
                    wait = 1.0
                if wait > 0:
                    await clock.sleep(min(wait, max(end - clock.monotonic(), 0)))
        else:
            with _one_error():
                done = await tracker.poll_due()
            if done.ids:
                heard(done)
    return ReportsPolled(
        campaign, rounds, ids, requests, await store.delivery_tally(campaign), await book.next_due()
    )
