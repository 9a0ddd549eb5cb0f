"""Where the command line finds the gateway, its settings and the defaults.

Gateways come from the registry (:func:`sms_async.providers.gateway`): each
driver names the settings it reads (``settings_keys``), and a driver is
built with ``gateway(name).from_settings(...)``. Nothing here knows one
gateway from another.

Credentials never need to be typed on the command line. In order of
precedence (the first that gives a value wins):

1. options: ``--username``, ``--base-url``, ``--send-path``,
   ``--status-path``, ``--allow-insecure-http``, ``--region``,
   ``--sender-id``, ``--param`` (``--password`` and ``--token`` exist, but
   print a warning: arguments are visible to other users through ``ps``);
2. the environment: ``SMS_ASYNC_GATEWAY``, and ``SMS_ASYNC_<KEY>`` for each
   text setting the gateway's driver declares (``SMS_ASYNC_USERNAME``,
   ``SMS_ASYNC_PASSWORD``, ``SMS_ASYNC_TOKEN``, ``SMS_ASYNC_BASE_URL``,
   ``SMS_ASYNC_SEND_PATH``...), as workers read them
   (:func:`sms_async.campaign.environment_settings`);
3. a TOML config file: ``--config PATH`` (or ``SMS_ASYNC_CONFIG``), else
   ``$XDG_CONFIG_HOME/sms-async/config.toml`` (``~/.config/sms-async/config.toml``)
   when it exists, with one section per gateway holding the keys its driver
   reads, plus ``sender_id`` and ``region``::

       gateway = "iton"            # used when --gateway is not given

       [iton]
       username = "me"
       password = "..."            # or: token = "..."
       sender_id = "ITONAB"        # optional defaults for send
       region = "IN"

       [iton.params]               # extra request parameters for every send (India's DLT ids)
       templateid = "1107..."

       [itecpay]
       username = "me"
       password = "..."
       base_url = "https://gateway.example"
       send_path = "/api/sms/send"

The gateway is the one named by ``--gateway``, ``SMS_ASYNC_GATEWAY`` or the
file's ``gateway``; else the file's only gateway section, if it has exactly
one; else ITON.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from sms_async._exceptions import ConfigurationError
from sms_async._redact import keep_secrets, redact
from sms_async.campaign import DEFAULT_GATEWAY, DEFAULT_REGION, environment_settings, setting_variable
from sms_async.cli._errors import CliError
from sms_async.providers import Driver, gateway, gateway_names

__all__ = [
    "DEFAULT_GATEWAY",
    "ENV_BASE_URL",
    "ENV_CONFIG",
    "ENV_GATEWAY",
    "ENV_PASSWORD",
    "ENV_TOKEN",
    "ENV_USERNAME",
    "GatewaySettings",
    "build_driver",
    "default_config_path",
    "driver_class",
    "load_config",
    "option_name",
    "parse_params",
    "resolve_settings",
]

ENV_USERNAME = setting_variable("username")
ENV_PASSWORD = setting_variable("password")
ENV_TOKEN = setting_variable("token")
ENV_BASE_URL = setting_variable("base_url")
ENV_GATEWAY = "SMS_ASYNC_GATEWAY"
ENV_CONFIG = "SMS_ASYNC_CONFIG"


_SECRETS: Final = frozenset({"password", "token"})
# Keys of a gateway's section besides its driver's settings.
_COMMAND_LINE_KEYS: Final = frozenset({"sender_id", "region"})
_SECRET_NAME: Final = re.compile(r"pass|secret|token|key|auth|sign", re.IGNORECASE)


def option_name(key: str) -> str:
    """The command-line option of a settings key (``send_path`` -> ``--send-path``)."""
    return "--" + key.replace("_", "-")


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/sms-async/config.toml``, or ``~/.config/sms-async/config.toml``."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "sms-async" / "config.toml"


@attrs.frozen
class GatewaySettings:
    """Everything needed to reach one gateway; the values (secrets among them) stay out of the repr."""

    gateway: str
    #: The driver's settings (keys of its ``settings_keys``), as found.
    values: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
    sender_id: str | None = None
    region: str = DEFAULT_REGION
    #: Extra request parameters for every send (the config's table, then ``--param``).
    params: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    #: Where the credentials came from, for error messages (never the values).
    source: str = "nowhere"
    #: The config file read, if any.
    config_path: Path | None = None
    #: Why this gateway was chosen, when that may surprise (added to errors about missing settings).
    hint: str = ""

    def with_hint(self, message: str) -> str:
        """``message``, followed by the gateway hint when there is one."""
        return f"{message} ({self.hint})" if self.hint else message


def load_config(
    path: Path | None, *, env: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], Path | None]:
    """Read the TOML config file.

    Args:
        path: The file named with ``--config``; ``None`` for the default
            location, which may be absent.
        env: The environment (``os.environ`` when ``None``).

    Returns:
        The parsed table (empty when there is no file) and the path read.

    Raises:
        CliError: the file named does not exist, cannot be read, or is not
            valid TOML (exit status 2).
    """
    env = os.environ if env is None else env
    explicit = path is not None
    if path is None and env.get(ENV_CONFIG):
        path, explicit = Path(env[ENV_CONFIG]), True
    if path is None:
        path = default_config_path(env)
        if not path.is_file():
            return {}, None
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CliError(f"config file {path} does not exist") from None
    except OSError as error:
        if not explicit:
            return {}, None
        raise CliError(f"cannot read config file {path}: {error.strerror}") from None
    try:
        table = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        # The parser's message names a position, never the file's contents.
        raise CliError(f"config file {path} is not valid TOML: {error}") from None
    _warn_if_readable_by_others(path, table)
    return table, path


def _warn_if_readable_by_others(path: Path, table: Mapping[str, Any]) -> None:
    if sys.platform == "win32":  # pragma: no cover - POSIX permission bits only
        return
    has_secret = any(
        isinstance(section, dict) and any(key in section for key in _SECRETS) for section in table.values()
    )
    try:
        mode = path.stat().st_mode
    except OSError:  # pragma: no cover - it was just read
        return
    if has_secret and mode & (stat.S_IRWXG | stat.S_IRWXO):
        print(  # noqa: T201 - a warning for the person at the terminal
            f"warning: {path} holds a password or token and other users can read it; run: chmod 600 {path}",
            file=sys.stderr,
        )


def driver_class(name: str) -> type[Driver]:
    """The registered driver class called ``name`` (a usage error naming those that exist)."""
    try:
        return gateway(name)
    except ConfigurationError as error:
        raise CliError(error.reason) from None


def _section(table: Mapping[str, Any], name: str, keys: frozenset[str], path: Path | None) -> dict[str, Any]:
    raw = table.get(name, {})
    if not isinstance(raw, dict):
        raise CliError(f"config file {path}: [{name}] must be a table")
    known = keys | _COMMAND_LINE_KEYS
    section: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            listed = ", ".join(sorted(known))
            raise CliError(f"config file {path}: unknown key {key!r} in [{name}] (known: {listed})")
        if key == "params":
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise CliError(
                    f"config file {path}: [{name}.params] must be a table of text values, "
                    'such as templateid = "1107..."'
                )
        elif key == "allow_insecure_http":
            if not isinstance(value, bool):
                raise CliError(f"config file {path}: [{name}] allow_insecure_http must be true or false")
        elif not isinstance(value, str):
            raise CliError(f"config file {path}: [{name}] {key} must be a string")
        section[key] = value
    return section


def _choose_gateway(
    option: str | None, env: Mapping[str, str], table: Mapping[str, Any], path: Path | None
) -> tuple[str, str]:
    """The gateway's name, and a hint when it was chosen by default while the file names others."""
    names = gateway_names()
    sections = [name for name in table if name in names and isinstance(table[name], dict)]
    if option:
        chosen, where = option, "--gateway"
    elif env.get(ENV_GATEWAY):
        chosen, where = env[ENV_GATEWAY], ENV_GATEWAY
    elif isinstance(table.get("gateway"), str):
        chosen, where = table["gateway"], f"config file {path}"
    elif len(sections) == 1:
        chosen, where = sections[0], f"config file {path}"
    else:
        chosen, where = DEFAULT_GATEWAY, ""
    if chosen not in names:
        raise CliError(f"{where or 'default'}: unknown gateway {chosen!r}; choose one of: {', '.join(names)}")
    hint = ""
    if not where and sections and chosen not in sections:
        other = sections[0]
        hint = (
            f"the gateway is {chosen} by default, and config file {path} has no [{chosen}] section but has "
            f'[{"], [".join(sections)}]: pass --gateway {other}, or put gateway = "{other}" at its top'
        )
    return chosen, hint


