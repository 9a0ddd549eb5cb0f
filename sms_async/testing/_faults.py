"""Faults the simulated gateway can inject, and the plan that decides when each fires."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal, get_args

import attrs

from sms_async.testing._registry import check_operation_names

if TYPE_CHECKING:
    import random
    from collections.abc import Iterable

    from sms_async.testing._stats import GatewayStats

__all__ = ["Fault", "FaultKind", "FaultPlan", "parse_fault"]

FaultKind = Literal[
    "latency",
    "status_429",
    "status_503",
    "status_500",
    "status_502",
    "status_504",
    "stall",
    "drop_after_read",
    "html_body",
    "truncated_body",
    "wrong_type_body",
    "auth_failure",
    "partial_accept",
    "slow_drip",
]
KINDS: Final = frozenset(get_args(FaultKind))

WrongShape = Literal["list", "number", "string", "null", "map_of_lists"]
RetryAfterForm = Literal["seconds", "http_date"]


def _to_requests(value: Iterable[int]) -> frozenset[int]:
    numbers = frozenset(value)
    if any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in numbers):
        raise ValueError(f"on_requests holds 1-based request numbers, got {sorted(numbers, key=str)!r}")
    return numbers


def _to_operations(value: Iterable[str] | str | None) -> frozenset[str] | None:
    if value is None:
        return None
    return check_operation_names([value] if isinstance(value, str) else value)


def _check_rate(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be between 0 and 1, got {value!r}")


def _check_seconds(_instance: object, _attribute: object, value: float | tuple[float, float] | None) -> None:
    if value is None:
        return
    if isinstance(value, tuple):
        low, high = value
        if not 0 <= low <= high:
            raise ValueError(f"seconds range must be (min, max) with 0 <= min <= max, got {value!r}")
    elif value < 0:
        raise ValueError(f"seconds must not be negative, got {value!r}")


def _check_kind(_instance: object, _attribute: object, value: str) -> None:
    if value not in KINDS:
        raise ValueError(f"unknown fault kind {value!r}; known: {sorted(KINDS)!r}")


@attrs.frozen
class Fault:
    """One kind of misbehaviour, and when the simulated gateway shows it.

    A fault fires on a request when the request's number (1-based, counted per
    operation) is in ``on_requests``, or else with probability ``rate`` drawn
    from the gateway's seeded generator; never more than ``max_times`` times,
    and only for ``operations`` when that is given. Several ``latency`` faults
    add up; of the other kinds the first that fires in list order wins.

    Attributes:
        kind: What goes wrong (see :data:`FaultKind`).
        rate: Probability, 0 to 1, that a request is hit.
        on_requests: Request numbers always hit (1 is the first request of
            an operation since the gateway started, or since the last
            ``set_faults()`` or ``reset_stats()``).
        operations: Operation names the fault is limited to (``"iton.sendSMS"``,
            ``"iton.account"``, ``"iton.message_status"``,
            ``"iton.check_DNDnumber"``, ``"iton.unknown"``, ``"itecpay.send"``,
            ``"itecpay.status"``, ``"http.other"``, or those of another
            registered protocol); ``None`` for all.
        max_times: Most times this fault fires; ``None`` for no limit.
        seconds: ``latency``: the delay before the request is processed, fixed
            or a ``(min, max)`` uniform range. ``stall``: how long to hold the
            connection before closing it; ``None`` holds it until the client
            closes. ``slow_drip``: the pause after each byte (default 0.01).
        retry_after: ``status_429`` / ``status_503``: the Retry-After value, in
            seconds, or a string sent verbatim (to send garbage); ``None``
            sends no Retry-After header.
        retry_after_form: ``"seconds"`` sends the delay as a number, ``"http_date"``
            as the HTTP date that many seconds from now.
        process: ``status_500/502/504``, ``stall``, ``drop_after_read``,
            ``html_body``, ``wrong_type_body``: whether the request is carried
            out (credits taken, messages stored) before the bad answer. The
            default, True, is the worst case for a client.
        share: ``partial_accept``: the share of a batch's acceptable numbers
            that is accepted (rounded down).
        shape: ``wrong_type_body``: the JSON sent instead of the real answer.
    """

    kind: FaultKind = attrs.field(validator=_check_kind)
    rate: float = attrs.field(default=0.0, kw_only=True, validator=_check_rate)
    on_requests: frozenset[int] = attrs.field(default=frozenset(), kw_only=True, converter=_to_requests)
    operations: frozenset[str] | None = attrs.field(default=None, kw_only=True, converter=_to_operations)
    max_times: int | None = attrs.field(default=None, kw_only=True)
    seconds: float | tuple[float, float] | None = attrs.field(
        default=None, kw_only=True, validator=_check_seconds
    )
    retry_after: float | str | None = attrs.field(default=None, kw_only=True)
    retry_after_form: RetryAfterForm = attrs.field(
        default="seconds", kw_only=True, validator=attrs.validators.in_(get_args(RetryAfterForm))
    )
    process: bool = attrs.field(default=True, kw_only=True)
    share: float = attrs.field(default=0.5, kw_only=True, validator=_check_rate)
    shape: WrongShape = attrs.field(
        default="list", kw_only=True, validator=attrs.validators.in_(get_args(WrongShape))
    )

    @max_times.validator
    def _check_max_times(self, _attribute: object, value: int | None) -> None:
        if value is not None and value < 1:
            raise ValueError(f"max_times must be at least 1 or None, got {value!r}")

    def delay(self, rng: random.Random) -> float:
        """The seconds this fault waits (latency, drip pause), drawn from ``rng`` for a range."""
        if self.seconds is None:
            return 0.01 if self.kind == "slow_drip" else 0.0
        if isinstance(self.seconds, tuple):
            return rng.uniform(*self.seconds)
        return float(self.seconds)


class FaultPlan:
    """The faults in force, their request counters and how often each fired."""

    __slots__ = ("_counts", "_fired", "faults", "rng")

    def __init__(self, faults: Iterable[Fault], rng: random.Random) -> None:
        self.faults: tuple[Fault, ...] = tuple(faults)
        self.rng = rng
        self._fired = [0] * len(self.faults)
        self._counts: dict[str, int] = {}

    def replace(self, faults: Iterable[Fault]) -> None:
        """Put ``faults`` in force, restarting request numbers and fired counts."""
        self.faults = tuple(faults)
        self._fired = [0] * len(self.faults)
        self._counts = {}

    def restart_numbering(self) -> None:
        """Count requests from 1 again."""
        self._counts = {}

    def select(self, operation: str, stats: GatewayStats) -> tuple[float, Fault | None]:
        """Number this request of ``operation``; say the latency to add and the fault that fires."""
        number = self._counts.get(operation, 0) + 1
        self._counts[operation] = number
        if not self.faults:
            return 0.0, None
        latency = 0.0
        chosen: Fault | None = None
        rng = self.rng
        for index, fault in enumerate(self.faults):
            if chosen is not None and fault.kind != "latency":
                continue
            if fault.operations is not None and operation not in fault.operations:
                continue
            if fault.max_times is not None and self._fired[index] >= fault.max_times:
                continue
            hit = number in fault.on_requests or (fault.rate > 0.0 and rng.random() < fault.rate)
            if not hit:
                continue
            self._fired[index] += 1
            stats.faults[fault.kind] += 1
            if fault.kind == "latency":
                latency += fault.delay(rng)
            else:
                chosen = fault
        return latency, chosen


_FLOAT_OPTIONS: Final = frozenset({"rate", "share"})


def parse_fault(spec: str) -> Fault:
    """Read a fault from the command line: ``KIND[:RATE][:key=value]...``.

    Keys are the :class:`Fault` fields; ``on`` and ``ops`` are short for
    ``on_requests`` and ``operations``; lists are comma-separated; a range of
    seconds is written ``0.01-0.05``. Examples: ``status_429:0.05``,
    ``status_429:0.1:retry_after=2``, ``status_500:0:on=3,5:ops=iton.sendSMS``.
    """
    kind, *rest = spec.split(":")
    options: dict[str, object] = {}
    if rest and "=" not in rest[0]:
        options["rate"] = float(rest.pop(0))
    for item in rest:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"expected key=value in fault {spec!r}, got {item!r}")
        key = {"on": "on_requests", "ops": "operations"}.get(key, key)
        options[key] = _parse_option(key, value)
    return Fault(kind, **options)  # type: ignore[arg-type]


def _parse_option(key: str, value: str) -> object:
    if key in _FLOAT_OPTIONS:
        return float(value)
    if key == "on_requests":
        return frozenset(int(v) for v in value.split(",") if v)
    if key == "operations":
        return frozenset(v for v in value.split(",") if v)
    if key == "max_times":
        return int(value)
    if key == "process":
        return value.lower() in {"1", "true", "yes", "on"}
    if key == "seconds":
        if value.lower() == "none":
            return None
        low, sep, high = value.partition("-")
        return (float(low), float(high)) if sep else float(low)
    if key == "retry_after":
        try:
            return float(value)
        except ValueError:
            return value
    return value
