"""The ``sms-async`` commands (click), thin wrappers over the library."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Coroutine
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, TypeVar, cast

import attrs
import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sms_async import __version__
from sms_async._engine import BulkSender
from sms_async._exceptions import (
    AuthenticationError,
    OutOfCreditError,
    SmsError,
    UnsupportedOperationError,
    UsageError,
)
from sms_async._models import DeliveryReport, DeliveryStatus
from sms_async._redact import redact
from sms_async.cli._campaign import (
    SendOptions,
    make_message,
    make_normaliser,
    print_send_summary,
    run_dry_run,
    run_send,
)
from sms_async.cli._config import (
    ENV_PASSWORD,
    ENV_TOKEN,
    GATEWAYS,
    GatewaySettings,
    build_driver,
    resolve_settings,
)
from sms_async.cli._errors import EXIT_CODES_HELP, CliError, ExitCode, run_async
from sms_async.cli._io import InputFormat, RecipientSource, read_message_ids

__all__ = ["cli", "main"]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

_MAIN_HELP = f"""Send one SMS text to very many recipients through ITON or ItecPay, and
account for every one.

\b
  sms-async demo                         try it against a simulated gateway
  sms-async send numbers.csv --column phone --text "Hello" \\
                 --sender-id ITONAB --output results.jsonl
  sms-async status results.jsonl --poll  delivery reports for what was sent

\b
Credentials come from the environment (SMS_ASYNC_USERNAME, SMS_ASYNC_PASSWORD,
SMS_ASYNC_TOKEN, SMS_ASYNC_BASE_URL) or from a TOML config file (--config, or
~/.config/sms-async/config.toml) with an [iton] or [itecpay] section; they are
never needed on the command line.

{EXIT_CODES_HELP}
"""


def _consoles() -> tuple[Console, Console]:
    return Console(highlight=False), Console(stderr=True, highlight=False)


def _stdin() -> IO[bytes]:
    # sys.stdin at call time: click's test runner swaps it for each invocation.
    return sys.stdin.buffer


def _say_error(message: str) -> None:
    click.echo(f"Error: {redact(message)}", err=True)


def _guarded(command: F) -> F:
    """Turn every failure into one clear line and the documented exit status, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            code = command(*args, **kwargs)
        except CliError as error:
            _say_error(error.message)
            code = error.code
        except (AuthenticationError, OutOfCreditError) as error:
            _say_error(f"{type(error).__name__}: {error.reason}")
            code = ExitCode.ABORTED
        except (UsageError, UnsupportedOperationError) as error:
            _say_error(error.reason)
            code = ExitCode.USAGE
        except SmsError as error:
            _say_error(f"{type(error).__name__}: {error.reason}")
            code = ExitCode.NOT_ALL_ACCEPTED
        except KeyboardInterrupt:
            _say_error("interrupted")
            code = ExitCode.INTERRUPTED
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as error:
            if os.environ.get("SMS_ASYNC_DEBUG"):
                raise
            _say_error(
                f"internal error, please report it: {type(error).__name__}: {error} "
                "(set SMS_ASYNC_DEBUG=1 for a traceback)"
            )
            code = ExitCode.ABORTED
        raise click.exceptions.Exit(int(code or 0))

    return wrapper  # type: ignore[return-value]


