"""One ``send``/``stream`` call run to its end: a reader cuts batches, workers dispatch them.

::

    recipients -> read_chunks -> Batcher.feed -> bounded channel (size c)
      -> up to c workers: Run.dispatch(batch) -> journal.settle -> hooks -> deliver

Workers are started by the reader as batches wait for them, up to ``c``: a
one-batch call starts one task whatever the sender's concurrency, and a long
one reaches ``c`` as soon as its batches outpace the workers it has.

``deliver`` is a callback (``send`` folds each batch into its result) or a
memory stream (``stream`` yields from it). Memory is O(concurrency): the
reader waits when the channel is full. A cancelled call reports every batch
it read, never dropping one silently: those in flight as the dispatch
decides, those never started as ``unsent``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from sms_async import _exceptions as exc
from sms_async._batching import Batch, Batcher, Recipients, read_chunks
from sms_async._dispatch import Lane, Run
from sms_async._models import BatchResult
from sms_async._redact import redact

__all__ = ["GRACE", "Deliver", "execute", "run_in_background", "take"]

logger = logging.getLogger("sms_async")

T = TypeVar("T")

#: Where settled batches go: a callback, or a stream a consumer reads.
Deliver = Callable[[BatchResult], None] | MemoryObjectSendStream[BatchResult]


#: How long batches in flight may go on once a call's ``timeout`` has passed.
GRACE = 1.0


async def execute(
    run: Run,
    batcher: Batcher,
    recipients: Recipients,
    workers: int,
    deliver: Deliver,
    timeout: float | None = None,
) -> None:
    """Read, dispatch and deliver every batch, to the end, to ``timeout`` or to cancellation."""
    if timeout is None:
        await _execute(run, batcher, recipients, workers, deliver)
        return
    async with anyio.create_task_group() as clock:
        clock.start_soon(_expire, run, timeout)
        await _execute(run, batcher, recipients, workers, deliver)
        clock.cancel_scope.cancel()


async def _expire(run: Run, timeout: float) -> None:
    await anyio.sleep(timeout)
    run.stop(exc.SendTimeout(f"the call's timeout of {timeout:g} s passed"))
    await anyio.sleep(GRACE)
    run.cut()


async def _execute(
    run: Run,
    batcher: Batcher,
    recipients: Recipients,
    workers: int,
    deliver: Deliver,
) -> None:
    jobs_send, jobs_recv = anyio.create_memory_object_stream[Batch](workers)
    if not isinstance(deliver, MemoryObjectSendStream):
        run.deliver_cut = deliver
    with jobs_recv:
        try:
            async with anyio.create_task_group() as tg:
                crew = _Crew(tg, run, jobs_recv, deliver, workers)
                tg.start_soon(_read, run, batcher, recipients, jobs_send, crew)
        except anyio.get_cancelled_exc_class():
            # Batches read but never started: report them, never drop them silently.
            never = run.never_sent
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


class _Crew:
    """The workers of one call, started as batches wait for them."""

    __slots__ = ("_deliver", "_jobs", "_limit", "_run", "_tg", "started")

    def __init__(
        self,
        tg: anyio.abc.TaskGroup,
        run: Run,
        jobs: MemoryObjectReceiveStream[Batch],
        deliver: Deliver,
        limit: int,
    ) -> None:
        self._tg = tg
        self._run = run
        self._jobs = jobs
        self._deliver = deliver
        self._limit = limit
        self.started = 0

    def grow(self, jobs: MemoryObjectSendStream[Batch]) -> None:
        """Start one more worker if a batch waits in the channel and the limit allows."""
        # A batch handed straight to a waiting worker never sits in the buffer:
        # one that does found every worker busy.
        if self.started < self._limit and jobs.statistics().current_buffer_used:
            self.started += 1
            self._tg.start_soon(_work, self._run, self._jobs.clone(), self._deliver)


async def _read(
    run: Run,
    batcher: Batcher,
    recipients: Recipients,
    jobs: MemoryObjectSendStream[Batch],
    crew: _Crew,
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
                crew.grow(jobs)
        # Everything read is accounted for, even when reading failed.
        for batch in batcher.finish():
            await _put(jobs, batch)
            crew.grow(jobs)


async def _work(
    run: Run,
    jobs: MemoryObjectReceiveStream[Batch],
    deliver: Deliver,
) -> None:
    async with jobs:
        more = True
        while more:
            # One cancel scope for the batches that follow, until stop() or cut() spends it.
            lane = Lane()
            with lane.scope:
                more, last = await _work_lane(run, jobs, deliver, lane)
            if last is not None:
                # The batch the lane was spent on is delivered outside it: inside,
                # every await would be cancelled again.
                await _settled(run, last, deliver)


async def _work_lane(
    run: Run,
    jobs: MemoryObjectReceiveStream[Batch],
    deliver: Deliver,
    lane: Lane,
) -> tuple[bool, tuple[BatchResult, float] | None]:
    """Dispatch and deliver batches in ``lane`` until the channel ends or the lane is spent.

    Returns whether batches may follow, and the settled batch the lane was spent on, if any.
    """
    while (batch := await take(jobs)) is not None:
        settled = await run.dispatch(batch, lane)
        if lane.spent:
            # stop() or cut() cancelled this lane for the batch just settled: leave it
            # before awaiting anything else.
            return True, settled
        if settled is not None:
            await _settled(run, settled, deliver)
    return False, None


async def _settled(run: Run, settled: tuple[BatchResult, float], deliver: Deliver) -> None:
    """Hand a settled batch on: to the journal, the hooks, and the call's result or stream."""
    result, started_at = settled
    if run.journal is None:
        run.report(result, started_at)
        full = _hand_over(result, deliver)
        if full is not None:
            # The consumer's channel is full: the wait for room must not drop the batch.
            with anyio.CancelScope(shield=True):
                await _put_result(full, result)
        return
    with anyio.CancelScope(shield=True):
        await _deliver(run, result, started_at, deliver)


