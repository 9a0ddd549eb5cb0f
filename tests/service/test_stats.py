"""``bulk.stats()``: what a sender is doing now, read without waiting."""

from __future__ import annotations

import anyio
import attrs
import httpx
import pytest
from service_support import TRANSPORTS, assert_accounted, numbers, sender

from sms_async import BulkResult, BulkSender, Iton, Outcome, RetryPolicy, SenderStats
from sms_async.testing import Fault


async def until(condition: object) -> None:
    """Poll ``condition()`` until it holds (a wait for the gateway's thread, not a time limit)."""
    with anyio.fail_after(20):
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110 - another thread's state
            await anyio.sleep(0.005)


async def test_stats_of_a_sender_not_open_are_empty(sms_gateway):
    """Before `async with`, a sender is not open and holds nothing."""
    stats = sender(sms_gateway, concurrency=8).stats()
    assert stats == SenderStats(
        open=False,
        closing=False,
        concurrency=8,
        slots_in_use=0,
        calls_running=0,
        requests_in_flight=0,
        connections_open=0,
        connections_idle=0,
        pause_remaining=0.0,
    )
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        stats.calls_running = 1  # type: ignore[misc]


@pytest.mark.parametrize("http", TRANSPORTS)
async def test_stats_while_a_send_runs_and_after(sms_gateway_factory, http):
    """During a send, slots, calls, requests and connections in use show; after it, all are idle."""
    gw = sms_gateway_factory(faults=[Fault("latency", rate=1.0, seconds=0.2)])
    sent = numbers(1000)
    results: list[BulkResult] = []
    async with sender(gw, http, concurrency=4) as bulk:
        async with anyio.create_task_group() as tg:

            async def call() -> None:
                results.append(await bulk.send(sent, "Hello", sender_id="ITONAB"))

            tg.start_soon(call)
            await until(lambda: gw.stats.in_flight == 4)
            during = bulk.stats()
        after = bulk.stats()
    closed = bulk.stats()
    assert (during.open, during.slots_in_use, during.calls_running, during.requests_in_flight) == (
        True,
        4,
        1,
        4,
    )
    assert (after.slots_in_use, after.calls_running, after.requests_in_flight) == (0, 0, 0)
    assert (closed.open, closed.calls_running) == (False, 0)
    # The fast transport counts its own pool; httpx's, httpcore's pool in the client the sender made.
    assert (during.connections_open, during.connections_idle) == (4, 0)
    assert (after.connections_open, after.connections_idle) == (4, 4)
    assert (closed.connections_open, closed.connections_idle) == (0, 0)
    assert_accounted(results[0], sent, gw)


async def during_and_after(gw, bulk: BulkSender, sent: list[str]) -> tuple[SenderStats, SenderStats]:
    """``bulk.stats()`` while 4 requests of a send of ``sent`` are at the gateway, and after the send."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: bulk.send(sent, "Hello", sender_id="ITONAB"))
        await until(lambda: gw.stats.in_flight == 4)
        during = bulk.stats()
    return during, bulk.stats()


def test_stats_on_trio_count_the_httpx_pool(sms_gateway_factory):
    """On trio (httpx, in a client the sender made) the connections are counted the same way."""
    gw = sms_gateway_factory(faults=[Fault("latency", rate=1.0, seconds=0.2)])

    async def main() -> tuple[SenderStats, SenderStats]:
        async with sender(gw, "auto", concurrency=4) as bulk:
            assert bulk.http_backend == "httpx"
            return await during_and_after(gw, bulk, numbers(1000))

    during, after = anyio.run(main, backend="trio")
    assert (during.connections_open, during.connections_idle) == (4, 0)
    assert (after.connections_open, after.connections_idle) == (4, 4)


async def test_stats_count_the_pool_of_an_httpx_transport_passed_in(sms_gateway_factory):
    """An ``httpx.AsyncHTTPTransport`` passed as ``transport=`` goes in a client the sender owns: counted."""
    gw = sms_gateway_factory(faults=[Fault("latency", rate=1.0, seconds=0.2)])
    transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=4))
    async with sender(gw, concurrency=4, http="httpx", transport=transport) as bulk:
        during, after = await during_and_after(gw, bulk, numbers(1000))
    assert (during.connections_open, during.connections_idle) == (4, 0)
    assert (after.connections_open, after.connections_idle) == (4, 4)


async def test_stats_do_not_count_a_client_passed_in(sms_gateway_factory):
    """A caller's ``client=`` shares its pool with the caller's other requests: connections not known."""
    gw = sms_gateway_factory(faults=[Fault("latency", rate=1.0, seconds=0.2)])
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=4), trust_env=False) as client:
        bulk = BulkSender(
            Iton(gw.username, gw.password, base_url=gw.iton_url),
            concurrency=4,
            client=client,
            retry=RetryPolicy(initial_wait=0.001, max_wait=0.01),
        )
        async with bulk:
            during, after = await during_and_after(gw, bulk, numbers(1000))
    assert (during.slots_in_use, during.requests_in_flight) == (4, 4)
    assert (during.connections_open, during.connections_idle) == (None, None)
    assert (after.connections_open, after.connections_idle) == (None, None)


async def test_stats_through_a_mock_transport_do_not_count_connections(sms_gateway):
    """A transport that is not httpcore's has no pool to read: the connections are not known."""
    transport = httpx.MockTransport(lambda _: httpx.Response(500))
    async with sender(sms_gateway, http="httpx", transport=transport) as bulk:
        stats = bulk.stats()
    assert (stats.open, stats.connections_open, stats.connections_idle) == (True, None, None)


async def test_stats_show_the_pause_a_429_imposed(sms_gateway_factory):
    """After a 429 with Retry-After, `pause_remaining` shows the seconds left of the pause."""
    gw = sms_gateway_factory(faults=[Fault("status_429", on_requests={1}, retry_after=30)])
    holder = BulkResult()
    async with sender(gw) as bulk, anyio.create_task_group() as tg:
        tg.start_soon(lambda: bulk.send(numbers(1), "Hello", sender_id="ITONAB", into=holder))
        await until(lambda: (bulk.stats().pause_remaining or 0.0) > 0)
        remaining = bulk.stats().pause_remaining
        tg.cancel_scope.cancel()
    assert remaining is not None
    assert 0 < remaining <= 30
    # Cancelled while it waited out the pause: nothing on the wire, so unsent.
    assert holder.by_outcome(Outcome.UNSENT) == numbers(1)
    assert_accounted(holder, numbers(1), gw)
