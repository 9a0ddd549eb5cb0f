"""One batch, or one look-up, through the limits, the transport, the driver and the retry policy.

:class:`Dispatcher` belongs to a sender and holds what every call shares
(the driver, the transport, the gates, the tenacity state machines, the
hooks); :class:`Run` belongs to one ``send``/``stream`` call and turns each
:class:`~sms_async._batching.Batch` into a :class:`~sms_async.BatchResult`
that accounts for every input in it, whatever happens:

* a gateway answer becomes ``accepted`` / ``rejected`` / ``unknown`` per number;
* a failure becomes one outcome for the whole batch: ``unsent`` when the
  request certainly never reached the gateway, ``unknown`` when it may have,
  ``rejected`` when the gateway refused it;
* bad credentials or no credit stop the run: later batches are ``unsent``;
* a cancellation once the request's first byte was handed to a connection
  is ``unknown``; before that (waiting for a slot or a pooled connection,
  connecting) it is ``unsent``.

The engine never parses a gateway's body: the driver does, here.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Final, TypeVar

import anyio
import tenacity

from sms_async import _exceptions as exc
from sms_async._journal import Admission, Journal
from sms_async._limits import Limits
from sms_async._message import Message
from sms_async._models import BatchResult, Failure, Outcome
from sms_async._outcomes import FIRST_BATCHES, LOST_REASON, SKIPPED, outcome_of, record_answer, wrong_endpoint
from sms_async._retry import Deadline, RetryBudget, RetryPolicy, call_with_retries
from sms_async._wire import WireRequest, WireResponse
from sms_async.instrumentation import (
    BatchSettled,
    GatewayPaused,
    Instruments,
    RequestFinished,
    RetryScheduled,
    RunAborted,
)
from sms_async.providers._base import Driver, PreparedSend, SendAnswer
from sms_async.transports import Transport
from sms_async.transports._base import BeforeWrite, OnWrite

if TYPE_CHECKING:
    from sms_async._batching import Batch

__all__ = ["Dispatcher", "Lane", "Run"]

logger = logging.getLogger("sms_async")

T = TypeVar("T")

# Prepared requests kept per run when each recipient has a text of their own.
_PREPARED_CACHE: Final = 64


class Lane:
    """The cancel scope a worker's batches share, one after another, until stop() or cut() cancels it.

    A cancel scope per batch cost more than all the dispatch's other frames
    together (entering and leaving one walks the task's scopes, and leaves two
    sets for the garbage collector): 55 -> 48 us of CPU a 100-number request.
    A worker enters its lane's scope around the batches it takes, and makes a
    new lane only once one was cancelled.
    """

    __slots__ = ("scope",)

    def __init__(self) -> None:
        self.scope = anyio.CancelScope()

    @property
    def spent(self) -> bool:
        """Whether the scope was cancelled: the worker leaves it and takes a new lane."""
        return self.scope.cancel_called


class _Tries:
    """The requests made for one batch, and what they may have done at the gateway.

    It is also the batch's retry context: its deadline and its run's budget.
    """

    __slots__ = (
        "budget",
        "claimed",
        "deadline_at",
        "in_flight",
        "lane",
        "maybe_sent",
        "requests",
        "retries",
        "started_at",
        "stopped",
        "wrong_endpoint",
    )

    def __init__(self, lane: Lane | None = None, budget: RetryBudget | None = None) -> None:
        self.budget = budget
        #: Set when the first request leaves, not while the batch queues for the rate meters.
        self.deadline_at = math.inf
        self.requests = 0
        self.retries = 0
        #: A request's first byte was handed to a connection, and its answer is not in yet.
        self.in_flight = False
        #: An earlier try may have reached the gateway.
        self.maybe_sent = False
        #: The journal holds the batch as ``sending`` for us.
        self.claimed = False
        #: Wall-clock time of the first request, for hooks.
        self.started_at = 0.0
        #: How the last answer looked like a wrong address, if it did.
        self.wrong_endpoint: str | None = None
        #: Cancelled when the call stops: at once if no request is on the wire, after a grace if one is.
        #: The worker's lane, or (dispatched without one) a scope of the batch's own.
        self.lane = lane
        #: stop() or cut() cancelled the lane for this batch.
        self.stopped = False

    def written(self) -> None:
        """The transport handed the request's first byte to a connection."""
        self.in_flight = True

    def cancel(self) -> None:
        """End the batch's tries (for stop() and cut()): its worker is inside them, in its lane."""
        self.stopped = True
        if self.lane is not None:
            self.lane.scope.cancel()


