"""What a network fault between the workers and PostgreSQL costs a running campaign, in seconds.

Run as ``python benchmarks/bench_faults.py MODE SECONDS [--patience P]``, e.g.
``python benchmarks/bench_faults.py blackhole 20`` (the defaults of a worker:
60 s of patience, a 10 s operation timeout, a 20 s lease, 5 s heartbeats, a
shard given up retried after 10 s). It needs PostgreSQL
(``SMS_ASYNC_TEST_DATABASE_URL``, default
``postgresql://postgres@127.0.0.1:5432/test``) and works in a schema of its
own, which it drops.

The shards run in this process against the simulated gateway, one after the
other, as a worker's task runs them: a shard that gives up (the store out of
reach past the patience) is run again after ``--retry`` seconds, with the
batches it is to give back. The store is reached through the loopback fault
proxy of the tests (``tests/cluster/fault_proxy.py``); ``MODE`` is
``blackhole`` (bytes dropped, sockets left open), ``stall`` (bytes held until
the heal) or ``reset`` (every connection, and each new one, reset). The fault
starts once ``--before`` numbers are accepted and lasts ``SECONDS``.

Printed: when the first shard gave up (seconds after the fault began, or
never), the numbers accepted during the fault (requests already claimed go
on), the seconds from the heal to the next number accepted, the whole
campaign's wall time (``blackhole 0`` gives it without a fault), and the
check that no number was sent twice and none was reported ``unknown``, and the
most numbers the gateway got in any one second (the account's rate holds).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "cluster"))

from fault_proxy import FaultProxy  # noqa: E402
from shard_runs import keep_running  # noqa: E402

from sms_async import Outcome  # noqa: E402
from sms_async.cluster import (  # noqa: E402
    CampaignSpec,
    CampaignStore,
    create_campaign,
)
from sms_async.testing import SimulatedGateway  # noqa: E402

DATABASE_URL = os.environ.get("SMS_ASYNC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


async def measure(options: argparse.Namespace) -> None:
    port = urlsplit(DATABASE_URL).port or 5432
    schema = f"sms_bench_faults_{uuid.uuid4().hex[:8]}"
    gave_up: list[float] = []
    async with CampaignStore(DATABASE_URL, schema=schema) as store:
        await store.install()
        try:
            spec = CampaignSpec("Hello", "ITONAB", rate=options.rate, shard_size=100)
            created = await create_campaign(store, spec, [f"+9198{n:08d}" for n in range(options.recipients)])
            await store.start(created.id)
            with FaultProxy(port) as proxy, SimulatedGateway() as gw:
                started = time.monotonic()
                async with (
                    CampaignStore(
                        proxy.url(DATABASE_URL, port), schema=schema, patience=options.patience
                    ) as faulty,
                    anyio.create_task_group() as tg,
                ):
                    tg.start_soon(
                        partial(
                            keep_running,
                            faulty,
                            created.id,
                            gw,
                            lambda _: gave_up.append(time.monotonic()),
                            retry=options.retry,
                            lease=options.lease,
                            heartbeat=options.heartbeat,
                        )
                    )
                    while gw.stats.accepted < options.before:  # noqa: ASYNC110 - counted in another thread
                        await anyio.sleep(0.05)
                    proxy.fault(options.mode)
                    faulted, at_fault = time.monotonic(), gw.stats.accepted
                    await anyio.sleep(options.seconds)
                    proxy.heal()
                    healed, before = time.monotonic(), gw.stats.accepted
                    while gw.stats.accepted == before:  # noqa: ASYNC110
                        await anyio.sleep(0.05)
                    resumed = time.monotonic()
                took = time.monotonic() - started
                stats = gw.stats
            status = await store.status(created.id)
        finally:
            await store.drop()
    first = f"{gave_up[0] - faulted:.1f} s after the fault began" if gave_up else "never"
    print(
        f"{options.mode} {options.seconds:g} s, patience {options.patience:g} s: "
        f"first shard given up: {first} ({len(gave_up)} in all); "
        f"accepted during the fault: {before - at_fault}; heal to sending again: {resumed - healed:.1f} s; "
        f"campaign wall time {took:.1f} s; "
        f"state {status.campaign.state}, accepted {status.outcomes[Outcome.ACCEPTED]}, "
        f"unknown {status.outcomes[Outcome.UNKNOWN]}, sent twice {len(stats.duplicate_numbers())}; "
        f"the most numbers in one second {stats.max_in_window(1.0)} at {options.rate:g} a second"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["blackhole", "stall", "reset"])
    parser.add_argument("seconds", type=float, help="how long the fault lasts")
    parser.add_argument("--patience", type=float, default=60.0, help="SMS_ASYNC_PATIENCE (default 60)")
    parser.add_argument(
        "--retry", type=float, default=10.0, help="seconds before a shard given up runs again"
    )
    parser.add_argument("--lease", type=float, default=20.0)
    parser.add_argument("--heartbeat", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=300.0, help="messages per second")
    parser.add_argument("--recipients", type=int, default=3000)
    parser.add_argument("--before", type=int, default=600, help="numbers accepted before the fault")
    anyio.run(measure, parser.parse_args())


if __name__ == "__main__":
    main()
