r"""The crash-safe campaign journal behind ``sms-async send --resume``.

A campaign is one text from one sender to one input, through one gateway. Its
journal is a SQLite database (WAL, ``synchronous=FULL``) that records which
batches went out, and how much of the results file is complete, so that a
run killed at any moment (``kill -9`` included) can be resumed without
sending any batch twice and without losing or repeating a results row.

Schema::

    campaign  one row: schema_version, created_at, input_name,
              input_fingerprint (SHA-256 of the input file, or "stdin"),
              text_sha256, sender_id, gateway, region, output_path,
              output_format, output_offset (bytes of the results file that
              are complete and accounted for), runs.
              Never a credential.
    batches   one row per batch begun: idx, numbers_sha256, size, state,
              rows_written, run, a count per outcome, updated_at.

Batch states::

    (no row) / pending --begin--> sending --settle--> sent | rejected | unknown
                                     |                 \\--> pending (every number unsent: safe again)
                                     \\-- found on resume --> unknown (not sent again)

Rules:

* ``begin`` commits ``sending`` (one fsync, shared by every begin and settle
  waiting at that moment: group commit) before it lets a batch go out. The
  claim is a conditional update (only a ``pending`` batch is claimed), and
  the whole campaign is held with an exclusive lock file, so two processes
  can never send the same batch: the second is refused.
* ``settle`` writes the batch's rows to the results file, flushes and fsyncs
  it, then commits the batch's final state together with the file's new
  length, in one transaction. A batch whose numbers were all unsent goes
  back to ``pending``; its rows go to a provisional tail appended at the end
  of the run and cut off again by the next resume, which sends it.
* On resume the results file is truncated to the recorded length (rows
  written after it belong to batches still ``sending``); ``sending`` batches
  become ``unknown`` and are not sent again unless ``--resend-unknown``;
  their rows are rebuilt from the input (batch composition is deterministic)
  and written once, as ``unknown``. ``sent`` and ``rejected`` batches are
  skipped; a batch whose numbers differ from the recorded hash, or a campaign
  whose input, text, sender, gateway, region or results file differ, is
  refused.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final, Literal, Self

import anyio
import anyio.abc
import attrs

from sms_async._batching import Batch
from sms_async._exceptions import GatewayError, SmsError
from sms_async._journal import Admission, numbers_digest, state_of
from sms_async._models import BatchResult, Outcome
from sms_async.cli._errors import CliError, ExitCode

if TYPE_CHECKING:
    from types import TracebackType

    from sms_async.cli._io import ResultEncoder

__all__ = [
    "SCHEMA_VERSION",
    "Campaign",
    "CampaignJournal",
]

SCHEMA_VERSION: Final = 2

State = Literal["pending", "sending", "sent", "rejected", "unknown"]
PENDING: Final = "pending"
SENDING: Final = "sending"
SENT: Final = "sent"
REJECTED: Final = "rejected"
UNKNOWN: Final = "unknown"

#: Outcome columns of the batches table, in this order.
OUTCOMES: Final = tuple(Outcome)
_COUNT_COLUMNS: Final = ", ".join(o.value for o in OUTCOMES)

_SCHEMA: Final = f"""
CREATE TABLE IF NOT EXISTS campaign (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    schema_version    INTEGER NOT NULL,
    created_at        TEXT    NOT NULL,
    input_name        TEXT    NOT NULL,
    input_fingerprint TEXT    NOT NULL,
    text_sha256       TEXT    NOT NULL,
    sender_id         TEXT    NOT NULL,
    gateway           TEXT    NOT NULL,
    region            TEXT    NOT NULL,
    output_path       TEXT    NOT NULL,
    output_format     TEXT    NOT NULL,
    output_offset     INTEGER NOT NULL,
    runs              INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    idx            INTEGER PRIMARY KEY,
    numbers_sha256 TEXT    NOT NULL,
    size           INTEGER NOT NULL,
    state          TEXT    NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'rejected', 'unknown')),
    rows_written   INTEGER NOT NULL DEFAULT 0,
    run            INTEGER NOT NULL,
    {", ".join(f"{o.value} INTEGER NOT NULL DEFAULT 0" for o in OUTCOMES)},
    updated_at     TEXT    NOT NULL
);
"""

# Column names in these statements come from the Outcome enum, never from input.
_SET_COUNTS: Final = ", ".join(f"{o.value} = ?" for o in OUTCOMES)
_SUM_WRITTEN: Final = (
    f"SELECT {', '.join(f'TOTAL({o.value})' for o in OUTCOMES)} FROM batches WHERE rows_written = 1"  # noqa: S608
)
# A claim succeeds only for a batch never begun or back in 'pending' (which never reached the gateway).
_CLAIM: Final = (
    "INSERT INTO batches (idx, numbers_sha256, size, state, run, updated_at) "
    "VALUES (?, ?, ?, 'sending', ?, ?) "
    "ON CONFLICT (idx) DO UPDATE SET state = 'sending', run = excluded.run, "
    "updated_at = excluded.updated_at, numbers_sha256 = excluded.numbers_sha256, size = excluded.size "
    "WHERE batches.state = 'pending'"
)
_SETTLE: Final = (
    f"UPDATE batches SET state = ?, rows_written = ?, updated_at = ?, {_SET_COUNTS} "  # noqa: S608
    "WHERE idx = ? AND state = 'sending' AND run = ?"
)
# A batch with no number to send (invalid and repeated inputs only) is never claimed: it is settled at once.
_SETTLE_LOCAL: Final = (
    "INSERT INTO batches (idx, numbers_sha256, size, state, rows_written, run, "  # noqa: S608
    f"{_COUNT_COLUMNS}, updated_at) "
    f"VALUES (?, ?, 0, 'sent', 1, ?, {', '.join('?' for _ in OUTCOMES)}, ?) ON CONFLICT (idx) DO NOTHING"
)
_RELEASE: Final = (
    "UPDATE batches SET state = 'pending', updated_at = ? WHERE idx = ? AND state = 'sending' AND run = ?"
)
_REBUILT: Final = (
    f"UPDATE batches SET rows_written = 1, updated_at = ?, {_SET_COUNTS} "  # noqa: S608
    "WHERE idx = ? AND state = 'unknown' AND rows_written = 0 AND numbers_sha256 = ?"
)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


@attrs.frozen
class Campaign:
    """What makes a campaign the same campaign on resume (no secret in it)."""

    input_name: str
    input_fingerprint: str
    text_sha256: str
    sender_id: str
    gateway: str
    region: str
    output_path: str
    output_format: str

    def differences(self, stored: Campaign) -> list[str]:
        """What differs from ``stored``, in words."""
        labels = {
            "input_fingerprint": f"the input ({stored.input_name} then, {self.input_name} now, or its bytes)",
            "text_sha256": "the message text",
            "sender_id": f"the sender id ({stored.sender_id} then, {self.sender_id} now)",
            "gateway": f"the gateway ({stored.gateway} then, {self.gateway} now)",
            "region": f"the region ({stored.region} then, {self.region} now)",
            "output_path": f"the results file ({stored.output_path} then, {self.output_path} now)",
        }
        return [label for field, label in labels.items() if getattr(self, field) != getattr(stored, field)]


# -- locking -------------------------------------------------------------------


class _CampaignLock:
    """An exclusive, non-blocking lock held for as long as a process works on a campaign.

    The operating system drops it when the process dies, ``kill -9`` included.
    The lock file is left in place: deleting it would let a waiting process
    lock a file nobody else looks at.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        journal = path.with_suffix("")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise CliError(f"cannot use the journal {journal}: {_describe(error)}") from None
        try:
            _try_lock(fd)
        except (BlockingIOError, PermissionError):
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            who = f" (process {holder})" if holder.isdigit() else ""
            raise CliError(
                f"the campaign journal {journal} is in use by another sms-async process{who}; "
                "wait for it to finish, or stop it first"
            ) from None
        except OSError as error:
            os.close(fd)
            raise CliError(f"cannot lock the journal {journal}: {_describe(error)}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd: int | None = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


# -- group commit ----------------------------------------------------------------


@attrs.define(eq=False)
class _Op:
    kind: Literal["begin", "release", "settle", "rebuilt"]
    index: int
    digest: str = ""
    size: int = 0
    state: str = ""
    counts: tuple[int, ...] = ()
    rows: bytes = b""
    to_tail: bool = False
    done: anyio.Event = attrs.Factory(anyio.Event)
    ok: bool = False


class CampaignJournal:
    """The :class:`~sms_async.Journal` of one campaign, and the writer of its results file.

    Open it with :meth:`open` (synchronous: it locks, checks and prepares the
    files), run the sender inside ``async with journal:`` (which runs the
    committer), then :meth:`close` it (which appends the provisional tail).
    """

    def __init__(
        self,
        *,
        path: Path,
        output: Path,
        lock: _CampaignLock,
        conn: sqlite3.Connection,
        out: IO[bytes],
        encoder: ResultEncoder,
        run: int,
        resumed: bool,
        known: dict[int, tuple[str, str, bool]],
        base: dict[Outcome, int],
        offset: int,
    ) -> None:
        self.path = path
        self.output = output
        self._lock = lock
        self._conn = conn
        self._out = out
        self._encoder = encoder
        self.run = run
        #: Whether an earlier run of this campaign was found.
        self.resumed = resumed
        self._known = known
        #: Inputs accounted for in the results file by earlier runs, by outcome.
        self.base = base
        #: Inputs settled by this run, by outcome (the provisional tail included).
        self.tally: dict[Outcome, int] = dict.fromkeys(OUTCOMES, 0)
        #: Requests and retries made by this run.
        self.requests = 0
        self.retries = 0
        #: Batches this run sent, and batches it skipped as settled earlier.
        self.batches_sent = 0
        self.batches_skipped = 0
        #: The error that stopped this run early (bad credentials, no credit), if any.
        self.aborted: SmsError | None = None
        #: Why the journal stopped the run (a mismatch or an I/O failure), if it did.
        self.failure: CliError | None = None
        self._stop_reason: str | None = None
        self._offset = offset
        self._tail: IO[bytes] | None = None
        self._queue: list[_Op] = []
        self._wake = anyio.Event()
        self._closing = False
        self._task_group: anyio.abc.TaskGroup | None = None
        #: Batches found ``sending`` whose rows this run must rebuild and write as unknown.
        self.needs_rows: frozenset[int] = frozenset(
            index for index, (state, _, written) in known.items() if state == UNKNOWN and not written
        )

    # -- opening ---------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: Path,
        campaign: Campaign,
        encoder: ResultEncoder,
        *,
        resume: bool,
        resend_unknown: bool = False,
        overwrite: bool = False,
    ) -> CampaignJournal:
        """Lock the campaign, create or check its journal, and prepare the results file.

        Args:
            path: The journal database.
            campaign: What this run is.
            encoder: How rows are written (its format must match the campaign's).
            resume: Continue an earlier run of the same campaign (without a
                journal yet, start one).
            resend_unknown: On resume, send again the batches found
                ``sending`` instead of writing them as unknown.
            overwrite: Replace a results file that no journal accounts for.

        Raises:
            CliError: the journal is in use, belongs to another campaign,
                exists without ``resume``, or a file cannot be used (status 2).
        """
        output = Path(campaign.output_path)
        lock = _CampaignLock(path.with_name(path.name + ".lock"))
        conn: sqlite3.Connection | None = None
        out: IO[bytes] | None = None
        try:
            if not path.exists():
                _check_fresh_output(output, overwrite=overwrite)  # before leaving a journal file behind
            conn = _connect(path)
            stored = _read_campaign(conn, path)
            if stored is None:
                resumed, run, offset = False, 1, 0
                _check_fresh_output(output, overwrite=overwrite)
                _insert_campaign(conn, campaign)
            else:
                old, offset, runs = stored
                _check_same_campaign(path, campaign, old, resume=resume)
                resumed, run = True, runs + 1
                _mark_resumed(conn, run, resend_unknown=resend_unknown)
            out = _open_output(output, offset, resumed=resumed)
            if offset == 0 and encoder.header:
                out.write(encoder.header)
                out.flush()
                os.fsync(out.fileno())
                offset = len(encoder.header)
                with _transaction(conn):
                    conn.execute("UPDATE campaign SET output_offset = ?", (offset,))
            known = {
                int(idx): (str(state), str(digest), bool(written))
                for idx, state, digest, written in conn.execute(
                    "SELECT idx, state, numbers_sha256, rows_written FROM batches"
                )
            }
            sums = conn.execute(_SUM_WRITTEN).fetchone()
            base = {outcome: int(value) for outcome, value in zip(OUTCOMES, sums, strict=True)}
        except CliError:
            _close_quietly(out, conn)
            lock.release()
            raise
        except (OSError, sqlite3.Error) as error:
            _close_quietly(out, conn)
            lock.release()
            raise CliError(f"cannot use the journal {path}: {_describe(error)}") from None
        return cls(
            path=path,
            output=output,
            lock=lock,
            conn=conn,
            out=out,
            encoder=encoder,
            run=run,
            resumed=resumed,
            known=known,
            base=base,
            offset=offset,
        )

    # -- the Journal protocol -----------------------------------------------------

    async def admit(self, batch: Batch) -> Admission:
        """Send a pending batch; skip one an earlier run settled; report one lost in flight."""
        if self._stop_reason is not None:
            return Admission.SKIP  # left pending: the next run sends it
        known = self._known.get(batch.index)
        if known is None:
            return Admission.SEND
        state, stored, _ = known
        if stored != numbers_digest(batch.numbers) and state != PENDING:
            self.fail(
                CliError(
                    f"batch {batch.index} of the input differs from the one recorded in {self.path}: "
                    "the input is not the same as in the earlier run, so it cannot be resumed"
                )
            )
            return Admission.SKIP
        if batch.index in self.needs_rows:
            return Admission.LOST
        if state != PENDING:
            self.batches_skipped += 1
            return Admission.SKIP
        return Admission.SEND

    async def claim(self, batch: Batch) -> bool:
        """Commit that ``batch`` is being sent (waiting claims share one fsync); ``False``: not ours."""
        if self._stop_reason is not None:
            return False
        op = _Op("begin", batch.index, digest=numbers_digest(batch.numbers), size=len(batch.numbers))
        await self._submit(op)
        return op.ok

    async def release(self, batch: Batch) -> None:
        """The last try never reached the gateway: the batch is pending again while it waits to retry."""
        await self._submit(_Op("release", batch.index))

    async def settle(self, result: BatchResult) -> None:
        """Write the batch's rows and commit its final state with the results file's new length."""
        counts = result.counts()
        self._note_abort(result)
        if result.index in self.needs_rows:
            # Found sending on resume: its rows are written once, as unknown.
            op = _Op(
                "rebuilt",
                result.index,
                digest=numbers_digest(result.numbers),
                counts=tuple(counts[o] for o in OUTCOMES),
                rows=self._encoder.encode(result),
            )
        else:
            state = state_of(result)
            self.requests += result.requests
            self.retries += result.retries
            if result.numbers and result.requests:
                self.batches_sent += 1
            op = _Op(
                "settle",
                result.index,
                digest=numbers_digest(result.numbers),
                size=len(result.numbers),
                state=state,
                counts=tuple(counts[o] for o in OUTCOMES),
                rows=self._encoder.encode(result),
                to_tail=state == PENDING,
            )
        await self._submit(op)
        if op.ok:
            for outcome, count in counts.items():
                self.tally[outcome] += count

    # -- stopping ---------------------------------------------------------------

    def stop(self, reason: str) -> None:
        """Begin no more batches; those in flight still settle."""
        if self._stop_reason is None:
            self._stop_reason = reason

    @property
    def stop_reason(self) -> str | None:
        """Why the run was asked to stop, if it was."""
        return self._stop_reason

    def fail(self, error: CliError) -> None:
        """Stop the run because of ``error``; the first error is kept for the exit status."""
        if self.failure is None:
            self.failure = error
        self.stop(error.message)

    def _note_abort(self, batch: BatchResult) -> None:
        if self.aborted is not None:
            return
        for failure in batch.failed.values():
            error = failure.error
            if isinstance(error, GatewayError) and error.aborts_run:
                self.aborted = error
                return

    # -- the committer ----------------------------------------------------------

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

    async def _submit(self, op: _Op) -> None:
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
                # Everything queued while the last commit ran goes in one
                # transaction: 32 workers beginning at once cost one fsync, not 32.
                group, self._queue = self._queue, []
                if self.failure is None:
                    try:
                        await anyio.to_thread.run_sync(self._commit, group)
                    except (OSError, sqlite3.Error) as error:
                        self.fail(
                            CliError(
                                f"cannot write the journal {self.path} or the results file {self.output}: "
                                f"{_describe(error)}",
                                ExitCode.ABORTED,
                            )
                        )
                for op in group:
                    op.done.set()
            if self._closing and not self._queue:
                return

    def _commit(self, group: list[_Op]) -> None:
        """One group, in a worker thread: results rows durable first, then the journal."""
        rows = [op.rows for op in group if op.rows and not op.to_tail]
        offset = self._offset
        if rows:
            data = b"".join(rows)
            self._out.write(data)
            self._out.flush()
            os.fsync(self._out.fileno())
            offset += len(data)
        tail = [op.rows for op in group if op.rows and op.to_tail]
        if tail:
            if self._tail is None:
                self._tail = tempfile.TemporaryFile(dir=self.output.parent, prefix=".sms-async-tail-")  # noqa: SIM115
            self._tail.write(b"".join(tail))
        conn = self._conn
        now = _now()
        results: list[bool] = []
        with _transaction(conn):
            for op in group:
                if op.kind == "begin":
                    cursor = conn.execute(
                        _CLAIM,
                        (op.index, op.digest, op.size, self.run, now),
                    )
                elif op.kind == "release":
                    cursor = conn.execute(_RELEASE, (now, op.index, self.run))
                elif op.kind == "settle" and not op.size:
                    cursor = conn.execute(_SETTLE_LOCAL, (op.index, op.digest, self.run, *op.counts, now))
                elif op.kind == "settle":
                    counts = (0,) * len(OUTCOMES) if op.to_tail else op.counts
                    cursor = conn.execute(
                        _SETTLE,
                        (op.state, 0 if op.to_tail else 1, now, *counts, op.index, self.run),
                    )
                else:
                    cursor = conn.execute(
                        _REBUILT,
                        (now, *op.counts, op.index, op.digest),
                    )
                results.append(cursor.rowcount == 1)
            if offset != self._offset:
                conn.execute("UPDATE campaign SET output_offset = ?", (offset,))
        self._offset = offset
        for op, ok in zip(group, results, strict=True):
            op.ok = ok

    # -- closing ----------------------------------------------------------------

    def close(self) -> None:
        """Cut anything not accounted for, append the provisional tail, and release the campaign."""
        try:
            out = self._out
            out.truncate(self._offset)
            out.seek(self._offset)
            tail = self._tail
            if tail is not None:
                # Unsent rows go last, past the recorded length, so that the
                # next resume cuts them off before sending those batches.
                tail.seek(0)
                while block := tail.read(1 << 20):
                    out.write(block)
            out.flush()
            os.fsync(out.fileno())
        except OSError as error:
            self.fail(
                CliError(
                    f"cannot finish the results file {self.output}: {_describe(error)}", ExitCode.ABORTED
                )
            )
        finally:
            if self._tail is not None:
                self._tail.close()
            _close_quietly(self._out, self._conn)
            self._lock.release()

    @property
    def processed(self) -> int:
        """Inputs accounted for so far, by earlier runs and this one."""
        return sum(self.base.values()) + sum(self.tally.values())

    def totals(self) -> dict[Outcome, int]:
        """Inputs by outcome across the campaign: what the results file holds."""
        return {outcome: self.base[outcome] + self.tally[outcome] for outcome in OUTCOMES}


