"""Stored campaigns through delivery, windows and pause, on every store, on the simulator and a test clock."""

from __future__ import annotations

import csv
import json
import math
import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import anyio
import pytest
from click.testing import CliRunner
from cluster_support import DATABASE_URL, drive, numbers

from sms_async import Iton, Outcome
from sms_async.campaign import DeliveryTally, PollSchedule, SqliteStore, Store
from sms_async.cli import cli
from sms_async.testing import (
    DeliveryPlan,
    DeliveryRule,
    Fault,
    RequestLog,
    SimulatedGateway,
    TestClock,
)

pytest.importorskip("psycopg")

from sms_async.cluster import CampaignSpec, create_campaign, poll_reports, run_shard

HOUR = 3600.0
IST = ZoneInfo("Asia/Kolkata")
PLAN = DeliveryPlan(
    [
        DeliveryRule("delivered", 0.80),
        DeliveryRule("delivered", 0.15, after=HOUR),
        DeliveryRule("never", 0.05),
    ],
    seed=20,
)
#: Numbers of the 72-hour drill: enough that every fate of the plan is hundreds of numbers and a
#: round of status polls takes more than one request (one id per 100 numbers, 100 ids a request).
#: The suite runs 12,000; SMS_ASYNC_DRILL_SIZE=50000 runs the full drill.
DRILL_SIZE = int(os.environ.get("SMS_ASYNC_DRILL_SIZE", "12000"))


def driver(gw: SimulatedGateway) -> Iton:
    return Iton(gw.username, gw.password, base_url=gw.iton_url)


async def send_all(store: Store, campaign: int, gw: SimulatedGateway, clock: TestClock, **options) -> list:
    """Every shard of the campaign, run in turn as ``campaign run`` does."""
    _found, shards = await store.start(campaign)
    return [
        await run_shard(store, campaign, shard, driver=driver(gw), clock=clock, budget=math.inf, **options)
        for shard in shards
    ]


