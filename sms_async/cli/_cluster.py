"""``sms-async campaign ...`` and ``sms-async worker``: campaigns across machines, from the command line.

A thin shell over :mod:`sms_async.cluster` (``pip install 'sms_async[cluster]'``)::

    sms-async campaign create numbers.csv --text "Hello" --sender-id ITONAB --rate 2000   # prints the id
    sms-async campaign start ID                 # Celery workers send it, or:
    sms-async campaign run ID                   # this process sends it (no broker, no worker)
    sms-async campaign status ID [--wait] [--json]
    sms-async campaign reports ID [--wait]      # poll delivery reports now, in this process
    sms-async campaign export ID --output results.jsonl
    sms-async campaign pause ID / resume ID
    sms-async campaign cancel ID
    sms-async worker [--concurrency N] [--queues sms_async]

Every command finds the store in ``SMS_ASYNC_DATABASE_URL`` (and
``SMS_ASYNC_DATABASE_SCHEMA``); ``start`` and ``worker`` find the broker in
``SMS_ASYNC_BROKER_URL``. Only workers need gateway credentials, from their
own environment or config file.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import click
from rich.console import Console

from sms_async._exceptions import UsageError
from sms_async._models import Outcome
from sms_async._redact import keep_secrets, redact
from sms_async.campaign import (
    COLUMNS,
    DEFAULT_GATEWAY,
    DEFAULT_REGION,
    DEFAULT_STORE_FILE,
    ENV_DATABASE_URL,
    CampaignError,
    CampaignStatus,
    DeliveryTally,
    PollRound,
    Schedule,
    Store,
    StoredCampaign,
    choose_gateway,
    encode_row,
    results_format,
    results_header,
    sqlite_path,
)
from sms_async.cli._campaign import (
    StatusLine,
    checked_text,
    delivery_document,
    delivery_line,
    input_format_of,
    personal_template,
)
from sms_async.cli._config import parse_params
from sms_async.cli._errors import CliError, ExitCode, run_async
from sms_async.cli._io import InputReadError, RecipientSource
from sms_async.cli._options import (
    concurrency_option,
    consoles,
    guarded_as,
    input_options,
    keep_columns_option,
    params_option,
    rate_option,
    say_error,
    text_options,
)

if TYPE_CHECKING:
    from sms_async.cluster import ClusterSettings, Unattended

__all__ = ["COLUMNS", "campaign", "encode_row", "register", "worker"]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

_EXIT_CODES = """\b
Exit codes:
  0  done, and every input accepted (duplicates and --skip-dnd skips do not count against)
  1  some inputs not accepted (invalid, rejected, unknown, unsent), or not finished yet
  2  usage or configuration error (bad option, input, text, sender id, unknown campaign)
  3  the campaign was aborted (bad credentials, no credit), or the store or broker
     could not be reached"""


class _Owner:
    """Holds the broker's password for redaction while the command runs."""


#: Requests in flight per shard run (``campaign run`` and ``worker``).
_concurrency_option = concurrency_option("Requests in flight per shard.")

# A store or broker out of reach is no usage error: exit status 3.
_guarded = guarded_as(ExitCode.ABORTED)


def _settings(**overrides: Any) -> ClusterSettings:
    try:
        from sms_async.cluster import ClusterSettings  # noqa: PLC0415 - the cluster extra loads only when used
    except ImportError as error:
        raise CliError(str(error)) from None
    context = click.get_current_context(silent=True)
    chosen = context.meta.get(_STORE_KEY) if context is not None else None
    if chosen:
        overrides = {"database_url": chosen, **overrides}
    settings = ClusterSettings.from_env(**overrides)
    password = urlsplit(settings.broker_url).password
    keep_secrets(_OWNER, password)
    return settings


_OWNER = _Owner()
_STORE_KEY = "sms_async.store"


