"""The SQLite campaign store: every campaign in one file on this machine, no service needed.

The same tables and rules as the PostgreSQL store (:mod:`sms_async.cluster`),
in SQLite's words: a batch is claimed by one ``UPDATE`` that only a pending
batch of a running campaign passes, and every change that spans statements
runs in one ``BEGIN IMMEDIATE`` transaction, so that two processes on this
machine never both send a batch. The file is in WAL mode with
``synchronous=FULL``: a claim is on disk when it returns. Times are seconds
since the epoch on this machine's clock, the one every process here shares.

Statements run in a worker thread, one at a time per store, on one connection.
"""

# The statements are built from this module's constants and the Outcome
# enum's values, never from input.
# ruff: noqa: S608, E501

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self, TypeVar
from urllib.parse import unquote, urlsplit

import anyio

from sms_async._models import Entry, Outcome
from sms_async.campaign._bookkeeping import STATE_RANK_SQL, apply_outcomes
from sms_async.campaign._delivery import (
    DeliveryState,
    DeliveryTally,
    DueMessage,
    NumberDelivery,
    PollOutcome,
    PollSchedule,
)
from sms_async.campaign._errors import CampaignError, StorageError
from sms_async.campaign._results import Unsettled
from sms_async.campaign._stored import (
    EVERY_BATCH,
    CampaignStatus,
    StoredCampaign,
    given_up_counts,
    settled_counts,
    status_from_totals,
)
from sms_async.campaign._windows import Schedule

__all__ = ["DEFAULT_STORE_FILE", "SqliteStore", "sqlite_path"]

T = TypeVar("T")

#: The file of the campaign commands' store when no URL names one (in the working directory).
DEFAULT_STORE_FILE: Final = "sms-async-campaigns.db"

