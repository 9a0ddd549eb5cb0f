"""How the store connects: bounded connects, dead peers found in seconds, poolers that cannot prepare.

A store connection must never wait on a network that dropped its packets
without a word (a lost firewall or NAT entry leaves both ends' sockets open):

* ``connect_timeout`` bounds each connection attempt;
* TCP keepalives find an idle connection whose peer is gone, and
  ``tcp_user_timeout`` fails a connection whose sent bytes go unacknowledged,
  both within seconds instead of the kernel's two hours and fifteen minutes;
* the server ends a statement that runs past ``statement_timeout`` (a lock
  wait, say);
* :data:`OPERATION_TIMEOUT` bounds each store operation on the client side as
  well (the store's retry loop turns its expiry into "try again").

The libpq settings are defaults: any the connection URL sets itself wins.

Transaction-pooling poolers (PgBouncer before 1.21, or with
``max_prepared_statements = 0``) hand each transaction to any server
connection, where the statements psycopg prepares on one are missing or
already there on the next. Server-side prepared statements are then turned
off (``prepare_threshold=None``): by ``SMS_ASYNC_DATABASE_PREPARE=0``, by the
URL option ``sms_async_prepare=0`` (taken out before libpq sees the URL), or
found out: a pooler that refuses the ``options`` startup parameter is
PgBouncer, and the errors ``prepared statement ... does not exist`` /
``already exists`` mean a pooler too (see :func:`is_pooler_error`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import Any, Final

import attrs
import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

from sms_async._exceptions import ConfigurationError

__all__ = [
    "ENV_DATABASE_PREPARE",
    "ENV_DATABASE_TIMEOUT",
    "OPERATION_TIMEOUT",
    "ConnectionSettings",
    "is_pooler_error",
]

logger = logging.getLogger("sms_async.cluster")

ENV_DATABASE_PREPARE: Final = "SMS_ASYNC_DATABASE_PREPARE"
ENV_DATABASE_TIMEOUT: Final = "SMS_ASYNC_DATABASE_TIMEOUT"

#: Seconds one store operation may take on the client side before it counts as lost.
OPERATION_TIMEOUT: Final = 10.0

_URL_OPTION = re.compile(r"(?:(?<=[?&])|(?<=^)|(?<=\s))sms_async_prepare=(?P<value>[^&\s]*)&?")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _flag(value: str, where: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigurationError(f"{where} must be 0 or 1, got {value!r}")


def is_pooler_error(error: BaseException) -> bool:
    """Whether ``error`` says a transaction pooler lost or duplicated a prepared statement.

    Either way the statement did not run: it is safe to run again unprepared.
    """
    return isinstance(error, pg_errors.DuplicatePreparedStatement | pg_errors.InvalidSqlStatementName)


def _refuses_options(error: BaseException) -> bool:
    # PgBouncer's answer to a startup parameter it does not pass on.
    return isinstance(error, psycopg.OperationalError) and "unsupported startup parameter" in str(error)


@attrs.define
class ConnectionSettings:
    """The connection URL without this library's own option, and the settings each connection gets.

    Args:
        url: The libpq URL or key=value string, less ``sms_async_prepare``.
        prepare: Whether the server may keep prepared statements; ``None``:
            yes, until a pooler is found out.
        operation_timeout: Seconds one store operation may take client-side.
        statement_timeout: Seconds the server lets one statement run.
    """

    url: str = attrs.field(repr=False)
    prepare: bool | None = None
    operation_timeout: float = OPERATION_TIMEOUT
    statement_timeout: float = 8.0
    connect_timeout: int = 5
    keepalives_idle: int = 5
    keepalives_interval: int = 2
    keepalives_count: int = 3
    tcp_user_timeout_ms: int = 8000
    # The keyword dictionaries handed to pools, changed in place once a pooler is found out.
    _handed: list[dict[str, Any]] = attrs.field(factory=list, init=False, repr=False)

    @classmethod
    def parse(cls, url: str, env: Mapping[str, str] | None = None) -> ConnectionSettings:
        """Read ``sms_async_prepare`` from the URL, and the ``SMS_ASYNC_DATABASE_*`` variables (which win)."""
        env = os.environ if env is None else env
        prepare: bool | None = None
        found = _URL_OPTION.search(url)
        if found is not None:
            prepare = _flag(found.group("value"), "the URL option sms_async_prepare")
            url = _URL_OPTION.sub("", url).rstrip("?&").rstrip()
        if env.get(ENV_DATABASE_PREPARE):
            prepare = _flag(env[ENV_DATABASE_PREPARE], ENV_DATABASE_PREPARE)
        timeout = OPERATION_TIMEOUT
        if env.get(ENV_DATABASE_TIMEOUT):
            try:
                timeout = float(env[ENV_DATABASE_TIMEOUT])
            except ValueError:
                timeout = -1.0
            if not 1.0 <= timeout < float("inf"):
                raise ConfigurationError(
                    f"{ENV_DATABASE_TIMEOUT} must be a number of seconds of at least 1, "
                    f"got {env[ENV_DATABASE_TIMEOUT]!r}"
                )
        # The server gives up on a statement a little before the client does, so
        # that a slow statement is ended by the server (the connection survives)
        # rather than by the client (the connection is closed).
        return cls(url, prepare=prepare, operation_timeout=timeout, statement_timeout=timeout * 0.8)

    @property
    def pooled(self) -> bool:
        """Whether a transaction pooler is known to be in the way (nothing is prepared then)."""
        return self.prepare is False

    def found_pooler(self, why: str) -> None:
        """A pooler was found out: prepare nothing from now on (said once)."""
        if self.prepare is None:
            logger.warning(
                "campaign store: %s, so a transaction pooler (such as PgBouncer) is in the way; "
                "statements are no longer prepared on the server (set %s=0 to say so up front)",
                why,
                ENV_DATABASE_PREPARE,
            )
        self.prepare = False
        for kwargs in self._handed:
            kwargs.pop("options", None)
            kwargs["prepare_threshold"] = None

    def kwargs(self, application_name: str) -> dict[str, Any]:
        """The keyword arguments of each new connection; the URL's own settings win over these."""
        given = conninfo_to_dict(self.url)
        chosen: dict[str, Any] = {
            "connect_timeout": self.connect_timeout,
            "keepalives": 1,
            "keepalives_idle": self.keepalives_idle,
            "keepalives_interval": self.keepalives_interval,
            "keepalives_count": self.keepalives_count,
            "tcp_user_timeout": self.tcp_user_timeout_ms,
        }
        if not self.pooled and "options" not in given:
            # Startup options reach the server only where no pooler stands between (PgBouncer refuses them).
            # No idle-in-transaction timeout: a campaign's load is one transaction fed
            # by a reader that may be slow (a pipe), and must not be cut for it.
            chosen["options"] = f"-c statement_timeout={int(self.statement_timeout * 1000)}"
        kwargs = {key: value for key, value in chosen.items() if key not in given}
        kwargs.update({"autocommit": True, "application_name": application_name})
        if self.pooled:
            kwargs["prepare_threshold"] = None
        self._handed.append(kwargs)
        return kwargs

    def connection_class(self) -> type[psycopg.AsyncConnection[Any]]:
        """A connection class that finds PgBouncer out by its refusal of startup options, and reconnects."""
        settings = self

        class StoreConnection(psycopg.AsyncConnection[Any]):
            @classmethod
            async def connect(  # type: ignore[override]
                cls, conninfo: str = "", **kwargs: Any
            ) -> psycopg.AsyncConnection[Any]:
                try:
                    return await super().connect(conninfo, **kwargs)
                except psycopg.OperationalError as error:
                    if "options" not in kwargs or not _refuses_options(error):
                        raise
                settings.found_pooler("the server refused the startup parameter 'options'")
                kwargs.pop("options")
                kwargs["prepare_threshold"] = None
                return await super().connect(conninfo, **kwargs)

        return StoreConnection
