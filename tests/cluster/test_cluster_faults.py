"""The store behind a faulty network: a silent black hole, a stall, resets, each past the store's patience.

A TCP proxy (``fault_proxy``) stands between the store and PostgreSQL; shard
runs go on in this process against the simulated gateway, retried as the
Celery task retries them whenever the store stays out of reach past its
patience (after :data:`RETRY` seconds here, 10 s in a worker, to keep the
test short). How long each fault costs is measured
and logged (``--log-cli-level=INFO`` shows it), never asserted against a clock.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Awaitable
from functools import partial
from urllib.parse import urlsplit

import anyio
import pytest
import shard_runs
from cluster_support import DATABASE_URL, numbers, require_postgres
from fault_proxy import FaultProxy

from sms_async import Iton, Outcome
from sms_async.testing import SimulatedGateway

pytest.importorskip("psycopg")
pytest.importorskip("celery")

from sms_async.cluster import (
    CampaignSpec,
    CampaignStore,
    StoreUnavailableError,
    create_campaign,
    run_shard,
)

logger = logging.getLogger("tests.faults")

PATIENCE = 3.0
#: Seconds before a shard that gave up is run again (a worker's task waits 10 s).
RETRY = 2.0
#: Seconds each fault lasts: past the patience, so shards give up and are retried.
FAULT = 5.0
#: A patience that outlasts :data:`SHORT_FAULT`: the shards wait such a fault out.
SHORT_PATIENCE = 10.0
SHORT_FAULT = 3.0


@pytest.fixture
def proxy():
    """A fault proxy in front of the test database."""
    require_postgres()
    with FaultProxy(urlsplit(DATABASE_URL).port or 5432) as started:
        yield started


def proxied(proxy: FaultProxy) -> str:
    return proxy.url(DATABASE_URL, urlsplit(DATABASE_URL).port or 5432)


@pytest.fixture(autouse=True)
def short_store_deadline(monkeypatch):
    """A one-second deadline on each store operation, so a fault shows within the test's patience."""
    monkeypatch.setenv("SMS_ASYNC_DATABASE_TIMEOUT", "1")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["blackhole", "stall"])
async def test_a_silent_store_is_an_error_within_the_patience_and_usable_once_healed(store, proxy, mode):
    """A black-holed or stalled store operation fails after the patience instead of hanging; then it works."""
    async with CampaignStore(proxied(proxy), schema=store.schema, patience=PATIENCE) as faulty:
        await faulty.fetchone("heartbeat", runner="r", campaign=1)
        proxy.fault(mode)
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError, match="heartbeat"):
            await faulty.fetchone("heartbeat", runner="r", campaign=1)
        failed_after = time.monotonic() - started
        proxy.heal()
        healed = time.monotonic()
        # The pool reconnects on its own schedule; an answer comes (no campaign 1 here: no row).
        while True:
            try:
                assert await faulty.fetchone("heartbeat", runner="r", campaign=1) is None
                break
            except StoreUnavailableError:
                continue
        logger.info(
            "%s: failed after %.1f s; answered %.1f s after the heal",
            mode,
            failed_after,
            time.monotonic() - healed,
        )