def _hand_over(result: BatchResult, deliver: Deliver) -> MemoryObjectSendStream[BatchResult] | None:
    """Deliver without awaiting; the consumer's channel when it is full and the batch must wait."""
    if not isinstance(deliver, MemoryObjectSendStream):
        deliver(result)
        return None
    try:
        deliver.send_nowait(result)
    except anyio.WouldBlock:
        return deliver
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        # The consumer went away (stream closed early); the hooks still saw it.
        logger.debug("batch %d settled after its consumer left", result.index)
    return None


async def _deliver(
    run: Run,
    result: BatchResult,
    started_at: float,
    deliver: Deliver,
) -> None:
    if run.journal is not None:
        await run.journal.settle(result)
    run.report(result, started_at)
    if not isinstance(deliver, MemoryObjectSendStream):
        deliver(result)
        return
    await _put_result(deliver, result)


async def _put_result(deliver: MemoryObjectSendStream[BatchResult], result: BatchResult) -> None:
    try:
        await _put(deliver, result)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        # The consumer went away (stream closed early); the hooks still saw it.
        logger.debug("batch %d settled after its consumer left", result.index)


async def run_in_background(
    run: Run,
    batcher: Batcher,
    recipients: Recipients,
    workers: int,
    results: MemoryObjectSendStream[BatchResult],
    cancel_scope: anyio.CancelScope,
    finished: anyio.Event,
    timeout: float | None = None,
) -> None:
    try:
        async with results:
            with cancel_scope:
                try:
                    await execute(run, batcher, recipients, workers, results, timeout)
                except Exception as error:  # pragma: no cover - a bug; never crash the host task group
                    logger.exception("run failed")
                    run.abort(exc.SmsError(f"internal error: {redact(str(error))}"))
    finally:
        finished.set()


async def take(stream: MemoryObjectReceiveStream[T]) -> T | None:
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
