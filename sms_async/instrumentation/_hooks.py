"""Hooks: objects that hear what a sender does, and the fan-out that calls them.

A hook object defines any of ``on_request``, ``on_retry``, ``on_pause``,
``on_abort`` and ``on_batch``; each receives one frozen record
(:mod:`sms_async.instrumentation._data`). A sender calls exactly the methods
its hooks define, so an unused kind of record is never even built. A hook
that raises is logged and ignored: instrumentation never loses a batch.

Every sender also has the default hooks (:mod:`._defaults`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

from sms_async.instrumentation._data import (
    BatchSettled,
    GatewayPaused,
    RequestFinished,
    RetryScheduled,
    RunAborted,
)

__all__ = ["Hooks", "Instruments", "LoggingHooks"]

logger = logging.getLogger("sms_async")


class Hooks(Protocol):
    """What a hook object may define (every method is optional; define those you need)."""

    def on_batch(self, record: BatchSettled) -> None:
        """A batch is settled (also while a run is cancelled, which its caller no longer sees)."""


class LoggingHooks:
    """Retries and pauses at INFO, aborts at WARNING, on the "sms_async" logger.

    It hears nothing of batches that settle well: a record per batch would
    cost every request something for a log line nobody reads.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "LoggingHooks()"

    def __eq__(self, other: object) -> bool:
        # Every LoggingHooks logs the same lines: a sender keeps one, so no line shows twice.
        return type(other) is type(self) or NotImplemented

    def __hash__(self) -> int:
        return hash(type(self))

    def on_retry(self, record: RetryScheduled) -> None:
        """Log a retry."""
        logger.info(
            "%s %s: try %d failed (%s: %s); retrying in %.2f s",
            record.gateway,
            record.operation,
            record.attempt,
            record.error,
            record.reason,
            record.wait,
        )

    def on_pause(self, record: GatewayPaused) -> None:
        """Log a pause of the pool."""
        logger.info(
            "%s is busy (HTTP %s): every request waits %.2f s", record.gateway, record.status, record.seconds
        )

    def on_abort(self, record: RunAborted) -> None:
        """Log an aborted run."""
        logger.warning("run aborted: %s: %s", record.error, record.reason)


R = TypeVar("R")


def _distinct(hooks: Iterable[object]) -> tuple[object, ...]:
    kept: list[object] = []
    for hook in hooks:
        if not any(hook is other or _same(hook, other) for other in kept):
            kept.append(hook)
    return tuple(kept)


def _same(hook: object, other: object) -> bool:
    if type(hook) is not type(other):
        return False
    try:
        return bool(hook == other)
    except Exception:  # noqa: BLE001 - a hook's own __eq__ is not ours to trust; unequal keeps both
        return False


def _listeners(hooks: Iterable[object], event: str) -> tuple[Callable[[Any], None], ...]:
    found = [getattr(hook, event) for hook in hooks if callable(getattr(hook, event, None))]
    return tuple(_guarded(method) for method in found)


def _guarded(method: Callable[[R], None]) -> Callable[[R], None]:
    def call(record: R) -> None:
        try:
            method(record)
        except Exception:  # a broken hook must not lose a batch
            logger.exception("hook %r raised", method)

    return call


class Instruments:
    """The hooks of one sender, resolved once: one tuple of callables per kind of record.

    An empty tuple means nobody listens, and the record is not built. A hook
    equal to one before it is dropped: given ``PrometheusHooks()`` while the
    defaults have one for the same registry, a sender counts once.
    """

    __slots__ = ("gateway", "on_abort", "on_batch", "on_pause", "on_request", "on_retry")

    def __init__(self, gateway: str, hooks: Iterable[object]) -> None:
        hooks = _distinct(hooks)
        self.gateway = gateway
        self.on_request: tuple[Callable[[RequestFinished], None], ...] = _listeners(hooks, "on_request")
        self.on_retry: tuple[Callable[[RetryScheduled], None], ...] = _listeners(hooks, "on_retry")
        self.on_pause: tuple[Callable[[GatewayPaused], None], ...] = _listeners(hooks, "on_pause")
        self.on_abort: tuple[Callable[[RunAborted], None], ...] = _listeners(hooks, "on_abort")
        self.on_batch: tuple[Callable[[BatchSettled], None], ...] = _listeners(hooks, "on_batch")
