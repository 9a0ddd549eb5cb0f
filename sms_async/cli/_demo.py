"""``sms-async demo``: a whole campaign against a simulated gateway, in well under a minute.

It starts :class:`~sms_async.testing.SimulatedGateway` in this process (on
127.0.0.1), writes a generated campaign to a temporary CSV file (valid Indian
mobile numbers in the spellings people really type, some repeated, some
invalid), injects a few faults (429s, a 503, a connection dropped after the
request was read), sends through the same path as ``send`` (the real
:class:`~sms_async.BulkSender`, the journal, the results file), polls the
delivery reports briefly, and prints what became of every recipient.
"""

from __future__ import annotations

import csv
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Final

import attrs
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sms_async._engine import BulkSender
from sms_async._models import DeliveryReport, DeliveryStatus, Outcome
from sms_async._phone import PhoneNormaliser
from sms_async.campaign import CampaignError, results_format, scan_results, setting_variable
from sms_async.cli._campaign import SendOptions, run_send
from sms_async.cli._config import GatewaySettings, build_driver
from sms_async.cli._errors import CliError, ExitCode, run_async
from sms_async.cli._status import poll_reports
from sms_async.cli._summary import describe_aborted
from sms_async.testing import Fault, SimulatedGateway, registered_protocols

__all__ = ["CampaignShape", "demo_faults", "generate_campaign", "next_step_hint", "run_demo"]

DEMO_TEXT: Final = (
    "Namaste! Your order #4521 has shipped and arrives tomorrow. Track it: https://example.in/t/4521"
)
DEMO_SENDER: Final = "SHOPIN"
# Where the hint's simulator listens (sms-async simulate --port 8080).
_HINT_PORT: Final = 8080
_HINT_ORIGIN: Final = f"http://127.0.0.1:{_HINT_PORT}"

_FIRST = (
    "Aarav",
    "Vivaan",
    "Aditya",
    "Ananya",
    "Diya",
    "Ishaan",
    "Kavya",
    "Meera",
    "Rohan",
    "Saanvi",
    "Arjun",
)
_LAST = ("Sharma", "Verma", "Iyer", "Reddy", "Nair", "Patel", "Gupta", "Singh", "Das", "Menon", "Khan")
_CITIES = ("Mumbai", "Delhi", "Bengaluru", "Chennai", "Kolkata", "Hyderabad", "Pune", "Jaipur", "Kochi")

# The ways people write one Indian mobile number (all valid under region IN).
_SPELLINGS: Final[tuple[Callable[[str], str], ...]] = (
    lambda d: f"+91 {d[:5]} {d[5:]}",
    lambda d: f"+91{d}",
    lambda d: f"0{d[:5]} {d[5:]}",
    lambda d: d,
    lambda d: f"91-{d[:5]}-{d[5:]}",
    lambda d: f"0091 {d}",
    lambda d: f"+91-{d[:5]}-{d[5:]}",
    lambda d: f"+91.{d[:3]}.{d[3:6]}.{d[6:]}",
)

_DUPLICATE_RATE: Final = 0.01
_INVALID_RATE: Final = 0.005


@attrs.frozen
class CampaignShape:
    """What the generated campaign holds."""

    valid: int
    repeated: int
    invalid: int

    @property
    def total(self) -> int:
        """Rows written."""
        return self.valid + self.repeated + self.invalid


def _invalid_entry(rng: random.Random) -> str:
    kind = rng.randrange(7)
    if kind == 0:
        return str(rng.randrange(10_000, 99_999))  # too short
    if kind == 1:
        return f"98{rng.randrange(10**6, 10**7)}"  # nine digits
    if kind == 2:
        return (
            f"+91 {rng.randrange(1, 6)}{rng.randrange(10**8, 10**9)}"  # no mobile starts with 1-5 like this
        )
    if kind == 3:
        return f"98123 4567{rng.choice('xyz')}"  # a letter
    if kind == 4:
        return rng.choice(("N/A", "none", "-", "call office", "TBD"))
    if kind == 5:
        return f"+1 {rng.randrange(10**9, 10**10)}"[:8]  # cut short
    return f"{rng.randrange(6, 10)}{rng.randrange(10**9, 10**10)}"  # eleven digits


