"""One send or stream call (sms_async/_fanout.py): totals, a stream left early, sends side by side."""

from __future__ import annotations

from collections import Counter

import anyio
import anyio.lowlevel
from engine_support import FakeGateway, assert_accounted, numbers, sender, sleep_forever

from sms_async import BatchResult, BulkResult, Outcome
from sms_async.instrumentation import BatchSettled


async def leave_stream_early() -> tuple[list[BatchResult], FakeGateway]:
    """Take one batch from a stream whose next requests never answer, close it; return what hooks saw."""
    settled: list[BatchResult] = []
    done = anyio.Event()

    class Hooks:
        def on_batch(self, record: BatchSettled) -> None:
            settled.append(record.result)
            if record.result.failed:
                done.set()

    gateway = FakeGateway([FakeGateway.success_fault()], always=sleep_forever)
    async with sender(gateway, concurrency=2, hooks=Hooks()) as bulk:
        batches = bulk.stream(numbers(200), "Hello", sender_id="ITONAB")
        async for _ in batches:
            break
        await batches.aclose()  # type: ignore[attr-defined]
        with anyio.fail_after(5):
            await done.wait()
    return settled, gateway


async def test_cancelled_in_flight_batch_is_unknown():
    """Leaving `stream()` while a request is in flight reports that batch to hooks as UNKNOWN."""
    settled, _ = await leave_stream_early()
    cut = [b for b in settled if b.failed]
    assert len(cut) == 1
    assert {f.outcome for f in cut[0].failed.values()} == {Outcome.UNKNOWN}


async def test_cancelled_stream_reports_every_number_to_hooks():
    """Leaving `stream()` early still reports every read number to hooks exactly once."""
    settled, gateway = await leave_stream_early()
    seen = Counter(n for b in settled for n in [*b.message_ids, *b.failed])
    assert set(seen) == set(numbers(200))
    assert set(seen.values()) == {1}
    assert gateway.sent == Counter(dict.fromkeys(numbers(200), 1))


async def test_stream_totals_add_up():
    """The BatchResults `stream()` yields add up to every input, duplicates and invalid ones included."""
    gateway = FakeGateway()
    inputs = [*numbers(250), *numbers(10), "garbage", "garbage", "12"]
    total = accepted = 0
    async with sender(gateway) as bulk:
        async for batch in bulk.stream(inputs, "Hello", sender_id="ITONAB"):
            assert isinstance(batch, BatchResult)
            total += batch.total
            accepted += len(batch.message_ids)
    assert total == len(inputs)
    assert accepted == 250
    assert gateway.sent == Counter(dict.fromkeys(numbers(250), 1))


async def test_two_concurrent_sends_get_their_own_results():
    """Two `send` calls running together on one sender each get exactly their own numbers back."""
    gateway = FakeGateway(delay=0.002)
    first, second = numbers(230, 0), numbers(170, 10_000)
    results: dict[str, BulkResult] = {}
    async with sender(gateway, concurrency=3) as bulk:

        async def run(name: str, recipients: list[str], text: str) -> None:
            results[name] = await bulk.send([*recipients, "bad"], text, sender_id="ITONAB")

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "first", first, "Hello")
            tg.start_soon(run, "second", second, "Hi there")
    assert set(results["first"].message_ids) == set(first)
    assert set(results["second"].message_ids) == set(second)
    assert set(results["first"].failed) == set(results["second"].failed) == {"bad"}
    assert_accounted(results["first"], 231)
    assert_accounted(results["second"], 171)
    assert gateway.sent == Counter(dict.fromkeys([*first, *second], 1))
