"""The PostgreSQL campaign store: loading, claims, settling, reaping, stopping, the shared meter and pause."""

from __future__ import annotations

import itertools
import time

import anyio
import pytest
from cluster_support import DATABASE_URL, new_schema, numbers, query, require_postgres

from sms_async import Outcome
from sms_async._batching import LOCAL_FLUSH, Batcher, iter_chunks
from sms_async._journal import numbers_digest
from sms_async._message import Message
from sms_async._phone import PhoneNormaliser

pytest.importorskip("psycopg")

from sms_async.cluster import (
    CampaignError,
    CampaignSpec,
    CampaignStore,
    StoreMeter,
    StorePause,
    StoreUnavailableError,
    create_campaign,
)

MIXED = [
    *numbers(250),
    "not a number",
    "+919800000001",  # a repeat
    "098000 00002",  # a repeat in a national spelling
    "not a number",  # a repeated invalid input
    *numbers(120, start=1000),
    *["12"] * (LOCAL_FLUSH + 5),  # enough settled inputs to cut a batch early
    *numbers(30, start=5000),
]


async def test_create_cuts_the_batches_a_single_process_run_cuts(store):
    """A loaded campaign holds the batcher's batches (index, first input, size, digest) and settled rows."""
    campaign = await create_campaign(store, CampaignSpec("Hello", "ITONAB", shard_size=2), MIXED)
    batcher = Batcher(PhoneNormaliser("IN"), 100, message=Message.create("Hello", "ITONAB"))
    expected = [batch for chunk in iter_chunks(MIXED) for batch in batcher.feed(chunk)] + batcher.finish()
    schema = store.schema
    stored = query(
        f'SELECT idx, shard, first_position, size, numbers, digest, state FROM "{schema}".batches '  # noqa: S608
        "WHERE campaign = %s ORDER BY idx",
        campaign.id,
    )
    assert stored == [
        (
            b.index,
            b.index // 2,
            b.first,
            b.size,
            len(b.numbers),
            numbers_digest(b.numbers),
            "pending" if b.numbers else "sent",
        )
        for b in expected
    ]
    assert (campaign.inputs, campaign.recipients, campaign.batches) == (
        len(MIXED),
        batcher.distinct,
        len(expected),
    )
    rows = query(
        f'SELECT position, raw, e164, outcome, reason FROM "{schema}".inputs WHERE campaign = %s '  # noqa: S608
        "ORDER BY position",
        campaign.id,
    )
    assert [row[0] for row in rows] == list(range(1, len(MIXED) + 1))
    entries = [entry for batch in expected for entry in batch.to_result().entries()]
    settled_here = {entry.position for batch in expected for entry in batch.to_result().entries()} - {
        entry.position
        for batch in expected
        for entry in batch.to_result().entries()
        if entry.position - batch.first not in {local.offset for local in batch.local}
    }
    for row, entry in zip(rows, entries, strict=True):
        if entry.position in settled_here:
            assert row == (entry.position, entry.input, entry.e164, entry.outcome.value, entry.reason)
        else:
            assert row == (entry.position, entry.input, entry.e164, None, None)


async def test_create_refuses_bad_input_and_stores_nothing(store):
    """A bad text or region is refused before reading; an empty input leaves no campaign behind."""
    with pytest.raises(Exception, match="empty"):
        await create_campaign(store, CampaignSpec("", "ITONAB"), numbers(3))
    with pytest.raises(CampaignError, match="no input"):
        await create_campaign(store, CampaignSpec("Hello", "ITONAB"), [])
    assert query(f'SELECT count(*) FROM "{store.schema}".campaigns') == [(0,)]  # noqa: S608
    assert query(f'SELECT count(*) FROM "{store.schema}".inputs') == [(0,)]  # noqa: S608


async def _started(store, count=500, **options):
    campaign = await create_campaign(store, CampaignSpec("Hello", "ITONAB", **options), numbers(count))
    started, shards = await store.start(campaign.id)
    return started, shards