def _remember_store(context: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:
        context.meta[_STORE_KEY] = value


#: ``--store URL`` on every campaign command: the campaign store, as SMS_ASYNC_DATABASE_URL names it.
_store_option = click.option(
    "--store",
    metavar="URL",
    expose_value=False,
    callback=_remember_store,
    help="The campaign store: sqlite:///campaigns.db (this machine) or postgresql://... (shared); "
    f"default: {ENV_DATABASE_URL}, else sqlite:///{DEFAULT_STORE_FILE} here.",
)


def _with_store(action: Callable[[Store], Coroutine[Any, Any, T]], *, creating: bool = False) -> T:
    """Run ``action(store)`` with the store of ``--store`` or ``SMS_ASYNC_DATABASE_URL`` open.

    Without either, the store is a SQLite file of the working directory
    (``sms-async-campaigns.db``), made by ``create`` only.
    """
    settings = _settings()
    if not settings.shared and not creating:
        try:
            path = sqlite_path(settings.database_url)
        except CampaignError as error:
            raise CliError(error.reason) from None
        if not path.exists():
            raise CliError(
                f"there is no campaign store {path} here: create a campaign first (sms-async campaign "
                f"create), or name the store with --store or {ENV_DATABASE_URL}"
            )

    async def go() -> T:
        from sms_async.cluster import StoreUnavailableError, open_store  # noqa: PLC0415 - as above

        try:
            async with open_store(settings) as store:
                # A person waits: a store out of reach is said at once, not after the store's patience.
                await store.probe()
                return await action(store)
        except StoreUnavailableError as error:
            raise CliError(str(error), ExitCode.ABORTED) from None

    return run_async(go)


@click.group(short_help="Campaigns across machines: a PostgreSQL store and Celery workers.")
def campaign() -> None:
    """Load a campaign into the PostgreSQL store (SMS_ASYNC_DATABASE_URL), start it on Celery workers
    (SMS_ASYNC_BROKER_URL) or run it in this process, follow it, export its results, or cancel it.
    """  # noqa: D205 - click shows this text as the group's help


@campaign.command("create", epilog=_EXIT_CODES, short_help="Load recipients as a new campaign; print its id.")
@click.argument("recipients", metavar="RECIPIENTS")
@click.option("-t", "--text", required=True, help="The message text.")
@click.option("-s", "--sender-id", required=True, metavar="ID", help="Sender id.")
@input_options
@click.option(
    "--region",
    default=DEFAULT_REGION,
    show_default=True,
    metavar="CODE",
    help="Region of national spellings.",
)
@click.option(
    "--gateway",
    default=None,
    metavar="NAME",
    help=f"Gateway the workers send through (default: SMS_ASYNC_GATEWAY, else {DEFAULT_GATEWAY}).",
)
@rate_option("At most N messages a second at the gateway, across every worker of the account.")
@text_options
@params_option("Extra request parameter of every send (such as a DLT templateid), stored with the campaign.")
@keep_columns_option(
    "Keep the CSV's other columns with each row; the export writes them after the results columns."
)
@click.option(
    "--queue",
    default="sms_async",
    show_default=True,
    help="Celery queue of the campaign's shards (workers with the right account listen on it).",
)
@click.option(
    "--shard-size", type=click.IntRange(min=1), default=200, show_default=True, help="Batches per shard."
)
@click.option(
    "--window",
    "windows",
    multiple=True,
    metavar="HH:MM-HH:MM",
    help="A daily sending window, on the wall clock of --timezone (several allowed; 21:00-06:00 crosses "
    "midnight). Outside its windows the campaign sends nothing and resumes by itself; delivery polling "
    "goes on at any hour.",
)
@click.option("--timezone", metavar="ZONE", help="The windows' IANA time zone, such as Asia/Kolkata.")
@click.option(
    "--start-at",
    metavar="TIME",
    help="Send nothing before this time: ISO 8601 with an offset, such as 2026-12-07T10:00+05:30.",
)
@click.option(
    "--report-share",
    type=click.FloatRange(min=0, max=1, min_open=True),
    default=0.1,
    show_default=True,
    help="The share of the account's rate and concurrency that delivery polls may take.",
)
@click.option("--json", "as_json", is_flag=True, help='Print {"id": ...}.')
@_store_option
@_guarded
def create(
    recipients: str,
    text: str,
    sender_id: str,
    column: str | None,
    input_format: str,
    region: str,
    gateway: str | None,
    rate: float | None,
    skip_dnd: bool,
    max_segments: int | None,
    params: tuple[str, ...],
    keep_columns: bool,
    queue: str,
    shard_size: int,
    windows: tuple[str, ...],
    timezone: str | None,
    start_at: str | None,
    report_share: float,
    as_json: bool,
) -> ExitCode:
    """Read RECIPIENTS (a CSV file, one number per line, or - for standard input) into a new campaign in the
    store, cut into the same batches as 'send' would cut them, and print its id. A --text with {column}
    fields gives each recipient a text of their own from their CSV row, as 'send' does. Nothing is sent
    until 'campaign start' (or 'campaign run'). No credential is needed or stored.
    """  # noqa: D205
    from sms_async.cluster import CampaignSpec, create_campaign  # noqa: PLC0415

    how = input_format_of(input_format)
    # A schedule that cannot be kept is refused before anything is read or stored.
    Schedule.create(list(windows) or None, timezone, start_at=start_at, now=datetime.now(UTC))
    fields = checked_text(
        text, sender_id, max_segments, lambda note: click.echo(f"warning: {note}", err=True)
    )
    source = RecipientSource(
        recipients,
        column=column,
        input_format=how,
        stdin=sys.stdin.buffer,
        keep_columns=keep_columns,
        as_rows=bool(fields),
    )
    started = time.perf_counter()
    try:
        spec = CampaignSpec(
            personal_template(text, source) if fields else text,
            sender_id,
            gateway=choose_gateway(gateway, option_name="--gateway").name,
            params=parse_params(params),
            region=region.upper(),
            rate=rate,
            skip_dnd=skip_dnd,
            max_segments=max_segments,
            queue=queue,
            input_name=recipients,
            shard_size=shard_size,
            windows=windows,
            timezone=timezone,
            start_at=start_at,
            report_share=report_share,
        )

        def numbers() -> Iterator[Any]:
            try:
                yield from source
            except InputReadError as error:
                # Raised inside the loading transaction: nothing is stored.
                raise CliError(str(error)) from None

        created = _with_store(
            lambda store: create_campaign(store, spec, numbers(), rows=source), creating=True
        )
    finally:
        source.close()
    click.echo(json.dumps({"id": created.id}) if as_json else str(created.id))
    next_step = f"sms-async campaign run {created.id}"
    if _settings().shared:
        next_step = f"sms-async campaign start {created.id} (workers), or {next_step} (this process)"
    click.echo(
        f"campaign {created.id}: {created.inputs:,} inputs, {created.recipients:,} recipients, "
        f"{created.batches:,} batches in {created.shards:,} shards ({time.perf_counter() - started:.1f} s); "
        f"send it with: {next_step}",
        err=True,
    )
    return ExitCode.OK


@campaign.command("start", epilog=_EXIT_CODES, short_help="Queue a campaign's shards for the workers.")
@click.argument("campaign_id", metavar="ID", type=int)
@_store_option
@_guarded
def start(campaign_id: int) -> ExitCode:
    """Queue a task for every shard of campaign ID that has something left to send, and its delivery
    polling task. Starting a campaign that ran before resumes it: unsent batches are sent, batches already
    sent are not; a campaign with nothing left to send but numbers pending delivery has its polling queued
    again. Each start replaces the campaign's polling: one polling chain is left, however often it starts.
    """  # noqa: D205
    settings = _settings()
    if not settings.shared:
        raise CliError(
            f"the store {settings.database_url} is a file of this machine, which Celery workers elsewhere "
            f"cannot reach: send the campaign from here with 'sms-async campaign run {campaign_id}', or keep "
            f"campaigns in a PostgreSQL store (--store or {ENV_DATABASE_URL}=postgresql://...)"
        )
    return _queue(campaign_id, settings)


def _queue(campaign_id: int, settings: ClusterSettings, *, reports: bool = True) -> ExitCode:
    """Start the campaign and queue its shards with work left on the broker (and, with ``reports``,
    its delivery polling task, which keeps itself queued while it runs or numbers are pending).
    """  # noqa: D205
    try:
        from sms_async.cluster.celery import (  # noqa: PLC0415
            BrokerUnavailableError,
            app,
            check_broker,
            configure,
            enqueue,
        )
    except ImportError as error:
        raise CliError(f"{error}: pip install 'sms_async[cluster]'") from None
    configure(app, settings.broker_url)
    before = _with_store(lambda store: store.campaign(campaign_id))
    if before.state not in _REFUSED_BY_START:
        try:
            # Before anything is marked running: a campaign nobody can work on must not look started.
            check_broker(app)
        except BrokerUnavailableError as error:
            raise CliError(f"campaign {campaign_id} was not started: {error}", ExitCode.ABORTED) from None
    from sms_async.cluster import start_campaign  # noqa: PLC0415

    started = _with_store(
        lambda store: start_campaign(store, campaign_id, polling=reports, on_restart=_say_started_before)
    )
    found, shards, pending, generation = started.campaign, started.shards, started.pending, started.generation
    if not shards and generation is None:
        click.echo(f"campaign {campaign_id}: nothing left to send ({found.state})")
        return ExitCode.OK
    try:
        enqueue(found, shards, reports=generation is not None, generation=generation)
    except Exception as error:  # noqa: BLE001 - kombu raises many kinds; all mean the same here
        what = "its shards" if shards else "its delivery polling"
        raise CliError(
            f"campaign {campaign_id} is marked running, but {what} could not be queued "
            f"({type(error).__name__}: {redact(str(error))[:200]}): run 'sms-async campaign start "
            f"{campaign_id}' again once the broker (SMS_ASYNC_BROKER_URL) can be reached",
            ExitCode.ABORTED,
        ) from None
    if shards:
        click.echo(f"campaign {campaign_id}: {len(shards)} shards queued on {found.queue!r}")
    else:
        click.echo(
            f"campaign {campaign_id}: nothing left to send ({found.state}); delivery polling queued for "
            f"{pending:,} pending numbers"
        )
    return ExitCode.OK


# States whose start the store refuses with its own reason (which the broker's state must not hide).
_REFUSED_BY_START = frozenset({"cancelled", "loading"})


def _say_started_before(before: StoredCampaign) -> None:
    """Say what became of an earlier start of the campaign being started."""
    click.echo(_started_before(before))


def _started_before(before: StoredCampaign) -> str:
    """What a start found: the campaign had been started, and how that went."""
    assert before.started_at is not None  # noqa: S101 - only called for a started campaign
    since = f"campaign {before.id} was started at {before.started_at:%Y-%m-%d %H:%M:%S %Z}"
    if before.state == "running":
        return (
            f"{since} and is running: its unfinished shards are queued again (a batch is never sent twice; "
            "workers already on a shard carry on)"
        )
    if before.state == "aborted":
        return f"{since} and was aborted ({before.stop_reason}): its unsent batches are sent now"
    return f"{since} and is {before.state}: its unsent batches, if any, are sent now"


@campaign.command(
    "run", epilog=_EXIT_CODES, short_help="Send a campaign from this process: no broker, no worker."
)
@click.argument("campaign_id", metavar="ID", type=int)
@_concurrency_option
@click.option(
    "--reports",
    is_flag=True,
    help="After the sends, keep polling delivery reports until no number is pending (up to 72 h).",
)
@_store_option
@_guarded
def run_here(campaign_id: int, concurrency: int, reports: bool) -> ExitCode:
    """Send what is left of campaign ID from this process, shard after shard, with the gateway account of
    this process's environment or config file (as a worker has it), then show its status. Workers may run
    it at the same time: no batch is ever sent twice. Outside the campaign's sending windows it waits
    for the next one. Interrupted or paused, it is resumed by 'campaign run' or 'campaign start' again.
    With --reports it then polls delivery reports until no number is pending.
    """  # noqa: D205
    settings = _settings(concurrency=concurrency)
    from sms_async.cluster import driver_from_environment, poll_reports, run_shard, start_campaign  # noqa: PLC0415

    _, err_console = consoles()

    async def go(store: Store) -> tuple[CampaignStatus, DeliveryTally]:
        started = await start_campaign(store, campaign_id, polling=False, on_restart=_say_started_before)
        found, shards = started.campaign, started.shards
        driver = driver_from_environment(found.gateway)
        for shard in shards:
            # No time budget: nothing here hands the rest of a shard to a new task.
            options = {**settings.shard_options(), "budget": math.inf}
            report = await run_shard(store, campaign_id, shard, driver=driver, **options)
            if report.stopped is not None:
                break
        if reports:
            with _ReportsProgress(err_console, campaign_id) as progress:
                await poll_reports(
                    store,
                    campaign_id,
                    driver=driver,
                    until_settled=True,
                    concurrency=concurrency,
                    on_round=progress.show,
                )
        return await store.status(campaign_id), await store.delivery_tally(campaign_id)

    found, tally = _with_store(go)
    _print_status(found, tally)
    return _status_code(found)


@campaign.command("status", epilog=_EXIT_CODES, short_help="Counts per outcome and per batch state.")
@click.argument("campaign_id", metavar="ID", type=int)
@click.option("--wait", is_flag=True, help="Block until the campaign is done (or stopped and settled).")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    help="Seconds between looks.",
)
@click.option(
    "--timeout", type=click.FloatRange(min=0, min_open=True), help="With --wait: give up after this."
)
@click.option(
    "--idle",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="With --wait: stop waiting once no worker has worked on the campaign for this many seconds.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@_store_option
@_guarded
def status(
    campaign_id: int, wait: bool, interval: float, timeout: float | None, idle: float, as_json: bool
) -> ExitCode:
    """Show how campaign ID stands: inputs per outcome and batches per state. With --wait, a line on a
    terminal shows the progress until the campaign is done, and waiting stops when nobody works on it.
    """  # noqa: D205
    settings = _settings()
    from sms_async.cluster import wait_for_campaign  # noqa: PLC0415

    _, err_console = consoles()

    async def look(store: Store) -> tuple[CampaignStatus, DeliveryTally, Unattended | None]:
        if not wait:
            return await store.status(campaign_id), await store.delivery_tally(campaign_id), None
        with _Progress(err_console, enabled=True) as progress:
            # Between looks the campaign is kept up: a stopped one's dead workers' batches are settled.
            waited = await wait_for_campaign(
                store,
                campaign_id,
                lease=settings.lease,
                idle=idle,
                interval=interval,
                timeout=timeout,
                on_look=progress.show,
            )
            return waited.status, await store.delivery_tally(campaign_id), waited.unattended

    found, tally, unattended = _with_store(look)
    if as_json:
        click.echo(json.dumps(_status_document(found, tally)))
    else:
        _print_status(found, tally)
    if unattended is not None:
        say_error(f"stopped waiting: {_unattended_hint(unattended)}")
    return _status_code(found)


def _status_code(found: CampaignStatus) -> ExitCode:
    if found.campaign.state == "aborted":
        return ExitCode.ABORTED
    if found.campaign.state == "done" and found.all_accepted:
        return ExitCode.OK
    return ExitCode.NOT_ALL_ACCEPTED


def _unattended_hint(unattended: Unattended) -> str:
    """Why waiting stopped (see :func:`sms_async.cluster.nobody_works_on`), and the command that helps."""
    c = unattended.campaign
    if unattended.why == "not_started":
        return f"{unattended}: start it with 'sms-async campaign start {c.id}'"
    if unattended.why == "paused":
        return f"{unattended}: resume it with 'sms-async campaign resume {c.id}'"
    return (
        f"{unattended}: is 'sms-async worker' running on queue {c.queue!r} with the broker of "
        f"SMS_ASYNC_BROKER_URL? Once it is, 'sms-async campaign start {c.id}' queues the shards again "
        "(a batch is never sent twice)"
    )


class _Progress:
    """One line on a terminal's standard error while ``status --wait`` waits: inputs settled of all."""

    def __init__(self, console: Console, *, enabled: bool) -> None:
        self._status = console.status("") if enabled and console.is_terminal else None

    def __enter__(self) -> _Progress:
        if self._status is not None:
            self._status.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._status is not None:
            self._status.__exit__(None, None, None)

    def show(self, found: CampaignStatus) -> None:
        if self._status is not None:
            c = found.campaign
            self._status.update(
                f"campaign {c.id} {c.state}: {found.settled:,} of {c.inputs:,} inputs settled, "
                f"{found.outcomes[Outcome.ACCEPTED]:,} accepted"
            )


def _waiting(c: StoredCampaign) -> str | None:
    """Why the campaign claims nothing now (its window or start time), if it is waiting for one."""
    if c.state not in {"ready", "running"}:
        return None
    return c.schedule.waiting_message(datetime.now(UTC))


def _status_document(found: CampaignStatus, tally: DeliveryTally | None = None) -> dict[str, Any]:
    c = found.campaign
    return {
        "id": c.id,
        "state": c.state,
        "finished": found.finished,
        "inputs": c.inputs,
        "recipients": c.recipients,
        "outcomes": {outcome.value: count for outcome, count in found.outcomes.items()},
        "not_settled": c.inputs - found.settled,
        "batches": found.batches,
        "parts": {"fewest": found.fewest_parts, "most": found.most_parts},
        "credits": found.credits,
        "requests": found.requests,
        "retries": found.retries,
        "gateway": c.gateway,
        "params": c.params,
        "rate": c.rate,
        "queue": c.queue,
        "created_at": c.created_at.isoformat(),
        "started_at": c.started_at.isoformat() if c.started_at else None,
        "finished_at": c.finished_at.isoformat() if c.finished_at else None,
        "stop_reason": c.stop_reason,
        "paused": c.paused,
        "windows": c.windows,
        "timezone": c.timezone,
        "start_at": c.start_at,
        "waiting": _waiting(c),
        "report_share": c.report_share,
        "delivery": delivery_document(tally or DeliveryTally()),
    }


def _print_status(found: CampaignStatus, tally: DeliveryTally | None = None) -> None:
    c = found.campaign
    rate = f", at most {c.rate:g}/s" if c.rate else ""
    paused = ", paused" if c.paused and c.state not in {"done", "cancelled", "aborted"} else ""
    click.echo(
        f"campaign {c.id}: {c.state}{paused} ({c.gateway}{rate}, queue {c.queue!r}, input {c.input_name})"
    )
    waiting = _waiting(c)
    if c.paused and not paused:
        waiting = None
    if waiting is not None:
        click.echo(f"  {waiting}")
    if c.windows:
        click.echo(f"  windows     {c.windows} ({c.timezone})")
    click.echo(f"  inputs      {c.inputs:,} ({c.recipients:,} distinct valid numbers)")
    for outcome, count in found.outcomes.items():
        click.echo(f"  {outcome.value:<11} {count:,}")
    if found.settled < c.inputs:
        click.echo(f"  {'not yet':<11} {c.inputs - found.settled:,}")
    shown = ", ".join(f"{state} {count:,}" for state, count in found.batches.items())
    click.echo(f"  batches     {shown}")
    fewest, most = found.fewest_parts, found.most_parts
    parts = "none" if not most else f"{most}" if fewest == most else f"{fewest} to {most}"
    click.echo(
        f"  parts       {parts} per text; credits spent: {found.credits:,} (the parts of each accepted text)"
    )
    if c.params:
        click.echo(f"  parameters  {', '.join(f'{name}={value}' for name, value in c.params.items())}")
    if tally is not None and tally.accepted:
        click.echo(f"  delivery    {delivery_line(tally)}")
    if c.stop_reason:
        click.echo(f"  stopped: {c.stop_reason}")
    if paused:
        click.echo(f"paused: nothing more is sent until 'sms-async campaign resume {c.id}'")
    unknown = found.outcomes[Outcome.UNKNOWN]
    if found.finished and unknown:
        click.echo(
            f"{unknown:,} unknown: may or may not have been sent; they are never sent again. Export the "
            "results and check them with: sms-async status RESULTS"
        )
    if found.finished and found.batches["unsent"] and c.state != "cancelled":
        click.echo(f"unsent batches are sent by: sms-async campaign start {c.id}")


@campaign.command("export", epilog=_EXIT_CODES, short_help="Write one row per input to a results file.")
@click.argument("campaign_id", metavar="ID", type=int)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Results file: *.jsonl (JSON Lines) or *.csv.",
)
@click.option(
    "--partial",
    is_flag=True,
    help="Export a campaign still running (rows not settled yet show as pending).",
)
@click.option(
    "--no-delivery",
    "without_delivery",
    is_flag=True,
    help="Leave out the delivery and delivered_at columns (the rows exactly as 'send' writes them).",
)
@_store_option
@_guarded
def export(campaign_id: int, output: Path, partial: bool, without_delivery: bool) -> ExitCode:
    """Write one row per input of campaign ID to --output, in input order, with the columns row, input, e164,
    outcome, message_id and reason (the rows 'send' writes), then delivery (pending, delivered, undelivered,
    failed, expired; empty for a number not accepted) and delivered_at (when it became final).
    """  # noqa: D205
    try:
        kind = results_format(output)
    except CampaignError as error:
        raise CliError(error.reason) from None

    async def write(store: Store) -> CampaignStatus:
        found = await store.status(campaign_id)
        if not found.finished and not partial:
            raise CliError(
                f"campaign {campaign_id} is still {found.campaign.state}: wait with "
                f"'sms-async campaign status {campaign_id} --wait', or pass --partial for the rows so far"
            )
        try:
            with output.open("w", encoding="utf-8", newline="") as file:
                columns = found.campaign.columns
                file.write(results_header(kind, columns, delivery=not without_delivery).decode())
                async for entry, kept, state, at in store.export_deliveries(campaign_id):
                    delivery = None if without_delivery else (state, at)
                    file.write(encode_row(entry, kind, columns, kept, delivery=delivery))
        except OSError as error:
            raise CliError(f"cannot write {output}: {error.strerror}", ExitCode.ABORTED) from None
        return found

    found = _with_store(write)
    click.echo(f"{found.campaign.inputs:,} rows: {output}", err=True)
    return ExitCode.OK


