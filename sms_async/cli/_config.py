"""Where the command line finds the gateway, the credentials and the defaults.

Credentials never need to be typed on the command line. In order of
precedence (the first that gives a value wins):

1. ``--username`` / ``--base-url`` / ``--region`` / ``--sender-id`` options
   (``--password`` and ``--token`` exist, but print a warning: arguments are
   visible to other users of the machine through ``ps``);
2. the environment: ``SMS_ASYNC_USERNAME``, ``SMS_ASYNC_PASSWORD``,
   ``SMS_ASYNC_TOKEN``, ``SMS_ASYNC_BASE_URL``, ``SMS_ASYNC_GATEWAY``;
3. a TOML config file: ``--config PATH`` (or ``SMS_ASYNC_CONFIG``), else
   ``$XDG_CONFIG_HOME/sms-async/config.toml`` (``~/.config/sms-async/config.toml``)
   when it exists::

       gateway = "iton"            # used when --gateway is not given

       [iton]
       username = "me"
       password = "..."            # or: token = "..."
       sender_id = "ITONAB"        # optional defaults for send
       region = "IN"

       [itecpay]
       username = "me"
       password = "..."
       base_url = "https://gateway.example"
"""

from __future__ import annotations

import os
import stat
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs

from sms_async._exceptions import ConfigurationError
from sms_async._redact import keep_secrets, redact
from sms_async.cli._errors import CliError, ExitCode
from sms_async.providers import ItecPay, Iton
from sms_async.providers.iton import DEFAULT_BASE_URL as ITON_DEFAULT_URL

__all__ = [
    "ENV_BASE_URL",
    "ENV_CONFIG",
    "ENV_GATEWAY",
    "ENV_PASSWORD",
    "ENV_TOKEN",
    "ENV_USERNAME",
    "GATEWAYS",
    "GatewaySettings",
    "build_driver",
    "default_config_path",
    "load_config",
    "resolve_settings",
]

ENV_USERNAME = "SMS_ASYNC_USERNAME"
ENV_PASSWORD = "SMS_ASYNC_PASSWORD"  # noqa: S105 - the name of a variable, not a secret
ENV_TOKEN = "SMS_ASYNC_TOKEN"  # noqa: S105
ENV_BASE_URL = "SMS_ASYNC_BASE_URL"
ENV_GATEWAY = "SMS_ASYNC_GATEWAY"
ENV_CONFIG = "SMS_ASYNC_CONFIG"

GatewayName = Literal["iton", "itecpay"]
GATEWAYS: tuple[GatewayName, ...] = ("iton", "itecpay")
DEFAULT_REGION = "IN"

_KNOWN_KEYS = frozenset({"username", "password", "token", "base_url", "sender_id", "region"})


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/sms-async/config.toml``, or ``~/.config/sms-async/config.toml``."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "sms-async" / "config.toml"


@attrs.frozen
class GatewaySettings:
    """Everything needed to reach one gateway; secrets are kept out of the repr."""

    gateway: GatewayName
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    token: str | None = attrs.field(default=None, repr=False)
    base_url: str | None = None
    sender_id: str | None = None
    region: str = DEFAULT_REGION
    #: Where the credentials came from, for error messages (never the values).
    source: str = "nowhere"


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
        isinstance(section, dict) and ("password" in section or "token" in section)
        for section in table.values()
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


def _section(table: Mapping[str, Any], gateway: str, path: Path | None) -> dict[str, str]:
    raw = table.get(gateway, {})
    if not isinstance(raw, dict):
        raise CliError(f"config file {path}: [{gateway}] must be a table")
    section: dict[str, str] = {}
    for key, value in raw.items():
        if key not in _KNOWN_KEYS:
            known = ", ".join(sorted(_KNOWN_KEYS))
            raise CliError(f"config file {path}: unknown key {key!r} in [{gateway}] (known: {known})")
        if not isinstance(value, str):
            raise CliError(f"config file {path}: [{gateway}] {key} must be a string")
        section[key] = value
    return section


