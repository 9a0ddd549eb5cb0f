"""The shard task on store failures, the Redis broker's options, and the check of the broker."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("celery")
pytest.importorskip("psycopg")

import psycopg
from celery import Celery

from sms_async.cluster import StoreUnavailableError
from sms_async.cluster import celery as tasks


class Retried(Exception):
    """What the fake task's retry raises."""


class FakeTask:
    """Stands for the bound Celery task: records how it was asked to retry."""

    def __init__(self) -> None:
        self.countdowns: list[float] = []
        self.kwargs: list[dict | None] = []

    def retry(self, *, countdown: float, exc: BaseException, kwargs: dict | None = None) -> Retried:
        """Record the countdown and the retry's keyword arguments; the exception to raise."""
        self.countdowns.append(countdown)
        self.kwargs.append(kwargs)
        return Retried(str(exc))


@pytest.fixture
def env(monkeypatch):
    """A worker's environment with a store address (never reached: the run is replaced)."""
    monkeypatch.setenv("SMS_ASYNC_DATABASE_URL", "postgresql://sms:pw-db-7@127.0.0.1:1/none")


@pytest.mark.parametrize(
    "error",
    [
        StoreUnavailableError("the campaign store cannot be reached (claim): no answer within 10 s"),
        psycopg.errors.DuplicatePreparedStatement('prepared statement "_pg3_0" already exists'),
        psycopg.OperationalError("consuming input failed"),
        TimeoutError(),
        ConnectionResetError("reset"),
    ],
)
def test_a_store_error_retries_the_shard_and_says_so(monkeypatch, caplog, env, error):
    """Whatever the store raised, the shard's task is retried in 10 s (logged), never acknowledged as done."""

    def fail(*_args):
        raise error

    monkeypatch.setattr(tasks._RUNTIME, "call", fail)
    caplog.set_level(logging.WARNING, logger="sms_async.cluster")
    task = FakeTask()
    with pytest.raises(Retried):
        tasks._run_shard_task(task, 7, 3)
    assert task.countdowns == [10.0]
    assert any(
        "campaign 7 shard 3" in r.getMessage() and "trying again in 10 s" in r.getMessage()
        for r in caplog.records
    )
    assert "pw-db-7" not in caplog.text


def test_an_unforeseen_failure_retries_the_shard_later(monkeypatch, caplog, env):
    """A failure nobody foresaw is logged with its traceback and retried in a minute, not acknowledged."""

    def fail(*_args):
        raise KeyError("surprise")

    monkeypatch.setattr(tasks._RUNTIME, "call", fail)
    task = FakeTask()
    with pytest.raises(Retried):
        tasks._run_shard_task(task, 7, 3)
    assert task.countdowns == [60.0]


@pytest.mark.parametrize("error", [StoreUnavailableError, KeyError])
def test_the_batches_to_give_back_travel_in_the_retried_tasks_arguments(monkeypatch, env, error):
    """What a try could not give back goes to the retry, with what it was given (given back or not)."""
    calls: list[tuple] = []

    def fail(*args):
        calls.append(args)
        if error is StoreUnavailableError:
            raise StoreUnavailableError("lost", unwritten=((9, "host:2:bb"),))
        raise error("surprise")

    monkeypatch.setattr(tasks._RUNTIME, "call", fail)
    task = FakeTask()
    with pytest.raises(Retried):
        tasks._run_shard_task(task, 7, 3, give_back=[[4, "host:1:aa"]])
    assert calls[0][-1] == [(4, "host:1:aa")]
    carried = [[4, "host:1:aa"]] + ([[9, "host:2:bb"]] if error is StoreUnavailableError else [])
    assert task.kwargs == [{"give_back": carried}]
    with pytest.raises(Retried):
        tasks._run_shard_task(task, 7, 3)
    assert task.kwargs[-1] == ({"give_back": [[9, "host:2:bb"]]} if error is StoreUnavailableError else {})


def test_redis_brings_a_killed_workers_shard_back_within_a_minute_and_a_half():
    """Visibility outlasts a shard run, and kombu scans for overdue deliveries on every look, every 5 s."""
    options = tasks.redis_transport_options(45.0)
    assert options["visibility_timeout"] == 60
    assert (options["unacked_restore_interval"], options["unacked_restore_throttle"]) == (5, 1)
    worst = (
        options["visibility_timeout"]
        + options["unacked_restore_interval"] * options["unacked_restore_throttle"]
    )
    assert worst <= 90
    assert tasks.redis_transport_options(10.0)["visibility_timeout"] == 25


def test_configure_sets_the_redis_options_only_for_redis():
    """A redis:// broker gets the transport options; RabbitMQ keeps its own behaviour."""
    redis_app = tasks.configure(Celery("t1"), "redis://127.0.0.1:6379/15")
    assert redis_app.conf.broker_transport_options["unacked_restore_throttle"] == 1
    amqp_app = tasks.configure(Celery("t2"), "amqp://127.0.0.1:5672//")
    assert not amqp_app.conf.broker_transport_options


def test_kombus_redis_transport_imports():
    """The test extra installs sms_async[redis] as users do: kombu's Redis transport imports."""
    import kombu.transport.redis  # noqa: PLC0415

    assert kombu.transport.redis.Transport.driver_type == "redis"


@pytest.mark.parametrize("url", ["redis://:pw-broker-3@127.0.0.1:1/0", "amqp://u:pw-broker-3@127.0.0.1:1//"])
def test_an_unreachable_broker_is_found_before_anything_is_marked(url):
    """check_broker raises BrokerUnavailableError naming the setting, without the password."""
    target = tasks.configure(Celery("t3"), url)
    with pytest.raises(tasks.BrokerUnavailableError, match="SMS_ASYNC_BROKER_URL") as info:
        tasks.check_broker(target, timeout=2)
    assert "pw-broker-3" not in str(info.value)
