"""Value types: what was sent, and what became of each recipient."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import attrs

from sms_async._exceptions import SmsError

__all__ = [
    "BatchResult",
    "BulkResult",
    "DeliveryReport",
    "DeliveryStatus",
    "Entry",
    "Failure",
    "LocalInput",
    "Outcome",
    "SenderStats",
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


class LocalInput(NamedTuple):
    """An input settled without sending: invalid, or a repeat of an earlier number."""

    #: Its place in the batch, counted from 0 (its position in the run is ``batch.first + offset``).
    offset: int
    #: The input exactly as read.
    raw: str
    #: The E.164 number it repeats, or ``""``.
    e164: str
    #: Why it is invalid, or ``None`` for a repeated number.
    failure: Failure | None


class Entry(NamedTuple):
    """What became of one input, as a results file shows it."""

    #: One-based position of the input within the run.
    position: int
    #: The input exactly as read.
    input: str
    #: Its E.164 form, or ``""`` when it is not a valid number.
    e164: str
    outcome: Outcome
    #: The gateway's message id (accepted only), else ``""``.
    message_id: str
    #: Why it was not accepted (the gateway's words where it gave any), else ``""``.
    reason: str


_REPEATED = "the same number as an earlier input"
_NO_OUTCOME = Failure(Outcome.UNKNOWN, "no outcome was recorded for this number")


@attrs.define(eq=False)
class BatchResult:
    """What became of one batch of inputs, as ``stream`` yields it.

    Inputs that were invalid or repeated travel in the batch they were read
    with, so that adding up every batch accounts for every input exactly once;
    :meth:`entries` gives each input's fate in input order.
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
    #: One-based position, within the run, of the batch's first input.
    first: int = 0
    #: The inputs settled without sending (invalid, repeated), with their place in the batch.
    local: Sequence[LocalInput] = ()

    @property
    def total(self) -> int:
        """Inputs this batch accounts for."""
        return len(self.message_ids) + len(self.failed) + sum(self.duplicates.values())

    def counts(self) -> dict[Outcome, int]:
        """The number of inputs per outcome."""
        counts = dict.fromkeys(Outcome, 0)
        counts[Outcome.ACCEPTED] = len(self.message_ids)
        counts[Outcome.DUPLICATE] = sum(self.duplicates.values())
        for failure in self.failed.values():
            counts[failure.outcome] += 1
        return counts

    def entries(self) -> Iterator[Entry]:
        """Each input's fate, in input order, with its position in the run.

        A repeated invalid input shows as ``invalid`` each time (with the
        first one's reason), though :attr:`duplicates` counts it as a repeat
        of the same text.
        """
        ids, failed = self.message_ids, self.failed
        local = iter(self.local)
        pending = next(local, None)
        number = 0
        for offset in range(len(self.numbers) + len(self.local)):
            position = self.first + offset
            if pending is not None and pending.offset == offset:
                if pending.failure is None:
                    yield Entry(position, pending.raw, pending.e164, Outcome.DUPLICATE, "", _REPEATED)
                else:
                    failure = pending.failure
                    yield Entry(position, pending.raw, "", failure.outcome, "", failure.reason)
                pending = next(local, None)
                continue
            e164, raw = self.numbers[number], self.inputs[number]
            number += 1
            message_id = ids.get(e164)
            if message_id is not None:
                yield Entry(position, raw, e164, Outcome.ACCEPTED, message_id, "")
            else:
                failure = failed.get(e164, _NO_OUTCOME)
                yield Entry(position, raw, e164, failure.outcome, "", failure.reason)

    def __repr__(self) -> str:
        return (
            f"BatchResult(index={self.index}, accepted={len(self.message_ids)}, failed={len(self.failed)}, "
            f"duplicates={sum(self.duplicates.values())}, requests={self.requests}, retries={self.retries})"
        )


