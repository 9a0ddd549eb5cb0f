"""Campaigns across machines: a PostgreSQL campaign store, shards as Celery tasks, one rate per account.

``pip install 'sms_async[cluster]'``. A campaign is loaded once into the store
(:func:`create_campaign`: the same batches as a single-process ``send`` of the
same input), then its shards (a few hundred batches each) run on any number
of workers (:func:`run_shard`, or the Celery task of
:mod:`sms_async.cluster.celery`)::

    async with CampaignStore(url) as store:
        campaign = await create_campaign(store, CampaignSpec("Hello", "ITONAB", rate=2000), numbers)
        started = await start_campaign(store, campaign.id)
    # sms_async.cluster.celery: one task per shard, and the delivery polling chain where one is needed
    polling = started.generation
    enqueue(started.campaign, started.shards, reports=polling is not None, generation=polling)

Following it: :func:`wait_for_campaign` looks at it until it is finished,
keeping it up meanwhile (:func:`campaign_upkeep`), and stops early when
nobody works on it (:func:`nobody_works_on`).

The store is the campaign's journal (the same protocol as the single-machine
one): a batch goes pending -> sending in one atomic statement only one run
can win, committed before its request is written, so no batch is ever sent
twice whatever the queue does; the batches of a worker that dies while
sending are reported ``unknown`` once its heartbeat is ``lease`` seconds
old, and never sent again. Every worker of one gateway account shares one
rate (:class:`StoreMeter`) and one 429 pause (:class:`StorePause`). An abort
(bad credentials, no credit) stops the whole campaign; the rest is unsent.
The store holds no credential: workers take theirs from their own
environment (:func:`driver_from_environment`).
"""

from typing import TYPE_CHECKING, Any

from sms_async.campaign import CampaignError, CampaignStatus, StoredCampaign, StoreUnavailableError
from sms_async.cluster._load import DEFAULT_QUEUE, DEFAULT_SHARD_SIZE, CampaignSpec, create_campaign
from sms_async.cluster._rate import StoreMeter, StorePause
from sms_async.cluster._reports import ReportsPolled, poll_reports
from sms_async.cluster._runner import ShardReport, run_shard
from sms_async.cluster._settings import (
    ClusterSettings,
    account_key,
    check_account,
    driver_from_environment,
    open_store,
)
from sms_async.cluster._upkeep import (
    CampaignStart,
    CampaignWait,
    Unattended,
    campaign_upkeep,
    nobody_works_on,
    start_campaign,
    wait_for_campaign,
)

if TYPE_CHECKING:
    from sms_async.cluster._store import CampaignStore


def __getattr__(name: str) -> Any:
    # The PostgreSQL store needs psycopg (the cluster extra); everything else here
    # also runs a campaign on the SQLite store, so it is imported only when named.
    if name == "CampaignStore":
        try:
            from sms_async.cluster._store import CampaignStore  # noqa: PLC0415
        except ImportError as error:
            raise ImportError(
                "a PostgreSQL campaign store needs psycopg: pip install 'sms_async[cluster]'"
            ) from error
        return CampaignStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_QUEUE",
    "DEFAULT_SHARD_SIZE",
    "CampaignError",
    "CampaignSpec",
    "CampaignStart",
    "CampaignStatus",
    "CampaignStore",
    "CampaignWait",
    "ClusterSettings",
    "ReportsPolled",
    "ShardReport",
    "StoreMeter",
    "StorePause",
    "StoreUnavailableError",
    "StoredCampaign",
    "Unattended",
    "account_key",
    "campaign_upkeep",
    "check_account",
    "create_campaign",
    "driver_from_environment",
    "nobody_works_on",
    "open_store",
    "poll_reports",
    "run_shard",
    "start_campaign",
    "wait_for_campaign",
]
