"""One suite, every campaign store: the same rules hold on SQLite (one machine) and PostgreSQL (many).

Each test runs once per store, as anyio runs its suite once per backend. The
PostgreSQL runs skip with the reason when it cannot be reached, and fail
instead with SMS_ASYNC_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import anyio
import pytest
from cluster_support import numbers

from sms_async import BulkSender, DeliveryReport, DeliveryStatus, Iton, Outcome, Template
from sms_async.campaign import (
    CampaignError,
    DeliveryTally,
    PollOutcome,
    ScheduleError,
    Store,
    encode_row,
)
from sms_async.testing import SimulatedGateway

pytest.importorskip("psycopg")

from sms_async.cluster import CampaignSpec, create_campaign, run_shard


def driver(gw: SimulatedGateway) -> Iton:
    return Iton(gw.username, gw.password, base_url=gw.iton_url)


async def started(store: Store, count: int = 300, **options) -> int:
    created = await create_campaign(store, CampaignSpec("Hello", "ITONAB", **options), numbers(count))
    await store.start(created.id)
    return created.id


async def test_one_of_many_concurrent_claims_wins(any_store):
    """Twenty runners claim one batch at once: one wins, asked again it is still its own; release frees it."""
    campaign = await started(any_store)
    won: list[str] = []

    async def claim(runner: str) -> None:
        if await any_store.claim(campaign, 0, runner):
            won.append(runner)

    async with anyio.create_task_group() as tg:
        for n in range(20):
            tg.start_soon(claim, f"runner-{n}")
    assert len(won) == 1
    assert not await any_store.claim(campaign, 0, "late")
    assert await any_store.claim(campaign, 0, won[0])
    await any_store.release(campaign, 0, won[0])
    assert await any_store.claim(campaign, 0, "late")


async def test_only_the_owner_settles_and_rows_and_counts_follow(any_store):
    """A batch settles for its owner only; its counts and rows are what status and export show."""
    campaign = await started(any_store, count=100)
    assert await any_store.claim(campaign, 0, "me")
    rows = [(position, "accepted", f"id{position}", "") for position in range(1, 101)]
    counts = {Outcome.ACCEPTED: 100}
    assert not await any_store.settle(campaign, 0, "someone-else", state="sent", counts=counts, rows=rows)
    assert await any_store.settle(campaign, 0, "me", state="sent", counts=counts, rows=rows, requests=1)
    status = await any_store.status(campaign)
    assert (status.outcomes[Outcome.ACCEPTED], status.requests, status.batches["sent"]) == (100, 1, 1)
    assert (status.credits, status.fewest_parts, status.most_parts) == (100, 1, 1)
    assert await any_store.finish(campaign)
    exported = [entry async for entry, _ in any_store.export_rows(campaign)]
    assert [(e.position, e.outcome, e.message_id) for e in exported[:2]] == [
        (1, Outcome.ACCEPTED, "id1"),
        (2, Outcome.ACCEPTED, "id2"),
    ]


async def test_a_killed_runners_batch_is_unknown_and_never_sent_again(any_store):
    """A batch held by a runner with no heartbeat (killed mid-batch) becomes unknown; a later run skips it."""
    with SimulatedGateway() as gw:
        campaign = await started(any_store, count=300)
        assert await any_store.claim(campaign, 1, "killed")  # never registered: no heartbeat at all
        assert await any_store.reap(campaign, lease=5.0) == 1
        report = await run_shard(any_store, campaign, 0, driver=driver(gw))
        received = gw.stats.accepted
        assert not gw.stats.duplicate_numbers()
    assert report.complete
    assert received == 200
    status = await any_store.status(campaign)
    assert (status.outcomes[Outcome.UNKNOWN], status.outcomes[Outcome.ACCEPTED]) == (100, 200)
    assert status.campaign.state == "done"
    rows = [entry async for entry, _ in any_store.export_rows(campaign)]
    assert "may or may not have been sent" in rows[150].reason


async def test_cancel_makes_pending_unsent_and_counts_each_input_once(any_store):
    """Cancelling: pending numbers unsent; a batch in flight still settles; a new start is refused."""
    campaign = await started(any_store, count=300)
    assert await any_store.claim(campaign, 2, "me")
    assert await any_store.stop(campaign, "cancelled", "the campaign was cancelled")
    assert not await any_store.claim(campaign, 1, "me")
    status = await any_store.status(campaign)
    assert (status.outcomes[Outcome.UNSENT], status.batches["sending"], status.finished) == (200, 1, False)
    rows = [(position, "accepted", "x", "") for position in range(201, 301)]
    assert await any_store.settle(campaign, 2, "me", state="sent", counts={Outcome.ACCEPTED: 100}, rows=rows)
    status = await any_store.status(campaign)
    assert (status.outcomes[Outcome.ACCEPTED], status.outcomes[Outcome.UNSENT], status.finished) == (
        100,
        200,
        True,
    )
    with pytest.raises(CampaignError, match="cancelled"):
        await any_store.start(campaign)


async def test_a_run_out_of_time_is_resumed_without_a_double_send(any_store):
    """A run whose budget is spent stops at a batch boundary; the next run sends the rest, nothing twice."""
    with SimulatedGateway() as gw:
        campaign = await started(any_store, count=1000)
        first = await run_shard(any_store, campaign, 0, driver=driver(gw), budget=0)
        second = await run_shard(any_store, campaign, 0, driver=driver(gw))
        assert not gw.stats.duplicate_numbers()
        assert gw.stats.accepted == 1000
    assert (first.more, second.complete) == (True, True)
    assert (await any_store.status(campaign)).outcomes[Outcome.ACCEPTED] == 1000


async def test_texts_per_recipient_parameters_and_kept_columns_are_the_campaigns(any_store):
    """Each recipient gets their own text and the parameter; the export is send's rows, kept columns too."""
    people = [{"phone": n, "name": f"N{i}"} for i, n in enumerate(numbers(40))] + [
        {"phone": "bad", "name": "X"}
    ]
    spec = CampaignSpec(
        Template("Hi {name}", number="phone"), "ITONAB", params={"templateid": "1107-9"}, shard_size=3
    )
    with SimulatedGateway() as gw:
        created = await create_campaign(any_store, spec, people, rows=_Rows())
        _, shards = await any_store.start(created.id)
        for shard in shards:
            await run_shard(any_store, created.id, shard, driver=driver(gw))
        texts = {number: message.text for message in gw.messages.values() for number in message.numbers}
        assert gw.stats.params["templateid=1107-9"] == len(gw.messages) == 40
        assert not gw.stats.duplicate_numbers()
        exported = "".join(
            [encode_row(entry, "jsonl") async for entry, _ in any_store.export_rows(created.id)]
        )
        async with BulkSender(driver(gw), default_region="IN") as bulk:
            single = [
                entry
                async for batch in bulk.stream(
                    people, Template("Hi {name}", number="phone"), sender_id="ITONAB"
                )
                for entry in batch.entries()
            ]
    assert texts == {person["phone"][1:]: f"Hi {person['name']}" for person in people[:40]}
    single.sort(key=lambda entry: entry.position)
    ids = {entry.position: entry.message_id for entry in single}
    theirs = [json.loads(line) for line in exported.splitlines()]
    assert [{**row, "message_id": ids[row["row"]] or None} for row in theirs] == [
        json.loads(encode_row(entry, "jsonl")) for entry in single
    ]
    status = await any_store.status(created.id)
    assert (status.credits, status.campaign.params, status.campaign.personal) == (
        40,
        {"templateid": "1107-9"},
        True,
    )
    kept = [columns async for _, columns in any_store.export_rows(created.id)]
    assert kept == [[f"city-{position}"] for position in range(1, 42)]
    assert status.campaign.columns == ["city"]


