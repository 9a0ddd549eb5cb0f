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
    AsyncIterable,
    AsyncIterator,
    Callable,
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
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from sms_async import _exceptions as exc
from sms_async._batching import Batch, Batcher, Recipients, read_chunks
from sms_async._dispatch import Dispatcher, Run
from sms_async._journal import Journal
from sms_async._limits import Limits, Meter, Pause
from sms_async._message import Message, Template, check_sender_id
from sms_async._models import BatchResult, BulkResult, DeliveryReport, Failure, Outcome
from sms_async._phone import PhoneNormaliser
from sms_async._redact import install_log_filter, redact
from sms_async._retry import RetryPolicy
from sms_async._wire import WireRequest, WireResponse
from sms_async.instrumentation import Instruments, default_hooks
from sms_async.providers._base import Driver
from sms_async.transports import HttpBackend, Timeouts, Transport, check_backend_options, open_transport

__all__ = ["BulkSender", "Estimate"]

logger = logging.getLogger("sms_async")

T = TypeVar("T")


@attrs.frozen
class Estimate:
    """What a campaign will cost before it is sent."""

    #: Distinct valid recipients.
    recipients: int
    #: Parts per recipient (with a text per recipient: the most any one needs).
    segments: int
    #: Credits: parts summed over every recipient.
    cost: int
    balance: Decimal | None

    @property
    def affordable(self) -> bool | None:
        """Whether the balance covers the cost (``None`` when the balance is unknown)."""
        return None if self.balance is None else self.balance >= self.cost


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
        check_backend_options(http, client=client, transport=transport, verify=verify, trust_env=trust_env)
        self.driver = driver
        self.concurrency = concurrency
        self.normaliser = PhoneNormaliser(default_region)
        self.retry = retry or RetryPolicy()
        self.timeouts = timeouts or Timeouts()
        self._client = client
        self._httpx_transport = transport
        self._http: HttpBackend = http
        self._verify = verify
        self._trust_env = trust_env
        given = () if hooks is None else tuple(hooks) if isinstance(hooks, list | tuple) else (hooks,)
        self._hooks = (*default_hooks(), *given)
        self._task_group: anyio.abc.TaskGroup | None = None
        self._exit_stack: contextlib.AsyncExitStack | None = None

    def __repr__(self) -> str:
        return f"BulkSender({self.driver!r}, concurrency={self.concurrency}, http={self.http_backend!r})"

    @property
    def http_backend(self) -> str:
        """The transport in use: ``"fast"`` or ``"httpx"`` (once open)."""
        return self._dispatcher.transport.name if self._dispatcher is not None else "not started"

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> BulkSender:
        if self._exit_stack is not None:
            raise exc.ConfigurationError("this BulkSender is already open")
        install_log_filter()
        async with contextlib.AsyncExitStack() as stack:
            transport: Transport = open_transport(
                self.driver.origin,
                concurrency=self.concurrency,
                timeouts=self.timeouts,
                http=self._http,
                client=self._client,
                transport=self._httpx_transport,
                verify=self._verify,
                trust_env=self._trust_env,
            )
            stack.push_async_callback(transport.aclose)
            instruments = Instruments(self.driver.name, self._hooks)
            slots = self.limits.open()
            self._dispatcher = Dispatcher(self.driver, transport, self.limits, slots, self.retry, instruments)
            self._task_group = await stack.enter_async_context(anyio.create_task_group())
            self._exit_stack = stack.pop_all()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
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
        """
        options = _SendOptions(
            text, sender_id, skip_dnd, max_segments, check_balance, journal, gateway_params
        )
        result = BulkResult()
        started = time.perf_counter()
        run, batcher, recipients = await self._prepare(recipients, options)
        await _execute(run, batcher, recipients, self.concurrency, result.add)
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
    ) -> AsyncIterator[BatchResult]:
        """Yield a :class:`BatchResult` as each batch is settled (options as for :meth:`send`).

        Memory stays O(concurrency): recipients are read as workers free up.
        Adding up every batch's ``total`` gives the number of inputs read.
        Breaking out of the loop stops the run; batches still in flight are
        reported to the hooks as ``unknown``.
        """
        options = _SendOptions(
            text, sender_id, skip_dnd, max_segments, check_balance, journal, gateway_params
        )
        return self._stream(recipients, options)

    async def _stream(
        self, recipients: Recipients, options: _SendOptions
    ) -> AsyncGenerator[BatchResult, None]:
        run, batcher, recipients = await self._prepare(recipients, options)
        _, task_group = self._open()
        results_send, results_recv = anyio.create_memory_object_stream[BatchResult](self.concurrency)
        cancel_scope = anyio.CancelScope()
        # The run lives in the sender's task group, not in this generator:
        # a generator must not yield from inside a task group.
        task_group.start_soon(
            _run_in_background, run, batcher, recipients, self.concurrency, results_send, cancel_scope
        )
        try:
            async with results_recv:
                while (batch := await _take(results_recv)) is not None:
                    yield batch
        finally:
            cancel_scope.cancel()

    async def _prepare(
        self, recipients: Recipients, options: _SendOptions
    ) -> tuple[Run, Batcher, Recipients]:
        """Everything checked before any request; raises for misuse."""
        text = options.text
        message = (
            Message.create(text, options.sender_id, max_segments=options.max_segments)
            if isinstance(text, str)
            else None
        )
        if message is None:
            check_sender_id(options.sender_id)
        if isinstance(recipients, str | bytes):
            raise exc.ConfigurationError(
                "recipients must be an iterable of numbers, not a single string: pass [number]"
            )
        dispatcher, _ = self._open()
        if options.skip_dnd and not self.driver.capabilities.dnd:
            raise exc.UnsupportedOperationError(
                f"{self.driver.name} has no do-not-disturb look-up: send without skip_dnd"
            )
        if message is None and options.gateway_params:
            # Checked now, not when the first personalised batch is prepared.
            self.driver.prepare_send(Message.create("-", options.sender_id), options.gateway_params)
        if options.check_balance:
            recipients = await self._preflight(recipients, options)
        run = dispatcher.run(
            message, skip_dnd=options.skip_dnd, journal=options.journal, params=options.gateway_params
        )
        batcher = Batcher(
            self.normaliser,
            self.driver.max_batch,
            message=message,
            sender_id=options.sender_id,
            max_segments=options.max_segments,
            template=text if isinstance(text, Template) else None,
        )
        return run, batcher, recipients

    async def _preflight(self, recipients: Recipients, options: _SendOptions) -> Recipients:
        if isinstance(recipients, AsyncIterable):
            recipients = [r async for r in recipients]
        elif not isinstance(recipients, Sequence | set | frozenset):
            recipients = list(recipients)
        estimate = await self.estimate(
            recipients, options.text, sender_id=options.sender_id, max_segments=options.max_segments
        )
        if estimate.balance is not None and estimate.balance < estimate.cost:
            raise exc.InsufficientCreditError(
                f"the campaign needs {estimate.cost} credits ({estimate.recipients} recipients) "
                f"but the balance is {estimate.balance}: top up or send to fewer",
                needed=estimate.cost,
                available=estimate.balance,
            )
        return recipients

    # -- look-ups ---------------------------------------------------------------------------------

    async def _lookup(
        self,
        build: Callable[[Sequence[str]], WireRequest],
        parse: Callable[[Sequence[str], WireResponse], T],
        items: Sequence[str],
        chunk: int,
        on_failure: Callable[[Sequence[str], exc.SmsError], T],
    ) -> list[T]:
        """Chunk, fan out under the shared limit, retry on any transient error."""
        dispatcher, _ = self._open()
        chunks = [list(items[i : i + chunk]) for i in range(0, len(items), chunk)]
        results: list[T | None] = [None] * len(chunks)
        fatal: list[exc.SmsError] = []

        async def one(position: int, part: list[str]) -> None:
            if fatal:
                return
            try:
                value = await dispatcher.lookup(build(part), lambda r: parse(part, r), size=len(part))
            except exc.SmsError as error:
                if isinstance(error, exc.GatewayError) and error.aborts_run:
                    fatal.append(error)
                    return
                value = on_failure(part, error)
            results[position] = value

        async with anyio.create_task_group() as tg:
            for position, part in enumerate(chunks):
                tg.start_soon(one, position, part)
        if fatal:
            raise fatal[0]
        return [r for r in results if r is not None]

    async def delivery_reports(self, message_ids: Iterable[str]) -> list[DeliveryReport]:
        """One :class:`DeliveryReport` per (message id, number).

        Ids are de-duplicated, chunked to the gateway's limit and looked up
        concurrently; a look-up that fails after retries gives ``UNKNOWN``
        reports whose ``error`` says why.
        """
        ids = list(dict.fromkeys(message_ids))
        driver = self.driver

        def failed(part: Sequence[str], error: exc.SmsError) -> list[DeliveryReport]:
            return [DeliveryReport.lookup_failed(i, error.reason) for i in part]

        chunks = await self._lookup(
            driver.build_status, driver.parse_status, ids, driver.max_status_batch, failed
        )
        return [report for part in chunks for report in part]

    async def poll_delivery_reports(
        self, message_ids: Iterable[str], *, interval: float = 30.0, timeout: float = 3600.0
    ) -> AsyncIterator[DeliveryReport]:
        """Yield reports as they change, re-asking only for ids not yet final.

        Stops when every report is final or ``timeout`` seconds have passed.
        """
        if interval <= 0 or timeout <= 0:
            raise exc.ConfigurationError("interval and timeout must be > 0")
        pending = list(dict.fromkeys(message_ids))
        seen: dict[tuple[str, str | None], DeliveryReport] = {}
        give_up = time.monotonic() + timeout
        while pending:
            still: dict[str, None] = {}
            for report in await self.delivery_reports(pending):
                key = (report.message_id, report.number)
                previous = seen.get(key)
                if previous is None or previous.status != report.status or previous.raw != report.raw:
                    seen[key] = report
                    yield report
                if not report.is_final:
                    still[report.message_id] = None
            pending = list(still)
            remaining = give_up - time.monotonic()
            if not pending or remaining <= 0:
                return
            await anyio.sleep(min(interval, remaining))

    async def balance(self) -> Decimal:
        """The account's remaining credits (raises UnsupportedOperationError where the gateway has none)."""
        request = self.driver.build_balance()
        dispatcher, _ = self._open()
        return await dispatcher.lookup(request, self.driver.parse_balance, size=0)

    async def check_dnd(self, numbers: Iterable[str]) -> dict[str, bool]:
        """``{E.164: listed}`` for each number (raises InvalidNumberError for a bad one)."""
        normalised = list(dict.fromkeys(self.normaliser.normalise(n) for n in numbers))
        driver = self.driver
        if not driver.capabilities.dnd:
            driver.build_dnd(normalised[:1])  # the driver's own words for what it lacks

        def failed(_part: Sequence[str], error: exc.SmsError) -> dict[str, bool]:
            raise error

        parts = await self._lookup(
            driver.build_dnd, driver.parse_dnd, normalised, driver.max_dnd_batch, failed
        )
        merged: dict[str, bool] = {}
        for part in parts:
            merged.update(part)
        return merged

    async def estimate(
        self,
        recipients: Recipients,
        text: str | Template | None = None,
        *,
        sender_id: str,
        max_segments: int | None = None,
    ) -> Estimate:
        """Count distinct valid recipients and parts, and fetch the balance where the gateway has one."""
        message = (
            Message.create(text, sender_id, max_segments=max_segments) if isinstance(text, str) else None
        )
        batcher = Batcher(
            self.normaliser,
            self.driver.max_batch,
            message=message,
            sender_id=sender_id,
            max_segments=max_segments,
            template=text if isinstance(text, Template) else None,
        )
        cost = most = 0
        async with contextlib.aclosing(read_chunks(recipients)) as chunks:
            async for chunk in chunks:
                for batch in batcher.feed(chunk):
                    cost, most = _tally_cost(batch, cost, most)
        for batch in batcher.finish():
            cost, most = _tally_cost(batch, cost, most)
        balance: Decimal | None = None
        if self.driver.capabilities.balance:
            balance = await self.balance()
        return Estimate(batcher.distinct, most or (message.segments if message else 0), cost, balance)


