"""The retry policy: what is safe to send again, how long to wait, when to stop.

Safety is decided per operation, never per HTTP method (ITON sends with a
GET). Neither gateway offers an idempotency key, so a send that may have
reached the gateway is never repeated unless the caller opts in.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import anyio
import attrs
import tenacity

from sms_async import _exceptions as exc

__all__ = ["RetryBudget", "RetryPolicy", "Throttle"]

Operation = Literal["send", "lookup"]


def _positive(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise exc.ConfigurationError(f"RetryPolicy.{attribute.name} must be > 0, got {value!r}")


def _at_least_one(_inst: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise exc.ConfigurationError(f"RetryPolicy.{attribute.name} must be >= 1, got {value!r}")


@attrs.frozen
class RetryPolicy:
    """When and how a batch is tried again. Every default is in this signature.

    Args:
        attempts: tries per batch, the first included.
        initial_wait: the first backoff step, in seconds (exponential, full jitter).
        max_wait: the longest single backoff wait.
        retry_after_cap: the longest wait a gateway's ``Retry-After`` can impose.
        deadline: seconds a whole batch may take, retries and waits included
            (httpx-style timeouts apply per read, not per request).
        retry_ambiguous: also re-send a batch that may have reached the gateway
            (read timeout, dropped connection, 500/502/504, an unreadable 200).
            Off by default: it can double-send, and every SMS is billed.
        budget_ratio: retries the run may make per batch started, shared by
            all its batches, so that a dead gateway is not hammered ...
        budget_min: ... plus this many, so a small run can retry every batch.
    """

    attempts: int = attrs.field(default=4, validator=_at_least_one)
    initial_wait: float = attrs.field(default=0.2, validator=_positive)
    max_wait: float = attrs.field(default=10.0, validator=_positive)
    retry_after_cap: float = attrs.field(default=60.0, validator=_positive)
    deadline: float = attrs.field(default=120.0, validator=_positive)
    retry_ambiguous: bool = False
    budget_ratio: float = 0.2
    budget_min: int = 100

    def should_retry(self, error: BaseException, operation: Operation) -> bool:
        """Whether ``error`` may be retried for ``operation`` (budget aside)."""
        if isinstance(error, exc.NotSentError | exc.GatewayBusyError):
            return True
        if isinstance(error, exc.MaybeSentError | exc.AmbiguousResponseError):
            # A look-up changes nothing at the gateway; a send may double-send.
            return operation == "lookup" or self.retry_ambiguous
        return False

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential wait before retry number ``attempt`` (1-based)."""
        ceiling = min(self.max_wait, self.initial_wait * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography

    def wait_for(self, error: BaseException | None, attempt: int) -> float:
        """The wait before the next try: the gateway's Retry-After (capped), else backoff."""
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None and not math.isnan(retry_after):
            return min(float(retry_after), self.retry_after_cap)
        return self.backoff(attempt)

    def plan(
        self,
        error: BaseException,
        attempt: int,
        operation: Operation,
        *,
        budget: RetryBudget | None,
        deadline_at: float,
        throttle: Throttle | None,
    ) -> float | None:
        """The wait before retrying after try number ``attempt`` failed, or ``None`` to stop."""
        if attempt >= self.attempts or not self.should_retry(error, operation):
            return None
        wait = self.wait_for(error, attempt)
        if time.monotonic() + wait >= deadline_at:
            return None
        if budget is not None and not budget.take():
            return None
        if isinstance(error, exc.GatewayBusyError) and throttle is not None:
            # A 429 slows every worker, not only this one: they all wait out
            # the pause before their next request, this one included.
            throttle.pause(wait)
            return 0.0
        return wait

    def retrying(
        self,
        operation: Operation,
        *,
        budget: RetryBudget | None,
        deadline_at: float,
        throttle: Throttle | None = None,
        first_attempt: int = 1,
    ) -> tenacity.AsyncRetrying:
        """A tenacity loop that applies this policy, its tries numbered from ``first_attempt``."""
        planned: list[float] = [0.0]
        offset = first_attempt - 1

        def retry(state: tenacity.RetryCallState) -> bool:
            outcome = state.outcome
            if outcome is None or not outcome.failed:
                return False
            error = outcome.exception()
            if error is None:
                return False
            wait = self.plan(
                error,
                state.attempt_number + offset,
                operation,
                budget=budget,
                deadline_at=deadline_at,
                throttle=throttle,
            )
            if wait is None:
                return False
            planned[0] = wait
            return True

        return tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(max(1, self.attempts - offset)),
            wait=lambda _state: planned[0],
            retry=retry,
            reraise=True,
            sleep=anyio.sleep,
        )


class RetryBudget:
    """Retries a run may still make: ``budget_min + budget_ratio x batches started``."""

    __slots__ = ("_ratio", "_started", "_used", "minimum")

    def __init__(self, policy: RetryPolicy) -> None:
        self._ratio = policy.budget_ratio
        self.minimum = policy.budget_min
        self._started = 0
        self._used = 0

    def started(self) -> None:
        """Count one more batch started."""
        self._started += 1

    def take(self) -> bool:
        """Use one retry if the budget allows it."""
        if self._used < self.minimum + self._ratio * self._started:
            self._used += 1
            return True
        return False

    @property
    def used(self) -> int:
        """Retries used so far."""
        return self._used


class Throttle:
    """A pause shared by every worker of a sender, set by 429/503 answers."""

    __slots__ = ("_until",)

    def __init__(self) -> None:
        self._until = 0.0

    def pause(self, seconds: float) -> None:
        """Hold every new request for ``seconds`` from now (never shortens a pause)."""
        self._until = max(self._until, time.monotonic() + seconds)

    async def wait(self) -> None:
        """Wait out any pause in force."""
        while True:
            delay = self._until - time.monotonic()
            if delay <= 0:
                return
            await anyio.sleep(delay)


class RateMeter:
    """Spaces out work to at most ``per_second`` units per second, shared by all workers.

    Each caller reserves its turn before waiting for it, so concurrent callers
    queue up in order and the long-run rate never exceeds the limit.
    """

    __slots__ = ("_clock", "_interval", "_next", "_sleep")

    def __init__(
        self,
        per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        if not per_second > 0 or math.isinf(per_second):
            raise exc.ConfigurationError(f"a rate limit must be a number > 0 per second, got {per_second!r}")
        self._interval = 1.0 / per_second
        self._next = 0.0
        self._clock = clock
        self._sleep = sleep

    async def acquire(self, cost: int = 1) -> None:
        """Wait for the turn of ``cost`` units."""
        now = self._clock()
        start = max(self._next, now)
        self._next = start + cost * self._interval
        delay = start - now
        if delay > 0:
            await self._sleep(delay)