def _gateway_options(command: F) -> F:
    """The options every command that talks to a gateway takes."""
    options = [
        click.option(
            "--gateway",
            type=click.Choice(GATEWAYS),
            default=None,
            help="Gateway to use (default: SMS_ASYNC_GATEWAY, the config file's 'gateway', else iton).",
        ),
        click.option(
            "--base-url", metavar="URL", help="Gateway endpoint (default: SMS_ASYNC_BASE_URL, config)."
        ),
        click.option(
            "--config",
            "config_path",
            type=click.Path(dir_okay=False, path_type=Path),
            envvar="SMS_ASYNC_CONFIG",
            help="TOML config file (default ~/.config/sms-async/config.toml when present).",
        ),
        click.option(
            "--username", metavar="NAME", help="Account name (default: SMS_ASYNC_USERNAME, config)."
        ),
        click.option(
            "--password",
            metavar="SECRET",
            help="Discouraged: other users can see arguments; use SMS_ASYNC_PASSWORD or the config file.",
        ),
        click.option(
            "--token",
            metavar="SECRET",
            help="ITON API token. Discouraged: use SMS_ASYNC_TOKEN or the config file.",
        ),
        click.option(
            "--region",
            metavar="CODE",
            help="Region of national spellings such as 098123 45678 (default: config, else IN).",
        ),
        click.option(
            "--concurrency",
            type=click.IntRange(min=1, max=1024),
            default=32,
            show_default=True,
            help="Requests in flight at most.",
        ),
    ]

    @functools.wraps(command)
    def wrapper(
        *args: Any,
        gateway: str | None,
        base_url: str | None,
        config_path: Path | None,
        username: str | None,
        password: str | None,
        token: str | None,
        region: str | None,
        **kwargs: Any,
    ) -> Any:
        account = _Account(gateway, base_url, config_path, username, password, token, region)
        return command(*args, account=account, **kwargs)

    decorated: Any = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return cast("F", decorated)


@attrs.frozen
class _Account:
    """The gateway options of one command, resolved into settings when the command needs them."""

    gateway: str | None
    base_url: str | None
    config_path: Path | None
    username: str | None
    password: str | None = attrs.field(repr=False)
    token: str | None = attrs.field(repr=False)
    region: str | None

    def settings(self, sender_id: str | None = None) -> GatewaySettings:
        """Merge the options with the environment and the config file (warning about secrets in argv)."""
        for value, name, env in (
            (self.password, "--password", ENV_PASSWORD),
            (self.token, "--token", ENV_TOKEN),
        ):
            if value:
                click.echo(
                    f"warning: {name} on the command line can be seen by other users of this machine "
                    f"(ps, shell history); use {env} or the config file instead",
                    err=True,
                )
        return resolve_settings(
            gateway=self.gateway,
            config_path=self.config_path,
            username=self.username,
            password=self.password,
            token=self.token,
            base_url=self.base_url,
            sender_id=sender_id,
            region=self.region,
        )


