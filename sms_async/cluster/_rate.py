"""One rate limit and one 429 pause per gateway account, shared by every worker through the store.

:class:`StoreMeter` is the engine's :class:`~sms_async._limits.Meter` with its
schedule in the store: the same generic cell rate algorithm as the local
meter (each caller reserves the next slot of a virtual schedule, then waits
for it; idle time is not banked), kept in one row per account and advanced
by one atomic statement on the database's clock. Requests are therefore
spread evenly over each second whatever the number of workers, and no
worker's clock matters. A window-counting limiter (such as the ``limits``
library's moving window) would let a whole second's quota out at the start
of each window, and the gateway would see those bursts.

:class:`StorePause` is the engine's :class:`~sms_async._limits.Pause`: a 429
seen by one worker holds every worker of the account, because each
reservation starts after the pause, and waiting workers look the pause up
a few times a second.
"""

from __future__ import annotations

import logging
import math
import time
from contextvars import ContextVar
from typing import Final

import anyio

from sms_async._exceptions import ConfigurationError
from sms_async.campaign import Store, StoreUnavailableError

__all__ = ["StoreMeter", "StorePause", "keep_pace"]

logger = logging.getLogger("sms_async.cluster")

# Seconds between look-ups of a pause set by another worker.
_REFRESH: Final = 0.25
# A batch claimed this long after its slot came takes a new one before it is sent.
_LATE: Final = 1.0

# The slot the current task reserved last: its meter, its cost and when it came.
_reserved: ContextVar[tuple[StoreMeter, int, float] | None] = ContextVar("sms_async_reserved", default=None)


async def keep_pace() -> bool:
    """After a claim: whether the batch may be sent now, having waited for a new slot if its own is long past.

    A claim held up (a store that stopped answering for a while) would
    otherwise send its batch together with every other one held with it:
    after a 20 s partition, six times the account's rate in one second. False
    when the run stopped while the batch waited: then it is not to be sent.
    """
    reserved = _reserved.get()
    if reserved is None:
        return True
    meter, cost, came = reserved
    if time.monotonic() - came <= _LATE:
        return True
    await meter.acquire(cost)
    return meter.interrupt is None or not meter.interrupt.is_set()


class StoreMeter:
    """At most ``per_second`` units a second for account ``key``, across every process using the store.

    Args:
        store: The campaign store.
        key: The account's rate limit name (see :func:`~sms_async.cluster.account_key`).
        per_second: The rate.
        interrupt: Once set, waits end at once (the campaign stopped: whatever
            waited will not be claimed, so nothing goes early).
    """

    def __init__(
        self, store: Store, key: str, per_second: float, *, interrupt: anyio.Event | None = None
    ) -> None:
        if isinstance(per_second, bool) or not per_second > 0 or math.isinf(per_second):
            raise ConfigurationError(f"a rate limit must be a number > 0 per second, got {per_second!r}")
        self._store = store
        self.key = key
        self.per_second = float(per_second)
        self._interrupt = interrupt
        self._own_tat = -math.inf

    @property
    def interrupt(self) -> anyio.Event | None:
        """The event that ends this meter's waits (the run stopping), if any."""
        return self._interrupt

    async def acquire(self, cost: int = 1) -> None:
        """Reserve the account's next slot for ``cost`` units, then wait for it.

        A reservation the store cannot take is asked again, a slot of this
        process's own pace later, until the store answers or the run stops
        (``interrupt``): a batch never goes without its place in the shared
        schedule, or every batch that waited out an outage would go at once
        when the store came back. Without ``interrupt`` (no run to stop), this
        process's own pace, one schedule for all its callers, stands in.
        """
        seconds = cost / self.per_second
        while True:
            try:
                row = await self._store.fetchone("reserve", key=self.key, seconds=seconds)
                break
            except StoreUnavailableError:
                # Never into the engine (it would make it a batch's outcome).
                own = self._own_slot(seconds)
                if self._interrupt is None:
                    await anyio.sleep(own)
                    return
                with anyio.move_on_after(own):
                    await self._interrupt.wait()
                if self._interrupt.is_set():
                    return  # the run stops: nothing that waited is claimed
        delay = float(row[0]) if row else 0.0
        _reserved.set((self, cost, time.monotonic() + max(delay, 0.0)))
        if delay <= 0:
            return
        if self._interrupt is None:
            await anyio.sleep(delay)
            return
        with anyio.move_on_after(delay):
            await self._interrupt.wait()

    def _own_slot(self, seconds: float) -> float:
        """Reserve the next slot of this process's own schedule; how long until it comes."""
        now = time.monotonic()
        self._own_tat = max(self._own_tat, now) + seconds
        return self._own_tat - seconds - now

    def __repr__(self) -> str:
        return f"StoreMeter({self.key!r}, {self.per_second:g}/s)"


class StorePause:
    """The pause of account ``key``, shared by every process using the store."""

    def __init__(self, store: Store, key: str) -> None:
        self._store = store
        self.key = key
        self._until = 0.0
        self._checked = -math.inf
        self._checking = False

    async def pause(self, seconds: float) -> None:
        """Hold every request of the account for ``seconds`` from now (never shortens a pause)."""
        self._until = max(self._until, time.monotonic() + seconds)
        try:
            await self._store.execute("pause", key=self.key, seconds=float(seconds))
        except StoreUnavailableError as error:
            # This process still waits; the others will hear the gateway's own 429s.
            logger.warning("could not share a pause of %.1f s: %s", seconds, error)

    async def wait(self) -> None:
        """Return once no pause of the account is in force."""
        now = time.monotonic()
        if now - self._checked >= _REFRESH and not self._checking:
            self._checking = True
            try:
                row = await self._store.fetchone("paused_for", key=self.key)
            except StoreUnavailableError:
                row = None  # this process's own pause still holds; the run's next claim stops it
            finally:
                self._checking = False
            if row is not None and row[0] > 0:
                self._until = max(self._until, time.monotonic() + float(row[0]))
            self._checked = now
        # A loop, not an Event: another 429 may extend the pause while we sleep.
        while (delay := self._until - time.monotonic()) > 0:  # noqa: ASYNC110
            await anyio.sleep(delay)

    def __repr__(self) -> str:
        return f"StorePause({self.key!r})"
