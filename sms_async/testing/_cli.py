"""Run the simulated gateway in the foreground: ``serve()`` and ``python -m sms_async.testing``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, Final

from sms_async.testing._faults import Fault, parse_fault
from sms_async.testing._gateway import SimulatedGateway, protocol_options
from sms_async.testing._http import is_loopback
from sms_async.testing._registry import example_operation, registered_protocols

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main", "parse_account", "serve"]

DEFAULT_CREDITS: Final = 10**9


def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    allow_non_loopback: bool = False,
    quiet: bool = False,
    **options: Any,
) -> None:
    """Serve the simulated gateways on ``host:port`` until interrupted (Ctrl+C or SIGTERM).

    ``options`` are :class:`SimulatedGateway`'s keyword arguments. Unless
    ``quiet``, the URLs and credentials are printed once the port is open, and
    the counters (:meth:`SimulatedGateway.summary`) once it is stopped. The
    counters are also printed whenever SIGUSR1 arrives, quiet or not.
    """
    gateway = SimulatedGateway(host=host, port=port, allow_non_loopback=allow_non_loopback, **options)
    started = False

    def ready(gw: SimulatedGateway) -> None:
        nonlocal started
        started = True
        if not quiet:
            _announce(gw)

    try:
        gateway.serve_forever(on_ready=ready, on_report=lambda gw: _say(f"counters: {gw.summary()}"))
    finally:
        if started and not quiet:
            _say(f"final counters: {gateway.summary()}")


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _announce(gateway: SimulatedGateway) -> None:
    lines = [f"sms_async simulated gateway listening on {gateway.origin}"]
    for name in gateway.protocols:
        protocol = gateway.protocol(name)
        base = protocol.base_url(gateway.origin)
        lines.append(f"  {protocol.title or protocol.name:<8} {base}")
        urls = [(role, gateway.origin + path) for role, path in protocol.paths.items()]
        if [url for _, url in urls] != [base]:
            lines += [f"           {role} {url}" for role, url in urls]
    lines += [
        f"  username {gateway.username}",
        f"  password {gateway.password}",
        f"  token    {gateway.token}",
    ]
    others = [name for name in gateway.usernames if name != gateway.username]
    if others:
        lines.append(f"  accounts {', '.join(others)} (from --account)")
    lines.append("Press Ctrl+C to stop; send SIGUSR1 to print the counters.")
    _say("\n".join(lines))


def parse_account(spec: str) -> tuple[str, str, int]:
    """Read ``USER:PASSWORD[:CREDITS]``; a password that ends in ``:digits`` needs CREDITS after it.

    The error never repeats ``spec``, which holds a password.
    """
    username, sep, rest = spec.partition(":")
    password, sep_credits, balance = rest.rpartition(":")
    if not (sep_credits and balance.isdigit() and balance.isascii()):
        password, balance = rest, ""
    if not sep or not username or not password:
        raise ValueError("expected USER:PASSWORD[:CREDITS] with a user name and a password")
    return username, password, int(balance) if balance else DEFAULT_CREDITS


def build_parser(prog: str = "python -m sms_async.testing") -> argparse.ArgumentParser:
    """The command line of the simulated gateway."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve simulated SMS gateways (every registered protocol, or those named with --gateway) "
        "on loopback, for tests and benchmarks. "
        "SIGUSR1 prints the counters (requests, numbers received, accepted, duplicates, refused); "
        "so does stopping it (Ctrl+C or SIGTERM), unless --quiet. Loopback clients can read the counters "
        "as JSON at GET /_simulator/stats and zero them with POST /_simulator/reset.",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; loopback only)")
    add("--port", type=int, default=8080, help="port to listen on (default 8080; 0 picks a free one)")
    add("--allow-non-loopback", action="store_true", help="allow listening on an address other than loopback")
    add("--username", default="demo", help="account user name (default demo)")
    add("--password", default="demo-password", help="account password (default demo-password)")
    add("--token", default="demo-token", help="API token, for gateways that take one (default demo-token)")
    add("--credits", type=int, default=DEFAULT_CREDITS, help="account credits (default 10**9)")
    add(
        "--account",
        action="append",
        default=[],
        metavar="USER:PASSWORD[:CREDITS]",
        help="another account with its own credits (default 10**9); repeatable. A password that ends in "
        "':DIGITS' must be followed by :CREDITS",
    )
    protocols = registered_protocols()
    add(
        "--gateway",
        action="append",
        default=[],
        choices=[protocol.name for protocol in protocols],
        metavar="NAME",
        help="serve only this gateway's protocol (repeatable; default every registered one: "
        + ", ".join(protocol.name for protocol in protocols)
        + ")",
    )
    add(
        "--answer-form",
        action="append",
        default=[],
        metavar="GATEWAY=FORM",
        help="how a gateway answers a send, one of its protocol's answer forms (repeatable)",
    )
    # Each protocol's declared shorthands, as options of their own (such as --<gateway>-send-form).
    for protocol in protocols:
        for key, target in protocol.shorthands.items():
            title = protocol.title or protocol.name
            if target == "answer_form":
                add(
                    "--" + key.replace("_", "-"),
                    dest=f"shorthand_{key}",
                    choices=protocol.answer_forms,
                    default=None,
                    help=f"{title} send answer form (default {protocol.answer_forms[0]})",
                )
            else:
                role = target.removeprefix("paths.")
                add(
                    "--" + key.replace("_", "-"),
                    dest=f"shorthand_{key}",
                    default=None,
                    metavar="PATH",
                    help=f"{title} {role} path (default {protocol.default_paths[role]})",
                )
    add("--latency", type=float, default=0.0, help="seconds added to every request")
    add(
        "--fault",
        action="append",
        default=[],
        metavar="KIND[:RATE][:KEY=VALUE...]",
        help="inject a fault, e.g. status_429:0.05"
        + (f" or status_500:0:on=3:ops={example}" if (example := example_operation(protocols)) else "")
        + " (repeatable)",
    )
    add("--dnd", action="append", default=[], metavar="NUMBER", help="a do-not-disturb number (repeatable)")
    add(
        "--dnd-action", choices=("allow", "omit", "refuse"), default="allow", help="what a send does with one"
    )
    add(
        "--status-delays",
        type=float,
        nargs=2,
        default=(0.05, 0.2),
        metavar=("QUEUED", "SENT"),
        help="seconds queued, then sent, before the final status",
    )
    add("--undelivered-rate", type=float, default=0.0, help="share of numbers that end undelivered")
    add("--failed-rate", type=float, default=0.0, help="share of numbers that end failed")
    add("--seed", type=int, default=0, help="seed of fault draws and final statuses")
    add("--idle-timeout", type=float, default=None, help="close keep-alive connections idle this long")
    add("--no-store-messages", action="store_true", help="keep no messages (memory stays flat; for load)")
    add("--no-track-numbers", action="store_true", help="count no numbers (memory stays flat; for load)")
    loop = parser.add_mutually_exclusive_group()
    loop.add_argument("--uvloop", dest="use_uvloop", action="store_true", default=None, help="use uvloop")
    loop.add_argument("--no-uvloop", dest="use_uvloop", action="store_false", help="use asyncio's own loop")
    add(
        "--quiet",
        action="store_true",
        help="print nothing on start or stop (SIGUSR1 still prints the counters)",
    )
    return parser