@campaign.command(
    "cancel", epilog=_EXIT_CODES, short_help="Stop a campaign: its pending batches become unsent."
)
@click.argument("campaign_id", metavar="ID", type=int)
@_store_option
@_guarded
def cancel(campaign_id: int) -> ExitCode:
    """Cancel campaign ID: batches not sent yet become unsent (and are never sent); those in flight finish."""

    async def stop(store: Store) -> tuple[bool, CampaignStatus]:
        stopped = await store.stop(campaign_id, "cancelled", "the campaign was cancelled")
        return stopped, await store.status(campaign_id)

    stopped, found = _with_store(stop)
    if not stopped:
        click.echo(f"campaign {campaign_id} is {found.campaign.state}: nothing to cancel")
        return ExitCode.OK
    click.echo(
        f"campaign {campaign_id} cancelled: {found.outcomes[Outcome.UNSENT]:,} inputs unsent; "
        f"{found.batches['sending']:,} batches in flight will finish"
    )
    return ExitCode.OK


@campaign.command("reports", epilog=_EXIT_CODES, short_help="Poll delivery reports now, in this process.")
@click.argument("campaign_id", metavar="ID", type=int)
@click.option("--wait", is_flag=True, help="Keep polling, as polls fall due, until no number is pending.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="With --wait: stop after this many seconds.",
)
@_concurrency_option
@_store_option
@_guarded
def reports(campaign_id: int, wait: bool, timeout: float | None, concurrency: int) -> ExitCode:
    """Ask the gateway now about the message ids of campaign ID whose poll is due, with the gateway account of
    this process's environment or config file, and record what it says. With --wait, keep polling as polls
    fall due (30 s, 2 min, 10 min and 1 h after acceptance, then hourly, for up to 72 h) until no number is
    pending. Workers and other pollers may poll it at the same time: no id is polled by two at once.
    """  # noqa: D205
    _settings()
    from sms_async.cluster import driver_from_environment, poll_reports  # noqa: PLC0415

    _, err_console = consoles()

    async def go(store: Store) -> tuple[CampaignStatus, DeliveryTally, datetime | None]:
        found = await store.campaign(campaign_id)
        with _ReportsProgress(err_console, campaign_id) as progress:
            polled = await poll_reports(
                store,
                campaign_id,
                driver=driver_from_environment(found.gateway),
                until_settled=wait,
                budget=math.inf if timeout is None else timeout,
                concurrency=concurrency,
                on_round=progress.show,
            )
        return await store.status(campaign_id), polled.tally, polled.next_due

    found, tally, next_due = _with_store(go)
    click.echo(f"campaign {campaign_id} delivery: {delivery_line(tally)}")
    if tally.pending and next_due is not None:
        click.echo(f"next poll due at {next_due:%Y-%m-%d %H:%M:%S %Z}", err=True)
    # Numbers in doubt (unknown) are tracked when they have a message id; the others never can be.
    untracked = found.outcomes[Outcome.UNKNOWN] - (tally.accepted - found.outcomes[Outcome.ACCEPTED])
    if untracked > 0:
        click.echo(
            f"{untracked:,} numbers whose outcome is unknown have no message id and cannot be polled: "
            "check them in the gateway's portal",
            err=True,
        )
    return ExitCode.OK if not tally.pending else ExitCode.NOT_ALL_ACCEPTED


