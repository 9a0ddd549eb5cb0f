"""Look-ups: delivery reports, their polling, do-not-disturb, the cost estimate; fanned out a chunk at a time.

Each look-up is one request through :meth:`Dispatcher.lookup` (the shared
gates, retried on any transient error: a look-up changes nothing at the
gateway). Here they are chunked to the gateway's limits, run concurrently,
and put back together in order.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from decimal import Decimal
from typing import TypeVar

import anyio
import attrs

from sms_async import _exceptions as exc
from sms_async._batching import Batcher, Recipients, tally_cost
from sms_async._dispatch import Dispatcher
from sms_async._models import DeliveryReport
from sms_async._wire import WireRequest, WireResponse

__all__ = [
    "Estimate",
    "check_balance",
    "check_dnd",
    "delivery_reports",
    "estimate",
    "lookup_chunks",
    "poll_delivery_reports",
]

T = TypeVar("T")


@attrs.frozen
class Estimate:
    """What a campaign will cost before it is sent."""

    #: Distinct valid recipients.
    recipients: int
    #: Parts per recipient (with a text per recipient: the most any one needs).
    segments: int
    #: Credits: parts summed over every recipient.
    cost: int
    balance: Decimal | None

    @property
    def affordable(self) -> bool | None:
        """Whether the balance covers the cost (``None`` when the balance is unknown)."""
        return None if self.balance is None else self.balance >= self.cost


async def estimate(dispatcher: Dispatcher, batcher: Batcher, recipients: Recipients) -> Estimate:
    """Read ``recipients`` through ``batcher`` for its cost; ask the balance where the gateway has one."""
    cost, most = await tally_cost(batcher, recipients)
    driver = dispatcher.driver
    balance: Decimal | None = None
    if driver.capabilities.balance:
        balance = await dispatcher.lookup(driver.build_balance(), driver.parse_balance, size=0)
    message = batcher.message
    return Estimate(batcher.distinct, most or (message.segments if message else 0), cost, balance)


async def lookup_chunks(
    dispatcher: Dispatcher,
    build: Callable[[Sequence[str]], WireRequest],
    parse: Callable[[Sequence[str], WireResponse], T],
    items: Sequence[str],
    chunk: int,
    on_failure: Callable[[Sequence[str], exc.SmsError], T],
) -> list[T]:
    """Look ``items`` up ``chunk`` at a time, concurrently under the sender's limits, in order.

    A chunk that fails after retries gives ``on_failure(chunk, error)``;
    bad credentials or no credit raise once every chunk has finished.
    """
    chunks = [list(items[i : i + chunk]) for i in range(0, len(items), chunk)]
    results: list[T | None] = [None] * len(chunks)
    fatal: list[exc.SmsError] = []

    async def one(position: int, part: list[str]) -> None:
        if fatal:
            return
        try:
            value = await dispatcher.lookup(build(part), lambda r: parse(part, r), size=len(part))
        except exc.SmsError as error:
            if isinstance(error, exc.GatewayError) and error.aborts_run:
                fatal.append(error)
                return
            value = on_failure(part, error)
        results[position] = value

    async with anyio.create_task_group() as tg:
        for position, part in enumerate(chunks):
            tg.start_soon(one, position, part)
    if fatal:
        raise fatal[0]
    return [r for r in results if r is not None]


async def delivery_reports(dispatcher: Dispatcher, message_ids: Iterable[str]) -> list[DeliveryReport]:
    """One report per (message id, number); a failed look-up gives UNKNOWN reports saying why."""
    ids = list(dict.fromkeys(message_ids))
    driver = dispatcher.driver

    def failed(part: Sequence[str], error: exc.SmsError) -> list[DeliveryReport]:
        return [DeliveryReport.lookup_failed(i, error.reason) for i in part]

    chunks = await lookup_chunks(
        dispatcher, driver.build_status, driver.parse_status, ids, driver.max_status_batch, failed
    )
    return [report for part in chunks for report in part]


async def poll_delivery_reports(
    dispatcher: Dispatcher, message_ids: Iterable[str], *, interval: float, timeout: float
) -> AsyncIterator[DeliveryReport]:
    """Yield reports as they change, re-asking only for ids not yet final, until all are or time is up."""
    if interval <= 0 or timeout <= 0:
        raise exc.ConfigurationError("interval and timeout must be > 0")
    pending = list(dict.fromkeys(message_ids))
    seen: dict[tuple[str, str | None], DeliveryReport] = {}
    give_up = time.monotonic() + timeout
    while pending:
        still: dict[str, None] = {}
        for report in await delivery_reports(dispatcher, pending):
            key = (report.message_id, report.number)
            previous = seen.get(key)
            if previous is None or previous.status != report.status or previous.raw != report.raw:
                seen[key] = report
                yield report
            if not report.is_final:
                still[report.message_id] = None
        pending = list(still)
        remaining = give_up - time.monotonic()
        if not pending or remaining <= 0:
            return
        await anyio.sleep(min(interval, remaining))


async def check_dnd(dispatcher: Dispatcher, normalised: list[str]) -> dict[str, bool]:
    """``{E.164: listed}`` for distinct E.164 numbers; a failed look-up raises its error."""
    driver = dispatcher.driver
    if not driver.capabilities.dnd:
        driver.build_dnd(normalised[:1])  # the driver's own words for what it lacks

    def failed(_part: Sequence[str], error: exc.SmsError) -> dict[str, bool]:
        raise error

    parts = await lookup_chunks(
        dispatcher, driver.build_dnd, driver.parse_dnd, normalised, driver.max_dnd_batch, failed
    )
    merged: dict[str, bool] = {}
    for part in parts:
        merged.update(part)
    return merged


async def check_balance(dispatcher: Dispatcher, batcher: Batcher, recipients: Recipients) -> Recipients:
    """Refuse a campaign the balance cannot pay for; the recipients come back as a list to send.

    Raises:
        InsufficientCreditError: the gateway's balance is below the campaign's cost.
    """
    if isinstance(recipients, AsyncIterable):
        recipients = [r async for r in recipients]
    elif not isinstance(recipients, Sequence | set | frozenset):
        recipients = list(recipients)
    cost = await estimate(dispatcher, batcher, recipients)
    if cost.balance is not None and cost.balance < cost.cost:
        raise exc.InsufficientCreditError(
            f"the campaign needs {cost.cost} credits ({cost.recipients} recipients) "
            f"but the balance is {cost.balance}: top up or send to fewer",
            needed=cost.cost,
            available=cost.balance,
        )
    return recipients
