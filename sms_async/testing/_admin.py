"""The simulator's own endpoint, on the gateway's port: its counters as JSON, and a reset.

``GET /_simulator/stats`` answers the counters (see :func:`stats_document`);
``?window=SECONDS`` adds the most numbers accepted in any window of that
length, per account and for all; ``?numbers=1`` adds every accepted number
with its count; ``?texts=1`` adds, for every number of a stored message, the
texts (and extra parameters) it was accepted with. ``POST /_simulator/reset`` zeroes the counters, like
``SimulatedGateway.reset_stats()``. Both answer loopback clients only (a 403
for any other), take no fault and are not counted as gateway requests: they
are how tests in other processes read one simulator process.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

from sms_async.testing._http import is_loopback
from sms_async.testing._protocol import Operation, SimulatedProtocol, json_response, parse_query

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from sms_async.testing._protocol import Request, Response
    from sms_async.testing._state import GatewayState, SentMessage
    from sms_async.testing._stats import GatewayStats

__all__ = ["SimulatorAdmin", "stats_document"]

_TRUE = frozenset({"1", "true", "yes", "on"})


def stats_document(
    stats: GatewayStats,
    *,
    tracked: bool,
    window: float | None = None,
    numbers: bool = False,
    messages: Iterable[SentMessage] | None = None,
) -> dict[str, object]:
    """The counters as a JSON-ready dict (the body of ``GET /_simulator/stats``).

    Keys: ``requests`` and ``faults`` (by name), ``received``, ``accepted``,
    ``refused`` (received but not accepted), ``numbers_tracked``,
    ``duplicates`` (number -> times, for numbers accepted more than once),
    ``accounts`` (user name -> ``{"accepted": n, "series": [[time, count], ...]}``),
    ``params`` (``"name=value"`` -> sends), ``in_flight``, ``max_in_flight``,
    ``connections_opened``, ``connections_open``, ``bytes_in``, ``bytes_out``;
    with ``window``, ``window``, ``max_in_window`` and each account's
    ``max_in_window``; with ``numbers``, ``numbers`` (every accepted number -> times);
    with ``messages``, ``texts`` (each of their numbers, as sent -> a list of
    ``{"text": ..., "params": {...}}``, one per message that covers it, in the order accepted).
    """
    names = list(stats.accepted_by_account)
    names += [name for name in stats.accepted_series if name not in stats.accepted_by_account]
    accounts: dict[str, dict[str, object]] = {}
    for name in names:
        series = stats.accepted_series.get(name, [])
        entry: dict[str, object] = {
            "accepted": stats.accepted_by_account.get(name, 0),
            "series": [[at, count] for at, count in series],
        }
        if window is not None:
            entry["max_in_window"] = stats.max_in_window(window, name)
        accounts[name] = entry
    document: dict[str, object] = {
        "requests": dict(stats.requests),
        "faults": dict(stats.faults),
        "received": stats.received,
        "accepted": stats.accepted,
        "refused": stats.received - stats.accepted,
        "numbers_tracked": tracked,
        "duplicates": stats.duplicate_numbers(),
        "accounts": accounts,
        "params": dict(stats.params),
        "in_flight": stats.in_flight,
        "max_in_flight": stats.max_in_flight,
        "connections_opened": stats.connections_opened,
        "connections_open": stats.connections_open,
        "bytes_in": stats.bytes_in,
        "bytes_out": stats.bytes_out,
    }
    if window is not None:
        document["window"] = window
        document["max_in_window"] = stats.max_in_window(window)
    if numbers:
        document["numbers"] = dict(stats.numbers)
    if messages is not None:
        texts: dict[str, list[dict[str, object]]] = {}
        for message in messages:
            entry = {"text": message.text, "params": message.params}
            for number in message.numbers:
                texts.setdefault(number, []).append(entry)
        document["texts"] = texts
    return document


def _refuse(status: int, description: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return json_response(status, {"error": description}, headers)


class SimulatorAdmin(SimulatedProtocol):
    """``/_simulator/stats`` and ``/_simulator/reset``, for loopback clients.

    Args:
        reset: Zeroes the counters and restarts fault request numbers.
    """

    name = "simulator"
    operations = frozenset({"simulator.stats", "simulator.reset"})
    default_paths: ClassVar[Mapping[str, str]] = {
        "stats": "/_simulator/stats",
        "reset": "/_simulator/reset",
    }

    def __init__(self, reset: Callable[[], None]) -> None:
        super().__init__()
        self._reset = reset

    def read(self, request: Request) -> Operation:
        """Check the client, the method and the query."""
        is_stats = request.path == self.paths["stats"]
        operation = Operation("simulator.stats" if is_stats else "simulator.reset", self, request)
        method = "GET" if is_stats else "POST"
        if not is_loopback(request.client):
            operation.error = _refuse(403, "the simulator's own endpoint answers loopback clients only")
        elif request.method != method:
            operation.error = _refuse(405, f"use {method}", (("Allow", method),))
        elif is_stats:
            self._read_query(operation)
        return operation

    @staticmethod
    def _read_query(operation: Operation) -> None:
        try:
            params = dict(parse_query(operation.request.query))
        except UnicodeDecodeError:
            operation.error = _refuse(400, "the query string is not UTF-8")
            return
        unknown = params.keys() - {"window", "numbers", "texts"}
        if unknown:
            operation.error = _refuse(
                400, f"unknown parameter(s) {sorted(unknown)}; known: numbers, texts, window"
            )
            return
        window = params.get("window")
        if window is not None:
            try:
                seconds = float(window)
            except ValueError:
                seconds = math.nan
            if not math.isfinite(seconds) or seconds <= 0:
                operation.error = _refuse(400, f"window must be a positive number of seconds, got {window!r}")
                return
        operation.params = params

    def answer(self, operation: Operation, state: GatewayState, *, share: float | None = None) -> Response:
        """The counters, or a reset."""
        if operation.name == "simulator.reset":
            self._reset()
            return json_response(200, {"reset": True})
        params = operation.params
        window = params.get("window")
        texts = params.get("texts", "").lower() in _TRUE
        if texts and not state.store_messages:
            return _refuse(
                409,
                "this simulator keeps no messages (--no-store-messages): it cannot say which texts it got",
            )
        document = stats_document(
            state.stats,
            tracked=state.track_numbers,
            window=None if window is None else float(window),
            numbers=params.get("numbers", "").lower() in _TRUE,
            messages=state.messages.values() if texts else None,
        )
        return json_response(200, document)
