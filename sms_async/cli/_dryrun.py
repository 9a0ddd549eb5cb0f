"""``send --dry-run``: the offline estimate of :func:`sms_async.campaign.estimate_offline`, as a table."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from sms_async import Template, UsageError
from sms_async.campaign import OfflineEstimate, estimate_offline
from sms_async.cli._errors import CliError, ExitCode
from sms_async.cli._io import RecipientSource
from sms_async.cli._summary import parts_text

__all__ = ["render_estimate", "run_dry_run"]


def run_dry_run(
    source: RecipientSource,
    text: str | Template,
    sender_id: str,
    region: str,
    console: Console,
    *,
    gateway: str,
    max_segments: int | None = None,
) -> ExitCode:
    """Count what a campaign would send and cost, show it; send nothing."""
    try:
        estimate = estimate_offline(
            source,
            text,
            sender_id=sender_id,
            region=region,
            gateway=gateway,
            max_segments=max_segments,
            option="--max-segments",
        )
    except UsageError as error:
        raise CliError(error.reason) from None
    render_estimate(estimate, source, console)
    return ExitCode.OK


def render_estimate(estimate: OfflineEstimate, source: RecipientSource, console: Console) -> None:
    """The dry run's table, a few invalid inputs, and the warning of a long personalised text."""
    tally, message = estimate.tally, estimate.message
    table = Table(title="Dry run: nothing was sent", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    described = source.name + (f" (column {source.column!r})" if source.column else "")
    table.add_row("input", described)
    table.add_row("inputs read", f"{estimate.inputs:,}")
    table.add_row("recipients", f"{estimate.recipients:,} distinct valid numbers")
    table.add_row("duplicates", f"{estimate.duplicates:,}")
    invalid = f"{estimate.invalid:,}" + (f" ({tally.empty:,} empty)" if tally.empty else "")
    table.add_row("invalid", invalid)
    if message is not None:
        encoding = message.encoding.value
        if message.non_gsm:
            shown = " ".join(repr(c) for c in message.non_gsm[:10])
            encoding += f" (forced by {shown}{' ...' if len(message.non_gsm) > 10 else ''})"
        table.add_row("encoding", encoding)
        unit = "septets" if not message.is_unicode else "UTF-16 units"
        table.add_row("segments", f"{message.segments} per recipient ({message.info.units} {unit})")
        table.add_row("cost", f"{estimate.cost:,} credits ({estimate.recipients:,} x {message.segments})")
    else:
        table.add_row("texts", "one per recipient, from the template and each row's columns")
        table.add_row(
            "encoding", ", ".join(f"{name} for {n:,}" for name, n in estimate.encodings.items()) or "-"
        )
        table.add_row("segments", f"{parts_text(tally)} (fewest to most)")
        table.add_row("cost", f"{estimate.cost:,} credits in all (each recipient's parts, summed)")
    console.print(table)
    for raw, reason in estimate.invalid_samples:
        console.print(f"  invalid: {raw!r}: {reason}", markup=False, highlight=False)
    # One text's warning was given before the input was read; a text per recipient's only now.
    if message is None and estimate.warning is not None:
        console.print(f"warning: {estimate.warning}", markup=False, highlight=False)