class BulkResult:
    """What became of every input of one ``send``.

    ``total == len(message_ids) + len(failed) + sum(duplicates.values())``
    always holds. Settled batches are kept as they are, and merged into
    ``message_ids``, ``failed`` and ``duplicates`` when one of them is first
    read: folding each batch into ever-growing maps while requests are in
    flight costs more than merging them once.
    """

    __slots__ = (
        "_duplicates",
        "_failed",
        "_message_ids",
        "_tally",
        "_unmerged",
        "aborted",
        "batches",
        "elapsed",
        "requests",
        "retries",
        "total",
    )

    def __init__(self) -> None:
        self._unmerged: list[
            tuple[dict[str, str] | None, dict[str, Failure] | None, dict[str, int] | None]
        ] = []
        self._message_ids: dict[str, str] = {}
        self._failed: dict[str, Failure] = {}
        self._duplicates: dict[str, int] = {}
        self._tally = dict.fromkeys(Outcome, 0)
        #: Inputs read.
        self.total = 0
        #: HTTP requests made (all attempts).
        self.requests = 0
        #: Retries made.
        self.retries = 0
        #: Batches put on the wire.
        self.batches = 0
        #: Seconds from start to finish.
        self.elapsed = 0.0
        #: ``None``, or the error that stopped the run early: bad credentials or no credit
        #: (a :class:`~sms_async.GatewayError`), a recipients iterable that raised, the call's
        #: ``timeout`` (:class:`~sms_async.SendTimeout`), the sender closing
        #: (:class:`~sms_async.SenderClosed`), or, in a result passed as ``send(into=...)``,
        #: a cancellation (:class:`~sms_async.SendCancelled`: ``send`` itself raised it on).
        self.aborted: SmsError | None = None

    def add(self, batch: BatchResult) -> None:
        """Fold one batch into this result."""
        # Only the batch's maps are kept, not the batch: a map of strings is
        # not tracked by the garbage collector, so a million kept ids cost no
        # collector time while the run goes on.
        tally = self._tally
        ids = batch.message_ids
        accepted = len(ids)
        tally[Outcome.ACCEPTED] += accepted
        total = accepted
        if accepted:
            self._unmerged.append((ids, None, None))
        if batch.failed:
            for failure in batch.failed.values():
                tally[failure.outcome] += 1
            total += len(batch.failed)
            self._unmerged.append((None, batch.failed, None))
        if batch.duplicates:
            repeats = sum(batch.duplicates.values())
            tally[Outcome.DUPLICATE] += repeats
            total += repeats
            self._unmerged.append((None, None, batch.duplicates))
        self.total += total
        self.requests += batch.requests
        self.retries += batch.retries
        if batch.numbers:
            self.batches += 1
        if batch.aborted is not None and self.aborted is None:
            self.aborted = batch.aborted

    def _merge(self) -> None:
        parts, self._unmerged = self._unmerged, []
        ids, failed, dups = self._message_ids, self._failed, self._duplicates
        for batch_ids, batch_failed, batch_dups in parts:
            if batch_ids is not None:
                ids.update(batch_ids)
            elif batch_failed is not None:
                failed.update(batch_failed)
            elif batch_dups is not None:
                for key, count in batch_dups.items():
                    dups[key] = dups.get(key, 0) + count

    @property
    def message_ids(self) -> dict[str, str]:
        """E.164 number -> the id the gateway issued for it."""
        if self._unmerged:
            self._merge()
        return self._message_ids

    @property
    def failed(self) -> dict[str, Failure]:
        """Input (E.164 where it parsed, the raw text otherwise) -> why it got no id."""
        if self._unmerged:
            self._merge()
        return self._failed

    @property
    def duplicates(self) -> dict[str, int]:
        """E.164 (or raw text) -> extra occurrences dropped."""
        if self._unmerged:
            self._merge()
        return self._duplicates

    def counts(self) -> dict[Outcome, int]:
        """The number of inputs per outcome."""
        return dict(self._tally)

    def by_outcome(self, outcome: Outcome) -> list[str]:
        """The inputs that ended in ``outcome`` (for failures; see ``message_ids`` for accepted)."""
        return [key for key, failure in self.failed.items() if failure.outcome is outcome]

    @property
    def ok(self) -> bool:
        """Whether every distinct valid input was accepted and nothing stopped the run."""
        tally = self._tally
        failures = self.total - tally[Outcome.ACCEPTED] - tally[Outcome.DUPLICATE]
        return self.aborted is None and failures == 0

    def raise_for_abort(self) -> None:
        """Raise the error that stopped the run early, if any."""
        if self.aborted is not None:
            raise self.aborted

    def __repr__(self) -> str:
        counts = ", ".join(f"{o.value}={n}" for o, n in self._tally.items() if n)
        aborted = f", aborted={type(self.aborted).__name__}" if self.aborted is not None else ""
        return f"BulkResult(total={self.total}, {counts}, requests={self.requests}{aborted})"


@attrs.frozen
class SenderStats:
    """What a :class:`~sms_async.BulkSender` is doing now (``bulk.stats()``), for health checks and metrics.

    Read from counters the sender keeps anyway, and through httpx from the
    pool's connections: nothing waits. One costs about 2 µs on the fast
    transport; through httpx, which walks the pool, about 0.35 µs more per
    connection (``benchmarks/bench_stats.py``).
    """

    #: Whether the sender is open (inside ``async with`` and not closed).
    open: bool
    #: Whether ``aclose()`` (or leaving ``async with``) has begun: new calls are refused.
    closing: bool
    #: The sender's ``concurrency``: requests in flight at most.
    concurrency: int
    #: Concurrency slots taken now (by sends and look-ups, waiting for a connection or on the wire).
    slots_in_use: int
    #: ``send`` and ``stream`` calls running now.
    calls_running: int
    #: Batches whose request is on the wire now (written, answer not yet in).
    requests_in_flight: int
    #: Connections the pool holds, busy or idle (connecting included); through httpx, over
    #: httpcore's pools in the client the sender made; ``None`` through a caller's ``client=``
    #: (whose pool is shared with the caller's other requests) or a transport not httpcore's.
    connections_open: int | None
    #: Of those, connections idle, kept for the next request; ``None`` where the above is.
    connections_idle: int | None
    #: Seconds left of the pause a 429 or 503 imposed on every request (0.0: none); ``None``
    #: for a pause shared through another store (the cluster's), which is not asked.
    pause_remaining: float | None
