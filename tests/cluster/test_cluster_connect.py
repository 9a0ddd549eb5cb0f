"""The store's connection settings: bounded connects, keepalives, timeouts, and the pooler switch."""

from __future__ import annotations

import pytest

pytest.importorskip("psycopg")

from sms_async import ConfigurationError
from sms_async.cluster._connect import ConnectionSettings

URL = "postgresql://sms:pw-db-1@127.0.0.1:5432/test"


def test_every_connection_is_bounded_and_kept_alive_by_default():
    """connect_timeout, TCP keepalives, tcp_user_timeout and a server statement timeout are all set."""
    kwargs = ConnectionSettings.parse(URL, {}).kwargs("app")
    assert kwargs["connect_timeout"] == 5
    assert (kwargs["keepalives"], kwargs["keepalives_idle"], kwargs["keepalives_count"]) == (1, 5, 3)
    assert kwargs["tcp_user_timeout"] == 8000
    assert "statement_timeout=8000" in kwargs["options"]
    assert "prepare_threshold" not in kwargs
    assert (kwargs["autocommit"], kwargs["application_name"]) == (True, "app")


def test_the_urls_own_settings_win():
    """A keepalive or timeout set in the URL is the one used."""
    kwargs = ConnectionSettings.parse(URL + "?connect_timeout=30&keepalives_idle=60", {}).kwargs("app")
    assert "connect_timeout" not in kwargs
    assert "keepalives_idle" not in kwargs
    assert kwargs["keepalives_interval"] == 2


@pytest.mark.parametrize(
    ("url", "env"),
    [
        (URL, {"SMS_ASYNC_DATABASE_PREPARE": "0"}),
        (URL + "?sms_async_prepare=0", {}),
        (URL + "?sslmode=disable&sms_async_prepare=off", {}),
        ("host=127.0.0.1 dbname=test sms_async_prepare=0", {}),
        (URL + "?sms_async_prepare=1", {"SMS_ASYNC_DATABASE_PREPARE": "no"}),
    ],
)
def test_prepared_statements_can_be_turned_off_by_url_or_environment(url, env):
    """SMS_ASYNC_DATABASE_PREPARE=0 or the URL's sms_async_prepare=0 turn server-side preparing off."""
    settings = ConnectionSettings.parse(url, env)
    kwargs = settings.kwargs("app")
    assert settings.pooled
    assert kwargs["prepare_threshold"] is None
    assert "options" not in kwargs  # PgBouncer refuses startup options
    assert "sms_async_prepare" not in settings.url


def test_the_url_option_never_reaches_libpq():
    """The URL keeps its other options once sms_async_prepare is taken out."""
    settings = ConnectionSettings.parse(URL + "?sms_async_prepare=0&sslmode=disable", {})
    assert settings.url == URL + "?sslmode=disable"


@pytest.mark.parametrize(
    ("url", "env", "named"),
    [
        (URL + "?sms_async_prepare=maybe", {}, "sms_async_prepare"),
        (URL, {"SMS_ASYNC_DATABASE_PREPARE": "2"}, "SMS_ASYNC_DATABASE_PREPARE"),
        (URL, {"SMS_ASYNC_DATABASE_TIMEOUT": "0.1"}, "SMS_ASYNC_DATABASE_TIMEOUT"),
        (URL, {"SMS_ASYNC_DATABASE_TIMEOUT": "soon"}, "SMS_ASYNC_DATABASE_TIMEOUT"),
    ],
)
def test_bad_settings_say_which_and_what_is_allowed(url, env, named):
    """A value that is not 0/1 or a number of seconds is refused, naming the setting."""
    with pytest.raises(ConfigurationError, match=named):
        ConnectionSettings.parse(url, env)


def test_a_pooler_found_out_changes_the_connections_still_to_come():
    """Once a pooler is found, kwargs already handed to pools stop preparing and sending options."""
    settings = ConnectionSettings.parse(URL, {})
    handed = settings.kwargs("app")
    settings.found_pooler("a test said so")
    assert handed["prepare_threshold"] is None
    assert "options" not in handed


def test_the_operation_timeout_comes_from_the_environment():
    """SMS_ASYNC_DATABASE_TIMEOUT sets the client deadline; the server statement timeout is a little less."""
    settings = ConnectionSettings.parse(URL, {"SMS_ASYNC_DATABASE_TIMEOUT": "4"})
    assert settings.operation_timeout == 4.0
    assert "statement_timeout=3200" in settings.kwargs("app")["options"]


async def _hammer(store, times: int = 12) -> None:
    """The hot statements, many times on every pooled connection: psycopg prepares them after five."""
    import anyio  # noqa: PLC0415

    async def many() -> None:
        for _ in range(times):
            await store.fetchone("heartbeat", runner="r", campaign=1)

    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(many)


@pytest.mark.parametrize("told", [False, True])
async def test_a_store_behind_pgbouncer_prepares_nothing(caplog, monkeypatch, told):
    """Through PgBouncer (transaction pooling), found out or told, statements run unprepared, unfailed."""
    from cluster_support import new_schema  # noqa: PLC0415
    from test_cluster_deployments import require_pgbouncer  # noqa: PLC0415

    from sms_async.cluster import CampaignStore  # noqa: PLC0415

    url = require_pgbouncer()
    if told:
        monkeypatch.setenv("SMS_ASYNC_DATABASE_PREPARE", "0")
    async with CampaignStore(url, schema=new_schema(), patience=10, max_connections=4) as store:
        await store.install()
        try:
            await _hammer(store)
        finally:
            await store.drop()
    assert store.connecting.pooled
    assert ("transaction pooler" in caplog.text) is not told


async def test_prepared_statement_errors_give_a_pooler_away_at_run_time(caplog):
    """A pooler letting startup options through is found out by its prepared-statement errors; none fails."""
    from cluster_support import new_schema  # noqa: PLC0415
    from test_cluster_deployments import require_pgbouncer  # noqa: PLC0415

    from sms_async.cluster import CampaignStore  # noqa: PLC0415

    url = require_pgbouncer()
    store = CampaignStore(url, schema=new_schema(), patience=10, max_connections=4)
    for kwargs in store.connecting._handed:
        kwargs.pop("options")  # as a PgBouncer with ignore_startup_parameters = options
    async with store:
        await store.install()
        try:
            # Until two clients' statements meet on one server connection, which PgBouncer decides.
            for _ in range(50):
                await _hammer(store)
                if store.connecting.pooled:
                    break
        finally:
            await store.drop()
    assert store.connecting.pooled
    assert "prepared statement" in caplog.text
