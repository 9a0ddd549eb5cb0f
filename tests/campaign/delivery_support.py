"""Shared by the delivery tests: driving a test clock, and the delivery books their common suite runs over."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Protocol

import anyio

from sms_async.campaign import DeliveryBook, DeliveryTally, MemoryDeliveryBook, NumberDelivery
from sms_async.testing import TestClock


async def drive(clock: TestClock, work: Callable[[], Awaitable[object]]) -> None:
    """Run ``work()`` to its end, moving the clock on to the next deadline whenever it sleeps on the clock.

    ``work`` must do nothing else while it sleeps on the clock (no request in
    flight), so that moving time on cannot race with it.
    """
    async with anyio.create_task_group() as tg:
        done = anyio.Event()

        async def run() -> None:
            await work()
            done.set()

        tg.start_soon(run)
        while not done.is_set():
            deadline = clock.next_deadline()
            if deadline is not None:
                clock.advance(deadline)
            await anyio.sleep(0.001)


class BookUnderTest(Protocol):
    """What the conformance suite needs of a store besides the :class:`DeliveryBook` protocol.

    A store implements these with its own calls (accepted batches come in as
    it settles them; states come out in ``status`` and ``export``).
    """

    book: DeliveryBook

    async def add(self, message_ids: Mapping[str, str], accepted_at: datetime) -> None:
        """Track accepted numbers, ``{E.164: message id}``."""

    async def delivery(self, number: str) -> NumberDelivery:
        """One number's delivery."""

    async def tally(self) -> DeliveryTally:
        """Numbers by state."""


class MemoryBookUnderTest:
    """The in-memory book."""

    def __init__(self) -> None:
        self.memory = MemoryDeliveryBook()
        self.book = self.memory

    async def add(self, message_ids: Mapping[str, str], accepted_at: datetime) -> None:
        """Track accepted numbers."""
        self.memory.add(message_ids, accepted_at)

    async def delivery(self, number: str) -> NumberDelivery:
        """One number's delivery."""
        return self.memory.delivery(number)

    async def tally(self) -> DeliveryTally:
        """Numbers by state."""
        return self.memory.tally()


#: Every book the conformance suite runs over, by name; a store adds its own here.
BOOKS: dict[str, Callable[[], BookUnderTest]] = {"memory": MemoryBookUnderTest}
