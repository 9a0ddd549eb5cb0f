"""The ``send`` command: options, the text, the dry run, and the summary."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sms_async.cli._campaign import (
    SendOptions,
    checked_text,
    delivery_document,
    delivery_line,
    input_format_of,
    make_normaliser,
    personal_template,
    run_send,
)
from sms_async.cli._dryrun import run_dry_run
from sms_async.cli._errors import EXIT_CODES_HELP, CliError, ExitCode
from sms_async.cli._io import InputReadError, RecipientSource
from sms_async.cli._options import (
    Account,
    consoles,
    gateway_options,
    guarded,
    input_options,
    keep_columns_option,
    params_option,
    rate_option,
    say_error,
    stdin,
    text_options,
)
from sms_async.cli._summary import describe_aborted, print_send_summary, send_summary_json

__all__ = ["send"]


@click.command(
    epilog=EXIT_CODES_HELP,
    short_help="Send one text (or one per CSV row) to every recipient in a file or on standard input.",
)
@click.argument("recipients", metavar="RECIPIENTS")
@click.option(
    "-t",
    "--text",
    help="The message text. With a CSV input, {name} fields are filled from each row's columns "
    "(a personalised text; write a literal brace as {{ or }}).",
)
@click.option(
    "--text-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the message text from this UTF-8 file (one final newline is dropped).",
)
@click.option("-s", "--sender-id", metavar="ID", help="Sender id (default: the config file's sender_id).")
@input_options
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
    "--resume",
    is_flag=True,
    help="Continue the campaign of the journal: settled batches are skipped (refused without a journal).",
)
@click.option(
    "--resend-unknown",
    is_flag=True,
    help="With --resume: send again batches that ended unknown or were in flight when a run died "
    "(some numbers may get the text twice).",
)
@click.option(
    "--resend-rejected",
    is_flag=True,
    help="With --resume: send again batches the gateway rejected (after fixing the cause).",
)
@click.option("--overwrite", is_flag=True, help="Replace a results file that no journal accounts for.")
@click.option(
    "--ordered",
    is_flag=True,
    help="Write results rows in input order (each once the inputs before it are done), not as batches end.",
)
@keep_columns_option("Keep the input's other CSV columns in each results row.")
@params_option(
    "An extra request parameter for every send, such as India's DLT templateid (repeatable; "
    "also a [<gateway>.params] table in the config)."
)
@rate_option("Send at most N messages (recipients) per second.")
@text_options
@click.option(
    "--reports",
    is_flag=True,
    help="After the sends, keep polling delivery reports (30 s, 2 min, 10 min, 1 h after acceptance, then "
    "hourly, up to 72 h) until no number is pending, with a progress line; then print the delivery rate and "
    "add the delivery and delivered_at columns (as 'campaign export' writes them) to the results file, also "
    "when interrupted. With --resume: every number the campaign accepted, earlier runs' included.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check the input and text, count recipients, parts and cost; send nothing.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the summary as one JSON object on standard output."
)
@click.option(
    "-q", "--quiet", is_flag=True, help="No progress bar and no summary (errors still go to stderr)."
)
@gateway_options
@guarded
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
    resend_rejected: bool,
    overwrite: bool,
    ordered: bool,
    keep_columns: bool,
    params: tuple[str, ...],
    rate: float | None,
    skip_dnd: bool,
    max_segments: int | None,
    reports: bool,
    dry_run: bool,
    as_json: bool,
    quiet: bool,
    account: Account,
    concurrency: int,
) -> ExitCode:
    """Send a text to every recipient in RECIPIENTS (a CSV file, a file with one number per line, or - for
    standard input), and write one row per input to --output: its row (line) number, the input as read,
    e164, outcome, message_id and reason.

    A journal next to the results file makes the campaign crash-safe: after a
    crash or Ctrl+C, run the same command with --resume; batches already sent
    are not sent again, and batches that were in flight are reported unknown.
    """  # noqa: D205 - click shows this text as the command's help
    console, err_console = consoles()
    how = input_format_of(input_format)
    message_text = _read_text(text, text_file, recipients)
    if (resend_unknown or resend_rejected) and not resume:
        raise CliError(
            "--resend-unknown and --resend-rejected go with --resume (they change what it resends)"
        )
    settings = account.settings(sender_id, params)
    chosen_sender = settings.sender_id
    if not chosen_sender:
        raise CliError(
            settings.with_hint(
                f"no sender id: pass --sender-id, or set sender_id in the config file's [{settings.gateway}] "
                "section"
            )
        )
    fields = checked_text(
        message_text,
        chosen_sender,
        max_segments,
        lambda note: err_console.print(f"warning: {note}", style="yellow", markup=False, highlight=False),
    )
    if dry_run:
        make_normaliser(settings.region)
        source = RecipientSource(
            recipients, column=column, input_format=how, stdin=stdin(), as_rows=bool(fields)
        )
        try:
            shaped = personal_template(message_text, source) if fields else message_text
            return run_dry_run(
                source,
                shaped,
                chosen_sender,
                settings.region,
                console,
                gateway=settings.gateway,
                max_segments=max_segments,
            )
        except InputReadError as error:
            raise CliError(str(error)) from None
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
        resend_rejected=resend_rejected,
        overwrite=overwrite,
        ordered=ordered,
        keep_columns=keep_columns,
        concurrency=concurrency,
        rate=rate,
        skip_dnd=skip_dnd,
        max_segments=max_segments,
        progress=not quiet and not as_json,
        stdin=stdin(),
        reports=reports,
    )
    outcome = run_send(options, err_console)
    report = outcome.report
    if as_json:
        summary = send_summary_json(outcome)
        if outcome.delivery is not None:
            summary = json.dumps({**json.loads(summary), "delivery": delivery_document(outcome.delivery)})
        click.echo(summary)
    elif not quiet:
        print_send_summary(console, outcome, err_console, max_segments=max_segments)
        if outcome.delivery is not None:
            click.echo(f"delivery: {delivery_line(outcome.delivery)}")
    if as_json or quiet:
        if report.problem is not None:
            say_error(report.problem.reason)
        aborted = describe_aborted(report)
        if aborted is not None:
            say_error(f"stopped early: {aborted}")
        if outcome.interrupted:
            say_error("interrupted: run the same command with --resume to continue")
    return outcome.exit_code


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
        data = stdin().read()
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
