"""The ``status`` command: delivery reports for a results file's ids, and the truth about unknown rows.

An ``unknown`` row has no message id (the answer that would have carried it
never arrived), and no gateway supported here can look a message up by
number, so delivery reports cannot settle it: ``status`` counts such rows,
says what can be done, and exits 1 while any remain.

Polling keeps one report per (message id, number) and the number of final
ones as it goes: each report costs the same however many came before it.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from sms_async._engine import BulkSender
from sms_async._models import DeliveryReport, DeliveryStatus, Outcome
from sms_async.campaign import NOT_SETTLED, CampaignError, ResultsScan, default_journal, scan_results
from sms_async.cli._config import build_driver
from sms_async.cli._errors import EXIT_CODES_HELP, CliError, ExitCode, run_async
from sms_async.cli._options import Account, consoles, gateway_options, guarded

__all__ = ["ReportBook", "status"]

# Seconds between updates of the polling line: redrawing it per report would cost more than the report.
_SPINNER_EVERY = 0.25


class ReportBook:
    """The latest report per (message id, number), and counts kept as reports arrive.

    A report naming its number replaces one for the same id that named none
    (a look-up that failed before the gateway said which numbers it covers).
    """

    def __init__(self) -> None:
        self.latest: dict[tuple[str, str | None], DeliveryReport] = {}
        #: Reports whose status will not change any more.
        self.final = 0

    def add(self, report: DeliveryReport) -> None:
        """Keep ``report`` as the latest for its (id, number)."""
        latest = self.latest
        if report.number is not None:
            self._drop(latest.pop((report.message_id, None), None))
        key = (report.message_id, report.number)
        self._drop(latest.get(key))
        latest[key] = report
        if report.is_final:
            self.final += 1

    def _drop(self, report: DeliveryReport | None) -> None:
        if report is not None and report.is_final:
            self.final -= 1

    def __len__(self) -> int:
        return len(self.latest)

    def reports(self) -> list[DeliveryReport]:
        """Every report kept, in the order they first arrived."""
        return list(self.latest.values())


async def poll_reports(
    bulk: BulkSender, ids: list[str], *, interval: float, timeout: float, console: Console | None = None
) -> ReportBook:
    """Poll until every report is final or ``timeout`` passes; a polling line on ``console`` if given."""
    book = ReportBook()
    if console is None:
        async for report in bulk.poll_delivery_reports(ids, interval=interval, timeout=timeout):
            book.add(report)
        return book
    shown = 0.0
    with console.status(f"polling {len(ids):,} message ids every {interval:g} s") as spinner:
        async for report in bulk.poll_delivery_reports(ids, interval=interval, timeout=timeout):
            book.add(report)
            now = time.monotonic()
            if now - shown >= _SPINNER_EVERY:
                shown = now
                spinner.update(f"polling: {book.final:,} of {len(book):,} reports final")
    return book


@click.command(epilog=EXIT_CODES_HELP, short_help="Delivery reports for the messages in a results file.")
@click.argument("results", required=False, type=click.Path(path_type=Path))
@click.option(
    "--id", "message_ids", multiple=True, metavar="ID", help="A message id to look up (repeatable)."
)
@click.option("--poll", is_flag=True, help="Ask again until every report is final or --timeout passes.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=3600.0,
    show_default=True,
    help="Seconds.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every report to this file (*.jsonl or *.csv).",
)
@gateway_options
@guarded
def status(
    results: Path | None,
    message_ids: tuple[str, ...],
    poll: bool,
    interval: float,
    timeout: float,
    output: Path | None,
    account: Account,
    concurrency: int,
) -> ExitCode:
    """Look up the delivery status of the message ids in RESULTS (a results file written by send) or given
    with --id, and count the rows whose fate is unknown. Exit status 0 when every message was delivered and
    no row is unknown, 1 otherwise.
    """  # noqa: D205
    console, err_console = consoles()
    scan = ResultsScan((), dict.fromkeys(Outcome, 0))
    if results is not None:
        try:
            scan = scan_results(results)
        except CampaignError as error:
            raise CliError(error.reason) from None
    ids = list(dict.fromkeys([*scan.message_ids, *message_ids]))
    unknown = scan.counts[Outcome.UNKNOWN]
    if not ids and not unknown and not scan.unsettled:
        raise CliError("no message ids: name a results file with accepted rows, or pass --id")
    if output is not None and output.suffix.lower() not in {".jsonl", ".ndjson", ".json", ".csv"}:
        raise CliError(f"cannot tell the format from {output.name!r}: name the file *.jsonl or *.csv")
    reports: list[DeliveryReport] = []
    if ids:
        settings = account.settings()
        driver = build_driver(settings)

        async def look_up() -> list[DeliveryReport]:
            async with BulkSender(driver, concurrency=concurrency, default_region=settings.region) as bulk:
                if not poll:
                    return await bulk.delivery_reports(ids)
                book = await poll_reports(bulk, ids, interval=interval, timeout=timeout, console=err_console)
                return book.reports()

        reports = run_async(look_up)
        _print_reports(console, ids, reports)
        if output is not None:
            _write_reports(output, reports)
            console.print(f"reports: {output}", markup=False)
        lookup_failed = sum(1 for r in reports if r.error)
        if lookup_failed:
            err_console.print(
                f"{lookup_failed:,} look-ups failed after retries (status unknown)", markup=False
            )
    for line in results_advice(results, scan) if results is not None else ():
        console.print(line, markup=False, highlight=False)
    all_delivered = bool(reports) and all(r.status is DeliveryStatus.DELIVERED for r in reports)
    settled = not unknown and not scan.unsettled
    return ExitCode.OK if all_delivered and settled else ExitCode.NOT_ALL_ACCEPTED


def results_advice(results: Path, scan: ResultsScan) -> list[str]:
    """What to do about a results file's unknown and unsettled rows, true to where the file came from.

    A file with its journal beside it was written by ``send``, which can send
    unknown rows again on request; any other (a campaign's export) cannot be
    resumed, and a stored campaign never sends an unknown batch again.
    """
    lines = []
    if scan.unsettled:
        lines.append(
            f"{scan.unsettled:,} rows are {NOT_SETTLED}: the campaign had not settled them when this file "
            "was exported, and it still sends them (or gives them up as unsent). Export it again once it is "
            "done: sms-async campaign status ID --wait, then sms-async campaign export ID --output FILE."
        )
    unknown = scan.counts[Outcome.UNKNOWN]
    if not unknown:
        return lines
    why = (
        f"{unknown:,} rows are unknown: the request for them may or may not have reached the gateway, "
        "and it issued no message id for them. Delivery reports are looked up by message id, and no "
        "gateway supported here can look a message up by number, so these cannot be reconciled here. "
        "Check the gateway's portal (its sent-messages report) for them; "
    )
    if default_journal(results).is_file():
        lines.append(
            why + "to send them again anyway, knowing that some may get the text twice, run the same send "
            "command with --resume --resend-unknown."
        )
    else:
        lines.append(
            why + "this file has no journal beside it (a campaign's export, or a moved journal), so it "
            "cannot be resumed, and a campaign never sends an unknown row again (sms-async campaign start "
            "sends only unsent ones). To send them anyway, knowing that some may get the text twice, "
            "put their numbers in a new campaign."
        )
    return lines


def _print_reports(console: Console, ids: list[str], reports: list[DeliveryReport]) -> None:
    counts = dict.fromkeys(DeliveryStatus, 0)
    for report in reports:
        counts[report.status] += 1
    table = Table(title=f"Delivery reports for {len(ids):,} message ids", title_justify="left")
    table.add_column("status")
    table.add_column("reports", justify="right")
    for state, count in counts.items():
        if count:
            table.add_row(state.value, f"{count:,}")
    console.print(table)
    if len(reports) <= 20:
        for report in reports:
            detail = f" ({report.error})" if report.error else ""
            number = report.number or "-"
            console.print(
                f"  {report.message_id}  {number}  {report.status.value}  {report.raw!r}{detail}",
                markup=False,
            )


def _write_reports(path: Path, reports: list[DeliveryReport]) -> None:
    columns = ("message_id", "number", "status", "raw", "error")
    try:
        with path.open("w", encoding="utf-8", newline="") as file:
            if path.suffix.lower() == ".csv":
                writer = csv.writer(file, lineterminator="\n")
                writer.writerow(columns)
                for r in reports:
                    writer.writerow((r.message_id, r.number or "", r.status.value, r.raw, r.error or ""))
            else:
                for r in reports:
                    record = {
                        "message_id": r.message_id,
                        "number": r.number,
                        "status": r.status.value,
                        "raw": r.raw,
                        "error": r.error,
                    }
                    file.write(json.dumps(record, ensure_ascii=False) + "\n")
    except OSError as error:
        raise CliError(f"cannot write {path}: {error.strerror}") from None
