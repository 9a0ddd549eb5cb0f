"""A clock that tests drive: time moves only when the test says so, and sleepers wake at once.

:class:`TestClock` implements :class:`sms_async._clock.Clock`. A task that
sleeps on it waits until a test calls :meth:`TestClock.advance` (or
:meth:`TestClock.advance_to`) past its deadline, never for real time, so
a schedule of days runs in milliseconds. The simulated gateway takes the same
clock (``SimulatedGateway(clock=...)``), so message ages, delivery delays and
the request log agree with the code under test.

Advance the clock from the event loop its sleepers run on (the simulator's
thread only reads it).
"""

from __future__ import annotations

import heapq
import itertools
from datetime import UTC, datetime, timedelta

import anyio
import anyio.lowlevel

__all__ = ["TestClock"]


class TestClock:
    """A wall clock and a monotonic clock that move only when :meth:`advance` is called.

    Args:
        start: The wall-clock time to start at (timezone-aware); default
            2026-01-05 00:00 UTC, a Monday.
    """

    # Not a test case, whatever pytest's collector guesses from the name.
    __test__ = False

    __slots__ = ("_counter", "_elapsed", "_sleepers", "_start")

    def __init__(self, start: datetime | None = None) -> None:
        if start is None:
            start = datetime(2026, 1, 5, tzinfo=UTC)
        if start.utcoffset() is None:
            raise ValueError(f"the test clock's start must be timezone-aware, got {start!r}")
        self._start = start.astimezone(UTC)
        self._elapsed = 0.0
        # (deadline, order, event): the order keeps equal deadlines first come, first woken.
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._counter = itertools.count()

    def __repr__(self) -> str:
        return f"TestClock({self.now().isoformat()}, sleepers={len(self._sleepers)})"

    def now(self) -> datetime:
        """The clock's wall-clock time, in UTC."""
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        """Seconds advanced since the clock was made."""
        return self._elapsed

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has been advanced by ``seconds`` (a checkpoint when ``seconds <= 0``)."""
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        heapq.heappush(self._sleepers, (self._elapsed + seconds, next(self._counter), event))
        await event.wait()

    @property
    def sleepers(self) -> int:
        """Tasks sleeping on this clock right now."""
        return sum(1 for _, _, event in self._sleepers if not event.is_set())

    def next_deadline(self) -> float | None:
        """Seconds from now until the earliest sleeper wakes, or None when none sleeps."""
        if not self._sleepers:
            return None
        return max(self._sleepers[0][0] - self._elapsed, 0.0)

    def advance(self, seconds: float) -> None:
        """Move time on by ``seconds`` and wake every sleeper whose deadline has come."""
        if seconds < 0:
            raise ValueError(f"the clock only moves forward, got {seconds!r}")
        self._elapsed += seconds
        sleepers = self._sleepers
        while sleepers and sleepers[0][0] <= self._elapsed:
            heapq.heappop(sleepers)[2].set()

    def advance_to(self, when: datetime) -> None:
        """Move time on to ``when`` (timezone-aware, not in the clock's past) and wake who is due."""
        if when.utcoffset() is None:
            raise ValueError(f"give a timezone-aware time, got {when!r}")
        seconds = (when - self.now()).total_seconds()
        if seconds < 0:
            raise ValueError(f"{when.isoformat()} is before the clock's time, {self.now().isoformat()}")
        self.advance(seconds)
