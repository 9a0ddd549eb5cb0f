"""The retry policy: what is safe to send again, how long to wait, when to stop.

Safety is decided per operation, never per HTTP method (ITON sends with a
GET). Neither gateway offers an idempotency key, so a send that may have
reached the gateway is never repeated unless the caller opts in.

The policy is tenacity's: :meth:`RetryPolicy.retrying` builds a
``tenacity.Retrying`` whose ``retry``, ``wait``, ``stop`` and ``before_sleep``
pieces carry the whole policy, and :func:`call_with_retries` drives its state
machine from async code (as ``tenacity.AsyncRetrying`` does, without its
per-call overhead). The state machine is set up only once a try has failed,
seeded with that failure, so a request that succeeds first time costs nothing
here. Per-call facts (the operation's deadline, the run's retry budget) reach
the pieces through ``RetryCallState.kwargs``.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol, TypeVar

import attrs
import tenacity

from sms_async import _exceptions as exc

__all__ = ["Deadline", "Operation", "RetryBudget", "RetryContext", "RetryPolicy", "call_with_retries"]

T = TypeVar("T")
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
        deadline: seconds a whole batch may take once its first request
            leaves, retries and waits included (httpx-style timeouts apply per
            read, not per request).
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
        """Whether ``error`` may be retried for ``operation`` (attempts, deadline and budget aside)."""
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

    def retrying(
        self,
        operation: Operation,
        *,
        before_sleep: Callable[[tenacity.RetryCallState], None] | None = None,
    ) -> tenacity.Retrying:
        """The tenacity state machine of this policy for ``operation``.

        ``before_sleep`` sees every retry decided (for logs and metrics),
        after the run's budget has paid for it.
        """

        def wait(state: tenacity.RetryCallState) -> float:
            return self.wait_for(_error_of(state), state.attempt_number)

        def stop_past_deadline(state: tenacity.RetryCallState) -> bool:
            # Sleeping past the deadline would only end in a deadline error.
            return time.monotonic() + state.upcoming_sleep >= _context(state).deadline_at

        def stop_without_budget(state: tenacity.RetryCallState) -> bool:
            budget = _context(state).budget
            return budget is not None and not budget.available()

        def pay_then_report(state: tenacity.RetryCallState) -> None:
            budget = _context(state).budget
            if budget is not None:
                budget.take()
            if before_sleep is not None:
                before_sleep(state)

        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda error: self.should_retry(error, operation)),
            wait=wait,
            stop=tenacity.stop_any(
                tenacity.stop_after_attempt(self.attempts),
                _Stop(stop_past_deadline),
                _Stop(stop_without_budget),
            ),
            before_sleep=pay_then_report,
            reraise=True,
        )


class _Stop(tenacity.stop.stop_base):
    """A stop condition from a predicate on the retry state."""

    def __init__(self, predicate: Callable[[tenacity.RetryCallState], bool]) -> None:
        self._predicate = predicate

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self._predicate(retry_state)


class RetryBudget:
    """Retries a run may still make: ``budget_min + budget_ratio x batches started``."""

    __slots__ = ("_minimum", "_ratio", "_started", "_used")

    def __init__(self, policy: RetryPolicy) -> None:
        self._ratio = policy.budget_ratio
        self._minimum = policy.budget_min
        self._started = 0
        self._used = 0

    def started(self) -> None:
        """Count one more batch started."""
        self._started += 1

    def available(self) -> bool:
        """Whether one more retry is allowed."""
        return self._used < self._minimum + self._ratio * self._started

    def take(self) -> None:
        """Use one retry."""
        self._used += 1


class RetryContext(Protocol):
    """What the policy's pieces need to know about one call: its deadline and the run's budget."""

    #: ``time.monotonic()`` past which no retry is worth starting.
    deadline_at: float
    budget: RetryBudget | None


@attrs.define
class Deadline:
    """A :class:`RetryContext` of its own, for a call that has no other state to carry it."""

    deadline_at: float
    budget: RetryBudget | None = None


def _context(state: tenacity.RetryCallState) -> RetryContext:
    context: RetryContext = state.kwargs["context"]
    return context


def _error_of(state: tenacity.RetryCallState) -> BaseException | None:
    outcome = state.outcome
    return outcome.exception() if outcome is not None and outcome.failed else None


async def call_with_retries(
    retrying: tenacity.Retrying,
    attempt: Callable[[], Awaitable[T]],
    context: RetryContext,
    sleep: Callable[[exc.SmsError, float], Awaitable[None]],
) -> T:
    """Run ``attempt`` under ``retrying``; return its result or raise its last error.

    ``sleep(error, seconds)`` is awaited for each retry tenacity decides: the
    caller waits there (and does what a wait means to it, such as pausing
    the whole pool after a 429). Only :class:`~sms_async.SmsError` is retried;
    anything else (a cancellation, a bug) goes straight through.
    """
    try:
        return await attempt()
    except exc.SmsError:
        # A copy per call, as tenacity's own wrappers make: its statistics are the call's own.
        retrying = retrying.copy()
        retrying.begin()
        state = tenacity.RetryCallState(retrying, None, (), {"context": context})
        state.set_exception(sys.exc_info())  # type: ignore[arg-type]
    while True:
        action = retrying.iter(state)
        if isinstance(action, tenacity.DoSleep):
            error = _error_of(state)
            assert isinstance(error, exc.SmsError)  # noqa: S101 - only SmsError is caught above
            state.prepare_for_next_attempt()
            await sleep(error, float(action))
        elif isinstance(action, tenacity.DoAttempt):
            try:
                result = await attempt()
            except exc.SmsError:
                state.set_exception(sys.exc_info())  # type: ignore[arg-type]
            else:
                state.set_result(result)
        else:
            return action  # type: ignore[no-any-return]
