"""Gateway settings from options, the environment and the config file: one lookup for the CLI and workers.

Each driver declares the settings it reads (``settings_keys``); each text
setting may come from ``SMS_ASYNC_<KEY>`` (``username`` from
``SMS_ASYNC_USERNAME``, ``send_path`` from ``SMS_ASYNC_SEND_PATH``), whatever
the gateway, so a new gateway's settings need no list kept here. The TOML
config file is read by :func:`load_config` alone, and a gateway's settings
are found by :func:`gateway_settings` alone, in this order: options (the
command line's flags), the environment, the file's section of that gateway::

    gateway = "iton"            # the gateway when nothing else names one

    [iton]
    username = "me"
    password = "..."            # or: token = "..."
    sender_id = "ITONAB"        # defaults for a send
    region = "IN"

    [iton.params]               # extra request parameters for every send (India's DLT ids)
    templateid = "1107..."
"""

from __future__ import annotations

import os
import re
import stat
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from sms_async._exceptions import ConfigurationError
from sms_async.campaign._defaults import DEFAULT_GATEWAY
from sms_async.providers import gateway, gateway_names

__all__ = [
    "ENV_CONFIG",
    "ENV_DATABASE_URL",
    "ENV_GATEWAY",
    "ENV_PREFIX",
    "FLAG_SETTINGS",
    "SEND_DEFAULT_KEYS",
    "ConfigFile",
    "FoundSettings",
    "GatewayChoice",
    "choose_gateway",
    "default_config_path",
    "environment_settings",
    "gateway_settings",
    "is_secret_setting",
    "load_config",
    "setting_variable",
]

#: What every variable the library reads starts with.
ENV_PREFIX: Final = "SMS_ASYNC_"
# Settings never read from the environment: a table of extra parameters, and the
# opt-in to plain http to another host, which must be asked for where it shows.
_NOT_FROM_ENVIRONMENT: Final = frozenset({"params", "allow_insecure_http"})


def setting_variable(key: str) -> str:
    """The environment variable of a driver's settings key (``base_url`` -> ``SMS_ASYNC_BASE_URL``)."""
    return ENV_PREFIX + key.upper()


def environment_settings(keys: Iterable[str], env: Mapping[str, str]) -> dict[str, str]:
    """The settings among ``keys`` that ``env`` gives (empty values count as not given)."""
    found: dict[str, str] = {}
    for key in sorted(keys):
        if key in _NOT_FROM_ENVIRONMENT:
            continue
        value = env.get(setting_variable(key))
        if value:
            found[key] = value
    return found


# -- the config file: read here, for the command line and the workers alike ---------------------

#: The variable naming the config file (``--config`` on the command line wins over it).
ENV_CONFIG: Final = "SMS_ASYNC_CONFIG"
#: The variable naming the campaign store (``--store`` on the command line wins over it).
ENV_DATABASE_URL: Final = "SMS_ASYNC_DATABASE_URL"
#: The variable naming the gateway when nothing more specific does.
ENV_GATEWAY: Final = "SMS_ASYNC_GATEWAY"
#: Settings that are true or false (an option without a value on the command line).
FLAG_SETTINGS: Final = frozenset({"allow_insecure_http"})
#: Keys of a gateway's section besides its driver's settings: defaults for a send.
SEND_DEFAULT_KEYS: Final = frozenset({"sender_id", "region"})
# A settings key (or extra parameter) by this name holds a secret: never echoed, never on the command line.
_SECRET_NAME: Final = re.compile(r"pass|secret|token|key|auth|sign", re.IGNORECASE)


def is_secret_setting(key: str) -> bool:
    """Whether a settings key (or an extra parameter's name) holds a secret, by its name."""
    return bool(_SECRET_NAME.search(key))


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/sms-async/config.toml``, or ``~/.config/sms-async/config.toml``."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "sms-async" / "config.toml"


