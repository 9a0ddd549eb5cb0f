"""Value types: what was sent, and what became of each recipient."""

from __future__ import annotations

import enum
from collections.abc import Sequence

import attrs

from sms_async._exceptions import SmsError

__all__ = [
    "BatchResult",
    "BulkResult",
    "DeliveryReport",
    "DeliveryStatus",
    "Failure",
    "Outcome",
]


class Outcome(enum.StrEnum):
    """What became of one input. Every input ends in exactly one outcome."""

    #: The gateway issued a message id; it shows in ``message_ids``.
    ACCEPTED = "accepted"
    #: The same number (or the same raw text) as an earlier input; sent once.
    DUPLICATE = "duplicate"
    #: Not a valid phone number; never sent.
    INVALID = "invalid"
    #: Filtered out before sending (on the do-not-disturb list).
    SKIPPED = "skipped"
    #: The gateway refused it, and said why.
    REJECTED = "rejected"
    #: The request may or may not have been processed: check delivery reports.
    UNKNOWN = "unknown"
    #: Definitely never processed (retries ran out on a safe error, or the run
    #: stopped before its turn); safe to send again.
    UNSENT = "unsent"


@attrs.frozen
class Failure:
    """Why one input did not get a message id.

    A batch's members share one ``Failure`` value: ``reason`` is the gateway's
    own words where it gave any. ``error`` is the exception behind it, if any
    (its message never holds a credential).
    """

    outcome: Outcome
    reason: str
    error: SmsError | None = attrs.field(default=None, eq=False)

    def __str__(self) -> str:
        return f"{self.outcome.value}: {self.reason}"


class DeliveryStatus(enum.StrEnum):
    """A delivery status, normalised across gateways."""

    QUEUED = "queued"
    PROCESSING = "processing"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    #: A word the gateway used that this library does not know; ``raw`` keeps it.
    UNKNOWN = "unknown"

    @property
    def is_final(self) -> bool:
        """Whether the status will not change any more."""
        return self in _FINAL_STATUSES


_FINAL_STATUSES = frozenset({DeliveryStatus.DELIVERED, DeliveryStatus.UNDELIVERED, DeliveryStatus.FAILED})


@attrs.frozen
class DeliveryReport:
    """The delivery status of one message to one number."""

    message_id: str
    #: The number: E.164 where it can be read as one, else as the gateway wrote it; ``None`` if not named.
    number: str | None
    status: DeliveryStatus
    #: The status exactly as the gateway spelled it (``"DELIVIRED"``, ``"D"``).
    raw: str
    #: Why the look-up itself failed, when it did (the status is then UNKNOWN).
    error: str | None = None

    @classmethod
    def lookup_failed(cls, message_id: str, reason: str) -> DeliveryReport:
        """An UNKNOWN report for an id whose look-up failed after retries."""
        return cls(message_id, None, DeliveryStatus.UNKNOWN, "", reason)

    @property
    def is_final(self) -> bool:
        """Whether the status will not change any more."""
        return self.status.is_final


@attrs.define(eq=False)
class BatchResult:
    """What became of one batch of inputs, as ``stream`` yields it.

    Inputs that were rejected or de-duplicated before sending travel in the
    batch they were read with, so that adding up every batch accounts for every
    input exactly once.
    """

    #: E.164 number -> the id the gateway issued for it.
    message_ids: dict[str, str] = attrs.Factory(dict)
    #: input (E.164 where it parsed, the raw text otherwise) -> why it got no id.
    failed: dict[str, Failure] = attrs.Factory(dict)
    #: E.164 (or raw text) -> extra occurrences dropped in this batch.
    duplicates: dict[str, int] = attrs.Factory(dict)
    #: The numbers put on the wire for this batch, in order (empty for a local-only batch).
    numbers: Sequence[str] = ()
    #: The raw inputs those numbers were read from, in the same order.
    inputs: Sequence[str] = ()
    #: Requests made for this batch (attempts, including retries).
    requests: int = 0
    #: Retries made for this batch.
    retries: int = 0
    #: The last body the gateway sent for this batch, as text (capped at 4 KiB).
    raw: str | None = None
    #: Seconds from the first attempt to the final answer.
    elapsed: float = 0.0
    #: Zero-based sequence number of the batch within its run (the same for the same input).
    index: int = -1
    #: The error that stopped the run, once it has stopped (bad credentials, no credit).
    aborted: SmsError | None = None

    @property
    def total(self) -> int:
        """Inputs this batch accounts for."""
        return len(self.message_ids) + len(self.failed) + sum(self.duplicates.values())

    def __repr__(self) -> str:
        return (
            f"BatchResult(index={self.index}, accepted={len(self.message_ids)}, failed={len(self.failed)}, "
            f"duplicates={sum(self.duplicates.values())}, requests={self.requests}, retries={self.retries})"
        )


@attrs.define(eq=False)
class BulkResult:
    """What became of every input of one ``send``.

    ``total == len(message_ids) + len(failed) + sum(duplicates.values())``
    always holds.
    """

    message_ids: dict[str, str] = attrs.Factory(dict)
    failed: dict[str, Failure] = attrs.Factory(dict)
    duplicates: dict[str, int] = attrs.Factory(dict)
    #: Inputs read.
    total: int = 0
    #: HTTP requests made (all attempts).
    requests: int = 0
    #: Retries made.
    retries: int = 0
    #: Batches put on the wire.
    batches: int = 0
    #: Seconds from start to finish.
    elapsed: float = 0.0
    #: ``None``, or the error that stopped the run early (bad credentials, no credit, cancellation).
    aborted: SmsError | None = None

    def add(self, batch: BatchResult) -> None:
        """Fold one batch into this result."""
        ids, failed, duplicates = batch.message_ids, batch.failed, batch.duplicates
        self.message_ids.update(ids)
        total = len(ids)
        if failed:
            self.failed.update(failed)
            total += len(failed)
        if duplicates:
            dups = self.duplicates
            for key, count in duplicates.items():
                dups[key] = dups.get(key, 0) + count
                total += count
        self.total += total
        self.requests += batch.requests
        self.retries += batch.retries
        if batch.numbers:
            self.batches += 1
        if batch.aborted is not None and self.aborted is None:
            self.aborted = batch.aborted

    def counts(self) -> dict[Outcome, int]:
        """The number of inputs per outcome."""
        counts = dict.fromkeys(Outcome, 0)
        counts[Outcome.ACCEPTED] = len(self.message_ids)
        counts[Outcome.DUPLICATE] = sum(self.duplicates.values())
        for failure in self.failed.values():
            counts[failure.outcome] += 1
        return counts

    def by_outcome(self, outcome: Outcome) -> list[str]:
        """The inputs that ended in ``outcome`` (for failures; see ``message_ids`` for accepted)."""
        return [key for key, failure in self.failed.items() if failure.outcome is outcome]

    @property
    def ok(self) -> bool:
        """Whether every distinct valid input was accepted and nothing stopped the run."""
        return self.aborted is None and not self.failed

    def raise_for_abort(self) -> None:
        """Raise the error that stopped the run early, if any."""
        if self.aborted is not None:
            raise self.aborted

    def __repr__(self) -> str:
        counts = ", ".join(f"{o.value}={n}" for o, n in self.counts().items() if n)
        aborted = f", aborted={type(self.aborted).__name__}" if self.aborted is not None else ""
        return f"BulkResult(total={self.total}, {counts}, requests={self.requests}{aborted})"
