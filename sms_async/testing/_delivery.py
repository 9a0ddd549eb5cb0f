"""Delivery outcomes the simulated gateway plays out over (test) time, and its log of request times.

A :class:`DeliveryPlan` says how each number's message ends and when: rules
that share the numbers out (80% delivered at once, 15% after an hour, 5%
never) and overrides for single numbers. Each number's rule is drawn once
from a hash of the plan's seed and the number, so the same number always
meets the same fate, on every gateway and in every run, and a test can ask
the plan what the gateway will say (:meth:`DeliveryPlan.expected`).

Ages are measured on the gateway's clock: give it a
:class:`~sms_async.testing.TestClock` (``SimulatedGateway(clock=...)``) and an
hour passes when the test says so.

A :class:`RequestLog` given to the gateway records the time of every request
it receives (on the same clock): the evidence that nothing was sent, or
polled, when it should not have been.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, Literal, get_args

import attrs

if TYPE_CHECKING:
    from sms_async._clock import Clock
    from sms_async.testing._state import Outcome, Stage

__all__ = ["DeliveryPlan", "DeliveryRule", "Fate", "LoggedRequest", "RequestLog"]

#: How a number's message ends: a final status, or ``"never"`` (it stays sent for ever).
Fate = Literal["delivered", "undelivered", "failed", "never"]
_FATES: Final = frozenset(get_args(Fate))


def _check_fate(_instance: object, _attribute: object, value: str) -> None:
    if value not in _FATES:
        raise ValueError(f"a delivery outcome is one of {sorted(_FATES)!r}, got {value!r}")


def _check_share(_instance: object, _attribute: object, value: float) -> None:
    if not 0 <= value <= 1:
        raise ValueError(f"a delivery rule's share is between 0 and 1, got {value!r}")


def _check_after(_instance: object, _attribute: object, value: float) -> None:
    if not value >= 0 or math.isinf(value):
        raise ValueError(f"a delivery delay is a finite number of seconds >= 0, got {value!r}")


@attrs.frozen
class DeliveryRule:
    """How a share of the numbers ends.

    Args:
        outcome: ``"delivered"``, ``"undelivered"``, ``"failed"``, or
            ``"never"`` (no final status: it reads as sent for ever).
        share: The part of the numbers it applies to (ignored in an override).
        after: Seconds after acceptance when the final status shows (it
            never shows before the gateway's ``status_delays`` have passed).
    """

    outcome: Fate = attrs.field(validator=_check_fate)
    share: float = attrs.field(default=1.0, validator=_check_share)
    after: float = attrs.field(default=0.0, validator=_check_after)


class DeliveryPlan:
    """How each number's messages end, and when.

    Args:
        rules: Rules whose shares add up to 1, such as
            ``[DeliveryRule("delivered", 0.8), DeliveryRule("delivered", 0.15, after=3600),
            DeliveryRule("never", 0.05)]``.
        overrides: Rules for single numbers (``+digits`` or digits), taking
            precedence over the shares.
        seed: Seeds which numbers each share takes.
    """

    __slots__ = ("_bounds", "overrides", "rules", "seed")

    def __init__(
        self,
        rules: Iterable[DeliveryRule],
        *,
        overrides: Mapping[str, DeliveryRule] | None = None,
        seed: int = 0,
    ) -> None:
        self.rules = tuple(rules)
        if not self.rules:
            raise ValueError("a delivery plan needs at least one rule")
        total = sum(r.share for r in self.rules)
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"the shares of a delivery plan's rules must add up to 1, got {total!r}")
        self.overrides = {n.removeprefix("+"): rule for n, rule in (overrides or {}).items()}
        self.seed = seed
        bounds: list[float] = []
        total = 0.0
        for rule in self.rules:
            total += rule.share
            bounds.append(total)
        bounds[-1] = 1.0  # the last rule takes whatever rounding left over
        self._bounds = tuple(bounds)

    def __repr__(self) -> str:
        return f"DeliveryPlan({len(self.rules)} rules, {len(self.overrides)} overrides, seed={self.seed})"

    def rule_for(self, number: str) -> DeliveryRule:
        """The rule ``number`` (``+digits`` or digits) falls under."""
        digits = number.removeprefix("+")
        rule = self.overrides.get(digits)
        if rule is not None:
            return rule
        digest = hashlib.blake2b(f"{self.seed}:{digits}".encode(), digest_size=8).digest()
        draw = int.from_bytes(digest, "big") / 2**64
        for rule, bound in zip(self.rules, self._bounds, strict=True):
            if draw < bound:
                return rule
        return self.rules[-1]

    def status(self, number: str, age: float, stage: Stage) -> Stage | Outcome:
        """The status of ``number``'s message at ``age`` seconds, given the gateway's ``stage`` for it."""
        if stage in {"queued", "processing"}:
            return stage
        rule = self.rule_for(number)
        if rule.outcome == "never" or stage != "final" or age < rule.after:
            return "sent"
        return rule.outcome

    def expected(self, numbers: Iterable[str], age: float) -> Counter[str]:
        """How many of ``numbers`` show each status at ``age`` (past the gateway's ``status_delays``).

        Keys: ``"delivered"``, ``"undelivered"``, ``"failed"`` and ``"sent"`` (not final yet, or never).
        """
        return Counter(self.status(n, age, "final") for n in numbers)


@attrs.frozen
class LoggedRequest:
    """One request the gateway received."""

    #: When it arrived, on the gateway's clock (timezone-aware, UTC).
    at: datetime
    #: The operation it was read as (``"iton.sendSMS"``, ``"itecpay.status"``, ...).
    operation: str


class RequestLog:
    """The time of every request a simulated gateway receives (faulted ones included).

    Written by the gateway's thread, read by the test's: each method takes a copy.
    """

    __slots__ = ("_entries", "_lock")

    def __init__(self) -> None:
        self._entries: list[LoggedRequest] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RequestLog({len(self)} requests)"

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def record(self, operation: str, clock: Clock | None) -> None:
        """Log a request to ``operation`` now (on ``clock``, or the machine's clock)."""
        at = clock.now() if clock is not None else datetime.now(UTC)
        with self._lock:
            self._entries.append(LoggedRequest(at, operation))

    def entries(self, operation: str | None = None) -> list[LoggedRequest]:
        """The requests so far, in arrival order; only those to ``operation`` (or a prefix: ``"iton."``)."""
        with self._lock:
            entries = list(self._entries)
        if operation is None:
            return entries
        return [e for e in entries if e.operation == operation or e.operation.startswith(operation)]

    def between(self, start: datetime, end: datetime, operation: str | None = None) -> list[LoggedRequest]:
        """The requests that arrived in ``[start, end)``."""
        return [e for e in self.entries(operation) if start <= e.at < end]

    def clear(self) -> None:
        """Forget every request logged so far."""
        with self._lock:
            self._entries.clear()
