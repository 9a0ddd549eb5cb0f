"""Counters kept by the simulated gateway, read by tests to prove what happened."""

from __future__ import annotations

import heapq
from collections import Counter
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["GatewayStats", "max_in_window"]


def max_in_window(points: Iterable[tuple[float, int]], window: float = 1.0) -> int:
    """The most numbers in any interval of ``window`` seconds, from ``(time, count)`` points in time order.

    An interval is half-open, ``(t - window, t]``: two sends exactly ``window``
    apart never share one.
    """
    if window <= 0:
        raise ValueError(f"window must be a positive number of seconds, got {window!r}")
    ordered = points if isinstance(points, list) else list(points)
    best = total = start = 0
    for at, count in ordered:
        total += count
        while ordered[start][0] <= at - window:
            total -= ordered[start][1]
            start += 1
        best = max(best, total)
    return best


@attrs.define
class GatewayStats:
    """What the simulated gateway saw since it started or since ``reset_stats()``.

    ``SimulatedGateway.stats`` gives a snapshot: a copy that later traffic
    does not change.

    Attributes:
        requests: Requests by operation (``"iton.sendSMS"``, ``"itecpay.send"``,
            ...; ``"iton.unknown"`` for a missing or unknown ``cmd``,
            ``"http.other"`` for any other path), faulted ones included. The
            simulator's own ``/_simulator/`` requests are not counted.
        numbers: For each number (as it appeared on the wire: digits for ITON,
            ``+digits`` for ItecPay), how many times a processed send accepted
            it, that is, charged for it and sent it. Empty when the gateway
            runs with ``track_numbers=False``.
        numbers_refused: For each number, how many times a processed send
            refused it alone (invalid, do-not-disturb, or left out by a
            ``partial_accept`` fault) while it accepted others.
        received: Numbers listed in authenticated send requests that the
            gateway carried out, accepted or not (a request answered by a
            fault that refuses before processing is not carried out).
        accepted: Numbers accepted, counted even with ``track_numbers=False``.
        accepted_by_account: ``accepted`` by account user name.
        accepted_series: For each account, one ``(time, count)`` entry per
            processed send that accepted numbers, in time order (``time`` is
            the simulator's ``time.monotonic()``: only differences mean
            something). Empty when ``track_numbers=False``. See
            :meth:`max_in_window`.
        params: Send parameters the gateway does not own (such as DLT's
            ``templateid``), counted per processed send as ``"name=value"``.
        faults: Faults fired, by kind.
        in_flight: Requests being handled right now.
        max_in_flight: The most requests handled at one time.
        connections_opened: Connections accepted.
        connections_open: Connections open right now.
        bytes_in: Bytes received.
        bytes_out: Bytes sent.
    """

    requests: Counter[str] = attrs.field(factory=Counter)
    numbers: Counter[str] = attrs.field(factory=Counter)
    numbers_refused: Counter[str] = attrs.field(factory=Counter)
    faults: Counter[str] = attrs.field(factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    connections_opened: int = 0
    connections_open: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    received: int = 0
    accepted: int = 0
    accepted_by_account: Counter[str] = attrs.field(factory=Counter)
    accepted_series: dict[str, list[tuple[float, int]]] = attrs.field(factory=dict)
    params: Counter[str] = attrs.field(factory=Counter)

    def duplicate_numbers(self) -> dict[str, int]:
        """The numbers accepted more than once, with how many times each was."""
        return {number: times for number, times in self.numbers.items() if times > 1}

    def record_accepted(self, account: str, at: float, count: int) -> None:
        """Add a processed send's ``count`` accepted numbers to ``account``'s series."""
        series = self.accepted_series.get(account)
        if series is None:
            series = self.accepted_series[account] = []
        series.append((at, count))

    def max_in_window(self, window: float = 1.0, account: str | None = None) -> int:
        """The most numbers accepted in any ``window`` seconds, for one account or (None) for all together.

        Read from :attr:`accepted_series`, so 0 when ``track_numbers=False``.
        This is what a rate limit of N numbers a second is checked against:
        ``stats.max_in_window(1.0) <= N``.
        """
        if account is not None:
            return max_in_window(self.accepted_series.get(account, ()), window)
        return max_in_window(heapq.merge(*self.accepted_series.values()), window)

    def reset(self) -> None:
        """Zero the counters; requests in flight and open connections stay counted."""
        for counter in (
            self.requests,
            self.numbers,
            self.numbers_refused,
            self.faults,
            self.accepted_by_account,
            self.params,
        ):
            counter.clear()
        self.accepted_series.clear()
        self.max_in_flight = self.in_flight
        self.connections_opened = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.received = 0
        self.accepted = 0

    def copy(self) -> GatewayStats:
        """A snapshot that later changes to this one do not touch."""
        return GatewayStats(
            requests=Counter(self.requests),
            numbers=Counter(self.numbers),
            numbers_refused=Counter(self.numbers_refused),
            faults=Counter(self.faults),
            in_flight=self.in_flight,
            max_in_flight=self.max_in_flight,
            connections_opened=self.connections_opened,
            connections_open=self.connections_open,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            received=self.received,
            accepted=self.accepted,
            accepted_by_account=Counter(self.accepted_by_account),
            accepted_series={name: list(series) for name, series in self.accepted_series.items()},
            params=Counter(self.params),
        )
