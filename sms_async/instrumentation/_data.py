"""The records a sender hands to its hooks: frozen, and free of numbers and credentials.

A record names the gateway and the operation, counts and times; it never
holds a phone number, a message text or a secret, so that any of them may go
to a log, a metric label or a trace attribute as it is. The one exception is
:attr:`BatchSettled.result`, the batch's own result, for hooks that want it.
"""

from __future__ import annotations

import functools
import time
import types
from collections.abc import Mapping

import attrs

from sms_async._models import BatchResult, Outcome

__all__ = ["BatchSettled", "GatewayPaused", "RequestFinished", "RetryScheduled", "RunAborted"]


@attrs.frozen
class RequestFinished:
    """One HTTP request made and answered (or failed)."""

    gateway: str
    #: ``"send"``, ``"status"``, ``"balance"`` or ``"dnd"``.
    operation: str
    #: Seconds from writing the request to the end of the answer (or the failure).
    seconds: float
    #: The HTTP status, or ``None`` when no answer came.
    status: int | None
    #: The error's class name when the request failed on the network, else ``None``.
    error: str | None
    #: Numbers (or ids) the request carried.
    size: int

    @property
    def status_class(self) -> str:
        """``"2xx"``, ``"4xx"``, ... for the answer's status, or ``""`` when no answer came."""
        status = self.status
        return f"{status // 100}xx" if status is not None else ""


@attrs.frozen
class RetryScheduled:
    """A failed try that will be tried again after ``wait`` seconds."""

    gateway: str
    operation: str
    #: The try that failed, counted from 1.
    attempt: int
    wait: float
    #: The error's class name, and its reason (redacted).
    error: str
    reason: str


@attrs.frozen
class GatewayPaused:
    """The gateway said it is busy (429/503): every worker of the sender waits ``seconds``."""

    gateway: str
    seconds: float
    status: int | None


@attrs.frozen
class RunAborted:
    """A run stopped early: bad credentials or no credit; what was not sent is ``unsent``."""

    gateway: str
    #: The error's class name, and its reason (redacted).
    error: str
    reason: str


@attrs.frozen
class BatchSettled:
    """A batch is settled: every input in it has its outcome."""

    gateway: str
    #: Wall-clock time (``time.time()``) the batch's first request left, or settled if none did.
    started_at: float
    result: BatchResult = attrs.field(eq=False, repr=False)
    #: Wall-clock time (``time.time()``) the batch was settled: when this record was made.
    settled_at: float = attrs.field(factory=time.time)

    @property
    def index(self) -> int:
        """The batch's sequence number within its run."""
        return self.result.index

    @property
    def size(self) -> int:
        """Numbers put on the wire (0 for a batch of inputs settled without sending)."""
        return len(self.result.numbers)

    @property
    def seconds(self) -> float:
        """Seconds a worker spent on the batch, from taking it up to its final answer.

        Waits for the rate meters, a pause and retries' backoff count too, so
        this may exceed ``settled_at - started_at``.
        """
        return self.result.elapsed

    @functools.cached_property
    def counts(self) -> Mapping[Outcome, int]:
        """Inputs by outcome (worked out once, however many hooks ask)."""
        return types.MappingProxyType(self.result.counts())
