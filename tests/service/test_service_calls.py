"""Calls inside a long-running service: a per-call timeout, a cancelled call's result, closing mid-send."""

from __future__ import annotations

import logging

import anyio
import pytest
from service_support import TRANSPORTS, Settled, assert_accounted, numbers, received, sender

from sms_async import (
    BulkResult,
    ConfigurationError,
    Outcome,
    SendCancelled,
    SenderClosed,
    SendTimeout,
)
from sms_async.instrumentation import RetryScheduled
from sms_async.testing import Fault, SimulatedGateway

both_transports = pytest.mark.parametrize("http", TRANSPORTS)


async def until(condition: object) -> None:
    """Poll ``condition()`` until it holds (a wait for the gateway's thread, not a time limit)."""
    with anyio.fail_after(20):
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110 - another thread's state
            await anyio.sleep(0.005)


async def settled_gateway(gw: SimulatedGateway) -> None:
    """Wait until the gateway has finished with every request it holds."""
    await until(lambda: gw.stats.in_flight == 0)


# -- send(timeout=) -------------------------------------------------------------------------------


@both_transports
async def test_timeout_returns_the_partial_result_with_send_timeout(sms_gateway_factory, http):
    """When the timeout passes, no batch starts; the result comes back partial, the rest unsent."""
    gw = sms_gateway_factory(faults=[Fault("latency", rate=1.0, seconds=0.05)])
    sent = numbers(3000)
    async with sender(gw, http, concurrency=2) as bulk:
        result = await bulk.send(sent, "Hello", sender_id="ITONAB", timeout=0.2)
    await settled_gateway(gw)
    assert isinstance(result.aborted, SendTimeout)
    assert not result.ok
    counts = result.counts()
    assert counts[Outcome.ACCEPTED] > 0
    assert counts[Outcome.UNSENT] > 0
    assert all("SendTimeout" in f.reason for f in result.failed.values() if f.outcome is Outcome.UNSENT)
    assert_accounted(result, sent, gw)


@both_transports
async def test_timeout_cuts_requests_still_unanswered_after_the_grace(sms_gateway_factory, http):
    """Requests the gateway holds past the timeout and its grace are unknown; nothing else was sent."""
    gw = sms_gateway_factory(faults=[Fault("stall", rate=1.0)])
    sent = numbers(1000)
    async with sender(gw, http, concurrency=3) as bulk:
        result = await bulk.send(sent, "Hello", sender_id="ITONAB", timeout=0.2)
    assert isinstance(result.aborted, SendTimeout)
    counts = result.counts()
    assert counts[Outcome.UNKNOWN] == 300  # the three batches on the wire
    assert counts[Outcome.UNSENT] == 700
    assert_accounted(result, sent, gw)


@both_transports
async def test_stream_timeout_ends_the_stream_with_every_batch_accounted(sms_gateway_factory, http):
    """A stream with a timeout ends on its own; its batches add up to the input, the rest unsent."""
    gw = sms_gateway_factory(faults=[Fault("latency", rate=1.0, seconds=0.05)])
    sent = numbers(2000)
    result = BulkResult()
    async with sender(gw, http, concurrency=2) as bulk:
        async for batch in bulk.stream(sent, "Hello", sender_id="ITONAB", timeout=0.2):
            result.add(batch)
    await settled_gateway(gw)
    assert isinstance(result.aborted, SendTimeout)
    assert result.counts()[Outcome.UNSENT] > 0
    assert_accounted(result, sent, gw)


async def test_a_timeout_that_is_not_a_positive_number_is_refused(sms_gateway):
    """`timeout=0` is refused before anything is sent, saying what is expected."""
    async with sender(sms_gateway) as bulk:
        with pytest.raises(ConfigurationError, match="timeout must be a number of seconds > 0"):
            await bulk.send(numbers(1), "Hello", sender_id="ITONAB", timeout=0)
    assert received(sms_gateway) == set()


# -- cancellation ---------------------------------------------------------------------------------


@both_transports
async def test_cancelled_send_fills_into_and_logs_one_warning(sms_gateway_factory, http, caplog):
    """A cancelled send raises on, leaves every settled batch in `into`, and logs one WARNING with counts."""
    gw = sms_gateway_factory(faults=[Fault("latency", rate=1.0, seconds=0.3)])
    sent = numbers(2000)
    holder = BulkResult()
    caplog.set_level(logging.WARNING, logger="sms_async")
    async with sender(gw, http, concurrency=4) as bulk, anyio.create_task_group() as tg:

        async def call() -> None:
            await bulk.send(sent, "Hello", sender_id="ITONAB", into=holder)

        tg.start_soon(call)
        await until(lambda: gw.stats.in_flight == 4)
        tg.cancel_scope.cancel()
    await settled_gateway(gw)
    assert isinstance(holder.aborted, SendCancelled)
    counts = holder.counts()
    assert counts[Outcome.UNKNOWN] == 400  # the four batches on the wire
    assert holder.total == len(holder.message_ids) + len(holder.failed) + sum(holder.duplicates.values())
    assert set(holder.failed) <= set(sent)
    got = received(gw)
    assert got <= set(holder.by_outcome(Outcome.UNKNOWN)) | set(holder.message_ids)
    assert not set(holder.by_outcome(Outcome.UNSENT)) & got
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "send cancelled" in r.message]
    assert len(warnings) == 1
    assert "unknown=400" in warnings[0].message


