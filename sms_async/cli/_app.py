"""The ``sms-async`` command group: thin click commands over the library and :mod:`sms_async.campaign`.

Each command lives in its own module (``_send``, ``_status``, ``_lookups``)
and is added to :data:`cli` here; commands from other packages are added the
same way, one line each.
"""

from __future__ import annotations

from pathlib import Path

import click

from sms_async import __version__
from sms_async.campaign import DEFAULT_GATEWAY
from sms_async.cli._cluster import register as register_cluster_commands
from sms_async.cli._errors import EXIT_CODES_HELP, ExitCode
from sms_async.cli._lookups import balance, dnd
from sms_async.cli._options import Account, GatewayChoice, consoles, gateway_options, guarded
from sms_async.cli._send import send
from sms_async.cli._status import status
from sms_async.providers import gateway_names

__all__ = ["cli", "main"]

# The shared pieces under the names commands defined elsewhere know them by.
_Account = Account
_consoles = consoles
_gateway_options = gateway_options
_guarded = guarded

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

_MAIN_HELP = f"""Send SMS texts to very many recipients through a gateway (registered now:
{", ".join(gateway_names())}), and account for every one.

\b
  sms-async demo                         try it against a simulated gateway
  sms-async send numbers.csv --column phone --text "Hello" \\
                 --sender-id ITONAB --output results.jsonl
  sms-async status results.jsonl --poll  delivery reports for what was sent

\b
Credentials come from the environment (SMS_ASYNC_USERNAME, SMS_ASYNC_PASSWORD:
SMS_ASYNC_<SETTING> for each setting of the gateway) or from a TOML config file (--config, or
~/.config/sms-async/config.toml) with a section per gateway ([{DEFAULT_GATEWAY}], ...);
they are never needed on the command line.

{EXIT_CODES_HELP}
"""


@click.group(context_settings=_CONTEXT, help=_MAIN_HELP)
@click.version_option(__version__, prog_name="sms-async")
def cli() -> None:
    """The ``sms-async`` command group."""


cli.add_command(send)
cli.add_command(status)
cli.add_command(balance)
cli.add_command(dnd)
register_cluster_commands(cli)  # campaign (create, start, status, export, cancel) and worker


@cli.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
    short_help="Serve a simulated gateway, every protocol registered, on loopback (see: simulate --help).",
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
@click.option(
    "--gateway",
    type=GatewayChoice(),
    default=DEFAULT_GATEWAY,
    show_default=True,
    help="Which of the simulator's gateways to send through.",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the generated campaign.")
@click.option("--no-faults", is_flag=True, help="Do not inject 429s, a 503 and a dropped connection.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@guarded
def demo(count: int, output: Path, gateway: str, seed: int, no_faults: bool, quiet: bool) -> ExitCode:
    """Start a simulated gateway in this process, send it a generated campaign (valid Indian mobile numbers
    in mixed spellings, some invalid and duplicate entries) with a few injected faults, poll the delivery
    reports, and print a summary. Nothing leaves this machine.
    """  # noqa: D205
    from sms_async.cli._demo import run_demo  # noqa: PLC0415 - loads the simulator only when asked for

    console, err_console = consoles()
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
