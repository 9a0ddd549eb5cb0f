"""Rate limits: the meter's arithmetic on a fake clock, and how the engine charges it."""

from __future__ import annotations

import anyio
import httpx
import pytest

from sms_async import BulkSender, ConfigurationError, Iton
from sms_async._limits import RateMeter


class FakeClock:
    """A clock that only moves when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        """The fake time now."""
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Move the fake time on, and remember the wait."""
        self.slept.append(seconds)
        self.now += seconds


async def test_meter_spaces_units_evenly():
    """At 10 units a second, five single units wait 0, then 0.1 s each."""
    clock = FakeClock()
    meter = RateMeter(10, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        await meter.acquire()
    assert clock.slept == pytest.approx([0.1, 0.1, 0.1, 0.1])


async def test_meter_charges_by_cost():
    """A batch of 100 at 100 a second holds the next caller back one second."""
    clock = FakeClock()
    meter = RateMeter(100, clock=clock, sleep=clock.sleep)
    await meter.acquire(100)
    await meter.acquire(50)
    await meter.acquire(1)
    assert clock.slept == pytest.approx([1.0, 0.5])


async def test_meter_does_not_bank_idle_time():
    """Time spent idle is not saved up for a burst later."""
    clock = FakeClock()
    meter = RateMeter(10, clock=clock, sleep=clock.sleep)
    await meter.acquire()
    clock.now += 60
    await meter.acquire()
    await meter.acquire()
    assert clock.slept == pytest.approx([0.1])


@pytest.mark.parametrize("rate", [0, -1, float("inf"), float("nan")])
def test_meter_refuses_nonsense_rates(rate):
    """A rate that is not a positive finite number is a configuration error."""
    with pytest.raises(ConfigurationError, match="rate limit"):
        RateMeter(rate)


def _ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, text="Success Your MessageId is 532073f7e4b05199d2c3d812")


class CountingMeter(RateMeter):
    """A meter that remembers what it was charged."""

    def __init__(self, per_second: float) -> None:
        super().__init__(per_second)
        self.charged: list[int] = []

    async def acquire(self, cost: int = 1) -> None:
        """Record the charge, then wait as a meter does."""
        self.charged.append(cost)
        await super().acquire(cost)


async def test_message_and_request_limits_are_charged_per_batch():
    """messages_per_second is charged the batch's size and requests_per_second one per request."""
    numbers = [f"+9198{i:08d}" for i in range(250)]
    messages, requests = CountingMeter(1_000_000), CountingMeter(1_000_000)
    bulk = BulkSender(
        Iton(username="user", password="pass-word", base_url="http://127.0.0.1:9/api/"),
        transport=httpx.MockTransport(_ok),
        messages_per_second=messages,
        requests_per_second=requests,
    )
    async with bulk:
        result = await bulk.send(numbers, "Hi", sender_id="ITONAB")
    assert len(result.message_ids) == 250
    assert sorted(messages.charged) == [50, 100, 100]
    assert requests.charged == [1, 1, 1]


async def test_one_meter_is_shared_by_concurrent_sends():
    """Two sends on one sender draw on the same message meter."""
    meter = CountingMeter(1_000_000)
    bulk = BulkSender(
        Iton(username="user", password="pass-word", base_url="http://127.0.0.1:9/api/"),
        transport=httpx.MockTransport(_ok),
        messages_per_second=meter,
    )

    async def send(start: int) -> None:
        await bulk.send([f"+9198{i:08d}" for i in range(start, start + 150)], "Hi", sender_id="ITONAB")

    async with bulk, anyio.create_task_group() as tg:
        tg.start_soon(send, 0)
        tg.start_soon(send, 1000)
    assert sorted(meter.charged) == [50, 50, 100, 100]