def status_and_export(store: Store, campaign: int, folder) -> tuple[dict, list[dict]]:
    """``campaign status --json`` and ``campaign export`` of a store's campaign, run as a user would."""
    if isinstance(store, SqliteStore):
        env = {"SMS_ASYNC_DATABASE_URL": f"sqlite:///{store.path}"}
    else:
        env = {"SMS_ASYNC_DATABASE_URL": DATABASE_URL, "SMS_ASYNC_DATABASE_SCHEMA": store.schema}
    env |= {"SMS_ASYNC_CONFIG": None, "SMS_ASYNC_BROKER_URL": None}
    shown = CliRunner().invoke(cli, ["campaign", "status", str(campaign), "--json"], env=env)
    output = folder / "results.csv"
    done = CliRunner().invoke(cli, ["campaign", "export", str(campaign), "-o", str(output)], env=env)
    assert done.exit_code == 0, done.output
    with output.open(encoding="utf-8", newline="") as file:
        return json.loads(shown.stdout), list(csv.DictReader(file))


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_thousands_of_stored_numbers_end_as_the_gateway_says_after_the_simulated_hours(
    any_store, sms_gateway_factory, tmp_path
):
    """80% delivered at once, 15% after an hour, 5% never: status and export show exactly those counts."""
    recipients = numbers(DRILL_SIZE)
    per_round = math.ceil(DRILL_SIZE // 100 / 100)
    assert DRILL_SIZE % 100 == 0
    assert per_round >= 2, "SMS_ASYNC_DRILL_SIZE must be above 10,000: more than one request a round"
    clock = TestClock(datetime(2026, 12, 6, 9, 0, tzinfo=UTC))
    gw = sms_gateway_factory(clock=clock, delivery=PLAN)
    after_hour = PLAN.expected(recipients, 2 * HOUR)
    created = await create_campaign(any_store, CampaignSpec("Hello", "ITONAB"), recipients, clock=clock)
    await send_all(any_store, created.id, gw, clock)
    assert (await any_store.status(created.id)).outcomes[Outcome.ACCEPTED] == DRILL_SIZE
    assert await any_store.delivery_tally(created.id) == DeliveryTally(pending=DRILL_SIZE)

    accepted_at = clock.now()
    # Polled until nothing is pending: the 72 simulated hours of the default schedule.
    with anyio.fail_after(240):
        polled = await drive(
            clock,
            lambda: poll_reports(any_store, created.id, driver=driver(gw), until_settled=True, clock=clock),
        )
    assert clock.now() == accepted_at + timedelta(hours=72)
    expected = DeliveryTally(delivered=after_hour["delivered"], expired=after_hour["sent"])
    assert await any_store.delivery_tally(created.id) == expected
    assert polled.tally == expected
    assert polled.next_due is None
    # ITON answers one id per request of 100 numbers: DRILL_SIZE / 100 ids, ceil(ids / 100) requests a
    # round (5 for 50,000), every round.
    assert polled.requests == per_round * polled.rounds
    exported = Counter([d async for _e, _k, d, _at in any_store.export_deliveries(created.id)])
    assert exported == Counter({"delivered": expected.delivered, "expired": expected.expired})
    assert not gw.stats.duplicate_numbers()
    # What the command line shows of it: campaign status and the export file.
    shown, rows = await anyio.to_thread.run_sync(status_and_export, any_store, created.id, tmp_path)
    assert shown["delivery"] == {
        "accepted": DRILL_SIZE,
        "delivered": expected.delivered,
        "undelivered": 0,
        "failed": 0,
        "expired": expected.expired,
        "pending": 0,
        "rate": expected.delivered / DRILL_SIZE,
    }
    assert Counter(row["delivery"] for row in rows) == exported
    assert all(row["delivered_at"] for row in rows if row["delivery"] == "delivered")


async def test_a_stored_campaign_created_at_20_50_ist_sends_until_21_and_resumes_at_9(
    any_store, sms_gateway_factory
):
    """With 09:00-21:00 IST, the runner claims nothing from 21:00 to 09:00; the gateway's log shows none."""
    created_at = datetime(2026, 12, 6, 20, 50, tzinfo=IST)
    clock = TestClock(created_at)
    log = RequestLog()
    gw = sms_gateway_factory(clock=clock, request_log=log)
    spec = CampaignSpec("Hello", "ITONAB", windows=["09:00-21:00"], timezone="Asia/Kolkata")
    created = await create_campaign(any_store, spec, numbers(2_000), clock=clock)

    class OneMinuteABatch:
        """Each batch sent takes a simulated minute."""

        def on_batch(self, _record: object) -> None:
            clock.advance(60)

    with anyio.fail_after(60):
        reports = await drive(
            clock,
            lambda: send_all(any_store, created.id, gw, clock, concurrency=1, hooks=[OneMinuteABatch()]),
        )
    assert all(report.complete for report in reports)
    night, morning = datetime(2026, 12, 6, 21, 0, tzinfo=IST), datetime(2026, 12, 7, 9, 0, tzinfo=IST)
    sends = log.entries("iton.sendSMS")
    assert len(sends) == 20
    assert [e.at for e in sends if e.at < night] == [created_at + timedelta(minutes=m) for m in range(10)]
    assert sends[10].at == morning
    assert log.between(night, morning) == []
    status = await any_store.status(created.id)
    assert status.outcomes[Outcome.ACCEPTED] == 2_000
    assert not gw.stats.duplicate_numbers()


async def test_a_paused_campaign_stops_claiming_and_resumed_sends_the_rest_once(any_store):
    """Paused mid-run, the run stops after its batches in flight; resumed, the rest is sent, nothing twice."""
    clock = TestClock(datetime(2026, 12, 6, 9, 0, tzinfo=UTC))
    with SimulatedGateway() as gw:
        created = await create_campaign(any_store, CampaignSpec("Hello", "ITONAB"), numbers(3_000))

        class PauseAfterFive:
            """Pauses the campaign as the fifth batch settles."""

            seen = 0

            def on_batch(self, _record: object) -> None:
                self.seen += 1
                if self.seen == 5:
                    pausing.set()

        pausing = anyio.Event()

        async def pause() -> None:
            await pausing.wait()
            assert await any_store.set_paused(created.id, True)

        async with anyio.create_task_group() as tg:
            tg.start_soon(pause)
            (first,) = await send_all(
                any_store, created.id, gw, clock, concurrency=1, hooks=[PauseAfterFive()]
            )
        assert first.stopped == "paused"
        held = (await any_store.status(created.id)).outcomes[Outcome.ACCEPTED]
        assert 500 <= held < 3_000
        assert (await send_all(any_store, created.id, gw, clock))[0].stopped == "paused"
        assert gw.stats.accepted == held
        assert await any_store.set_paused(created.id, False)
        (second,) = await send_all(any_store, created.id, gw, clock)
        assert second.complete
        assert gw.stats.accepted == 3_000
        assert not gw.stats.duplicate_numbers()
    assert (await any_store.status(created.id)).outcomes[Outcome.ACCEPTED] == 3_000


@pytest.mark.slow
async def test_a_poller_killed_mid_poll_loses_nothing_and_the_other_polls_its_ids_once_its_lease_ends(
    any_store, sms_gateway_factory
):
    """One of two pollers takes its ids and dies before recording; the other polls them after the lease."""
    recipients = numbers(5_000)
    clock = TestClock(datetime(2026, 12, 6, 9, 0, tzinfo=UTC))
    log = RequestLog()
    gw = sms_gateway_factory(clock=clock, delivery=PLAN, request_log=log)
    created = await create_campaign(any_store, CampaignSpec("Hello", "ITONAB"), recipients, clock=clock)
    await send_all(any_store, created.id, gw, clock)
    # The killed poller: it leased half the ids at their first poll and never recorded an answer.
    clock.advance(30)
    killed = any_store.delivery_book(created.id, lease=60)
    taken = {d.message_id for d in await killed.due(clock.now(), 25)}
    assert len(taken) == 25
    polls = PollSchedule(give_up=3 * HOUR)
    with anyio.fail_after(120):
        polled = await drive(
            clock,
            lambda: poll_reports(
                any_store, created.id, driver=driver(gw), until_settled=True, schedule=polls, clock=clock
            ),
        )
    after_hour = PLAN.expected(recipients, 2 * HOUR)
    expected = DeliveryTally(delivered=after_hour["delivered"], expired=after_hour["sent"])
    assert polled.tally == expected == await any_store.delivery_tally(created.id)
    # The first round polled the 25 ids nobody held (one request); the killed poller's 25 were
    # polled once its lease had run out, a minute later.
    first, second = log.entries("iton.message_status")[:2]
    assert second.at - first.at == timedelta(seconds=60)
    assert not gw.stats.duplicate_numbers()


async def test_the_poll_task_records_what_the_gateway_says(store, sms_gateway_factory, monkeypatch):
    """sms_async.poll_reports, run on an app of one's own: it polls the due ids and records what it hears."""
    any_store = store  # Celery workers share a PostgreSQL store: this test has no SQLite case
    pytest.importorskip("celery")
    from celery import Celery  # noqa: PLC0415

    from sms_async.cluster.celery import POLL_TASK_NAME, configure, register, shutdown  # noqa: PLC0415

    theirs = configure(Celery("here"), "memory://")
    register(theirs)
    task = theirs.tasks[POLL_TASK_NAME]
    assert (task.acks_late, task.reject_on_worker_lost) == (True, True)
    gw = sms_gateway_factory(delivery=PLAN, status_delays=(0.0, 0.0))
    for name, value in {
        "SMS_ASYNC_DATABASE_URL": DATABASE_URL,
        "SMS_ASYNC_DATABASE_SCHEMA": any_store.schema,
        "SMS_ASYNC_USERNAME": gw.username,
        "SMS_ASYNC_PASSWORD": gw.password,
        "SMS_ASYNC_BASE_URL": gw.iton_url,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SMS_ASYNC_CONFIG", raising=False)
    monkeypatch.delenv("SMS_ASYNC_GATEWAY", raising=False)
    recipients = numbers(1_000)
    created = await create_campaign(any_store, CampaignSpec("Hello", "ITONAB"), recipients)
    # Accepted two hours ago, by the clock of the store's rows: every id is due.
    clock = TestClock(datetime.now(UTC) - timedelta(hours=2))
    await send_all(any_store, created.id, gw, clock)
    try:
        await anyio.to_thread.run_sync(lambda: task.apply(args=(created.id,)).get())
    finally:
        await anyio.to_thread.run_sync(shutdown)
    tally = await any_store.delivery_tally(created.id)
    assert tally.accepted == 1_000
    # The gateway's own clock is the machine's: its messages are seconds old, not two hours.
    assert tally.delivered == PLAN.expected(recipients, 60)["delivered"]


@pytest.mark.parametrize("kind", ["html_body", "truncated_body", "wrong_type_body"])
async def test_malformed_poll_answers_invent_nothing_and_the_next_real_answer_counts(
    any_store, sms_gateway_factory, kind
):
    """Every status answer unreadable: every number stays pending; the next readable round records them."""
    recipients = numbers(2_000)
    clock = TestClock(datetime(2026, 12, 6, 9, 0, tzinfo=UTC))
    gw = sms_gateway_factory(clock=clock, delivery=PLAN)
    created = await create_campaign(any_store, CampaignSpec("Hello", "ITONAB"), recipients, clock=clock)
    await send_all(any_store, created.id, gw, clock)
    gw.set_faults([Fault(kind, rate=1.0, operations=["iton.message_status"])])
    clock.advance(30)
    broken = await poll_reports(any_store, created.id, driver=driver(gw), clock=clock)
    assert (broken.ids, broken.tally) == (20, DeliveryTally(pending=2_000))
    assert broken.next_due == clock.now() + timedelta(minutes=2)
    gw.set_faults([])
    clock.advance(120)
    mended = await poll_reports(any_store, created.id, driver=driver(gw), clock=clock)
    at_once = PLAN.expected(recipients, 150)
    assert mended.tally == DeliveryTally(pending=at_once["sent"], delivered=at_once["delivered"])


async def test_a_poll_task_of_a_replaced_chain_ends_without_polling(store, sms_gateway_factory, monkeypatch):
    """Two chains made (two starts): the older one's task, and one queued without a generation (an
    earlier release's), poll nothing and queue nothing; the live one's polls.
    """  # noqa: D205
    pytest.importorskip("celery")
    from celery import Celery  # noqa: PLC0415

    from sms_async.cluster.celery import POLL_TASK_NAME, configure, register, shutdown  # noqa: PLC0415

    theirs = configure(Celery("here"), "memory://")
    register(theirs)
    task = theirs.tasks[POLL_TASK_NAME]
    log = RequestLog()
    gw = sms_gateway_factory(delivery=PLAN, status_delays=(0.0, 0.0), request_log=log)
    for name, value in {
        "SMS_ASYNC_DATABASE_URL": DATABASE_URL,
        "SMS_ASYNC_DATABASE_SCHEMA": store.schema,
        "SMS_ASYNC_USERNAME": gw.username,
        "SMS_ASYNC_PASSWORD": gw.password,
        "SMS_ASYNC_BASE_URL": gw.iton_url,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("SMS_ASYNC_CONFIG", "SMS_ASYNC_GATEWAY", "SMS_ASYNC_TEST_CLOCK"):
        monkeypatch.delenv(name, raising=False)
    recipients = numbers(500)
    created = await create_campaign(store, CampaignSpec("Hello", "ITONAB"), recipients)
    # Accepted two hours ago, by the clock of the store's rows: every id is due.
    await send_all(store, created.id, gw, TestClock(datetime.now(UTC) - timedelta(hours=2)))
    assert [await store.new_poll_chain(created.id) for _ in range(2)] == [1, 2]
    sent: list[tuple] = []
    monkeypatch.setattr(theirs, "send_task", lambda *args, **kwargs: sent.append((args, kwargs)))
    try:
        for args in [(created.id, 1), (created.id,)]:
            await anyio.to_thread.run_sync(lambda args=args: task.apply(args=args).get())
        assert log.entries("iton.message_status") == []
        assert sent == []
        assert await store.delivery_tally(created.id) == DeliveryTally(pending=500)
        await anyio.to_thread.run_sync(lambda: task.apply(args=(created.id, 2)).get())
    finally:
        await anyio.to_thread.run_sync(shutdown)
    assert len(log.entries("iton.message_status")) == 1
    tally = await store.delivery_tally(created.id)
    assert tally.delivered == PLAN.expected(recipients, 60)["delivered"]
    # Numbers are pending: the live chain queued its next task, with its generation.
    assert [(args, kwargs["args"]) for args, kwargs in sent] == [((POLL_TASK_NAME,), (created.id, 2))]
