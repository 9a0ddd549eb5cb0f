"""A campaign's shards run in this process until it is done, retried after a store failure as a task is.

The shard that gave up runs first on the retry, with the batches it named to
give back (``StoreUnavailableError.unwritten``), as the Celery task passes them on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio

from sms_async import Iton
from sms_async.cluster import CampaignStore, StoreUnavailableError, run_shard
from sms_async.testing import SimulatedGateway


async def keep_running(
    store: CampaignStore,
    campaign: int,
    gw: SimulatedGateway,
    gave_up: Callable[[StoreUnavailableError], object],
    *,
    retry: float,
    **shard_options: Any,
) -> None:
    """Run every shard of ``campaign`` through ``gw`` until it is done; ``gave_up`` hears of each failure."""
    driver = Iton(gw.username, gw.password, base_url=gw.iton_url)
    give_back: dict[int, tuple[tuple[int, str], ...]] = {}
    while True:
        try:
            found = await store.campaign(campaign)
            if found.state != "running":
                return
            for shard in sorted(range(found.shards), key=lambda shard: shard not in give_back):
                try:
                    await run_shard(
                        store,
                        campaign,
                        shard,
                        driver=driver,
                        give_back=give_back.get(shard, ()),
                        **shard_options,
                    )
                except StoreUnavailableError as error:
                    give_back[shard] = error.unwritten
                    raise
                give_back.pop(shard, None)
        except StoreUnavailableError as error:
            gave_up(error)
            await anyio.sleep(retry)