class _Rows:
    """Rows numbered by position, each keeping one column."""

    columns = ("city",)

    def take(self, position: int) -> tuple[int, tuple[str, ...]]:
        return position, (f"city-{position}",)

    def forget(self, first: int, count: int) -> None:
        return


# -- delivery, schedule, pause ---------------------------------------------------------------------

T0 = datetime(2026, 12, 6, 15, 20, tzinfo=UTC)


async def test_accepted_numbers_with_ids_are_pending_delivery_and_their_ids_due_once(any_store):
    """Settling as sent makes each number with an id pending, its id due 30 s after acceptance, once."""
    campaign = await started(any_store, count=100)
    assert await any_store.claim(campaign, 0, "me")
    rows = [(p, "accepted", f"id{p % 3}", "") for p in range(1, 99)] + [
        (99, "unknown", "id9", ""),
        (100, "unknown", "", "in doubt"),
    ]
    counts = {Outcome.ACCEPTED: 98, Outcome.UNKNOWN: 2}
    assert await any_store.settle(campaign, 0, "me", state="sent", counts=counts, rows=rows, accepted_at=T0)
    assert await any_store.delivery_tally(campaign) == DeliveryTally(pending=99)
    book = any_store.delivery_book(campaign)
    assert await book.next_due() == T0 + timedelta(seconds=30)
    assert await book.due(T0 + timedelta(seconds=29), 10) == []
    due = await book.due(T0 + timedelta(seconds=30), 10)
    assert sorted(d.message_id for d in due) == ["id0", "id1", "id2", "id9"]
    exported = [
        (e.position, delivery, at) async for e, _, delivery, at in any_store.export_deliveries(campaign)
    ]
    assert exported[0] == (1, "pending", "")
    assert exported[-1] == (100, "", "")


