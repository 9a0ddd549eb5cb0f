"""``send``: one campaign from an input file to a results file, through the journal.

The command line has no business logic of its own: recipients are streamed
into :meth:`BulkSender.stream`, and :class:`CampaignJournal` writes each
batch's rows and state as the engine settles it. This module wires them
together, shows progress, handles Ctrl+C and works out the exit status.
"""

from __future__ import annotations

import contextlib
import hashlib
import signal
import time
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import IO, cast

import anyio
import anyio.lowlevel
import attrs
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from sms_async._batching import Batch, Batcher
from sms_async._engine import BulkSender
from sms_async._exceptions import ConfigurationError, SmsError, UsageError
from sms_async._message import Message
from sms_async._models import BatchResult, Outcome
from sms_async._phone import PhoneNormaliser
from sms_async._redact import redact
from sms_async._retry import RetryPolicy
from sms_async.cli._config import GatewaySettings, build_driver
from sms_async.cli._errors import CliError, ExitCode, run_async
from sms_async.cli._io import InputFormat, RecipientSource, ResultEncoder, result_format_for
from sms_async.cli._journal import OUTCOMES, Campaign, CampaignJournal
from sms_async.providers import Driver

__all__ = [
    "SendOptions",
    "SendReport",
    "make_message",
    "make_normaliser",
    "print_send_summary",
    "run_dry_run",
    "run_send",
]

#: Outcomes that do not make a run fail: the input was handled as asked.
_FINE: frozenset[Outcome] = frozenset({Outcome.ACCEPTED, Outcome.DUPLICATE, Outcome.SKIPPED})

_INTERRUPTED = "interrupted"

# Outcome labels short enough for a progress line on an 80-column terminal.
_SHORT: dict[Outcome, str] = {
    Outcome.ACCEPTED: "ok",
    Outcome.DUPLICATE: "dup",
    Outcome.INVALID: "invalid",
    Outcome.SKIPPED: "skipped",
    Outcome.REJECTED: "rejected",
    Outcome.UNKNOWN: "unknown",
    Outcome.UNSENT: "unsent",
}


@attrs.frozen
class SendOptions:
    """Everything ``send`` needs, from the command line or from the demo."""

    recipients: str
    text: str
    sender_id: str
    settings: GatewaySettings
    output: Path
    journal: Path | None = None
    column: str | None = None
    input_format: InputFormat = "auto"
    resume: bool = False
    resend_unknown: bool = False
    overwrite: bool = False
    concurrency: int = 32
    rate: float | None = None
    skip_dnd: bool = False
    max_segments: int | None = None
    progress: bool = True
    stdin: IO[bytes] | None = None
    retry: RetryPolicy | None = None


@attrs.define
class SendReport:
    """What a ``send`` run did, and the campaign as its results file now stands."""

    exit_code: ExitCode
    totals: dict[Outcome, int]
    this_run: dict[Outcome, int]
    requests: int
    retries: int
    elapsed: float
    batches_sent: int
    batches_skipped: int
    resumed: bool
    run: int
    output: Path
    journal: Path
    aborted: str | None = None
    interrupted: bool = False
    problem: str | None = None

    @property
    def total(self) -> int:
        """Inputs accounted for in the results file."""
        return sum(self.totals.values())

    @property
    def rate(self) -> float:
        """Inputs settled per second by this run."""
        done = sum(self.this_run.values())
        return done / self.elapsed if self.elapsed > 0 else 0.0


def make_message(text: str, sender_id: str, max_segments: int | None) -> Message:
    """Validate the text and sender id up front (exit status 2 when they are wrong)."""
    try:
        return Message.create(text, sender_id, max_segments=max_segments)
    except UsageError as error:
        raise CliError(redact(error.reason)) from None


def make_normaliser(region: str) -> PhoneNormaliser:
    """A normaliser for ``region``; an unknown region is a usage error."""
    try:
        return PhoneNormaliser(region)
    except ConfigurationError as error:
        raise CliError(f"--region {region!r}: {error.reason}") from None


