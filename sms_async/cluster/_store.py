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
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import anyio
import attrs
import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from sms_async._exceptions import UsageError
from sms_async._models import Entry, Outcome
from sms_async._redact import keep_secrets, redact
from sms_async.cluster._schema import OUTCOMES, SCHEMA_VERSION, ddl, sql
from sms_async.cluster._settings import DEFAULT_SCHEMA, ClusterSettings, check_schema

__all__ = [
    "Campaign",
    "CampaignError",
    "CampaignStatus",
    "CampaignStore",
    "StoreUnavailableError",
    "is_transient",
]

logger = logging.getLogger("sms_async.cluster")

T = TypeVar("T")

#: Campaign states in which nothing more is sent.
STOPPED: Final = ("done", "cancelled", "aborted")
_EVERY_BATCH: Final = (0, 2**31 - 1)
_COUNT_NAMES: Final = tuple(outcome.value for outcome in OUTCOMES)
_NOT_YET: Final = "not settled yet: the campaign is still running"


class StoreUnavailableError(RuntimeError):
    """The campaign store could not be reached for longer than the store's patience.

    Deliberately not an :class:`~sms_async.SmsError`: the engine turns those
    into outcomes of a batch, and an unreachable store says nothing about a
    batch; it stops the shard, whose task is tried again later.
    """


class CampaignError(UsageError):
    """A campaign that does not exist, or cannot do what was asked in its state."""


