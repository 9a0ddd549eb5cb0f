"""Network faults over real loopback sockets: refused, stalled, dropped, 5xx, slow, dead, idle, cancelled."""

from __future__ import annotations

import gc
import warnings

import anyio
import pytest
from hostile_support import (
    GATEWAYS,
    SEND_OP,
    TIMEOUTS,
    TRANSPORTS,
    PlainTextOnly,
    RawServer,
    accept_all,
    assert_accounted,
    assert_no_double_send,
    numbers,
    on_wire,
    policy,
    sender,
    with_outcome,
)
from loopback import full_backlog

from sms_async import BatchResult, BulkSender, ItecPay, Iton, MaybeSentError, Outcome, Timeouts
from sms_async.instrumentation import BatchSettled
from sms_async.testing import Fault

pytestmark = [pytest.mark.hostile, pytest.mark.timeout(15)]

both_transports = pytest.mark.parametrize("http", TRANSPORTS)
both_gateways = pytest.mark.parametrize("gateway", GATEWAYS)


@both_transports
@both_gateways
async def test_connection_refused_then_listening_is_retried_and_accepted(sms_gateway_factory, http, gateway):
    """A gateway that refuses connections and then comes back gets every number exactly once."""
    gw = sms_gateway_factory()
    gw.stop_listening()
    recipients = numbers(250)
    # Many small, jittered waits: the retries cannot run out before the port reopens.
    retry = policy(attempts=50, initial_wait=0.01, max_wait=0.05)

    async def reopen() -> None:
        await anyio.sleep(0.05)
        await anyio.to_thread.run_sync(gw.start_listening)

    async with sender(gw, gateway, http, retry=retry) as bulk, anyio.create_task_group() as tg:
        tg.start_soon(reopen)
        result = await bulk.send(recipients, "Hello", sender_id="ITONAB")
    assert_accounted(result, 250)
    assert set(result.message_ids) == set(recipients)
    assert result.retries >= 1  # the refusals were seen and retried
    stats = gw.stats
    assert stats.requests[SEND_OP[gateway]] == 3  # refused connections never reached it
    assert all(stats.numbers[on_wire(gateway, n)] == 1 for n in recipients)
    assert_no_double_send(gw)


@both_transports
@both_gateways
async def test_stalled_request_times_out_as_unknown_and_is_not_resent(sms_gateway_factory, http, gateway):
    """A request the gateway reads and never answers ends unknown after the read timeout, sent once."""
    gw = sms_gateway_factory(faults=[Fault("stall", on_requests={2}, operations=SEND_OP[gateway])])
    recipients = numbers(300)
    async with sender(gw, gateway, http, concurrency=1) as bulk:
        result = await bulk.send(recipients, "Hello", sender_id="ITONAB")
    assert_accounted(result, 300)
    unknown = with_outcome(result, Outcome.UNKNOWN)
    assert unknown == set(recipients[100:200])
    errors = {type(result.failed[n].error).__name__ for n in unknown}
    assert errors == {"ReadTimeout"}
    assert all(isinstance(result.failed[n].error, MaybeSentError) for n in unknown)
    assert set(result.message_ids) == set(recipients[:100] + recipients[200:])
    assert gw.stats.requests[SEND_OP[gateway]] == 3
    assert result.requests == 3
    assert_no_double_send(gw)


@both_transports
@both_gateways
@pytest.mark.parametrize("connection", ["fresh", "reused"])
@pytest.mark.parametrize("process", [True, False], ids=["processed", "not-processed"])
async def test_connection_dropped_after_the_request_is_unknown_and_never_resent(
    sms_gateway_factory, http, gateway, connection, process
):
    """A connection closed after the gateway read the request ends unknown; no transport re-sends it."""
    # Request 2 travels on the keep-alive connection request 1 used: the case
    # where a client library (aiohttp) silently sends a GET again.
    on = {1} if connection == "fresh" else {2}
    fault = Fault("drop_after_read", on_requests=on, operations=SEND_OP[gateway], process=process)
    gw = sms_gateway_factory(faults=[fault])
    recipients = numbers(300)
    async with sender(gw, gateway, http, concurrency=1) as bulk:
        result = await bulk.send(recipients, "Hello", sender_id="ITONAB")
    assert_accounted(result, 300)
    dropped = recipients[:100] if connection == "fresh" else recipients[100:200]
    assert with_outcome(result, Outcome.UNKNOWN) == set(dropped)
    assert all(isinstance(result.failed[n].error, MaybeSentError) for n in dropped)
    assert set(result.message_ids) == set(recipients) - set(dropped)
    stats = gw.stats
    assert stats.requests[SEND_OP[gateway]] == 3  # one request per batch: nothing re-sent
    assert result.requests == 3
    assert result.retries == 0
    expected = 1 if process else 0
    assert all(stats.numbers[on_wire(gateway, n)] == expected for n in dropped)
    assert_no_double_send(gw)


