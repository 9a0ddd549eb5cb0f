"""``run_shard``: send one shard of a stored campaign with a :class:`~sms_async.BulkSender`.

A plain coroutine: the Celery task runs it in an event loop of its own, and
users of another queue can await it directly. Any number of runs may work on
the same shard at once (a task delivered twice, a redelivery while the first
run still goes): the store's claim gives each batch to one of them.

The stored batches are fed to ``BulkSender.stream`` as their numbers, and the
engine's own batcher cuts them again into the very same batches (a batch of
``max_batch`` numbers is cut when full; a shorter one ends a group), so the
engine sees ordinary batches and the store's journal maps each back to its
stored index; the digest of its numbers proves it.

A batch's claim is committed before its request is written; its settle is
written behind the sending (the worker takes its next batch meanwhile, and
the store puts the settles of several batches in one statement), and a run
returns only once every batch it settled is written. A stream's numbers are
de-duplicated in a set of the strings the run holds anyway (the stored
batches are disjoint: the loader de-duplicated the whole campaign).

A run loops until its shard has nothing left to send: it reaps batches whose
sender stopped heartbeating (they become ``unknown``), sends the pending
ones, and waits for batches other runs are sending. It stops when the
campaign stops (cancelled, or aborted by any worker's bad credentials or
lack of credit) and when its time budget is spent, saying so in its report
so that its task can hand the rest to a new one.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import AsyncGenerator, Coroutine, Iterable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import anyio
import anyio.abc
import attrs

from sms_async._clock import SYSTEM_CLOCK, Clock
from sms_async._engine import BulkSender
from sms_async._exceptions import ConfigurationError, GatewayError, SmsError
from sms_async._journal import Admission, numbers_digest, state_of
from sms_async._message import Message
from sms_async._models import BatchResult, Outcome
from sms_async._redact import redact
from sms_async._retry import RetryPolicy
from sms_async.campaign import Store, StoredCampaign, StoreUnavailableError, wait_to_claim
from sms_async.cluster._rate import StoreMeter, StorePause, keep_pace
from sms_async.cluster._settings import account_key
from sms_async.providers import Driver
from sms_async.transports import HttpBackend, Timeouts

if TYPE_CHECKING:
    from sms_async._batching import Batch

__all__ = ["ShardReport", "run_shard"]

logger = logging.getLogger("sms_async.cluster")

T = TypeVar("T")

# Groups of batches streamed at once by one run (normally a shard is one group).
_GROUPS_AT_ONCE: Final = 8
# Settled batches a run may have waiting to be written to the store (behind its requests).
_SETTLES_AHEAD: Final = 64
# Seconds between looks at batches other runs are sending.
_LOOK_AGAIN: Final = 0.5


@attrs.frozen
class ShardReport:
    """What one run of a shard did."""

    campaign: int
    shard: int
    #: The Celery queue of the campaign.
    queue: str
    #: Batches this run settled.
    settled: int = 0
    #: Batches this run found lost (their sender stopped) and reported unknown.
    reaped: int = 0
    #: Whether every batch of the shard is settled.
    complete: bool = False
    #: The time budget ran out with work left: run the shard again.
    more: bool = False
    #: The campaign's state when the run stopped because the campaign had stopped (``"paused"``
    #: when it was paused: ``resume`` starts its shards again).
    stopped: str | None = None
    #: With ``more``: the shard waits for its window or start time, which opens then.
    opens_at: datetime | None = None


@attrs.define(eq=False)
class _Stored:
    """A stored batch to send: its index, its numbers and their input positions."""

    idx: int
    digest: str
    #: The batch's own text, for a campaign with a text per recipient.
    text: str | None = None
    numbers: list[str] = attrs.Factory(list)
    positions: list[int] = attrs.Factory(list)


class _ShardJournal:
    """The store as the engine's journal, for one group of stored batches fed to one ``stream`` call."""

    def __init__(self, run: _Run, group: Sequence[_Stored]) -> None:
        self._run = run
        self._group = group

    def _stored(self, batch: Batch | BatchResult) -> _Stored | None:
        index = batch.index
        if 0 <= index < len(self._group):
            stored = self._group[index]
            if numbers_digest(batch.numbers, stored.text) == stored.digest and (
                stored.text is None or (isinstance(batch, BatchResult) or _text_of(batch) == stored.text)
            ):
                return stored
        return None

    async def admit(self, batch: Batch) -> Admission:
        """As :meth:`_admit`; once the store is lost, nothing more (see :meth:`_Run.lose`)."""
        return await self._run.unless_lost(self._admit(batch), Admission.SKIP)

    async def _admit(self, batch: Batch) -> Admission:
        """Send it, unless the campaign stopped, the run's time is up, or the batch is not the stored one."""
        run = self._run
        if run.stopped is not None or run.lost is not None or time.monotonic() >= run.give_up:
            return Admission.SKIP  # left pending: the next run sends it
        if not run.may_claim():
            return Admission.SKIP  # outside its window: left pending until it opens
        if self._stored(batch) is None:
            await self._run.abort_campaign(
                f"a worker ({socket.gethostname()}) cut batch {batch.index} of a shard differently from the "
                "stored one: its phone number metadata differs from the loader's; upgrade it and start again"
            )
            return Admission.SKIP
        return Admission.SEND

    async def claim(self, batch: Batch) -> bool:
        """As :meth:`_claim`; once the store is lost, nothing more (see :meth:`_Run.lose`)."""
        return await self._run.unless_lost(self._claim(batch), False)

    async def _claim(self, batch: Batch) -> bool:
        """Win the batch in the store (one statement, durable when it returns).

        Not while this run's heartbeat is overdue: another run could take the
        batch for lost while its request is still being written.
        """
        stored = self._stored(batch)
        run = self._run
        if stored is None or run.stopped is not None or not run.beating():
            return False
        if (stored.idx, run.id) in run.held:
            # Its earlier claim or release lost its answer: it is to be given back, never sent by this run.
            return False
        try:
            claimed = await run.store.claim(run.campaign.id, stored.idx, run.id)
            # A claim answered long after the batch's rate slot waits for a new one.
            on_time = not claimed or await keep_pace()
        except BaseException as error:
            # No request follows a claim that did not return.
            run.unwritten(stored.idx)
            if isinstance(error, StoreUnavailableError):
                run.lose(error)
            raise
        if not on_time:
            # The run stopped while it waited: pending again, never sent.
            await self._release(batch)
            return False
        return claimed

    async def release(self, batch: Batch) -> None:
        """As :meth:`_release`; once the store is lost, nothing more (see :meth:`_Run.lose`)."""
        return await self._run.unless_lost(self._release(batch), None)

    async def _release(self, batch: Batch) -> None:
        """The last try never reached the gateway: pending again while it waits to retry."""
        stored = self._stored(batch)
        if stored is not None:
            try:
                await self._run.store.release(self._run.campaign.id, stored.idx, self._run.id)
            except BaseException as error:
                self._run.unwritten(stored.idx)
                if isinstance(error, StoreUnavailableError):
                    self._run.lose(error)
                raise

    async def settle(self, result: BatchResult) -> None:
        """As :meth:`_settle`; once the store is lost, nothing more (see :meth:`_Run.lose`)."""
        return await self._run.unless_lost(self._settle(result), None)

    async def _settle(self, result: BatchResult) -> None:
        """Record the batch's state, counts and one row per number; stop the campaign on an abort."""
        stored = self._stored(result)
        if stored is None or self._run.lost is not None:
            # With the store lost, what the batch became is left as the store has it:
            # pending is sent by the next run, sending (maybe sent) is reaped as unknown.
            return
        counts = dict.fromkeys(Outcome, 0)
        rows: list[tuple[int, str, str, str]] = []
        ids = result.message_ids
        if len(ids) == len(stored.positions) == len(result.numbers) and not result.local:
            # Every number accepted (the usual batch): its rows straight from the ids.
            accepted = Outcome.ACCEPTED.value
            rows = [
                (position, accepted, ids.get(e164, ""), "")
                for e164, position in zip(result.numbers, stored.positions, strict=True)
            ]
            if all(row[2] for row in rows):
                counts[Outcome.ACCEPTED] = len(rows)
            else:
                rows = []
        if not rows:
            reasons: dict[str, str] = {}
            rows = []
            for entry, position in zip(result.entries(), stored.positions, strict=True):
                counts[entry.outcome] += 1
                reason = entry.reason
                if reason:
                    reason = reasons.get(reason) or reasons.setdefault(reason, redact(reason))
                rows.append((position, entry.outcome.value, entry.message_id, reason))
        run = self._run
        write = self._write(stored, result, counts, rows, run.clock.now())
        if run.writes is None or not rows or counts[Outcome.ACCEPTED] < len(rows):
            # Any other batch is written now: one with a number that never reached the
            # gateway, left sending (its write skipped once the store is lost), would be
            # reaped as unknown, which only a request that may have been written may become.
            await write
            return
        # Every number accepted: written behind, the worker taking its next batch while
        # the store records this one (with the settles of other batches in the same
        # statement). Bounded: past _SETTLES_AHEAD batches not yet written, the worker
        # waits for room.
        try:
            await run.write_slots.acquire()
        except BaseException:
            write.close()
            raise
        run.writes.start_soon(self._written_behind, write)

    async def _written_behind(self, write: Coroutine[Any, Any, None]) -> None:
        """``write``, to its end even if the run is cancelled meanwhile (what the batch became is known)."""
        run = self._run
        try:
            with anyio.CancelScope(shield=True):
                await run.unless_lost(write, None)
        finally:
            run.write_slots.release()

    async def _write(
        self,
        stored: _Stored,
        result: BatchResult,
        counts: dict[Outcome, int],
        rows: list[tuple[int, str, str, str]],
        accepted_at: datetime,
    ) -> None:
        """Record the batch in the store; stop the campaign on an abort."""
        run = self._run
        try:
            settled = await run.store.settle(
                run.campaign.id,
                stored.idx,
                run.id,
                state=state_of(result).value,
                counts=counts,
                rows=rows,
                requests=result.requests,
                retries=result.retries,
                accepted_at=accepted_at,
            )
        except StoreUnavailableError as lost:
            run.lose(lost)
            raise
        if settled:
            run.settled += 1
        error = _abort_error(result)
        if error is not None:
            await run.abort_campaign(f"{type(error).__name__}: {error.reason}")