class _ReportsProgress(StatusLine):
    """One line on a terminal's standard error while delivery reports are polled."""

    def __init__(self, console: Console, campaign_id: int) -> None:
        super().__init__(console)
        self._campaign = campaign_id
        self._ids = self._requests = 0

    def started(self) -> None:
        self.update(f"campaign {self._campaign}: polling delivery reports")

    def show(self, done: PollRound) -> None:
        self._ids += done.ids
        self._requests += done.requests
        self.update(
            f"campaign {self._campaign}: {self._ids:,} message ids polled in {self._requests:,} "
            "requests; waiting for the next poll"
        )


@campaign.command("pause", epilog=_EXIT_CODES, short_help="Pause a campaign: it claims no more batches.")
@click.argument("campaign_id", metavar="ID", type=int)
@_store_option
@_guarded
def pause(campaign_id: int) -> ExitCode:
    """Pause campaign ID: no more batches are claimed; batches in flight finish; delivery polling goes on.
    'campaign resume' goes on where it stopped: nothing is lost or sent twice.
    """  # noqa: D205

    async def go(store: Store) -> tuple[bool, CampaignStatus]:
        return await store.set_paused(campaign_id, True), await store.status(campaign_id)

    changed, found = _with_store(go)
    if not changed:
        c = found.campaign
        click.echo(f"campaign {campaign_id} is {'paused already' if c.paused else c.state}: nothing to pause")
        return ExitCode.OK
    click.echo(
        f"campaign {campaign_id} paused: {found.batches['sending']:,} batches in flight will finish; "
        f"resume it with: sms-async campaign resume {campaign_id}"
    )
    return ExitCode.OK