def _tally_cost(batch: Batch, cost: int, most: int) -> tuple[int, int]:
    if batch.message is None or not batch.numbers:
        return cost, most
    parts = batch.message.segments
    return cost + parts * len(batch.numbers), max(most, parts)


# -- running a call: a reader and the workers --------------------------------------------------------


async def _execute(
    run: Run,
    batcher: Batcher,
    recipients: Recipients,
    workers: int,
    deliver: Callable[[BatchResult], None] | MemoryObjectSendStream[BatchResult],
) -> None:
    """Read, dispatch and deliver every batch, to the end or to cancellation."""
    jobs_send, jobs_recv = anyio.create_memory_object_stream[Batch](workers)
    with jobs_recv:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_read, run, batcher, recipients, jobs_send)
                for _ in range(workers):
                    tg.start_soon(_work, run, jobs_recv.clone(), deliver)
        except anyio.get_cancelled_exc_class():
            # Batches read but never started: report them, never drop them silently.
            never = Failure(Outcome.UNSENT, "not sent: the run was cancelled before this batch went out")
            with anyio.CancelScope(shield=True):
                while True:
                    try:
                        batch = jobs_recv.receive_nowait()
                    except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                        break
                    result = batch.to_result()
                    result.failed.update(dict.fromkeys(batch.numbers, never))
                    await _deliver(run, result, 0.0, deliver)
            raise