def _run(fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return run_async(fn)


@click.group(context_settings=_CONTEXT, help=_MAIN_HELP)
@click.version_option(__version__, prog_name="sms-async")
def cli() -> None:
    """The ``sms-async`` command group."""


# -- send -----------------------------------------------------------------------------


@cli.command(
    epilog=EXIT_CODES_HELP,
    short_help="Send one text to every recipient in a file or on standard input.",
)
@click.argument("recipients", metavar="RECIPIENTS")
@click.option("-t", "--text", help="The message text.")
@click.option(
    "--text-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the message text from this UTF-8 file (one final newline is dropped).",
)
@click.option("-s", "--sender-id", metavar="ID", help="Sender id (default: the config file's sender_id).")
@click.option("-c", "--column", metavar="NAME", help="CSV column holding the numbers (implies CSV input).")
@click.option(
    "--input-format",
    type=click.Choice(["auto", "csv", "lines"]),
    default="auto",
    show_default=True,
    help="auto: CSV for *.csv or with --column, else one number per line.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Results file, one row per input: *.jsonl (JSON Lines) or *.csv. Required unless --dry-run.",
)
@click.option(
    "--journal",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Crash-safe journal of the campaign (default: <output>.journal).",
)
@click.option(
    "--resume", is_flag=True, help="Continue the campaign of the journal: sent batches are skipped."
)
@click.option(
    "--resend-unknown",
    is_flag=True,
    help="With --resume: send again batches that were in flight when a run died (may send them twice).",
)
@click.option("--overwrite", is_flag=True, help="Replace a results file that no journal accounts for.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    metavar="N",
    help="Send at most N messages (recipients) per second.",
)
@click.option(
    "--skip-dnd", is_flag=True, help="Look up the do-not-disturb list first and skip listed numbers."
)
@click.option(
    "--max-segments",
    type=click.IntRange(min=1),
    metavar="N",
    help="Refuse a text that needs more than N SMS parts.",
)
@click.option(
    "--dry-run", is_flag=True, help="Check the input and text, count recipients and cost; send nothing."
)
@click.option(
    "-q", "--quiet", is_flag=True, help="No progress bar and no summary (errors still go to stderr)."
)
@_gateway_options
@_guarded
def send(
    recipients: str,
    text: str | None,
    text_file: Path | None,
    sender_id: str | None,
    column: str | None,
    input_format: str,
    output: Path | None,
    journal: Path | None,
    resume: bool,
    resend_unknown: bool,
    overwrite: bool,
    rate: float | None,
    skip_dnd: bool,
    max_segments: int | None,
    dry_run: bool,
    quiet: bool,
    account: _Account,
    concurrency: int,
) -> ExitCode:
    """Send one text to every recipient in RECIPIENTS (a CSV file, a file with one number per line, or - for
    standard input), and write one row per input to --output.

    A journal next to the results file makes the campaign crash-safe: after a
    crash or Ctrl+C, run the same command with --resume; batches already sent
    are not sent again, and batches that were in flight are reported unknown.
    """  # noqa: D205 - click shows this text as the command's help
    console, err_console = _consoles()
    how: InputFormat = "csv" if input_format == "csv" else "lines" if input_format == "lines" else "auto"
    message_text = _read_text(text, text_file, recipients)
    settings = account.settings(sender_id)
    chosen_sender = settings.sender_id
    if not chosen_sender:
        raise CliError(
            "no sender id: pass --sender-id, or set sender_id in the config file's gateway section"
        )
    if dry_run:
        message = make_message(message_text, chosen_sender, max_segments)
        make_normaliser(settings.region)
        source = RecipientSource(recipients, column=column, input_format=how, stdin=_stdin())
        try:
            return run_dry_run(source, message, settings.region, console)
        finally:
            source.close()
    if output is None:
        raise CliError("--output is required: the results file (the journal is kept next to it)")
    options = SendOptions(
        recipients=recipients,
        text=message_text,
        sender_id=chosen_sender,
        settings=settings,
        output=output,
        journal=journal,
        column=column,
        input_format=how,
        resume=resume,
        resend_unknown=resend_unknown,
        overwrite=overwrite,
        concurrency=concurrency,
        rate=rate,
        skip_dnd=skip_dnd,
        max_segments=max_segments,
        progress=not quiet,
        stdin=_stdin(),
    )
    report = run_send(options, err_console)
    if not quiet:
        print_send_summary(console, report, err_console)
    else:
        if report.problem is not None:
            _say_error(report.problem)
        if report.aborted is not None:
            _say_error(f"stopped early: {report.aborted}")
        if report.interrupted:
            _say_error("interrupted: run the same command with --resume to continue")
    return report.exit_code


def _read_text(text: str | None, text_file: Path | None, recipients: str) -> str:
    if text is not None and text_file is not None:
        raise CliError("pass the message with --text or --text-file, not both")
    if text is None and text_file is None:
        raise CliError("no message: pass --text or --text-file")
    if text_file is None:
        assert text is not None  # noqa: S101 - checked just above
        return text
    if str(text_file) == "-":
        if recipients == "-":
            raise CliError("--text-file - and recipients - cannot both be standard input")
        data = _stdin().read()
    else:
        try:
            data = text_file.read_bytes()
        except OSError as error:
            raise CliError(f"cannot read {text_file}: {error.strerror}") from None
    try:
        decoded = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise CliError(f"{text_file} is not UTF-8 (byte {error.start})") from None
    return decoded.removesuffix("\n").removesuffix("\r")


# -- status ----------------------------------------------------------------------------


@cli.command(epilog=EXIT_CODES_HELP, short_help="Delivery reports for the messages in a results file.")
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
@_gateway_options
@_guarded
def status(
    results: Path | None,
    message_ids: tuple[str, ...],
    poll: bool,
    interval: float,
    timeout: float,
    output: Path | None,
    account: _Account,
    concurrency: int,
) -> ExitCode:
    """Look up the delivery status of the message ids in RESULTS (a results file written by send) or given
    with --id. Exit status 0 when every message was delivered, 1 otherwise.
    """  # noqa: D205
    console, err_console = _consoles()
    ids = list(dict.fromkeys([*(read_message_ids(results) if results is not None else []), *message_ids]))
    if not ids:
        raise CliError("no message ids: name a results file with accepted rows, or pass --id")
    settings = account.settings()
    driver = build_driver(settings)
    if output is not None and output.suffix.lower() not in {".jsonl", ".ndjson", ".json", ".csv"}:
        raise CliError(f"cannot tell the format from {output.name!r}: name the file *.jsonl or *.csv")

    async def look_up() -> dict[tuple[str, str | None], DeliveryReport]:
        latest: dict[tuple[str, str | None], DeliveryReport] = {}
        async with BulkSender(driver, concurrency=concurrency, default_region=settings.region) as bulk:
            if not poll:
                for report in await bulk.delivery_reports(ids):
                    latest[report.message_id, report.number] = report
                return latest
            with err_console.status(f"polling {len(ids):,} message ids every {interval:g} s") as spinner:
                async for report in bulk.poll_delivery_reports(ids, interval=interval, timeout=timeout):
                    if report.number is not None:
                        latest.pop((report.message_id, None), None)
                    latest[report.message_id, report.number] = report
                    final = sum(1 for r in latest.values() if r.is_final)
                    spinner.update(f"polling: {final:,} of {len(latest):,} reports final")
        return latest

    reports = list(_run(look_up).values())
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
    if output is not None:
        _write_reports(output, reports)
        console.print(f"reports: {output}", markup=False)
    lookup_failed = sum(1 for r in reports if r.error)
    if lookup_failed:
        err_console.print(f"{lookup_failed:,} look-ups failed after retries (status unknown)", markup=False)
    all_delivered = bool(reports) and all(r.status is DeliveryStatus.DELIVERED for r in reports)
    return ExitCode.OK if all_delivered else ExitCode.NOT_ALL_ACCEPTED


def _write_reports(path: Path, reports: list[DeliveryReport]) -> None:
    import csv  # noqa: PLC0415 - only this command writes CSV reports

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


# -- balance ---------------------------------------------------------------------------


@cli.command(epilog=EXIT_CODES_HELP, short_help="The account's remaining credits.")
@_gateway_options
@_guarded
def balance(
    account: _Account,
    concurrency: int,
) -> ExitCode:
    """Print the account's remaining credits (ITON; ItecPay documents no balance command)."""
    console, _ = _consoles()
    settings = account.settings()
    driver = build_driver(settings)

    async def look_up() -> Decimal:
        async with BulkSender(driver, concurrency=concurrency, default_region=settings.region) as bulk:
            return await bulk.balance()

    try:
        remaining = _run(look_up)
    except UnsupportedOperationError as error:
        raise CliError(f"{settings.gateway}: {error.reason}") from None
    console.print(f"Remaining credits: {remaining}", markup=False)
    return ExitCode.OK


# -- dnd -------------------------------------------------------------------------------


@cli.command(epilog=EXIT_CODES_HELP, short_help="Which numbers are on the do-not-disturb list.")
@click.argument("numbers", nargs=-1)
@click.option(
    "-f",
    "--file",
    "numbers_file",
    metavar="PATH",
    help="Also read numbers from this file (CSV with --column, or one per line; - for standard input).",
)
@click.option("-c", "--column", metavar="NAME", help="CSV column holding the numbers.")
@_gateway_options
@_guarded
def dnd(
    numbers: tuple[str, ...],
    numbers_file: str | None,
    column: str | None,
    account: _Account,
    concurrency: int,
) -> ExitCode:
    """Check NUMBERS (and those in --file) against the do-not-disturb list. Exit status 0 when every number
    was valid and checked, 1 when some were invalid.
    """  # noqa: D205
    console, _ = _consoles()
    settings = account.settings()
    normaliser = make_normaliser(settings.region)
    raw_numbers = list(numbers)
    if numbers_file is not None:
        source = RecipientSource(numbers_file, column=column, stdin=_stdin())
        try:
            for chunk in source.chunks():
                raw_numbers.extend(chunk)
            if source.error is not None:
                raise CliError(source.error)
        finally:
            source.close()
    if not raw_numbers:
        raise CliError("no numbers: pass them as arguments or with --file")
    valid: dict[str, str] = {}
    invalid: list[tuple[str, str]] = []
    for raw in raw_numbers:
        try:
            valid.setdefault(normaliser.normalise(raw), raw)
        except SmsError as error:
            invalid.append((raw, error.reason))
    driver = build_driver(settings)

    async def look_up() -> dict[str, bool]:
        async with BulkSender(driver, concurrency=concurrency, default_region=settings.region) as bulk:
            return await bulk.check_dnd(valid)

    listed = _run(look_up) if valid else {}
    table = Table(title="Do-not-disturb", title_justify="left")
    table.add_column("input")
    table.add_column("e164")
    table.add_column("status")
    for e164, raw in valid.items():
        table.add_row(escape(raw), e164, "listed" if listed.get(e164) else "not listed")
    for raw, _reason in invalid:
        table.add_row(escape(raw), "", "invalid")
    console.print(table)
    console.print(
        f"{sum(1 for v in listed.values() if v):,} listed, {sum(1 for v in listed.values() if not v):,} "
        f"not listed, {len(invalid):,} invalid",
        markup=False,
    )
    return ExitCode.NOT_ALL_ACCEPTED if invalid else ExitCode.OK


# -- simulate and demo -----------------------------------------------------------------------


@cli.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
    short_help="Serve a simulated ITON + ItecPay gateway on loopback (see: simulate --help).",
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def simulate(args: tuple[str, ...]) -> None:
    """Serve the simulated gateway of sms_async.testing in the foreground (options: simulate --help)."""
    from sms_async.testing import main as serve_main  # noqa: PLC0415 - the simulator loads only when asked for

    raise click.exceptions.Exit(serve_main(list(args), prog="sms-async simulate"))


@cli.command(short_help="Send a realistic campaign to a simulated gateway, and show what happened.")
@click.option(
    "--count", type=click.IntRange(min=1), default=100_000, show_default=True, help="Valid recipients."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("sms-demo-results.jsonl"),
    show_default=True,
    help="Where the per-number results go (*.jsonl or *.csv).",
)
@click.option("--gateway", type=click.Choice(GATEWAYS), default="iton", show_default=True)
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the generated campaign.")
@click.option("--no-faults", is_flag=True, help="Do not inject 429s, a 503 and a dropped connection.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@_guarded
def demo(count: int, output: Path, gateway: str, seed: int, no_faults: bool, quiet: bool) -> ExitCode:
    """Start a simulated gateway in this process, send it a generated campaign (valid Indian mobile numbers
    in mixed spellings, some invalid and duplicate entries) with a few injected faults, poll the delivery
    reports, and print a summary. Nothing leaves this machine.
    """  # noqa: D205
    from sms_async.cli._demo import run_demo  # noqa: PLC0415 - loads the simulator only when asked for

    console, err_console = _consoles()
    return run_demo(
        count=count,
        output=output,
        gateway=gateway,
        seed=seed,
        faults=not no_faults,
        progress=not quiet,
        console=console,
        err_console=err_console,
    )


def main(argv: list[str] | None = None) -> None:
    """Run ``sms-async``; exits with the documented status."""
    cli.main(args=argv, prog_name="sms-async")