@attrs.frozen
class ConfigFile:
    """The TOML config file as read: a section per gateway, and optionally ``gateway = "name"`` at its top.

    Its values (secrets among them) stay out of the repr.
    """

    #: The parsed file (empty when there is none).
    table: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
    #: The file read, if any.
    path: Path | None = None
    #: Whether it holds a secret while other users may read it (the caller warns).
    readable_by_others: bool = False

    @property
    def name(self) -> str:
        """How messages name the file."""
        return f"config file {self.path}" if self.path is not None else "the config file"

    def gateway_sections(self) -> list[str]:
        """The sections naming a registered gateway, in the file's order."""
        names = gateway_names()
        return [name for name, value in self.table.items() if name in names and isinstance(value, dict)]

    def section(self, gateway_name: str, keys: Iterable[str]) -> dict[str, Any]:
        """The ``[gateway_name]`` section, checked against the driver's settings ``keys``.

        Raises:
            ConfigurationError: the section is no table, holds a key the driver
                does not read, or a value of the wrong kind (the message names
                the key, never a value).
        """
        raw = self.table.get(gateway_name, {})
        if not isinstance(raw, dict):
            raise ConfigurationError(f"{self.name}: [{gateway_name}] must be a table")
        known = frozenset(keys) | SEND_DEFAULT_KEYS
        section: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in known:
                listed = ", ".join(sorted(known))
                raise ConfigurationError(
                    f"{self.name}: unknown key {key!r} in [{gateway_name}] (known: {listed})"
                )
            if key == "params":
                if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                    raise ConfigurationError(
                        f"{self.name}: [{gateway_name}.params] must be a table of text values, "
                        'such as templateid = "1107..."'
                    )
            elif key in FLAG_SETTINGS:
                if not isinstance(value, bool):
                    raise ConfigurationError(f"{self.name}: [{gateway_name}] {key} must be true or false")
            elif not isinstance(value, str):
                raise ConfigurationError(f"{self.name}: [{gateway_name}] {key} must be a string")
            section[key] = value
        return section


def load_config(
    path: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None
) -> ConfigFile:
    """Read the TOML config file: ``path``, else ``SMS_ASYNC_CONFIG``, else the default location if it exists.

    The one reader of the file, for the command line and the workers. A file
    named (by ``path`` or the variable) must exist; the default one may be
    absent, which gives an empty :class:`ConfigFile`.

    Raises:
        ConfigurationError: the file named does not exist, cannot be read, or
            is not valid TOML (the message names a position, never the contents).
    """
    env = os.environ if env is None else env
    chosen = Path(path) if path is not None else None
    explicit = chosen is not None
    if chosen is None and env.get(ENV_CONFIG):
        chosen, explicit = Path(env[ENV_CONFIG]), True
    if chosen is None:
        chosen = default_config_path(env)
        if not chosen.is_file():
            return ConfigFile()
    try:
        data = chosen.read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(f"config file {chosen} does not exist") from None
    except OSError as error:
        if not explicit:
            return ConfigFile()
        raise ConfigurationError(f"cannot read config file {chosen}: {error.strerror}") from None
    try:
        table = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        # The parser's message names a position, never the file's contents.
        raise ConfigurationError(f"config file {chosen} is not valid TOML: {error}") from None
    return ConfigFile(table, chosen, _readable_by_others(chosen, table))


def _readable_by_others(path: Path, table: Mapping[str, Any]) -> bool:
    if sys.platform == "win32":  # pragma: no cover - POSIX permission bits only
        return False
    has_secret = any(
        isinstance(section, dict) and any(is_secret_setting(key) for key in section)
        for section in table.values()
    )
    try:
        mode = path.stat().st_mode
    except OSError:  # pragma: no cover - it was just read
        return False
    return has_secret and bool(mode & (stat.S_IRWXG | stat.S_IRWXO))


@attrs.frozen
class GatewayChoice:
    """Which gateway was chosen, by what, and a hint when a default may surprise."""

    name: str
    #: What named it (``"--gateway"``, ``SMS_ASYNC_GATEWAY``, the config file); empty for the default.
    where: str = ""
    #: Why a default was taken while the config file names other gateways (for error messages).
    hint: str = ""


