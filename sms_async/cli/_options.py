"""What every ``sms-async`` command shares: gateway options, error handling, consoles."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Final, TypeVar, cast

import attrs
import click
from rich.console import Console

from sms_async._exceptions import (
    AuthenticationError,
    OutOfCreditError,
    SmsError,
    UnsupportedOperationError,
    UsageError,
)
from sms_async._redact import redact
from sms_async.campaign import (
    DEFAULT_GATEWAY,
    DEFAULT_REGION,
    ENV_CONFIG,
    ENV_GATEWAY,
    FLAG_SETTINGS,
    PARTS_WARNING,
    CampaignError,
    StorageError,
    is_secret_setting,
    setting_variable,
)
from sms_async.cli._config import GatewaySettings, option_name, resolve_settings
from sms_async.cli._errors import CliError, ExitCode
from sms_async.providers import gateway, gateway_names

__all__ = [
    "Account",
    "GatewayChoice",
    "concurrency_option",
    "consoles",
    "gateway_options",
    "guarded",
    "guarded_as",
    "input_options",
    "keep_columns_option",
    "params_option",
    "rate_option",
    "say_error",
    "setting_keys",
    "stdin",
    "text_options",
]

F = TypeVar("F", bound=Callable[..., Any])


def input_options(command: F) -> F:
    """``--column`` and ``--input-format``: how a file of recipients is read (send and campaign create)."""
    command = click.option(
        "--input-format",
        type=click.Choice(["auto", "csv", "lines"]),
        default="auto",
        show_default=True,
        help="auto: CSV for *.csv or with --column, else one number per line.",
    )(command)
    return click.option(
        "-c", "--column", metavar="NAME", help="CSV column holding the numbers (implies CSV input)."
    )(command)


def text_options(command: F) -> F:
    """``--skip-dnd`` and ``--max-segments``: what is sent to whom (send and campaign create)."""
    command = click.option(
        "--max-segments",
        type=click.IntRange(min=1, max=255),
        metavar="N",
        help=f"Refuse a text of more than N SMS parts (without it, above {PARTS_WARNING} parts warns).",
    )(command)
    return click.option(
        "--skip-dnd", is_flag=True, help="Look up the do-not-disturb list first and skip listed numbers."
    )(command)


def rate_option(help_text: str) -> Callable[[F], F]:
    """``--rate N``: at most N messages (recipients) a second, N above 0 (send and campaign create)."""
    return click.option("--rate", type=click.FloatRange(min=0, min_open=True), metavar="N", help=help_text)


def params_option(help_text: str) -> Callable[[F], F]:
    """``--param NAME=VALUE`` (repeatable, as ``params``): extra request parameters (send, create)."""
    return click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help=help_text)


def keep_columns_option(help_text: str) -> Callable[[F], F]:
    """``--keep-columns``: the input's other CSV columns go with each row (send and campaign create)."""
    return click.option("--keep-columns", is_flag=True, help=help_text)


def concurrency_option(help_text: str) -> Callable[[F], F]:
    """``--concurrency N``: requests in flight at most, 32 unless given (send, campaign run, worker...)."""
    return click.option(
        "--concurrency",
        type=click.IntRange(min=1, max=1024),
        default=32,
        show_default=True,
        help=help_text,
    )


def consoles() -> tuple[Console, Console]:
    """The standard output and standard error consoles."""
    return Console(highlight=False), Console(stderr=True, highlight=False)


def stdin() -> IO[bytes]:
    """Standard input, looked up when called (click's test runner swaps it for each invocation)."""
    return sys.stdin.buffer


def say_error(message: str) -> None:
    """One ``Error:`` line on standard error, redacted."""
    click.echo(f"Error: {redact(message)}", err=True)


