"""``send``: one campaign from an input file to a results file, through :mod:`sms_async.campaign`.

The command line has no business logic of its own: it opens the input,
builds the driver from the settings, hands both to
:class:`~sms_async.campaign.Campaign`, shows progress, turns Ctrl+C into
``stop()`` and works out the exit status from the report.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Self

import anyio
import attrs
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from sms_async._clock import SYSTEM_CLOCK, Clock
from sms_async._engine import BulkSender
from sms_async._exceptions import ConfigurationError, UsageError
from sms_async._message import Message, Template, check_sender_id
from sms_async._models import BatchResult, Outcome
from sms_async._phone import PhoneNormaliser
from sms_async._redact import redact
from sms_async._retry import RetryPolicy
from sms_async.campaign import (
    PARTS_WARNING,
    Campaign,
    CampaignError,
    CampaignReport,
    DeliveryTally,
    DeliveryTracker,
    MemoryDeliveryBook,
    OptionNames,
    PollRound,
    StorageError,
    parts_warning,
    template_fields,
    template_for,
)
from sms_async.cli._config import GatewaySettings, build_driver, driver_class
from sms_async.cli._errors import CliError, ExitCode, run_async
from sms_async.cli._io import InputFormat, RecipientSource

__all__ = [
    "CLI_NAMES",
    "PARTS_WARNING",
    "REPORTS_CLOCK",
    "SendOptions",
    "SendOutcome",
    "delivery_document",
    "delivery_line",
    "exit_code_of",
    "make_message",
    "make_normaliser",
    "run_send",
    "template_fields",
]

#: How the campaign's messages name the command line's options.
CLI_NAMES = OptionNames(
    resume="--resume",
    resend_unknown="--resend-unknown",
    resend_rejected="--resend-rejected",
    overwrite="--overwrite",
    results="--output",
    journal="--journal",
)


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
    resend_rejected: bool = False
    overwrite: bool = False
    ordered: bool = False
    keep_columns: bool = False
    concurrency: int = 32
    rate: float | None = None
    skip_dnd: bool = False
    max_segments: int | None = None
    progress: bool = True
    stdin: IO[bytes] | None = None
    retry: RetryPolicy | None = None
    #: Keep polling delivery reports after the sends until no number is pending.
    reports: bool = False


@attrs.frozen
class SendOutcome:
    """A finished ``send``: the campaign's report and the exit status it means."""

    report: CampaignReport
    exit_code: ExitCode
    #: Whether a signal stopped it (Ctrl+C, SIGTERM).
    interrupted: bool
    #: With ``--reports``: the campaign's accepted numbers (earlier runs' included) by delivery state
    #: when polling ended, as the results file's delivery columns show them.
    delivery: DeliveryTally | None = None


def make_message(text: str, sender_id: str, max_segments: int | None) -> Message:
    """Validate the text and sender id up front (exit status 2 when they are wrong)."""
    try:
        return Message.create(text, sender_id, max_segments=max_segments)
    except UsageError as error:
        raise CliError(redact(error.reason)) from None


def input_format_of(option: str | None) -> InputFormat:
    """The --input-format option's value as the recipient reader's format (``auto`` unless named)."""
    return "csv" if option == "csv" else "lines" if option == "lines" else "auto"


def checked_text(
    text: str, sender_id: str, max_segments: int | None, warn: Callable[[str], None]
) -> tuple[str, ...]:
    """The text's template fields; a text without fields is checked now, and ``warn`` hears of many parts.

    Exit status 2 for a text or sender id the gateway would refuse; a
    personalised text is checked row by row as its recipients are read.
    """
    fields = template_fields(text)
    if not fields:
        message = make_message(text, sender_id, max_segments)
        warning = parts_warning(message.segments, max_segments, "--max-segments")
        if warning is not None:
            warn(warning)
    return fields


class StatusLine:
    """One line on a terminal's standard error, updated in place while a command waits (none elsewhere)."""

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self._status = console.status("") if enabled and console.is_terminal else None

    def __enter__(self) -> Self:
        if self._status is not None:
            self._status.__enter__()
            self.started()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._status is not None:
            self._status.__exit__(None, None, None)

    @property
    def shown(self) -> bool:
        """Whether the line is on a terminal."""
        return self._status is not None

    def update(self, text: str) -> None:
        if self._status is not None:
            self._status.update(text)

    def started(self) -> None:
        """What the line says before the first update (nothing unless a subclass says)."""


