"""``BulkSender``: the sender's lifecycle, ``send``/``stream``, and the look-ups.

::

    recipients -> Batcher (normalise, de-duplicate, cut)           _batching
      -> bounded channel -> workers (one anyio task group per run)
           each: Run.dispatch(batch)                                 _dispatch
                 gates -> journal claim -> transport -> driver -> retries
      -> each BatchResult: stream() yields it through a bounded channel;
         send() keeps it in one BulkResult

Memory on the streaming path is O(concurrency) plus the compact
de-duplication keys.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Iterable,
    Mapping,
    Sequence,
)
from decimal import Decimal
from types import TracebackType
from typing import TypeVar

import anyio
import anyio.abc
import attrs
import httpx
from anyio.streams.memory import MemoryObjectSendStream

from sms_async import _exceptions as exc
from sms_async import _lookups as lookups
from sms_async._batching import Batcher, Recipients
from sms_async._dispatch import Dispatcher, Run
from sms_async._fanout import execute, run_in_background, take
from sms_async._journal import Journal
from sms_async._limits import Limits, Meter, Pause, SharedPause
from sms_async._lookups import Estimate
from sms_async._message import Message, Template
from sms_async._models import BatchResult, BulkResult, DeliveryReport, SenderStats
from sms_async._phone import PhoneNormaliser
from sms_async._redact import install_log_filter
from sms_async._retry import RetryPolicy
from sms_async.instrumentation import Instruments, default_hooks
from sms_async.providers._base import Driver
from sms_async.transports import HttpBackend, Timeouts, TransportOptions

__all__ = ["BulkSender"]

logger = logging.getLogger("sms_async")

T = TypeVar("T")

# How long leaving ``async with`` lets requests in flight finish (``aclose`` takes its own).
_CLOSE_TIMEOUT = 10.0


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
        raise exc.ConfigurationError(f"timeout must be a number of seconds > 0, or None; got {timeout!r}")


@attrs.frozen
class _SendOptions:
    """One ``send``/``stream`` call's options (the text is a string, a Template, or None for pairs)."""

    text: str | Template | None
    sender_id: str
    skip_dnd: bool = False
    max_segments: int | None = None
    check_balance: bool = False
    journal: Journal | None = None
    gateway_params: Mapping[str, str] | None = None


