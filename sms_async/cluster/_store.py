"""The PostgreSQL campaign store: connections, retries, and what a campaign is and how it stands.

Every statement runs on a pooled connection in autocommit mode (a claim is
durable when it returns). An operation that loses its connection (the server
restarted, ``pg_terminate_backend``, a network cut) is tried again on another
one for up to ``patience`` seconds; each statement is written so that running
it twice does what running it once does (or, for the rate meter, waits a little
longer), because a lost answer does not tell whether the commit happened.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import anyio
import anyio.lowlevel
import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from sms_async._models import Entry, Outcome
from sms_async._redact import keep_secrets, redact
from sms_async.campaign import (
    CampaignError,
    CampaignStatus,
    DeliveryState,
    DeliveryTally,
    DueMessage,
    Loading,
    NumberDelivery,
    PollOutcome,
    PollSchedule,
    Schedule,
    StoredCampaign,
    StoreUnavailableError,
    Unsettled,
    apply_outcomes,
    status_from_totals,
)
from sms_async.cluster._connect import ConnectionSettings, is_pooler_error
from sms_async.cluster._schema import OUTCOMES, SCHEMA_VERSION, ddl, poll_chains_ddl, sql
from sms_async.cluster._settings import DEFAULT_SCHEMA, ClusterSettings, check_schema

__all__ = [
    "CampaignError",
    "CampaignStatus",
    "CampaignStore",
    "Loading",
    "StoreUnavailableError",
    "StoredCampaign",
    "is_transient",
]

logger = logging.getLogger("sms_async.cluster")

T = TypeVar("T")

_EVERY_BATCH: Final = (0, 2**31 - 1)
_POLLS: Final = PollSchedule()


class _PgLoading:
    def __init__(self, store: CampaignStore, conn: psycopg.AsyncConnection[Any], campaign: int) -> None:
        self._store = store
        self._conn = conn
        self.campaign = campaign

    async def write(self, inputs: Sequence[tuple[Any, ...]], batches: Sequence[tuple[Any, ...]]) -> None:
        cursor = self._conn.cursor()
        for statement, rows in (("copy_inputs", inputs), ("copy_batches", batches)):
            if rows:
                async with cursor.copy(self._store.sql[statement]) as copy:
                    for row in rows:
                        await copy.write_row(row)

    @contextlib.asynccontextmanager
    async def copying(self, table: str) -> AsyncIterator[Callable[[str], Awaitable[None]]]:
        """One COPY into ``table`` (``inputs`` or ``batches``), fed text-format lines in its loading order.

        The COPY lasts as long as the input takes to read (a pipe may be slow):
        the load's transaction lifts the statement timeout, which is for lock
        waits, and a new campaign's rows wait on no lock.
        """
        await self._conn.execute("SET LOCAL statement_timeout = 0")
        async with self._conn.cursor().copy(self._store.sql[f"copy_{table}"]) as copy:
            yield copy.write

    async def loaded(self, inputs: int, recipients: int, batches: int) -> None:
        await self._conn.execute(
            self._store.sql["loaded"],
            {"campaign": self.campaign, "inputs": inputs, "recipients": recipients, "batches": batches},
        )


def is_transient(error: BaseException) -> bool:
    # Connection losses, a server shutting down, serialization failures and
    # deadlocks are OperationalErrors; a closed connection is an InterfaceError.
    return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError) and not is_permanent(error)


# What libpq says when a connection is refused for a reason that waiting does
# not cure. A refused connection carries no SQLSTATE (libpq gives none before
# a session exists), so its words are all there is to tell by.
_PERMANENT: Final = (
    "does not exist",  # the database, or the role
    "authentication failed",
    "no password supplied",
    "no pg_hba.conf entry",
    "password is required",
    "failed to resolve host",
    "invalid connection option",
    "invalid dsn",
    "invalid uri",
    "invalid port",
    "invalid integer value",
)


def is_permanent(error: BaseException) -> bool:
    """Whether connecting failed for a reason waiting cannot cure (a wrong database, user or password)."""
    if not isinstance(error, psycopg.OperationalError):
        return False
    text = str(error).lower()
    return any(words in text for words in _PERMANENT)


def _unavailable(error: BaseException) -> StoreUnavailableError:
    return StoreUnavailableError(_connect_failure(error), permanent=is_permanent(error))


def _connect_failure(error: BaseException) -> str:
    """The one line that says why the store could not be reached, and what to check."""
    reason = redact(str(error)).strip().replace("\n", " ").replace("\t", " ")
    reason = reason.removeprefix("connection failed: ")
    if is_permanent(error):
        return (
            f"the campaign store refuses the connection, which trying again cannot cure: {reason[:300]} "
            "(check the database, user and password in SMS_ASYNC_DATABASE_URL)"
        )
    return (
        f"the campaign store cannot be reached: {reason[:300]} "
        "(check the host and port in SMS_ASYNC_DATABASE_URL)"
    )


class _Entry:
    """One call waiting in a :class:`_Grouped`: its item, and what became of it."""

    __slots__ = ("_woken", "error", "item", "result", "state")

    def __init__(self, item: Any) -> None:
        self.item = item
        #: "queued" (waiting for a statement), "taken" (in one), or "done".
        self.state = "queued"
        self.result: Any = None
        self.error: BaseException | None = None
        self._woken: anyio.Event | None = None

    async def wait(self) -> None:
        """Until :meth:`wake` is called."""
        if self._woken is None:
            self._woken = anyio.Event()
        await self._woken.wait()

    def wake(self) -> None:
        if self._woken is not None:
            self._woken.set()
            self._woken = None


class _Grouped:
    """Calls made at about the same time, done together: one statement (one round trip, one commit) a group.

    A call that finds fewer than ``at_once`` statements in flight runs one at
    once for itself and every call queued behind it (``most`` at most, of
    the same lot, no two with the same key: ``key`` gives ``(lot, name)``,
    here a batch's campaign and index); otherwise it waits, and the calls
    queued meanwhile go together in the next statement. Alone, a call costs
    what it did on its own; under load a statement serves many (group
    commit). ``flush`` takes the items and answers one result an item, in
    order. A statement whose caller is cancelled gives the others' items back
    to the queue, to be done by the next; a statement that fails fails every
    call in it.
    """

    def __init__(
        self,
        flush: Callable[[list[Any]], Awaitable[list[Any]]],
        key: Callable[[Any], tuple[object, object]],
        *,
        most: int = 64,
        at_once: int = 2,
    ) -> None:
        self._flush = flush
        self._key = key
        self._most = most
        self._at_once = at_once
        self._in_flight = 0
        self._queue: list[_Entry] = []

    async def __call__(self, item: Any) -> Any:
        entry = _Entry(item)
        self._queue.append(entry)
        try:
            while entry.state != "done":
                if entry.state == "queued" and self._in_flight < self._at_once:
                    self._in_flight += 1
                    try:
                        # Calls made at this same moment (tasks woken together) queue meanwhile.
                        await anyio.lowlevel.checkpoint()
                        await self._run(entry)
                    finally:
                        self._in_flight -= 1
                        self._next()
                else:
                    await entry.wait()
        except BaseException:
            if entry.state == "queued":
                self._queue.remove(entry)
                self._next()  # it may have been the one woken to take the free place
            raise
        if entry.error is not None:
            raise entry.error
        return entry.result

    def _next(self) -> None:
        """A statement may start: wake the first call queued."""
        if self._queue and self._in_flight < self._at_once:
            self._queue[0].wake()

    async def _run(self, first: _Entry) -> None:
        key = self._key(first.item)
        group, keys, left, lot = [first], {key}, [], key[0]
        for entry in self._queue:
            if entry is first:
                continue
            key = self._key(entry.item)
            if len(group) < self._most and key[0] == lot and key not in keys:
                group.append(entry)
                keys.add(key)
            else:
                left.append(entry)
        self._queue = left
        for entry in group:
            entry.state = "taken"
        try:
            results = await self._flush([entry.item for entry in group])
        except BaseException as error:
            cancelled = isinstance(error, anyio.get_cancelled_exc_class())
            for entry in group:
                if cancelled and entry is not first:
                    # Not this call's to finish: the next statement does it.
                    entry.state = "queued"
                    self._queue.insert(0, entry)
                else:
                    entry.state, entry.error = "done", error
                entry.wake()
            raise
        for entry, result in zip(group, results, strict=True):
            entry.state, entry.result = "done", result
            entry.wake()


def _batch_key(item: dict[str, Any]) -> tuple[int, int]:
    """The batch a settle's item is about."""
    return item["campaign"], item["idx"]


def _settle_item(
    campaign: int,
    idx: int,
    runner: str,
    state: str,
    counts: dict[Outcome, int],
    rows: Sequence[tuple[int, str, str, str]],
    requests: int,
    retries: int,
    accepted_at: dt.datetime | None,
) -> dict[str, Any]:
    """One batch of a settle statement, as its JSON array holds it."""
    accepted = accepted_at or dt.datetime.now(dt.UTC)
    return {
        "campaign": campaign,
        "idx": idx,
        "runner": runner,
        "state": state,
        "requests": requests,
        "retries": retries,
        "counts": {outcome.value: counts.get(outcome, 0) for outcome in OUTCOMES},
        "accepted_at": accepted.isoformat(),
        "first_poll": _POLLS.first_poll(accepted).isoformat(),
        "rows": rows,
    }


class CampaignStore:
    """The campaign store in one PostgreSQL schema; use it as an async context manager.

    Args:
        url: A libpq connection string or URL (its password is kept out of
            every message).
        schema: The schema holding the tables (created by :meth:`install`).
        patience: Seconds an operation keeps retrying a lost connection before
            raising :class:`StoreUnavailableError`.
        max_connections: Connections kept by this process at most (besides the claims' own).
        claim_connections: Connections kept for claims alone (a worker keeps
            some: a claim comes between a rate slot and the request's write, so
            one queued behind other statements would make requests bunch up at
            the gateway); 0: claims share the other connections.
        warm: Open every connection up front, each with the hot statements
            planned once (a worker does, for the same reason).
        application_name: How its connections show in ``pg_stat_activity``.
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str = DEFAULT_SCHEMA,
        patience: float = 60.0,
        max_connections: int = 4,
        claim_connections: int = 0,
        warm: bool = False,
        application_name: str = "sms-async",
    ) -> None:
        self.schema = check_schema(schema)
        self.patience = patience
        try:
            self.connecting = ConnectionSettings.parse(url)
            url = self.connecting.url
            password = conninfo_to_dict(url).get("password")
        except psycopg.ProgrammingError:
            raise CampaignError(
                "the campaign store's address is not a PostgreSQL connection string or URL"
            ) from None
        keep_secrets(self, password if isinstance(password, str) else None)
        self.sql = sql(self.schema)
        self._url = url
        self._warm = warm
        # A lazy store connects once by itself before its first operation, so that a wrong
        # database, user or password is one clear error at once, not a pool's wait first.
        self._contacted = warm
        self._contacting = anyio.Lock()
        # Every connection's options, for the pools and for the probe that opens the store.
        self._connect_options: dict[str, Any] = self.connecting.kwargs(application_name)
        self._pool = self._new_pool(url, max_connections, application_name)
        self._claims = self._new_pool(url, claim_connections, application_name) if claim_connections else None
        self._pools = [pool for pool in (self._pool, self._claims) if pool is not None]
        # Settles made at about the same time (a worker's requests in flight) share a statement.
        self._settling = _Grouped(self._settle_many, _batch_key, at_once=1)

    def _new_pool(self, url: str, size: int, application_name: str) -> AsyncConnectionPool[Any]:
        return AsyncConnectionPool(
            url,
            min_size=size if self._warm else 1,
            max_size=size,
            kwargs=self._connect_options,
            connection_class=self.connecting.connection_class(),
            open=False,
            timeout=min(self.patience, 10.0),
            name=application_name,
            configure=self._warm_up if self._warm else None,
        )

    @classmethod
    def from_settings(cls, settings: ClusterSettings, **options: Any) -> CampaignStore:
        """The store ``settings`` name."""
        return cls(settings.database_url, schema=settings.schema, patience=settings.patience, **options)

    def __repr__(self) -> str:
        return f"<CampaignStore schema={self.schema!r}>"

    async def __aenter__(self) -> Self:
        if self._warm:
            # Waiting for a warm pool would retry a wrong database or password for the whole patience.
            await self.probe()
        try:
            for pool in self._pools:
                await pool.open(wait=self._warm, timeout=self.patience)
        except BaseException as error:
            # A failed or cancelled opening closes the connections already made.
            await self._close_pools()
            if isinstance(error, psycopg.OperationalError):
                raise _unavailable(error) from None
            raise
        return self

    async def probe(self) -> None:
        """Connect once, now: a wrong address, database, user or password is one clear error at once.

        Raises:
            StoreUnavailableError: the connection failed (the message says
                whether trying again can help); nothing was retried.
        """
        error = await self._connect_error()
        if error is not None:
            raise _unavailable(error)

    async def _first_contact(self) -> None:
        """Connect once before a lazy store's first operation; a failure no retry can mend is raised."""
        async with self._contacting:
            if self._contacted:
                return
            error = await self._connect_error()
            self._contacted = True  # asked once: a failure that may pass is the operations' to retry
            if error is not None and is_permanent(error):
                raise _unavailable(error) from None

    async def _connect_error(self) -> psycopg.OperationalError | None:
        """Why a new connection fails now, if it does."""
        try:
            conn = await self.connecting.connection_class().connect(self._url, **self._connect_options)
        except psycopg.OperationalError as error:
            return error
        await conn.close()
        return None

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._close_pools()

    async def _close_pools(self) -> None:
        with anyio.CancelScope(shield=True):
            for pool in self._pools:
                await pool.close()

    async def _warm_up(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Plan the hot statements once on a new connection, touching no row.

        A new server process loads its catalog caches on its first statements,
        which takes milliseconds: spent on a claim, just after the rate
        meter's slot, that would make requests bunch up at the gateway.
        """
        try:
            await conn.execute(self.sql["claim"], {"campaign": -1, "idx": -1, "runner": ""})
            nobody = json.dumps([_settle_item(-1, -1, "", "sent", {}, [], 0, 0, None)])
            await conn.execute(self.sql["settle"], {"campaign": -1, "idxs": [-1], "batches": nobody})
            await conn.execute(self.sql["paused_for"], {"key": ""})
        except (pg_errors.UndefinedTable, pg_errors.InvalidSchemaName):
            return  # no campaign yet: nothing to warm up

    # -- running statements -------------------------------------------------------------

    def connection(self) -> contextlib.AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]:
        """A pooled connection, without retries: for work that cannot simply be done again."""
        return self._pool.connection()

    async def run(
        self,
        what: str,
        operation: Callable[[psycopg.AsyncConnection[Any], int], Awaitable[T]],
        *,
        pool: AsyncConnectionPool[Any] | None = None,
        patience: float | None = None,
    ) -> T:
        """``operation(connection, attempt)``, tried again on a new connection while the store is unreachable.

        ``what`` names the operation in messages. Each try is bounded by the
        connection settings' operation timeout (an answer lost on a silent
        network counts as a lost connection). Raises
        :class:`StoreUnavailableError` after ``patience`` seconds (the store's own by default).
        """
        if not self._contacted:
            await self._first_contact()
        give_up = time.monotonic() + (self.patience if patience is None else patience)
        wait = 0.05
        attempt = 0
        while True:
            attempt += 1
            try:
                # Each wait is cut to what is left of the patience, so the whole outage is bounded by it.
                async with (pool or self._pool).connection(timeout=self._budget(give_up)) as conn:
                    if self.connecting.pooled:
                        conn.prepare_threshold = None
                    with anyio.fail_after(self._budget(give_up)):
                        return await operation(conn, attempt)
            except (pg_errors.UndefinedTable, pg_errors.InvalidSchemaName):
                raise CampaignError(
                    f"the campaign store has no tables in schema {self.schema!r}: create a campaign "
                    "first (sms-async campaign create), or check SMS_ASYNC_DATABASE_URL and "
                    "SMS_ASYNC_DATABASE_SCHEMA"
                ) from None
            except Exception as error:
                if is_pooler_error(error):
                    # The statement did not run: run it again, unprepared.
                    self.connecting.found_pooler(redact(str(error))[:100])
                else:
                    # The pool says only that no connection came: a new one says why.
                    cause = (
                        (await self._connect_error() or error) if isinstance(error, PoolTimeout) else error
                    )
                    if is_permanent(cause):
                        raise _unavailable(cause) from None
                    if not is_transient(cause) and not isinstance(cause, TimeoutError):
                        raise
                why = redact(str(error))[:300] or (
                    f"no answer within {self.connecting.operation_timeout:g} s"
                    if isinstance(error, TimeoutError)
                    else type(error).__name__
                )
                if time.monotonic() + wait > give_up:
                    raise StoreUnavailableError(
                        f"the campaign store cannot be reached ({what}): {why}"
                    ) from None
                logger.warning("campaign store: %s failed (%s); trying again", what, why[:200])
            await anyio.sleep(wait)
            wait = min(wait * 2, 2.0)

    def _budget(self, give_up: float) -> float:
        """Seconds one wait of an operation may take: the operation timeout, or what the patience has left."""
        return max(min(self.connecting.operation_timeout, give_up - time.monotonic()), 0.5)

    @property
    def operation_timeout(self) -> float:
        """Seconds one try of one operation may take before it counts as lost."""
        return self.connecting.operation_timeout

    async def heartbeat(self, runner: str, campaign: int, *, patience: float) -> str:
        """Runner ``runner`` is alive: the campaign's state (``"gone"`` if none), tried for ``patience`` s."""
        params = {"runner": runner, "campaign": campaign}

        async def go(conn: psycopg.AsyncConnection[Any], _attempt: int) -> tuple[Any, ...] | None:
            return await (await conn.execute(self.sql["heartbeat"], params)).fetchone()

        row = await self.run("heartbeat", go, patience=patience)
        return str(row[0]) if row else "gone"

    async def fetchone(self, name: str, **params: Any) -> tuple[Any, ...] | None:
        """The first row of statement ``name``."""

        async def go(conn: psycopg.AsyncConnection[Any], _attempt: int) -> tuple[Any, ...] | None:
            return await (await conn.execute(self.sql[name], params)).fetchone()

        return await self.run(name, go)

    async def fetchall(self, name: str, **params: Any) -> list[tuple[Any, ...]]:
        """Every row of statement ``name``."""

        async def go(conn: psycopg.AsyncConnection[Any], _attempt: int) -> list[tuple[Any, ...]]:
            return await (await conn.execute(self.sql[name], params)).fetchall()

        return await self.run(name, go)

    async def execute(self, name: str, **params: Any) -> int:
        """Run statement ``name``; the number of rows it touched."""

        async def go(conn: psycopg.AsyncConnection[Any], _attempt: int) -> int:
            return (await conn.execute(self.sql[name], params)).rowcount

        return await self.run(name, go)

    @contextlib.asynccontextmanager
    async def loading(self, params: dict[str, Any]) -> AsyncIterator[Loading]:
        """A new campaign of ``params``, loaded in one transaction: all of it, or nothing."""
        params = {"windows": None, "timezone": None, "start_at": None, "report_share": 0.1, **params}
        async with self._pool.connection() as conn, conn.transaction():
            row = await (await conn.execute(self.sql["insert_campaign"], params)).fetchone()
            assert row is not None  # noqa: S101 - INSERT ... RETURNING answers one row
            yield _PgLoading(self, conn, int(row[0]))

    # -- the schema ---------------------------------------------------------------------

    async def install(self) -> None:
        """Create the schema and its tables where they are missing (safe to run at any time)."""

        async def go(conn: psycopg.AsyncConnection[Any], _attempt: int) -> None:
            async with conn.transaction():
                # One installer at a time: CREATE ... IF NOT EXISTS races with itself.
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"sms_async:{self.schema}",)
                )
                await conn.execute(ddl(self.schema))
                table = f'"{self.schema}".store_version'
                row = await (await conn.execute(f"SELECT max(version) FROM {table}")).fetchone()  # noqa: S608 - checked schema name
                version = row[0] if row else None
                if version is None:
                    await conn.execute(f"INSERT INTO {table} VALUES (%s)", (SCHEMA_VERSION,))  # noqa: S608
                elif version != SCHEMA_VERSION:
                    raise CampaignError(
                        f"the campaign store in schema {self.schema!r} was made by another version of "
                        f"sms_async (store version {version}, this one uses {SCHEMA_VERSION})"
                    )

        await self.run("install", go)

    async def drop(self) -> None:
        """Drop the schema and everything in it (every campaign is lost)."""

        async def go(conn: psycopg.AsyncConnection[Any], _attempt: int) -> None:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

        await self.run("drop", go)

    # -- campaigns ----------------------------------------------------------------------

    async def campaign(self, campaign: int) -> StoredCampaign:
        """The campaign with id ``campaign``; CampaignError if there is none."""
        row = await self.fetchone("campaign", campaign=campaign)
        if row is None:
            raise CampaignError(f"there is no campaign {campaign} in the store (schema {self.schema!r})")
        return StoredCampaign(*row)

    async def start(self, campaign: int) -> tuple[StoredCampaign, list[int]]:
        """Mark the campaign running and return it with the shards that have work left.

        A campaign that ran before (done, aborted, or running with lost
        tasks) is resumed: its unsent batches are sent again, batches already
        sent are not.
        """
        found = await self.campaign(campaign)
        if found.state == "cancelled":
            raise CampaignError(f"campaign {campaign} was cancelled; it cannot be started again")
        if found.state == "loading":
            raise CampaignError(f"campaign {campaign} is still being loaded (or its loading failed)")

        async def go(conn: psycopg.AsyncConnection[Any], _attempt: int) -> list[int]:
            async with conn.transaction():
                started = await (await conn.execute(self.sql["start"], {"campaign": campaign})).fetchone()
                if started is None:
                    return []
                await conn.execute(self.sql["retry_unsent"], {"campaign": campaign})
                rows = await (
                    await conn.execute(self.sql["shards_to_run"], {"campaign": campaign})
                ).fetchall()
            return [int(row[0]) for row in rows]

        shards = await self.run("start", go)
        await self.finish(campaign)
        return await self.campaign(campaign), shards

    async def stop(self, campaign: int, state: str, reason: str) -> bool:
        """Stop the campaign (``cancelled`` or ``aborted``): batches nobody holds become unsent.

        Batches in flight finish and settle. Returns whether this call stopped
        it (``False``: it had stopped or finished already).
        """
        reason = redact(reason)
        from_states = ["ready", "running"] if state == "cancelled" else ["running"]

        async def go(conn: psycopg.AsyncConnection[Any], _attempt: int) -> bool:
            async with conn.transaction():
                stopped = await (
                    await conn.execute(
                        self.sql["stop"],
                        {"campaign": campaign, "state": state, "reason": reason, "from_states": from_states},
                    )
                ).fetchone()
                if stopped is None:
                    return False
                await conn.execute(
                    self.sql["give_up_pending"],
                    {"campaign": campaign, "outcome": Outcome.UNSENT.value, "reason": f"not sent: {reason}"},
                )
            return True

        return await self.run(f"stop ({state})", go)

    async def finish(self, campaign: int) -> bool:
        """Mark a running campaign done if no batch is left to send or in flight; whether it did."""
        return bool(await self.execute("finish", campaign=campaign))

    async def reap(self, campaign: int, lease: float, batches: tuple[int, int] = _EVERY_BATCH) -> int:
        """Batches whose sender stopped heartbeating ``lease`` seconds ago become unknown; how many did.

        They may have reached the gateway, so they are never sent again.
        """
        reason = (
            "the worker sending this batch stopped (crash, kill or lost connection) while it was being "
            "sent: it may or may not have been sent, and sending it again may send it twice"
        )
        first, last = batches
        row = await self.fetchone(
            "reap",
            campaign=campaign,
            lease=lease,
            first=first,
            last=last,
            outcome=Outcome.UNKNOWN.value,
            reason=reason,
        )
        return int(row[0]) if row else 0

    async def idle_for(self, campaign: int) -> float | None:
        """Seconds since any worker last worked on the campaign (``None`` if it never started)."""
        row = await self.fetchone("idle_for", campaign=campaign)
        return None if row is None or row[0] is None else float(row[0])

    async def status(self, campaign: int) -> CampaignStatus:
        """Inputs per outcome and batches per state."""
        found = await self.campaign(campaign)
        row = await self.fetchone("totals", campaign=campaign)
        assert row is not None  # noqa: S101 - an aggregate always answers one row
        return status_from_totals(found, [int(value) for value in row])

    async def export(self, campaign: int) -> AsyncIterator[Entry | Unsettled]:
        """Every input's row, in input order (see :meth:`export_rows`, which adds the kept columns)."""
        async for row, _kept in self.export_rows(campaign):
            yield row

    async def export_rows(self, campaign: int) -> AsyncIterator[tuple[Entry | Unsettled, list[str]]]:
        """Every input's row, in input order, as ``BatchResult.entries()`` gives them, with its kept columns.

        ``position`` is the input's row as its reader numbered it (its line or
        CSV row: see :func:`create_campaign`), as a results file shows it. An
        input not settled yet is :class:`~sms_async.campaign.Unsettled`.
        """
        async for row, kept, _delivery, _at in self.export_deliveries(campaign):
            yield row, kept

    async def export_deliveries(
        self, campaign: int
    ) -> AsyncIterator[tuple[Entry | Unsettled, list[str], str, str]]:
        """As :meth:`export_rows`, with each row's delivery state and delivered_at (ISO 8601), or ``""``."""
        await self.campaign(campaign)
        async with (
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor(name="sms_async_export") as cursor,
        ):
            cursor.itersize = 5000
            # Every row is read: plan for the whole result, not the first rows. Planned for
            # its first rows (a cursor's default), a campaign whose tables have no statistics
            # yet gets a nested loop over both tables, which runs past the statement timeout.
            await conn.execute("SET LOCAL cursor_tuple_fraction = 1.0")
            await cursor.execute(self.sql["export"], {"campaign": campaign})
            async for position, raw, e164, outcome, message_id, reason, kept, delivery, at in cursor:
                when = "" if at is None else at.astimezone(dt.UTC).isoformat()
                if outcome is None:
                    yield Unsettled(int(position), raw, e164), kept or [], delivery, when
                else:
                    entry = Entry(int(position), raw, e164, Outcome(outcome), message_id, reason)
                    yield entry, kept or [], delivery, when

    # -- one batch ----------------------------------------------------------------------

    async def claim(self, campaign: int, idx: int, runner: str) -> bool:
        """Pending -> sending for ``runner``, committed; ``False`` if the batch is not its to send."""
        params = {"campaign": campaign, "idx": idx, "runner": runner}

        async def go(conn: psycopg.AsyncConnection[Any], _attempt: int) -> bool:
            return await (await conn.execute(self.sql["claim"], params)).fetchone() is not None

        return await self.run("claim", go, pool=self._claims)

    async def release(self, campaign: int, idx: int, runner: str) -> None:
        """Sending -> pending: ``runner``'s last try certainly never reached the gateway."""
        await self.execute("release", campaign=campaign, idx=idx, runner=runner)

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
        for a first poll; ``accepted_at`` (default: now) dates their acceptance.

        Returns whether the batch was ``runner``'s to settle; settling twice
        (a retry after a lost answer) is harmless.
        """
        item = _settle_item(campaign, idx, runner, state, counts, rows, requests, retries, accepted_at)
        settled: bool = await self._settling(item)
        return settled

    async def _settle_many(self, items: list[dict[str, Any]]) -> list[bool]:
        """Settle each batch of ``items`` (one campaign; see :func:`_settle_item`) in one statement.

        Returns which were settled.
        """
        campaign = items[0]["campaign"]
        idxs = [item["idx"] for item in items]
        params = {"campaign": campaign, "idxs": idxs, "batches": json.dumps(items)}

        async def go(conn: psycopg.AsyncConnection[Any], attempt: int) -> set[int]:
            won = {int(row[0]) for row in await (await conn.execute(self.sql["settle"], params)).fetchall()}
            if attempt > 1 and len(won) < len(items):
                # Tried again after a lost answer: the first try may have committed.
                asked = [[item["idx"], item["state"]] for item in items if item["idx"] not in won]
                again = {"campaign": campaign, "idxs": [a[0] for a in asked], "batches": json.dumps(asked)}
                done = await (await conn.execute(self.sql["settled_as"], again)).fetchall()
                won.update(int(row[0]) for row in done)
            return won

        won = await self.run("settle", go)
        return [idx in won for idx in idxs]

    # -- delivery, schedule, pause ------------------------------------------------------

    def delivery_book(self, campaign: int, *, lease: float = 60.0) -> PgDeliveryBook:
        """The campaign's message ids as a delivery book (see :class:`~sms_async.campaign.Store`)."""
        return PgDeliveryBook(self, campaign, lease=lease)

    async def delivery_tally(self, campaign: int) -> DeliveryTally:
        """Accepted numbers by delivery state."""
        rows = await self.fetchall("delivery_tally", campaign=campaign)
        return DeliveryTally(**{str(state): int(count) for state, count in rows})

    async def schedule(self, campaign: int) -> Schedule:
        """The campaign's sending windows and start time."""
        return (await self.campaign(campaign)).schedule

    async def set_paused(self, campaign: int, paused: bool) -> bool:
        """Pause or resume the campaign (one that has not stopped); whether that changed anything."""
        await self.campaign(campaign)
        return bool(await self.execute("set_paused", campaign=campaign, paused=paused))

    # -- the delivery polling chain (Celery) ---------------------------------------------------

    async def new_poll_chain(self, campaign: int) -> int:
        """A new generation of the campaign's delivery polling chain, which ends every older one.

        ``campaign start`` takes one for the poll task it queues; a poll task
        whose generation is older than :meth:`poll_chain`'s ends without
        polling, so repeated starts leave one chain. Adds the chains' table
        to a store made before it existed. Running it twice (a lost answer)
        only ends one chain more.
        """

        async def go(conn: psycopg.AsyncConnection[Any], _attempt: int) -> int:
            async with conn.transaction():
                # As install: one creator at a time (CREATE ... IF NOT EXISTS races with itself).
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"sms_async:{self.schema}",)
                )
                await conn.execute(poll_chains_ddl(self.schema))
                row = await (
                    await conn.execute(self.sql["new_poll_chain"], {"campaign": campaign})
                ).fetchone()
            assert row is not None  # noqa: S101 - INSERT ... RETURNING answers one row
            return int(row[0])

        return await self.run("new poll chain", go)

    async def poll_chain(self, campaign: int) -> int | None:
        """The generation of the campaign's live polling chain; None if no start made one.

        (None too in a store made before chains were kept, where no start has made one since.)
        """

        async def go(conn: psycopg.AsyncConnection[Any], _attempt: int) -> int | None:
            try:
                row = await (await conn.execute(self.sql["poll_chain"], {"campaign": campaign})).fetchone()
            except pg_errors.UndefinedTable:
                return None
            return None if row is None else int(row[0])

        return await self.run("poll chain", go)