@attrs.frozen
class Campaign:
    """One campaign as the store keeps it (no credential: workers bring their own)."""

    id: int
    state: str
    gateway: str
    region: str
    sender_id: str
    text: str
    max_segments: int | None
    skip_dnd: bool
    #: Messages a second for the whole campaign, across every worker; ``None``: no limit.
    rate: float | None
    #: The Celery queue its shards go to.
    queue: str
    input_name: str
    max_batch: int
    shard_size: int
    #: Inputs read, distinct valid numbers among them, and batches cut.
    inputs: int
    recipients: int
    batches: int
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    #: Why it stopped early (cancelled, or the gateway refused the credentials or has no credit).
    stop_reason: str | None

    @property
    def shards(self) -> int:
        """How many shards its batches make."""
        return -(-self.batches // self.shard_size)

    def shard_range(self, shard: int) -> tuple[int, int]:
        """The first and last batch index of ``shard``."""
        first = shard * self.shard_size
        return first, min(first + self.shard_size, self.batches) - 1


@attrs.frozen
class CampaignStatus:
    """How a campaign stands: inputs per outcome and batches per state."""

    campaign: Campaign
    #: Inputs per outcome so far (inputs not yet settled are in none).
    outcomes: dict[Outcome, int]
    #: Batches per state: pending, unsent (settled, every number unsent), sending, sent, rejected, unknown.
    batches: dict[str, int]
    requests: int
    retries: int

    @property
    def settled(self) -> int:
        """Inputs with an outcome."""
        return sum(self.outcomes.values())

    @property
    def finished(self) -> bool:
        """Whether nothing more will happen: done, or stopped with no batch in flight."""
        return self.campaign.state in STOPPED and not self.batches["sending"]

    @property
    def all_accepted(self) -> bool:
        """Whether every input was accepted (duplicates and do-not-disturb skips aside)."""
        fine = {Outcome.ACCEPTED, Outcome.DUPLICATE, Outcome.SKIPPED}
        return self.settled == self.campaign.inputs and not any(
            count for outcome, count in self.outcomes.items() if outcome not in fine
        )


def is_transient(error: BaseException) -> bool:
    # Connection losses, a server shutting down, serialization failures and
    # deadlocks are OperationalErrors; a closed connection is an InterfaceError.
    return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)


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
            password = conninfo_to_dict(url).get("password")
        except psycopg.ProgrammingError:
            raise CampaignError(
                "the campaign store's address is not a PostgreSQL connection string or URL"
            ) from None
        keep_secrets(self, password if isinstance(password, str) else None)
        self.sql = sql(self.schema)
        self._warm = warm
        self._pool = self._new_pool(url, max_connections, application_name)
        self._claims = self._new_pool(url, claim_connections, application_name) if claim_connections else None
        self._pools = [pool for pool in (self._pool, self._claims) if pool is not None]

    def _new_pool(self, url: str, size: int, application_name: str) -> AsyncConnectionPool[Any]:
        return AsyncConnectionPool(
            url,
            min_size=size if self._warm else 1,
            max_size=size,
            kwargs={"autocommit": True, "application_name": application_name, "connect_timeout": 10},
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
        try:
            for pool in self._pools:
                await pool.open(wait=self._warm, timeout=self.patience)
        except BaseException as error:
            # A failed or cancelled opening closes the connections already made.
            await self._close_pools()
            if isinstance(error, psycopg.OperationalError):
                raise StoreUnavailableError(
                    f"the campaign store cannot be reached: {redact(str(error))[:300]}"
                ) from None
            raise
        return self

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
        nobody: dict[str, Any] = {"campaign": -1, "idx": -1, "runner": ""}
        try:
            await conn.execute(self.sql["claim"], nobody)
            await conn.execute(
                self.sql["settle"],
                {
                    **nobody,
                    **dict.fromkeys(_COUNT_NAMES, 0),
                    "rows": "[]",
                    "state": "sent",
                    "requests": 0,
                    "retries": 0,
                },
            )
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
    ) -> T:
        """``operation(connection, attempt)``, tried again on a new connection while the store is unreachable.

        ``what`` names the operation in messages. Raises
        :class:`StoreUnavailableError` after ``patience`` seconds.
        """
        give_up = time.monotonic() + self.patience
        wait = 0.05
        attempt = 0
        while True:
            attempt += 1
            try:
                async with (pool or self._pool).connection() as conn:
                    return await operation(conn, attempt)
            except (pg_errors.UndefinedTable, pg_errors.InvalidSchemaName):
                raise CampaignError(
                    f"the campaign store has no tables in schema {self.schema!r}: create a campaign "
                    "first (sms-async campaign create), or check SMS_ASYNC_DATABASE_URL and "
                    "SMS_ASYNC_DATABASE_SCHEMA"
                ) from None
            except Exception as error:
                if not is_transient(error):
                    raise
                if time.monotonic() + wait > give_up:
                    raise StoreUnavailableError(
                        f"the campaign store cannot be reached ({what}): {redact(str(error))[:300]}"
                    ) from None
                logger.warning("campaign store: %s failed (%s); trying again", what, redact(str(error))[:200])
            await anyio.sleep(wait)
            wait = min(wait * 2, 2.0)

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

    async def campaign(self, campaign: int) -> Campaign:
        """The campaign with id ``campaign``; CampaignError if there is none."""
        row = await self.fetchone("campaign", campaign=campaign)
        if row is None:
            raise CampaignError(f"there is no campaign {campaign} in the store (schema {self.schema!r})")
        return Campaign(*row)

    async def start(self, campaign: int) -> tuple[Campaign, list[int]]:
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

    async def status(self, campaign: int) -> CampaignStatus:
        """Inputs per outcome and batches per state."""
        found = await self.campaign(campaign)
        row = await self.fetchone("totals", campaign=campaign)
        assert row is not None  # noqa: S101 - an aggregate always answers one row
        values = [int(value) for value in row]
        outcomes = dict(zip(OUTCOMES, values[: len(OUTCOMES)], strict=True))
        names = ("pending", "unsent", "sending", "sent", "rejected", "unknown")
        batches = dict(zip(names, values[len(OUTCOMES) : len(OUTCOMES) + len(names)], strict=True))
        requests, retries = values[-2:]
        return CampaignStatus(found, outcomes, batches, requests, retries)

    async def export(self, campaign: int) -> AsyncIterator[Entry]:
        """Every input's row, in input order, as ``BatchResult.entries()`` gives them.

        ``position`` is the input's row as its reader numbered it (its line or
        CSV row: see :func:`create_campaign`), as a results file shows it. An
        input still waiting to be sent shows as unknown, with a reason saying so.
        """
        await self.campaign(campaign)
        async with (
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor(name="sms_async_export") as cursor,
        ):
            cursor.itersize = 5000
            await cursor.execute(self.sql["export"], {"campaign": campaign})
            async for position, raw, e164, outcome, message_id, reason in cursor:
                if outcome is None:
                    yield Entry(int(position), raw, e164, Outcome.UNKNOWN, "", _NOT_YET)
                else:
                    yield Entry(int(position), raw, e164, Outcome(outcome), message_id, reason)

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
    ) -> bool:
        """Record a batch's final state, counts and rows ``(position, outcome, message_id, reason)``.

        Returns whether the batch was ``runner``'s to settle; settling twice
        (a retry after a lost answer) is harmless.
        """
        params: dict[str, Any] = {
            "campaign": campaign,
            "idx": idx,
            "runner": runner,
            "state": state,
            "requests": requests,
            "retries": retries,
            "rows": json.dumps(rows),
        }
        params.update({outcome.value: counts.get(outcome, 0) for outcome in OUTCOMES})

        async def go(conn: psycopg.AsyncConnection[Any], attempt: int) -> bool:
            won = await (await conn.execute(self.sql["settle"], params)).fetchone()
            if won is not None and won[0]:
                return True
            if attempt == 1:
                return False
            # Tried again after a lost answer: the first try may have committed.
            done = await (
                await conn.execute(
                    f'SELECT settled AND state = %s FROM "{self.schema}".batches '  # noqa: S608 - checked schema name
                    "WHERE campaign = %s AND idx = %s",
                    (state, campaign, idx),
                )
            ).fetchone()
            return bool(done and done[0])

        return await self.run("settle", go)
