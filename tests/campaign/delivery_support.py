"""Shared by the delivery tests: the delivery books their common suite runs over, and drive()."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from typing import Protocol

from clock_support import drive  # noqa: F401 - the delivery tests import it from here

from sms_async.campaign import DeliveryBook, DeliveryTally, MemoryDeliveryBook, NumberDelivery


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


@contextlib.asynccontextmanager
async def memory_book() -> AsyncIterator[BookUnderTest]:
    """The in-memory book."""
    yield MemoryBookUnderTest()


#: Every book the conformance suite runs over, by name (each opened for one test); a store adds its own here.
BOOKS: dict[str, Callable[[], contextlib.AbstractAsyncContextManager[BookUnderTest]]] = {
    "memory": memory_book
}


def _add_stores() -> None:
    from store_books import postgresql_book, sqlite_book  # noqa: PLC0415 - beside this module

    BOOKS["sqlite"] = sqlite_book
    BOOKS["postgresql"] = postgresql_book


_add_stores()