# -- aclose(timeout=) -----------------------------------------------------------------------------


class Retries:
    """Hooks that note every retry scheduled, and whether the sender was closing then."""

    def __init__(self) -> None:
        self.closing = False
        self.after_close: list[RetryScheduled] = []
        self.before_close = 0

    def on_retry(self, record: RetryScheduled) -> None:
        """Note the retry."""
        if self.closing:
            self.after_close.append(record)
        else:
            self.before_close += 1


@both_transports
async def test_aclose_stops_a_running_send_which_returns_with_sender_closed(sms_gateway_factory, http):
    """Closing mid-send: the send returns with the rest unsent and SenderClosed; no retry after the close."""
    gw = sms_gateway_factory(
        faults=[Fault("status_503", rate=0.3, retry_after=0.05), Fault("latency", rate=1.0, seconds=0.05)],
        seed=3,
    )
    sent = numbers(5000)
    retries = Retries()
    results: list[BulkResult] = []
    bulk = sender(gw, http, concurrency=4, hooks=[retries, Settled()])
    async with bulk, anyio.create_task_group() as tg:

        async def call() -> None:
            results.append(await bulk.send(sent, "Hello", sender_id="ITONAB"))

        tg.start_soon(call)
        await until(lambda: gw.stats.requests["iton.sendSMS"] >= 8)
        retries.closing = True
        await bulk.aclose(timeout=5)
        assert results  # the send returned before the sender finished closing
        with pytest.raises(ConfigurationError, match="closing"):
            await bulk.send(numbers(1), "Hello", sender_id="ITONAB")
    await settled_gateway(gw)
    (result,) = results
    assert isinstance(result.aborted, SenderClosed)
    assert result.counts()[Outcome.UNSENT] > 0
    assert result.counts()[Outcome.UNKNOWN] == 0  # every request in flight had time to finish
    assert not retries.after_close
    assert_accounted(result, sent, gw)


@both_transports
async def test_aclose_timeout_leaves_unanswered_requests_unknown(sms_gateway_factory, http):
    """Requests still unanswered when aclose's timeout passes are unknown, the rest unsent."""
    gw = sms_gateway_factory(faults=[Fault("stall", rate=1.0)])
    sent = numbers(1000)
    results: list[BulkResult] = []
    bulk = sender(gw, http, concurrency=2)
    async with bulk, anyio.create_task_group() as tg:

        async def call() -> None:
            results.append(await bulk.send(sent, "Hello", sender_id="ITONAB"))

        tg.start_soon(call)
        await until(lambda: gw.stats.in_flight == 2)
        await bulk.aclose(timeout=0.1)
    (result,) = results
    assert isinstance(result.aborted, SenderClosed)
    assert result.counts()[Outcome.UNKNOWN] == 200
    assert result.counts()[Outcome.UNSENT] == 800
    assert_accounted(result, sent, gw)


async def test_leaving_async_with_stops_sends_of_other_tasks(sms_gateway_factory):
    """A send running in another task when the sender's `async with` ends returns with SenderClosed."""
    gw = sms_gateway_factory(faults=[Fault("latency", rate=1.0, seconds=0.05)])
    sent = numbers(5000)
    results: list[BulkResult] = []
    async with anyio.create_task_group() as tg, sender(gw, concurrency=2) as bulk:

        async def call() -> None:
            results.append(await bulk.send(sent, "Hello", sender_id="ITONAB"))

        tg.start_soon(call)
        await until(lambda: gw.stats.requests["iton.sendSMS"] >= 2)
    await settled_gateway(gw)
    (result,) = results
    assert isinstance(result.aborted, SenderClosed)
    assert_accounted(result, sent, gw)


def test_timeout_on_trio_returns_the_partial_result(sms_gateway_factory):
    """On trio (httpx transport) a call's timeout ends it the same way, every number accounted for."""
    gw = sms_gateway_factory(faults=[Fault("latency", rate=1.0, seconds=0.05)])
    sent = numbers(3000)

    async def main() -> BulkResult:
        async with sender(gw, "auto", concurrency=2) as bulk:
            assert bulk.http_backend == "httpx"
            return await bulk.send(sent, "Hello", sender_id="ITONAB", timeout=0.2)

    result = anyio.run(main, backend="trio")
    assert isinstance(result.aborted, SendTimeout)
    assert result.counts()[Outcome.UNSENT] > 0
    assert_accounted(result, sent, gw)