# -- dry run --------------------------------------------------------------------


def run_dry_run(source: RecipientSource, message: Message, region: str, console: Console) -> ExitCode:
    """Count what a campaign would send and cost; send nothing.

    Reads the whole input once, through the same batcher as a send.
    """
    batcher = Batcher(make_normaliser(region), 100, message=message, sender_id=message.sender_id)
    inputs = duplicates = invalid = 0
    samples: list[tuple[str, str]] = []

    def tally(batch: Batch) -> None:
        nonlocal inputs, duplicates, invalid
        inputs += batch.size
        duplicates += sum(batch.duplicates.values())
        invalid += len(batch.failed)
        for raw, failure in batch.failed.items():
            if len(samples) < 5:
                samples.append((raw, failure.reason))

    for chunk in source.chunks():
        for batch in batcher.feed(chunk):
            tally(batch)
    for batch in batcher.finish():
        tally(batch)
    if source.error is not None:
        raise CliError(source.error)
    recipients = batcher.distinct
    table = Table(title="Dry run: nothing was sent", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    described = source.name + (f" (column {source.column!r})" if source.column else "")
    table.add_row("input", described)
    table.add_row("inputs read", f"{inputs:,}")
    table.add_row("recipients", f"{recipients:,} distinct valid numbers")
    table.add_row("duplicates", f"{duplicates:,}")
    table.add_row("invalid", f"{invalid:,}")
    encoding = message.encoding.value
    if message.non_gsm:
        shown = " ".join(repr(c) for c in message.non_gsm[:10])
        encoding += f" (forced by {shown}{' ...' if len(message.non_gsm) > 10 else ''})"
    table.add_row("encoding", encoding)
    unit = "septets" if not message.is_unicode else "UTF-16 units"
    table.add_row("segments", f"{message.segments} per recipient ({message.info.units} {unit})")
    table.add_row("cost", f"{message.cost(recipients):,} credits ({recipients:,} x {message.segments})")
    console.print(table)
    for raw, reason in samples:
        console.print(f"  invalid: {raw!r}: {reason}", markup=False, highlight=False)
    return ExitCode.OK


# -- sending ----------------------------------------------------------------------


def run_send(options: SendOptions, err_console: Console) -> SendReport:
    """Run one campaign (or resume it) and return the report.

    Raises:
        CliError: a usage or configuration problem found before anything was
            sent (bad text, sender id, input, credentials, journal).
    """
    settings = options.settings
    message = make_message(options.text, options.sender_id, options.max_segments)
    normaliser = make_normaliser(settings.region)
    driver = build_driver(settings)
    if options.skip_dnd and not driver.capabilities.dnd:
        raise CliError(f"--skip-dnd: {driver.name} has no do-not-disturb look-up")
    output = options.output.expanduser().resolve()
    result_format = result_format_for(output)
    if not output.parent.is_dir():
        raise CliError(f"cannot write {output}: the directory {output.parent} does not exist")
    journal_path = (options.journal or output.with_name(output.name + ".journal")).expanduser().resolve()
    if journal_path == output:
        raise CliError("--journal and --output must be different files")
    source = RecipientSource(
        options.recipients, column=options.column, input_format=options.input_format, stdin=options.stdin
    )
    try:
        if source.path is not None and source.path.resolve() in {output, journal_path}:
            raise CliError(f"{source.name} is the input: choose another --output or --journal")
        fingerprint, approx_total = source.fingerprint()
        campaign = Campaign(
            input_name=source.name,
            input_fingerprint=fingerprint,
            text_sha256=hashlib.sha256(message.text.encode("utf-8")).hexdigest(),
            sender_id=message.sender_id,
            gateway=settings.gateway,
            region=settings.region,
            output_path=str(output),
            output_format=result_format,
        )
        encoder = ResultEncoder(result_format, normaliser)
        journal = CampaignJournal.open(
            journal_path,
            campaign,
            encoder,
            resume=options.resume,
            resend_unknown=options.resend_unknown,
            overwrite=options.overwrite,
        )
        started = time.perf_counter()
        try:
            with _Progress(err_console, approx_total, journal, enabled=options.progress) as progress:
                try:
                    run_async(
                        _send,
                        options,
                        message,
                        driver,
                        source,
                        journal,
                        progress,
                        err_console,
                        use_uvloop=_have_uvloop(),
                    )
                except SmsError as error:
                    # Misuse the engine finds before any request (an unsupported --skip-dnd).
                    journal.fail(CliError(redact(error.reason)))
        finally:
            journal.close()
        elapsed = time.perf_counter() - started
    finally:
        source.close()
    return _report(journal, elapsed)


def _have_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401, PLC0415 - optional ("fast" extra)
    except ImportError:
        return False
    return True


async def _send(
    options: SendOptions,
    message: Message,
    driver: Driver,
    source: RecipientSource,
    journal: CampaignJournal,
    progress: _Progress,
    err_console: Console,
) -> None:
    async with journal:
        sender = BulkSender(
            driver,
            concurrency=options.concurrency,
            default_region=options.settings.region,
            messages_per_second=options.rate,
            retry=options.retry,
        )
        async with sender as bulk:
            with anyio.CancelScope() as hard_stop:
                async with anyio.create_task_group() as watchers:
                    watchers.start_soon(_watch_signals, journal, hard_stop, err_console)
                    stream = cast(
                        "AsyncGenerator[BatchResult, None]",
                        bulk.stream(
                            _recipients(source, journal),
                            message.text,
                            sender_id=message.sender_id,
                            skip_dnd=options.skip_dnd,
                            max_segments=options.max_segments,
                            journal=journal,
                        ),
                    )
                    async with contextlib.aclosing(stream) as batches:
                        async for _ in batches:
                            progress.update()
                    watchers.cancel_scope.cancel()


async def _recipients(source: RecipientSource, journal: CampaignJournal) -> AsyncIterator[str]:
    """The input, stopped early on Ctrl+C or a read error."""
    async for chunk in source.aiter():
        for raw in chunk:
            if journal.stop_reason is not None:
                return
            yield raw
        await anyio.lowlevel.checkpoint()
    if source.error is not None:
        # Stop before the engine sends the batch cut short by the error.
        journal.fail(CliError(source.error))


async def _watch_signals(
    journal: CampaignJournal, hard_stop: anyio.CancelScope, err_console: Console
) -> None:
    """First Ctrl+C/SIGTERM: finish the batches in flight and stop. Second: stop now."""
    try:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            received = 0
            async for _ in signals:
                received += 1
                if received == 1:
                    journal.stop(_INTERRUPTED)
                    err_console.print(
                        "Interrupted: finishing the batches in flight (press Ctrl+C again to stop at once)",
                        style="yellow",
                    )
                else:
                    err_console.print(
                        "Stopping now: batches in flight will be reported unknown", style="yellow"
                    )
                    hard_stop.cancel()
    except (NotImplementedError, RuntimeError, ValueError):
        # No signal handlers here (another thread, or a platform without them):
        # Ctrl+C then stops the run at once, and in-flight batches become unknown.
        return


def _report(journal: CampaignJournal, elapsed: float) -> SendReport:
    totals = journal.totals()
    interrupted = journal.stop_reason == _INTERRUPTED
    aborted = (
        f"{type(journal.aborted).__name__}: {redact(journal.aborted.reason)}" if journal.aborted else None
    )
    problem = journal.failure.message if journal.failure is not None else None
    if journal.failure is not None:
        code = journal.failure.code
    elif interrupted:
        code = ExitCode.INTERRUPTED
    elif aborted is not None:
        code = ExitCode.ABORTED
    elif any(count for outcome, count in totals.items() if outcome not in _FINE):
        code = ExitCode.NOT_ALL_ACCEPTED
    else:
        code = ExitCode.OK
    return SendReport(
        exit_code=code,
        totals=totals,
        this_run=dict(journal.tally),
        requests=journal.requests,
        retries=journal.retries,
        elapsed=elapsed,
        batches_sent=journal.batches_sent,
        batches_skipped=journal.batches_skipped,
        resumed=journal.resumed,
        run=journal.run,
        output=journal.output,
        journal=journal.path,
        aborted=aborted,
        interrupted=interrupted,
        problem=problem,
    )


# -- progress and summary -----------------------------------------------------------


class _Progress:
    """A rich progress bar on standard error: inputs done, recipients/s, counts by outcome."""

    def __init__(
        self, console: Console, total: int | None, journal: CampaignJournal, *, enabled: bool
    ) -> None:
        self._journal = journal
        self._enabled = enabled and console.is_terminal
        self._started = time.perf_counter()
        self._first = journal.processed
        self._progress = Progress(
            SpinnerColumn(),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} recipients/s"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[counts]}"),
            console=console,
            disable=not self._enabled,
            refresh_per_second=8,
        )
        self._task: TaskID = self._progress.add_task(
            "sending", total=total, completed=journal.processed, rate="0", counts=""
        )

    def __enter__(self) -> _Progress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.update(final=True)
        self._progress.__exit__(None, None, None)

    def update(self, *, final: bool = False) -> None:
        if not self._enabled:
            return
        journal = self._journal
        done = journal.processed
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        totals = journal.totals()
        counts = " ".join(f"{_SHORT[o]} {n:,}" for o, n in totals.items() if n)
        fields: dict[str, object] = {"rate": f"{(done - self._first) / elapsed:,.0f}", "counts": counts}
        if final:
            fields["total"] = done
        self._progress.update(self._task, completed=done, **fields)  # type: ignore[arg-type]


