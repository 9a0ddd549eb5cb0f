"""``sms-async status --poll`` over many message ids: end to end, and its bookkeeping side by side.

Run as ``python benchmarks/bench_status.py`` (``--ids 100000`` by default;
about a minute). A simulated gateway runs in this process (ITON, answering
sends with one id per number, so 100,000 numbers give 100,000 ids; reports
final after 0.5 to 1 s); a campaign sends to the numbers and writes its
results file; then:

* **end to end**: ``sms-async status RESULTS --poll --interval 0.5`` runs in
  this process (click's runner) until every report is final; reported in
  seconds, with the reports and polling rounds it took;
* **bookkeeping, side by side**: the reports the poll yielded are replayed
  through the old bookkeeping (after each report, every report kept so far
  is counted again to say how many are final: quadratic) and through
  :class:`ReportBook` (linear), on the same reports, in one process, at a few
  sizes; reported in seconds and as the ratio old / new. The old way is
  replayed only up to ``--old-max`` reports: it grows with the square.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anyio
from click.testing import CliRunner

from sms_async import BulkSender, DeliveryReport, Iton, Outcome
from sms_async.campaign import run_campaign, scan_results
from sms_async.cli import cli
from sms_async.cli._status import ReportBook
from sms_async.testing import SimulatedGateway


def old_bookkeeping(reports: list[DeliveryReport]) -> int:
    """What ``status --poll`` did before: recount every kept report after each one (quadratic)."""
    latest: dict[tuple[str, str | None], DeliveryReport] = {}
    final = 0
    for report in reports:
        if report.number is not None:
            latest.pop((report.message_id, None), None)
        latest[report.message_id, report.number] = report
        final = sum(1 for r in latest.values() if r.is_final)
    return final


def new_bookkeeping(reports: list[DeliveryReport]) -> int:
    """What it does now: one :class:`ReportBook`, each report costing the same."""
    book = ReportBook()
    for report in reports:
        book.add(report)
    return book.final


def timed(fn, reports: list[DeliveryReport]) -> tuple[float, int]:
    started = time.perf_counter()
    final = fn(reports)
    return time.perf_counter() - started, final


async def send_campaign(gw: SimulatedGateway, count: int, results: Path) -> None:
    driver = Iton(username=gw.username, password=gw.password, base_url=gw.iton_url)
    numbers = [f"+9198{i:08d}" for i in range(count)]
    async with BulkSender(driver, concurrency=64, default_region="IN") as bulk:
        report = await run_campaign(bulk, numbers, "Status bench", sender_id="ITONAB", results=results)
    if report.totals[Outcome.ACCEPTED] != count:
        raise SystemExit(f"the campaign did not accept every number: {report.totals.counts}")


async def collect_reports(gw: SimulatedGateway, ids: list[str]) -> list[DeliveryReport]:
    driver = Iton(username=gw.username, password=gw.password, base_url=gw.iton_url)
    async with BulkSender(driver, concurrency=32, default_region="IN") as bulk:
        return [report async for report in bulk.poll_delivery_reports(ids, interval=0.5, timeout=120)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ids", type=int, default=100_000, help="message ids (numbers sent)")
    parser.add_argument("--old-max", type=int, default=20_000, help="largest replay of the old bookkeeping")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sms-async-bench-status-") as scratch:
        results = Path(scratch) / "results.jsonl"
        with SimulatedGateway(iton_send_form="json", status_delays=(0.5, 1.0)) as gw:
            started = time.perf_counter()
            anyio.run(send_campaign, gw, args.ids, results)
            print(f"sent {args.ids:,} numbers in {time.perf_counter() - started:.1f} s")
            env = {
                "SMS_ASYNC_USERNAME": gw.username,
                "SMS_ASYNC_PASSWORD": gw.password,
                "SMS_ASYNC_BASE_URL": gw.iton_url,
                "SMS_ASYNC_CONFIG": None,
                "HOME": scratch,
                "XDG_CONFIG_HOME": scratch,
            }
            before = gw.stats.requests["iton.message_status"]
            started = time.perf_counter()
            result = CliRunner().invoke(
                cli, ["status", str(results), "--poll", "--interval", "0.5", "--timeout", "300"], env=env
            )
            elapsed = time.perf_counter() - started
            requests = gw.stats.requests["iton.message_status"] - before
            if result.exit_code != 0:
                raise SystemExit(f"status failed ({result.exit_code}): {result.output[-2000:]}")
            print(
                f"end to end: status --poll over {args.ids:,} ids: {elapsed:.1f} s "
                f"({requests:,} status requests of up to 100 ids), every report final"
            )
            ids = list(scan_results(results).message_ids)
            reports = anyio.run(collect_reports, gw, ids)
    print(f"replaying the {len(reports):,} reports one poll yielded (cpu {os.cpu_count()})")
    print(f"{'reports':>9}  {'old (s)':>9}  {'new (s)':>9}  {'old / new':>9}")
    sizes = sorted({size for size in (2_500, 5_000, 10_000, 20_000, len(reports)) if size <= len(reports)})
    for size in sizes:
        part = reports[:size]
        new_time, new_final = timed(new_bookkeeping, part)
        if size <= args.old_max:
            old_time, old_final = timed(old_bookkeeping, part)
            assert old_final == new_final
            print(f"{size:>9,}  {old_time:>9.3f}  {new_time:>9.4f}  {old_time / new_time:>9,.0f}")
        else:
            print(f"{size:>9,}  {'-':>9}  {new_time:>9.4f}  {'-':>9}")


if __name__ == "__main__":
    main()