async def test_only_one_of_many_concurrent_claims_wins(store):
    """Twenty runners on two connection pools claim one batch at once: one wins; a release frees it."""
    campaign, _ = await _started(store)
    async with CampaignStore(DATABASE_URL, schema=store.schema) as other:
        won: list[str] = []

        async def claim(target: CampaignStore, runner: str) -> None:
            if await target.claim(campaign.id, 0, runner):
                won.append(runner)

        async with anyio.create_task_group() as tg:
            for n in range(20):
                tg.start_soon(claim, store if n % 2 else other, f"runner-{n}")
        assert len(won) == 1
        assert not await other.claim(campaign.id, 0, "late")
        # Asked again by the winner (its first answer lost): still its own.
        assert await store.claim(campaign.id, 0, won[0])
        await store.release(campaign.id, 0, won[0])
        assert await other.claim(campaign.id, 0, "next")


async def test_settle_is_the_owners_and_settling_twice_is_harmless(store):
    """Only the claimer settles a batch, settling twice changes nothing, and the rows and counts are kept."""
    campaign, _ = await _started(store, count=100)
    assert await store.claim(campaign.id, 0, "me")
    rows = [(position, "accepted", f"id{position}", "") for position in range(1, 101)]
    counts = {Outcome.ACCEPTED: 100}
    assert not await store.settle(campaign.id, 0, "someone-else", state="sent", counts=counts, rows=rows)
    assert await store.settle(campaign.id, 0, "me", state="sent", counts=counts, rows=rows, requests=1)
    assert not await store.settle(campaign.id, 0, "me", state="sent", counts=counts, rows=rows, requests=1)
    status = await store.status(campaign.id)
    assert status.outcomes[Outcome.ACCEPTED] == 100
    assert status.requests == 1
    assert status.batches["sent"] == 1
    assert await store.finish(campaign.id)
    exported = [entry async for entry in store.export(campaign.id)]
    assert [(e.position, e.outcome, e.message_id) for e in exported[:2]] == [
        (1, Outcome.ACCEPTED, "id1"),
        (2, Outcome.ACCEPTED, "id2"),
    ]


async def test_settles_made_together_share_statements_each_with_its_answer(store, monkeypatch):
    """Sixteen batches settled at once share statements; each gets its own answer and rows."""
    campaign, _ = await _started(store, count=1600)
    statements = {"settle": 0}
    for name in statements:
        method = getattr(store, f"_{name}_many")

        async def counted(items, method=method, name=name):
            statements[name] += 1
            return await method(items)

        monkeypatch.setattr(store, f"_{name}_many", counted)
    claimed: dict[int, bool] = {}
    settled: dict[tuple[int, str], bool] = {}

    async def claim(idx: int) -> None:
        claimed[idx] = await store.claim(campaign.id, idx, "me")

    async def settle(idx: int, runner: str) -> None:
        first = idx * 100 + 1
        rows = [(p, "accepted", f"id{p}", "") for p in range(first, first + 100)]
        counts = {Outcome.ACCEPTED: 100}
        settled[idx, runner] = await store.settle(
            campaign.id, idx, runner, state="sent", counts=counts, rows=rows, requests=1
        )

    async with anyio.create_task_group() as tg:
        for idx in range(16):
            tg.start_soon(claim, idx)
    assert claimed == dict.fromkeys(range(16), True)
    async with anyio.create_task_group() as tg:
        for idx in range(16):
            # Batch 15 is settled by a runner that does not hold it as well: only the holder's counts.
            tg.start_soon(settle, idx, "me")
        tg.start_soon(settle, 15, "someone-else")
    assert settled == {**{(idx, "me"): True for idx in range(16)}, (15, "someone-else"): False}
    assert statements["settle"] < 17
    status = await store.status(campaign.id)
    assert status.outcomes[Outcome.ACCEPTED] == 1600
    assert status.requests == 16
    assert status.batches["sent"] == 16
    exported = [entry async for entry in store.export(campaign.id)]
    assert [(e.position, e.outcome, e.message_id) for e in exported] == [
        (p, Outcome.ACCEPTED, f"id{p}") for p in range(1, 1601)
    ]
    tracked = query(
        f'SELECT count(*) FROM "{store.schema}".deliveries WHERE campaign = %s',  # noqa: S608 - test schema
        campaign.id,
    )
    assert tracked == [(1600,)]


