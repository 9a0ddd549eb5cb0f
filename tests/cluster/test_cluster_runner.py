"""Shard runs in this process against the simulated gateway: rows as send has them, races, aborts, losses."""

from __future__ import annotations

import itertools
from functools import partial

import anyio
import pytest
from cluster_support import numbers, query

from sms_async import BulkSender, Iton, Outcome
from sms_async._batching import Batcher
from sms_async.testing import Fault, SimulatedGateway

pytest.importorskip("psycopg")

from sms_async.cluster import CampaignSpec, create_campaign, run_shard

MIXED = [
    *numbers(430),
    "garbage",
    "+919800000007",
    "9800000008",
    "garbage",
    *numbers(90, start=2000),
]


def driver(gw: SimulatedGateway, password: str | None = None) -> Iton:
    return Iton(gw.username, password or gw.password, base_url=gw.iton_url)


async def run_all(store, campaign, gw, **options):
    found = await store.campaign(campaign)
    return [
        await run_shard(store, campaign, shard, driver=driver(gw), **options) for shard in range(found.shards)
    ]


async def test_a_campaign_exports_the_rows_a_single_process_send_gives(store):
    """Every input's row (position, input, E.164, outcome, reason) is the one BulkSender.stream gives."""
    with SimulatedGateway() as gw:
        created = await create_campaign(store, CampaignSpec("Hello", "ITONAB", shard_size=2), MIXED)
        _, shards = await store.start(created.id)
        assert shards == [0, 1, 2]
        reports = await run_all(store, created.id, gw)
        assert all(report.complete for report in reports)
        exported = [entry async for entry in store.export(created.id)]
        assert not gw.stats.duplicate_numbers()
        async with BulkSender(driver(gw), default_region="IN") as bulk:
            stream = bulk.stream(MIXED, "Hello", sender_id="ITONAB")
            single = [entry async for batch in stream for entry in batch.entries()]
    single.sort(key=lambda entry: entry.position)
    assert [entry[:4] + entry[5:] for entry in exported] == [entry[:4] + entry[5:] for entry in single]
    assert all(entry.message_id for entry in exported if entry.outcome is Outcome.ACCEPTED)
    status = await store.status(created.id)
    assert status.campaign.state == "done"
    assert status.outcomes[Outcome.ACCEPTED] == 520


async def test_two_runs_of_one_shard_at_once_send_each_batch_once(store):
    """One shard run twice at the same time (a task delivered twice): each number reaches the gateway once."""
    with SimulatedGateway(faults=[Fault("latency", rate=1.0, seconds=0.01)]) as gw:
        created = await create_campaign(store, CampaignSpec("Hello", "ITONAB"), numbers(3000))
        await store.start(created.id)
        reports = []

        async def one() -> None:
            reports.append(await run_shard(store, created.id, 0, driver=driver(gw), concurrency=8))

        async with anyio.create_task_group() as tg:
            tg.start_soon(one)
            tg.start_soon(one)
        stats = gw.stats
    assert sum(report.settled for report in reports) == 30
    assert all(report.complete for report in reports)
    assert stats.accepted == 3000
    assert not stats.duplicate_numbers()
    status = await store.status(created.id)
    assert status.requests == 30
    assert status.outcomes[Outcome.ACCEPTED] == 3000


