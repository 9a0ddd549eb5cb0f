"""The engine: read recipients, batch them, fan out, retry, account for every one.

::

    recipients -> normalise / de-duplicate -> batches of driver.max_batch
      -> bounded channel -> workers (one anyio task group per run)
           each: shared pause (429) -> rate meters -> concurrency limiter
                 -> transport -> driver parses -> retry policy
      -> each BatchResult: stream() yields it through a bounded channel;
         send() folds it into one BulkResult where it settles

Memory on the streaming path is O(concurrency) plus one integer per distinct
number (the de-duplication key).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import itertools
import logging
import ssl
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Sequence,
)
from decimal import Decimal
from types import TracebackType
from typing import Literal, Protocol, TypeVar, cast

import anyio
import anyio.abc
import attrs
import httpx
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from sms_async import _exceptions as exc
from sms_async._message import Message
from sms_async._models import BatchResult, BulkResult, DeliveryReport, Failure, Outcome
from sms_async._phone import PhoneNormaliser, e164_key
from sms_async._redact import install_log_filter, redact
from sms_async._retry import RateMeter, RetryBudget, RetryPolicy, Throttle
from sms_async._wire import WireRequest, WireResponse
from sms_async.providers._base import Driver, PreparedSend
from sms_async.transports import HttpBackend, Timeouts, Transport, check_backend_options, open_transport

__all__ = ["BulkSender", "Estimate", "Hooks", "Journal"]

logger = logging.getLogger("sms_async")

T = TypeVar("T")
Recipients = Iterable[str] | AsyncIterable[str]

# Invalid and duplicate inputs ride with the next batch; past this many a
# local-only batch is emitted so that they never pile up in memory.
_LOCAL_FLUSH = 1000


class Hooks(Protocol):
    """Instrumentation: receives every batch result as it is settled.

    ``on_batch`` also sees batches settled while a run is being cancelled,
    which the cancelled caller can no longer receive.
    """

    def on_batch(self, result: BatchResult) -> None:
        """Called once per settled batch."""


@attrs.frozen
class Estimate:
    """What a campaign will cost before it is sent."""

    recipients: int
    segments: int
    cost: int
    balance: Decimal | None

    @property
    def affordable(self) -> bool | None:
        """Whether the balance covers the cost (``None`` when the balance is unknown)."""
        return None if self.balance is None else self.balance >= self.cost


class _Job:
    """Distinct valid numbers to send together, plus the inputs settled while reading them."""

    __slots__ = ("index", "inputs", "local_dups", "local_failed", "numbers")

    def __init__(self, index: int) -> None:
        self.index = index
        self.numbers: list[str] = []
        self.inputs: list[str] = []
        self.local_failed: dict[str, Failure] = {}
        self.local_dups: dict[str, int] = {}

    def result(self) -> BatchResult:
        batch = BatchResult(numbers=self.numbers, inputs=self.inputs, index=self.index)
        batch.failed.update(self.local_failed)
        batch.duplicates.update(self.local_dups)
        return batch


class Journal(Protocol):
    """Durable bookkeeping of batches, for runs that must survive a crash.

    ``begin`` is awaited before a batch's first request leaves and must have
    recorded that the batch is being sent; it returns ``False`` to skip a
    batch settled by an earlier run (nothing is then sent or yielded for it).
    ``settle`` is awaited with every batch result before it is yielded.
    Batch composition is deterministic for the same input, so indexes match
    across runs.
    """

    async def begin(self, index: int, numbers: tuple[str, ...]) -> bool:
        """Record that batch ``index`` is about to be sent; ``False`` skips it."""

    async def settle(self, batch: BatchResult) -> None:
        """Record what became of a batch."""


class _Run:
    """State of one ``send``/``stream`` call."""

    def __init__(
        self,
        message: Message,
        prepared: PreparedSend,
        policy: RetryPolicy,
        *,
        skip_dnd: bool,
        journal: Journal | None,
        sink: Callable[[BatchResult], None] | None = None,
    ) -> None:
        self.sink = sink
        self.journal = journal
        self.message = message
        self.prepared = prepared
        self.policy = policy
        self.budget = RetryBudget(policy)
        self.skip_dnd = skip_dnd
        self.aborted: exc.SmsError | None = None
        self.abort_failure: Failure | None = None

    def abort(self, error: exc.SmsError) -> None:
        if self.aborted is None:
            self.aborted = error
            self.abort_failure = Failure(
                Outcome.UNSENT,
                f"not sent: the run stopped early ({type(error).__name__}: {error.reason})",
                error,
            )
            logger.warning("run aborted: %s: %s", type(error).__name__, error.reason)


class _Attempt:
    """Requests made for one batch, and whether one is on the wire right now."""

    __slots__ = ("in_flight", "maybe_sent", "requests", "retries")

    def __init__(self) -> None:
        self.in_flight = False
        #: An earlier try of this batch may have reached the gateway.
        self.maybe_sent = False
        self.requests = 0
        self.retries = 0


class _Slots:
    """Requests in flight across every call of one sender.

    A semaphore whose uncontended acquire does not yield to the event loop
    (anyio's checkpoints cost more than the rest of a request here); waiters
    are served first come, first served.
    """

    __slots__ = ("_free", "_waiters")

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: collections.deque[anyio.Event] = collections.deque()

    async def acquire(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        event = anyio.Event()
        self._waiters.append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():
                self.release()  # handed a slot while being cancelled: pass it on
            else:
                self._waiters.remove(event)
            raise

    def release(self) -> None:
        if self._waiters:
            self._waiters.popleft().set()  # hand the slot straight over
        else:
            self._free += 1


class _RunStopped(exc.SmsError):
    """The run was aborted before this attempt; nothing was sent."""


class BulkSender:
    """Sends one text to many recipients through one gateway driver.

    Use it as an async context manager; one instance may serve many
    concurrent ``send``/``stream`` calls, which share its connection pool, its
    concurrency limit, its rate limits and its 429 back-off.

    Args:
        driver: ``Iton(...)`` or ``ItecPay(...)``.
        concurrency: requests in flight at most, across every call.
        default_region: ISO region for national spellings (``"IN"`` reads
            ``098123 45678`` as ``+919812345678``).
        messages_per_second: optional cap on recipients sent per second.
        requests_per_second: optional cap on requests per second.
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
        hooks: an object with ``on_batch(result)``.
    """

    def __init__(
        self,
        driver: Driver,
        *,
        concurrency: int = 32,
        default_region: str | None = None,
        messages_per_second: float | None = None,
        requests_per_second: float | None = None,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        http: HttpBackend = "auto",
        hooks: Hooks | None = None,
        verify: ssl.SSLContext | bool = True,
        trust_env: bool = True,
    ) -> None:
        if not isinstance(concurrency, int) or concurrency < 1:
            raise exc.ConfigurationError(f"concurrency must be a whole number >= 1, got {concurrency!r}")
        check_backend_options(http, client=client, transport=transport, verify=verify, trust_env=trust_env)
        self.driver = driver
        self.concurrency = concurrency
        self.normaliser = PhoneNormaliser(default_region)
        self.retry = retry or RetryPolicy()
        self.timeouts = timeouts or Timeouts()
        self._message_meter = RateMeter(messages_per_second) if messages_per_second is not None else None
        self._request_meter = RateMeter(requests_per_second) if requests_per_second is not None else None
        self._client = client
        self._httpx_transport = transport
        self._http = http
        self._verify = verify
        self._trust_env = trust_env
        self._hooks = hooks
        self._slots: _Slots | None = None
        self._throttle = Throttle()
        self._transport: Transport | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._exit_stack: contextlib.AsyncExitStack | None = None
        install_log_filter()

    def __repr__(self) -> str:
        backend = self._transport.name if self._transport is not None else "not started"
        return f"BulkSender({self.driver!r}, concurrency={self.concurrency}, http={backend!r})"

    # -- lifecycle --------------------------------------------------------

    async def __aenter__(self) -> BulkSender:
        if self._exit_stack is not None:
            raise exc.ConfigurationError("this BulkSender is already open")
        stack = contextlib.AsyncExitStack()
        await stack.__aenter__()
        try:
            self._transport = self._make_transport()
            stack.push_async_callback(self._close_transport)
            self._slots = _Slots(self.concurrency)
            self._task_group = await stack.enter_async_context(anyio.create_task_group())
        except BaseException:
            await stack.aclose()
            raise
        self._exit_stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._exit_stack = self._exit_stack, None
        self._task_group = None
        if stack is None:
            return
        try:
            await stack.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # The task group wraps whatever the body raised; the caller raised
            # (or awaited) a plain error and gets it back as it was.
            if exc is not None and len(group.exceptions) == 1 and group.exceptions[0] is exc:
                return  # not suppressed: the body's own exception goes on as it was
            raise

    async def _close_transport(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.aclose()

    def _make_transport(self) -> Transport:
        return open_transport(
            self.driver.origin,
            concurrency=self.concurrency,
            timeouts=self.timeouts,
            http=self._http,
            client=self._client,
            transport=self._httpx_transport,
            verify=self._verify,
            trust_env=self._trust_env,
        )

    def _require_open(self) -> tuple[Transport, _Slots, anyio.abc.TaskGroup]:
        if self._transport is None or self._slots is None or self._task_group is None:
            raise exc.ConfigurationError(
                "use the sender as 'async with BulkSender(...) as bulk:' before sending or looking up"
            )
        return self._transport, self._slots, self._task_group

    @property
    def http_backend(self) -> str:
        """The transport in use: ``"fast"`` or ``"httpx"`` (once open)."""
        return self._transport.name if self._transport is not None else "not started"

    # -- sending ------------------------------------------------------------

    async def send(
        self,
        recipients: Recipients,
        text: str,
        *,
        sender_id: str,
        skip_dnd: bool = False,
        max_segments: int | None = None,
        check_balance: bool = False,
        journal: Journal | None = None,
    ) -> BulkResult:
        """Send ``text`` to every recipient and return what became of each.

        Raises only for misuse found before any request (a bad sender id, an
        empty text, an unopened sender, an unaffordable campaign with
        ``check_balance=True``); an authentication or credit failure
        mid-run stops the run and shows in ``result.aborted``.
        """
        result = BulkResult()
        started = time.perf_counter()
        run, recipients = await self._prepare(
            recipients,
            text,
            sender_id=sender_id,
            skip_dnd=skip_dnd,
            max_segments=max_segments,
            check_balance=check_balance,
            journal=journal,
            sink=result.add,
        )
        # No channel and no consumer task: batches are folded in as they settle.
        await self._execute(run, recipients, None)
        result.aborted = run.aborted
        result.elapsed = time.perf_counter() - started
        return result

    def stream(
        self,
        recipients: Recipients,
        text: str,
        *,
        sender_id: str,
        skip_dnd: bool = False,
        max_segments: int | None = None,
        check_balance: bool = False,
        journal: Journal | None = None,
    ) -> AsyncIterator[BatchResult]:
        """Yield a :class:`BatchResult` as each batch is settled.

        Memory stays O(concurrency): recipients are read as workers free up.
        Adding up every batch's ``total`` gives the number of inputs read.
        Breaking out of the loop stops the run; batches still in flight are
        reported to ``hooks`` as ``unknown``.
        """
        return self._stream(
            functools.partial(
                self._prepare,
                recipients,
                text,
                sender_id=sender_id,
                skip_dnd=skip_dnd,
                max_segments=max_segments,
                check_balance=check_balance,
                journal=journal,
                sink=None,
            )
        )

    async def _prepare(
        self,
        recipients: Recipients,
        text: str,
        *,
        sender_id: str,
        skip_dnd: bool,
        max_segments: int | None,
        check_balance: bool,
        journal: Journal | None,
        sink: Callable[[BatchResult], None] | None,
    ) -> tuple[_Run, Recipients]:
        """Everything checked before any request; raises for misuse."""
        message = Message.create(text, sender_id, max_segments=max_segments)
        if isinstance(recipients, str | bytes):
            raise exc.ConfigurationError(
                "recipients must be an iterable of numbers, not a single string: pass [number]"
            )
        self._require_open()
        if skip_dnd:
            self.driver.build_dnd(["+10000000000"])  # raises UnsupportedOperationError up front
        if check_balance:
            recipients = await self._preflight(recipients, message)
        run = _Run(
            message,
            self.driver.prepare_send(message),
            self.retry,
            skip_dnd=skip_dnd,
            journal=journal,
            sink=sink,
        )
        return run, recipients

    async def _stream(
        self, prepare: Callable[[], Awaitable[tuple[_Run, Recipients]]]
    ) -> AsyncGenerator[BatchResult, None]:
        run, recipients = await prepare()
        _, _, task_group = self._require_open()
        results_send, results_recv = anyio.create_memory_object_stream[BatchResult](self.concurrency)
        cancel_scope = anyio.CancelScope()
        # The run lives in the sender's task group, not in this generator:
        # a generator must not yield from inside a task group.
        task_group.start_soon(self._run_in_background, run, recipients, results_send, cancel_scope)
        try:
            async with results_recv:
                while (batch := await _take(results_recv)) is not None:
                    yield batch
        finally:
            cancel_scope.cancel()

    async def _preflight(self, recipients: Recipients, message: Message) -> Recipients:
        if isinstance(recipients, AsyncIterable):
            recipients = [r async for r in recipients]
        elif not isinstance(recipients, Sequence | set | frozenset):
            recipients = list(recipients)
        estimate = await self.estimate(recipients, message.text, sender_id=message.sender_id)
        if estimate.balance is not None and estimate.balance < estimate.cost:
            raise exc.InsufficientCreditError(
                f"the campaign needs {estimate.cost} credits ({estimate.recipients} recipients x "
                f"{estimate.segments} parts) but the balance is {estimate.balance}: top up or send to fewer",
                needed=estimate.cost,
                available=estimate.balance,
            )
        return recipients

    async def _run_in_background(
        self,
        run: _Run,
        recipients: Recipients,
        results: MemoryObjectSendStream[BatchResult],
        cancel_scope: anyio.CancelScope,
    ) -> None:
        async with results:
            with cancel_scope:
                try:
                    await self._execute(run, recipients, results)
                except Exception as error:  # pragma: no cover - a bug; never crash the host task group
                    logger.exception("run failed")
                    run.abort(exc.SmsError(f"internal error: {redact(str(error))}"))

    async def _execute(
        self, run: _Run, recipients: Recipients, results: MemoryObjectSendStream[BatchResult] | None
    ) -> None:
        """Run the producer and the workers to the end (or to cancellation)."""
        jobs_send, jobs_recv = anyio.create_memory_object_stream[_Job](self.concurrency)
        with jobs_recv:
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._produce, run, recipients, jobs_send)
                    for _ in range(self.concurrency):
                        tg.start_soon(self._work, run, jobs_recv.clone(), results)
            except anyio.get_cancelled_exc_class():
                # Jobs read but never started: report them, never drop them silently.
                never = Failure(Outcome.UNSENT, "not sent: the run was cancelled before this batch went out")
                with anyio.CancelScope(shield=True):
                    while True:
                        try:
                            job = jobs_recv.receive_nowait()
                        except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                            break
                        batch = job.result()
                        batch.failed.update(dict.fromkeys(job.numbers, never))
                        if run.journal is not None:
                            await run.journal.settle(batch)
                        await self._emit(run, results, batch)
                raise

    async def _produce(
        self,
        run: _Run,
        recipients: Recipients,
        jobs: MemoryObjectSendStream[_Job],
    ) -> None:
        # The hot loop of the whole library. A chunk of distinct, valid, new
        # numbers (the usual case) is handled with C-level set and list
        # operations; any invalid or repeated input sends the chunk down the
        # per-input path, which gives the same answer one input at a time.
        normalise_many = self.normaliser.normalise_many
        max_batch = self.driver.max_batch
        seen: set[int] = set()
        seen_raw: set[str] = set()
        job = _Job(0)
        async with jobs, contextlib.aclosing(_chunks(recipients)) as chunks:
            while True:
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                except Exception as error:  # noqa: BLE001 - the caller's iterable; whatever it raises stops the run
                    run.abort(_recipients_error(error))
                    break
                e164s = normalise_many(chunk)
                if None not in e164s:
                    valid = cast("list[str]", e164s)
                    keys = set(map(int, valid))  # e164_key: int() takes the leading '+'
                    if len(keys) == len(valid) and seen.isdisjoint(keys):
                        seen |= keys
                        job = await self._fill(jobs, job, valid, chunk, max_batch)
                        continue
                for raw, e164 in zip(chunk, e164s, strict=True):
                    if e164 is not None:
                        key = int(e164)
                        if key not in seen:
                            seen.add(key)
                            job.numbers.append(e164)
                            job.inputs.append(raw)
                            if len(job.numbers) >= max_batch:
                                await _put(jobs, job)
                                job = _Job(job.index + 1)
                            continue
                        dups = job.local_dups
                        dups[e164] = dups.get(e164, 0) + 1
                    elif raw in seen_raw:
                        dups = job.local_dups
                        dups[raw] = dups.get(raw, 0) + 1
                    else:
                        seen_raw.add(raw)
                        job.local_failed[raw] = _invalid(self.normaliser, raw)
                    if len(job.local_failed) + len(job.local_dups) >= _LOCAL_FLUSH:
                        await _put(jobs, job)
                        job = _Job(job.index + 1)
            # Everything read is accounted for, even when reading failed.
            if job.numbers or job.local_failed or job.local_dups:
                await _put(jobs, job)

    @staticmethod
    async def _fill(
        jobs: MemoryObjectSendStream[_Job], job: _Job, e164s: list[str], inputs: list[str], max_batch: int
    ) -> _Job:
        """Add new numbers to the current job, sending each job as it fills."""
        start = 0
        while start < len(e164s):
            room = max_batch - len(job.numbers)
            job.numbers.extend(e164s[start : start + room])
            job.inputs.extend(inputs[start : start + room])
            start += room
            if len(job.numbers) >= max_batch:
                await _put(jobs, job)
                job = _Job(job.index + 1)
        return job

    def _call_hooks(self, batch: BatchResult) -> None:
        if self._hooks is not None:
            try:
                self._hooks.on_batch(batch)
            except Exception:  # a broken hook must not lose a batch
                logger.exception("hooks.on_batch raised")

    async def _emit(
        self, run: _Run, results: MemoryObjectSendStream[BatchResult] | None, batch: BatchResult
    ) -> None:
        self._call_hooks(batch)
        if results is None:
            if run.sink is not None:
                run.sink(batch)
            return
        try:
            await _put(results, batch)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            # The consumer went away (stream closed early); hooks still saw it.
            logger.debug("batch %d settled after its consumer left", batch.index)

    async def _work(
        self,
        run: _Run,
        jobs: MemoryObjectReceiveStream[_Job],
        results: MemoryObjectSendStream[BatchResult] | None,
    ) -> None:
        journal = run.journal
        async with jobs:
            while (job := await _take(jobs)) is not None:
                if journal is not None and not await journal.begin(job.index, tuple(job.numbers)):
                    continue
                batch = await self._settle(run, job)
                if journal is None and results is None:
                    self._call_hooks(batch)  # nothing to await: no shield needed
                    if run.sink is not None:
                        run.sink(batch)
                    continue
                with anyio.CancelScope(shield=True):
                    if journal is not None:
                        await journal.settle(batch)
                    await self._emit(run, results, batch)

    async def _settle(self, run: _Run, job: _Job) -> BatchResult:
        """Send one job and account for every number in it, whatever happens."""
        batch = job.result()
        numbers = job.numbers
        if not numbers:
            return batch
        if run.aborted is not None:
            assert run.abort_failure is not None  # noqa: S101 - set with aborted
            batch.failed.update(dict.fromkeys(numbers, run.abort_failure))
            batch.aborted = run.aborted
            return batch
        attempt = _Attempt()
        started = time.perf_counter()
        try:
            if run.skip_dnd:
                numbers = await self._drop_dnd(run, numbers, batch, attempt)
            if numbers:
                await self._send_numbers(run, numbers, batch, attempt)
        except anyio.get_cancelled_exc_class():
            failure = _cancelled(attempt)
            batch.failed.update(
                {n: failure for n in numbers if n not in batch.message_ids and n not in batch.failed}
            )
            batch.requests = attempt.requests
            batch.elapsed = time.perf_counter() - started
            # The consumer is gone; the journal and the hooks still hear of it.
            with anyio.CancelScope(shield=True):
                if run.journal is not None:
                    await run.journal.settle(batch)
                self._call_hooks(batch)
            raise
        batch.requests = attempt.requests
        batch.retries = attempt.retries
        batch.elapsed = time.perf_counter() - started
        batch.aborted = run.aborted
        return batch

    async def _send_numbers(
        self, run: _Run, numbers: list[str], batch: BatchResult, attempt: _Attempt
    ) -> None:
        request = run.prepared.build(numbers)
        run.budget.started()
        deadline_at = time.monotonic() + run.policy.deadline
        try:
            _, answer = await self._call(
                request,
                lambda r: self.driver.parse_send(numbers, r),
                operation="send",
                run=run,
                deadline_at=deadline_at,
                attempt=attempt,
                cost=len(numbers),
            )
        except exc.SmsError as error:
            self._fail_batch(run, batch, numbers, error, maybe_sent=attempt.maybe_sent)
            return
        batch.raw = answer.raw
        batch.message_ids = answer.accepted
        rejected_reasons: dict[str, Failure] = {}
        for number, reason in answer.rejected.items():
            shared = rejected_reasons.get(reason)
            if shared is None:
                shared = rejected_reasons[reason] = Failure(Outcome.REJECTED, reason)
            batch.failed[number] = shared
        for number, reason in answer.unknown.items():
            batch.failed[number] = Failure(Outcome.UNKNOWN, reason)
        if len(answer.accepted) + len(answer.rejected) + len(answer.unknown) < len(numbers):
            missing = Failure(
                Outcome.REJECTED, "the gateway accepted the request but issued no id for this number"
            )
            for number in numbers:
                if number not in answer.accepted and number not in batch.failed:
                    batch.failed[number] = missing

    def _fail_batch(
        self,
        run: _Run,
        batch: BatchResult,
        numbers: Sequence[str],
        error: exc.SmsError,
        *,
        maybe_sent: bool,
    ) -> None:
        if isinstance(error, _RunStopped) and run.abort_failure is not None and not maybe_sent:
            batch.failed.update(dict.fromkeys(numbers, run.abort_failure))
            return
        if isinstance(error, exc.GatewayError) and error.raw is not None:
            batch.raw = error.raw
        if isinstance(error, exc.GatewayError) and error.aborts_run:
            run.abort(error)
        # An earlier try that may have reached the gateway outweighs a later
        # one that surely did not (only with retry_ambiguous=True).
        outcome = Outcome.UNKNOWN if maybe_sent else _outcome_of(error)
        failure = Failure(outcome, error.reason, error)
        batch.failed.update(dict.fromkeys(numbers, failure))
        logger.debug("batch %d: %s (%s)", batch.index, outcome.value, error.reason)

    async def _drop_dnd(
        self, run: _Run, numbers: list[str], batch: BatchResult, attempt: _Attempt
    ) -> list[str]:
        try:
            _, listed = await self._call(
                self.driver.build_dnd(numbers),
                lambda r: self.driver.parse_dnd(numbers, r),
                operation="lookup",
                run=run,
                deadline_at=time.monotonic() + run.policy.deadline,
                attempt=attempt,
            )
        except exc.SmsError as error:
            if isinstance(error, exc.GatewayError) and error.aborts_run:
                run.abort(error)
            failure = Failure(
                Outcome.UNSENT, f"not sent: the do-not-disturb check failed ({error.reason})", error
            )
            batch.failed.update(dict.fromkeys(numbers, failure))
            return []
        skipped = Failure(Outcome.SKIPPED, "on the do-not-disturb list")
        keep = []
        for number in numbers:
            if listed.get(number):
                batch.failed[number] = skipped
            else:
                keep.append(number)
        return keep

    async def _call(
        self,
        request: WireRequest,
        parse: Callable[[WireResponse], T],
        *,
        operation: Literal["send", "lookup"],
        run: _Run | None,
        deadline_at: float,
        attempt: _Attempt,
        cost: int = 0,
    ) -> tuple[WireResponse, T]:
        """One request with the retry policy around it; raises the final error.

        The first try runs without the retry machinery (the common case on
        the hot path); tenacity takes over from the first failure.
        """
        try:
            return await self._attempt(request, parse, operation, run, deadline_at, attempt, cost)
        except exc.SmsError as error:
            first_error = error
        policy = run.policy if run is not None else self.retry
        budget = run.budget if run is not None else None
        wait = policy.plan(
            first_error, 1, operation, budget=budget, deadline_at=deadline_at, throttle=self._throttle
        )
        if wait is None:
            raise first_error
        self._log_retry(request, first_error, 1, wait)
        await anyio.sleep(wait)
        async for retry_attempt in policy.retrying(
            operation, budget=budget, deadline_at=deadline_at, throttle=self._throttle, first_attempt=2
        ):
            with retry_attempt:
                attempt.retries += 1
                return await self._attempt(request, parse, operation, run, deadline_at, attempt, cost)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    @staticmethod
    def _log_retry(request: WireRequest, error: exc.SmsError, number: int, wait: float) -> None:
        logger.info(
            "%s: try %d failed (%s: %s); retrying in %.2f s",
            request.operation,
            number,
            type(error).__name__,
            error.reason,
            wait,
        )

    async def _attempt(
        self,
        request: WireRequest,
        parse: Callable[[WireResponse], T],
        operation: Literal["send", "lookup"],
        run: _Run | None,
        deadline_at: float,
        attempt: _Attempt,
        cost: int,
    ) -> tuple[WireResponse, T]:
        transport, slots, _ = self._require_open()
        if run is not None and run.aborted is not None and operation == "send":
            raise _RunStopped
        await self._throttle.wait()
        if self._message_meter is not None and cost:
            await self._message_meter.acquire(cost)
        if self._request_meter is not None:
            await self._request_meter.acquire()
        await slots.acquire()
        try:
            attempt.requests += 1
            attempt.in_flight = True
            try:
                response = await transport.send(request, deadline_at)
            except exc.SmsError as error:
                # A cancellation leaves in_flight set: the request may be out.
                attempt.in_flight = False
                if isinstance(error, exc.MaybeSentError):
                    attempt.maybe_sent = True
                raise
            attempt.in_flight = False
        finally:
            slots.release()
        try:
            return response, parse(response)
        except exc.AmbiguousResponseError:
            attempt.maybe_sent = True
            raise

    # -- look-ups -----------------------------------------------------------

    async def _lookup(
        self,
        build: Callable[[Sequence[str]], WireRequest],
        parse: Callable[[Sequence[str], WireResponse], T],
        items: Sequence[str],
        chunk: int,
        on_failure: Callable[[Sequence[str], exc.SmsError], T],
    ) -> list[T]:
        """Chunk, fan out under the shared limit, retry on any transient error."""
        self._require_open()
        chunks = [list(items[i : i + chunk]) for i in range(0, len(items), chunk)]
        results: list[T | None] = [None] * len(chunks)
        fatal: list[exc.SmsError] = []

        async def one(position: int, part: list[str]) -> None:
            if fatal:
                return
            deadline = self.retry.deadline
            try:
                _, value = await self._call(
                    build(part),
                    lambda r: parse(part, r),
                    operation="lookup",
                    run=None,
                    deadline_at=time.monotonic() + deadline,
                    attempt=_Attempt(),
                )
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
        self,
        message_ids: Iterable[str],
        *,
        interval: float = 30.0,
        timeout: float = 3600.0,
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
            reports = await self.delivery_reports(pending)
            still: dict[str, None] = {}
            for report in reports:
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
        self._require_open()
        deadline = self.retry.deadline
        _, value = await self._call(
            request,
            self.driver.parse_balance,
            operation="lookup",
            run=None,
            deadline_at=time.monotonic() + deadline,
            attempt=_Attempt(),
        )
        return value

    async def check_dnd(self, numbers: Iterable[str]) -> dict[str, bool]:
        """``{E.164: listed}`` for each number (raises InvalidNumberError for a bad one)."""
        normalised = list(dict.fromkeys(self.normaliser.normalise(n) for n in numbers))
        driver = self.driver
        if normalised:
            driver.build_dnd(normalised[:1])  # raises UnsupportedOperationError before any request

        def failed(_part: Sequence[str], error: exc.SmsError) -> dict[str, bool]:
            raise error

        parts = await self._lookup(
            driver.build_dnd, driver.parse_dnd, normalised, driver.max_dnd_batch, failed
        )
        merged: dict[str, bool] = {}
        for part in parts:
            merged.update(part)
        return merged

    async def estimate(self, recipients: Recipients, text: str, *, sender_id: str) -> Estimate:
        """Count distinct valid recipients and parts, and fetch the balance where the gateway has one."""
        message = Message.create(text, sender_id)
        seen: set[int] = set()
        async with contextlib.aclosing(_chunks(recipients)) as chunks:
            async for chunk in chunks:
                for e164 in self.normaliser.normalise_many(chunk):
                    if e164 is not None:
                        seen.add(e164_key(e164))
        try:
            balance: Decimal | None = await self.balance()
        except exc.UnsupportedOperationError:
            balance = None
        return Estimate(len(seen), message.segments, message.cost(len(seen)), balance)


# -- helpers ------------------------------------------------------------------


_CHUNK = 256


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


async def _chunks(items: Recipients) -> AsyncGenerator[list[str], None]:
    """The input in lists of up to 256, so the hot loop is a plain ``for``."""
    if isinstance(items, str):
        raise exc.ConfigurationError("recipients must be an iterable of numbers, not a single string")
    if isinstance(items, AsyncIterable):
        chunk: list[str] = []
        async for item in items:
            chunk.append(item if type(item) is str else str(item))
            if len(chunk) >= _CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
        return
    iterator = iter(items)
    checkpoint = anyio.lowlevel.checkpoint
    count = 0
    while chunk := list(itertools.islice(iterator, _CHUNK)):
        if set(map(type, chunk)) != {str}:
            chunk = [item if type(item) is str else str(item) for item in chunk]  # ints from a CSV reader
        yield chunk
        count += 1
        if count % 16 == 0:
            # Let the workers run now and then while reading a long input;
            # a full jobs channel makes the producer wait anyway.
            await checkpoint()


def _recipients_error(error: Exception) -> exc.RecipientsError:
    failure = exc.RecipientsError(
        f"reading the recipients failed ({type(error).__name__}: {redact(str(error))[:300]}); "
        "the run stopped: inputs read so far are accounted for, the rest were never read"
    )
    failure.__cause__ = error
    return failure


def _invalid(normaliser: PhoneNormaliser, raw: str) -> Failure:
    try:
        normaliser.normalise(raw)
    except exc.InvalidNumberError as error:
        return Failure(Outcome.INVALID, error.reason, error)
    return Failure(Outcome.INVALID, f"{raw[:40]!r} is not a valid phone number")  # pragma: no cover


def _outcome_of(error: exc.SmsError) -> Outcome:
    if isinstance(error, exc.GatewayError) and error.aborts_run:
        return Outcome.UNSENT  # refused up front: safe to send again with good credentials
    if isinstance(error, exc.NotSentError | exc.GatewayBusyError):
        return Outcome.UNSENT
    if isinstance(error, exc.MaybeSentError | exc.AmbiguousResponseError):
        return Outcome.UNKNOWN
    if isinstance(error, exc.GatewayError):
        return Outcome.REJECTED
    return Outcome.UNKNOWN


def _cancelled(attempt: _Attempt) -> Failure:
    if attempt.in_flight or attempt.maybe_sent:
        error = exc.RequestCancelled("the run was cancelled while the request was in flight")
        return Failure(Outcome.UNKNOWN, error.reason, error)
    return Failure(Outcome.UNSENT, "not sent: the run was cancelled before this batch went out")
