"""Group commit: claims and settles waiting at one moment share one transaction, rows durable first.

:class:`GroupWriter` owns the journal's connection and the results file
while a campaign runs. Each :meth:`GroupWriter.commit` (in a worker thread)
applies a group of operations in one transaction: the state changes first
(to learn which of them hold), then the rows that can be written now are
appended to the results file and fsynced, then the batches' places in the
file and its new length are committed. A settled batch whose rows cannot be
written yet (``ordered``: the batches before it are not done) keeps them in
the journal, committed with its state; a batch settled ``pending`` keeps its
rows there too, to be appended past the recorded length when the run ends.
"""

from __future__ import annotations

import os
import sqlite3
from typing import IO, Literal

import anyio
import attrs

from sms_async._clock import Clock
from sms_async._journal import BatchState
from sms_async.campaign._opening import transaction
from sms_async.campaign._schema import CLAIM, LOST, RELEASE, SETTLE, now, sum_counts
from sms_async.campaign._tally import Tally

__all__ = ["HAS_ROWS", "GroupWriter", "Op"]

_PENDING = BatchState.PENDING.value

#: Batches whose rows the results file holds, or will hold when the run ends.
HAS_ROWS = "(rows_at IS NOT NULL OR rows IS NOT NULL)"


@attrs.define(eq=False)
class Op:
    """One change to the journal, waiting for its group's commit."""

    kind: Literal["claim", "release", "settle", "lost"]
    index: int
    digest: str = ""
    size: int = 0
    state: str = ""
    parts: int = 0
    tally: Tally | None = None
    rows: bytes = b""
    done: anyio.Event = attrs.Factory(anyio.Event)
    #: Whether it held (a claim of a batch that is not pending, for one, does not).
    ok: bool = False


class GroupWriter:
    """Applies groups of operations to the journal and the results file, one transaction each.

    Args:
        conn: The journal.
        out: The results file, open for writing, cut to ``offset``.
        run: This run's number.
        offset: The results file's recorded length.
        ordered: Write rows in batch order.
        clock: Where the times recorded with each batch come from (default: the machine's):
            a batch settled as sent is dated on it, and its numbers' acceptance with it.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        out: IO[bytes],
        run: int,
        offset: int,
        *,
        ordered: bool,
        clock: Clock | None = None,
    ) -> None:
        self.conn = conn
        self.clock = clock
        self.out = out
        self.run = run
        self.offset = offset
        self.ordered = ordered
        #: Settled batches whose rows are held in the journal until they can be written.
        self.waiting: set[int] = set()
        #: With ``ordered``: the first batch whose rows are not in the results file.
        self.next = 0

    def load(self, written: list[int], waiting: set[int]) -> None:
        """Start from the journal as found: batches written (in order) and batches waiting."""
        self.waiting = waiting
        for index in written:
            if index != self.next:
                break
            self.next += 1

    def commit(self, group: list[Op]) -> None:
        """Apply ``group``: states, then rows (fsynced), then their places and the file's length."""
        conn, run = self.conn, self.run
        stamp = now() if self.clock is None else self.clock.now().isoformat(timespec="milliseconds")
        settled: dict[int, bytes] = {}
        held: list[tuple[bytes, int]] = []
        results: list[bool] = []
        with transaction(conn):
            for op in group:
                if op.kind == "claim":
                    cursor = conn.execute(CLAIM, (op.index, op.digest, op.size, run, stamp))
                elif op.kind == "release":
                    cursor = conn.execute(RELEASE, (stamp, op.index, run))
                else:
                    assert op.tally is not None  # noqa: S101 - every settle carries its tally
                    counts = tuple(op.tally.columns())
                    if op.kind == "lost":
                        cursor = conn.execute(LOST, (*counts, op.parts, stamp, op.index, op.digest))
                    else:
                        values = (op.index, op.digest, op.size, op.state, run, op.parts, *counts, stamp)
                        cursor = conn.execute(SETTLE, values)
                    if cursor.rowcount == 1:
                        if op.state == _PENDING:
                            held.append((op.rows, op.index))  # provisional: appended when the run ends
                        else:
                            settled[op.index] = op.rows
                results.append(cursor.rowcount == 1)
            writes, nxt = self._writable(settled)
            offset = self.offset
            if writes:
                data = b"".join(rows for _, rows in writes)
                self.out.seek(offset)
                self.out.write(data)
                self.out.flush()
                os.fsync(self.out.fileno())
                placed = []
                for index, rows in writes:
                    placed.append((offset, len(rows), index))
                    offset += len(rows)
                conn.executemany(
                    "UPDATE batches SET rows_at = ?, rows_len = ?, rows = NULL WHERE idx = ?", placed
                )
                conn.execute("UPDATE campaign SET output_offset = ?", (offset,))
            # What is left of settled waits for the batches before it.
            held.extend((rows, index) for index, rows in settled.items())
            if held:
                conn.executemany("UPDATE batches SET rows = ? WHERE idx = ?", held)
        self.offset = offset
        self.next = nxt
        self.waiting.difference_update(index for index, _ in writes)
        self.waiting.update(settled)
        for op, ok in zip(group, results, strict=True):
            op.ok = ok

    def _writable(self, settled: dict[int, bytes]) -> tuple[list[tuple[int, bytes]], int]:
        """The rows to write now, in order, taken out of ``settled``; and the next batch whose rows wait."""
        if not self.ordered:
            writes = [(index, self._held_rows(index)) for index in sorted(self.waiting)]
            writes.extend(settled.items())
            settled.clear()
            return writes, self.next
        writes = []
        nxt = self.next
        while True:
            if nxt in settled:
                writes.append((nxt, settled.pop(nxt)))
            elif nxt in self.waiting:
                writes.append((nxt, self._held_rows(nxt)))
            else:
                return writes, nxt
            nxt += 1

    def _held_rows(self, index: int) -> bytes:
        row = self.conn.execute("SELECT rows FROM batches WHERE idx = ?", (index,)).fetchone()
        return bytes(row[0]) if row is not None and row[0] is not None else b""

    def finish(self) -> None:
        """Append the rows the journal holds past the recorded length, in batch order, and fsync.

        They are not vouched for: the next resume cuts them off before it
        sends those batches (or writes them in their turn).
        """
        out = self.out
        out.truncate(self.offset)
        out.seek(self.offset)
        for (rows,) in self.conn.execute(
            "SELECT rows FROM batches WHERE rows IS NOT NULL AND rows_at IS NULL ORDER BY idx"
        ):
            out.write(rows)
        out.flush()
        os.fsync(out.fileno())

    def totals(self) -> Tally:
        """The campaign as the results file holds it once :meth:`finish` has run."""
        return sum_counts(self.conn, HAS_ROWS)
