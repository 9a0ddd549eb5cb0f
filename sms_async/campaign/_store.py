r"""The SQLite store of one campaign: the :class:`~sms_async.Journal` behind a crash-safe campaign.

The journal (WAL, ``synchronous=FULL``; schema in :mod:`._schema`) records
which batches went out and where their results rows are, so that a run
killed at any moment (``kill -9`` included) can be resumed without sending
any batch twice and without losing or repeating a results row.

Batch states::

    (no row) / pending --claim--> sending --settle--> sent | rejected | unknown
                          ^          |  \--settle--> pending (every number unsent: safe again)
                          +-release--+   \-- found on resume --> unknown (not sent again)

Rules:

* ``claim`` commits ``sending`` before the request is written (the engine
  calls it after every wait, once a connection is ready), as a conditional
  update (only a ``pending`` batch is claimed); ``release`` puts a batch whose
  try certainly never reached the gateway back to ``pending`` for its backoff.
* Claims and settles waiting at one moment share one commit (group commit):
  32 workers claiming at once cost one fsync, not 32.
* Rows are durable before the state that vouches for them: a commit writes
  and fsyncs the results rows first, then commits the batches' states with
  the file's new length, in one transaction.
* Rows go to the file as batches settle, or, with ``ordered``, in input
  order: a batch settled before the ones ahead of it keeps its rows in the
  journal (committed with its state) until they are written.
* A batch whose numbers were all unsent goes back to ``pending``; its rows
  are kept in the journal and appended past the recorded length when the run
  ends, and cut off again by the next resume, which sends it.
* On resume the results file is cut to the recorded length; ``sending``
  batches become ``unknown`` and are not sent again unless
  ``resend_unknown`` (their rows are rebuilt from the input and written
  once, as unknown); ``resend_rejected``/``resend_unknown`` make settled
  batches pending again, their old rows taken out of the file. ``sent`` and
  ``rejected`` batches are skipped; a batch whose numbers or text differ
  from those recorded, or a campaign whose input, text, sender, gateway,
  region or results file differ, is refused.

Delivery columns (``send --reports``): the journal's byte offsets always
describe the results file *without* the ``delivery`` and ``delivered_at``
columns. When polling ends, the numbers' states go to the journal's
``deliveries`` table first (one transaction), and then the results file is
rewritten with the two columns (a new file beside it, fsynced, renamed over
it). A resume takes the columns out again (the same way) before it checks
and cuts the file, so everything above is unchanged, and puts them back
when its run ends, from the table. The table exists once a run has written
the columns: a crash anywhere leaves the states in the table and the file
either whole with the columns or whole without them.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Self

import anyio
import anyio.abc
import attrs

from sms_async._clock import Clock
from sms_async._exceptions import SmsError
from sms_async._journal import Admission, BatchState, numbers_digest, state_of
from sms_async._models import BatchResult
from sms_async.campaign._delivery import DeliveryState, MemoryDeliveryBook, NumberDelivery, PollSchedule
from sms_async.campaign._errors import PYTHON_NAMES, CampaignError, OptionNames, StorageError
from sms_async.campaign._lock import CampaignLock
from sms_async.campaign._opening import (
    check_fresh_output,
    check_output_length,
    check_same_campaign,
    close_quietly,
    describe,
    insert_campaign,
    open_output,
    prepare_resume,
    read_campaign,
    transaction,
)
from sms_async.campaign._results import ResultsEncoder, accepted_rows, rewrite_delivery
from sms_async.campaign._schema import Identity, connect, sum_counts
from sms_async.campaign._tally import Tally
from sms_async.campaign._writer import HAS_ROWS, GroupWriter, Op

if TYPE_CHECKING:
    from types import TracebackType

    from sms_async._batching import Batch

__all__ = ["CampaignJournal"]

_PENDING = BatchState.PENDING.value
_UNKNOWN = BatchState.UNKNOWN.value

#: Each tracked number's delivery, as the results file's delivery columns last showed it (see above).
_DELIVERIES = (
    "CREATE TABLE IF NOT EXISTS deliveries (e164 TEXT PRIMARY KEY, message_id TEXT NOT NULL, "
    "accepted_at TEXT NOT NULL, state TEXT NOT NULL, raw TEXT NOT NULL, delivered_at TEXT)"
)
_SAVE_DELIVERY = (
    "INSERT INTO deliveries VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (e164) DO UPDATE SET "
    "message_id = excluded.message_id, accepted_at = excluded.accepted_at, state = excluded.state, "
    "raw = excluded.raw, delivered_at = excluded.delivered_at"
)


#: Where the rows of every settled batch are: in the results file, or held in the journal.
_ACCEPTED_BATCHES = (
    "SELECT rows_at, rows_len, rows, updated_at FROM batches "  # noqa: S608 - a fixed condition, no input
    f"WHERE state != 'pending' AND {HAS_ROWS} ORDER BY idx"
)


def _keeps_delivery(conn: sqlite3.Connection) -> bool:
    """Whether a run wrote the delivery columns to this campaign's results file."""
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'deliveries'")
    return found.fetchone() is not None


