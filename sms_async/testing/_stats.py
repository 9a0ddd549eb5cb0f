"""Counters kept by the simulated gateway, read by tests to prove what happened."""

from __future__ import annotations

from collections import Counter

import attrs

__all__ = ["GatewayStats"]


@attrs.define
class GatewayStats:
    """What the simulated gateway saw since it started or since ``reset_stats()``.

    ``SimulatedGateway.stats`` gives a snapshot: a copy that later traffic
    does not change.

    Attributes:
        requests: Requests by operation (``"iton.sendSMS"``, ``"itecpay.send"``,
            ...; ``"iton.unknown"`` for a missing or unknown ``cmd``,
            ``"http.other"`` for any other path), faulted ones included.
        numbers: For each number (as it appeared on the wire: digits for ITON,
            ``+digits`` for ItecPay), how many times a processed send accepted
            it, that is, charged for it and sent it. Empty when the gateway
            runs with ``track_numbers=False``.
        numbers_refused: For each number, how many times a processed send
            refused it alone (invalid, do-not-disturb, or left out by a
            ``partial_accept`` fault) while it accepted others.
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

    def duplicate_numbers(self) -> dict[str, int]:
        """The numbers accepted more than once, with how many times each was."""
        return {number: times for number, times in self.numbers.items() if times > 1}

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
        )