async def test_drop_after_read_would_catch_a_transport_that_resends(sms_gateway_factory):
    """Control: aiohttp re-sends an ITON GET on a dropped keep-alive connection, and the counters show it."""
    aiohttp = pytest.importorskip("aiohttp")
    gw = sms_gateway_factory(faults=[Fault("drop_after_read", on_requests={2}, operations="iton.sendSMS")])
    base = f"{gw.iton_url}?username={gw.username}&password={gw.password}&cmd=sendSMS&sender=ITONAB&message=Hi"
    async with aiohttp.ClientSession() as session:
        for batch in ("919800000001", "919800000002"):
            try:
                async with session.get(f"{base}&to={batch}") as response:
                    await response.read()
            except aiohttp.ClientError:
                pass
    stats = gw.stats
    # Two calls, three requests: the second was sent twice behind the caller's back.
    assert stats.requests["iton.sendSMS"] == 3
    assert stats.duplicate_numbers() == {"919800000002": 2}


@both_transports
@both_gateways
@pytest.mark.parametrize("status", [500, 502, 504])
async def test_server_errors_are_unknown_and_not_resent(sms_gateway_factory, http, gateway, status):
    """A 500, 502 or 504 (after the gateway processed the batch) ends unknown and is never sent again."""
    gw = sms_gateway_factory(faults=[Fault(f"status_{status}", on_requests={1}, operations=SEND_OP[gateway])])
    recipients = numbers(250)
    async with sender(gw, gateway, http, concurrency=1) as bulk:
        result = await bulk.send(recipients, "Hello", sender_id="ITONAB")
    assert_accounted(result, 250)
    assert with_outcome(result, Outcome.UNKNOWN) == set(recipients[:100])
    assert {result.failed[n].error.status_code for n in recipients[:100]} == {status}
    assert set(result.message_ids) == set(recipients[100:])
    assert gw.stats.requests[SEND_OP[gateway]] == 3
    assert result.retries == 0
    assert all(gw.stats.numbers[on_wire(gateway, n)] == 1 for n in recipients)
    assert_no_double_send(gw)


@both_transports
@both_gateways
async def test_slow_drip_answer_hits_the_batch_deadline_and_is_unknown(sms_gateway_factory, http, gateway):
    """An answer trickling in a byte at a time is cut off by the per-batch deadline: unknown, sent once."""
    # Each byte arrives well within the read timeout, so only the deadline can stop it.
    fault = Fault("slow_drip", on_requests={1}, operations=SEND_OP[gateway], seconds=0.05)
    gw = sms_gateway_factory(faults=[fault])
    recipients = numbers(150)
    async with sender(gw, gateway, http, concurrency=1, retry=policy(deadline=0.3)) as bulk:
        result = await bulk.send(recipients, "Hello", sender_id="ITONAB")
    assert_accounted(result, 150)
    assert with_outcome(result, Outcome.UNKNOWN) == set(recipients[:100])
    assert {type(result.failed[n].error).__name__ for n in recipients[:100]} == {"DeadlineExceeded"}
    assert set(result.message_ids) == set(recipients[100:])
    assert gw.stats.requests[SEND_OP[gateway]] == 2
    assert_no_double_send(gw)


