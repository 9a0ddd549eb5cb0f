"""What a cluster process reads from its own environment: where the store and broker are, and credentials.

Nothing read here is ever written to the store. The campaign store holds the
campaign (text, sender id, gateway name, region, rate) and each worker brings
its own gateway credentials, from the same variables and config file the
command line uses::

    SMS_ASYNC_DATABASE_URL     postgresql://user@db-host:5432/sms (shared by many machines), or
                               sqlite:///campaigns.db (this machine only; the default is
                               sqlite:///sms-async-campaigns.db in the working directory)
    SMS_ASYNC_DATABASE_SCHEMA  the schema holding the store's tables (default sms_async)
    SMS_ASYNC_BROKER_URL       amqp://user:password@rabbit-host:5672//   (default: RabbitMQ on 127.0.0.1)
    SMS_ASYNC_<SETTING>        each setting the campaign's gateway driver declares: the account
                               (SMS_ASYNC_USERNAME, SMS_ASYNC_PASSWORD...) and its address; or
                               the gateway's section of SMS_ASYNC_CONFIG (default
                               ~/.config/sms-async/config.toml), found as the command line finds them
    SMS_ASYNC_ACCOUNT          optional: the name of the rate limit this worker's account
                               shares (default: derived from gateway, address and user name)
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
from collections.abc import Mapping
from typing import Any, Final

import attrs

from sms_async._exceptions import ConfigurationError
from sms_async.campaign import (
    DEFAULT_STORE_FILE,
    ENV_DATABASE_URL,
    FLAG_SETTINGS,
    CampaignError,
    SqliteStore,
    Store,
    gateway_settings,
    load_config,
    setting_variable,
)
from sms_async.providers import Driver, gateway

__all__ = [
    "DEFAULT_BROKER_URL",
    "DEFAULT_STORE_URL",
    "ENV_BROKER_URL",
    "ENV_DATABASE_SCHEMA",
    "ENV_DATABASE_URL",
    "ClusterSettings",
    "account_key",
    "check_account",
    "check_schema",
    "driver_from_environment",
    "open_store",
]

ENV_DATABASE_SCHEMA: Final = "SMS_ASYNC_DATABASE_SCHEMA"
ENV_BROKER_URL: Final = "SMS_ASYNC_BROKER_URL"
ENV_ACCOUNT: Final = "SMS_ASYNC_ACCOUNT"

_log = logging.getLogger("sms_async.cluster")
# The settings that name an account, as a worker's error lists them.
_ACCOUNT_KEYS: Final[tuple[str, ...]] = ("username", "password")

#: RabbitMQ on this machine, with its default account (kombu's default user).
DEFAULT_BROKER_URL: Final = "amqp://127.0.0.1:5672//"
DEFAULT_SCHEMA: Final = "sms_async"
#: The campaign commands' store when SMS_ASYNC_DATABASE_URL names none: a SQLite file here.
DEFAULT_STORE_URL: Final = f"sqlite:///{DEFAULT_STORE_FILE}"

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def check_schema(name: str) -> str:
    """``name`` if it can name a PostgreSQL schema without quoting tricks, else ConfigurationError."""
    if not isinstance(name, str) or not _SCHEMA_NAME.fullmatch(name):
        raise ConfigurationError(
            f"the store's schema must be a plain name (letters, digits, _; at most 63), got {name!r}"
        )
    return name


def _positive(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0 or math.isinf(value):
        raise ConfigurationError(f"{attribute.name} must be a number of seconds > 0, got {value!r}")


@attrs.frozen
class ClusterSettings:
    """Where the store and the broker are, and how long a worker waits for what.

    Args:
        database_url: The PostgreSQL campaign store (a libpq URL or key=value string).
        schema: The schema holding the store's tables.
        broker_url: The Celery broker (RabbitMQ recommended: it redelivers a
            killed worker's shard as soon as its connection drops).
        lease: Seconds after a worker's last heartbeat before the batches it
            was sending are taken to be lost (reported ``unknown``, never sent again).
        heartbeat: Seconds between a running shard's heartbeats.
        shard_seconds: Seconds a shard task works before it hands the rest of
            its shard to a new task (keeps every delivery well inside the
            broker's consumer or visibility timeout).
        patience: Seconds a store operation keeps retrying a lost connection
            before the shard gives up (and its task is retried later).
        concurrency: Requests in flight per shard.
    """

    database_url: str = attrs.field(repr=False)
    schema: str = attrs.field(default=DEFAULT_SCHEMA, converter=check_schema)
    broker_url: str = attrs.field(default=DEFAULT_BROKER_URL, repr=False)
    lease: float = attrs.field(default=20.0, validator=_positive)
    heartbeat: float = attrs.field(default=5.0, validator=_positive)
    shard_seconds: float = attrs.field(default=45.0, validator=_positive)
    patience: float = attrs.field(default=60.0, validator=_positive)
    concurrency: int = 32

    def shard_options(self) -> dict[str, Any]:
        """What :func:`~sms_async.cluster.run_shard` takes from these settings."""
        return {
            "concurrency": self.concurrency,
            "budget": self.shard_seconds,
            "lease": self.lease,
            "heartbeat": self.heartbeat,
        }

    def __attrs_post_init__(self) -> None:
        if self.heartbeat * 2 > self.lease:
            raise ConfigurationError(
                f"the heartbeat ({self.heartbeat:g} s) must be at most half the lease ({self.lease:g} s), "
                "or a slow heartbeat would make a live worker look dead"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ClusterSettings:
        """Read ``SMS_ASYNC_*`` variables (see the module docstring); ``overrides`` win.

        Raises:
            ConfigurationError: a number is not one.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        url = env.get(ENV_DATABASE_URL)
        if url:
            values["database_url"] = url
        if env.get(ENV_DATABASE_SCHEMA):
            values["schema"] = env[ENV_DATABASE_SCHEMA]
        if env.get(ENV_BROKER_URL):
            values["broker_url"] = env[ENV_BROKER_URL]
        for name, kind in (
            ("lease", float),
            ("heartbeat", float),
            ("shard_seconds", float),
            ("patience", float),
            ("concurrency", int),
        ):
            variable = f"SMS_ASYNC_{name.upper()}"
            if env.get(variable):
                try:
                    values[name] = kind(env[variable])
                except ValueError:
                    raise ConfigurationError(f"{variable} must be a number, got {env[variable]!r}") from None
        values.update({name: value for name, value in overrides.items() if value is not None})
        values.setdefault("database_url", DEFAULT_STORE_URL)
        return cls(**values)

    @property
    def shared(self) -> bool:
        """Whether the store is one many machines share (PostgreSQL), not a file of this machine's."""
        return not self.database_url.startswith("sqlite:")


def driver_from_environment(gateway_name: str, env: Mapping[str, str] | None = None) -> Driver:
    """The driver for ``gateway_name`` with this process's credentials.

    Found as the command line finds them (:func:`sms_async.campaign.gateway_settings`):
    ``SMS_ASYNC_<SETTING>`` variables win over the config file's
    ``[gateway_name]`` section; the driver keeps its secrets out of every
    message.

    Raises:
        ConfigurationError: the gateway is unknown, the config file is wrong,
            or its settings are missing or wrong (the message names the
            variables, never a value).
    """
    env = os.environ if env is None else env
    config = load_config(env=env)
    if config.readable_by_others:
        _log.warning(
            "%s holds a password or token and other users can read it; run: chmod 600 %s",
            config.path,
            config.path,
        )
    found = gateway_settings(gateway_name, config=config, env=env)
    settings: dict[str, Any] = dict(found.values)
    if found.params:
        settings["params"] = dict(found.params)
    try:
        return gateway(gateway_name).from_settings(settings)
    except ConfigurationError as error:
        keys = gateway(gateway_name).settings_keys
        account = [key for key in _ACCOUNT_KEYS if key in keys] or sorted(keys - FLAG_SETTINGS - {"params"})
        needed = " and ".join(setting_variable(key) for key in account)
        raise ConfigurationError(
            f"this worker has no usable {gateway_name} account ({error.reason}): set {needed} "
            f"(and {setting_variable('base_url')} where needed) in its environment, or fill the "
            f"[{gateway_name}] section of its config file"
        ) from None


async def check_account(driver: Driver) -> None:
    """Ask the gateway whether it knows ``driver``'s account, where it has a look-up that needs one.

    A worker does so before it takes a shard, so that a wrong password stops
    that worker at once instead of aborting the first campaign it touches.
    Gateways without a balance look-up are not asked (nothing else they offer
    reads an account without sending).

    Raises:
        AuthenticationError: the gateway refused the credentials.
        SmsError: the look-up failed otherwise (the gateway out of reach).
    """
    if not driver.capabilities.balance:
        return
    from sms_async._engine import BulkSender  # noqa: PLC0415 - the engine, only when a worker starts

    async with BulkSender(driver) as bulk:
        await bulk.balance()


def account_key(driver: Driver, env: Mapping[str, str] | None = None) -> str:
    """The name of the rate limit that every worker sending through this account shares.

    ``SMS_ASYNC_ACCOUNT`` when set; otherwise the gateway's name and a digest
    of its address and user name, so that two workers with the same account
    share one limit and the store holds no user name. Workers that log in with
    a token alone share one limit per gateway address.
    """
    env = os.environ if env is None else env
    chosen = env.get(ENV_ACCOUNT)
    if chosen:
        return chosen
    username = getattr(driver, "username", None) or ""
    who = f"{driver.origin.url}\0{username}".encode()
    return f"{driver.name}:{hashlib.blake2b(who, digest_size=8).hexdigest()}"


def open_store(settings: ClusterSettings, **options: Any) -> Store:
    """The store ``settings`` name: SQLite for a ``sqlite:`` URL, else PostgreSQL (``options`` are its).

    Only a PostgreSQL store needs the ``cluster`` extra (psycopg).
    """
    if not settings.shared:
        return SqliteStore.from_url(settings.database_url, patience=settings.patience)
    try:
        from sms_async.cluster._store import CampaignStore  # noqa: PLC0415 - psycopg, only for PostgreSQL
    except ImportError:
        raise CampaignError(
            "a PostgreSQL campaign store needs psycopg: pip install 'sms_async[cluster]' "
            "(or keep campaigns in a SQLite file: --store sqlite:///campaigns.db)"
        ) from None
    return CampaignStore.from_settings(settings, **options)