def parse_params(pairs: Sequence[str]) -> dict[str, str]:
    """``NAME=VALUE`` pairs from ``--param`` (a value may hold ``=``)."""
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise CliError(f"--param takes NAME=VALUE, such as --param templateid=1107...; got {pair[:40]!r}")
        params[name.strip()] = value
    return params


def resolve_settings(
    *,
    gateway: str | None,
    config_path: Path | None,
    options: Mapping[str, Any] | None = None,
    sender_id: str | None = None,
    region: str | None = None,
    params: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> GatewaySettings:
    """Merge options, environment and config file into :class:`GatewaySettings`.

    ``options`` are command-line values by settings key (``None`` or
    ``False`` for not given). Every secret found is redacted for as long as
    the settings live, so that no later message can echo one. Missing
    credentials are not an error here (a dry run needs none);
    :func:`build_driver` reports them.
    """
    env = os.environ if env is None else env
    table, path = load_config(config_path, env=env)
    chosen, hint = _choose_gateway(gateway, env, table, path)
    keys = driver_class(chosen).settings_keys
    section = _section(table, chosen, keys, path)
    values: dict[str, Any] = {}
    sources: set[str] = set()
    from_environment = environment_settings(keys, env)
    for key, value in (options or {}).items():
        if value not in (None, False, "") and key not in keys:
            known = ", ".join(option_name(k) for k in sorted(keys - {"params"}))
            raise CliError(
                f"{option_name(key)}: the {chosen} gateway has no such setting (its settings: {known})"
            )
    for key in sorted(keys - {"params"}):
        given = (options or {}).get(key)
        if given not in (None, False, ""):
            values[key], where = given, "the command line"
        elif key in from_environment:
            values[key], where = from_environment[key], "the environment"
        elif key in section:
            values[key], where = section[key], f"config file {path}"
        else:
            continue
        if key in {"username", "password", "token"}:
            sources.add(where)
    extra = dict(section.get("params", {}))
    extra.update(parse_params(params))
    chosen_sender = sender_id or section.get("sender_id")
    settings = GatewaySettings(
        gateway=chosen,
        values=values,
        sender_id=chosen_sender or None,
        region=str(region or section.get("region") or DEFAULT_REGION).upper(),
        params=extra,
        source=" and ".join(sorted(sources)) if sources else "nowhere",
        config_path=path,
        hint=hint,
    )
    # Every secret found (the environment's and the file's included) is
    # redacted for as long as the settings live.
    secrets = [values.get(key) for key in _SECRETS]
    secrets += [env.get(setting_variable(key)) for key in _SECRETS]
    secrets += [value for name, value in extra.items() if _SECRET_NAME.search(name)]
    keep_secrets(settings, *(s for s in secrets if isinstance(s, str)))
    return settings


def _missing_credentials(settings: GatewaySettings, keys: frozenset[str]) -> CliError | None:
    values = settings.values
    if "password" not in keys or values.get("password"):
        return None
    if "token" in keys and values.get("token"):
        return None
    if "username" in keys and not values.get("username") and "token" not in values:
        what = "no credentials"
    else:
        what = "no password"
    name = settings.gateway
    variables = f"{ENV_USERNAME} and {ENV_PASSWORD}" + (f" (or {ENV_TOKEN})" if "token" in keys else "")
    config = settings.config_path or default_config_path()
    return CliError(
        settings.with_hint(
            f"{what} for {name}: set {variables}, or put them in the [{name}] section of {config} "
            "(or of the file named by --config)"
        )
    )


def build_driver(settings: GatewaySettings) -> Driver:
    """The driver for ``settings``, built by its class's ``from_settings``.

    Raises:
        CliError: credentials or a required setting are missing, or a
            setting is refused (exit status 2); the message says how to set it.
    """
    cls = driver_class(settings.gateway)
    missing = _missing_credentials(settings, cls.settings_keys)
    if missing is not None:
        raise missing
    try:
        return cls.from_settings(settings.values)
    except ConfigurationError as error:
        raise CliError(_advice(settings, redact(error.reason))) from None


def _advice(settings: GatewaySettings, reason: str) -> str:
    """A driver's refusal, with how the command line sets what it asks for."""
    reason = reason.replace(
        "pass allow_insecure_http=True",
        "pass --allow-insecure-http (or put allow_insecure_http = true in the gateway's config section)",
    )
    config = settings.config_path or default_config_path()
    for key in ("base_url", "send_path", "status_path"):
        if key in reason and key not in settings.values:
            where = f"{option_name(key)}, {setting_variable(key)}"
            reason += f": give it with {where}, or {key} in the [{settings.gateway}] section of {config}"
            break
    return settings.with_hint(reason)