async def test_batches_of_a_runner_that_stopped_heartbeating_become_unknown(store):
    """A batch held by a runner with no live heartbeat is reaped as unknown; a live runner's is left alone."""
    campaign, _ = await _started(store, count=300)
    await store.execute("register_runner", runner="alive", campaign=campaign.id, shard=0, host="h", pid=1)
    assert await store.claim(campaign.id, 0, "alive")
    assert await store.claim(campaign.id, 1, "dead")  # never registered: no heartbeat at all
    assert await store.reap(campaign.id, lease=5.0) == 1
    status = await store.status(campaign.id)
    assert status.batches["unknown"] == 1
    assert status.batches["sending"] == 1
    assert status.outcomes[Outcome.UNKNOWN] == 100
    rows = [entry async for entry in store.export(campaign.id)]
    assert {row.outcome for row in rows[100:200]} == {Outcome.UNKNOWN}
    assert "may or may not have been sent" in rows[150].reason
    # The reaped runner's own answer arrives after all: it is the truth.
    answer = [(position, "accepted", "late-id", "") for position in range(101, 201)]
    assert await store.settle(
        campaign.id, 1, "dead", state="sent", counts={Outcome.ACCEPTED: 100}, rows=answer
    )
    assert (await store.status(campaign.id)).outcomes[Outcome.UNKNOWN] == 0


async def test_cancel_gives_up_pending_batches_and_lets_batches_in_flight_settle(store):
    """Cancelling makes pending numbers unsent; a batch in flight still settles; a new start is refused."""
    campaign, _ = await _started(store, count=300)
    assert await store.claim(campaign.id, 2, "me")
    assert await store.stop(campaign.id, "cancelled", "the campaign was cancelled")
    assert not await store.claim(campaign.id, 1, "me")
    status = await store.status(campaign.id)
    assert status.outcomes[Outcome.UNSENT] == 200
    assert not status.finished  # batch 2 is still in flight
    rows = [(position, "accepted", "x", "") for position in range(201, 301)]
    assert await store.settle(campaign.id, 2, "me", state="sent", counts={Outcome.ACCEPTED: 100}, rows=rows)
    status = await store.status(campaign.id)
    assert status.finished
    assert (status.outcomes[Outcome.ACCEPTED], status.outcomes[Outcome.UNSENT]) == (100, 200)
    exported = [entry async for entry in store.export(campaign.id)]
    assert exported[0].reason == "not sent: the campaign was cancelled"
    with pytest.raises(CampaignError, match="cancelled"):
        await store.start(campaign.id)


async def test_start_after_an_abort_sends_the_unsent_batches_again(store):
    """An aborted campaign's unsent batches are pending again when it is started anew; sent ones are not."""
    campaign, shards = await _started(store, count=300, shard_size=1)
    assert shards == [0, 1, 2]
    assert await store.claim(campaign.id, 0, "me")
    rows = [(position, "accepted", "x", "") for position in range(1, 101)]
    await store.settle(campaign.id, 0, "me", state="sent", counts={Outcome.ACCEPTED: 100}, rows=rows)
    assert await store.stop(campaign.id, "aborted", "AuthenticationError: wrong password")
    assert (await store.status(campaign.id)).outcomes[Outcome.UNSENT] == 200
    restarted, shards = await store.start(campaign.id)
    assert restarted.state == "running"
    assert shards == [1, 2]
    assert await store.claim(campaign.id, 1, "me")