async def test_stored_batches_are_disjoint_and_runs_keep_their_numbers_in_a_set(store, monkeypatch):
    """Repeats far apart land in other shards' batches as duplicates: no number is sent twice.

    The loader de-duplicates the whole input with one batcher, so the numbers
    left to send are distinct across the campaign (not only within a shard);
    each run's streams de-duplicate their own numbers in a set of the strings
    they hold (no compact table set up per group).
    """
    made: list[Batcher] = []
    for_text = Batcher.for_text.__func__

    def spy(cls, *args, **kwargs):
        batcher = for_text(cls, *args, **kwargs)
        made.append(batcher)
        return batcher

    inputs = [*numbers(250), *numbers(250), *numbers(120, start=100), *numbers(30, start=5000)]
    with SimulatedGateway() as gw:
        created = await create_campaign(store, CampaignSpec("Hello", "ITONAB", shard_size=1), inputs)
        _, shards = await store.start(created.id)
        assert len(shards) > 1  # the numbers to send span shards
        schema = store.schema
        repeated = query(
            f'SELECT e164 FROM "{schema}".inputs WHERE campaign = %s AND outcome IS NULL '  # noqa: S608
            "GROUP BY e164 HAVING count(*) > 1",
            created.id,
        )
        assert repeated == []
        monkeypatch.setattr(Batcher, "for_text", classmethod(spy))
        reports = await run_all(store, created.id, gw)
        assert all(report.complete for report in reports)
        stats = gw.stats
    assert made
    assert all(batcher._seen._small is not None for batcher in made)
    assert sum(batcher.distinct for batcher in made) == 280
    assert stats.accepted == 280
    assert not stats.duplicate_numbers()
    status = await store.status(created.id)
    assert status.outcomes[Outcome.ACCEPTED] == 280
    assert status.outcomes[Outcome.DUPLICATE] == 370
    assert sum(status.outcomes.values()) == len(inputs)


async def test_bad_credentials_abort_the_campaign_and_leave_the_rest_unsent(store):
    """The gateway refuses the password: the campaign is aborted, nothing accepted, every number unsent."""
    with SimulatedGateway() as gw:
        created = await create_campaign(store, CampaignSpec("Hello", "ITONAB", shard_size=5), numbers(2000))
        await store.start(created.id)
        wrong = "not-the-password-1234"
        report = await run_shard(store, created.id, 0, driver=driver(gw, wrong))
        later = await run_shard(store, created.id, 1, driver=driver(gw))
        accepted = gw.stats.accepted
    assert report.stopped == "aborted"
    assert later.stopped == "aborted"
    assert accepted == 0
    status = await store.status(created.id)
    assert status.campaign.state == "aborted"
    assert "AuthenticationError" in status.campaign.stop_reason
    assert wrong not in status.campaign.stop_reason
    assert status.outcomes[Outcome.UNSENT] == 2000
    assert status.finished


async def test_a_spent_budget_hands_the_rest_on(store):
    """A run whose time budget is spent stops between batches and says so; the next run finishes the shard."""
    with SimulatedGateway() as gw:
        created = await create_campaign(store, CampaignSpec("Hello", "ITONAB", rate=2000), numbers(1500))
        await store.start(created.id)
        first = await run_shard(store, created.id, 0, driver=driver(gw), budget=0.2, concurrency=2)
        assert first.more
        assert not first.complete
        second = await run_shard(store, created.id, 0, driver=driver(gw))
        assert second.complete
        assert gw.stats.accepted == 1500
        assert not gw.stats.duplicate_numbers()
    assert (await store.status(created.id)).campaign.state == "done"


async def test_batches_of_a_dead_run_are_reported_unknown_and_never_sent(store):
    """Batches a run claimed before it died become unknown once its lease runs out, and are never sent."""
    with SimulatedGateway() as gw:
        created = await create_campaign(store, CampaignSpec("Hello", "ITONAB"), numbers(1000))
        await store.start(created.id)
        for idx in (3, 4):
            assert await store.claim(created.id, idx, "died-mid-send")
        report = await run_shard(store, created.id, 0, driver=driver(gw), lease=0.5, heartbeat=0.1)
        received = set(gw.stats.numbers)
    assert report.complete
    assert report.reaped == 2
    lost = [entry async for entry in store.export(created.id) if entry.outcome is Outcome.UNKNOWN]
    assert [entry.position for entry in lost] == list(range(301, 501))
    assert not {entry.e164[1:] for entry in lost} & received
    assert len(received) == 800


