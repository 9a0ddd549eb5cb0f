"""The journal protocol: durable bookkeeping of batches, for runs that must survive a crash.

A batch moves ``pending -> sending -> sent | rejected | unknown``. The engine
asks the journal, for each batch the batcher cuts (the same batches with the
same indexes in every run of the same input):

* :meth:`Journal.admit` before anything else: send it, skip it (an earlier
  run settled it), or report it ``unknown`` without sending (an earlier run
  died while it was being sent);
* :meth:`Journal.claim` after every wait (the pause, the rate meters, a
  concurrency slot), just before the request is written: ``sending`` must be
  durable when it returns ``True``; ``False`` means the batch is not this
  run's to send (a concurrent worker has it, or it is settled);
* :meth:`Journal.release` when a try failed in a way that certainly never
  reached the gateway (connect refused, 429, 503) and a retry will follow:
  the batch is ``pending`` again, so a crash during the backoff leaves
  nothing ``unknown`` that was never sent;
* :meth:`Journal.settle` with the batch's result, before it is yielded.

The SQLite store (:mod:`sms_async.campaign`) and the PostgreSQL store
(:mod:`sms_async.cluster`) implement it.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from sms_async._models import BatchResult, Outcome

if TYPE_CHECKING:
    from sms_async._batching import Batch

__all__ = ["Admission", "BatchState", "Journal", "numbers_digest", "state_of"]


class Admission(enum.Enum):
    """What to do with a batch the batcher cut."""

    #: Send it (it is pending).
    SEND = "send"
    #: Nothing to send or report: an earlier run settled it.
    SKIP = "skip"
    #: An earlier run died while sending it: report it ``unknown``, do not send it.
    LOST = "lost"


class BatchState(enum.StrEnum):
    """A batch's state in a journal."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    REJECTED = "rejected"
    UNKNOWN = "unknown"


class Journal(Protocol):
    """Durable bookkeeping of batches (see the module's docstring for the order of calls)."""

    async def admit(self, batch: Batch) -> Admission:
        """Whether to send ``batch``, skip it, or report it lost."""

    async def claim(self, batch: Batch) -> bool:
        """Move ``batch`` from pending to sending, durably; ``False`` if it is not ours to send."""

    async def release(self, batch: Batch) -> None:
        """Move ``batch`` back to pending: its last try certainly never reached the gateway."""

    async def settle(self, result: BatchResult) -> None:
        """Record what became of a batch."""


def state_of(result: BatchResult) -> BatchState:
    """The state a settled batch ends in: the one rule every store applies."""
    if not result.numbers:
        return BatchState.SENT  # invalid and repeated inputs only: nothing to send, nothing to repeat
    failed = result.failed
    outcomes = {failed[n].outcome for n in result.numbers if n in failed}
    if Outcome.UNKNOWN in outcomes:
        return BatchState.UNKNOWN
    if result.message_ids:
        return BatchState.SENT
    if Outcome.UNSENT in outcomes and outcomes <= {Outcome.UNSENT, Outcome.SKIPPED}:
        return BatchState.PENDING  # never processed: safe to send again
    return BatchState.REJECTED


def numbers_digest(numbers: Sequence[str], text: str | None = None) -> str:
    """SHA-256 of a batch's numbers in order (and of its text, for a text per recipient).

    How a store knows a resumed batch is the same batch.
    """
    digest = hashlib.sha256("\n".join(numbers).encode("ascii", "replace"))
    if text is not None:
        digest.update(b"\0" + text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()
