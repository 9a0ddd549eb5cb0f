"""Time, from one injectable place: the wall clock, a monotonic clock and a way to sleep.

Code that schedules by the calendar (sending windows, delivery polls due in an
hour, a give-up age of 72 hours) takes a :class:`Clock` instead of calling
``datetime.now``, ``time.monotonic`` and ``anyio.sleep`` itself, so that a test
drives it with :class:`sms_async.testing.TestClock` and covers days of
schedule in milliseconds. :data:`SYSTEM_CLOCK` is the default everywhere.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Final, Protocol, runtime_checkable

import anyio

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Where a piece of code reads the time and waits."""

    def now(self) -> datetime:
        """The current wall-clock time, timezone-aware (UTC)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (only differences mean something)."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (a checkpoint when ``seconds <= 0``)."""


class SystemClock:
    """The machine's clocks and anyio's sleep."""

    __slots__ = ()

    def now(self) -> datetime:
        """``datetime.now(UTC)``."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """``anyio.sleep(seconds)``."""
        await anyio.sleep(max(seconds, 0.0))

    def __repr__(self) -> str:
        return "SystemClock()"


#: The clock every component uses unless it is given another.
SYSTEM_CLOCK: Final[Clock] = SystemClock()
