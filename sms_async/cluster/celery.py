"""Campaign shards as Celery tasks: ``sms_async.cluster.celery:app`` and the task ``sms_async.run_shard``.

Run workers with ``sms-async worker`` (or ``celery -A sms_async.cluster.celery:app
worker --pool threads -Q sms_async``). To run shards in a Celery deployment of
your own, register the task on your app and have a worker consume the
campaign's queue::

    from sms_async.cluster.celery import register
    register(my_app)        # the task "sms_async.run_shard", with the options below

The task is thin: the state that decides whether a batch was sent lives in the
campaign store, not in the queue, so a task delivered twice, or redelivered
after a crash while the first copy still runs, never sends a batch twice.

* ``acks_late``: the message is acknowledged when the shard run ends, so a
  killed worker's shard is delivered again (RabbitMQ does so as soon as the
  worker's connection drops; Redis once its visibility timeout has passed
  since the delivery, set here to the shard's time budget plus 15 s, 60 s by
  default, and looked for every 5 s: see :func:`redis_transport_options`).
* ``reject_on_worker_lost``: a pool process that dies (prefork pools) puts
  its message back instead of acknowledging it as failed.
* prefetch 1: a worker holds only the shard it is running.
* each run stops after ``SMS_ASYNC_SHARD_SECONDS`` (45 s) at a batch
  boundary and queues the rest of its shard as a new task, so no delivery
  comes near RabbitMQ's consumer timeout (30 min) or the visibility timeout.
* the store unreachable (or failing in any way: a store error never
  acknowledges a shard as done): the task is retried in 10 s, without limit,
  and each retry is logged. A batch whose claim lost its answer (maybe
  claimed, certainly never sent) travels in the retried task's arguments
  (``give_back``), so that the worker that runs the retry, whichever it is,
  makes it pending again before anything else.
* shards run on an event loop of the worker process's own (not Celery's),
  in a thread, with the store's connections kept open from one task to the next.

Delivery reports are polled by a second task, ``sms_async.poll_reports``, with
the same options: ``campaign start`` queues one per campaign; each polls the
ids due (the store leases them to it, so that two workers never poll one id
at once, and a killed worker's lease runs out and its ids are polled again)
and queues the next for when the next poll is due (at most 10 minutes
ahead, as a shard waiting for its window is), until no number is pending
and the campaign has stopped sending. A poll done twice changes nothing:
delivery states only move forward.

Those tasks make a chain, and each ``campaign start`` makes a new one of a
new generation (:meth:`CampaignStore.new_poll_chain`), which the chain's
tasks carry: a task of an older generation ends without polling or queuing
another. So however often a campaign is started, one chain polls it; and a
chain that was lost (a purged queue) is made again by the next start.

``SMS_ASYNC_TEST_CLOCK`` (for tests only) names a file holding an ISO 8601
time: this process's shard runs and polls read the time from it, and tasks
queued for later on that clock wake within a twentieth of a second to look
again, so that a test moves the workers' time (and the simulated gateway's)
by hours in a step.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import os
import socket
import threading
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

import anyio
import psycopg
from celery import Celery, Task
from celery.exceptions import Reject

from sms_async._clock import SYSTEM_CLOCK, Clock
from sms_async._exceptions import ConfigurationError, GatewayError
from sms_async._redact import redact
from sms_async.cluster._load import DEFAULT_QUEUE
from sms_async.cluster._reports import ReportsPolled, poll_reports
from sms_async.cluster._runner import ShardReport, give_back_unwritten, run_shard
from sms_async.cluster._settings import (
    DEFAULT_BROKER_URL,
    ENV_BROKER_URL,
    ClusterSettings,
    driver_from_environment,
)
from sms_async.cluster._store import CampaignStore, StoredCampaign, StoreUnavailableError

__all__ = [
    "POLL_TASK_NAME",
    "TASK_NAME",
    "TASK_OPTIONS",
    "BrokerUnavailableError",
    "app",
    "check_broker",
    "configure",
    "enqueue",
    "prepare",
    "redis_transport_options",
    "register",
    "run_shard_task",
    "shutdown",
]

logger = logging.getLogger("sms_async.cluster")

T = TypeVar("T")

#: The task's name: messages name it, so any app that registers it can run them.
TASK_NAME: Final = "sms_async.run_shard"
#: The options the task is registered with.
TASK_OPTIONS: Final[dict[str, Any]] = {
    "name": TASK_NAME,
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "ignore_result": True,
    "max_retries": None,
}
#: The delivery polling task's name.
POLL_TASK_NAME: Final = "sms_async.poll_reports"
# Seconds between a campaign's polling tasks while it still sends and no poll is due.
_POLL_IDLE: Final = 30.0
# The furthest a task is queued ahead: a worker holds a message with an ETA unacknowledged
# until then, and RabbitMQ closes a channel that holds one past its consumer timeout (30 min).
_LONGEST_WAIT: Final = timedelta(minutes=10)


#: The variable naming a test clock's file (see the module's docstring).
ENV_TEST_CLOCK: Final = "SMS_ASYNC_TEST_CLOCK"
# Seconds of real time at most before a task queued for later on a test clock looks again.
_TEST_CLOCK_WAKE: Final = 0.05


class _FileClock:
    """A clock that a test in another process drives: the time is the ISO 8601 time its file holds.

    The test replaces the file's content (atomically) to move time on; sleepers look every 50 ms.
    """

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"_FileClock({str(self.path)!r})"

    def now(self) -> datetime:
        """The time the file holds, in UTC."""
        return datetime.fromisoformat(self.path.read_text(encoding="utf-8").strip()).astimezone(UTC)

    def monotonic(self) -> float:
        """The file's time in seconds since the epoch (a test only moves it forward)."""
        return self.now().timestamp()

    async def sleep(self, seconds: float) -> None:
        """Wait until the file's time has moved on by ``seconds``."""
        end = self.monotonic() + seconds
        await anyio.sleep(0.05 if seconds > 0 else 0.0)
        while self.monotonic() < end:  # noqa: ASYNC110 - the time is in a file another process writes
            await anyio.sleep(0.05)


