"""Starting a stored campaign, keeping it up while it is followed, and knowing when nobody works on it.

The rules the command line follows when it starts a campaign or waits for it,
as functions every program driving a store can call::

    async with open_store(settings) as store:
        started = await start_campaign(store, campaign_id)      # shards to queue, polling to queue
        waited = await wait_for_campaign(store, campaign_id, lease=settings.lease, idle=60)
    waited.status.finished, waited.unattended                  # done, or why waiting stopped

Each works on both stores (:class:`~sms_async.campaign.SqliteStore` and
:class:`~sms_async.cluster.CampaignStore`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Final, Literal

import attrs

from sms_async._clock import SYSTEM_CLOCK, Clock
from sms_async.campaign import CampaignStatus, Store, StoredCampaign

__all__ = [
    "CampaignStart",
    "CampaignWait",
    "Unattended",
    "campaign_upkeep",
    "nobody_works_on",
    "start_campaign",
    "wait_for_campaign",
]

#: Seconds between two looks of :func:`wait_for_campaign` unless told.
DEFAULT_INTERVAL: Final = 2.0
#: Seconds without any worker after which :func:`wait_for_campaign` stops waiting unless told.
DEFAULT_IDLE: Final = 60.0


@attrs.frozen
class CampaignStart:
    """What :func:`start_campaign` did: the campaign started, its shards to queue, its polling."""

    #: The campaign as the start left it (``running``, or ``done`` when nothing was left).
    campaign: StoredCampaign
    #: The shards with work left: each is queued (or run) once.
    shards: list[int]
    #: Numbers pending delivery, counted only when the campaign sends nothing and polling was asked for
    #: (0 otherwise).
    pending: int
    #: The generation of the new delivery polling chain to queue (a shared store only), or ``None`` when
    #: no polling is to be queued: not asked for, nothing to poll, or a store that workers do not poll.
    generation: int | None


async def start_campaign(
    store: Store,
    campaign: int,
    *,
    polling: bool = True,
    on_restart: Callable[[StoredCampaign], None] | None = None,
) -> CampaignStart:
    """Start ``campaign`` (mark it running) and say what is to be queued for it.

    Starting a campaign that ran before resumes it: its shards with work left
    come back, and no batch already sent is sent again. ``on_restart`` is
    called first, with the campaign as it stood, when it had been started
    before (to say what became of that start).

    With ``polling``, a store whose workers poll delivery reports (one with a
    ``new_poll_chain``, the PostgreSQL store) gets a new polling chain when
    one is needed: while the campaign sends, or numbers are pending delivery.
    The new chain replaces the campaign's earlier ones, whether they still
    run or were lost, so one chain is left however often it starts.

    Raises:
        CampaignError: There is no such campaign, or the store refuses to start it
            (cancelled, or still loading).
    """
    before = await store.campaign(campaign)
    if before.started_at is not None and on_restart is not None:
        on_restart(before)
    found, shards = await store.start(campaign)
    new_chain = getattr(store, "new_poll_chain", None)  # workers poll a shared (PostgreSQL) store only
    sending = bool(shards) or found.state == "running"
    # Counted only when it decides (it reads every row of the campaign's results).
    pending = 0 if sending or not polling else (await store.delivery_tally(campaign)).pending
    if not polling or new_chain is None or not (sending or pending):
        return CampaignStart(found, shards, pending, None)
    generation: int = await new_chain(campaign)
    return CampaignStart(found, shards, pending, generation)


async def campaign_upkeep(store: Store, found: CampaignStatus, *, lease: float) -> int:
    """Settle what nobody else will for a campaign being followed; how many batches that settled.

    A campaign no longer running (stopped, done, or not started) has no shard
    run that would reap its batches: a batch still ``sending`` whose run has
    not heartbeaten for ``lease`` seconds (its worker died) becomes
    ``unknown`` here, so that the campaign can finish. A running campaign's
    own runs do that for themselves: nothing is done to it.
    """
    if found.campaign.state == "running":
        return 0
    return await store.reap(found.campaign.id, lease)


@attrs.frozen
class Unattended:
    """Why waiting for a campaign is pointless: nobody works on it, and nobody will by themselves."""

    #: ``not_started`` (never started), ``paused``, or ``idle`` (no run for ``idle_for`` seconds).
    why: Literal["not_started", "paused", "idle"]
    #: The campaign as last seen.
    campaign: StoredCampaign
    #: With ``idle``: seconds since any run last worked on it.
    idle_for: float | None = None

    def __str__(self) -> str:
        c = self.campaign
        if self.why == "not_started":
            return f"campaign {c.id} has not been started"
        if self.why == "paused":
            return f"campaign {c.id} is paused"
        return f"no worker has worked on campaign {c.id} for {self.idle_for or 0:.0f} s"


async def nobody_works_on(
    store: Store, found: CampaignStatus, idle: float, *, now: datetime | None = None
) -> Unattended | None:
    """Why waiting for the campaign is pointless, if it is; ``None`` while someone works (or will) on it.

    It is pointless when the campaign was never started, is paused, or no run
    has worked on it for ``idle`` seconds. A campaign outside its sending
    windows (or before its start time, as of ``now``, default the current
    time) is waiting for them, which is no reason to stop; nor is a stopped
    campaign, which finishes by itself.
    """
    c = found.campaign
    if c.state == "ready":
        return Unattended("not_started", c)
    if c.state != "running":
        return None
    if c.paused:
        return Unattended("paused", c)
    if c.schedule.waiting_message(now if now is not None else SYSTEM_CLOCK.now()) is not None:
        return None  # nobody works on it until its window opens: that is no reason to stop waiting
    quiet = await store.idle_for(c.id)
    if quiet is None or quiet < idle:
        return None
    return Unattended("idle", c, quiet)


@attrs.frozen
class CampaignWait:
    """How :func:`wait_for_campaign` ended."""

    #: The campaign as the last look saw it.
    status: CampaignStatus
    #: Why waiting stopped before it finished because nobody works on it; ``None`` otherwise.
    unattended: Unattended | None = None
    #: Whether waiting stopped at its ``timeout`` before it finished.
    timed_out: bool = False


async def wait_for_campaign(
    store: Store,
    campaign: int,
    *,
    lease: float,
    idle: float = DEFAULT_IDLE,
    interval: float = DEFAULT_INTERVAL,
    timeout: float | None = None,
    on_look: Callable[[CampaignStatus], None] | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> CampaignWait:
    """Look at the campaign every ``interval`` seconds until it is finished, or waiting is pointless.

    Each look is handed to ``on_look`` (to show progress). Between looks the
    campaign is kept up (:func:`campaign_upkeep`, with the workers' ``lease``):
    the batches of dead workers of a stopped campaign are settled, so that it
    can finish. Waiting stops when the campaign is finished
    (:attr:`CampaignStatus.finished`), after ``timeout`` seconds, or when
    nobody works on it (:func:`nobody_works_on` with ``idle``).
    """
    give_up = math.inf if timeout is None else clock.monotonic() + timeout
    while True:
        found = await store.status(campaign)
        if on_look is not None:
            on_look(found)
        if found.finished:
            return CampaignWait(found)
        if clock.monotonic() >= give_up:
            return CampaignWait(found, timed_out=True)
        await campaign_upkeep(store, found, lease=lease)
        unattended = await nobody_works_on(store, found, idle, now=clock.now())
        if unattended is not None:
            return CampaignWait(found, unattended)
        await clock.sleep(interval)