async def _read(
    run: Run, batcher: Batcher, recipients: Recipients, jobs: MemoryObjectSendStream[Batch]
) -> None:
    async with jobs, contextlib.aclosing(read_chunks(recipients)) as chunks:
        while True:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            except Exception as error:  # noqa: BLE001 - the caller's iterable; whatever it raises stops the run
                run.abort(_recipients_error(error))
                break
            for batch in batcher.feed(chunk):
                await _put(jobs, batch)
        # Everything read is accounted for, even when reading failed.
        for batch in batcher.finish():
            await _put(jobs, batch)


async def _work(
    run: Run,
    jobs: MemoryObjectReceiveStream[Batch],
    deliver: Callable[[BatchResult], None] | MemoryObjectSendStream[BatchResult],
) -> None:
    async with jobs:
        while (batch := await _take(jobs)) is not None:
            settled = await run.dispatch(batch)
            if settled is None:
                continue
            result, started_at = settled
            if run.journal is None and not isinstance(deliver, MemoryObjectSendStream):
                run.report(result, started_at)  # nothing to await: no shield needed
                deliver(result)
                continue
            with anyio.CancelScope(shield=True):
                await _deliver(run, result, started_at, deliver)


async def _deliver(
    run: Run,
    result: BatchResult,
    started_at: float,
    deliver: Callable[[BatchResult], None] | MemoryObjectSendStream[BatchResult],
) -> None:
    if run.journal is not None:
        await run.journal.settle(result)
    run.report(result, started_at)
    if not isinstance(deliver, MemoryObjectSendStream):
        deliver(result)
        return
    try:
        await _put(deliver, result)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        # The consumer went away (stream closed early); the hooks still saw it.
        logger.debug("batch %d settled after its consumer left", result.index)