_clock_said = False


def _clock_from_environment() -> Clock:
    """This process's clock: the machine's, or a test's (``SMS_ASYNC_TEST_CLOCK``)."""
    global _clock_said  # noqa: PLW0603 - said once per process
    path = os.environ.get(ENV_TEST_CLOCK)
    if not path:
        return SYSTEM_CLOCK
    if not _clock_said:
        _clock_said = True
        logger.warning(
            "%s is set: this process reads the time from %s (for tests only)", ENV_TEST_CLOCK, path
        )
    return _FileClock(path)


def _eta(when: datetime | None, clock: Clock = SYSTEM_CLOCK) -> datetime | None:
    """When to run a task queued again for ``when`` on ``clock``: then, or :data:`_LONGEST_WAIT` from now.

    On a test clock, time moves when the test says: the task looks again within :data:`_TEST_CLOCK_WAKE` s.
    """
    if when is None:
        return None
    return datetime.now(UTC) + timedelta(seconds=_delay(clock, (when - clock.now()).total_seconds()))


def _delay(clock: Clock, seconds: float) -> float:
    """Real seconds to wait for ``seconds`` of ``clock``: as many (at most :data:`_LONGEST_WAIT`), or on a
    test clock at most :data:`_TEST_CLOCK_WAKE`.
    """  # noqa: D205
    seconds = min(max(seconds, 0.0), _LONGEST_WAIT.total_seconds())
    return min(seconds, _TEST_CLOCK_WAKE) if isinstance(clock, _FileClock) else seconds


# Seconds before a shard whose store was unreachable is tried again.
_STORE_RETRY: Final = 10.0
# Seconds before a shard that failed for a reason nobody foresaw is tried again.
_FAILURE_RETRY: Final = 60.0
# Seconds between kombu's looks for Redis deliveries whose worker died.
_REDIS_RESTORE_EVERY: Final = 5


class BrokerUnavailableError(RuntimeError):
    """The Celery broker could not be reached, or cannot be used (its client library is missing)."""