def choose_gateway(
    option: str | None = None,
    *,
    config: ConfigFile | None = None,
    env: Mapping[str, str] | None = None,
    option_name: str = "gateway=",
) -> GatewayChoice:
    """The gateway to use: ``option``, else ``SMS_ASYNC_GATEWAY``, else the config file's ``gateway``,
    else its only gateway section, else :data:`DEFAULT_GATEWAY`.

    The one rule for every command and worker; ``config`` is read
    (:func:`load_config`) when not given, and ``option_name`` is how messages
    name ``option``.

    Raises:
        ConfigurationError: the name chosen is no registered gateway.
    """  # noqa: D205
    env = os.environ if env is None else env
    config = config if config is not None else load_config(env=env)
    names = gateway_names()
    sections = config.gateway_sections()
    if option:
        chosen, where = option, option_name
    elif env.get(ENV_GATEWAY):
        chosen, where = env[ENV_GATEWAY], ENV_GATEWAY
    elif isinstance(config.table.get("gateway"), str):
        chosen, where = config.table["gateway"], config.name
    elif len(sections) == 1:
        chosen, where = sections[0], config.name
    else:
        chosen, where = DEFAULT_GATEWAY, ""
    if chosen not in names:
        raise ConfigurationError(
            f"{where or 'default'}: unknown gateway {chosen!r}; choose one of: {', '.join(names)}"
        )
    hint = ""
    if not where and sections and chosen not in sections:
        other = sections[0]
        hint = (
            f"the gateway is {chosen} by default, and {config.name} has no [{chosen}] section but has "
            f'[{"], [".join(sections)}]: pass --gateway {other}, or put gateway = "{other}" at its top'
        )
    return GatewayChoice(chosen, where, hint)


@attrs.frozen
class FoundSettings:
    """A gateway's settings as found, and where each came from (for messages; never the values)."""

    #: The driver's settings (keys of its ``settings_keys``), ``params`` apart.
    values: Mapping[str, Any] = attrs.field(repr=False)
    #: Where each setting came from: ``"options"``, ``"the environment"`` or the config file's name.
    sources: Mapping[str, str]
    #: The section's extra request parameters (``[name.params]``).
    params: Mapping[str, str] = attrs.field(repr=False)
    #: The section's whole table (``sender_id`` and ``region`` included).
    section: Mapping[str, Any] = attrs.field(repr=False)


def gateway_settings(
    gateway_name: str,
    *,
    options: Mapping[str, Any] | None = None,
    config: ConfigFile | None = None,
    env: Mapping[str, str] | None = None,
    options_source: str = "the options",
    spell: Callable[[str], str] = str,
) -> FoundSettings:
    """The settings of ``gateway_name``'s driver: ``options`` first, then ``SMS_ASYNC_<KEY>``, then the file.

    The one lookup of a gateway's settings, for the command line (its flags
    are ``options``) and the workers (no options). ``options`` are values by
    settings key, ``None`` or ``False`` for not given; ``spell`` names a key
    as the caller's options do (``--send-path`` on the command line).

    Raises:
        ConfigurationError: the gateway is unknown, an option is no setting of
            its driver, or the config file's section is wrong.
    """
    env = os.environ if env is None else env
    config = config if config is not None else load_config(env=env)
    keys = gateway(gateway_name).settings_keys
    given = {key: value for key, value in (options or {}).items() if value not in (None, False, "")}
    for key in given:
        if key not in keys:
            known = ", ".join(spell(k) for k in sorted(keys - {"params"}))
            raise ConfigurationError(
                f"{spell(key)}: the {gateway_name} gateway has no such setting (its settings: {known})"
            )
    section = config.section(gateway_name, keys)
    from_environment = environment_settings(keys, env)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key in sorted(keys - {"params"}):
        if key in given:
            values[key], sources[key] = given[key], options_source
        elif key in from_environment:
            values[key], sources[key] = from_environment[key], "the environment"
        elif key in section:
            values[key], sources[key] = section[key], config.name
    return FoundSettings(values, sources, dict(section.get("params", {})), section)