async def test_a_cancelled_campaign_stops_its_runs(store):
    """Cancelling while a shard runs: the run stops, what was sent stays accepted, the rest is unsent."""
    with SimulatedGateway() as gw:
        created = await create_campaign(store, CampaignSpec("Hello", "ITONAB", rate=1000), numbers(3000))
        await store.start(created.id)
        async with anyio.create_task_group() as tg:

            async def cancel_soon() -> None:
                await anyio.sleep(0.5)
                await store.stop(created.id, "cancelled", "the campaign was cancelled")

            tg.start_soon(cancel_soon)
            report = await run_shard(store, created.id, 0, driver=driver(gw), heartbeat=0.1, lease=1.0)
        accepted = gw.stats.accepted
    assert report.stopped == "cancelled"
    status = await store.status(created.id)
    assert status.finished
    assert 0 < status.outcomes[Outcome.ACCEPTED] == accepted < 3000
    assert status.outcomes[Outcome.ACCEPTED] + status.outcomes[Outcome.UNSENT] == 3000


async def test_a_busy_gateway_pauses_every_run_of_the_account(store):
    """A 429 seen by one run holds the other run of the same account for the Retry-After."""
    busy = Fault("status_429", on_requests={4}, retry_after=1, operations={"iton.sendSMS"})
    with SimulatedGateway(faults=[busy]) as gw:
        created = await create_campaign(store, CampaignSpec("Hello", "ITONAB", shard_size=20), numbers(4000))
        await store.start(created.id)
        async with anyio.create_task_group() as tg:
            for shard in (0, 1):
                tg.start_soon(partial(run_shard, store, created.id, shard, driver=driver(gw), concurrency=2))
        stats = gw.stats
    assert stats.faults["status_429"] == 1
    assert stats.accepted == 4000
    times = sorted(at for series in stats.accepted_series.values() for at, _ in series)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Both runs sat the pause out: the gateway accepted nothing for most of a second.
    assert max(gaps) > 0.8


async def test_the_store_holds_no_credential(store):
    """After a run, no table of the store holds the user name, the password or the token."""
    with SimulatedGateway(username="carol-account", password="pw-Zq81-secret", token="tok-Xy55-secret") as gw:
        created = await create_campaign(store, CampaignSpec("Hello", "ITONAB"), numbers(300))
        await store.start(created.id)
        await run_shard(store, created.id, 0, driver=driver(gw))
        secrets = (gw.username, gw.password, gw.token)
    for table in ("campaigns", "inputs", "batches", "results", "runners", "meters"):
        dumped = str(query(f'SELECT * FROM "{store.schema}".{table}'))  # noqa: S608
        for secret in secrets:
            assert secret not in dumped, table


async def test_a_store_lost_mid_shard_stops_the_run_and_is_no_batch_outcome(store, monkeypatch):
    """The store unreachable at a claim: run_shard raises StoreUnavailableError (an SmsError the engine
    must not turn into a batch's outcome); the batch stays pending, nothing is counted unsent or unknown.
    """  # noqa: D205
    from sms_async.campaign import StorageError  # noqa: PLC0415
    from sms_async.cluster import StoreUnavailableError  # noqa: PLC0415

    assert issubclass(StoreUnavailableError, StorageError)
    with SimulatedGateway() as gw:
        created = await create_campaign(store, CampaignSpec("Hello", "ITONAB"), numbers(300))
        await store.start(created.id)
        real_claim = store.claim
        claims = itertools.count()

        async def flaky_claim(*args):
            if next(claims) == 1:
                raise StoreUnavailableError("the campaign store cannot be reached (claim): test")
            return await real_claim(*args)

        monkeypatch.setattr(store, "claim", flaky_claim)
        with pytest.raises(StoreUnavailableError, match="test"):
            await run_shard(store, created.id, 0, driver=driver(gw), concurrency=1)
        status = await store.status(created.id)
        assert status.outcomes[Outcome.UNSENT] == 0
        assert status.outcomes[Outcome.UNKNOWN] == 0
        assert status.batches["pending"] >= 1
        assert not gw.stats.duplicate_numbers()