def _time(text: object) -> datetime | None:
    """A time the journal recorded (ISO 8601), or None if there is none it can read."""
    if not isinstance(text, str) or not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@attrs.frozen
class _Known:
    """A batch as the journal held it when this run opened it."""

    state: str
    digest: str
    #: Found ``sending`` by this resume: its rows are rebuilt as unknown.
    lost: bool


class CampaignJournal:
    """The :class:`~sms_async.Journal` of one campaign, and the writer of its results file.

    Open it with :meth:`open` (synchronous: it locks, checks and prepares
    the files), run the sender inside ``async with journal:`` (which runs
    the committer), then :meth:`close` it (which appends the provisional
    rows and lets the campaign go). :class:`~sms_async.campaign.Campaign`
    does all three.
    """

    def __init__(
        self,
        *,
        path: Path,
        output: Path,
        lock: CampaignLock,
        conn: sqlite3.Connection,
        out: IO[bytes],
        encoder: ResultsEncoder,
        run: int,
        resumed: bool,
        ordered: bool,
        offset: int,
        clock: Clock | None = None,
    ) -> None:
        self.path = path
        self.output = output
        self._lock = lock
        self._writer = GroupWriter(conn, out, run, offset, ordered=ordered, clock=clock)
        self._encoder = encoder
        #: This run's number (1 for a new campaign).
        self.run = run
        #: Whether an earlier run of this campaign was found.
        self.resumed = resumed
        self.ordered = ordered
        self._known: dict[int, _Known] = {}
        #: Inputs settled by earlier runs (pending batches excepted).
        self.base = Tally()
        #: Inputs settled by this run.
        self.tally = Tally()
        #: Requests and retries made by this run; batches it sent, and skipped as settled earlier.
        self.requests = 0
        self.retries = 0
        self.batches_sent = 0
        self.batches_skipped = 0
        #: The error that stopped this run early (bad credentials, no credit, a wrong endpoint...), if any.
        self.aborted: SmsError | None = None
        #: Why the journal stopped the run (a changed input, a file it could not write), if it did.
        self.failure: CampaignError | None = None
        self._stop_reason: str | None = None
        self._admitted: dict[int, tuple[str, int]] = {}
        self._lost_now: set[int] = set()
        self._queue: list[Op] = []
        self._wake = anyio.Event()
        self._closing = False
        self._task_group: anyio.abc.TaskGroup | None = None
        self._closed = False
        self._finished = False
        self._totals = Tally()

    # -- opening ---------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: Path,
        identity: Identity,
        encoder: ResultsEncoder,
        *,
        resume: bool,
        resend_unknown: bool = False,
        resend_rejected: bool = False,
        overwrite: bool = False,
        names: OptionNames = PYTHON_NAMES,
        clock: Clock | None = None,
    ) -> CampaignJournal:
        """Lock the campaign, create or check its journal, and prepare the results file.

        Args:
            path: The journal database.
            identity: What this campaign is.
            encoder: How rows are written (its format and columns must match the campaign's).
            resume: Continue an earlier run of the same campaign.
            resend_unknown: On resume, send again the batches that ended ``unknown``
                or were caught ``sending`` (some of their numbers may get the text twice).
            resend_rejected: On resume, send again the batches the gateway refused.
            overwrite: Replace a results file that no journal accounts for.
            names: How messages spell these options.
            clock: Where the times recorded with each batch come from (default: the machine's).

        Raises:
            CampaignError: nothing to resume, the journal is in use, belongs to
                another campaign, or exists without ``resume``; a results file
                exists; a file cannot be used (:class:`StorageError`).
        """
        output = Path(identity.output_path)
        if resume and not path.exists():
            raise _nothing_to_resume(path, output, names)
        lock = CampaignLock(path)
        conn: sqlite3.Connection | None = None
        out: IO[bytes] | None = None
        try:
            if not path.exists():
                check_fresh_output(output, names, overwrite=overwrite)  # before leaving a journal behind
            conn = connect(path)
            stored = read_campaign(conn, path)
            if stored is None:
                resumed, run, offset = False, 1, 0
                check_fresh_output(output, names, overwrite=overwrite)
                insert_campaign(conn, identity)
            else:
                old, offset, runs = stored
                check_same_campaign(path, identity, old, names, resume=resume)
                if _keeps_delivery(conn) and output.is_file():
                    # The offsets describe the file without its delivery columns: take them out first.
                    rewrite_delivery(output, encoder.format, encoder.columns, None)
                check_output_length(output, offset)
                resumed, run = True, runs + 1
                again = (_UNKNOWN,) * resend_unknown + (BatchState.REJECTED.value,) * resend_rejected
                offset = prepare_resume(conn, output, offset, run, resend_states=again)
            out = open_output(output, offset)
            if offset == 0 and encoder.header:
                out.write(encoder.header)
                out.flush()
                os.fsync(out.fileno())
                offset = len(encoder.header)
                with transaction(conn):
                    conn.execute("UPDATE campaign SET output_offset = ?", (offset,))
            journal = cls(
                path=path,
                output=output,
                lock=lock,
                conn=conn,
                out=out,
                encoder=encoder,
                run=run,
                resumed=resumed,
                ordered=identity.layout == "ordered",
                offset=offset,
                clock=clock,
            )
            journal._load()
            # Rows an earlier run kept in the journal go to the file now, where they can.
            journal._writer.commit([])
        except BaseException as error:
            # Whatever stops the opening (an interrupt included) lets the files and the campaign go.
            close_quietly(out, conn)
            lock.release(remove=False)
            if isinstance(error, OSError | sqlite3.Error):
                raise StorageError(f"cannot use the journal {path}: {describe(error)}") from None
            raise
        return journal

    def _load(self) -> None:
        conn = self._writer.conn
        written: list[int] = []
        waiting: set[int] = set()
        for idx, state, digest, placed, kept in conn.execute(
            "SELECT idx, state, digest, rows_at IS NOT NULL, rows IS NOT NULL FROM batches ORDER BY idx"
        ):
            index, in_file, held = int(idx), bool(placed), bool(kept)
            lost = state == _UNKNOWN and not in_file and not held
            self._known[index] = _Known(str(state), str(digest), lost)
            if in_file:
                written.append(index)
            elif held and state != _PENDING:
                waiting.add(index)
        self._writer.load(written, waiting)
        self.base = sum_counts(conn, f"{HAS_ROWS} AND state != 'pending'")

    @property
    def needs_rows(self) -> frozenset[int]:
        """Batches found ``sending`` whose rows this run must rebuild and write as unknown."""
        return frozenset(index for index, known in self._known.items() if known.lost)

    # -- the Journal protocol --------------------------------------------------------

    async def admit(self, batch: Batch) -> Admission:
        """Send a pending batch; skip one an earlier run settled; report one lost in flight."""
        rows = self._encoder.rows
        if self._stop_reason is not None:
            rows.forget(batch.first, batch.size)
            return Admission.SKIP  # left pending: the next run sends it
        message = batch.message
        digest = numbers_digest(batch.numbers, message.text if message is not None else None)
        parts = message.segments if message is not None and batch.numbers else 0
        known = self._known.get(batch.index)
        if known is not None:
            if known.digest != digest and known.state != _PENDING:
                self.fail(
                    CampaignError(
                        f"batch {batch.index} of the input differs from the one recorded in {self.path}: "
                        "the input (or a text in it) is not the same as in the earlier run, so it cannot "
                        "be resumed"
                    )
                )
                rows.forget(batch.first, batch.size)
                return Admission.SKIP
            if known.lost:
                self._admitted[batch.index] = (digest, parts)
                self._lost_now.add(batch.index)
                return Admission.LOST
            if known.state != _PENDING:
                self.batches_skipped += 1
                rows.forget(batch.first, batch.size)
                return Admission.SKIP
        self._admitted[batch.index] = (digest, parts)
        return Admission.SEND

    async def claim(self, batch: Batch) -> bool:
        """Commit that ``batch`` is being sent (waiting claims share one fsync); ``False``: not ours."""
        if self._stop_reason is None:
            digest, _ = self._admitted.get(batch.index, ("", 0))
            op = Op("claim", batch.index, digest=digest, size=len(batch.numbers))
            await self._submit(op)
            if op.ok:
                return True
        self._admitted.pop(batch.index, None)
        self._encoder.rows.forget(batch.first, batch.size)
        return False

    async def release(self, batch: Batch) -> None:
        """The last try never reached the gateway: the batch is pending again while it waits to retry."""
        await self._submit(Op("release", batch.index))

    async def settle(self, result: BatchResult) -> None:
        """Write the batch's rows and commit its final state with the results file's new length."""
        # A batch settled without admission was cut but never started (a cancelled run).
        digest, parts = self._admitted.pop(result.index, (numbers_digest(result.numbers), 0))
        rows, tally = self._encoder.encode(result, parts)
        if result.aborted is not None and self.aborted is None:
            self.aborted = result.aborted
        if result.index in self._lost_now:
            self._lost_now.discard(result.index)
            op = Op("lost", result.index, digest=digest, parts=parts, tally=tally, rows=rows, state=_UNKNOWN)
        else:
            self.requests += result.requests
            self.retries += result.retries
            state = state_of(result)
            # Sent means it reached the gateway (or may have): a batch whose every try was
            # refused before it left (a dead port) or that a bad password stopped is left to send.
            if result.numbers and state is not BatchState.PENDING:
                self.batches_sent += 1
            op = Op(
                "settle",
                result.index,
                digest=digest,
                size=len(result.numbers),
                state=state.value,
                parts=parts,
                tally=tally,
                rows=rows,
            )
        await self._submit(op)
        if op.ok:
            self.tally.add(tally)

    # -- stopping ----------------------------------------------------------------------

    def stop(self, reason: str) -> None:
        """Begin no more batches; those in flight still settle."""
        if self._stop_reason is None:
            self._stop_reason = reason

    @property
    def stop_reason(self) -> str | None:
        """Why the run was asked to stop, if it was."""
        return self._stop_reason

    def abort(self, error: SmsError) -> None:
        """Stop the run because of ``error`` (its input failed, say): the report's ``aborted``."""
        if self.aborted is None:
            self.aborted = error
        self.stop(error.reason)

    def fail(self, error: CampaignError) -> None:
        """Stop the run because of ``error``; the first error is kept."""
        if self.failure is None:
            self.failure = error
        self.stop(error.reason)

    # -- the committer -------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        task_group.start_soon(self._commit_loop)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        self._closing = True
        self._wake.set()
        task_group, self._task_group = self._task_group, None
        if task_group is None:  # pragma: no cover - entered once
            return None
        return await task_group.__aexit__(exc_type, exc, tb)

    async def _submit(self, op: Op) -> None:
        if self._task_group is None:
            raise RuntimeError("use the journal as 'async with journal:' while the sender runs")
        self._queue.append(op)
        self._wake.set()
        await op.done.wait()

    async def _commit_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            while self._queue:
                # Everything queued while the last commit ran goes in one transaction.
                group, self._queue = self._queue, []
                if self.failure is None:
                    try:
                        await anyio.to_thread.run_sync(self._writer.commit, group)
                    except (OSError, sqlite3.Error) as error:
                        self.fail(
                            StorageError(
                                f"cannot write the journal {self.path} or the results file {self.output}: "
                                f"{describe(error)}"
                            )
                        )
                for op in group:
                    op.done.set()
            if self._closing and not self._queue:
                return

    # -- closing ---------------------------------------------------------------------------

    def finish(self) -> None:
        """Append the rows the journal holds past the recorded length: the results file is whole.

        The campaign stays held (its delivery can still be written) until :meth:`close`.
        """
        if self._finished:
            return
        self._finished = True
        try:
            self._writer.finish()
        except (OSError, sqlite3.Error) as error:
            self.fail(StorageError(f"cannot finish the results file {self.output}: {describe(error)}"))
        finally:
            close_quietly(self._writer.out, None)
        try:
            self._totals = self._writer.totals()
        except sqlite3.Error as error:
            self.fail(StorageError(f"cannot read the journal {self.path}: {describe(error)}"))
            self._totals = self.base.copy()
            self._totals.add(self.tally)

    def close(self) -> None:
        """Finish the results file (see :meth:`finish`) if that is not done, and let the campaign go."""
        if self._closed:
            return
        self._closed = True
        try:
            self.finish()
        finally:
            # Reached whatever the steps above raise: the connection and the lock never outlive close().
            close_quietly(None, self._writer.conn)
            self._lock.release()

    # -- delivery columns (send --reports) -----------------------------------------------

    @property
    def keeps_delivery(self) -> bool:
        """Whether an earlier run wrote the delivery columns (this run then writes them again at its end)."""
        try:
            return _keeps_delivery(self._writer.conn)
        except sqlite3.Error:
            return False

    def delivery_book(self, now: datetime, schedule: PollSchedule | None = None) -> MemoryDeliveryBook:
        """Every number the campaign's results file shows accepted, in a book to poll, earlier runs' included.

        Call it once the file is whole (:meth:`finish`). A number keeps the
        delivery and acceptance time recorded when the columns were last
        written; any other is pending, accepted when its batch was settled
        (as the journal dated it), or ``now`` if that cannot be read.
        """
        book = MemoryDeliveryBook(schedule)
        conn = self._writer.conn
        try:
            if _keeps_delivery(conn):
                for e164, message_id, accepted, state, raw, at in conn.execute(
                    "SELECT e164, message_id, accepted_at, state, raw, delivered_at FROM deliveries "
                    "ORDER BY rowid"
                ):
                    known = NumberDelivery(DeliveryState(state), str(raw), _time(at))
                    book.restore(str(e164), str(message_id), _time(accepted) or now, known)
            batches = conn.execute(_ACCEPTED_BATCHES).fetchall()
            with self.output.open("rb") as file:
                for at, length, held, updated in batches:
                    if at is not None:
                        file.seek(int(at))
                        data = file.read(int(length))
                    else:
                        data = bytes(held)
                    accepted_at = _time(updated) or now
                    for e164, message_id in accepted_rows(data, self._encoder.format):
                        book.restore(e164, message_id, accepted_at)
        except (OSError, sqlite3.Error, ValueError) as error:
            reason = describe(error) if isinstance(error, OSError | sqlite3.Error) else str(error)
            self.fail(StorageError(f"cannot read the accepted numbers of {self.output}: {reason}"))
        return book

    def write_delivery(self, book: MemoryDeliveryBook) -> None:
        """Record the book's states in the journal, then rewrite the results file with the delivery columns.

        Rows keep their order and every other column; a row without a message
        id (or one the book does not track) gets empty delivery cells.
        """
        conn = self._writer.conn

        def saved() -> object:
            for number, delivery in book.items():
                yield (
                    number,
                    book.message_id(number),
                    book.accepted_at(number).isoformat(),
                    delivery.state.value,
                    delivery.raw,
                    None if delivery.at is None else delivery.at.isoformat(),
                )

        def cells(e164: str, message_id: str) -> tuple[str, str]:
            try:
                if book.message_id(e164) != message_id:
                    return "", ""
                delivery = book.delivery(e164)
            except KeyError:
                return "", ""
            at = delivery.at
            return delivery.state.value, "" if at is None else at.astimezone(UTC).isoformat()

        try:
            with transaction(conn):
                conn.execute(_DELIVERIES)
                conn.executemany(_SAVE_DELIVERY, saved())  # type: ignore[arg-type]
            rewrite_delivery(self.output, self._encoder.format, self._encoder.columns, cells)
        except sqlite3.Error as error:
            self.fail(StorageError(f"cannot record delivery in the journal {self.path}: {describe(error)}"))
        except StorageError as error:
            self.fail(error)

    @property
    def processed(self) -> int:
        """Inputs accounted for so far, by earlier runs and this one."""
        return self.base.total + self.tally.total

    def totals(self) -> Tally:
        """Inputs by outcome across the campaign: what the results file holds (exact once finished)."""
        if self._finished:
            return self._totals.copy()
        totals = self.base.copy()
        totals.add(self.tally)
        return totals


def _nothing_to_resume(path: Path, output: Path, names: OptionNames) -> CampaignError:
    nearby = (
        sorted(p.name for p in path.parent.glob("*.journal") if p != path)[:5] if path.parent.is_dir() else []
    )
    return CampaignError(
        f"nothing to resume: there is no journal at {path} (the journal of the results file {output}); "
        f"nothing was sent. Check {names.results} and {names.journal}"
        + (f" (journals in {path.parent}: {', '.join(nearby)})" if nearby else "")
        + f", or leave out {names.resume} to start a new campaign"
    )