async def test_one_rate_per_account_across_meters(store):
    """Two meters on two pools share one account's schedule; another account's is its own."""
    async with CampaignStore(DATABASE_URL, schema=store.schema) as other:
        meters = [StoreMeter(store, "acct-a", 1000.0), StoreMeter(other, "acct-a", 1000.0)]
        started = time.monotonic()
        delays = []
        for n in range(10):
            row = await meters[n % 2]._store.fetchone("reserve", key="acct-a", seconds=0.1)
            delays.append(float(row[0]) + (time.monotonic() - started))
        # Slot n starts 0.1 s after slot n - 1, whichever pool reserved it.
        steps = [b - a for a, b in itertools.pairwise(delays)]
        assert all(0.05 < step < 0.15 for step in steps), steps
        free = await other.fetchone("reserve", key="acct-b", seconds=0.1)
        assert float(free[0]) < 0.05


class _OutOfReach:
    """A store whose reservations fail while ``down``, and are granted at once after."""

    def __init__(self) -> None:
        self.down = True
        self.asked = 0

    async def fetchone(self, name: str, **params: object) -> tuple[float]:
        self.asked += 1
        await anyio.sleep(0.01)
        if self.down:
            raise StoreUnavailableError("the campaign store is out of reach")
        return (0.0,)


async def test_no_batch_goes_without_a_reservation_while_the_store_is_out_of_reach():
    """Batches waiting out an outage go when the store grants their slots, not all at once on their own pace.

    Each waited one slot of its process's own pace and went: when the store
    came back, every worker task's batch was claimed in the same instant, six
    times the account's rate in the second after a 20 s partition.
    """
    store = _OutOfReach()
    stopping = anyio.Event()
    meter = StoreMeter(store, "acct", 1000.0, interrupt=stopping)  # type: ignore[arg-type]
    went: list[int] = []

    async def batch(n: int) -> None:
        await meter.acquire(100)
        went.append(n)

    async with anyio.create_task_group() as tg:
        for n in range(8):
            tg.start_soon(batch, n)
        await anyio.sleep(0.5)  # 5 slots of the rate: on their own pace most would have gone
        assert went == []
        assert store.asked > 8  # asked again, not given up
        store.down = False
    assert sorted(went) == list(range(8))


async def test_a_run_that_stops_ends_the_wait_for_a_reservation():
    """The store out of reach and the run stopping: the waits end, and nothing is claimed after."""
    store = _OutOfReach()
    stopping = anyio.Event()
    meter = StoreMeter(store, "acct", 10.0, interrupt=stopping)  # type: ignore[arg-type]
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(meter.acquire, 100)
            await anyio.sleep(0.2)
            stopping.set()


async def test_a_pause_holds_every_worker_of_the_account(store):
    """A 429 pause set through one store delays the other's next slot and shows in its wait()."""
    async with CampaignStore(DATABASE_URL, schema=store.schema) as other:
        await StorePause(store, "acct").pause(0.6)
        row = await other.fetchone("reserve", key="acct", seconds=0.001)
        assert float(row[0]) > 0.4
        waiting = StorePause(other, "acct")
        before = time.monotonic()
        await waiting.wait()
        assert time.monotonic() - before > 0.2


async def test_operations_survive_their_connections_being_terminated(store):
    """pg_terminate_backend on every connection of a store: its next operations reconnect and succeed."""
    name = f"sms-async-test-{new_schema()}"
    async with CampaignStore(
        DATABASE_URL, schema=store.schema, application_name=name, max_connections=3
    ) as mine:
        campaign = await create_campaign(mine, CampaignSpec("Hello", "ITONAB"), numbers(300))
        await mine.start(campaign.id)
        assert await mine.claim(campaign.id, 0, "me")
        killed = query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", name
        )
        assert killed
        assert await mine.claim(campaign.id, 0, "me")  # asked again: still ours
        assert await mine.claim(campaign.id, 1, "me")
        status = await mine.status(campaign.id)
        assert status.batches["sending"] == 2


