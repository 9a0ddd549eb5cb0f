"""How fast a sender may go: requests in flight, messages and requests per second, the shared pause.

Every request of a sender passes the same gates, in this order, before it is
written: the pause a 429 or 503 imposed on the whole pool, the message meter
(charged the batch's size), the request meter, and a slot among the
``concurrency`` requests in flight. Each gate is shared by every ``send``,
``stream`` and look-up of one sender.

The meters follow the generic cell rate algorithm (GCRA, as aiometer does):
each caller reserves its turn on a virtual schedule before waiting for it, so
concurrent callers queue up in order, and the long-run rate never exceeds the
limit. Meters and the pause are protocols, so that a rate shared by many
processes (the cluster's) plugs in where the local one sits.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

import anyio

from sms_async import _exceptions as exc

__all__ = ["Limits", "Meter", "Pause", "RateMeter", "SharedPause"]


@runtime_checkable
class Meter(Protocol):
    """Spaces out work: ``acquire(cost)`` returns when ``cost`` units may go."""

    async def acquire(self, cost: int = 1) -> None:
        """Wait for the turn of ``cost`` units."""


@runtime_checkable
class Pause(Protocol):
    """A pause every request waits out, set when the gateway says it is busy."""

    async def pause(self, seconds: float) -> None:
        """Hold every new request for ``seconds`` from now (never shortens a pause in force)."""

    async def wait(self) -> None:
        """Return once no pause is in force."""


class RateMeter:
    """At most ``per_second`` units a second, on a virtual schedule (GCRA); idle time is not banked.

    Args:
        per_second: The rate, a positive finite number.
        clock: A monotonic clock (a fake one in tests).
        sleep: How to wait (a fake one in tests).
    """

    __slots__ = ("_clock", "_interval", "_next", "_sleep", "per_second")

    def __init__(
        self,
        per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        if isinstance(per_second, bool) or not per_second > 0 or math.isinf(per_second):
            raise exc.ConfigurationError(f"a rate limit must be a number > 0 per second, got {per_second!r}")
        self.per_second = float(per_second)
        self._interval = 1.0 / per_second
        self._next = 0.0
        self._clock = clock
        self._sleep = sleep

    async def acquire(self, cost: int = 1) -> None:
        """Reserve the turn of ``cost`` units, then wait for it."""
        now = self._clock()
        start = max(self._next, now)
        self._next = start + cost * self._interval
        delay = start - now
        if delay > 0:
            await self._sleep(delay)

    def __repr__(self) -> str:
        return f"RateMeter({self.per_second:g}/s)"


class SharedPause:
    """The pause of one process's pool: every worker waits it out before its next request."""

    __slots__ = ("_until",)

    def __init__(self) -> None:
        self._until = 0.0

    async def pause(self, seconds: float) -> None:
        """Hold every new request for ``seconds`` from now (never shortens a pause in force)."""
        self._until = max(self._until, time.monotonic() + seconds)

    async def wait(self) -> None:
        """Wait out any pause in force."""
        # A loop, not an Event: another 429 may extend the pause while we sleep.
        while (delay := self._until - time.monotonic()) > 0:  # noqa: ASYNC110
            await anyio.sleep(delay)

    @property
    def in_force(self) -> bool:
        """Whether a pause holds requests back right now."""
        return self._until > time.monotonic()

    @property
    def remaining(self) -> float:
        """Seconds left of the pause in force (0.0 when none is)."""
        return max(0.0, self._until - time.monotonic())


def _meter(value: float | Meter | None, what: str) -> Meter | None:
    if value is None or isinstance(value, Meter):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return RateMeter(value)
    raise exc.ConfigurationError(f"{what} must be a number per second or a meter, got {value!r}")


class Limits:
    """The gates of one sender, built when it opens.

    Args:
        concurrency: Requests in flight at most.
        messages_per_second: A rate (recipients a second) or a :class:`Meter`.
        requests_per_second: A rate (requests a second) or a :class:`Meter`.
        pause: The shared pause (a :class:`SharedPause` of this process by default).
    """

    __slots__ = ("_open_road", "concurrency", "messages", "pause", "requests", "slots")

    def __init__(
        self,
        concurrency: int,
        *,
        messages_per_second: float | Meter | None = None,
        requests_per_second: float | Meter | None = None,
        pause: Pause | None = None,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise exc.ConfigurationError(f"concurrency must be a whole number >= 1, got {concurrency!r}")
        self.concurrency = concurrency
        self.messages = _meter(messages_per_second, "messages_per_second")
        self.requests = _meter(requests_per_second, "requests_per_second")
        self.pause: Pause = pause if pause is not None else SharedPause()
        # No meter and this process's own pause: nothing to wait for unless a
        # 429 is being waited out, which clear() tells without a coroutine.
        self._open_road = (
            self.messages is None and self.requests is None and isinstance(self.pause, SharedPause)
        )
        #: The concurrency slots; made in the event loop that uses them (see :meth:`open`).
        self.slots: anyio.Semaphore | None = None

    def open(self) -> anyio.Semaphore:
        """Make the concurrency slots in the running event loop."""
        # fast_acquire: an uncontended acquire does not yield to the event
        # loop; a checkpoint there costs more than the rest of a request.
        self.slots = anyio.Semaphore(self.concurrency, fast_acquire=True)
        return self.slots

    def clear(self) -> bool:
        """Whether a request may go without waiting at any gate but the slot (checked without a coroutine)."""
        pause = self.pause
        return self._open_road and isinstance(pause, SharedPause) and not pause.in_force

    async def wait_turn(self, cost: int) -> None:
        """Every gate but the slot: the pause, then the meters (charged ``cost`` messages)."""
        await self.pause.wait()
        if self.messages is not None and cost:
            await self.messages.acquire(cost)
        if self.requests is not None:
            await self.requests.acquire()