def make_normaliser(region: str) -> PhoneNormaliser:
    """A normaliser for ``region``; an unknown region is a usage error."""
    try:
        return PhoneNormaliser(region)
    except ConfigurationError as error:
        raise CliError(f"--region {region!r}: {error.reason}") from None


def personal_template(text: str, source: RecipientSource) -> Template:
    """The ``Template`` of a personalised text over a CSV's columns (exit 2 for a field no column fills)."""
    return template_for(text, source, option="--text")


def exit_code_of(report: CampaignReport, *, interrupted: bool) -> ExitCode:
    """The exit status a campaign's report means."""
    if report.problem is not None:
        return ExitCode.ABORTED if isinstance(report.problem, StorageError) else ExitCode.USAGE
    if interrupted:
        return ExitCode.INTERRUPTED
    if report.aborted is not None:
        return ExitCode.ABORTED
    if report.totals.not_accepted:
        return ExitCode.NOT_ALL_ACCEPTED
    return ExitCode.OK


def run_send(options: SendOptions, err_console: Console) -> SendOutcome:
    """Run one campaign (or resume it) and return what it did.

    Raises:
        CliError: a usage or configuration problem found before anything was
            sent (bad text, sender id, input, credentials, journal).
    """
    settings = options.settings
    make_normaliser(settings.region)
    if options.skip_dnd and not driver_class(settings.gateway).capabilities.dnd:
        raise CliError(f"--skip-dnd: {settings.gateway} has no do-not-disturb look-up")
    fields = template_fields(options.text)
    if not fields:
        make_message(options.text, options.sender_id, options.max_segments)
    else:
        try:
            check_sender_id(options.sender_id)
        except UsageError as error:
            raise CliError(error.reason) from None
    driver = build_driver(settings)
    output = options.output.expanduser().resolve()
    source = RecipientSource(
        options.recipients,
        column=options.column,
        input_format=options.input_format,
        stdin=options.stdin,
        keep_columns=options.keep_columns,
        as_rows=bool(fields),
    )
    try:
        text: str | Template = personal_template(options.text, source) if fields else options.text
        journal = options.journal.expanduser().resolve() if options.journal is not None else None
        if source.path is not None and source.path.resolve() in {output, journal}:
            raise CliError(f"{source.name} is the input: choose another --output or --journal")
        fingerprint, approx_total = source.fingerprint()
        campaign = Campaign(
            output,
            journal=journal,
            resume=options.resume,
            resend_unknown=options.resend_unknown,
            resend_rejected=options.resend_rejected,
            overwrite=options.overwrite,
            ordered=options.ordered,
            input_name=source.name,
            input_fingerprint=fingerprint,
            rows=source,
            names=CLI_NAMES,
            clock=REPORTS_CLOCK,
        )
        with _Progress(err_console, approx_total, campaign, enabled=options.progress) as progress:
            report, interrupted, delivery = run_async(
                _send,
                options,
                driver,
                source,
                text,
                campaign,
                progress,
                err_console,
                use_uvloop=_have_uvloop(),
            )
    except CampaignError as error:  # found before anything was sent
        raise CliError(redact(error.reason)) from None
    finally:
        source.close()
    return SendOutcome(report, exit_code_of(report, interrupted=interrupted), interrupted, delivery)


def _have_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401, PLC0415 - optional ("fast" extra)
    except ImportError:
        return False
    return True


async def _send(
    options: SendOptions,
    driver: object,
    source: RecipientSource,
    text: str | Template,
    campaign: Campaign,
    progress: _Progress,
    err_console: Console,
) -> tuple[CampaignReport, bool, DeliveryTally | None]:
    interrupted = anyio.Event()
    sender = BulkSender(
        driver,  # type: ignore[arg-type]
        concurrency=options.concurrency,
        default_region=options.settings.region,
        messages_per_second=options.rate,
        retry=options.retry,
    )
    async with sender as bulk, anyio.create_task_group() as watchers:

        async def track(book: MemoryDeliveryBook) -> None:
            # Every number the results file shows accepted, earlier runs' included; the
            # campaign writes the delivery columns when this returns or is interrupted.
            progress.stop()
            tracker = DeliveryTracker(bulk, book, clock=REPORTS_CLOCK)
            with _ReportsProgress(err_console, book, enabled=options.progress) as polling:
                await tracker.run(on_round=polling.show)

        watchers.start_soon(_watch_signals, campaign, interrupted, err_console)
        report = await campaign.run(
            bulk,
            source.aiter() if source.is_stdin else source,
            text,
            sender_id=options.sender_id,
            skip_dnd=options.skip_dnd,
            max_segments=options.max_segments,
            gateway_params=options.settings.params or None,
            on_batch=progress.update,
            reports=track if options.reports else None,
        )
        watchers.cancel_scope.cancel()
    delivery = (report.delivery or DeliveryTally()) if options.reports else None
    return report, interrupted.is_set(), delivery