async def _run_in_background(
    run: Run,
    batcher: Batcher,
    recipients: Recipients,
    workers: int,
    results: MemoryObjectSendStream[BatchResult],
    cancel_scope: anyio.CancelScope,
) -> None:
    async with results:
        with cancel_scope:
            try:
                await _execute(run, batcher, recipients, workers, results)
            except Exception as error:  # pragma: no cover - a bug; never crash the host task group
                logger.exception("run failed")
                run.abort(exc.SmsError(f"internal error: {redact(str(error))}"))


async def _take(stream: MemoryObjectReceiveStream[T]) -> T | None:
    """The next item, or ``None`` at the end, without yielding to the event loop when one is ready."""
    try:
        return stream.receive_nowait()
    except anyio.WouldBlock:
        try:
            return await stream.receive()
        except anyio.EndOfStream:
            return None
    except anyio.EndOfStream:
        return None


async def _put(stream: MemoryObjectSendStream[T], item: T) -> None:
    """Send without yielding to the event loop when there is room (anyio's send always does)."""
    try:
        stream.send_nowait(item)
    except anyio.WouldBlock:
        await stream.send(item)


def _recipients_error(error: Exception) -> exc.RecipientsError:
    failure = exc.RecipientsError(
        f"reading the recipients failed ({type(error).__name__}: {redact(str(error))[:300]}); "
        "the run stopped: inputs read so far are accounted for, the rest were never read"
    )
    failure.__cause__ = error
    return failure
