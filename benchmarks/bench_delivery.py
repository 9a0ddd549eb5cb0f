"""Delivery polling over many accepted numbers: requests and seconds per round, for ITON.

Run as ``python benchmarks/bench_delivery.py`` (``--numbers 1000000`` by
default; a few minutes on a busy 2-core machine). A simulated gateway runs in
this process on a test clock, with a delivery plan of 80% delivered at once,
15% after an hour and 5% never. For each ITON answer form (``text``: one id
per request of 100 numbers; ``json``: one id per number) the numbers are
sent, tracked in a :class:`MemoryDeliveryBook`, and polled by a
:class:`DeliveryTracker` (``report_share`` 0.1 of 32 slots: 3 look-ups in
flight) in rounds at 30 s, 2 h and 3 h of simulated time. Each round reports
the ids polled, the status requests the gateway saw (at most ceil(ids / 100)),
the wall-clock seconds and this process's CPU seconds, and the tally after it.

With ``--book sqlite`` (or ``postgresql``, at ``SMS_ASYNC_TEST_DATABASE_URL``)
the numbers are a stored campaign instead: created, sent by the shard runner
(which records each id for polling as its batch settles), and polled through
the store's delivery book (leases, one transaction per recorded chunk).

The gateway shares this process (and its GIL), so the seconds include the
simulator building each answer; the request counts do not depend on the machine.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anyio

from sms_async import BulkSender, Iton
from sms_async.campaign._delivery import DeliveryTracker, MemoryDeliveryBook
from sms_async.testing import DeliveryPlan, DeliveryRule, SimulatedGateway, TestClock

HOUR = 3600.0
PLAN = DeliveryPlan(
    [
        DeliveryRule("delivered", 0.80),
        DeliveryRule("delivered", 0.15, after=HOUR),
        DeliveryRule("never", 0.05),
    ]
)
ROUNDS = (30.0, 2 * HOUR, 3 * HOUR)


async def one_form(form: str, count: int, share: float, concurrency: int) -> list[str]:
    clock = TestClock()
    lines: list[str] = []
    numbers = [f"+9198{i:08d}" for i in range(count)]
    with SimulatedGateway(
        clock=clock,
        delivery=PLAN,
        iton_send_form=form,
        track_numbers=False,  # type: ignore[arg-type]
    ) as gw:
        driver = Iton(username=gw.username, password=gw.password, base_url=gw.iton_url)
        async with BulkSender(driver, concurrency=concurrency) as bulk:
            started = time.perf_counter()
            result = await bulk.send(numbers, "Delivery bench", sender_id="ITONAB")
            sent = time.perf_counter() - started
            if len(result.message_ids) != count:
                raise SystemExit(f"the gateway did not accept every number: {result!r}")
            book = MemoryDeliveryBook()
            book.add(result.message_ids, clock.now())
            ids = len(set(result.message_ids.values()))
            del result
            gc.collect()
            lines.append(
                f"{form}: {count:,} numbers accepted under {ids:,} ids in {sent:.1f} s; "
                f"polls {share:g} of {concurrency} slots"
            )
            tracker = DeliveryTracker(bulk, book, clock=clock, report_share=share)
            for at in ROUNDS:
                clock.advance(at - clock.monotonic())
                before = gw.stats.requests["iton.message_status"]
                wall, cpu = time.perf_counter(), time.process_time()
                done = await tracker.poll_due()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                requests = gw.stats.requests["iton.message_status"] - before
                assert requests == done.requests <= math.ceil(done.ids / 100), (requests, done)
                tally = book.tally()
                lines.append(
                    f"  round at {at / 60:>5.1f} min: {done.ids:>9,} ids  {requests:>6,} requests  "
                    f"{wall:>6.2f} s  cpu {cpu:>6.2f} s  "
                    f"delivered {tally.delivered:,} pending {tally.pending:,} (rate {tally.rate:.1%})"
                )
    return lines


async def one_stored(form: str, count: int, share: float, concurrency: int, kind: str) -> list[str]:
    from sms_async.campaign import SqliteStore  # noqa: PLC0415
    from sms_async.cluster import (  # noqa: PLC0415
        CampaignSpec,
        CampaignStore,
        create_campaign,
        poll_reports,
        run_shard,
    )

    clock = TestClock()
    lines: list[str] = []
    numbers = [f"+9198{i:08d}" for i in range(count)]
    with tempfile.TemporaryDirectory() as folder:
        store: Any = (
            SqliteStore(Path(folder) / "campaigns.db")
            if kind == "sqlite"
            else CampaignStore(
                os.environ.get("SMS_ASYNC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
                schema=f"bench_{uuid.uuid4().hex[:8]}",
            )
        )
        async with store:
            await store.install()
            try:
                with SimulatedGateway(
                    clock=clock,
                    delivery=PLAN,
                    iton_send_form=form,
                    track_numbers=False,  # type: ignore[arg-type]
                ) as gw:
                    driver = Iton(username=gw.username, password=gw.password, base_url=gw.iton_url)
                    started = time.perf_counter()
                    created = await create_campaign(
                        store,
                        CampaignSpec("Delivery bench", "ITONAB", report_share=share),
                        numbers,
                        clock=clock,
                    )
                    _, shards = await store.start(created.id)
                    for shard in shards:
                        await run_shard(
                            store,
                            created.id,
                            shard,
                            driver=driver,
                            concurrency=concurrency,
                            clock=clock,
                            budget=math.inf,
                        )
                    sent = time.perf_counter() - started
                    tally = await store.delivery_tally(created.id)
                    if tally.accepted != count:
                        raise SystemExit(f"the gateway did not accept every number: {tally!r}")
                    lines.append(
                        f"{form} ({kind} store): {count:,} numbers created, sent and tracked "
                        f"in {sent:.1f} s; "
                        f"polls {share:g} of {concurrency} slots"
                    )
                    for at in ROUNDS:
                        clock.advance(at - clock.monotonic())
                        before = gw.stats.requests["iton.message_status"]
                        wall, cpu = time.perf_counter(), time.process_time()
                        done = await poll_reports(
                            store, created.id, driver=driver, concurrency=concurrency, clock=clock
                        )
                        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                        requests = gw.stats.requests["iton.message_status"] - before
                        assert requests == done.requests <= math.ceil(done.ids / 100), (requests, done)
                        tally = done.tally
                        lines.append(
                            f"  round at {at / 60:>5.1f} min: {done.ids:>9,} ids  {requests:>6,} requests  "
                            f"{wall:>6.2f} s  cpu {cpu:>6.2f} s  "
                            f"delivered {tally.delivered:,} pending {tally.pending:,} (rate {tally.rate:.1%})"
                        )
            finally:
                if kind != "sqlite":
                    await store.drop()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--numbers", type=int, default=1_000_000, help="accepted numbers to track")
    parser.add_argument("--forms", default="text,json", help="ITON answer forms, comma-separated")
    parser.add_argument("--share", type=float, default=0.1, help="report_share")
    parser.add_argument("--concurrency", type=int, default=32, help="the sender's concurrency")
    parser.add_argument(
        "--book", choices=("memory", "sqlite", "postgresql"), default="memory", help="where states are kept"
    )
    args = parser.parse_args()
    python = sys.version.split()[0]
    print(f"delivery polling, ITON, {args.numbers:,} numbers (cpu {os.cpu_count()}, python {python})")
    for form in args.forms.split(","):
        if args.book == "memory":
            found = anyio.run(one_form, form, args.numbers, args.share, args.concurrency)
        else:
            found = anyio.run(one_stored, form, args.numbers, args.share, args.concurrency, args.book)
        for line in found:
            print(line, flush=True)


if __name__ == "__main__":
    main()