@both_transports
@both_gateways
async def test_gateway_down_for_good_stays_within_the_retry_budget(sms_gateway_factory, http, gateway):
    """A port that never opens costs at most batches + budget_min + budget_ratio x batches attempts."""
    gw = sms_gateway_factory()
    gw.stop_listening()
    batches = 20
    retry = policy(attempts=10, initial_wait=0.001, max_wait=0.002, budget_min=3, budget_ratio=0.25)
    async with sender(gw, gateway, http, retry=retry) as bulk:
        result = await bulk.send(numbers(batches * 100), "Hello", sender_id="ITONAB")
    assert_accounted(result, batches * 100)
    assert with_outcome(result, Outcome.UNSENT) == set(result.failed)
    assert len(result.failed) == batches * 100
    budget = 3 + 0.25 * batches
    assert result.retries <= budget
    assert result.requests <= batches + budget  # not attempts x batches = 200
    assert sum(gw.stats.requests.values()) == 0
    assert_no_double_send(gw)


@both_transports
@both_gateways
async def test_gateway_busy_for_good_stays_within_the_retry_budget(sms_gateway_factory, http, gateway):
    """A gateway answering 503 to everything receives at most batches + budget requests; all unsent."""
    gw = sms_gateway_factory(faults=[Fault("status_503", rate=1.0)])
    batches = 20
    retry = policy(attempts=10, initial_wait=0.001, max_wait=0.002, budget_min=3, budget_ratio=0.25)
    async with sender(gw, gateway, http, retry=retry) as bulk:
        result = await bulk.send(numbers(batches * 100), "Hello", sender_id="ITONAB")
    assert_accounted(result, batches * 100)
    assert len(with_outcome(result, Outcome.UNSENT)) == batches * 100
    budget = 3 + 0.25 * batches
    assert gw.stats.requests[SEND_OP[gateway]] <= batches + budget
    assert gw.stats.requests[SEND_OP[gateway]] == result.requests
    assert not gw.stats.numbers
    assert_no_double_send(gw)


@both_transports
@both_gateways
async def test_idle_connections_closed_by_the_gateway_are_never_reused(sms_gateway_factory, http, gateway):
    """Bursts separated by pauses longer than the gateway's idle timeout never turn a send unknown."""
    gw = sms_gateway_factory(idle_timeout=0.05)
    results = []
    async with sender(gw, gateway, http, concurrency=3) as bulk:
        for burst in range(4):
            if burst:
                await anyio.sleep(0.2)  # every pooled connection is closed by now
            results.append(await bulk.send(numbers(300, burst * 300), "Hello", sender_id="ITONAB"))
    for result in results:
        assert_accounted(result, 300)
        assert not result.failed
    stats = gw.stats
    assert stats.connections_opened >= 4  # the gateway really did close the idle ones
    assert stats.requests[SEND_OP[gateway]] == 12
    assert_no_double_send(gw)


class Collect:
    """Hooks that keep every settled batch."""

    def __init__(self) -> None:
        self.batches: list[BatchResult] = []

    def on_batch(self, record: BatchSettled) -> None:
        """Keep the batch."""
        self.batches.append(record.result)


async def cancelled_run(gw, gateway: str, http: str, hooks: Collect) -> None:
    async with sender(gw, gateway, http, concurrency=4, hooks=hooks) as bulk:
        with anyio.move_on_after(0.3) as scope:
            await bulk.send(numbers(2000), "Hello", sender_id="ITONAB")
        assert scope.cancelled_caught


def check_cancelled_run(gw, gateway: str, hooks: Collect) -> None:
    seen: dict[str, Outcome] = {}
    for batch in hooks.batches:
        assert batch.total == len(batch.message_ids) + len(batch.failed) + sum(batch.duplicates.values())
        for number in batch.message_ids:
            assert number not in seen
            seen[number] = Outcome.ACCEPTED
        for number, failure in batch.failed.items():
            assert number not in seen
            seen[number] = failure.outcome
    assert len({b.index for b in hooks.batches}) == len(hooks.batches)  # each batch reported once
    stats = gw.stats
    reached = {n for n in numbers(2000) if stats.numbers[on_wire(gateway, n)]}
    assert reached  # some batches did reach the gateway
    # Every number the gateway processed is reported, as accepted or unknown, never unsent or missing.
    assert {seen.get(n) for n in reached} <= {Outcome.ACCEPTED, Outcome.UNKNOWN}
    assert Outcome.UNKNOWN in set(seen.values())  # some batches were in flight when it stopped
    assert not {n for n, o in seen.items() if o is Outcome.UNSENT} & reached
    assert stats.requests[SEND_OP[gateway]] <= sum(b.requests for b in hooks.batches)
    assert not stats.duplicate_numbers()


