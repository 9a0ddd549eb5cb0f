"""The ``balance`` and ``dnd`` commands: look-ups a gateway may or may not offer (its driver says which)."""

from __future__ import annotations

from decimal import Decimal

import click
from rich.markup import escape
from rich.table import Table

from sms_async._engine import BulkSender
from sms_async._exceptions import SmsError
from sms_async.cli._campaign import make_normaliser
from sms_async.cli._config import GatewaySettings, build_driver, driver_class
from sms_async.cli._errors import EXIT_CODES_HELP, CliError, ExitCode, run_async
from sms_async.cli._io import InputReadError, RecipientSource
from sms_async.cli._options import Account, consoles, gateway_options, guarded, stdin

__all__ = ["balance", "dnd"]


def _require(settings: GatewaySettings, capability: str, what: str) -> None:
    """Refuse a look-up the gateway's driver does not offer, before any request."""
    if not getattr(driver_class(settings.gateway).capabilities, capability):
        raise CliError(f"{settings.gateway} has no {what} look-up: its gateway documents no such command")


@click.command(epilog=EXIT_CODES_HELP, short_help="The account's remaining credits.")
@gateway_options
@guarded
def balance(account: Account, concurrency: int) -> ExitCode:
    """Print the account's remaining credits (for gateways that have a balance look-up)."""
    console, _ = consoles()
    settings = account.settings()
    _require(settings, "balance", "balance")
    driver = build_driver(settings)

    async def look_up() -> Decimal:
        async with BulkSender(driver, concurrency=concurrency, default_region=settings.region) as bulk:
            return await bulk.balance()

    remaining = run_async(look_up)
    console.print(f"Remaining credits: {remaining}", markup=False)
    return ExitCode.OK


@click.command(epilog=EXIT_CODES_HELP, short_help="Which numbers are on the do-not-disturb list.")
@click.argument("numbers", nargs=-1)
@click.option(
    "-f",
    "--file",
    "numbers_file",
    metavar="PATH",
    help="Also read numbers from this file (CSV with --column, or one per line; - for standard input).",
)
@click.option("-c", "--column", metavar="NAME", help="CSV column holding the numbers.")
@gateway_options
@guarded
def dnd(
    numbers: tuple[str, ...],
    numbers_file: str | None,
    column: str | None,
    account: Account,
    concurrency: int,
) -> ExitCode:
    """Check NUMBERS (and those in --file) against the do-not-disturb list. Exit status 0 when every number
    was valid and checked, 1 when some were invalid.
    """  # noqa: D205
    console, _ = consoles()
    settings = account.settings()
    _require(settings, "dnd", "do-not-disturb")
    normaliser = make_normaliser(settings.region)
    raw_numbers = list(numbers)
    if numbers_file is not None:
        source = RecipientSource(numbers_file, column=column, stdin=stdin())
        try:
            for chunk in source.chunks():
                raw_numbers.extend(chunk)
        except InputReadError as error:
            raise CliError(str(error)) from None
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

    listed = run_async(look_up) if valid else {}
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
