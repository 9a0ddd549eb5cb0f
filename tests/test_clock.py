"""The injectable clock: the system default, and the test clock that tests drive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from sms_async._clock import SYSTEM_CLOCK, Clock
from sms_async.testing import TestClock


def test_system_clock_is_a_clock_with_an_aware_utc_now():
    """The default clock satisfies the protocol and tells UTC, aware."""
    assert isinstance(SYSTEM_CLOCK, Clock)
    assert SYSTEM_CLOCK.now().utcoffset() == timedelta(0)
    assert SYSTEM_CLOCK.monotonic() <= SYSTEM_CLOCK.monotonic()


def test_test_clock_is_a_clock_and_moves_only_when_advanced():
    """The test clock satisfies the protocol; its wall and monotonic times move together, only on advance."""
    start = datetime(2026, 12, 6, 15, 20, tzinfo=UTC)
    clock = TestClock(start)
    assert isinstance(clock, Clock)
    assert clock.now() == start
    assert clock.monotonic() == 0.0
    clock.advance(90)
    assert clock.now() == start + timedelta(seconds=90)
    assert clock.monotonic() == 90.0


def test_test_clock_refuses_to_go_back_or_start_naive():
    """Time never moves backwards, and a naive start is refused with a message saying so."""
    with pytest.raises(ValueError, match="timezone-aware"):
        TestClock(datetime(2026, 1, 1))  # noqa: DTZ001  (the naive time under test)
    clock = TestClock()
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(-1)
    clock.advance(10)
    with pytest.raises(ValueError, match="before the clock's time"):
        clock.advance_to(clock.now() - timedelta(seconds=1))


async def test_advance_wakes_exactly_the_sleepers_whose_deadline_passed():
    """A sleeper wakes when the clock passes its deadline, never before, and without real waiting."""
    clock = TestClock()
    woke: list[float] = []

    async def sleeper(seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(seconds)

    async with anyio.create_task_group() as tg:
        for seconds in (3600.0, 30.0, 120.0):
            tg.start_soon(sleeper, seconds)
        await wait_all_tasks_blocked()
        assert clock.sleepers == 3
        assert clock.next_deadline() == 30.0
        clock.advance(29.9)
        await wait_all_tasks_blocked()
        assert woke == []
        clock.advance(100)
        await wait_all_tasks_blocked()
        assert woke == [30.0, 120.0]
        clock.advance_to(clock.now() + timedelta(hours=1))
    assert woke == [30.0, 120.0, 3600.0]
    assert clock.sleepers == 0


async def test_sleeping_zero_seconds_is_a_checkpoint():
    """A sleep of no time returns at once instead of waiting for an advance."""
    clock = TestClock()
    with anyio.fail_after(5):
        await clock.sleep(0)
        await clock.sleep(-1)
    assert clock.sleepers == 0