def print_send_summary(console: Console, report: SendReport, err_console: Console) -> None:
    """The table printed at the end of ``send``, and what to do next."""
    title = f"Campaign results: {escape(report.output.name)}" + (
        f" (resumed, run {report.run})" if report.resumed else ""
    )
    table = Table(title=title, title_justify="left")
    table.add_column("outcome")
    table.add_column("inputs", justify="right")
    if report.resumed:
        table.add_column("this run", justify="right")
    for outcome in OUTCOMES:
        cells = [outcome.value, f"{report.totals[outcome]:,}"]
        if report.resumed:
            cells.append(f"{report.this_run[outcome]:,}")
        table.add_row(*cells)
    footer = ["total", f"{report.total:,}"]
    if report.resumed:
        footer.append(f"{sum(report.this_run.values()):,}")
    table.add_section()
    table.add_row(*footer, style="bold")
    console.print(table)
    console.print(
        f"this run: {report.batches_sent:,} batches sent"
        + (
            f", {report.batches_skipped:,} skipped (settled by an earlier run)"
            if report.batches_skipped
            else ""
        )
        + f", {report.requests:,} requests, {report.retries:,} retries, {report.elapsed:.1f} s,"
        f" {report.rate:,.0f} recipients/s",
        highlight=False,
    )
    console.print(f"results: {report.output}", highlight=False, markup=False)
    console.print(f"journal: {report.journal}", highlight=False, markup=False)
    unknown = report.totals[Outcome.UNKNOWN]
    unsent = report.totals[Outcome.UNSENT]
    if report.problem is not None:
        err_console.print(f"Error: {redact(report.problem)}", style="red", markup=False, highlight=False)
    if report.aborted is not None:
        err_console.print(f"Stopped early: {report.aborted}", style="red", markup=False, highlight=False)
    if report.interrupted:
        err_console.print("Interrupted: run the same command with --resume to continue.", style="yellow")
    if unknown:
        console.print(
            f"{unknown:,} unknown: the gateway may or may not have sent them, and --resume does not send "
            f"them again. Check what it did with: sms-async status {report.output}",
            highlight=False,
            markup=False,
        )
    if unsent:
        console.print(
            f"{unsent:,} unsent: never sent; run the same command with --resume to send them.",
            highlight=False,
            markup=False,
        )
