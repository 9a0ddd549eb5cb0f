"""Stored delivery polling on ItecPay (one id a request) on both stores, and the database lost mid-poll.

On the simulator and a test clock, as the other stored delivery tests
(``test_delivery_campaigns``); the database's loss goes through the fault
proxy the store's fault tests use.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import anyio
import pytest
from cluster_support import DATABASE_URL, drive, numbers, query, require_postgres
from fault_proxy import FaultProxy

from sms_async import ItecPay, Iton
from sms_async.campaign import DeliveryTally, PollSchedule, Store
from sms_async.testing import DeliveryPlan, DeliveryRule, Fault, RequestLog, TestClock

pytest.importorskip("psycopg")

from sms_async.cluster import (
    CampaignSpec,
    CampaignStore,
    StoreUnavailableError,
    create_campaign,
    poll_reports,
    run_shard,
)

HOUR = 3600.0
START = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
PLAN = DeliveryPlan(
    [
        DeliveryRule("delivered", 0.80),
        DeliveryRule("delivered", 0.15, after=HOUR),
        DeliveryRule("never", 0.05),
    ],
    seed=20,
)


async def send_all(store: Store, campaign: int, driver, clock: TestClock) -> None:
    """Every shard of the campaign, run in turn as ``campaign run`` does."""
    _found, shards = await store.start(campaign)
    for shard in shards:
        report = await run_shard(store, campaign, shard, driver=driver, clock=clock, budget=math.inf)
        assert report.complete


async def states(store: Store, campaign: int) -> dict[str, tuple[str, str]]:
    """Each number's delivery state and delivered_at, as export shows them."""
    return {e.e164: (d, at) async for e, _k, d, at in store.export_deliveries(campaign)}


