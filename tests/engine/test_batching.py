"""Batching and de-duplication (sms_async/_batching.py): chunks, spellings, invalid and odd inputs."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import anyio
import anyio.lowlevel
import pytest
from engine_support import FakeGateway, assert_accounted, itecpay, numbers, outcomes, send, sender
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sms_async import Outcome
from sms_async._batching import Batcher


@pytest.mark.parametrize(("count", "sizes"), [(1, [1]), (100, [100]), (101, [100, 1]), (250, [100, 100, 50])])
async def test_chunking(count, sizes):
    """Recipients go out in batches of at most 100: 101 as 100 + 1, 250 as 100 + 100 + 50."""
    gateway = FakeGateway()
    result = await send(gateway, numbers(count))
    assert sorted(gateway.batches, reverse=True) == sizes
    assert result.message_ids == {n: f"id-{n[1:]}" for n in numbers(count)}
    assert result.batches == len(sizes)
    assert result.requests == len(sizes)
    assert_accounted(result, count)


async def test_itecpay_chunking_and_ids():
    """ItecPay batches of 100 get each recipient its own id from the per-recipient list."""
    gateway = FakeGateway()
    result = await send(gateway, numbers(150), driver=itecpay())
    assert sorted(gateway.batches) == [50, 100]
    assert result.message_ids == {n: f"id-{n[1:]}" for n in numbers(150)}
    assert_accounted(result, 150)


async def test_duplicates_across_spellings_are_sent_once():
    """`+919812345678`, `098123 45678` and `9812345678` (region IN) are one number, sent once."""
    gateway = FakeGateway()
    result = await send(gateway, ["+919812345678", "098123 45678", "9812345678"])
    assert gateway.sent == Counter({"+919812345678": 1})
    assert result.message_ids == {"+919812345678": "id-919812345678"}
    assert result.duplicates == {"+919812345678": 2}
    assert result.failed == {}
    assert_accounted(result, 3)


async def test_invalid_inputs_fail_as_invalid_and_are_never_sent():
    """Inputs that are not numbers end INVALID with a reason naming them; a repeat counts as duplicate."""
    gateway = FakeGateway()
    inputs = ["hello", "+919812345678", "12", "+91 98123", "hello"]
    result = await send(gateway, inputs)
    assert gateway.sent == Counter({"+919812345678": 1})
    assert set(result.failed) == {"hello", "12", "+91 98123"}
    for raw, failure in result.failed.items():
        assert failure.outcome is Outcome.INVALID
        assert raw in failure.reason
    assert result.duplicates == {"hello": 1}
    assert_accounted(result, 5)


async def test_only_invalid_inputs_make_no_request():
    """A run with no valid number accounts for every input without a request."""
    gateway = FakeGateway()
    result = await send(gateway, ["nope", "", "0"])
    assert gateway.calls == 0
    assert outcomes(result) == Counter({Outcome.INVALID: 3})
    assert_accounted(result, 3)


async def test_empty_input():
    """An empty recipient list gives an empty result and no request."""
    gateway = FakeGateway()
    result = await send(gateway, [])
    assert gateway.calls == 0
    assert_accounted(result, 0)
    assert result.ok


@pytest.fixture
def made(monkeypatch) -> list[Batcher]:
    """Every batcher ``Batcher.for_text`` makes during the test, in order."""
    batchers: list[Batcher] = []
    for_text = Batcher.for_text.__func__

    def spy(cls, *args, **kwargs):
        batcher = for_text(cls, *args, **kwargs)
        batchers.append(batcher)
        return batcher

    monkeypatch.setattr(Batcher, "for_text", classmethod(spy))
    return batchers


async def test_stream_keeps_compact_keys_and_send_keeps_its_strings(made):
    """`stream()` de-duplicates in the compact key table from the first number, `send()` in a set."""
    gateway = FakeGateway()
    async with sender(gateway) as bulk:
        async for _ in bulk.stream([*numbers(150), *numbers(5)], "Hello", sender_id="ITONAB"):
            pass
        streamed = made[-1]
        await bulk.send(numbers(150, start=1000), "Hello", sender_id="ITONAB")
        sent = made[-1]
    assert streamed.distinct == 150
    assert streamed._seen._small is None
    assert sent._seen._small is not None
    assert gateway.sent == Counter(dict.fromkeys([*numbers(150), *numbers(150, start=1000)], 1))


async def test_a_stream_of_held_numbers_keeps_them_in_a_set_and_still_drops_repeats(made):
    """The cluster runner's stream (`_stream_held`) de-duplicates in the set, not the compact table."""
    gateway = FakeGateway()
    inputs = [*numbers(150), *numbers(5)]
    async with sender(gateway) as bulk:
        stream = bulk._stream_held(iter(inputs), "Hello", sender_id="ITONAB")
        results = [batch async for batch in stream]
    (held,) = made
    assert held.distinct == 150
    assert held._seen._small is not None
    assert sum(batch.total for batch in results) == len(inputs)
    counts = Counter(entry.outcome for batch in results for entry in batch.entries())
    assert counts == {Outcome.ACCEPTED: 150, Outcome.DUPLICATE: 5}
    assert gateway.sent == Counter(dict.fromkeys(numbers(150), 1))