def redis_transport_options(shard_seconds: float | None = None) -> dict[str, Any]:
    """The Redis transport options of kombu: a killed worker's shard comes back within about a minute.

    Redis has no consumer connections to watch: kombu keeps each delivered,
    unacknowledged message aside and puts it back once ``visibility_timeout``
    seconds have passed since its delivery. That must outlast one shard run
    (``shard_seconds``, from ``SMS_ASYNC_SHARD_SECONDS``, 45 s by default) or a
    running shard is delivered a second time (harmless, the claims see to it,
    but wasted); 15 s more does. kombu looks for such messages every
    ``unacked_restore_interval`` seconds, but scans only on every
    ``unacked_restore_throttle``-th look (10 x 10 s by default, so the real wait
    was 60-160 s); here it scans on every look, every 5 s. A killed worker's
    shard is therefore back within ``shard_seconds + 15 + 5`` seconds of its
    delivery: 65 s by default.
    """
    if shard_seconds is None:
        try:
            shard_seconds = float(os.environ.get("SMS_ASYNC_SHARD_SECONDS") or 45.0)
        except ValueError:
            shard_seconds = 45.0  # ClusterSettings.from_env says what is wrong with it
    if not 0 < shard_seconds < math.inf:
        shard_seconds = 45.0
    return {
        "visibility_timeout": math.ceil(shard_seconds + 15),
        "unacked_restore_interval": _REDIS_RESTORE_EVERY,
        "unacked_restore_throttle": 1,
        # A broker that vanished without closing the connection is found out in seconds.
        "socket_timeout": 30,
        "socket_connect_timeout": 10,
        "socket_keepalive": True,
        "health_check_interval": 10,
    }


def _is_redis(url: str) -> bool:
    return url.startswith(("redis://", "rediss://", "redis+socket://"))


def configure(target: Celery, broker_url: str | None = None) -> Celery:
    """Set what the campaign tasks need on ``target``: late acks, prefetch 1, JSON, no results.

    ``broker_url`` defaults to ``SMS_ASYNC_BROKER_URL`` (else RabbitMQ on 127.0.0.1).
    """
    url = broker_url or os.environ.get(ENV_BROKER_URL) or DEFAULT_BROKER_URL
    options: dict[str, Any] = {
        "broker_url": url,
        "broker_connection_retry_on_startup": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": DEFAULT_QUEUE,
        "worker_prefetch_multiplier": 1,
        # A run whose connection dropped finishes its batches in flight; the
        # copy delivered again finds them settled.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
    }
    if _is_redis(url):
        options["broker_transport_options"] = redis_transport_options()
    target.conf.update(options)
    return target


def check_broker(target: Celery | None = None, timeout: float = 10.0) -> None:
    """Connect to the broker of ``target`` (default: :data:`app`) once, to know it can take tasks.

    ``campaign start`` calls it before it marks anything running.

    Raises:
        BrokerUnavailableError: the broker cannot be reached in ``timeout``
            seconds, or its client library is missing (the message says which
            extra to install); never with the broker's password.
    """
    sender = target or app
    url = str(sender.conf.broker_url or "")
    failure: BrokerUnavailableError | None = None
    try:
        with sender.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
    except ImportError as error:
        extra = "redis" if _is_redis(url) else "cluster"
        failure = BrokerUnavailableError(
            f"the broker's client library is missing ({error.name or error}): "
            f"pip install 'sms_async[{extra}]'"
        )
    except Exception as error:  # noqa: BLE001 - kombu raises many kinds; all mean the same here
        failure = BrokerUnavailableError(
            f"the broker (SMS_ASYNC_BROKER_URL) cannot be reached: {type(error).__name__}: "
            f"{redact(str(error))[:200]}"
        )
    if failure is not None:
        raise failure


