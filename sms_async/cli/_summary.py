"""What ``send`` prints at the end: a table and what to do next, or one JSON object (``--json``).

Every figure comes from the campaign's one tally (:class:`~sms_async.campaign.Tally`).
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sms_async._models import Outcome
from sms_async._redact import redact
from sms_async.campaign import OUTCOMES, CampaignReport, Tally
from sms_async.cli._campaign import PARTS_WARNING, SendOutcome

__all__ = ["describe_aborted", "parts_text", "print_send_summary", "send_summary_json"]

# Outcomes whose reasons the summary shows: why inputs were not accepted.
_EXPLAINED = (Outcome.REJECTED, Outcome.UNKNOWN, Outcome.UNSENT, Outcome.INVALID)


def describe_aborted(report: CampaignReport) -> str | None:
    """What stopped the run early, in one redacted line."""
    if report.aborted is None:
        return None
    return f"{type(report.aborted).__name__}: {redact(report.aborted.reason)}"


def parts_text(tally: Tally) -> str:
    """The parts per text, as a range when texts differ."""
    fewest, most = tally.fewest_parts, tally.most_parts
    if not most:
        return "none sent"
    return f"{most} per text" if fewest == most else f"{fewest} to {most} per text"


def print_send_summary(
    console: Console, outcome: SendOutcome, err_console: Console, *, max_segments: int | None = None
) -> None:
    """The table printed at the end of ``send``, and what to do next."""
    report = outcome.report
    totals, this_run = report.totals, report.this_run
    title = f"Campaign results: {escape(report.results.name)}" + (
        f" (resumed, run {report.run})" if report.resumed else ""
    )
    table = Table(title=title, title_justify="left")
    table.add_column("outcome")
    table.add_column("inputs", justify="right")
    if report.resumed:
        table.add_column("this run", justify="right")
    for kind in OUTCOMES:
        cells = [kind.value, f"{totals[kind]:,}"]
        if report.resumed:
            cells.append(f"{this_run[kind]:,}")
        table.add_row(*cells)
    footer = ["total", f"{totals.total:,}"]
    if report.resumed:
        footer.append(f"{this_run.total:,}")
    table.add_section()
    table.add_row(*footer, style="bold")
    console.print(table)
    say = _printer(console)
    if totals.empty:
        say(f"{totals.empty:,} of the {totals[Outcome.INVALID]:,} invalid inputs were empty")
    say(
        f"parts: {parts_text(totals)}; credits spent: {totals.credits:,} "
        "(the parts of each accepted number's text)"
    )
    say(
        f"this run: {report.batches_sent:,} batches sent"
        + (
            f", {report.batches_skipped:,} skipped (settled by an earlier run)"
            if report.batches_skipped
            else ""
        )
        + f", {report.requests:,} requests, {report.retries:,} retries, {report.elapsed:.1f} s,"
        f" {report.rate:,.0f} recipients/s"
    )
    for kind in _EXPLAINED:
        for reason, count in this_run.top_reasons(kind):
            say(f"  {kind.value} {count:,}: {redact(reason)}")
    say(f"results: {report.results}")
    say(f"journal: {report.journal}")
    for line in _advice(outcome, max_segments):
        say(line)
    for line in _problems(outcome):
        err_console.print(
            line, style="red" if not outcome.interrupted else "yellow", markup=False, highlight=False
        )


def _printer(console: Console) -> Any:
    def say(text: str) -> None:
        console.print(text, markup=False, highlight=False)

    return say


def _problems(outcome: SendOutcome) -> list[str]:
    report = outcome.report
    lines = []
    if report.problem is not None:
        lines.append(f"Error: {redact(report.problem.reason)}")
    aborted = describe_aborted(report)
    if aborted is not None:
        lines.append(f"Stopped early: {aborted}")
    if outcome.interrupted:
        lines.append("Interrupted: run the same command with --resume to continue.")
    return lines


def _advice(outcome: SendOutcome, max_segments: int | None) -> list[str]:
    """What to do next, for each kind of input that did not end as asked."""
    totals = outcome.report.totals
    lines = []
    if totals[Outcome.UNKNOWN]:
        lines.append(
            f"{totals[Outcome.UNKNOWN]:,} unknown: the gateway may or may not have sent them, and --resume "
            "does not send them again. They have no message id, so delivery reports cannot find them: "
            "check the gateway's portal, or send them again knowingly (some may get the text twice) with "
            f"--resume --resend-unknown. sms-async status {outcome.report.results} counts them."
        )
    if totals[Outcome.UNSENT]:
        lines.append(
            f"{totals[Outcome.UNSENT]:,} unsent: never sent; run the same command with --resume to send them."
        )
    if totals[Outcome.REJECTED]:
        lines.append(
            f"{totals[Outcome.REJECTED]:,} rejected by the gateway; --resume leaves them. If the cause is "
            "fixed (the address, a parameter), run the same command with --resume --resend-rejected."
        )
    if totals.most_parts > PARTS_WARNING and max_segments is None:
        lines.append(
            f"warning: a text needed {totals.most_parts} SMS parts; each part is charged. "
            "Pass --max-segments to set the most you accept."
        )
    return lines


def send_summary_json(outcome: SendOutcome) -> str:
    """The summary as one JSON object (``--json``): for scripts, on standard output."""
    report = outcome.report
    reasons = [
        {"outcome": kind.value, "reason": redact(reason), "inputs": count}
        for kind in _EXPLAINED
        for reason, count in report.this_run.top_reasons(kind, limit=10)
    ]
    summary = {
        "exit_code": int(outcome.exit_code),
        "results": str(report.results),
        "journal": str(report.journal),
        "run": report.run,
        "resumed": report.resumed,
        "totals": report.totals.as_dict(),
        "this_run": report.this_run.as_dict(),
        "reasons": reasons,
        "requests": report.requests,
        "retries": report.retries,
        "batches_sent": report.batches_sent,
        "batches_skipped": report.batches_skipped,
        "elapsed": round(report.elapsed, 3),
        "aborted": describe_aborted(report),
        "problem": redact(report.problem.reason) if report.problem is not None else None,
        "interrupted": outcome.interrupted,
    }
    return json.dumps(summary, ensure_ascii=False)
