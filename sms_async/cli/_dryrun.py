"""``send --dry-run``: what a campaign would send and cost, through the same batcher; nothing is sent."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.table import Table

from sms_async._batching import Batch, Batcher
from sms_async._message import Message, Template
from sms_async._models import Entry, Outcome
from sms_async.campaign import Tally
from sms_async.cli._campaign import PARTS_WARNING, make_normaliser
from sms_async.cli._errors import ExitCode
from sms_async.cli._io import RecipientSource
from sms_async.cli._summary import parts_text

__all__ = ["run_dry_run"]

_REPEATED = "the same number as an earlier input"


def _local_entries(batch: Batch) -> list[Entry]:
    """The rows of the inputs a batch settles without sending."""
    entries = []
    for local in batch.local:
        position = batch.first + local.offset
        if local.failure is None:
            entries.append(Entry(position, local.raw, local.e164, Outcome.DUPLICATE, "", _REPEATED))
        else:
            entries.append(Entry(position, local.raw, "", local.failure.outcome, "", local.failure.reason))
    return entries


def run_dry_run(
    source: RecipientSource,
    text: Message | Template,
    sender_id: str,
    region: str,
    console: Console,
    *,
    max_batch: int,
    max_segments: int | None = None,
) -> ExitCode:
    """Count what a campaign would send and cost; send nothing.

    Reads the whole input once, through the same batcher as a send; its
    counts come from the one tally a send's summary uses.
    """
    message = text if isinstance(text, Message) else None
    template = text if isinstance(text, Template) else None
    batcher = Batcher(
        make_normaliser(region),
        max_batch,
        message=message,
        sender_id=sender_id,
        max_segments=max_segments,
        template=template,
    )
    tally = Tally()
    recipients = cost = 0
    encodings: Counter[str] = Counter()
    samples: list[tuple[str, str]] = []

    def count(batch: Batch) -> None:
        nonlocal recipients, cost
        entries = _local_entries(batch)
        tally.count(entries)
        for entry in entries:
            if entry.outcome is Outcome.INVALID and len(samples) < 5:
                samples.append((entry.input, entry.reason))
        if batch.numbers and batch.message is not None:
            parts = batch.message.segments
            recipients += len(batch.numbers)
            cost += parts * len(batch.numbers)
            tally.note_parts(parts, parts)
            encodings[batch.message.encoding.value] += len(batch.numbers)

    for chunk in source.chunks():
        for batch in batcher.feed(chunk):
            count(batch)
    for batch in batcher.finish():
        count(batch)
    table = Table(title="Dry run: nothing was sent", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    described = source.name + (f" (column {source.column!r})" if source.column else "")
    table.add_row("input", described)
    table.add_row("inputs read", f"{batcher.read:,}")
    table.add_row("recipients", f"{recipients:,} distinct valid numbers")
    table.add_row("duplicates", f"{tally[Outcome.DUPLICATE]:,}")
    invalid = f"{tally[Outcome.INVALID]:,}" + (f" ({tally.empty:,} empty)" if tally.empty else "")
    table.add_row("invalid", invalid)
    if message is not None:
        encoding = message.encoding.value
        if message.non_gsm:
            shown = " ".join(repr(c) for c in message.non_gsm[:10])
            encoding += f" (forced by {shown}{' ...' if len(message.non_gsm) > 10 else ''})"
        table.add_row("encoding", encoding)
        unit = "septets" if not message.is_unicode else "UTF-16 units"
        table.add_row("segments", f"{message.segments} per recipient ({message.info.units} {unit})")
        table.add_row("cost", f"{cost:,} credits ({recipients:,} x {message.segments})")
    else:
        table.add_row("texts", "one per recipient, from the template and each row's columns")
        table.add_row(
            "encoding", ", ".join(f"{name} for {n:,}" for name, n in encodings.most_common()) or "-"
        )
        table.add_row("segments", f"{parts_text(tally)} (fewest to most)")
        table.add_row("cost", f"{cost:,} credits in all (each recipient's parts, summed)")
    console.print(table)
    for raw, reason in samples:
        console.print(f"  invalid: {raw!r}: {reason}", markup=False, highlight=False)
    if tally.most_parts > PARTS_WARNING and max_segments is None:
        console.print(
            f"warning: a text needs {tally.most_parts} SMS parts; each part is charged. "
            "Pass --max-segments to set the most you accept.",
            markup=False,
            highlight=False,
        )
    return ExitCode.OK