def _run_shard_task(
    task: Task, campaign: int, shard: int, give_back: list[list[int | str]] | None = None
) -> None:
    """Run one shard of a campaign; queue the rest if its time budget ran out.

    ``give_back``: the batches, as ``[index, runner]``, that an earlier try of this task
    left maybe claimed and never sent (see :attr:`StoreUnavailableError.unwritten`). They
    travel in the retried task's own arguments, so that whichever worker runs it makes them
    pending again first: kept in the worker's memory, they would be lost with the worker, or
    with a retry that another worker takes, and the batches reported ``unknown``.
    """
    settings = ClusterSettings.from_env()
    carried = [(int(idx), str(runner)) for idx, runner in give_back or ()]
    try:
        report = _RUNTIME.call(_run_from_environment, settings, campaign, shard, carried)
    except (StoreUnavailableError, psycopg.Error, TimeoutError, OSError) as error:
        # Never acknowledged as done: the shard would be lost, its campaign running for ever.
        why = redact(str(error))[:300] or type(error).__name__
        logger.warning("campaign %d shard %d: %s; trying again in %.0f s", campaign, shard, why, _STORE_RETRY)
        raise task.retry(
            countdown=_STORE_RETRY,
            exc=StoreUnavailableError(why),
            kwargs=_give_back_kwargs(error, carried),
        ) from None
    except Exception as error:
        logger.exception(
            "campaign %d shard %d failed (%s); trying again in %.0f s",
            campaign,
            shard,
            type(error).__name__,
            _FAILURE_RETRY,
        )
        raise task.retry(
            countdown=_FAILURE_RETRY,
            exc=RuntimeError(type(error).__name__),
            kwargs=_give_back_kwargs(error, carried),
        ) from None
    logger.info(
        "campaign %d shard %d: %d batches settled, %d lost, %s",
        campaign,
        shard,
        report.settled,
        report.reaped,
        "complete" if report.complete else report.stopped or ("more to do" if report.more else "waiting"),
    )
    if report.more:
        try:
            # A shard waiting for its window comes back when the window opens, not at once.
            task.app.send_task(
                TASK_NAME,
                args=(campaign, shard),
                queue=report.queue,
                eta=_eta(report.opens_at, _clock_from_environment()),
            )
        except Exception as error:  # noqa: BLE001 - kombu raises many kinds; all mean the same here
            # Not acknowledged, this very message comes back for the rest of the shard.
            raise Reject(
                f"could not queue the rest of the shard ({type(error).__name__})", requeue=True
            ) from None


def _give_back_kwargs(error: BaseException, carried: list[tuple[int, str]]) -> dict[str, Any]:
    """The retried shard task's keyword arguments: the batches it is to give back, if any.

    A shard run says which in the :class:`StoreUnavailableError` it raises. What this try
    carried goes on too, whether given back already or not: a release is guarded by the
    batch's state and owner, so giving a batch back twice changes nothing.
    """
    pairs = set(carried)
    if isinstance(error, StoreUnavailableError):
        pairs.update(error.unwritten)
    return {"give_back": [[idx, runner] for idx, runner in sorted(pairs)]} if pairs else {}