def _answer_form_example() -> str:
    """``, such as NAME=FORM`` for a registered protocol that has a choice of answer forms, else ``""``."""
    for protocol in registered_protocols():
        if len(protocol.answer_forms) > 1:
            return f", such as {protocol.name}={protocol.answer_forms[-1]}"
    return ""


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m sms_async.testing") -> int:
    """Run the simulated gateway from the command line; return the exit status."""
    try:
        parser = build_parser(prog)
    except ValueError as error:  # an installed protocol that cannot be loaded
        sys.stderr.write(f"{prog}: {error}\n")
        return 2
    args = parser.parse_args(argv)
    if not args.allow_non_loopback and not is_loopback(args.host):
        parser.error(f"refusing to listen on {args.host!r}: not a loopback address (--allow-non-loopback)")
    faults: list[Fault] = []
    if args.latency:
        faults.append(Fault("latency", rate=1.0, seconds=args.latency))
    for spec in args.fault:
        try:
            faults.append(parse_fault(spec))
        except (TypeError, ValueError) as error:
            parser.error(f"--fault {spec}: {error}")
    answer_forms: dict[str, str] = {}
    for spec in args.answer_form:
        name, sep, form = spec.partition("=")
        if not sep or not name or not form:
            parser.error(f"--answer-form {spec}: expected GATEWAY=FORM{_answer_form_example()}")
        answer_forms[name] = form
    shorthands = {
        key.removeprefix("shorthand_"): value
        for key, value in vars(args).items()
        if key.startswith("shorthand_") and value is not None
    }
    chosen = [p for p in registered_protocols() if p.name in args.gateway] if args.gateway else None
    try:
        protocol_options(chosen or registered_protocols(), answer_forms, None, shorthands)
    except ValueError as error:
        parser.error(str(error))
    accounts: list[tuple[str, str, int]] = []
    for spec in args.account:
        try:
            accounts.append(parse_account(spec))
        except ValueError as error:
            parser.error(f"--account: {error}")
    try:
        serve(
            args.host,
            args.port,
            allow_non_loopback=args.allow_non_loopback,
            quiet=args.quiet,
            username=args.username,
            password=args.password,
            token=args.token,
            credits=args.credits,
            accounts=accounts,
            protocols=chosen,
            answer_forms=answer_forms,
            faults=faults,
            dnd_numbers=args.dnd,
            dnd_action=args.dnd_action,
            status_delays=tuple(args.status_delays),
            undelivered_rate=args.undelivered_rate,
            failed_rate=args.failed_rate,
            seed=args.seed,
            idle_timeout=args.idle_timeout,
            store_messages=not args.no_store_messages,
            track_numbers=not args.no_track_numbers,
            use_uvloop=args.use_uvloop,
            **shorthands,
        )
    except OSError as error:
        sys.stderr.write(f"{parser.prog}: cannot listen on {args.host}:{args.port}: {error.strerror}\n")
        return 1
    except KeyboardInterrupt:
        pass
    return 0