@both_transports
@both_gateways
async def test_cancelled_run_reports_in_flight_batches_as_unknown(sms_gateway_factory, http, gateway):
    """Cancelling a run mid-flight reports every batch that reached the gateway, as accepted or unknown."""
    gw = sms_gateway_factory(faults=[Fault("latency", rate=1.0, seconds=(0.05, 0.5))], seed=7)
    hooks = Collect()
    await cancelled_run(gw, gateway, http, hooks)
    await anyio.sleep(0.6)  # let the gateway finish (and count) what it was still processing
    check_cancelled_run(gw, gateway, hooks)


def cancel_on_trio(gw, hooks: Collect) -> list[warnings.WarningMessage]:
    """Run and cancel a send on trio; return the warnings raised, garbage collection included."""

    async def main() -> None:
        await cancelled_run(gw, "iton", "auto", hooks)
        await anyio.sleep(0.6)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        anyio.run(main, backend="trio")
        gc.collect()
    return caught


def test_cancelled_run_on_trio_reports_in_flight_batches_as_unknown(sms_gateway_factory):
    """The same cancellation guarantee holds on trio (httpx transport)."""
    gw = sms_gateway_factory(faults=[Fault("latency", rate=1.0, seconds=(0.05, 0.5))], seed=7)
    hooks = Collect()
    cancel_on_trio(gw, hooks)  # its warnings are the next test's business
    check_cancelled_run(gw, "iton", hooks)


def test_cancelled_run_on_trio_leaves_no_async_generator_to_the_garbage_collector(sms_gateway_factory):
    """A cancelled run closes its own async generators instead of leaving them to the garbage collector."""
    gw = sms_gateway_factory(faults=[Fault("latency", rate=1.0, seconds=(0.05, 0.5))], seed=7)
    caught = cancel_on_trio(gw, Collect())
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaks


def test_dropped_connection_on_trio_is_unknown_and_never_resent(sms_gateway_factory):
    """On trio, an ITON GET whose keep-alive connection drops after the read is unknown and sent once."""
    gw = sms_gateway_factory(faults=[Fault("drop_after_read", on_requests={2}, operations="iton.sendSMS")])
    recipients = numbers(300)

    async def main():
        async with sender(gw, "iton", "auto", concurrency=1) as bulk:
            assert bulk.http_backend == "httpx"
            return await bulk.send(recipients, "Hello", sender_id="ITONAB")

    result = anyio.run(main, backend="trio")
    assert_accounted(result, 300)
    assert with_outcome(result, Outcome.UNKNOWN) == set(recipients[100:200])
    assert gw.stats.requests["iton.sendSMS"] == 3
    assert_no_double_send(gw)


def test_stall_on_trio_is_unknown_and_never_resent(sms_gateway_factory):
    """On trio, a stalled ItecPay POST times out as unknown and is sent once."""
    gw = sms_gateway_factory(faults=[Fault("stall", on_requests={1}, operations="itecpay.send")])
    recipients = numbers(200)

    async def main():
        async with sender(gw, "itecpay", "auto", concurrency=1, timeouts=Timeouts(read=0.3)) as bulk:
            return await bulk.send(recipients, "Hello", sender_id="ITONAB")

    result = anyio.run(main, backend="trio")
    assert_accounted(result, 200)
    assert with_outcome(result, Outcome.UNKNOWN) == set(recipients[:100])
    assert gw.stats.requests["itecpay.send"] == 2
    assert_no_double_send(gw)


def raw_driver(gateway: str, origin: str) -> Iton | ItecPay:
    if gateway == "iton":
        return Iton("user", "pass-word-1", base_url=origin + "/api/")
    return ItecPay("user", "pass-word-1", base_url=origin)


@both_transports
@both_gateways
async def test_connect_timeouts_then_accepting_are_retried_and_accepted(http, gateway):
    """Connections that time out (a full accept queue) are retried until the gateway accepts; sent once."""
    retry = policy(attempts=40, initial_wait=0.01, max_wait=0.05)
    with full_backlog() as listener, RawServer(accept_all, listener=listener, autostart=False) as server:

        async def accept_later() -> None:
            await anyio.sleep(0.3)
            server.start()

        driver = raw_driver(gateway, server.origin)
        timeouts = Timeouts(connect=0.1, read=2.0)
        bulk = BulkSender(driver, http=http, retry=retry, timeouts=timeouts)
        async with bulk, anyio.create_task_group() as tg:
            tg.start_soon(accept_later)
            result = await bulk.send(numbers(150), "Hello", sender_id="ITONAB")
        requests = list(server.requests)
    assert_accounted(result, 150)
    assert set(result.message_ids) == set(numbers(150))
    assert result.retries >= 1
    assert len(requests) == 2  # one per batch: the timed-out connections carried nothing