class GatewayChoice(click.ParamType):  # type: ignore[type-arg]
    """A registered gateway's name, looked up when the option is read (a gateway registered late counts)."""

    name = "gateway"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        """``[name|name|...]``: the gateways registered now."""
        return "[" + "|".join(gateway_names()) + "]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """The name, if a gateway is registered under it."""
        names = gateway_names()
        if value in names:
            return str(value)
        return self.fail(
            f"{value!r} is not a registered gateway; choose one of: {', '.join(names)}", param, ctx
        )

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
        """Complete from the registered names."""
        from click.shell_completion import CompletionItem  # noqa: PLC0415 - only when completing

        return [CompletionItem(name) for name in gateway_names() if name.startswith(incomplete)]


def guarded_as(other_errors: ExitCode) -> Callable[[F], F]:
    """A decorator turning every failure into one clear line and the documented exit status.

    ``other_errors`` is the status of an error no rule below names (a store
    out of reach, for the cluster's commands: 3; a failed look-up: 1).
    """

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> None:
            try:
                code = command(*args, **kwargs)
            except CliError as error:
                say_error(error.message)
                code = error.code
            except (AuthenticationError, OutOfCreditError) as error:
                say_error(f"{type(error).__name__}: {error.reason}")
                code = ExitCode.ABORTED
            except (UsageError, UnsupportedOperationError) as error:
                say_error(error.reason)
                code = ExitCode.USAGE
            except StorageError as error:
                say_error(error.reason)
                code = ExitCode.ABORTED
            except CampaignError as error:
                # A campaign that cannot do what was asked (none such, cancelled, no input): usage.
                say_error(error.reason)
                code = ExitCode.USAGE
            except SmsError as error:
                say_error(f"{type(error).__name__}: {error.reason}")
                code = other_errors
            except KeyboardInterrupt:
                say_error("interrupted")
                code = ExitCode.INTERRUPTED
            except BrokenPipeError:
                # The reader went away (``| head -1``): the rest of the output has nowhere to go.
                _silence_stdout()
                code = ExitCode.NOT_ALL_ACCEPTED
            except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
                raise
            except Exception as error:
                if os.environ.get("SMS_ASYNC_DEBUG"):
                    raise
                say_error(
                    f"internal error, please report it: {type(error).__name__}: {error} "
                    "(set SMS_ASYNC_DEBUG=1 for a traceback)"
                )
                code = ExitCode.ABORTED
            raise click.exceptions.Exit(int(code or 0))

        return wrapper  # type: ignore[return-value]

    return decorate


def _silence_stdout() -> None:
    """Point standard output at the null device, so that flushing it at exit raises nothing more."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a file (a test runner's buffer): nothing is flushed to a pipe
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


#: For commands that reach a gateway: a failure no rule names is exit status 1.
guarded = guarded_as(ExitCode.NOT_ALL_ACCEPTED)


# What a settings key is, for its option's help; a key not named here is described by its name.
_DESCRIPTIONS: Final = {
    "username": "Account name",
    "password": "Account password",
    "token": "API token",
    "base_url": "Gateway endpoint",
    "send_path": "Path of the send request",
    "status_path": "Path of the status request",
}
# Options of their own on the commands that reach a gateway: no settings key may take their names.
# How a setting's option is named among a command's parameters (apart from the command's own).
_PREFIX: Final = "setting__"
_RESERVED: Final = frozenset({"gateway", "config", "region", "concurrency", "sender_id", "param", "params"})


def setting_keys() -> list[str]:
    """The settings keys that get an option: every key a registered driver declares, but ``params``.

    Text settings first, then flags, then secrets (whose options are discouraged).
    """
    keys = {key for name in gateway_names() for key in gateway(name).settings_keys} - _RESERVED
    return sorted(keys, key=lambda k: (is_secret_setting(k), k in FLAG_SETTINGS, k != "base_url", k))


def _setting_option(key: str) -> Callable[[F], F]:
    """The option of one settings key; its help names the gateways that read it and where else it is set."""
    takers = [name for name in gateway_names() if key in gateway(name).settings_keys]
    which = f" (for {', '.join(takers)})" if set(takers) != set(gateway_names()) else ""
    what = _DESCRIPTIONS.get(key, f"The {key.replace('_', ' ')} setting")
    variable = setting_variable(key)
    declared = (option_name(key), _PREFIX + key)
    if key in FLAG_SETTINGS:
        help_text = f"{what}{which}; also {key} = true in the config."
        if key == "allow_insecure_http":
            help_text = (
                f"Allow an http:// base URL to a host that is not this machine (credentials travel "
                f"unencrypted){which}; also {key} = true in the config."
            )
        return click.option(*declared, is_flag=True, default=None, help=help_text)
    if is_secret_setting(key):
        help_text = (
            f"{what}{which}. Discouraged: other users can see arguments; use {variable} or the config file."
        )
        return click.option(*declared, metavar="SECRET", help=help_text)
    help_text = f"{what}{which} (default: {variable}, config)."
    return click.option(*declared, metavar=key.rsplit("_", maxsplit=1)[-1].upper(), help=help_text)


def gateway_options(command: F) -> F:
    """The options every command that talks to a gateway takes: one per settings key a driver declares."""
    names = ", ".join(gateway_names())
    options = [
        click.option(
            "--gateway",
            type=GatewayChoice(),
            default=None,
            help=f"Gateway to use, one of the registered gateways ({names}); default: {ENV_GATEWAY}, "
            f"the config file's 'gateway' or its only gateway section, else {DEFAULT_GATEWAY}.",
        ),
        *(_setting_option(key) for key in setting_keys()),
        click.option(
            "--config",
            "config_path",
            type=click.Path(dir_okay=False, path_type=Path),
            envvar=ENV_CONFIG,
            help="TOML config file (default ~/.config/sms-async/config.toml when present).",
        ),
        click.option(
            "--region",
            metavar="CODE",
            help="Region of national spellings such as 098123 45678 "
            f"(default: config, else {DEFAULT_REGION}).",
        ),
        concurrency_option("Requests in flight at most."),
    ]

    @functools.wraps(command)
    def wrapper(
        *args: Any,
        gateway: str | None,
        config_path: Path | None,
        region: str | None,
        **kwargs: Any,
    ) -> Any:
        given = {
            name.removeprefix(_PREFIX): kwargs.pop(name) for name in list(kwargs) if name.startswith(_PREFIX)
        }
        account = Account(gateway, config_path, given, region)
        return command(*args, account=account, **kwargs)

    decorated: Any = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return cast("F", decorated)


@attrs.frozen
class Account:
    """The gateway options of one command, resolved into settings when the command needs them."""

    gateway: str | None
    config_path: Path | None
    #: Settings given as options, by settings key (secrets among them: kept out of the repr).
    given: dict[str, Any] = attrs.field(repr=False)
    region: str | None = None

    def settings(self, sender_id: str | None = None, params: tuple[str, ...] = ()) -> GatewaySettings:
        """Merge the options with the environment and the config file (warning about secrets in argv)."""
        for key, value in sorted(self.given.items()):
            if value and is_secret_setting(key):
                click.echo(
                    f"warning: {option_name(key)} on the command line can be seen by other users of this "
                    f"machine (ps, shell history); use {setting_variable(key)} or the config file instead",
                    err=True,
                )
        return resolve_settings(
            gateway=self.gateway,
            config_path=self.config_path,
            options=self.given,
            sender_id=sender_id,
            region=self.region,
            params=params,
        )