def _poll_reports_task(task: Task, campaign: int, generation: int | None = None) -> None:
    """Poll a campaign's due delivery reports once; queue the next poll while numbers are pending.

    ``generation`` is the chain's (see :meth:`CampaignStore.new_poll_chain`): a task of a chain older
    than the campaign's live one ends at once. A task without one (queued by an earlier release)
    goes on while no start has made a chain since.
    """
    settings = ClusterSettings.from_env()
    clock = _clock_from_environment()
    try:
        found = _RUNTIME.call(_poll_from_environment, settings, campaign, generation, clock)
    except (StoreUnavailableError, psycopg.Error, TimeoutError, OSError) as error:
        why = redact(str(error))[:300] or type(error).__name__
        logger.warning("campaign %d reports: %s; trying again in %.0f s", campaign, why, _STORE_RETRY)
        raise task.retry(countdown=_STORE_RETRY, exc=StoreUnavailableError(why)) from None
    except GatewayError as error:
        if not error.aborts_run:
            raise task.retry(countdown=_FAILURE_RETRY, exc=RuntimeError(type(error).__name__)) from None
        # The account was refused: polling again would be refused too. What was recorded stays.
        logger.error(  # noqa: TRY400 - the reason is the message
            "campaign %d reports: %s: %s; polling stopped", campaign, type(error).__name__, error.reason
        )
        return
    except Exception as error:
        logger.exception("campaign %d reports failed (%s)", campaign, type(error).__name__)
        raise task.retry(countdown=_FAILURE_RETRY, exc=RuntimeError(type(error).__name__)) from None
    if isinstance(found, int):
        logger.info(
            "campaign %d reports: this polling chain (%s) was replaced by a later start's (%d); it ends here",
            campaign,
            "of an earlier release" if generation is None else f"generation {generation}",
            found,
        )
        return
    polled, state, queue = found
    tally = polled.tally
    # A poll that found nothing due (another poller holds it, or a test's clock stands still) is no news.
    logger.log(
        logging.INFO if polled.ids else logging.DEBUG,
        "campaign %d reports (chain %s): %d ids polled in %d requests; %d delivered, %d pending",
        campaign,
        "-" if generation is None else generation,
        polled.ids,
        polled.requests,
        tally.delivered,
        tally.pending,
    )
    if polled.next_due is not None:
        eta = polled.next_due
    elif state in {"ready", "running"}:
        # Still sending: numbers accepted from now on are polled 30 s after their acceptance.
        eta = clock.now() + timedelta(seconds=_POLL_IDLE)
    else:
        logger.info(
            "campaign %d reports: no number is pending and the campaign is %s: polling ends", campaign, state
        )
        return
    try:
        task.app.send_task(
            POLL_TASK_NAME, args=_poll_args(campaign, generation), queue=queue, eta=_eta(eta, clock)
        )
    except Exception as error:  # noqa: BLE001 - kombu raises many kinds; all mean the same here
        raise Reject(f"could not queue the next poll ({type(error).__name__})", requeue=True) from None


def _poll_args(campaign: int, generation: int | None) -> tuple[int, ...]:
    return (campaign,) if generation is None else (campaign, generation)


async def _poll_from_environment(
    runtime: _Runtime, settings: ClusterSettings, campaign: int, generation: int | None, clock: Clock
) -> tuple[ReportsPolled, str, str] | int:
    """One poll of the campaign's due ids; or, for a task of a replaced chain, the live chain's generation."""
    store = await runtime.store(settings)
    live = await store.poll_chain(campaign)
    if live is not None and (generation is None or generation < live):
        return live
    found = await store.campaign(campaign)
    driver = driver_from_environment(found.gateway)
    polled = await poll_reports(store, campaign, driver=driver, concurrency=settings.concurrency, clock=clock)
    return polled, (await store.campaign(campaign)).state, found.queue