def resolve_settings(
    *,
    gateway: str | None,
    config_path: Path | None,
    username: str | None = None,
    password: str | None = None,
    token: str | None = None,
    base_url: str | None = None,
    sender_id: str | None = None,
    region: str | None = None,
    env: Mapping[str, str] | None = None,
) -> GatewaySettings:
    """Merge options, environment and config file into :class:`GatewaySettings`.

    Every secret found is redacted for as long as the settings live, so that
    no later message can echo it. Missing credentials are not an error here (a dry
    run needs none); :func:`build_driver` reports them.
    """
    env = os.environ if env is None else env
    table, path = load_config(config_path, env=env)
    chosen = gateway or env.get(ENV_GATEWAY) or table.get("gateway") or "iton"
    if chosen not in GATEWAYS:
        where = "--gateway" if gateway else (ENV_GATEWAY if env.get(ENV_GATEWAY) else f"config file {path}")
        raise CliError(f"{where}: unknown gateway {chosen!r}; choose one of: {', '.join(GATEWAYS)}")
    section = _section(table, chosen, path)

    def pick(option: str | None, env_name: str | None, key: str) -> tuple[str | None, str | None]:
        if option:
            return option, "the command line"
        if env_name is not None and env.get(env_name):
            return env[env_name], "the environment"
        if section.get(key):
            return section[key], f"config file {path}"
        return None, None

    user, user_from = pick(username, ENV_USERNAME, "username")
    secret, secret_from = pick(password, ENV_PASSWORD, "password")
    api_token, token_from = pick(token, ENV_TOKEN, "token")
    url, _ = pick(base_url, ENV_BASE_URL, "base_url")
    sender, _ = pick(sender_id, None, "sender_id")
    chosen_region, _ = pick(region, None, "region")
    sources = sorted({s for s in (user_from, secret_from, token_from) if s is not None})
    settings = GatewaySettings(
        gateway="iton" if chosen == "iton" else "itecpay",
        username=user,
        password=secret,
        token=api_token,
        base_url=url,
        sender_id=sender,
        region=(chosen_region or DEFAULT_REGION).upper(),
        source=" and ".join(sources) if sources else "nowhere",
    )
    # Every secret found is redacted for as long as the settings live, so that
    # no later message can echo one (the environment's and the file's included).
    found = (password, token, env.get(ENV_PASSWORD), env.get(ENV_TOKEN), section.get("password"))
    keep_secrets(settings, *found, section.get("token"))
    return settings


def _missing(settings: GatewaySettings, what: str) -> CliError:
    gateway = settings.gateway
    return CliError(
        f"{what} for {gateway}: set {ENV_USERNAME} and {ENV_PASSWORD}"
        + (f" (or {ENV_TOKEN})" if gateway == "iton" else "")
        + f", or put them in the [{gateway}] section of {default_config_path()} (or of the file named by"
        " --config)"
    )


def build_driver(settings: GatewaySettings) -> Iton | ItecPay:
    """The driver for ``settings``.

    Raises:
        CliError: credentials or the ItecPay base URL are missing, or the base
            URL is refused (exit status 2).
    """
    try:
        if settings.gateway == "iton":
            if settings.token is None and not (settings.username and settings.password):
                missing = "no password" if settings.username else "no credentials"
                raise _missing(settings, missing)
            return Iton(
                settings.username,
                settings.password,
                token=settings.token,
                base_url=settings.base_url or ITON_DEFAULT_URL,
            )
        if not (settings.username and settings.password):
            raise _missing(settings, "no password" if settings.username else "no credentials")
        if not settings.base_url:
            raise CliError(
                "ItecPay has no published address: pass --base-url, set "
                f"{ENV_BASE_URL}, or put base_url in the [itecpay] section of the config file"
            )
        return ItecPay(settings.username, settings.password, base_url=settings.base_url)
    except ConfigurationError as error:
        raise CliError(redact(str(error)), ExitCode.USAGE) from None