_VERSION: Final = 2
_OUTCOMES: Final = tuple(Outcome)
_COUNTS: Final = ", ".join(f"{o.value} INTEGER NOT NULL DEFAULT 0" for o in _OUTCOMES)
_DDL: Final = f"""
CREATE TABLE IF NOT EXISTS store_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS campaigns (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, state TEXT NOT NULL,
    gateway TEXT NOT NULL, region TEXT NOT NULL, sender_id TEXT NOT NULL, text TEXT NOT NULL,
    personal INTEGER NOT NULL, params TEXT NOT NULL, columns TEXT NOT NULL, max_segments INTEGER,
    skip_dnd INTEGER NOT NULL, rate REAL, queue TEXT NOT NULL, input_name TEXT NOT NULL,
    max_batch INTEGER NOT NULL, shard_size INTEGER NOT NULL, inputs INTEGER NOT NULL DEFAULT 0,
    recipients INTEGER NOT NULL DEFAULT 0, batches INTEGER NOT NULL DEFAULT 0,
    started_at REAL, finished_at REAL, stop_reason TEXT, windows TEXT, timezone TEXT, start_at TEXT,
    report_share REAL NOT NULL DEFAULT 0.1, paused INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS inputs (
    campaign INTEGER NOT NULL, position INTEGER NOT NULL, row INTEGER NOT NULL, kept TEXT,
    raw TEXT NOT NULL, e164 TEXT NOT NULL, outcome TEXT, reason TEXT,
    PRIMARY KEY (campaign, position)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS batches (
    campaign INTEGER NOT NULL, idx INTEGER NOT NULL, shard INTEGER NOT NULL,
    first_position INTEGER NOT NULL, size INTEGER NOT NULL, numbers INTEGER NOT NULL, text TEXT,
    parts INTEGER NOT NULL DEFAULT 0, digest TEXT NOT NULL, state TEXT NOT NULL,
    settled INTEGER NOT NULL DEFAULT 0, lost INTEGER NOT NULL DEFAULT 0, owner TEXT,
    claimed_at REAL, settled_at REAL, requests INTEGER NOT NULL DEFAULT 0,
    retries INTEGER NOT NULL DEFAULT 0, local_invalid INTEGER NOT NULL DEFAULT 0,
    local_duplicate INTEGER NOT NULL DEFAULT 0, {_COUNTS},
    PRIMARY KEY (campaign, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS results (
    campaign INTEGER NOT NULL, position INTEGER NOT NULL, outcome TEXT NOT NULL, message_id TEXT,
    reason TEXT, delivery TEXT, delivery_raw TEXT, delivered_at REAL, PRIMARY KEY (campaign, position)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS results_message ON results (campaign, message_id) WHERE delivery IS NOT NULL;
CREATE TABLE IF NOT EXISTS deliveries (
    campaign INTEGER NOT NULL, message_id TEXT NOT NULL, accepted_at REAL NOT NULL,
    polls INTEGER NOT NULL DEFAULT 0, next_poll_at REAL, lease_until REAL, lease_owner TEXT,
    PRIMARY KEY (campaign, message_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (campaign, next_poll_at) WHERE next_poll_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS runners (
    id TEXT PRIMARY KEY, campaign INTEGER NOT NULL, shard INTEGER NOT NULL, host TEXT NOT NULL,
    pid INTEGER NOT NULL, started_at REAL NOT NULL, seen_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meters (
    key TEXT PRIMARY KEY, tat REAL NOT NULL DEFAULT 0, paused_until REAL NOT NULL DEFAULT 0
);
"""
_CAMPAIGN: Final = (
    "SELECT id, state, gateway, region, sender_id, text, personal, params, columns, max_segments, skip_dnd, "
    "rate, queue, input_name, max_batch, shard_size, inputs, recipients, batches, created_at, started_at, "
    "finished_at, stop_reason, windows, timezone, start_at, report_share, paused FROM campaigns WHERE id = ?"
)
_UNFINISHED: Final = "(state = 'sending' OR (state = 'pending' AND NOT settled))"
_RUNNING: Final = "EXISTS (SELECT 1 FROM campaigns c WHERE c.id = :campaign AND c.state = 'running')"
_NOT_PAUSED: Final = "NOT EXISTS (SELECT 1 FROM campaigns c WHERE c.id = :campaign AND c.paused)"
_ZERO_NUMBERS: Final = given_up_counts()
_SET_COUNTS: Final = settled_counts(":{}")
_GIVE_UP_ROWS: Final = (
    "INSERT INTO results (campaign, position, outcome, message_id, reason) "
    "SELECT :campaign, position, :outcome, NULL, :reason FROM inputs WHERE campaign = :campaign "
    "AND position BETWEEN :first AND :last AND outcome IS NULL "
    "ON CONFLICT (campaign, position) DO UPDATE SET outcome = excluded.outcome, message_id = NULL, "
    "reason = excluded.reason WHERE results.outcome <> 'skipped'"
)
_TOTALS: Final = (
    f"SELECT {', '.join(f'coalesce(sum({o.value}), 0)' for o in _OUTCOMES)}, "
    "count(*) FILTER (WHERE state = 'pending' AND NOT settled), "
    "count(*) FILTER (WHERE state = 'pending' AND settled), "
    "count(*) FILTER (WHERE state = 'sending'), count(*) FILTER (WHERE state = 'sent'), "
    "count(*) FILTER (WHERE state = 'rejected'), count(*) FILTER (WHERE state = 'unknown'), "
    f"coalesce(sum({Outcome.ACCEPTED.value} * parts), 0), coalesce(min(parts) FILTER (WHERE parts > 0), 0), "
    "coalesce(max(parts), 0), coalesce(sum(requests), 0), coalesce(sum(retries), 0) "
    "FROM batches WHERE campaign = ?"
)
_EXPORT_CHUNK: Final = 5000
# Outcomes whose numbers are tracked for delivery when they have a message id.
_TRACKED: Final = frozenset({Outcome.ACCEPTED.value, Outcome.UNKNOWN.value})
_POLLS: Final = PollSchedule()
# When an id may next be handed out: its next poll, or the end of another poller's lease on it.
_DUE_AT: Final = (
    "CASE WHEN lease_owner <> ? AND lease_until > next_poll_at THEN lease_until ELSE next_poll_at END"
)


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///relative.db`` or ``sqlite:////absolute.db`` URL.

    Raises:
        CampaignError: not a SQLite URL, or one without a file.
    """
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or parts.netloc or not parts.path.removeprefix("/"):
        raise CampaignError(
            f"{url!r} is not a SQLite store's address: write sqlite:///campaigns.db (a file in the working "
            "directory) or sqlite:////var/lib/sms/campaigns.db (an absolute path)"
        )
    return Path(unquote(parts.path[1:]))


def _when(seconds: float | None) -> dt.datetime | None:
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


class _SqliteLoading:
    def __init__(self, store: SqliteStore, campaign: int) -> None:
        self._store = store
        self.campaign = campaign

    async def write(self, inputs: Sequence[tuple[Any, ...]], batches: Sequence[tuple[Any, ...]]) -> None:
        inputs = [(*row[:3], None if row[3] is None else json.dumps(row[3]), *row[4:]) for row in inputs]
        batches = list(batches)

        def go(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO inputs (campaign, position, row, kept, raw, e164, outcome, reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                inputs,
            )
            conn.executemany(
                "INSERT INTO batches (campaign, idx, shard, first_position, size, numbers, text, parts, digest, "
                f"state, settled, local_invalid, local_duplicate, {Outcome.INVALID.value}, "
                f"{Outcome.DUPLICATE.value}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                batches,
            )

        await self._store.in_thread(go)

    async def loaded(self, inputs: int, recipients: int, batches: int) -> None:
        def go(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE campaigns SET state = 'ready', inputs = ?, recipients = ?, batches = ? WHERE id = ?",
                (inputs, recipients, batches, self.campaign),
            )

        await self._store.in_thread(go)


class SqliteStore:
    """Campaigns in one SQLite file (the embedded store); use it as an async context manager.

    Args:
        path: The file (made with its directory's permissions if missing).
        patience: Seconds a statement waits for another process's transaction.
    """

    def __init__(self, path: str | os.PathLike[str], *, patience: float = 30.0) -> None:
        self.path = Path(path)
        #: How messages name where the campaigns are.
        self.schema = str(self.path)
        self.patience = patience
        self._conn: sqlite3.Connection | None = None
        self._lock = anyio.Lock()
        self._thread_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SqliteStore:
        """The store of a ``sqlite:///path`` URL."""
        return cls(sqlite_path(url), **options)

    def __repr__(self) -> str:
        return f"<SqliteStore {self.schema!r}>"

    async def __aenter__(self) -> Self:
        await self.probe()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(conn.close)

    async def probe(self) -> None:
        """Open the file now: a directory that does not exist or cannot be written is one clear error."""
        if self._conn is not None:
            return
        if not self.path.parent.is_dir():
            raise StorageError(
                f"the campaign store {self.path} cannot be made: the directory {self.path.parent} does not exist"
            )

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(
                self.path, timeout=self.patience, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            return conn

        try:
            self._conn = await anyio.to_thread.run_sync(connect)
        except sqlite3.Error as error:
            raise StorageError(f"the campaign store {self.path} cannot be opened: {error}") from None

    async def in_thread(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work(connection)`` in a worker thread, one at a time; sqlite3 errors become StorageError."""
        conn = self._conn
        if conn is None:
            raise StorageError("the campaign store is not open: use it as an async context manager")

        def go() -> T:
            with self._thread_lock:
                try:
                    return work(conn)
                except sqlite3.OperationalError as error:
                    if "no such table" in str(error):
                        raise CampaignError(
                            f"the campaign store {self.path} holds no campaign yet: create one first "
                            "(sms-async campaign create)"
                        ) from None
                    raise StorageError(f"the campaign store {self.path} failed: {error}") from None

        return await anyio.to_thread.run_sync(go)

    async def transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work(connection)`` in one ``BEGIN IMMEDIATE`` transaction (rolled back if it raises)."""

        def go(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                found = work(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return found

        return await self.in_thread(go)

    # -- the schema -----------------------------------------------------------------------------------

    async def install(self) -> None:
        """Create the tables where they are missing."""

        def go(conn: sqlite3.Connection) -> None:
            conn.executescript(_DDL)
            row = conn.execute("SELECT max(version) FROM store_version").fetchone()
            if row[0] is None:
                conn.execute("INSERT INTO store_version VALUES (?)", (_VERSION,))
            elif row[0] != _VERSION:
                raise CampaignError(
                    f"the campaign store {self.path} was made by another version of sms_async "
                    f"(store version {row[0]}, this one uses {_VERSION})"
                )

        await self.in_thread(go)

    @contextlib.asynccontextmanager
    async def loading(self, params: dict[str, Any]) -> AsyncIterator[_SqliteLoading]:
        """A new campaign of ``params``, loaded in one transaction: all of it, or nothing."""
        values = {
            "windows": None,
            "timezone": None,
            "start_at": None,
            "report_share": 0.1,
            **params,
            "columns": json.dumps(list(params["columns"])),
            "created_at": time.time(),
        }
        async with self._lock:

            def begin(conn: sqlite3.Connection) -> int:
                conn.execute("BEGIN IMMEDIATE")
                row = conn.execute(
                    "INSERT INTO campaigns (created_at, state, gateway, region, sender_id, text, personal, params, "
                    "columns, max_segments, skip_dnd, rate, queue, input_name, max_batch, shard_size, windows, "
                    "timezone, start_at, report_share) VALUES "
                    "(:created_at, 'loading', :gateway, :region, :sender_id, :text, :personal, :params, :columns, "
                    ":max_segments, :skip_dnd, :rate, :queue, :input_name, :max_batch, :shard_size, :windows, "
                    ":timezone, :start_at, :report_share) RETURNING id",
                    values,
                ).fetchone()
                return int(row[0])

            campaign = await self.in_thread(begin)
            try:
                yield _SqliteLoading(self, campaign)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await self.in_thread(lambda conn: conn.execute("ROLLBACK"))
                raise
            await self.in_thread(lambda conn: conn.execute("COMMIT"))

    # -- campaigns ------------------------------------------------------------------------------------

    async def campaign(self, campaign: int) -> StoredCampaign:
        """The campaign with id ``campaign``; CampaignError if there is none."""
        row = await self.in_thread(lambda conn: conn.execute(_CAMPAIGN, (campaign,)).fetchone())
        if row is None:
            raise CampaignError(f"there is no campaign {campaign} in the store {self.path}")
        return _stored(row)

    async def start(self, campaign: int) -> tuple[StoredCampaign, list[int]]:
        """Mark the campaign running; the shards with work left (unsent batches are sent again)."""
        found = await self.campaign(campaign)
        if found.state == "cancelled":
            raise CampaignError(f"campaign {campaign} was cancelled; it cannot be started again")
        if found.state == "loading":
            raise CampaignError(f"campaign {campaign} is still being loaded (or its loading failed)")

        def go(conn: sqlite3.Connection) -> list[int]:
            started = conn.execute(
                "UPDATE campaigns SET state = 'running', started_at = coalesce(started_at, ?), "
                "finished_at = NULL, stop_reason = NULL "
                "WHERE id = ? AND state IN ('ready', 'running', 'done', 'aborted')",
                (time.time(), campaign),
            ).rowcount
            if not started:
                return []
            conn.execute(
                "UPDATE batches SET settled = 0 WHERE campaign = ? AND state = 'pending' AND settled",
                (campaign,),
            )
            rows = conn.execute(
                f"SELECT DISTINCT shard FROM batches WHERE campaign = ? AND {_UNFINISHED} ORDER BY shard",
                (campaign,),
            ).fetchall()
            return [int(row[0]) for row in rows]

        shards = await self.transaction(go)
        await self.finish(campaign)
        return await self.campaign(campaign), shards

    async def stop(self, campaign: int, state: str, reason: str) -> bool:
        """Stop the campaign (``cancelled`` or ``aborted``): batches nobody holds become unsent."""
        from_states = ("ready", "running") if state == "cancelled" else ("running",)

        def go(conn: sqlite3.Connection) -> bool:
            stopped = conn.execute(
                "UPDATE campaigns SET state = ?, stop_reason = ?, finished_at = ? "
                f"WHERE id = ? AND state IN ({', '.join('?' * len(from_states))})",
                (state, reason, time.time(), campaign, *from_states),
            ).rowcount
            if not stopped:
                return False
            given_up = conn.execute(
                f"UPDATE batches SET settled = 1, settled_at = :now, owner = NULL, {_ZERO_NUMBERS}, unknown = 0, "
                "unsent = numbers - skipped WHERE campaign = :campaign AND state = 'pending' "
                "RETURNING first_position, size",
                {"now": time.time(), "campaign": campaign},
            ).fetchall()
            _give_up_rows(conn, campaign, given_up, Outcome.UNSENT, f"not sent: {reason}")
            return True

        return await self.transaction(go)

    async def finish(self, campaign: int) -> bool:
        """Mark a running campaign done if no batch is left to send or in flight; whether it did."""

        def go(conn: sqlite3.Connection) -> bool:
            return bool(
                conn.execute(
                    "UPDATE campaigns SET state = 'done', finished_at = ? WHERE id = ? AND state = 'running' "
                    f"AND NOT EXISTS (SELECT 1 FROM batches WHERE campaign = ? AND {_UNFINISHED})",
                    (time.time(), campaign, campaign),
                ).rowcount
            )

        return await self.in_thread(go)

    async def reap(self, campaign: int, lease: float, batches: tuple[int, int] = EVERY_BATCH) -> int:
        """Batches whose sender stopped heartbeating ``lease`` seconds ago become unknown; how many did."""
        reason = (
            "the worker sending this batch stopped (crash, kill or lost connection) while it was being "
            "sent: it may or may not have been sent, and sending it again may send it twice"
        )

        def go(conn: sqlite3.Connection) -> int:
            now = time.time()
            lost = conn.execute(
                f"UPDATE batches SET state = 'unknown', settled = 1, lost = 1, settled_at = :now, {_ZERO_NUMBERS}, "
                "unknown = numbers - skipped, unsent = 0 WHERE campaign = :campaign AND idx BETWEEN :first AND :last "
                "AND state = 'sending' AND NOT EXISTS (SELECT 1 FROM runners r WHERE r.id = batches.owner "
                "AND r.seen_at > :since) RETURNING first_position, size",
                {
                    "now": now,
                    "campaign": campaign,
                    "first": batches[0],
                    "last": batches[1],
                    "since": now - lease,
                },
            ).fetchall()
            _give_up_rows(conn, campaign, lost, Outcome.UNKNOWN, reason)
            return len(lost)

        return await self.transaction(go)

    async def idle_for(self, campaign: int) -> float | None:
        """Seconds since any run last worked on the campaign (``None`` if it never started)."""

        def go(conn: sqlite3.Connection) -> float | None:
            row = conn.execute(
                "SELECT c.started_at, (SELECT max(seen_at) FROM runners WHERE campaign = c.id), "
                "(SELECT max(max(coalesce(claimed_at, 0), coalesce(settled_at, 0))) FROM batches "
                "WHERE campaign = c.id) FROM campaigns c WHERE c.id = ?",
                (campaign,),
            ).fetchone()
            if row is None or row[0] is None:
                return None
            return time.time() - float(max(value for value in row if value is not None))

        return await self.in_thread(go)

    async def status(self, campaign: int) -> CampaignStatus:
        """Inputs per outcome and batches per state."""
        found = await self.campaign(campaign)
        row = await self.in_thread(lambda conn: conn.execute(_TOTALS, (campaign,)).fetchone())
        return status_from_totals(found, [int(value) for value in row])

    async def export(self, campaign: int) -> AsyncIterator[Entry | Unsettled]:
        """Every input's row, in input order (see :meth:`export_rows`)."""
        async for row, _kept in self.export_rows(campaign):
            yield row

    async def export_rows(self, campaign: int) -> AsyncIterator[tuple[Entry | Unsettled, list[str]]]:
        """Every input's row in input order, with its kept columns, read a few thousand at a time."""
        async for row, kept, _delivery, _at in self.export_deliveries(campaign):
            yield row, kept

    async def export_deliveries(
        self, campaign: int
    ) -> AsyncIterator[tuple[Entry | Unsettled, list[str], str, str]]:
        """As :meth:`export_rows`, with each row's delivery state and delivered_at (ISO 8601), or ``""``."""
        await self.campaign(campaign)
        after = 0

        def chunk(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(
                "SELECT i.position, i.row, i.raw, i.e164, coalesce(r.outcome, i.outcome), "
                "coalesce(r.message_id, ''), coalesce(r.reason, i.reason, ''), i.kept, "
                "coalesce(r.delivery, ''), r.delivered_at FROM inputs i "
                "LEFT JOIN results r ON r.campaign = i.campaign AND r.position = i.position "
                "WHERE i.campaign = ? AND i.position > ? ORDER BY i.position LIMIT ?",
                (campaign, after, _EXPORT_CHUNK),
            ).fetchall()

        while True:
            rows = await self.in_thread(chunk)
            if not rows:
                return
            for position, number, raw, e164, outcome, message_id, reason, kept, delivery, at in rows:
                columns = json.loads(kept) if kept else []
                when = "" if at is None else _when(at).isoformat()  # type: ignore[union-attr]
                if outcome is None:
                    yield Unsettled(int(number), raw, e164), columns, delivery, when
                else:
                    entry = Entry(int(number), raw, e164, Outcome(outcome), message_id, reason)
                    yield entry, columns, delivery, when
                after = position

    # -- delivery, schedule, pause -------------------------------------------------------------------

    def delivery_book(self, campaign: int, *, lease: float = 60.0) -> SqliteDeliveryBook:
        """The campaign's message ids as a delivery book (see :class:`~sms_async.campaign.Store`)."""
        return SqliteDeliveryBook(self, campaign, lease=lease)

    async def delivery_tally(self, campaign: int) -> DeliveryTally:
        """Accepted numbers by delivery state."""
        rows = await self.in_thread(
            lambda conn: conn.execute(
                "SELECT delivery, count(*) FROM results WHERE campaign = ? AND delivery IS NOT NULL "
                "GROUP BY delivery",
                (campaign,),
            ).fetchall()
        )
        return DeliveryTally(**{str(state): int(count) for state, count in rows})

    async def schedule(self, campaign: int) -> Schedule:
        """The campaign's sending windows and start time."""
        return (await self.campaign(campaign)).schedule

    async def set_paused(self, campaign: int, paused: bool) -> bool:
        """Pause or resume the campaign (one that has not stopped); whether that changed anything."""
        await self.campaign(campaign)
        return bool(
            await self.in_thread(
                lambda conn: (
                    conn.execute(
                        "UPDATE campaigns SET paused = ? WHERE id = ? AND paused <> ? "
                        "AND state NOT IN ('done', 'cancelled', 'aborted')",
                        (int(paused), campaign, int(paused)),
                    ).rowcount
                )
            )
        )

    # -- one batch ----------------------------------------------------------------------------------

    async def claim(self, campaign: int, idx: int, runner: str) -> bool:
        """Pending -> sending for ``runner``, on disk when it returns; ``False`` if not its to send."""

        def go(conn: sqlite3.Connection) -> bool:
            return (
                conn.execute(
                    "UPDATE batches SET state = 'sending', owner = :runner, claimed_at = :now "
                    "WHERE campaign = :campaign AND idx = :idx AND ((state = 'pending' AND NOT settled) "
                    f"OR (state = 'sending' AND owner = :runner)) AND {_RUNNING} AND {_NOT_PAUSED} RETURNING idx",
                    {"runner": runner, "now": time.time(), "campaign": campaign, "idx": idx},
                ).fetchone()
                is not None
            )

        return await self.in_thread(go)

    async def release(self, campaign: int, idx: int, runner: str) -> None:
        """Sending -> pending: ``runner``'s last try certainly never reached the gateway."""
        await self.in_thread(
            lambda conn: conn.execute(
                "UPDATE batches SET state = 'pending', owner = NULL "
                "WHERE campaign = ? AND idx = ? AND state = 'sending' AND owner = ?",
                (campaign, idx, runner),
            )
        )

    async def settle(
        self,
        campaign: int,
        idx: int,
        runner: str,
        *,
        state: str,
        counts: dict[Outcome, int],
        rows: Sequence[tuple[int, str, str, str]],
        requests: int = 0,
        retries: int = 0,
        accepted_at: dt.datetime | None = None,
    ) -> bool:
        """Record a batch's final state, counts and rows ``(position, outcome, message_id, reason)``.

        Numbers accepted (or unknown) with a message id become pending delivery, their ids due
        for a first poll (see :class:`~sms_async.campaign.PollSchedule`).
        """
        params: dict[str, Any] = {
            "campaign": campaign,
            "idx": idx,
            "runner": runner,
            "state": state,
            "requests": requests,
            "retries": retries,
            "now": time.time(),
        }
        params.update({outcome.value: counts.get(outcome, 0) for outcome in _OUTCOMES})
        written = [
            (
                campaign,
                position,
                outcome,
                message_id or None,
                reason or None,
                "pending" if message_id and outcome in _TRACKED else None,
            )
            for position, outcome, message_id, reason in rows
        ]
        accepted = accepted_at or dt.datetime.now(dt.UTC)
        first_poll = _POLLS.first_poll(accepted).timestamp()
        tracked = sorted({(campaign, row[3], accepted.timestamp(), first_poll) for row in written if row[5]})

        def go(conn: sqlite3.Connection) -> bool:
            won = conn.execute(
                "UPDATE batches SET state = :state, settled = 1, settled_at = :now, "
                "owner = CASE WHEN :state = 'pending' THEN NULL ELSE owner END, lost = 0, "
                f"requests = requests + :requests, retries = retries + :retries, {_SET_COUNTS} "
                "WHERE campaign = :campaign AND idx = :idx AND ("
                "(owner = :runner AND (state = 'sending' OR (state = 'unknown' AND lost))) "
                f"OR (state = 'pending' AND owner IS NULL AND :state = 'pending' AND NOT {_RUNNING})) RETURNING idx",
                params,
            ).fetchone()
            if won is None:
                return False
            conn.executemany(
                "INSERT INTO results (campaign, position, outcome, message_id, reason, delivery) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (campaign, position) DO UPDATE SET "
                "outcome = excluded.outcome, message_id = excluded.message_id, reason = excluded.reason, "
                "delivery = coalesce(results.delivery, excluded.delivery)",
                written,
            )
            conn.executemany(
                "INSERT INTO deliveries (campaign, message_id, accepted_at, polls, next_poll_at) "
                "VALUES (?, ?, ?, 0, ?) ON CONFLICT (campaign, message_id) DO NOTHING",
                tracked,
            )
            return True

        return await self.transaction(go)

    # -- runs and meters, by name (as the shard runner and the shared rate ask for them) -------------

    @property
    def operation_timeout(self) -> float:
        """Seconds one operation may take: a file's lock waits up to the patience."""
        return self.patience

    async def heartbeat(self, runner: str, campaign: int, *, patience: float) -> str:
        """Runner ``runner`` is alive: the campaign's state (``"gone"`` if none)."""
        row = await self.fetchone("heartbeat", runner=runner, campaign=campaign)
        return str(row[0]) if row else "gone"

    async def fetchone(self, name: str, **params: Any) -> tuple[Any, ...] | None:
        """The first row of statement ``name``."""
        found = await self.transaction(lambda conn: _STATEMENTS[name](conn, params))
        return found[0] if found else None

    async def fetchall(self, name: str, **params: Any) -> list[tuple[Any, ...]]:
        """Every row of statement ``name``."""
        return await self.in_thread(lambda conn: _STATEMENTS[name](conn, params))

    async def execute(self, name: str, **params: Any) -> int:
        """Run statement ``name``; the number of rows it answered."""
        return len(await self.transaction(lambda conn: _STATEMENTS[name](conn, params)))


def _stored(row: tuple[Any, ...]) -> StoredCampaign:
    values = list(row)
    values[6] = bool(values[6])  # personal
    values[7] = json.loads(values[7])  # params
    values[8] = json.loads(values[8])  # columns
    values[10] = bool(values[10])  # skip_dnd
    values[19] = _when(values[19])
    values[20] = _when(values[20])
    values[21] = _when(values[21])
    values[27] = bool(values[27])  # paused
    return StoredCampaign(*values)


def _give_up_rows(
    conn: sqlite3.Connection, campaign: int, batches: list[tuple[int, int]], outcome: Outcome, reason: str
) -> None:
    for first, size in batches:
        conn.execute(
            _GIVE_UP_ROWS,
            {
                "campaign": campaign,
                "outcome": outcome.value,
                "reason": reason,
                "first": first,
                "last": first + size - 1,
            },
        )


Rows = list[tuple[Any, ...]]


def _register_runner(conn: sqlite3.Connection, p: dict[str, Any]) -> Rows:
    now = time.time()
    conn.execute(
        "INSERT INTO runners (id, campaign, shard, host, pid, started_at, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
        (p["runner"], p["campaign"], p["shard"], p["host"], p["pid"], now, now),
    )
    return [(1,)]


def _heartbeat(conn: sqlite3.Connection, p: dict[str, Any]) -> Rows:
    conn.execute("UPDATE runners SET seen_at = ? WHERE id = ?", (time.time(), p["runner"]))
    return conn.execute(
        "SELECT CASE WHEN paused AND state = 'running' THEN 'paused' ELSE state END FROM campaigns WHERE id = ?",
        (p["campaign"],),
    ).fetchall()


def _unregister_runner(conn: sqlite3.Connection, p: dict[str, Any]) -> Rows:
    return conn.execute("DELETE FROM runners WHERE id = ? RETURNING id", (p["runner"],)).fetchall()


def _unfinished(conn: sqlite3.Connection, p: dict[str, Any]) -> Rows:
    return conn.execute(
        "SELECT idx, first_position, size, numbers, digest, state, owner, text FROM batches "
        f"WHERE campaign = ? AND idx BETWEEN ? AND ? AND {_UNFINISHED} ORDER BY idx",
        (p["campaign"], p["first"], p["last"]),
    ).fetchall()


def _numbers(conn: sqlite3.Connection, p: dict[str, Any]) -> Rows:
    return conn.execute(
        "SELECT position, e164 FROM inputs WHERE campaign = ? AND position BETWEEN ? AND ? "
        "AND outcome IS NULL ORDER BY position",
        (p["campaign"], p["first"], p["last"]),
    ).fetchall()


def _reserve(conn: sqlite3.Connection, p: dict[str, Any]) -> Rows:
    # GCRA: the account's next slot, never earlier than now or the end of a pause.
    now = time.time()
    row = conn.execute("SELECT tat, paused_until FROM meters WHERE key = ?", (p["key"],)).fetchone()
    tat, paused_until = row if row is not None else (0.0, 0.0)
    new_tat = max(tat, now, paused_until) + p["seconds"]
    conn.execute(
        "INSERT INTO meters (key, tat) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET tat = excluded.tat",
        (p["key"], new_tat),
    )
    return [(new_tat - p["seconds"] - now,)]


def _pause(conn: sqlite3.Connection, p: dict[str, Any]) -> Rows:
    until = time.time() + p["seconds"]
    conn.execute(
        "INSERT INTO meters (key, paused_until) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
        "paused_until = max(meters.paused_until, excluded.paused_until)",
        (p["key"], until),
    )
    return [(1,)]


def _paused_for(conn: sqlite3.Connection, p: dict[str, Any]) -> Rows:
    return conn.execute(
        "SELECT max(paused_until - ?, 0) FROM meters WHERE key = ?", (time.time(), p["key"])
    ).fetchall()


_STATEMENTS: Final[dict[str, Callable[[sqlite3.Connection, dict[str, Any]], Rows]]] = {
    "register_runner": _register_runner,
    "heartbeat": _heartbeat,
    "unregister_runner": _unregister_runner,
    "unfinished": _unfinished,
    "numbers": _numbers,
    "reserve": _reserve,
    "pause": _pause,
    "paused_for": _paused_for,
}


class SqliteDeliveryBook:
    """One campaign's message ids in a SQLite store, as a :class:`~sms_async.campaign.DeliveryBook`."""

    def __init__(self, store: SqliteStore, campaign: int, *, lease: float = 60.0) -> None:
        self.store = store
        self.campaign = campaign
        self.lease = lease
        #: Who holds the leases this book takes (each book its own).
        self.owner = os.urandom(8).hex()

    def __repr__(self) -> str:
        return f"SqliteDeliveryBook({self.store!r}, campaign={self.campaign})"

    async def due(self, now: dt.datetime, limit: int) -> list[DueMessage]:
        """Up to ``limit`` ids due at ``now``, earliest first, leased to this book for its lease."""
        at = now.timestamp()

        def go(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(
                "UPDATE deliveries SET lease_until = :until, lease_owner = :owner WHERE campaign = :campaign "
                "AND message_id IN (SELECT message_id FROM deliveries WHERE campaign = :campaign "
                "AND next_poll_at <= :now AND (lease_until IS NULL OR lease_until <= :now "
                "OR lease_owner = :owner) ORDER BY next_poll_at, message_id LIMIT :limit) "
                "RETURNING message_id, accepted_at, polls, next_poll_at",
                {
                    "until": at + self.lease,
                    "owner": self.owner,
                    "campaign": self.campaign,
                    "now": at,
                    "limit": limit,
                },
            ).fetchall()

        rows = sorted(await self.store.transaction(go), key=lambda row: (row[3], row[0]))
        return [DueMessage(str(m), _when(a), int(p)) for m, a, p, _next in rows]  # type: ignore[arg-type]

    async def record(self, outcomes: Sequence[PollOutcome]) -> None:
        """Apply the polls' outcomes in one transaction: states only move forward."""
        ids = sorted({outcome.message_id for outcome in outcomes})
        if not ids:
            return

        def go(conn: sqlite3.Connection) -> None:
            current: dict[str, dict[str, NumberDelivery]] = {}
            positions: dict[tuple[str, str], int] = {}
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                for position, message_id, e164, state, raw, at in conn.execute(
                    "SELECT r.position, r.message_id, i.e164, r.delivery, coalesce(r.delivery_raw, ''), r.delivered_at "
                    "FROM results r JOIN inputs i ON i.campaign = r.campaign AND i.position = r.position "
                    "WHERE r.campaign = ? AND r.delivery IN ('pending', 'expired') "
                    f"AND r.message_id IN ({', '.join('?' * len(part))})",
                    (self.campaign, *part),
                ):
                    current.setdefault(message_id, {})[e164] = NumberDelivery(
                        DeliveryState(state), raw, _when(at)
                    )
                    positions[message_id, e164] = position
            changed, due = apply_outcomes(outcomes, current)
            conn.executemany(
                "UPDATE results SET delivery = :state, delivery_raw = :raw, delivered_at = :at "
                "WHERE campaign = :campaign AND position = :position AND ("
                f"{STATE_RANK_SQL.format('delivery')} < {STATE_RANK_SQL.format(':state')} "
                "OR (delivery = 'pending' AND :state = 'pending'))",
                [
                    {
                        "state": d.state.value,
                        "raw": d.raw,
                        "at": None if d.at is None else d.at.timestamp(),
                        "campaign": self.campaign,
                        "position": positions[key],
                    }
                    for key, d in changed.items()
                ],
            )
            conn.executemany(
                "UPDATE deliveries SET polls = polls + 1, next_poll_at = ?, lease_until = NULL, lease_owner = NULL "
                "WHERE campaign = ? AND message_id = ?",
                [(None if when is None else when.timestamp(), self.campaign, m) for m, when in due],
            )

        await self.store.transaction(go)

    async def next_due(self) -> dt.datetime | None:
        """When the earliest poll is due (for an id another poller holds, when its lease ends).

        None when no number is pending.
        """
        row = await self.store.in_thread(
            lambda conn: conn.execute(
                f"SELECT min({_DUE_AT}) FROM deliveries WHERE campaign = ? AND next_poll_at IS NOT NULL",
                (self.owner, self.campaign),
            ).fetchone()
        )
        return _when(row[0])