async def test_generator_input():
    """A plain generator is read as recipients."""

    def generate() -> Iterator[str]:
        yield from numbers(230)
        yield "not a number"

    gateway = FakeGateway()
    result = await send(gateway, generate())
    assert len(result.message_ids) == 230
    assert_accounted(result, 231)


async def test_async_generator_input():
    """An async generator is read as recipients."""

    async def generate():
        for n in numbers(230):
            await anyio.lowlevel.checkpoint()
            yield n
        yield numbers(1)[0]

    gateway = FakeGateway()
    result = await send(gateway, generate())
    assert len(result.message_ids) == 230
    assert result.duplicates == {numbers(1)[0]: 1}
    assert_accounted(result, 231)


async def test_non_string_inputs_are_read_as_text():
    """Integers and None from a CSV reader are read through str(): a valid int is sent, None is invalid."""
    gateway = FakeGateway()
    result = await send(gateway, [919812345678, None])
    assert result.message_ids == {"+919812345678": "id-919812345678"}
    assert result.failed["None"].outcome is Outcome.INVALID
    assert_accounted(result, 2)


# Each valid number in several spellings (region IN), and inputs that are never valid.
NATIONAL = [f"98{i:08d}" for i in range(0, 400, 7)]


VALID = {
    f"+91{n}": [f"+91{n}", f"0{n}", n, f"91{n}", f"+91 {n[:5]} {n[5:]}", f"0{n[:5]}-{n[5:]}"]
    for n in NATIONAL
}


INVALID = ["", "abc", "12", "+1", "+91 12", "0000000000", "+999999999999", "tel:nope", "98123"]


SPELLINGS = [(e164, spelling) for e164, spellings in VALID.items() for spelling in spellings] + [
    (None, bad) for bad in INVALID
]


@given(st.lists(st.sampled_from(SPELLINGS), max_size=260))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_input_is_accounted_for(picks):
    """Any mix of valid, invalid and repeated inputs is all accounted for, each number sent once."""
    gateway = FakeGateway()
    inputs = [spelling for _, spelling in picks]
    result = asyncio.run(send(gateway, inputs, concurrency=3))
    distinct = {e164 for e164, _ in picks if e164 is not None}
    assert_accounted(result, len(inputs))
    assert gateway.sent == Counter(dict.fromkeys(distinct, 1))
    assert set(result.message_ids) == distinct
    assert {key for key, f in result.failed.items() if f.outcome is Outcome.INVALID} == {
        s for e164, s in picks if e164 is None
    }
    assert sum(result.duplicates.values()) == len(inputs) - len(distinct) - len(result.failed)