class PgDeliveryBook:
    """One campaign's message ids in the PostgreSQL store, as a :class:`~sms_async.campaign.DeliveryBook`.

    ``due`` leases the ids it returns to this book (``UPDATE ... RETURNING``
    over rows locked with ``SKIP LOCKED``), so that two workers never poll one
    id at once; a worker killed mid-poll leaves a lease that runs out, and
    the id is polled again. ``record`` is one transaction, and safe to repeat.
    """

    def __init__(self, store: CampaignStore, campaign: int, *, lease: float = 60.0) -> None:
        self.store = store
        self.campaign = campaign
        self.lease = lease
        #: Who holds the leases this book takes (each book its own): host and process, as a
        #: shard run's id, so that one can tell whose lease an id is under.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(6).hex()}"

    def __repr__(self) -> str:
        return f"PgDeliveryBook({self.store!r}, campaign={self.campaign})"

    async def due(self, now: dt.datetime, limit: int) -> list[DueMessage]:
        """Up to ``limit`` ids due at ``now``, earliest first, leased to this book for its lease."""
        rows = await self.store.fetchall(
            "due",
            campaign=self.campaign,
            now=now,
            until=now + dt.timedelta(seconds=self.lease),
            owner=self.owner,
            limit=limit,
        )
        rows.sort(key=lambda row: (row[3], row[0]))
        return [DueMessage(str(m), a, int(p)) for m, a, p, _next in rows]

    async def record(self, outcomes: Sequence[PollOutcome]) -> None:
        """Apply the polls' outcomes in one transaction: states only move forward."""
        ids = sorted({outcome.message_id for outcome in outcomes})
        if not ids:
            return
        sql = self.store.sql

        async def go(conn: psycopg.AsyncConnection[Any], _attempt: int) -> None:
            async with conn.transaction():
                rows = await (
                    await conn.execute(sql["tracked_numbers"], {"campaign": self.campaign, "ids": ids})
                ).fetchall()
                current: dict[str, dict[str, NumberDelivery]] = {}
                positions: dict[tuple[str, str], int] = {}
                for position, message_id, e164, state, raw, at in rows:
                    current.setdefault(message_id, {})[e164] = NumberDelivery(DeliveryState(state), raw, at)
                    positions[message_id, e164] = int(position)
                changed, due = apply_outcomes(outcomes, current)
                if changed:
                    changes = [
                        [positions[key], d.state.value, d.raw, None if d.at is None else d.at.isoformat()]
                        for key, d in changed.items()
                    ]
                    await conn.execute(
                        sql["record_numbers"], {"campaign": self.campaign, "changes": json.dumps(changes)}
                    )
                polls = [[m, None if when is None else when.isoformat()] for m, when in due]
                await conn.execute(
                    sql["record_polls"], {"campaign": self.campaign, "polls": json.dumps(polls)}
                )

        await self.store.run("record delivery", go)

    async def next_due(self) -> dt.datetime | None:
        """When the earliest poll is due (for an id another poller holds, when its lease ends).

        None when no number is pending.
        """
        row = await self.store.fetchone("next_due", campaign=self.campaign, owner=self.owner)
        return None if row is None else row[0]