async def test_itecpay_stored_polling_asks_one_id_a_request_and_counts_exactly(
    any_store, sms_gateway_factory
):
    """ItecPay: a request per id per round; each message's one letter settles its 100 numbers; exact counts.

    Each message (a batch of 100 numbers) meets one fate: of 100 messages, 80 are delivered
    at once, 15 after an hour and 5 never; so 8,000, 1,500 and 500 numbers.
    """
    recipients = numbers(10_000)
    fates = [
        DeliveryRule("delivered") if k % 20 < 16 else DeliveryRule("delivered", after=HOUR)
        if k % 20 < 19 else DeliveryRule("never")
        for k in range(100)
    ]  # fmt: skip
    plan = DeliveryPlan(
        [DeliveryRule("failed")],  # no number falls to it: every one has an override
        overrides={n: fates[i // 100] for i, n in enumerate(recipients)},
    )
    clock = TestClock(START)
    log = RequestLog()
    gw = sms_gateway_factory(clock=clock, delivery=plan, request_log=log)
    driver = ItecPay(gw.username, gw.password, base_url=gw.itecpay_url)
    spec = CampaignSpec("Hello", "ITECPY", gateway="itecpay")
    created = await create_campaign(any_store, spec, recipients, clock=clock)
    await send_all(any_store, created.id, driver, clock)
    assert await any_store.delivery_tally(created.id) == DeliveryTally(pending=10_000)
    rounds: list[tuple[int, int]] = []
    polls = PollSchedule(give_up=3 * HOUR)
    with anyio.fail_after(120):
        polled = await drive(
            clock,
            lambda: poll_reports(
                any_store,
                created.id,
                driver=driver,
                until_settled=True,
                schedule=polls,
                clock=clock,
                on_round=lambda done: rounds.append((done.ids, done.requests)),
            ),
        )
    expected = DeliveryTally(delivered=9_500, expired=500)
    assert polled.tally == expected == await any_store.delivery_tally(created.id)
    # One id a request, every round: 100 ids at 30 s, then the 20 not yet final, then the 5 never final.
    assert all(ids == requests for ids, requests in rounds)
    assert rounds[0] == (100, 100)
    assert rounds[1] == (20, 20)
    assert polled.requests == sum(ids for ids, _ in rounds) == len(log.entries("itecpay.status"))
    assert len(log.entries("itecpay.status")) == gw.stats.requests["itecpay.status"]
    # Each message's numbers share its one letter; late ones are dated after their hour.
    shown = await states(any_store, created.id)
    assert Counter(state for state, _at in shown.values()) == Counter(delivered=9_500, expired=500)
    for k, fate in enumerate(fates):
        block = {shown[n] for n in recipients[100 * k : 100 * k + 100]}
        assert len(block) == 1
        ((state, at),) = block
        if fate.outcome == "never":
            # Dated at the give-up age's last poll.
            assert (state, datetime.fromisoformat(at)) == ("expired", START + timedelta(hours=3))
        else:
            assert state == "delivered"
            late = datetime.fromisoformat(at) - START >= timedelta(hours=1)
            assert late == (fate.after == HOUR)
    assert not gw.stats.duplicate_numbers()
    assert gw.stats.accepted == 10_000


@pytest.fixture
def proxy():
    """A fault proxy in front of the test database."""
    require_postgres()
    with FaultProxy(urlsplit(DATABASE_URL).port or 5432) as started:
        yield started


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["blackhole", "reset"])
async def test_the_database_lost_mid_poll_moves_no_state_and_polling_finishes_once_it_is_back(
    store, proxy, sms_gateway_factory, monkeypatch, mode
):
    """The database goes (black hole, or every connection reset) while a round waits for the gateway,
    after its ids were leased: the round fails with the store's error, no state moves backwards and none
    is invented, pending stays pending; once the database is back, polling resumes and finishes exactly.
    """  # noqa: D205
    monkeypatch.setenv("SMS_ASYNC_DATABASE_TIMEOUT", "1")
    recipients = numbers(3_000)
    clock = TestClock(START)
    log = RequestLog()
    gw = sms_gateway_factory(clock=clock, delivery=PLAN, request_log=log)
    driver = Iton(gw.username, gw.password, base_url=gw.iton_url)
    created = await create_campaign(store, CampaignSpec("Hello", "ITONAB"), recipients, clock=clock)
    await send_all(store, created.id, driver, clock)
    polls = PollSchedule(give_up=3 * HOUR)
    far = urlsplit(DATABASE_URL).port or 5432
    async with CampaignStore(proxy.url(DATABASE_URL, far), schema=store.schema, patience=3) as faulty:
        # A first round, the database there: the numbers delivered at once are recorded.
        clock.advance(30)
        first = await poll_reports(faulty, created.id, driver=driver, schedule=polls, clock=clock)
        at_once = PLAN.expected(recipients, 30)
        assert first.tally == DeliveryTally(pending=at_once["sent"], delivered=at_once["delivered"])
        before = await states(store, created.id)
        # The second round: the database goes while its one request waits for the gateway's answer.
        clock.advance(120)
        gw.set_faults([Fault("latency", rate=1.0, operations=["iton.message_status"], seconds=1.0)])
        asked = len(log.entries("iton.message_status"))

        async def cut_when_asked() -> None:
            while len(log.entries("iton.message_status")) == asked:  # noqa: ASYNC110 - another thread's log
                await anyio.sleep(0.01)
            leased = query(
                f'SELECT count(*) FROM "{store.schema}".deliveries '  # noqa: S608 - the test's schema
                "WHERE campaign = %s AND lease_owner IS NOT NULL",
                created.id,
            )
            assert leased == [(30,)]  # leased, not yet recorded
            proxy.fault(mode)

        async with anyio.create_task_group() as tg:
            tg.start_soon(cut_when_asked)
            with pytest.raises(StoreUnavailableError):
                await poll_reports(faulty, created.id, driver=driver, schedule=polls, clock=clock)
        # Nothing moved: the numbers delivered stay delivered (same time), the pending stay pending.
        assert await states(store, created.id) == before
        assert await store.delivery_tally(created.id) == first.tally
        table = f'"{store.schema}".deliveries'
        held = f"SELECT sum(polls), count(lease_owner) FROM {table} WHERE campaign = %s"  # noqa: S608
        assert query(held, created.id) == [(30, 30)]
        proxy.heal()
        gw.set_faults([])
        # Back: polling is tried again (as the poll task retries) until the store answers; the
        # leases of the round that failed run out, and polling finishes.
        retried = 0

        async def poll_until_settled() -> object:
            nonlocal retried
            while True:
                try:
                    return await poll_reports(
                        faulty, created.id, driver=driver, until_settled=True, schedule=polls, clock=clock
                    )
                except StoreUnavailableError:
                    retried += 1
                    await anyio.sleep(0.5)

        with anyio.fail_after(60):
            done = await drive(clock, poll_until_settled)
    after_hour = PLAN.expected(recipients, 2 * HOUR)
    expected = DeliveryTally(delivered=after_hour["delivered"], expired=after_hour["sent"])
    assert done.tally == expected == await store.delivery_tally(created.id)
    after = await states(store, created.id)
    for number, (state, at) in before.items():
        if state == "delivered":
            assert after[number] == (state, at)
    assert not gw.stats.duplicate_numbers()


async def test_a_store_made_before_polling_chains_were_kept_gains_them_at_a_start(store):
    """No poll_chains table (a store of the last release): no chain is live; the first new one makes it."""
    created = await create_campaign(store, CampaignSpec("Hello", "ITONAB"), numbers(10))
    query(f'DROP TABLE "{store.schema}".poll_chains')
    assert await store.poll_chain(created.id) is None
    assert await store.new_poll_chain(created.id) == 1
    assert await store.new_poll_chain(created.id) == 2
    assert await store.poll_chain(created.id) == 2
    # install, as campaign create runs it, keeps the store's version and what it holds.
    await store.install()
    assert await store.poll_chain(created.id) == 2
    assert (await store.campaign(created.id)).recipients == 10
