"""Where the command line finds the gateway, its settings and the defaults.

Gateways come from the registry (:func:`sms_async.providers.gateway`): each
driver names the settings it reads (``settings_keys``), and a driver is
built with ``gateway(name).from_settings(...)``. Nothing here knows one
gateway from another.

Credentials never need to be typed on the command line. In order of
precedence (the first that gives a value wins):

1. options: one per settings key any registered driver declares
   (``--username``, ``--base-url``, ``--send-path``, ``--allow-insecure-http``...;
   a secret's, such as ``--password``, prints a warning: arguments are
   visible to other users through ``ps``), and ``--region``,
   ``--sender-id``, ``--param``;
2. the environment: ``SMS_ASYNC_GATEWAY``, and ``SMS_ASYNC_<KEY>`` for each
   text setting the gateway's driver declares (``SMS_ASYNC_USERNAME``,
   ``SMS_ASYNC_PASSWORD``, ``SMS_ASYNC_TOKEN``, ``SMS_ASYNC_BASE_URL``,
   ``SMS_ASYNC_SEND_PATH``...), as workers read them
   (:func:`sms_async.campaign.environment_settings`);
3. a TOML config file: ``--config PATH`` (or ``SMS_ASYNC_CONFIG``), else
   ``$XDG_CONFIG_HOME/sms-async/config.toml`` (``~/.config/sms-async/config.toml``)
   when it exists, with one section per gateway holding the keys its driver
   reads, plus ``sender_id`` and ``region``.

The file is read, and each gateway's settings found, by the library
(:func:`sms_async.campaign.load_config`,
:func:`sms_async.campaign.gateway_settings`), as the workers find theirs; the
gateway is chosen by :func:`sms_async.campaign.choose_gateway` (``--gateway``,
``SMS_ASYNC_GATEWAY``, the file's ``gateway`` or its only gateway section,
else :data:`sms_async.campaign.DEFAULT_GATEWAY`). Here they only learn the
command line's words and exit statuses.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from sms_async._exceptions import ConfigurationError
from sms_async._redact import keep_secrets, redact
from sms_async.campaign import (
    DEFAULT_GATEWAY,
    DEFAULT_REGION,
    ENV_CONFIG,
    ENV_GATEWAY,
    FLAG_SETTINGS,
    ConfigFile,
    choose_gateway,
    default_config_path,
    gateway_settings,
    is_secret_setting,
    setting_variable,
)
from sms_async.campaign import load_config as read_config
from sms_async.cli._errors import CliError
from sms_async.providers import Driver, gateway

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


def option_name(key: str) -> str:
    """The command-line option of a settings key (``send_path`` -> ``--send-path``)."""
    return "--" + key.replace("_", "-")


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


def load_config(path: Path | None, *, env: Mapping[str, str] | None = None) -> ConfigFile:
    """The config file (:func:`sms_async.campaign.load_config`), warning when others can read its secrets.

    Raises:
        CliError: the file named does not exist, cannot be read, or is not
            valid TOML (exit status 2).
    """
    try:
        config = read_config(path, env=env)
    except ConfigurationError as error:
        raise CliError(error.reason) from None
    if config.readable_by_others:
        print(  # noqa: T201 - a warning for the person at the terminal
            f"warning: {config.path} holds a password or token and other users can read it; "
            f"run: chmod 600 {config.path}",
            file=sys.stderr,
        )
    return config


def driver_class(name: str) -> type[Driver]:
    """The registered driver class called ``name`` (a usage error naming those that exist)."""
    try:
        return gateway(name)
    except ConfigurationError as error:
        raise CliError(error.reason) from None


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

    The lookup is the library's (:func:`sms_async.campaign.gateway_settings`);
    ``options`` are command-line values by settings key (``None`` or
    ``False`` for not given). Every secret found is redacted for as long as
    the settings live, so that no later message can echo one. Missing
    credentials are not an error here (a dry run needs none);
    :func:`build_driver` reports them.
    """
    env = os.environ if env is None else env
    config = load_config(config_path, env=env)
    try:
        choice = choose_gateway(gateway, config=config, env=env, option_name="--gateway")
        found = gateway_settings(
            choice.name,
            options=options,
            config=config,
            env=env,
            options_source="the command line",
            spell=option_name,
        )
    except ConfigurationError as error:
        raise CliError(error.reason) from None
    extra = dict(found.params)
    extra.update(parse_params(params))
    section = found.section
    credentials = {where for key, where in found.sources.items() if key in {"username", "password", "token"}}
    settings = GatewaySettings(
        gateway=choice.name,
        values=dict(found.values),
        sender_id=sender_id or section.get("sender_id") or None,
        region=str(region or section.get("region") or DEFAULT_REGION).upper(),
        params=extra,
        source=" and ".join(sorted(credentials)) if credentials else "nowhere",
        config_path=config.path,
        hint=choice.hint,
    )
    # Every secret found (the environment's and the file's included) is
    # redacted for as long as the settings live.
    secrets = [value for key, value in found.values.items() if is_secret_setting(key)]
    keys = driver_class(choice.name).settings_keys
    secrets += [env.get(setting_variable(key)) for key in keys if is_secret_setting(key)]
    secrets += [value for name, value in extra.items() if is_secret_setting(name)]
    keep_secrets(settings, *(s for s in secrets if isinstance(s, str) and s))
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
    # The first text setting the refusal names and nobody gave: say where it goes.
    keys = sorted(driver_class(settings.gateway).settings_keys - FLAG_SETTINGS - {"params"}, key=reason.find)
    for key in keys:
        if key in reason and key not in settings.values:
            where = f"{option_name(key)}, {setting_variable(key)}"
            reason += f": give it with {where}, or {key} in the [{settings.gateway}] section of {config}"
            break
    return settings.with_hint(reason)