@campaign.command("resume", epilog=_EXIT_CODES, short_help="Resume a paused campaign.")
@click.argument("campaign_id", metavar="ID", type=int)
@_store_option
@_guarded
def resume(campaign_id: int) -> ExitCode:
    """Resume campaign ID after 'campaign pause'. A campaign running on workers has its shards queued again;
    one sent from a process ('campaign run') goes on with 'campaign run' again.
    """  # noqa: D205
    settings = _settings()

    async def go(store: Store) -> tuple[bool, StoredCampaign]:
        return await store.set_paused(campaign_id, False), await store.campaign(campaign_id)

    changed, found = _with_store(go)
    if not changed:
        click.echo(f"campaign {campaign_id} is {found.state} and not paused: nothing to resume")
        return ExitCode.OK
    if found.state != "running":
        click.echo(f"campaign {campaign_id} resumed; it is {found.state}")
        return ExitCode.OK
    if settings.shared:
        click.echo(f"campaign {campaign_id} resumed: its shards are queued again for the workers")
        # Its polling task went on while it was paused.
        return _queue(campaign_id, settings, reports=False)
    click.echo(f"campaign {campaign_id} resumed: go on sending it with: sms-async campaign run {campaign_id}")
    return ExitCode.OK


@click.command(short_help="A Celery worker that sends campaign shards.")
@_concurrency_option
@click.option(
    "-Q",
    "--queues",
    default="sms_async",
    show_default=True,
    help="Comma-separated queues to take shards from.",
)
@click.option(
    "--shards", type=click.IntRange(min=1, max=64), default=1, show_default=True, help="Shards run at once."
)
@click.option(
    "--loglevel",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.option(
    "--gateway",
    default=None,
    metavar="NAME",
    help=f"Gateway whose account is checked on start (default: SMS_ASYNC_GATEWAY, else {DEFAULT_GATEWAY}).",
)
def worker(concurrency: int, queues: str, shards: int, loglevel: str, gateway: str | None) -> None:
    """Run a Celery worker that sends campaign shards. It needs SMS_ASYNC_DATABASE_URL, SMS_ASYNC_BROKER_URL
    and the gateway account in its own environment (SMS_ASYNC_USERNAME, SMS_ASYNC_PASSWORD, ...) or config
    file.
    """  # noqa: D205
    try:
        settings = _worker_settings(concurrency)
        from sms_async.cluster import StoreUnavailableError  # noqa: PLC0415
        from sms_async.cluster.celery import app, configure, prepare  # noqa: PLC0415
    except (CliError, UsageError, ImportError) as error:
        message = error.message if isinstance(error, CliError) else str(error)
        click.echo(f"Error: {redact(message)}", err=True)
        raise click.exceptions.Exit(int(ExitCode.USAGE)) from None
    _check_worker_account(choose_gateway(gateway, option_name="--gateway").name)
    try:
        prepare(settings)
    except StoreUnavailableError as error:
        if error.permanent:
            click.echo(f"Error: {redact(str(error))}", err=True)
            raise click.exceptions.Exit(int(ExitCode.ABORTED)) from None
        click.echo(f"warning: {redact(str(error))}; the worker starts anyway", err=True)
    except Exception as error:  # noqa: BLE001 - the store may come back: the tasks retry it
        click.echo(f"warning: {redact(str(error))}; the worker starts anyway", err=True)
    # Every shard task of this process reads its settings from the environment.
    os.environ["SMS_ASYNC_CONCURRENCY"] = str(concurrency)
    configure(app, settings.broker_url)
    app.worker_main(
        [
            "worker",
            "--pool=threads",
            f"--concurrency={shards}",
            f"--queues={queues}",
            "--prefetch-multiplier=1",
            "--without-gossip",
            "--without-mingle",
            f"--hostname=sms-async-{os.getpid()}@%h",
            f"--loglevel={loglevel.upper()}",
        ]
    )


def _worker_settings(concurrency: int) -> ClusterSettings:
    """A worker's settings; a store that is no shared one is refused."""
    settings = _settings(concurrency=concurrency)
    if not settings.shared:
        raise CliError(
            f"workers share a PostgreSQL campaign store: set {ENV_DATABASE_URL} to one, such as "
            "postgresql://sms@db-host:5432/sms (a SQLite store is sent from its machine with "
            "'sms-async campaign run ID')"
        )
    return settings


def _check_worker_account(gateway_name: str) -> None:
    """Refuse to start (exit 3) a worker whose account is missing or refused; warn when it cannot be asked."""
    from sms_async._exceptions import AuthenticationError, ConfigurationError, SmsError  # noqa: PLC0415
    from sms_async.cluster import check_account, driver_from_environment  # noqa: PLC0415

    def refuse(message: str) -> NoReturn:
        click.echo(f"Error: {redact(message)}; the worker does not start", err=True)
        raise click.exceptions.Exit(int(ExitCode.ABORTED))

    try:
        driver = driver_from_environment(gateway_name)
    except ConfigurationError as error:
        refuse(error.reason)
    try:
        run_async(check_account, driver)
    except AuthenticationError as error:
        refuse(
            f"the {gateway_name} gateway refuses this worker's credentials ({error.reason}): fix "
            "SMS_ASYNC_USERNAME and SMS_ASYNC_PASSWORD (or the config file's section) and start it again"
        )
    except SmsError as error:
        click.echo(
            f"warning: could not check the {gateway_name} account ({redact(error.reason)}); "
            "the worker starts anyway",
            err=True,
        )


def register(group: click.Group) -> None:
    """Add ``campaign`` and ``worker`` to the ``sms-async`` command group."""
    group.add_command(campaign)
    group.add_command(worker)
