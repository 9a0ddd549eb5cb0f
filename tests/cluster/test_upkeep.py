"""Starting, following and keeping up a stored campaign, on every store, as library functions.

The rules `campaign start` and `campaign status --wait` follow.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from cluster_support import drive, numbers

from sms_async import Outcome
from sms_async.campaign import CampaignStatus, SqliteStore, Store, StoredCampaign
from sms_async.testing import TestClock

pytest.importorskip("psycopg")

from sms_async.cluster import (
    CampaignSpec,
    Unattended,
    campaign_upkeep,
    create_campaign,
    nobody_works_on,
    start_campaign,
    wait_for_campaign,
)

NOON = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


async def created(store: Store, count: int = 300, **options) -> int:
    return (await create_campaign(store, CampaignSpec("Hello", "ITONAB", **options), numbers(count))).id


async def test_a_start_marks_the_campaign_running_and_says_what_to_queue(any_store):
    """Its shards with work left; a polling chain on the store whose workers poll; a restart is said first."""
    campaign = await created(any_store)
    restarts: list[StoredCampaign] = []
    first = await start_campaign(any_store, campaign, on_restart=restarts.append)
    assert (first.campaign.state, first.shards, first.pending, restarts) == ("running", [0], 0, [])
    shared = not isinstance(any_store, SqliteStore)
    assert first.generation == (1 if shared else None)

    again = await start_campaign(any_store, campaign, on_restart=restarts.append)
    assert [(c.id, c.state) for c in restarts] == [(campaign, "running")]
    assert restarts[0].started_at is not None
    assert again.shards == [0]
    assert again.generation == (2 if shared else None)
    # Without polling, no chain is made (nor the pending numbers counted).
    quiet = await start_campaign(any_store, campaign, polling=False)
    assert (quiet.shards, quiet.pending, quiet.generation) == ([0], 0, None)


async def test_nobody_works_on_a_campaign_never_started_paused_or_idle(any_store):
    """The reason names the campaign; a closed window or a stopped campaign is no reason to stop waiting."""
    campaign = await created(any_store)
    never = await nobody_works_on(any_store, await any_store.status(campaign), 60.0)
    assert never == Unattended("not_started", (await any_store.status(campaign)).campaign)
    assert str(never) == f"campaign {campaign} has not been started"

    await any_store.start(campaign)
    found = await any_store.status(campaign)
    assert await nobody_works_on(any_store, found, math.inf, now=NOON) is None
    idle = await nobody_works_on(any_store, found, 0.0, now=NOON)
    assert idle is not None
    assert (idle.why, idle.campaign.id) == ("idle", campaign)
    assert idle.idle_for is not None
    assert idle.idle_for >= 0
    assert str(idle).startswith(f"no worker has worked on campaign {campaign} for ")

    assert await any_store.set_paused(campaign, True)
    paused = await nobody_works_on(any_store, await any_store.status(campaign), 0.0, now=NOON)
    assert paused is not None
    assert (paused.why, str(paused)) == ("paused", f"campaign {campaign} is paused")
    assert await any_store.set_paused(campaign, False)

    assert await any_store.stop(campaign, "cancelled", "the campaign was cancelled")
    assert await nobody_works_on(any_store, await any_store.status(campaign), 0.0, now=NOON) is None


async def test_a_campaign_outside_its_window_is_waited_for_however_idle(any_store):
    """Nobody works on it until its window opens: that is no reason to stop waiting."""
    campaign = await created(any_store, windows=("09:00-10:00",), timezone="UTC")
    await any_store.start(campaign)
    found = await any_store.status(campaign)
    assert await nobody_works_on(any_store, found, 0.0, now=NOON) is None
    opened = await nobody_works_on(any_store, found, 0.0, now=NOON.replace(hour=9, minute=30))
    assert opened is not None
    assert opened.why == "idle"


async def claimed_then_cancelled(store: Store) -> int:
    """A campaign cancelled while a worker that is gone (it never heartbeat) holds one of its batches."""
    campaign = await created(store)
    await store.start(campaign)
    assert await store.claim(campaign, 0, "gone-worker")
    assert await store.stop(campaign, "cancelled", "the campaign was cancelled")
    return campaign


async def test_upkeep_settles_a_stopped_campaigns_dead_workers_batches(any_store):
    """A stopped campaign's batch held by a dead worker becomes unknown; a running campaign is left alone."""
    running = await created(any_store)
    await any_store.start(running)
    assert await any_store.claim(running, 0, "gone-worker")
    assert await campaign_upkeep(any_store, await any_store.status(running), lease=0.0) == 0
    assert (await any_store.status(running)).batches["sending"] == 1

    campaign = await claimed_then_cancelled(any_store)
    before = await any_store.status(campaign)
    assert (before.batches["sending"], before.finished) == (1, False)
    assert await campaign_upkeep(any_store, before, lease=0.0) == 1
    after = await any_store.status(campaign)
    assert (after.batches["sending"], after.batches["unknown"], after.finished) == (0, 1, True)
    assert after.outcomes[Outcome.UNKNOWN] > before.outcomes[Outcome.UNKNOWN]
    assert after.settled == after.campaign.inputs


async def test_waiting_keeps_a_stopped_campaign_up_until_it_finishes(any_store):
    """The first look finds a dead worker's batch in flight; upkeep settles it; the next look is finished."""
    campaign = await claimed_then_cancelled(any_store)
    clock = TestClock(NOON)
    looks: list[CampaignStatus] = []

    async def wait() -> object:
        return await wait_for_campaign(
            any_store, campaign, lease=0.0, interval=2.0, on_look=looks.append, clock=clock
        )

    waited = await drive(clock, wait)
    assert [look.finished for look in looks] == [False, True]
    assert waited.status == looks[-1]
    assert (waited.unattended, waited.timed_out) == (None, False)


async def test_waiting_stops_when_nobody_works_on_the_campaign_or_at_its_timeout(any_store):
    """A campaign never started ends the wait at the first look; a running one at the timeout."""
    never = await created(any_store)
    waited = await wait_for_campaign(any_store, never, lease=60.0, clock=TestClock(NOON))
    assert waited.unattended is not None
    assert (waited.unattended.why, waited.timed_out) == ("not_started", False)

    running = await created(any_store)
    await any_store.start(running)
    clock = TestClock(NOON)
    looks: list[CampaignStatus] = []

    async def wait() -> object:
        return await wait_for_campaign(
            any_store,
            running,
            lease=60.0,
            idle=math.inf,
            interval=1.0,
            timeout=5.0,
            on_look=looks.append,
            clock=clock,
        )

    waited = await drive(clock, wait)
    assert (waited.unattended, waited.timed_out) == (None, True)
    assert len(looks) == 6  # at 0, 1, ... 5 seconds of the clock
    assert waited.status.campaign.state == "running"