def generate_campaign(path: Path, count: int, seed: int) -> CampaignShape:
    """Write a CSV (``name,phone,city``) with ``count`` distinct valid numbers plus repeats and invalid rows.

    Written row by row: a campaign of millions never sits in memory.
    """
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not security
    normaliser = PhoneNormaliser("IN")
    digits = rng.sample(range(6_000_000_000, 10_000_000_000), count)
    repeated = invalid = 0
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(("name", "phone", "city"))
        for position, number in enumerate(digits):
            text = str(number)
            writer.writerow((_name(rng), rng.choice(_SPELLINGS)(text), rng.choice(_CITIES)))
            if position and rng.random() < _DUPLICATE_RATE:
                again = str(digits[rng.randrange(position)])
                writer.writerow((_name(rng), rng.choice(_SPELLINGS)(again), rng.choice(_CITIES)))
                repeated += 1
            if rng.random() < _INVALID_RATE:
                entry = _invalid_entry(rng)
                if normaliser.normalise_or_none(entry) is None:
                    writer.writerow((_name(rng), entry, rng.choice(_CITIES)))
                    invalid += 1
    return CampaignShape(count, repeated, invalid)


def _name(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"


def demo_faults(count: int, operations: frozenset[str]) -> list[Fault]:
    """A few 429s, a 503 and a connection dropped after the request was read, spread over the run."""
    batches = max(count // 100, 1)
    taken: set[int] = set()

    def at(fraction: float) -> frozenset[int]:
        request = max(int(batches * fraction), 1)
        while request in taken:
            request += 1
        taken.add(request)
        return frozenset({request})

    ops = operations
    return [
        Fault("status_429", on_requests=at(0.02) | at(0.021) | at(0.4), retry_after=0.2, operations=ops),
        Fault("status_503", on_requests=at(0.6), retry_after=0.2, operations=ops),
        # process=True: the gateway sends the messages, then the answer is lost.
        Fault("drop_after_read", on_requests=at(0.8), process=True, operations=ops),
    ]


def run_demo(
    *,
    count: int,
    output: Path,
    gateway: str,
    seed: int,
    faults: bool,
    progress: bool,
    console: Console,
    err_console: Console,
) -> ExitCode:
    """Run the demo and print its summary; returns the exit status."""
    output = output.expanduser().resolve()
    try:
        results_format(output)
    except CampaignError as error:
        raise CliError(error.reason) from None
    served = {protocol.name: protocol for protocol in registered_protocols()}
    if gateway not in served:
        raise CliError(f"the simulated gateway serves {', '.join(served)}, not {gateway}")
    # Faults go to the chosen gateway's sends: its operations named for sending.
    sends = frozenset(op for op in served[gateway].operations if op.split(".", 1)[1].startswith("send"))
    injected = demo_faults(count, sends) if faults else []
    with (
        tempfile.TemporaryDirectory(prefix="sms-async-demo-") as scratch,
        SimulatedGateway(
            faults=injected,
            status_delays=(0.1, 0.3),
            undelivered_rate=0.03,
            failed_rate=0.01,
            seed=seed,
        ) as simulated,
    ):
        console.print(
            f"Simulated gateway ({', '.join(p.title or p.name for p in served.values())}) listening on "
            f"{simulated.origin}, sending through {served[gateway].title or gateway} (loopback: nothing "
            "leaves this machine)",
            markup=False,
        )
        hint = next_step_hint(gateway, simulated.protocol(gateway).base_url(_HINT_ORIGIN))
        recipients = Path(scratch) / "recipients.csv"
        shape = generate_campaign(recipients, count, seed)
        # Only the generator's input is told here: what became of the rows comes from the campaign's tally.
        console.print(
            f"Campaign: {shape.valid:,} Indian mobile numbers in mixed spellings, as a CSV with some rows "
            "repeated and some invalid"
            + (", with 3 x 429, 1 x 503 and 1 dropped connection injected" if faults else ""),
            markup=False,
        )
        settings = GatewaySettings(
            gateway=gateway,
            values={
                "username": simulated.username,
                "password": simulated.password,
                "base_url": simulated.url(gateway),
            },
            sender_id=DEMO_SENDER,
            region="IN",
            source="the simulated gateway",
        )
        outcome = run_send(
            SendOptions(
                recipients=str(recipients),
                text=DEMO_TEXT,
                sender_id=DEMO_SENDER,
                settings=settings,
                output=output,
                journal=Path(scratch) / "demo.journal",
                column="phone",
                overwrite=True,
                progress=progress,
            ),
            err_console,
        )
        report = outcome.report
        if outcome.exit_code not in {ExitCode.OK, ExitCode.NOT_ALL_ACCEPTED}:
            if report.problem is not None:
                err_console.print(f"Error: {report.problem.reason}", markup=False)
            aborted = describe_aborted(report)
            if aborted is not None:
                err_console.print(f"Stopped early: {aborted}", markup=False)
            return outcome.exit_code
        with err_console.status("polling delivery reports"):
            reports = run_async(_poll, settings, output)
    statuses = dict.fromkeys(DeliveryStatus, 0)
    for delivery in reports:
        statuses[delivery.status] += 1

    table = Table(title="sms-async demo", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column(style="dim")
    totals = report.totals
    notes = {
        Outcome.ACCEPTED: "the gateway issued a message id",
        Outcome.DUPLICATE: "the same number again, in another spelling: sent once",
        Outcome.INVALID: "not a valid number: never sent"
        + (f" ({totals.empty:,} of them empty)" if totals.empty else ""),
        Outcome.REJECTED: "refused by the gateway, with its reason",
        Outcome.UNKNOWN: "the connection dropped after the request was read: may have been sent, not retried",
        Outcome.UNSENT: "never sent: safe to send again with --resume",
    }
    for kind, note in notes.items():
        table.add_row(kind.value, f"{totals[kind]:,}", note)
    table.add_row("inputs", f"{totals.total:,}", "every row of the input, each accounted for once")
    table.add_section()
    table.add_row(
        "requests", f"{report.requests:,}", f"{report.retries:,} retries (429 / 503 are safe to retry)"
    )
    table.add_row("recipients/s", f"{report.rate:,.0f}", f"{report.elapsed:.1f} s in all")
    table.add_row("credits", f"{totals.credits:,}", "parts paid for by the accepted numbers")
    table.add_section()
    table.add_row("delivered", f"{statuses[DeliveryStatus.DELIVERED]:,}", "delivery reports, polled briefly")
    table.add_row("undelivered", f"{statuses[DeliveryStatus.UNDELIVERED]:,}", "")
    table.add_row("failed", f"{statuses[DeliveryStatus.FAILED]:,}", "")
    pending = sum(n for s, n in statuses.items() if not s.is_final)
    table.add_row("not final yet", f"{pending:,}", "")
    console.print(table)
    console.print(f"Full per-number results: {escape(str(output))}\n{escape(hint)}")
    return ExitCode.OK


def next_step_hint(gateway: str, base_url: str) -> str:
    """How to send a file of ones own to a simulator of ``gateway`` on port 8080 (its ``base_url``)."""
    return (
        f"Next: run the simulator with 'sms-async simulate --port {_HINT_PORT}' and send your own file with "
        f"'sms-async send FILE --text ... --sender-id ... --output results.jsonl --gateway {gateway} "
        f"--base-url {base_url}' (credentials: {setting_variable('username')}=demo, "
        f"{setting_variable('password')}=demo-password)."
    )


async def _poll(settings: GatewaySettings, output: Path) -> list[DeliveryReport]:
    ids = list(scan_results(output).message_ids)
    async with BulkSender(build_driver(settings), default_region="IN") as bulk:
        book = await poll_reports(bulk, ids, interval=0.25, timeout=5.0)
    return book.reports()