async def _watch_signals(campaign: Campaign, interrupted: anyio.Event, err_console: Console) -> None:
    """First Ctrl+C/SIGTERM: finish the batches in flight and stop. Second: stop now."""
    try:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            received = 0
            async for _ in signals:
                received += 1
                interrupted.set()
                if received == 1:
                    campaign.stop()
                    err_console.print(
                        "Interrupted: finishing the batches in flight (press Ctrl+C again to stop at once)",
                        style="yellow",
                    )
                else:
                    err_console.print(
                        "Stopping now: batches in flight will be reported unknown", style="yellow"
                    )
                    campaign.stop(now=True)
    except (NotImplementedError, RuntimeError, ValueError):
        # No signal handlers here (another thread, or a platform without them):
        # Ctrl+C then stops the run at once, and in-flight batches become unknown.
        return


def delivery_line(tally: DeliveryTally) -> str:
    """Accepted numbers by delivery state, and the delivery rate, in one line (send and campaign status)."""
    rate = "" if tally.rate is None else f"; delivery rate {tally.rate:.1%}"
    return (
        f"{tally.accepted:,} accepted: {tally.delivered:,} delivered, {tally.undelivered:,} undelivered, "
        f"{tally.failed:,} failed, {tally.expired:,} expired, {tally.pending:,} pending{rate}"
    )


def delivery_document(tally: DeliveryTally) -> dict[str, object]:
    """Accepted numbers by delivery state, and the delivery rate, for JSON."""
    return {
        "accepted": tally.accepted,
        "delivered": tally.delivered,
        "undelivered": tally.undelivered,
        "failed": tally.failed,
        "expired": tally.expired,
        "pending": tally.pending,
        "rate": tally.rate,
    }


#: Where ``send --reports`` reads the time and sleeps between polls (tests put a test clock here).
REPORTS_CLOCK: Clock = SYSTEM_CLOCK


class _ReportsProgress(StatusLine):
    """One line on a terminal's standard error while ``send --reports`` polls: numbers by delivery state."""

    def __init__(self, console: Console, book: MemoryDeliveryBook, *, enabled: bool) -> None:
        super().__init__(console, enabled=enabled)
        self._book = book
        self._requests = 0

    def started(self) -> None:
        self.show(PollRound())

    def show(self, done: PollRound) -> None:
        self._requests += done.requests
        if self.shown:
            tally = self._book.tally()
            self.update(
                f"delivery reports: {tally.delivered:,} delivered, {tally.undelivered + tally.failed:,} not, "
                f"{tally.pending:,} pending of {tally.accepted:,} accepted ({self._requests:,} requests)"
            )


class _Progress:
    """A rich progress bar on standard error: inputs done, recipients/s, counts by outcome."""

    def __init__(self, console: Console, total: int | None, campaign: Campaign, *, enabled: bool) -> None:
        self._campaign = campaign
        self._enabled = enabled and console.is_terminal
        self._started = time.perf_counter()
        self._first: int | None = None
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
        self._task: TaskID = self._progress.add_task("sending", total=total, completed=0, rate="0", counts="")
        self._stopped = False

    def __enter__(self) -> _Progress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Show the final counts and take the bar off the terminal (once)."""
        if self._stopped:
            return
        self._stopped = True
        self.update(None, final=True)
        self._progress.__exit__(None, None, None)

    def update(self, _batch: BatchResult | None, *, final: bool = False) -> None:
        if not self._enabled:
            return
        campaign = self._campaign
        done = campaign.processed
        if self._first is None:
            self._first = done - (_batch.total if _batch is not None else 0)
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        totals = campaign.totals()
        counts = " ".join(f"{_SHORT[o]} {n:,}" for o, n in totals.counts.items() if n)
        fields: dict[str, object] = {"rate": f"{(done - self._first) / elapsed:,.0f}", "counts": counts}
        if final:
            fields["total"] = done
        self._progress.update(self._task, completed=done, **fields)  # type: ignore[arg-type]