@both_transports
@both_gateways
async def test_connect_timeouts_for_good_end_unsent(http, gateway):
    """Connections that always time out leave every number unsent (never unknown); nothing is sent."""
    with full_backlog() as listener, RawServer(accept_all, listener=listener, autostart=False) as server:
        driver = raw_driver(gateway, server.origin)
        timeouts = Timeouts(connect=0.1, read=2.0)
        async with BulkSender(driver, http=http, retry=policy(attempts=3), timeouts=timeouts) as bulk:
            result = await bulk.send(numbers(150), "Hello", sender_id="ITONAB")
    assert_accounted(result, 150)
    assert with_outcome(result, Outcome.UNSENT) == set(numbers(150))
    assert {type(f.error).__name__ for f in result.failed.values()} == {"ConnectTimeout"}
    assert result.requests == 2 * 3  # every batch tried `attempts` times: safe to retry
    assert server.requests == []


@both_transports
@both_gateways
async def test_tls_handshake_failure_is_retried_then_unsent(http, gateway):
    """https:// to a server that cannot do TLS: each try fails in the handshake, is retried, ends unsent."""
    with PlainTextOnly() as server:
        driver = raw_driver(gateway, f"https://127.0.0.1:{server.port}")
        async with BulkSender(driver, http=http, retry=policy(attempts=3), timeouts=TIMEOUTS) as bulk:
            result = await bulk.send(numbers(3), "Hello", sender_id="ITONAB")
        first_bytes = list(server.first_bytes)
    assert_accounted(result, 3)
    assert with_outcome(result, Outcome.UNSENT) == set(numbers(3))
    assert {type(f.error).__name__ for f in result.failed.values()} <= {"ConnectError", "ConnectTimeout"}
    assert result.requests == 3
    assert len(first_bytes) == 3
    # Only TLS handshakes arrived (a record starting 0x16), never the request with the password.
    assert all(data[:1] == b"\x16" for data in first_bytes)
    assert not any(b"pass-word-1" in data or b"HTTP/1.1" in data for data in first_bytes)


@both_transports
@both_gateways
async def test_stream_left_early_reports_every_batch_that_reached_the_gateway(
    sms_gateway_factory, http, gateway
):
    """Leaving stream() after one batch stops the run; every batch the gateway got is reported to hooks."""
    gw = sms_gateway_factory(faults=[Fault("latency", rate=1.0, seconds=(0.05, 0.4))], seed=3)
    hooks = Collect()
    async with sender(gw, gateway, http, concurrency=4, hooks=hooks) as bulk:
        async for batch in bulk.stream(numbers(2000), "Hello", sender_id="ITONAB"):
            assert batch.message_ids
            break
    await anyio.sleep(0.5)  # let the gateway finish (and count) what it was still processing
    check_cancelled_run(gw, gateway, hooks)


@both_transports
@both_gateways
async def test_pooled_connections_expire_before_the_gateway_drops_them(sms_gateway_factory, http, gateway):
    """With keepalive_expiry under the idle timeout of the gateway, no send ever meets a dead connection."""
    gw = sms_gateway_factory(idle_timeout=0.1)
    timeouts = Timeouts(connect=2.0, read=2.0, keepalive_expiry=0.01)
    results = []
    async with sender(gw, gateway, http, concurrency=2, timeouts=timeouts) as bulk:
        # Gaps on both sides of the gateway's idle timeout, and of the client's expiry.
        for burst, gap in enumerate([0.0, 0.005, 0.05, 0.09, 0.1, 0.11, 0.13, 0.02, 0.1, 0.0]):
            await anyio.sleep(gap)
            results.append(await bulk.send(numbers(200, burst * 200), "Hello", sender_id="ITONAB"))
    for result in results:
        assert_accounted(result, 200)
        assert not result.failed
    assert_no_double_send(gw)