class BulkSender:
    """Sends texts to many recipients through one gateway driver.

    Use it as an async context manager; one instance may serve many
    concurrent ``send``/``stream`` calls, which share its connection pool, its
    concurrency limit, its rate limits and its 429 back-off.

    Args:
        driver: ``Iton(...)``, ``ItecPay(...)`` or any registered driver.
        concurrency: requests in flight at most, across every call.
        default_region: ISO region for national spellings (``"IN"`` reads
            ``098123 45678`` as ``+919812345678``).
        messages_per_second: a cap on recipients sent per second, or a meter
            (a rate shared by several processes, for one).
        requests_per_second: a cap on requests per second, or a meter.
        retry: the :class:`RetryPolicy`.
        timeouts: network timeouts (:class:`Timeouts`).
        client: an ``httpx.AsyncClient`` of your own (its pool, proxies and
            TLS settings are used; it is not closed for you).
        transport: an httpx transport (for example ``httpx.MockTransport``),
            wrapped in a client this sender owns.
        http: ``"auto"`` (the fast asyncio transport where it can be used,
            httpx otherwise), ``"fast"`` or ``"httpx"``.
        verify: TLS verification as httpx means it: ``True`` (certifi's CA
            bundle, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``), ``False``, or an
            ``ssl.SSLContext``; used by either transport.
        trust_env: read proxies (``HTTP_PROXY``, ``HTTPS_PROXY``,
            ``ALL_PROXY``, ``NO_PROXY``) and CA locations from the environment.
        hooks: an object, or a list of them, that hears what the sender does
            (:mod:`sms_async.instrumentation`), besides the logging every sender does.
        pause: the pause a 429 imposes, shared by every worker (one shared
            by several processes, for one); default: this sender's own.
    """

    def __init__(
        self,
        driver: Driver,
        *,
        concurrency: int = 32,
        default_region: str | None = None,
        messages_per_second: float | Meter | None = None,
        requests_per_second: float | Meter | None = None,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        http: HttpBackend = "auto",
        verify: ssl.SSLContext | bool = True,
        trust_env: bool = True,
        hooks: object | Sequence[object] | None = None,
        pause: Pause | None = None,
    ) -> None:
        self._dispatcher: Dispatcher | None = None
        self.limits = Limits(
            concurrency,
            messages_per_second=messages_per_second,
            requests_per_second=requests_per_second,
            pause=pause,
        )
        self._connection = TransportOptions(
            timeouts or Timeouts(), http, client, transport, verify, trust_env
        )
        self.driver = driver
        self.concurrency = concurrency
        self.normaliser = PhoneNormaliser(default_region)
        self.retry = retry or RetryPolicy()
        self.timeouts = self._connection.timeouts
        given = () if hooks is None else tuple(hooks) if isinstance(hooks, list | tuple) else (hooks,)
        self._hooks = (*default_hooks(), *given)
        self._task_group: anyio.abc.TaskGroup | None = None
        self._exit_stack: contextlib.AsyncExitStack | None = None
        # The send and stream calls running now, and what closing waits on.
        self._runs: set[Run] = set()
        self._runs_done: anyio.Event | None = None
        self._closing = False

    def __repr__(self) -> str:
        return f"BulkSender({self.driver!r}, concurrency={self.concurrency}, http={self.http_backend!r})"

    @property
    def http_backend(self) -> str:
        """The transport in use: ``"fast"`` or ``"httpx"`` (once open)."""
        return self._dispatcher.transport.name if self._dispatcher is not None else "not started"

    def stats(self) -> SenderStats:
        """What the sender is doing now: slots, calls, connections, the pause (a :class:`SenderStats`)."""
        dispatcher = self._dispatcher
        slots = self.limits.slots
        pause = self.limits.pause
        pool = dispatcher.transport.connections() if dispatcher is not None else (0, 0)
        return SenderStats(
            open=dispatcher is not None and not self._closing,
            closing=self._closing,
            concurrency=self.concurrency,
            slots_in_use=self.concurrency - slots.value
            if slots is not None and dispatcher is not None
            else 0,
            calls_running=len(self._runs),
            requests_in_flight=sum(run.in_flight for run in self._runs),
            connections_open=pool[0] if pool is not None else None,
            connections_idle=pool[1] if pool is not None else None,
            pause_remaining=pause.remaining if isinstance(pause, SharedPause) else None,
        )

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> BulkSender:
        if self._exit_stack is not None:
            raise exc.ConfigurationError("this BulkSender is already open")
        install_log_filter()
        async with contextlib.AsyncExitStack() as stack:
            transport = self._connection.open(self.driver.origin, self.concurrency)
            stack.push_async_callback(transport.aclose)
            instruments = Instruments(self.driver.name, self._hooks)
            slots = self.limits.open()
            self._dispatcher = Dispatcher(self.driver, transport, self.limits, slots, self.retry, instruments)
            self._task_group = await stack.enter_async_context(anyio.create_task_group())
            self._exit_stack = stack.pop_all()
        return self

    async def aclose(self, timeout: float = 10.0) -> None:
        """Close the sender: stop its calls, let requests in flight finish for up to ``timeout`` s, close.

        No batch or retry starts once closing begins; running ``send`` calls
        return with the batches not yet written ``unsent`` and ``aborted`` set
        to :class:`~sms_async.SenderClosed`; requests still unanswered after
        ``timeout`` seconds are ``unknown``. Then its connections are closed,
        and new calls are refused. It may be awaited from any task; leaving
        ``async with`` does the same (with a ``timeout`` of 10 s), and
        finishes what ``aclose`` leaves to it.
        """
        if self._dispatcher is None:
            return
        _check_timeout(timeout)
        await self._stop_calls(timeout)
        await self._dispatcher.transport.aclose()

    async def _stop_calls(self, timeout: float) -> None:
        if self._exit_stack is None or self._closing:
            return
        self._closing = True
        closed = exc.SenderClosed("the sender was closed while this call ran")
        for run in tuple(self._runs):
            run.stop(closed)
        if not self._runs:
            return
        # Shielded: a shutdown that is itself being cancelled still settles every call it stopped.
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(timeout):
                await self._all_runs_done()
            for run in tuple(self._runs):
                run.cut()
            await self._all_runs_done()

    async def _all_runs_done(self) -> None:
        while self._runs:
            done = self._runs_done = anyio.Event()
            await done.wait()

    def _run_started(self, run: Run) -> None:
        self._runs.add(run)

    def _run_ended(self, run: Run) -> None:
        self._runs.discard(run)
        if not self._runs and self._runs_done is not None:
            self._runs_done.set()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stop_calls(_CLOSE_TIMEOUT)
        self._closing = False
        stack, self._exit_stack = self._exit_stack, None
        self._task_group = None
        self._dispatcher = None
        if stack is None:
            return
        try:
            await stack.__aexit__(exc_type, error, tb)
        except BaseExceptionGroup as group:
            # The task group wraps whatever the body raised; the caller gets it back as it was.
            if error is not None and len(group.exceptions) == 1 and group.exceptions[0] is error:
                return
            raise

    def _open(self) -> tuple[Dispatcher, anyio.abc.TaskGroup]:
        if self._closing:
            raise exc.ConfigurationError("this BulkSender is closing: it takes no new calls")
        if self._dispatcher is None or self._task_group is None:
            raise exc.ConfigurationError(
                "use the sender as 'async with BulkSender(...) as bulk:' before sending or looking up"
            )
        return self._dispatcher, self._task_group

    # -- sending -------------------------------------------------------------------------------

    async def send(
        self,
        recipients: Recipients,
        text: str | Template | None = None,
        *,
        sender_id: str,
        skip_dnd: bool = False,
        max_segments: int | None = None,
        check_balance: bool = False,
        journal: Journal | None = None,
        gateway_params: Mapping[str, str] | None = None,
        timeout: float | None = None,
        into: BulkResult | None = None,
    ) -> BulkResult:
        """Send ``text`` to every recipient and return what became of each.

        ``text`` is one text for everyone; a :class:`Template` whose fields
        each recipient (a mapping, such as a CSV row) fills; or ``None``, when
        ``recipients`` are ``(number, text)`` pairs. ``gateway_params`` are
        extra request parameters (India's DLT ids, for one). Raises only for
        misuse found before any request (a bad sender id, an empty text, an
        unopened sender, an unaffordable campaign with ``check_balance=True``);
        bad credentials or no credit mid-run stop the run and show in
        ``result.aborted``.

        ``timeout`` (seconds) bounds the call: once it passes, no batch or
        retry starts, batches not yet written are ``unsent``, and requests on
        the wire get one more second to answer (then they are ``unknown``);
        the result comes back with ``aborted`` set to
        :class:`~sms_async.SendTimeout`. ``into`` is a :class:`BulkResult`
        to fill and return instead of a new one: if the call is cancelled,
        ``send`` raises the cancellation on, and ``into`` holds every batch
        settled so far (the cancelled ones included) with ``aborted`` set to
        :class:`~sms_async.SendCancelled`; a WARNING on the "sms_async"
        logger gives the counts either way.
        """
        options = _SendOptions(
            text, sender_id, skip_dnd, max_segments, check_balance, journal, gateway_params
        )
        _check_timeout(timeout)
        result = into if into is not None else BulkResult()
        started = time.perf_counter()
        run, batcher, recipients = await self._prepare(recipients, options)
        self._run_started(run)
        try:
            await execute(run, batcher, recipients, self.concurrency, result.add, timeout)
        except anyio.get_cancelled_exc_class():
            result.aborted = result.aborted or run.aborted or exc.SendCancelled("the call was cancelled")
            result.elapsed = time.perf_counter() - started
            logger.warning(
                "send cancelled after %.1f s: %s",
                result.elapsed,
                ", ".join(f"{o.value}={n}" for o, n in result.counts().items() if n) or "nothing settled",
            )
            raise
        finally:
            self._run_ended(run)
        result.aborted = run.aborted
        result.elapsed = time.perf_counter() - started
        return result

    def stream(
        self,
        recipients: Recipients,
        text: str | Template | None = None,
        *,
        sender_id: str,
        skip_dnd: bool = False,
        max_segments: int | None = None,
        check_balance: bool = False,
        journal: Journal | None = None,
        gateway_params: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[BatchResult]:
        """Yield a :class:`BatchResult` as each batch is settled (options as for :meth:`send`).

        Memory stays O(concurrency): recipients are read as workers free up.
        Adding up every batch's ``total`` gives the number of inputs read.
        Breaking out of the loop stops the run; batches still in flight are
        reported to the hooks (and the journal) as ``unknown`` before the
        generator's ``aclose()`` returns. With ``timeout``, the batches left
        when it passes come as :meth:`send` says, with ``aborted`` set to
        :class:`~sms_async.SendTimeout`.
        """
        options = _SendOptions(
            text, sender_id, skip_dnd, max_segments, check_balance, journal, gateway_params
        )
        _check_timeout(timeout)
        return self._stream(recipients, options, timeout)

    def _stream_held(
        self,
        recipients: Recipients,
        text: str | None,
        *,
        sender_id: str,
        skip_dnd: bool = False,
        max_segments: int | None = None,
        journal: Journal | None = None,
        gateway_params: Mapping[str, str] | None = None,
    ) -> AsyncIterator[BatchResult]:
        """:meth:`stream` of numbers whose strings the caller holds, de-duplicated in a set of them.

        For the cluster's runner, which streams a group of stored batches at
        a time: their numbers are in memory anyway (so a set costs no memory
        they do not), and the compact table's set-up (about 120 µs a stream,
        and 16 µs more than the set per 100 numbers) would be paid again by
        every short stream. The numbers are still de-duplicated.
        """
        options = _SendOptions(text, sender_id, skip_dnd, max_segments, False, journal, gateway_params)
        return self._stream(recipients, options, None, compact_keys=False)

    async def _stream(
        self,
        recipients: Recipients,
        options: _SendOptions,
        timeout: float | None,
        *,
        compact_keys: bool = True,
    ) -> AsyncGenerator[BatchResult, None]:
        # A stream holds no results, so nothing else keeps the numbers' strings:
        # the compact key table from the first number (7 to 11 B a number, not 96),
        # unless its caller holds them (``_stream_held``).
        run, batcher, recipients = await self._prepare(recipients, options, compact_keys=compact_keys)
        _, task_group = self._open()
        self._run_started(run)
        results_send, results_recv = anyio.create_memory_object_stream[BatchResult](self.concurrency)
        cancel_scope = anyio.CancelScope()
        # The run lives in the sender's task group, not in this generator:
        # a generator must not yield from inside a task group.
        finished = anyio.Event()
        task_group.start_soon(
            self._in_background,
            run,
            batcher,
            recipients,
            results_send,
            cancel_scope,
            finished,
            timeout,
        )
        try:
            async with results_recv:
                while (batch := await take(results_recv)) is not None:
                    yield batch
        finally:
            cancel_scope.cancel()
            # The batches the cancellation caught are settled (journal, hooks)
            # before the caller goes on: it may close the journal next.
            with anyio.CancelScope(shield=True):
                await finished.wait()

    async def _in_background(
        self,
        run: Run,
        batcher: Batcher,
        recipients: Recipients,
        results: MemoryObjectSendStream[BatchResult],
        cancel_scope: anyio.CancelScope,
        finished: anyio.Event,
        timeout: float | None,
    ) -> None:
        try:
            await run_in_background(
                run, batcher, recipients, self.concurrency, results, cancel_scope, finished, timeout
            )
        finally:
            self._run_ended(run)

    async def _prepare(
        self, recipients: Recipients, options: _SendOptions, *, compact_keys: bool = False
    ) -> tuple[Run, Batcher, Recipients]:
        """Everything checked before any request; raises for misuse."""
        batcher = Batcher.for_text(
            self.normaliser,
            self.driver.max_batch,
            options.text,
            sender_id=options.sender_id,
            max_segments=options.max_segments,
            compact_keys=compact_keys,
        )
        if isinstance(recipients, str | bytes):
            raise exc.ConfigurationError(
                "recipients must be an iterable of numbers, not a single string: pass [number]"
            )
        dispatcher, _ = self._open()
        if options.skip_dnd and not self.driver.capabilities.dnd:
            raise exc.UnsupportedOperationError(
                f"{self.driver.name} has no do-not-disturb look-up: send without skip_dnd"
            )
        message = batcher.message
        if message is None and options.gateway_params:
            # Checked now, not when the first personalised batch is prepared.
            self.driver.prepare_send(Message.create("-", options.sender_id), options.gateway_params)
        if options.check_balance:
            # The input is read twice (to count, then to send): held in a list.
            recipients = await lookups.check_balance(
                dispatcher,
                Batcher.for_text(
                    self.normaliser,
                    self.driver.max_batch,
                    options.text,
                    sender_id=options.sender_id,
                    max_segments=options.max_segments,
                ),
                recipients,
            )
        run = dispatcher.run(
            message, skip_dnd=options.skip_dnd, journal=options.journal, params=options.gateway_params
        )
        return run, batcher, recipients

    # -- look-ups ---------------------------------------------------------------------------------

    async def delivery_reports(self, message_ids: Iterable[str]) -> list[DeliveryReport]:
        """One :class:`DeliveryReport` per (message id, number).

        Ids are de-duplicated, chunked to the gateway's limit and looked up
        concurrently; a look-up that fails after retries gives ``UNKNOWN``
        reports whose ``error`` says why.
        """
        return await lookups.delivery_reports(self._open()[0], message_ids)

    def poll_delivery_reports(
        self, message_ids: Iterable[str], *, interval: float = 30.0, timeout: float = 3600.0
    ) -> AsyncIterator[DeliveryReport]:
        """Yield reports as they change, re-asking only for ids not yet final.

        Stops when every report is final or ``timeout`` seconds have passed.
        """
        return lookups.poll_delivery_reports(self._open()[0], message_ids, interval=interval, timeout=timeout)

    async def balance(self) -> Decimal:
        """The account's remaining credits (raises UnsupportedOperationError where the gateway has none)."""
        request = self.driver.build_balance()
        return await self._open()[0].lookup(request, self.driver.parse_balance, size=0)

    async def check_dnd(self, numbers: Iterable[str]) -> dict[str, bool]:
        """``{E.164: listed}`` for each number (raises InvalidNumberError for a bad one)."""
        normalised = list(dict.fromkeys(self.normaliser.normalise(n) for n in numbers))
        return await lookups.check_dnd(self._open()[0], normalised)

    async def estimate(
        self,
        recipients: Recipients,
        text: str | Template | None = None,
        *,
        sender_id: str,
        max_segments: int | None = None,
    ) -> Estimate:
        """Count distinct valid recipients and parts, and fetch the balance where the gateway has one."""
        batcher = Batcher.for_text(
            self.normaliser, self.driver.max_batch, text, sender_id=sender_id, max_segments=max_segments
        )
        return await lookups.estimate(self._open()[0], batcher, recipients)
