"""Driving a test clock: shared by the delivery tests on one machine and on the cluster's stores."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from sms_async.testing import TestClock

T = TypeVar("T")


async def drive(clock: TestClock, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work()`` to its end, moving the clock on to the next deadline whenever it sleeps on the clock.

    ``work`` must do nothing else while it sleeps on the clock (no request in
    flight), so that moving time on cannot race with it. Returns what ``work`` returned.
    """
    found: list[T] = []
    async with anyio.create_task_group() as tg:
        done = anyio.Event()

        async def run() -> None:
            found.append(await work())
            done.set()

        tg.start_soon(run)
        while not done.is_set():
            deadline = clock.next_deadline()
            if deadline is not None:
                clock.advance(deadline)
            await anyio.sleep(0.001)
    return found[0]
