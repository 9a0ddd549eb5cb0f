"""A stored campaign, how it stands, and the Store protocol every campaign store implements.

Two stores implement :class:`Store`: PostgreSQL (:class:`sms_async.cluster.CampaignStore`,
for many machines) and SQLite (:class:`SqliteStore`, for one machine, no
service needed). The shard runner, the loader and the command line talk to a
store through this protocol only; what differs between the stores is SQL and
locking, never a rule.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any, Final, Protocol

import attrs

from sms_async._models import Entry, Outcome
from sms_async.campaign._delivery import DeliveryBook, DeliveryTally
from sms_async.campaign._results import Unsettled
from sms_async.campaign._windows import Schedule

__all__ = [
    "BATCH_STATES",
    "STOPPED",
    "CampaignStatus",
    "Loading",
    "Store",
    "StoredCampaign",
    "given_up_counts",
    "settled_counts",
    "status_from_totals",
]

#: Campaign states in which nothing more is sent.
STOPPED: Final = ("done", "cancelled", "aborted")
#: Every batch of a campaign, as a range of indexes.
EVERY_BATCH: Final = (0, 2**31 - 1)
#: Batches per state, in the order a store's totals give them (``unsent``: pending, settled as never sent).
BATCH_STATES: Final = ("pending", "unsent", "sending", "sent", "rejected", "unknown")
# Inputs settled when the campaign was loaded (invalid, repeated): counted with their batch, whatever.
_LOCAL: Final = frozenset({Outcome.INVALID, Outcome.DUPLICATE})


def settled_counts(param: str, prefix: str = "") -> str:
    """SQL assigning a settled batch's counts: the run's own (``param`` names each), plus the loaded ones.

    ``param`` is the placeholder pattern with ``{}`` for the outcome's name
    (``%({})s`` or ``:{}``); ``prefix`` qualifies the batch's columns.
    """
    return ", ".join(
        f"{o.value} = {param.format(o.value)} + {prefix}local_{o.value}"
        if o in _LOCAL
        else f"{o.value} = {param.format(o.value)}"
        for o in Outcome
    )


def given_up_counts(prefix: str = "") -> str:
    """SQL zeroing a given-up batch's counts but the loaded ones (unsent, unknown, skipped set apart)."""
    return ", ".join(
        f"{o.value} = {prefix}local_{o.value}" if o in _LOCAL else f"{o.value} = 0"
        for o in Outcome
        if o not in {Outcome.UNSENT, Outcome.UNKNOWN, Outcome.SKIPPED}
    )


def status_from_totals(found: StoredCampaign, values: Sequence[int]) -> CampaignStatus:
    """How a campaign stands, from a store's totals: a count per outcome, per batch state, then
    credits, fewest and most parts, requests and retries.
    """  # noqa: D205
    outcomes = dict(zip(Outcome, values[: len(Outcome)], strict=True))
    states = values[len(Outcome) : len(Outcome) + len(BATCH_STATES)]
    paid, fewest, most, requests, retries = values[-5:]
    return CampaignStatus(
        found, outcomes, dict(zip(BATCH_STATES, states, strict=True)), paid, fewest, most, requests, retries
    )


@attrs.frozen
class StoredCampaign:
    """One campaign as the store keeps it (no credential: workers bring their own)."""

    id: int
    state: str
    gateway: str
    region: str
    sender_id: str
    #: The one text, or with ``personal`` the template each recipient's text was made from.
    text: str
    #: Whether each recipient has a text of their own (kept with their batch).
    personal: bool
    #: Extra request parameters of every send (such as India's DLT ids); never a credential.
    params: dict[str, str]
    #: The input's other columns kept with each row, by name.
    columns: list[str]
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
    #: Its sending windows (``"09:00-21:00"``, several joined by commas), their IANA zone, and its
    #: start time in ISO 8601; None for none (see :meth:`schedule`).
    windows: str | None = None
    timezone: str | None = None
    start_at: str | None = None
    #: The share of the account's rate and concurrency that delivery polls may take.
    report_share: float = 0.1
    #: Whether it is paused (no batch is claimed until it is resumed).
    paused: bool = False

    @property
    def schedule(self) -> Schedule:
        """When it may claim a batch: its windows and start time."""
        return Schedule.restore(self.windows, self.timezone, self.start_at)

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

    campaign: StoredCampaign
    #: Inputs per outcome so far (inputs not yet settled are in none).
    outcomes: dict[Outcome, int]
    #: Batches per state: pending, unsent (settled, every number unsent), sending, sent, rejected, unknown.
    batches: dict[str, int]
    #: Parts paid for (each accepted number's parts), and the fewest and most parts of a text.
    credits: int
    fewest_parts: int
    most_parts: int
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