class _Runtime:
    """This process's event loop for shards, in a thread of its own, and its open campaign stores.

    Kept from one task to the next: a shard run then finds its database
    connections open and warm instead of starting server processes (whose CPU,
    on a busy machine, would jitter the requests of the shards already running).
    The loop is made on first use, so each process of a forking pool has its own.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stores: dict[tuple[str, str, float], CampaignStore] = {}
        self._opening: asyncio.Lock | None = None

    def call(self, function: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """Run ``function(self, *args)`` on the loop and wait for its result."""
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(
            function(self, *args), self._started()
        )
        return future.result()

    def _started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = _new_loop()
                # A daemon thread: the process may exit whatever the loop is doing.
                threading.Thread(target=loop.run_forever, name="sms-async-shards", daemon=True).start()
                self._loop = loop
            return self._loop

    def close(self) -> None:
        """Close the open stores and stop the loop (a later task starts them again)."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is None:
            return
        stores, self._stores = list(self._stores.values()), {}

        async def close_stores() -> None:
            for store in stores:
                await store.__aexit__(None, None, None)

        asyncio.run_coroutine_threadsafe(close_stores(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        self._opening = None

    async def store(self, settings: ClusterSettings) -> CampaignStore:
        """The open store of ``settings``, opened on first use."""
        key = (settings.database_url, settings.schema, settings.patience)
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            found = self._stores.get(key)
            if found is None:
                # The schema in the name tells one deployment's workers from another's.
                name = f"sms-async-worker {settings.schema}"[:63]
                found = CampaignStore.from_settings(
                    settings, application_name=name, max_connections=6, claim_connections=4, warm=True
                )
                await found.__aenter__()
                self._stores[key] = found
        return found


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # noqa: PLC0415 - optional ("fast" extra)
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


_RUNTIME = _Runtime()


def prepare(settings: ClusterSettings) -> None:
    """Open this process's store before the first task comes (``sms-async worker`` does).

    Only for worker processes that run tasks themselves (solo or thread
    pools): a forking pool's children open their own.

    Raises:
        StoreUnavailableError: the store cannot be reached.
    """

    async def open_store(runtime: _Runtime) -> None:
        await runtime.store(settings)

    _RUNTIME.call(open_store)


def shutdown() -> None:
    """Close this process's stores and stop its shard loop (for tests, and embedders that stop the app)."""
    _RUNTIME.close()


async def _run_from_environment(
    runtime: _Runtime,
    settings: ClusterSettings,
    campaign: int,
    shard: int,
    give_back: list[tuple[int, str]],
) -> ShardReport:
    store = await runtime.store(settings)
    # Before anything else, whatever the campaign's state: nothing left sending is ever sent
    # by its runner, and the reaper would report it unknown.
    await give_back_unwritten(store, campaign, give_back)
    found = await store.campaign(campaign)
    if found.state != "running":
        return ShardReport(campaign, shard, found.queue, stopped=found.state)
    try:
        driver = driver_from_environment(found.gateway)
    except ConfigurationError as error:
        reason = f"a worker ({socket.gethostname()}) cannot send: {error.reason}"
        await store.stop(campaign, "aborted", reason)
        logger.error("campaign %d aborted: %s", campaign, reason)  # noqa: TRY400 - the reason is the message
        return ShardReport(campaign, shard, found.queue, stopped="aborted")
    options = settings.shard_options()
    return await run_shard(
        store,
        campaign,
        shard,
        driver=driver,
        clock=_clock_from_environment(),
        **options,
    )


def register(target: Celery) -> Task:
    """Register the shard task (``sms_async.run_shard``) on a Celery app of your own; returns it.

    Your workers must consume the campaigns' queue (``sms_async`` unless a
    campaign names another) with ``worker_prefetch_multiplier = 1``, and have
    ``SMS_ASYNC_DATABASE_URL`` and the gateway credentials in their environment.
    """
    task: Task = target.task(**TASK_OPTIONS)(_run_shard_task)
    target.task(**{**TASK_OPTIONS, "name": POLL_TASK_NAME})(_poll_reports_task)
    return task


def enqueue(
    campaign: StoredCampaign,
    shards: list[int],
    target: Celery | None = None,
    *,
    reports: bool = True,
    generation: int | None = None,
) -> None:
    """Queue a task for each of ``shards`` of ``campaign`` on its queue, through ``target`` (default: app).

    With ``reports``, a delivery polling task too (``sms_async.poll_reports``), which queues
    the next one itself while numbers are pending or the campaign sends. Give it the
    ``generation`` of :meth:`CampaignStore.new_poll_chain`, taken just before (as
    :func:`~sms_async.cluster.start_campaign` takes it): the chain it starts then replaces
    the campaign's earlier ones (``campaign start`` does so).
    """
    sender = target or app
    # One connection made now from the app's settings: a producer pool made before
    # the broker was configured (or reconfigured) would send to the old broker.
    with sender.connection_for_write() as connection:
        for shard in shards:
            sender.send_task(
                TASK_NAME, args=(campaign.id, shard), queue=campaign.queue, connection=connection
            )
        if reports:
            sender.send_task(
                POLL_TASK_NAME,
                args=_poll_args(campaign.id, generation),
                queue=campaign.queue,
                countdown=_delay(_clock_from_environment(), _POLL_IDLE),
                connection=connection,
            )


#: The Celery app of ``sms-async worker``, configured from the environment.
app: Celery = configure(Celery("sms_async"))
#: The shard task, registered on :data:`app`.
run_shard_task: Task = register(app)