# -- helpers -------------------------------------------------------------------------


def _connect(path: Path) -> sqlite3.Connection:
    # Every statement is issued by one thread at a time (the committer's
    # worker, or the opening thread before it starts), so sharing is safe.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        _require_wal(mode)
        conn.execute("PRAGMA synchronous = FULL")
        conn.executescript(_SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn


def _require_wal(mode: tuple[object, ...] | None) -> None:
    if mode is None or str(mode[0]).lower() != "wal":
        raise sqlite3.OperationalError("the file system does not support SQLite's WAL mode")


def _check_fresh_output(output: Path, *, overwrite: bool) -> None:
    if output.exists() and output.stat().st_size > 0 and not overwrite:
        raise CliError(
            f"the results file {output} already exists and no journal accounts for it: "
            "choose another --output, or pass --overwrite to replace it"
        )


def _insert_campaign(conn: sqlite3.Connection, campaign: Campaign) -> None:
    with _transaction(conn):
        conn.execute(
            "INSERT INTO campaign VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 1)",
            (
                SCHEMA_VERSION,
                _now(),
                campaign.input_name,
                campaign.input_fingerprint,
                campaign.text_sha256,
                campaign.sender_id,
                campaign.gateway,
                campaign.region,
                campaign.output_path,
                campaign.output_format,
            ),
        )


def _check_same_campaign(path: Path, campaign: Campaign, stored: Campaign, *, resume: bool) -> None:
    differences = campaign.differences(stored)
    if differences:
        raise CliError(
            f"the journal {path} belongs to a different campaign ({'; '.join(differences)} differ): "
            "pass a new --journal or --output to start a new campaign"
            + ("" if resume else ", or the original options with --resume to continue that one")
        )
    if not resume:
        raise CliError(
            f"a journal for this campaign already exists at {path}: pass --resume to continue it "
            "(batches already sent are not sent again), or a new --journal/--output to start over"
        )


def _mark_resumed(conn: sqlite3.Connection, run: int, *, resend_unknown: bool) -> None:
    """Batches in flight when the last run died become unknown (or pending again, when asked)."""
    with _transaction(conn):
        conn.execute(
            "UPDATE batches SET state = 'unknown', rows_written = 0, run = ?, updated_at = ? "
            "WHERE state = 'sending'",
            (run, _now()),
        )
        if resend_unknown:
            conn.execute(
                "UPDATE batches SET state = 'pending', updated_at = ? "
                "WHERE state = 'unknown' AND rows_written = 0",
                (_now(),),
            )
        conn.execute("UPDATE campaign SET runs = ?", (run,))


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _read_campaign(conn: sqlite3.Connection, path: Path) -> tuple[Campaign, int, int] | None:
    row = conn.execute(
        "SELECT schema_version, input_name, input_fingerprint, text_sha256, sender_id, gateway, region, "
        "output_path, output_format, output_offset, runs FROM campaign WHERE id = 1"
    ).fetchone()
    if row is None:
        return None
    version, *fields, offset, runs = row
    if version != SCHEMA_VERSION:
        raise CliError(f"the journal {path} was written by another version of sms-async (schema {version})")
    return Campaign(*(str(f) for f in fields)), int(offset), int(runs)


def _open_output(output: Path, offset: int, *, resumed: bool) -> IO[bytes]:
    """Open the results file and cut it to the length the journal vouches for."""
    existed = output.exists()
    if resumed and offset > 0:
        size = output.stat().st_size if existed else -1
        if size < offset:
            what = "missing" if size < 0 else "shorter than the journal records"
            raise CliError(
                f"the results file {output} is {what} ({offset} bytes were written): it was moved or "
                "changed, so the campaign cannot be resumed safely"
            )
    try:
        fd = os.open(output, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise CliError(f"cannot write the results file {output}: {_describe(error)}") from None
    out = os.fdopen(fd, "r+b")
    try:
        out.truncate(offset)
        out.seek(offset)
        out.flush()
        os.fsync(out.fileno())
        if not existed:
            _fsync_dir(output.parent)
    except BaseException:
        out.close()
        raise
    return out


def _fsync_dir(directory: Path) -> None:
    if sys.platform == "win32":  # pragma: no cover - directories cannot be opened there
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _close_quietly(out: IO[bytes] | None, conn: sqlite3.Connection | None) -> None:
    if out is not None:
        with contextlib.suppress(OSError):
            out.close()
    if conn is not None:
        with contextlib.suppress(sqlite3.Error):
            conn.close()


def _describe(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