def keep_running(
    store: CampaignStore,
    campaign: int,
    gw: SimulatedGateway,
    log: list[str],
    *,
    lease: float = 3,
    heartbeat: float = 0.5,
) -> Awaitable[None]:
    """Run every shard until the campaign is done, retrying after a store failure as the Celery task does
    (the shard that failed first, with the batches it is to give back); ``log`` gets each failure.
    """  # noqa: D205
    return shard_runs.keep_running(
        store,
        campaign,
        gw,
        lambda error: log.append(str(error)),
        retry=RETRY,
        lease=lease,
        heartbeat=heartbeat,
        concurrency=8,
    )


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_a_campaign_survives_a_black_hole_a_stall_and_resets_sending_nothing_twice(store, proxy):
    """Black hole, stall, resets past the patience: the campaign ends, no number twice, no false unknown."""
    spec = CampaignSpec("Hello", "ITONAB", rate=300, shard_size=100)
    created = await create_campaign(store, spec, numbers(4500))
    await store.start(created.id)
    failures: list[str] = []
    costs: dict[str, float] = {}
    with SimulatedGateway() as gw:
        async with (
            CampaignStore(proxied(proxy), schema=store.schema, patience=PATIENCE) as faulty,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(keep_running, faulty, created.id, gw, failures)
            for mode, after in (("blackhole", 800), ("stall", 2000), ("reset", 3200)):
                while gw.stats.accepted < after:  # noqa: ASYNC110 - the gateway counts in another thread
                    await anyio.sleep(0.05)
                proxy.fault(mode)
                await anyio.sleep(FAULT)
                proxy.heal()
                healed, before = time.monotonic(), gw.stats.accepted
                while gw.stats.accepted == before and (await store.campaign(created.id)).state == "running":  # noqa: ASYNC110
                    await anyio.sleep(0.05)
                costs[mode] = time.monotonic() - healed
        finished = time.monotonic() - healed
        stats = gw.stats
    logger.info("heal to sending again: %s; last heal to done: %.1f s", costs, finished)
    status = await store.status(created.id)
    assert status.campaign.state == "done"
    assert status.settled == 4500
    assert not stats.duplicate_numbers()
    entries = [entry async for entry in store.export(created.id)]
    assert len(entries) == 4500
    unknown = {entry.e164[1:] for entry in entries if entry.outcome is Outcome.UNKNOWN}
    # Unknown only where the request may have been written: the gateway got every one of them.
    assert unknown <= set(stats.numbers)
    accepted = {entry.e164[1:] for entry in entries if entry.outcome is Outcome.ACCEPTED}
    assert len(accepted) + len(unknown) == 4500
    assert failures  # each fault outlasted the patience: shards gave up and were run again
    # The account's rate held through all three, after each heal too (a batch is a third of a second of it).
    assert stats.max_in_window(1.0) <= 1.1 * 300 + 100


@pytest.mark.timeout(60)
async def test_a_black_hole_shorter_than_the_patience_is_waited_out_sending_nothing_twice(store, proxy):
    """A black hole shorter than the patience: no shard gives up, nothing is sent twice, none is unknown.

    Each store operation fails within its one-second deadline and is tried again on a new
    connection until the fault heals (and the connections tried meanwhile have timed out).
    """
    spec = CampaignSpec("Hello", "ITONAB", rate=400, shard_size=100)
    created = await create_campaign(store, spec, numbers(1600))
    await store.start(created.id)
    failures: list[str] = []
    with SimulatedGateway() as gw:
        async with (
            CampaignStore(proxied(proxy), schema=store.schema, patience=SHORT_PATIENCE) as faulty,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(partial(keep_running, faulty, created.id, gw, failures, lease=8, heartbeat=1))
            while gw.stats.accepted < 400:  # noqa: ASYNC110 - the gateway counts in another thread
                await anyio.sleep(0.05)
            proxy.fault("blackhole")
            await anyio.sleep(SHORT_FAULT)
            proxy.heal()
            healed, before = time.monotonic(), gw.stats.accepted
            while gw.stats.accepted == before and (await store.campaign(created.id)).state == "running":  # noqa: ASYNC110
                await anyio.sleep(0.05)
            logger.info("short black hole: heal to sending again %.1f s", time.monotonic() - healed)
        stats = gw.stats
    assert not failures  # no shard gave up: each fault was waited out
    status = await store.status(created.id)
    assert status.campaign.state == "done"
    assert status.outcomes[Outcome.ACCEPTED] == 1600
    assert status.outcomes[Outcome.UNKNOWN] == 0
    assert stats.accepted == 1600
    assert not stats.duplicate_numbers()
    # Within the account's rate after the heal too (a batch of 100 is a quarter second of it):
    # the batches whose claims the fault held wait for new slots instead of going together.
    assert stats.max_in_window(1.0) <= 1.1 * 400 + 100


async def test_a_claim_whose_answer_never_came_is_given_back_not_reported_unknown(store, monkeypatch):
    """A claim committed but unanswered past the patience: the next run sends its batch; none is unknown."""
    with SimulatedGateway() as gw:
        created = await create_campaign(store, CampaignSpec("Hello", "ITONAB"), numbers(1000))
        await store.start(created.id)
        claim = store.claim
        lost: list[int] = []

        async def answer_lost(campaign: int, idx: int, runner: str) -> bool:
            won = await claim(campaign, idx, runner)
            if idx == 4 and not lost:
                lost.append(idx)  # committed, but the answer never came back
                raise StoreUnavailableError("the campaign store cannot be reached (claim): no answer")
            return won

        monkeypatch.setattr(store, "claim", answer_lost)
        driver = Iton(gw.username, gw.password, base_url=gw.iton_url)
        with pytest.raises(StoreUnavailableError) as failed:
            await run_shard(store, created.id, 0, driver=driver, lease=0.5, heartbeat=0.1, concurrency=1)
        # The run says which batch it may have claimed and never sent, for the shard's next run.
        assert [idx for idx, _runner in failed.value.unwritten] == [4]
        assert (await store.status(created.id)).batches["sending"] == 1
        await anyio.sleep(0.6)  # the dead run's lease is over: its batches would be reaped now
        report = await run_shard(
            store, created.id, 0, driver=driver, lease=0.5, heartbeat=0.1, give_back=failed.value.unwritten
        )
        stats = gw.stats
    assert report.complete
    assert report.reaped == 0
    status = await store.status(created.id)
    assert status.outcomes[Outcome.ACCEPTED] == 1000
    assert stats.accepted == 1000
    assert not stats.duplicate_numbers()


# The retried shard task, run by another worker: a process of its own, with no memory of the first try.
ANOTHER_WORKER = """
import json, sys
from celery import Celery
from sms_async.cluster.celery import configure, register, shutdown
task = register(configure(Celery("another"), "memory://"))
try:
    task.apply(args=(int(sys.argv[1]), int(sys.argv[2])), kwargs=json.loads(sys.argv[3])).get()
finally:
    shutdown()
"""


async def test_a_claim_answer_lost_is_given_back_by_the_retry_in_another_worker(store, monkeypatch, tmp_path):
    """The shard task's first try loses a claim's answer; another worker runs its retry: the batch is sent.

    What was maybe claimed and never sent travels in the retried task's arguments, not in the first
    worker's memory: given back (pending) by the retry, never left sending to be reaped as unknown.
    """
    from sms_async.cluster import celery as tasks  # noqa: PLC0415

    class Retried(Exception):
        pass

    class FirstTry:
        """The bound task of the first worker: records what the retry is queued with."""

        kwargs: dict | None = None

        def retry(self, *, countdown, exc, kwargs=None):
            self.kwargs = kwargs
            return Retried(str(exc))

    with SimulatedGateway() as gw:
        created = await create_campaign(store, CampaignSpec("Hello", "ITONAB"), numbers(1000))
        await store.start(created.id)
        env = {
            "SMS_ASYNC_DATABASE_URL": DATABASE_URL,
            "SMS_ASYNC_DATABASE_SCHEMA": store.schema,
            "SMS_ASYNC_CONCURRENCY": "1",
            "SMS_ASYNC_LEASE": "1",
            "SMS_ASYNC_HEARTBEAT": "0.2",
            "SMS_ASYNC_USERNAME": gw.username,
            "SMS_ASYNC_PASSWORD": gw.password,
            "SMS_ASYNC_BASE_URL": gw.iton_url,
            "HOME": str(tmp_path),
            "XDG_CONFIG_HOME": str(tmp_path / ".config"),
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("SMS_ASYNC_CONFIG", raising=False)
        claim = CampaignStore.claim
        lost: list[int] = []

        async def answer_lost(self, campaign: int, idx: int, runner: str) -> bool:
            won = await claim(self, campaign, idx, runner)
            if idx == 4 and not lost:
                lost.append(idx)  # committed, but the answer never came back
                raise StoreUnavailableError("the campaign store cannot be reached (claim): no answer")
            return won

        async def out_of_reach(self, campaign: int, idx: int, runner: str) -> None:
            # The store stays out of reach to the first worker: it cannot give the batch back itself.
            raise StoreUnavailableError("the campaign store cannot be reached (release): no answer")

        monkeypatch.setattr(CampaignStore, "claim", answer_lost)
        monkeypatch.setattr(CampaignStore, "release", out_of_reach)
        first = FirstTry()
        try:
            with pytest.raises(Retried):
                await anyio.to_thread.run_sync(tasks._run_shard_task, first, created.id, 0)
        finally:
            tasks.shutdown()  # the first worker is gone
        assert lost == [4]
        assert (await store.status(created.id)).batches["sending"] == 1
        done = await anyio.run_process(
            [sys.executable, "-c", ANOTHER_WORKER, str(created.id), "0", json.dumps(first.kwargs or {})],
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        stats = gw.stats
    status = await store.status(created.id)
    assert status.campaign.state == "done"
    assert status.outcomes[Outcome.UNKNOWN] == 0
    assert status.outcomes[Outcome.ACCEPTED] == 1000
    assert stats.accepted == 1000
    assert not stats.duplicate_numbers()


async def test_an_overdue_heartbeat_stops_claims_before_the_lease_runs_out(store):
    """With its last heartbeat written longer ago than lease - 2 x heartbeat, a run claims nothing."""
    from sms_async.cluster._runner import _Run, _ShardJournal, _Stored  # noqa: PLC0415

    created = await create_campaign(store, CampaignSpec("Hello", "ITONAB"), numbers(200))
    await store.start(created.id)
    found = await store.campaign(created.id)
    run = _Run(store, found, 0, lease=3.0, heartbeat=1.0)
    (pending, _) = await run.load()
    journal = _ShardJournal(run, pending)

    class Sent:
        index = 0
        numbers = pending[0].numbers

    assert isinstance(pending[0], _Stored)
    run.beat_at = time.monotonic() - 1.5  # over 3 - 2 x 1 = 1 s: another run may soon take it for dead
    assert not await journal.claim(Sent())
    assert (await store.status(created.id)).batches["sending"] == 0
    run.beat_at = time.monotonic()
    assert await journal.claim(Sent())