def _text_of(batch: Batch) -> str | None:
    return batch.message.text if batch.message is not None else None


def _abort_error(result: BatchResult) -> SmsError | None:
    if result.aborted is not None:
        return result.aborted
    for failure in result.failed.values():
        if isinstance(failure.error, GatewayError) and failure.error.aborts_run:
            return failure.error
    return None


class _Run:
    """One run of one shard: its identity, heartbeat, and the loop that sends what is left."""

    def __init__(
        self,
        store: Store,
        campaign: StoredCampaign,
        shard: int,
        *,
        lease: float,
        heartbeat: float,
        held: set[tuple[int, str]] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.store = store
        self.campaign = campaign
        self.clock = clock
        #: When a batch may be claimed (its windows and start time).
        self.schedule = campaign.schedule
        self.shard = shard
        self.lease = lease
        self.heartbeat = heartbeat
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.batches = campaign.shard_range(shard)
        #: The campaign's state once it stopped running (this run then stops).
        self.stopped: str | None = None
        #: Set when it stops: batches waiting for their rate slot give up waiting.
        self.stopping = anyio.Event()
        #: When this run stops taking batches (its time budget spent).
        self.give_up = math.inf
        self.settled = 0
        self.reaped = 0
        #: When the last heartbeat that was written had been sent.
        self.beat_at = time.monotonic()
        #: The store error that stopped this run, raised when it ends.
        self.lost: StoreUnavailableError | None = None
        #: When the window this run waits for opens, if its budget ended first.
        self.opens_at: datetime | None = None
        #: Where settled batches are written behind the sending (while :meth:`send` runs).
        self.writes: anyio.abc.TaskGroup | None = None
        self.write_slots = anyio.Semaphore(_SETTLES_AHEAD)
        #: Batches to give back, ``(index, runner)``: this run's and earlier runs' (see :func:`_give_back`).
        self.held: set[tuple[int, str]] = set() if held is None else held

    async def unless_lost(self, call: Coroutine[Any, Any, T], neutral: T) -> T:
        """``await call``, unless the store was lost (then ``neutral``); a store lost now is kept."""
        if self.lost is not None:
            call.close()
            return neutral
        try:
            return await call
        except StoreUnavailableError as error:
            self.lose(error)
            return neutral

    def lose(self, error: StoreUnavailableError) -> None:
        """The store is out of reach: take no more batches, write nothing more, raise ``error`` at the end.

        The engine never hears of it (it would make it a batch's outcome, or
        an abort of the campaign): batches not claimed stay pending, and one
        caught while being sent is settled by whoever runs the shard next.
        """
        if self.lost is None:
            self.lost = error
            self.stopping.set()

    def may_claim(self) -> bool:
        """Whether the campaign's windows and start time let a batch be claimed now."""
        return self.schedule.may_claim(self.clock.now())

    async def wait_to_claim(self, give_up: float) -> bool:
        """Wait (on the clock) until a batch may be claimed, or the time budget ends; whether it may now."""
        if self.may_claim():
            return True
        opens = self.schedule.next_claim(self.clock.now())
        logger.info(
            "campaign %d shard %d: %s",
            self.campaign.id,
            self.shard,
            self.schedule.waiting_message(self.clock.now()),
        )
        with anyio.move_on_after(max(give_up - time.monotonic(), 0)):
            await wait_to_claim(self.schedule, self.clock)
        self.opens_at = None if self.may_claim() else opens
        return self.opens_at is None

    def beating(self) -> bool:
        """Whether the last heartbeat written is recent enough to claim a batch on (well inside the lease)."""
        return time.monotonic() - self.beat_at < max(self.lease - 2 * self.heartbeat, self.heartbeat)

    def unwritten(self, idx: int) -> None:
        """Batch ``idx`` may be claimed by this run, and its request was certainly not written."""
        self.held.add((idx, self.id))

    def stop(self, state: str) -> None:
        """The campaign is no longer running: take no more batches."""
        if self.stopped is None:
            self.stopped = state
            self.stopping.set()

    async def abort_campaign(self, reason: str) -> None:
        """Stop the whole campaign: every worker stops after its requests in flight; the rest is unsent."""
        self.stop("aborted")
        if await self.store.stop(self.campaign.id, "aborted", reason):
            logger.warning("campaign %d aborted: %s", self.campaign.id, redact(reason))

    async def beat(self) -> None:
        """Tell the store this run is alive, and hear whether the campaign still runs.

        A heartbeat that cannot be written is tried again each period (claims
        stop meanwhile: see :meth:`beating`); past the store's patience the run
        stops with :class:`StoreUnavailableError`, and its task is retried.
        """
        while True:
            await anyio.sleep(self.heartbeat)
            sent = time.monotonic()
            try:
                state = await self.store.heartbeat(self.id, self.campaign.id, patience=self.heartbeat)
            except StoreUnavailableError as error:
                if time.monotonic() - self.beat_at > self.store.patience:
                    self.lose(error)
                    raise
                logger.warning(
                    "campaign %d shard %d: heartbeat not written (%s)", self.campaign.id, self.shard, error
                )
                continue
            self.beat_at = sent
            if state != "running":
                self.stop(state)

    async def refresh(self) -> None:
        """Look the campaign's state up now."""
        found = await self.store.campaign(self.campaign.id)
        if found.state != "running":
            self.stop(found.state)
        elif found.paused:
            self.stop("paused")

    async def load(self) -> tuple[list[_Stored], int]:
        """The shard's pending batches with their numbers, and how many others are sending."""
        first, last = self.batches
        campaign = self.campaign.id
        rows = await self.store.fetchall("unfinished", campaign=campaign, first=first, last=last)
        pending: list[tuple[int, int, _Stored]] = []
        elsewhere = 0
        for idx, first_position, size, numbers, digest, state, _owner, text in rows:
            if state == "pending" and numbers:
                pending.append((first_position, first_position + size - 1, _Stored(idx, digest, text)))
            else:
                elsewhere += 1
        if pending:
            found = await self.store.fetchall(
                "numbers", campaign=campaign, first=pending[0][0], last=pending[-1][1]
            )
            batches = iter(pending)
            low, high, stored = next(batches)
            for position, e164 in found:
                while position > high:
                    low, high, stored = next(batches, (2**62, 2**62, stored))
                if position >= low:
                    stored.numbers.append(e164)
                    stored.positions.append(position)
        return [stored for _, _, stored in pending], elsewhere

    async def work(self, bulk: BulkSender, budget: float) -> ShardReport:
        """Send until the shard is settled, the campaign stops, or ``budget`` seconds have passed."""
        give_up = self.give_up = time.monotonic() + budget
        complete = more = False
        while self.stopped is None and self.lost is None:
            self.reaped += await self.store.reap(self.campaign.id, self.lease, self.batches)
            pending, elsewhere = await self.load()
            if not pending and not elsewhere:
                complete = True
                break
            if time.monotonic() >= give_up:
                more = True
                break
            if pending and not await self.wait_to_claim(give_up):
                more = True
                break
            if pending:
                before = self.settled
                await self.send(bulk, pending, give_up)
                if self.lost is not None:
                    raise self.lost
                if self.settled == before:
                    # Every claim failed: the campaign stopped, or others took the batches.
                    await self.refresh()
                    await anyio.sleep(0.2)
            else:
                # Other runs are sending the rest (their batches settle within
                # moments), or were until they stopped heartbeating (reaped once
                # their lease runs out): look again soon.
                await anyio.sleep(min(self.heartbeat, _LOOK_AGAIN, max(give_up - time.monotonic(), 0)))
        if self.stopped == "done":
            # Another run settled the last batch of the campaign (this shard's included).
            complete, self.stopped = True, None
        elif complete and self.lost is None:
            await self.store.finish(self.campaign.id)
        return ShardReport(
            self.campaign.id,
            self.shard,
            self.campaign.queue,
            settled=self.settled,
            reaped=self.reaped,
            complete=complete,
            more=more,
            stopped=self.stopped,
            opens_at=self.opens_at if more else None,
        )

    async def send(self, bulk: BulkSender, pending: list[_Stored], give_up: float) -> None:
        """Send ``pending``; returns once every batch sent is settled in the store."""
        limiter = anyio.CapacityLimiter(_GROUPS_AT_ONCE)
        async with anyio.create_task_group() as writes:
            self.writes = writes
            try:
                async with anyio.create_task_group() as task_group:
                    for group in _groups(pending, self.campaign.max_batch):
                        task_group.start_soon(self.send_group, bulk, group, give_up, limiter)
            finally:
                self.writes = None

    async def send_group(
        self, bulk: BulkSender, group: list[_Stored], give_up: float, limiter: anyio.CapacityLimiter
    ) -> None:
        campaign = self.campaign
        async with limiter:
            # The group's numbers are held here anyway: de-duplicated in a set of
            # them, not in a compact table set up again for every group.
            stream = bulk._stream_held(  # noqa: SLF001 - the engine's option for callers holding the numbers
                self.feed(group, give_up),
                None if campaign.personal else campaign.text,
                sender_id=campaign.sender_id,
                skip_dnd=campaign.skip_dnd,
                max_segments=campaign.max_segments,
                journal=_ShardJournal(self, group),
                gateway_params=campaign.params or None,
            )
            async with contextlib.aclosing(cast("AsyncGenerator[BatchResult, None]", stream)) as results:
                async for _ in results:
                    pass

    def feed(self, group: list[_Stored], give_up: float) -> Iterator[str | tuple[str, str]]:
        """The group's numbers (with their batch's text, for texts per recipient), batch by batch,
        stopping at a batch boundary when the run must stop.
        """  # noqa: D205
        for stored in group:
            if (
                self.stopped is not None
                or self.lost is not None
                or time.monotonic() >= give_up
                or not self.may_claim()
            ):
                return
            if stored.text is None:
                yield from stored.numbers
            else:
                yield from ((number, stored.text) for number in stored.numbers)


def _leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first error of a group that is not a cancellation, or the group itself."""
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return _leaf(error)
        if not isinstance(error, anyio.get_cancelled_exc_class()):
            return error
    return group


def _groups(pending: list[_Stored], max_batch: int) -> Iterator[list[_Stored]]:
    """Runs of stored batches that the batcher cuts the same way: full ones, then at most one shorter one."""
    group: list[_Stored] = []
    for stored in pending:
        group.append(stored)
        if len(stored.numbers) < max_batch:
            yield group
            group = []
    if group:
        yield group


async def _give_back(store: Store, campaign: int, held: set[tuple[int, str]]) -> None:
    """Make the batches of ``held`` pending again, each only if still ``sending`` and its runner's.

    A pair is ``(index, runner)``: a batch whose claim (or release) lost its
    answer, so that it may be claimed by ``runner``, which certainly wrote no
    request for it (and never will: a run claims no batch it holds). One
    guarded statement each (:meth:`~sms_async.campaign.Store.release`): a
    batch that another run claimed since, or that the reaper or a settle
    moved on, is left as it is. A pair leaves ``held`` once its statement
    has answered.
    """
    for idx, runner in sorted(held):
        await store.release(campaign, idx, runner)
        held.discard((idx, runner))


async def give_back_unwritten(store: Store, campaign: int, pairs: Iterable[tuple[int, str]]) -> None:
    """Make the batches ``pairs`` (``(index, runner)``) of ``campaign`` pending again, as :func:`run_shard`
    does with its ``give_back`` first.

    Raises:
        StoreUnavailableError: the store stayed unreachable; its ``unwritten`` are the pairs
            not given back yet.
    """  # noqa: D205
    held = set(pairs)
    try:
        await _give_back(store, campaign, held)
    except StoreUnavailableError as error:
        error.unwritten = tuple(sorted(held))
        raise


async def run_shard(
    store: Store,
    campaign: int,
    shard: int,
    *,
    driver: Driver,
    concurrency: int = 32,
    budget: float = 45.0,
    lease: float = 20.0,
    heartbeat: float = 5.0,
    account: str | None = None,
    retry: RetryPolicy | None = None,
    timeouts: Timeouts | None = None,
    http: HttpBackend = "auto",
    hooks: object | Sequence[object] | None = None,
    clock: Clock = SYSTEM_CLOCK,
    give_back: Iterable[tuple[int, str]] = (),
) -> ShardReport:
    """Send what is left of ``shard`` of ``campaign`` through ``driver``.

    Args:
        store: The open campaign store.
        campaign: The campaign's id.
        shard: The shard's number (batches ``shard * shard_size`` onwards).
        driver: The gateway driver, with this worker's own credentials.
        concurrency: Requests in flight at most.
        budget: Seconds to work before stopping at a batch boundary (the
            report then says ``more``).
        lease: Seconds after its last heartbeat before a run's batches in
            flight are taken to be lost.
        heartbeat: Seconds between this run's heartbeats.
        account: The name of the account's shared rate limit (default:
            :func:`~sms_async.cluster.account_key` of ``driver``).
        retry: The retry policy (as for :class:`~sms_async.BulkSender`).
        timeouts: Network timeouts (as for :class:`~sms_async.BulkSender`).
        http: The transport (as for :class:`~sms_async.BulkSender`).
        hooks: Objects that hear what the sender does (as for :class:`~sms_async.BulkSender`).
        clock: Where the run reads the time for the campaign's windows and the acceptance
            time of its numbers (a :class:`~sms_async.testing.TestClock` in tests).
        give_back: The ``unwritten`` batches of the :class:`StoreUnavailableError` an
            earlier run of this shard raised (in any process): made pending again
            before anything else, so that they are sent rather than reported ``unknown``.

    Raises:
        StoreUnavailableError: the store stayed unreachable; batches this run
            had in flight are reported unknown by whoever runs the shard next,
            and its ``unwritten`` are to be given to that run as ``give_back``.
    """
    held = {(int(idx), str(runner)) for idx, runner in give_back}
    try:
        return await _run_shard(
            store,
            campaign,
            shard,
            held,
            driver=driver,
            concurrency=concurrency,
            budget=budget,
            lease=lease,
            heartbeat=heartbeat,
            account=account,
            retry=retry,
            timeouts=timeouts,
            http=http,
            hooks=hooks,
            clock=clock,
        )
    except StoreUnavailableError as error:
        error.unwritten = tuple(sorted(held))
        raise
    except Exception as error:
        if not held:
            raise
        # The store failed to give them back as the run ended: the next run must.
        raise StoreUnavailableError(
            f"the campaign store could not be reached to give back {len(held)} claimed batches that "
            f"were never sent ({type(error).__name__})",
            unwritten=tuple(sorted(held)),
        ) from error


async def _run_shard(
    store: Store,
    campaign: int,
    shard: int,
    held: set[tuple[int, str]],
    *,
    driver: Driver,
    concurrency: int,
    budget: float,
    lease: float,
    heartbeat: float,
    account: str | None,
    retry: RetryPolicy | None,
    timeouts: Timeouts | None,
    http: HttpBackend,
    hooks: object | Sequence[object] | None,
    clock: Clock,
) -> ShardReport:
    """:func:`run_shard`, with ``held`` the batches to give back (this run adds its own)."""
    # First of all: what earlier runs of the shard left claimed and never sent is pending again
    # before this run (or the campaign's state) can make anything of it.
    await _give_back(store, campaign, held)
    found = await store.campaign(campaign)
    if found.state != "running":
        return ShardReport(campaign, shard, found.queue, stopped=found.state)
    if found.paused:
        return ShardReport(campaign, shard, found.queue, stopped="paused")
    run = _Run(store, found, shard, lease=lease, heartbeat=heartbeat, held=held, clock=clock)
    try:
        # The campaign's parameters meet this worker's driver (and its own ones) here, before any request.
        driver.prepare_send(Message.create("-", found.sender_id), found.params or None)
    except ConfigurationError as error:
        await run.abort_campaign(f"a worker ({socket.gethostname()}) cannot send it: {error.reason}")
        return ShardReport(campaign, shard, found.queue, stopped="aborted")
    key = account or account_key(driver)
    meter = StoreMeter(store, key, found.rate, interrupt=run.stopping) if found.rate else None
    sender = BulkSender(
        driver,
        concurrency=concurrency,
        default_region=found.region,
        messages_per_second=meter,
        pause=StorePause(store, key),
        retry=retry,
        timeouts=timeouts,
        http=http,
        hooks=hooks,
    )
    await store.execute(
        "register_runner",
        runner=run.id,
        campaign=campaign,
        shard=shard,
        host=socket.gethostname(),
        pid=os.getpid(),
    )
    try:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(run.beat)
            async with sender as bulk:
                report = await run.work(bulk, budget)
            task_group.cancel_scope.cancel()
        if run.lost is not None:
            raise run.lost
    except BaseExceptionGroup as group:
        # Task groups wrap what failed; the caller gets the one error itself.
        raise _leaf(group) from None
    finally:
        # Bounded, and skipped when the store was lost: it must not hold the shard's end
        # for another patience. What is not given back here travels with the error raised
        # (StoreUnavailableError.unwritten) to the shard's next run.
        if run.lost is None:
            with (
                anyio.CancelScope(shield=True),
                anyio.move_on_after(store.operation_timeout),
                contextlib.suppress(Exception),
            ):
                # Claims that never led to a request first, while the store may answer.
                await _give_back(store, campaign, held)
                # Gone from the runners, this run's batches still sending (none,
                # unless it failed) count as lost at once.
                await store.execute("unregister_runner", runner=run.id)
    if held:
        raise StoreUnavailableError(
            f"the campaign store could not be reached to give back {len(held)} claimed batches "
            "that were never sent"
        )
    return report