async def test_two_pollers_never_hold_one_id_and_a_lapsed_lease_is_taken_over(any_store):
    """An id handed to one book is not handed to another until its lease runs out or its poll is recorded."""
    campaign = await started(any_store, count=100)
    assert await any_store.claim(campaign, 0, "me")
    rows = [(p, "accepted", f"id{p}", "") for p in range(1, 101)]
    await any_store.settle(
        campaign, 0, "me", state="sent", counts={Outcome.ACCEPTED: 100}, rows=rows, accepted_at=T0
    )
    first, second = any_store.delivery_book(campaign, lease=60), any_store.delivery_book(campaign, lease=60)
    at = T0 + timedelta(seconds=30)
    got: list[list[str]] = []

    async def take(book) -> None:
        got.append([d.message_id for d in await book.due(at, 100)])

    async with anyio.create_task_group() as tg:
        tg.start_soon(take, first)
        tg.start_soon(take, second)
    # Taken at once, the ids are shared out: none is held by both.
    assert sorted(got[0] + got[1]) == sorted(f"id{p}" for p in range(1, 101))
    third = any_store.delivery_book(campaign, lease=60)
    assert await third.due(at + timedelta(seconds=59), 200) == []
    # Both pollers are killed: their leases lapse and another takes every id over.
    taken = {d.message_id for d in await third.due(at + timedelta(seconds=60), 200)}
    assert taken == {f"id{p}" for p in range(1, 101)}


async def test_a_poll_outcome_moves_states_forward_and_counts_in_status(any_store):
    """Recorded polls change the tally; delivered stays delivered; the id is due no more once settled."""
    campaign = await started(any_store, count=100)
    assert await any_store.claim(campaign, 0, "me")
    rows = [(p, "accepted", "one", "") for p in range(1, 101)]
    await any_store.settle(
        campaign, 0, "me", state="sent", counts={Outcome.ACCEPTED: 100}, rows=rows, accepted_at=T0
    )
    book = any_store.delivery_book(campaign)
    at = T0 + timedelta(seconds=30)
    assert [d.message_id for d in await book.due(at, 10)] == ["one"]
    everyone = (DeliveryReport("one", None, DeliveryStatus.DELIVERED, "D"),)
    await book.record([PollOutcome("one", at, everyone, True, at + timedelta(minutes=2))])
    await book.record(
        [PollOutcome("one", at, (DeliveryReport("one", None, DeliveryStatus.FAILED, "E"),), True, None)]
    )
    assert await any_store.delivery_tally(campaign) == DeliveryTally(delivered=100)
    assert await book.next_due() is None
    rows_out = [(delivery, at_) async for _e, _k, delivery, at_ in any_store.export_deliveries(campaign)]
    assert rows_out[0] == ("delivered", at.isoformat())


async def test_a_schedule_is_kept_and_a_bad_one_refused_at_create(any_store):
    """Windows, zone and start time are kept and read back; a past start or unknown zone stores nothing."""
    spec = CampaignSpec(
        "Hello",
        "ITONAB",
        windows=["09:00-12:00", "14:00-21:00"],
        timezone="Asia/Kolkata",
        start_at="2099-12-07T10:00+05:30",
        report_share=0.2,
    )
    created = await create_campaign(any_store, spec, numbers(10))
    schedule = await any_store.schedule(created.id)
    assert (schedule.windows_spec, schedule.zone_name) == ("09:00-12:00,14:00-21:00", "Asia/Kolkata")
    assert schedule.start_at_iso == "2099-12-07T10:00:00+05:30"
    assert (await any_store.campaign(created.id)).report_share == 0.2
    for bad, words in (
        ({"windows": ["09:00-21:00"], "timezone": "Asia/Kolkatta"}, "unknown time zone"),
        ({"start_at": "2020-01-01T10:00+05:30"}, "in the past"),
        ({"windows": ["09:00-09:00"], "timezone": "UTC"}, "zero length"),
    ):
        with pytest.raises(ScheduleError, match=words):
            await create_campaign(any_store, CampaignSpec("Hello", "ITONAB", **bad), numbers(10))


async def test_a_paused_campaign_claims_nothing_until_resumed(any_store):
    """Pause: no claim succeeds, a batch in flight still settles; resume: claims go on."""
    campaign = await started(any_store, count=300)
    assert await any_store.claim(campaign, 0, "me")
    assert await any_store.set_paused(campaign, True)
    assert not await any_store.set_paused(campaign, True)
    assert (await any_store.campaign(campaign)).paused
    assert not await any_store.claim(campaign, 1, "me")
    rows = [(p, "accepted", "x", "") for p in range(1, 101)]
    assert await any_store.settle(campaign, 0, "me", state="sent", counts={Outcome.ACCEPTED: 100}, rows=rows)
    assert await any_store.set_paused(campaign, False)
    assert await any_store.claim(campaign, 1, "me")


async def test_a_fresh_campaign_of_100_000_settled_rows_exports_at_once(any_store):
    """Export right after the rows are written (no table statistics yet) reads every row in one plan."""
    created = await create_campaign(any_store, CampaignSpec("Hello", "ITONAB"), numbers(100_000))
    await any_store.start(created.id)
    runs = [(idx, f"r{idx}") for idx in range(created.batches)]
    for idx, runner in runs:
        assert await any_store.claim(created.id, idx, runner)
    for idx, runner in runs:
        first = idx * 100 + 1
        rows = [(p, "accepted", f"m{idx}", "") for p in range(first, first + 100)]
        await any_store.settle(
            created.id, idx, runner, state="sent", counts={Outcome.ACCEPTED: 100}, rows=rows
        )
    with anyio.fail_after(30):
        exported = [delivery async for _e, _k, delivery, _at in any_store.export_deliveries(created.id)]
    assert exported == ["pending"] * 100_000