class _NotOurs(Exception):
    """The journal gave the batch to someone else: nothing to send or report."""


class _RunStopped(exc.SmsError):
    """The run was aborted before this try; nothing was sent."""


class Dispatcher:
    """What every request of one sender shares: driver, transport, gates, retries, hooks."""

    def __init__(
        self,
        driver: Driver,
        transport: Transport,
        limits: Limits,
        slots: anyio.Semaphore,
        policy: RetryPolicy,
        instruments: Instruments,
    ) -> None:
        self.driver = driver
        self.transport = transport
        self.limits = limits
        self.slots = slots
        self.policy = policy
        self.instruments = instruments
        self.retrying = {
            operation: policy.retrying(operation, before_sleep=self._retry_reporter(operation))
            for operation in ("send", "lookup")
        }

    def _retry_reporter(self, operation: str) -> Callable[[tenacity.RetryCallState], None] | None:
        listeners = self.instruments.on_retry
        if not listeners:
            return None
        gateway = self.instruments.gateway

        def report(state: tenacity.RetryCallState) -> None:
            outcome = state.outcome
            error = outcome.exception() if outcome is not None else None
            record = RetryScheduled(
                gateway,
                operation,
                state.attempt_number,
                state.upcoming_sleep,
                type(error).__name__,
                error.reason if isinstance(error, exc.SmsError) else "",
            )
            for listener in listeners:
                listener(record)

        return report

    # -- the request itself ------------------------------------------------------------

    async def send_request(
        self,
        request: WireRequest,
        deadline_at: float,
        size: int,
        before_write: BeforeWrite | None = None,
        on_write: OnWrite | None = None,
    ) -> WireResponse:
        """One request on a slot; every gate but the slot was passed already."""
        if not self.instruments.on_request:
            return await self.transport.send(request, deadline_at, before_write, on_write)
        started = time.perf_counter()
        try:
            response = await self.transport.send(request, deadline_at, before_write, on_write)
        except exc.SmsError as failure:
            self._report_request(request, started, None, type(failure).__name__, size)
            raise
        self._report_request(request, started, response.status, None, size)
        return response

    def _report_request(
        self, request: WireRequest, started: float, status: int | None, error: str | None, size: int
    ) -> None:
        gateway, seconds = self.instruments.gateway, time.perf_counter() - started
        record = RequestFinished(gateway, request.operation, seconds, status, error, size)
        for listener in self.instruments.on_request:
            listener(record)

    async def lookup(
        self,
        request: WireRequest,
        parse: Callable[[WireResponse], T],
        *,
        size: int,
        budget: RetryBudget | None = None,
    ) -> T:
        """A look-up (status, balance, do-not-disturb): changes nothing, so any transient error is retried."""
        context = Deadline(time.monotonic() + self.policy.deadline, budget)
        limits, slots = self.limits, self.slots

        async def attempt() -> T:
            await limits.wait_turn(0)
            async with slots:
                response = await self.send_request(request, context.deadline_at, size)
            return parse(response)

        return await call_with_retries(self.retrying["lookup"], attempt, context, self.wait_to_retry)

    async def wait_to_retry(self, error: exc.SmsError, seconds: float) -> None:
        """Wait before a retry; a busy gateway pauses the whole pool instead of this caller alone."""
        if isinstance(error, exc.GatewayBusyError):
            await self.limits.pause.pause(seconds)
            if self.instruments.on_pause:
                record = GatewayPaused(self.instruments.gateway, seconds, error.status_code)
                for listener in self.instruments.on_pause:
                    listener(record)
            return  # the next try waits the pause out with every other worker
        await anyio.sleep(seconds)

    def run(
        self,
        message: Message | None,
        *,
        skip_dnd: bool,
        journal: Journal | None,
        params: Mapping[str, str] | None,
    ) -> Run:
        """The state of one ``send``/``stream`` call."""
        return Run(self, message, skip_dnd=skip_dnd, journal=journal, params=params)