class Loading(Protocol):
    """One campaign being loaded, inside a store's transaction."""

    #: The new campaign's id.
    campaign: int

    async def write(self, inputs: Sequence[tuple[Any, ...]], batches: Sequence[tuple[Any, ...]]) -> None:
        """Store rows of ``inputs`` and ``batches`` (in their tables' loading order of columns)."""

    async def loaded(self, inputs: int, recipients: int, batches: int) -> None:
        """Mark the campaign loaded (ready to start) with what it holds."""


class Store(Protocol):
    """A campaign store: where campaigns are loaded, claimed batch by batch, settled, followed and exported.

    Every method is safe to call from many runs at once (and, for a shared
    store, from many machines): a batch is claimed by one atomic step that
    only a pending batch of a running campaign passes.
    """

    schema: str

    async def __aenter__(self) -> Any:
        """Open the store."""

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the store."""

    async def probe(self) -> None:
        """Reach the store now; StoreUnavailableError (a StorageError) saying why not."""

    async def install(self) -> None:
        """Create the store's tables where they are missing."""

    def loading(self, params: dict[str, Any]) -> contextlib.AbstractAsyncContextManager[Loading]:
        """A new campaign of ``params``, loaded in one transaction."""

    async def campaign(self, campaign: int) -> StoredCampaign:
        """The campaign; CampaignError if there is none."""

    async def start(self, campaign: int) -> tuple[StoredCampaign, list[int]]:
        """Mark it running; the shards with work left."""

    async def stop(self, campaign: int, state: str, reason: str) -> bool:
        """Cancel or abort it: batches nobody holds become unsent."""

    async def finish(self, campaign: int) -> bool:
        """Mark a running campaign done if nothing is left."""

    async def reap(self, campaign: int, lease: float, batches: tuple[int, int] = EVERY_BATCH) -> int:
        """Batches of runs that stopped heartbeating become unknown."""

    async def idle_for(self, campaign: int) -> float | None:
        """Seconds since anyone worked on it."""

    async def status(self, campaign: int) -> CampaignStatus:
        """Inputs per outcome, batches per state, parts and credits."""

    def export_rows(self, campaign: int) -> AsyncIterator[tuple[Entry | Unsettled, list[str]]]:
        """Every input's row in input order, with its kept columns."""

    async def claim(self, campaign: int, idx: int, runner: str) -> bool:
        """Pending -> sending for ``runner``, durably."""

    async def release(self, campaign: int, idx: int, runner: str) -> None:
        """Sending -> pending: the last try never reached the gateway."""

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
        accepted_at: dt.datetime | None = None,
    ) -> bool:
        """A batch's final state, counts and rows; numbers with a message id become pending delivery.

        ``accepted_at`` (default: now) dates their acceptance, from which their polls are scheduled.
        """

    #: Seconds the store tries an operation again before it is taken to be out of reach.
    patience: float

    @property
    def operation_timeout(self) -> float:
        """Seconds one try of one operation may take before it counts as lost."""

    async def heartbeat(self, runner: str, campaign: int, *, patience: float) -> str:
        """Runner ``runner`` is alive: the campaign's state (``"paused"`` if paused, ``"gone"`` if none).

        Tried again for ``patience`` seconds where the store is across a network.
        """

    async def fetchone(self, name: str, **params: Any) -> tuple[Any, ...] | None:
        """The first row of the store's statement ``name`` (runs, heartbeats, meters)."""

    async def fetchall(self, name: str, **params: Any) -> list[tuple[Any, ...]]:
        """Every row of the store's statement ``name``."""

    async def execute(self, name: str, **params: Any) -> int:
        """Run the store's statement ``name``; the rows it touched."""

    # -- delivery, schedule, pause ----------------------------------------------------------------

    def delivery_book(self, campaign: int, *, lease: float = 60.0) -> DeliveryBook:
        """The campaign's message ids as a :class:`~sms_async.campaign.DeliveryBook`.

        ``due`` leases the ids it hands out for ``lease`` seconds (of the time
        it is given) to this book alone, so that two pollers never poll one
        id at once; ``record`` clears the lease. Several books may poll one
        campaign at once.
        """

    async def delivery_tally(self, campaign: int) -> DeliveryTally:
        """Accepted numbers by delivery state."""

    def export_deliveries(
        self, campaign: int
    ) -> AsyncIterator[tuple[Entry | Unsettled, list[str], str, str]]:
        """As :meth:`export_rows`, with each row's delivery state and delivered_at (ISO 8601), or ``""``."""

    async def schedule(self, campaign: int) -> Schedule:
        """The campaign's sending windows and start time."""

    async def set_paused(self, campaign: int, paused: bool) -> bool:
        """Pause (no batch is claimed) or resume the campaign; whether that changed anything."""