async def test_an_unreachable_store_is_reported_without_its_password():
    """An unreachable store raises StoreUnavailableError after its patience, with no password in it."""
    require_postgres()
    url = "postgresql://someone:hunter2-secret@127.0.0.1:1/test"
    with pytest.raises(StoreUnavailableError) as caught:
        async with CampaignStore(url, patience=0.5, warm=True):
            pass
    assert "hunter2" not in str(caught.value)
    lazy = CampaignStore(url, patience=0.5)
    async with lazy:
        with pytest.raises(StoreUnavailableError) as caught:
            await lazy.campaign(1)
    assert "hunter2" not in str(caught.value)
    assert caught.value.__cause__ is None


async def test_a_claim_racing_a_cancel_loses_and_the_cancel_counts_each_input_once(store):
    """A claim queued behind a cancel's give-up finds the batch given up: unsent once, never in flight."""
    import psycopg  # noqa: PLC0415

    campaign, _ = await _started(store, count=200)
    schema = store.schema
    stopper = await psycopg.AsyncConnection.connect(DATABASE_URL)
    try:
        # The cancel's statements, held uncommitted so that a claim queues behind them.
        await stopper.execute(
            store.sql["stop"],
            {"campaign": campaign.id, "state": "cancelled", "reason": "r", "from_states": ["running"]},
        )
        await stopper.execute(
            store.sql["give_up_pending"],
            {"campaign": campaign.id, "outcome": "unsent", "reason": "not sent: r"},
        )
        won: list[bool] = []
        async with anyio.create_task_group() as tg:

            async def claim() -> None:
                won.append(await store.claim(campaign.id, 0, "racer"))

            tg.start_soon(claim)
            # Commit only once the claim waits for the cancel's row lock.
            claiming = f"UPDATE \"{schema}\".batches b SET state = 'sending'%"  # noqa: S608 - a LIKE pattern
            waiting = "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s"
            # Another process's state: there is no event to wait on.
            while not query(waiting, claiming):  # noqa: ASYNC110
                await anyio.sleep(0.01)
            await stopper.commit()
    finally:
        await stopper.close()
    assert won == [False]
    status = await store.status(campaign.id)
    assert status.batches["sending"] == 0
    assert status.outcomes[Outcome.UNSENT] == 200
    assert status.finished


async def test_a_missing_database_is_permanent_however_patient_the_store():
    """A store whose database does not exist says so on its first operation, whatever its patience."""
    require_postgres()
    url = DATABASE_URL.rsplit("/", 1)[0] + "/sms_async_no_such_database"
    lazy = CampaignStore(url, patience=3600)
    async with lazy:
        with pytest.raises(StoreUnavailableError, match="trying again cannot cure") as caught:
            await lazy.campaign(1)
    assert 'database "sms_async_no_such_database" does not exist' in str(caught.value)
    with pytest.raises(StoreUnavailableError, match="trying again cannot cure"):
        async with CampaignStore(url, patience=3600, warm=True):
            pass


async def test_a_cancelled_opening_closes_the_connections_it_made():
    """A store whose opening is cancelled while it connects closes its pools, leaving nothing open."""
    require_postgres()
    store = CampaignStore(DATABASE_URL, patience=10, warm=True, max_connections=2, claim_connections=1)
    entered = False
    with anyio.CancelScope() as scope:
        scope.cancel()  # delivered at the opening's first wait for its connections
        async with store:
            entered = True
    try:
        assert not entered
        assert [pool.closed for pool in store._pools] == [True, True]
    finally:
        for pool in store._pools:
            await pool.close()  # pools left open would keep the test process from exiting