class Run:
    """One ``send``/``stream`` call: its retry budget, its journal, whether it was aborted."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        message: Message | None,
        *,
        skip_dnd: bool,
        journal: Journal | None,
        params: Mapping[str, str] | None,
    ) -> None:
        self._dispatcher = dispatcher
        self._driver = dispatcher.driver
        self.journal = journal
        self.skip_dnd = skip_dnd
        self.budget = RetryBudget(dispatcher.policy)
        self._params = params
        self._prepared: dict[Message, PreparedSend] = {}
        self._last_prepared: tuple[Message, PreparedSend] | None = None
        if message is not None:
            self._prepared[message] = self._driver.prepare_send(message, params)
        self.aborted: exc.SmsError | None = None
        self._abort_failure: Failure | None = None
        # How each of the run's first settled batches looked like a wrong address ("" if it did not).
        self._first_answers: list[str] = []
        # The batches with a try under way, for stop() and cut().
        self._active: set[_Tries] = set()
        #: Where a batch settled by a cancellation goes, besides the journal and the hooks.
        self.deliver_cut: Callable[[BatchResult], None] | None = None

    def stop(self, error: exc.CallStopped) -> None:
        """Stop the call: no batch or retry starts; batches with nothing on the wire end ``unsent`` now.

        Batches with a request on the wire go on until they settle or :meth:`cut` is called.
        """
        self.abort(error)
        for tries in tuple(self._active):
            # No retry after this, even for a request still on the wire: its deadline is past
            # (the transport already holds the deadline it was sent with).
            tries.deadline_at = -math.inf
            if not tries.in_flight:
                tries.cancel()

    def cut(self) -> None:
        """End the batches still in flight after :meth:`stop`: they settle ``unknown``."""
        for tries in tuple(self._active):
            tries.cancel()

    @property
    def never_sent(self) -> Failure:
        """The failure of a batch the call dropped before its turn: the abort's, or a cancellation's."""
        if self._abort_failure is not None:
            return self._abort_failure
        return Failure(Outcome.UNSENT, "not sent: the run was cancelled before this batch went out")

    @property
    def in_flight(self) -> int:
        """Batches with a request on the wire right now."""
        return sum(1 for tries in self._active if tries.in_flight)

    def abort(self, error: exc.SmsError) -> None:
        """Stop the run: every batch not yet sent will be ``unsent``."""
        if self.aborted is not None:
            return
        self.aborted = error
        self._abort_failure = Failure(
            Outcome.UNSENT,
            f"not sent: the run stopped early ({type(error).__name__}: {error.reason})",
            error,
        )
        instruments = self._dispatcher.instruments
        if instruments.on_abort:
            record = RunAborted(instruments.gateway, type(error).__name__, error.reason)
            for listener in instruments.on_abort:
                listener(record)

    def report(self, result: BatchResult, started_at: float) -> None:
        """Hand a settled batch to the hooks."""
        instruments = self._dispatcher.instruments
        if instruments.on_batch:
            record = BatchSettled(instruments.gateway, started_at or time.time(), result)
            for listener in instruments.on_batch:
                listener(record)

    def _prepared_for(self, message: Message) -> PreparedSend:
        # The same Message object for a run of batches: no hashing of its text.
        last = self._last_prepared
        if last is not None and last[0] is message:
            return last[1]
        prepared = self._prepared.get(message)
        if prepared is None:
            if len(self._prepared) >= _PREPARED_CACHE:
                self._prepared.pop(next(iter(self._prepared)))
            prepared = self._prepared[message] = self._driver.prepare_send(message, self._params)
        self._last_prepared = (message, prepared)
        return prepared

    # -- one batch -------------------------------------------------------------------------

    async def dispatch(self, batch: Batch, lane: Lane | None = None) -> tuple[BatchResult, float] | None:
        """Settle ``batch``: its result and when its first request left, or ``None`` to skip it.

        Raises only the cancellation of a cancelled run, after reporting the
        batch (as ``unknown`` where a request was on the wire) to the
        journal and the hooks. ``lane`` is the worker's (entered by the
        worker, who leaves it once it is spent); without one the batch's tries
        get a cancel scope of their own.
        """
        result = batch.to_result()
        numbers = batch.numbers
        if self.journal is not None:
            admission = await self.journal.admit(batch)
            if admission is Admission.SKIP:
                return None
            if admission is Admission.LOST:
                result.failed.update(dict.fromkeys(numbers, Failure(Outcome.UNKNOWN, LOST_REASON)))
                return result, 0.0
        if not numbers:
            return result, 0.0
        if self.aborted is not None:
            assert self._abort_failure is not None  # noqa: S101 - set with aborted
            result.failed.update(dict.fromkeys(numbers, self._abort_failure))
            result.aborted = self.aborted
            return result, 0.0
        tries = _Tries(lane)
        started = time.perf_counter()
        try:
            if self.skip_dnd:
                numbers = await self._drop_dnd(numbers, result)
            if numbers:
                assert batch.message is not None  # noqa: S101 - a batch with numbers has its text
                await self._send(batch, numbers, result, tries)
        except _NotOurs:
            return None
        except anyio.get_cancelled_exc_class():
            failure = _cancelled(tries)
            settled = result.message_ids.keys() | result.failed.keys()
            result.failed.update({n: failure for n in numbers if n not in settled})
            result.requests = tries.requests
            result.elapsed = time.perf_counter() - started
            # The consumer is gone; the journal and the hooks still hear of it.
            with anyio.CancelScope(shield=True):
                if self.journal is not None:
                    await self.journal.settle(result)
                self.report(result, tries.started_at)
            if self.deliver_cut is not None:
                self.deliver_cut(result)
            raise
        result.requests = tries.requests
        result.retries = tries.retries
        result.elapsed = time.perf_counter() - started
        result.aborted = self.aborted
        return result, tries.started_at

    async def _send(self, batch: Batch, numbers: list[str], result: BatchResult, tries: _Tries) -> None:
        assert batch.message is not None  # noqa: S101 - checked by the caller
        request = self._prepared_for(batch.message).build(numbers)
        dispatcher = self._dispatcher
        cost = len(numbers)
        tries.budget = self.budget
        self.budget.started()

        async def attempt() -> SendAnswer:
            if self.aborted is not None:
                raise _RunStopped
            limits, slots = dispatcher.limits, dispatcher.slots
            if not limits.clear():
                await limits.wait_turn(cost)
            try:
                # A free slot is taken without a checkpoint: the request that
                # follows is one, and anyio's acquire walks the cancel scopes.
                slots.acquire_nowait()
            except anyio.WouldBlock:
                await slots.acquire()
            if self.aborted is not None:
                slots.release()  # stopped while it waited: nothing goes out
                raise _RunStopped
            try:
                response = await self._write(batch, request, tries)
            finally:
                slots.release()
            tries.wrong_endpoint = None
            try:
                return self._driver.parse_send(numbers, response)
            except exc.GatewayError as error:
                if isinstance(error, exc.AmbiguousResponseError):
                    tries.maybe_sent = True
                tries.wrong_endpoint = wrong_endpoint(response)
                raise

        async def wait(error: exc.SmsError, seconds: float) -> None:
            tries.retries += 1
            if tries.claimed and self.journal is not None and not tries.maybe_sent:
                # Nothing reached the gateway: pending again for the backoff.
                await self.journal.release(batch)
                tries.claimed = False
            await dispatcher.wait_to_retry(error, seconds)

        answer, failure = await self._tries(tries, attempt, wait)
        if tries.stopped and answer is None and failure is None:
            # stop() or cut() ended this batch (a cancellation from outside would have gone through).
            self._fail_stopped(result, numbers, tries)
            return
        if failure is not None:
            self._fail(result, numbers, failure, maybe_sent=tries.maybe_sent)
            self._watch_first_answers(tries.wrong_endpoint or "", failure)
            return
        assert answer is not None  # noqa: S101 - one of the two is set
        self._watch_first_answers("", None)
        record_answer(result, numbers, answer)

    async def _tries(
        self,
        tries: _Tries,
        attempt: Callable[[], Awaitable[SendAnswer]],
        wait: Callable[[exc.SmsError, float], Awaitable[None]],
    ) -> tuple[SendAnswer | None, exc.SmsError | None]:
        """Every try of one batch, under the scope :meth:`stop` and :meth:`cut` cancel.

        Both ``None`` when they did: the batch was stopped.
        """
        answer: SendAnswer | None = None
        failure: exc.SmsError | None = None
        retrying = self._dispatcher.retrying["send"]
        self._active.add(tries)
        try:
            if tries.lane is None:
                tries.lane = Lane()
                with tries.lane.scope:
                    try:
                        answer = await call_with_retries(retrying, attempt, tries, wait)
                    except exc.SmsError as error:
                        failure = error
                return answer, failure
            try:
                answer = await call_with_retries(retrying, attempt, tries, wait)
            except exc.SmsError as error:
                failure = error
            except anyio.get_cancelled_exc_class():
                if not tries.stopped:
                    raise  # from outside the run: the call itself is being cancelled
                # Ours: the lane stays cancelled, and the worker leaves it before it awaits again.
        finally:
            self._active.discard(tries)
        return answer, failure

    async def _write(self, batch: Batch, request: WireRequest, tries: _Tries) -> WireResponse:
        """One try on the wire, the journal's claim made once a connection is ready."""
        journal = self.journal
        if tries.deadline_at == math.inf:
            tries.deadline_at = time.monotonic() + self._dispatcher.policy.deadline
            tries.started_at = time.time()

        async def claim() -> None:
            assert journal is not None  # noqa: S101 - passed only with a journal
            if not await journal.claim(batch):
                raise _NotOurs
            tries.claimed = True

        tries.requests += 1
        try:
            response = await self._dispatcher.send_request(
                request,
                tries.deadline_at,
                len(batch.numbers),
                claim if journal is not None and not tries.claimed else None,
                tries.written,
            )
        except exc.SmsError as error:
            # A cancellation leaves in_flight as the transport set it: the request may be out.
            tries.in_flight = False
            if isinstance(error, exc.MaybeSentError):
                tries.maybe_sent = True
            raise
        tries.in_flight = False
        return response

    def _watch_first_answers(self, wrong_endpoint: str, error: exc.SmsError | None) -> None:
        """Stop the run when its first batches all got the same wrong-endpoint answer."""
        answers = self._first_answers
        if len(answers) >= FIRST_BATCHES:
            return
        answers.append(wrong_endpoint)
        if len(answers) == FIRST_BATCHES and answers[0] and answers.count(answers[0]) == FIRST_BATCHES:
            reason = error.reason if error is not None else ""
            self.abort(
                exc.EndpointError(
                    f"the gateway answered {answers[0]} to the first {FIRST_BATCHES} batches "
                    f"({reason}): the address looks wrong, not the recipients; check base_url and "
                    "the gateway's paths, then send the rest again",
                    status_code=error.status_code if isinstance(error, exc.GatewayError) else None,
                )
            )

    def _fail(
        self, result: BatchResult, numbers: Sequence[str], error: exc.SmsError, *, maybe_sent: bool
    ) -> None:
        if isinstance(error, _RunStopped) and self._abort_failure is not None and not maybe_sent:
            result.failed.update(dict.fromkeys(numbers, self._abort_failure))
            return
        if isinstance(error, exc.GatewayError) and error.raw is not None:
            result.raw = error.raw
        if isinstance(error, exc.GatewayError) and error.aborts_run:
            self.abort(error)
        # An earlier try that may have reached the gateway outweighs a later
        # one that surely did not (only with retry_ambiguous=True).
        outcome = Outcome.UNKNOWN if maybe_sent else outcome_of(error)
        failure = Failure(outcome, error.reason, error)
        result.failed.update(dict.fromkeys(numbers, failure))
        logger.debug("batch %d: %s (%s)", result.index, outcome.value, error.reason)

    def _fail_stopped(self, result: BatchResult, numbers: Sequence[str], tries: _Tries) -> None:
        if tries.in_flight or tries.maybe_sent:
            reason = self.aborted.reason if self.aborted is not None else "the call stopped"
            error = exc.RequestCancelled(f"the request was in flight when the call stopped ({reason})")
            failure = Failure(Outcome.UNKNOWN, error.reason, error)
        else:
            assert self._abort_failure is not None  # noqa: S101 - stop() aborts before it cancels
            failure = self._abort_failure
        result.failed.update(dict.fromkeys(numbers, failure))

    async def _drop_dnd(self, numbers: list[str], result: BatchResult) -> list[str]:
        driver = self._driver
        try:
            listed = await self._dispatcher.lookup(
                driver.build_dnd(numbers),
                lambda response: driver.parse_dnd(numbers, response),
                size=len(numbers),
                budget=self.budget,
            )
        except exc.SmsError as error:
            if isinstance(error, exc.GatewayError) and error.aborts_run:
                self.abort(error)
            failure = Failure(
                Outcome.UNSENT, f"not sent: the do-not-disturb check failed ({error.reason})", error
            )
            result.failed.update(dict.fromkeys(numbers, failure))
            return []
        keep = []
        for number in numbers:
            if listed.get(number):
                result.failed[number] = SKIPPED
            else:
                keep.append(number)
        return keep


def _cancelled(tries: _Tries) -> Failure:
    if tries.in_flight or tries.maybe_sent:
        error = exc.RequestCancelled("the run was cancelled while the request was in flight")
        return Failure(Outcome.UNKNOWN, error.reason, error)
    return Failure(Outcome.UNSENT, "not sent: the run was cancelled before this batch went out")
