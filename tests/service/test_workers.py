"""Workers per call: as many as the call's batches can keep busy, up to the sender's concurrency."""

from __future__ import annotations

import pytest
from service_support import assert_accounted, numbers, sender

from sms_async import _fanout
from sms_async.testing import Fault


@pytest.fixture
def started_workers(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the worker tasks each call starts."""
    started: list[int] = []
    work = _fanout._work

    async def counted(*args: object) -> None:
        started.append(1)
        await work(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(_fanout, "_work", counted)
    return started


@pytest.mark.parametrize("http", ["fast", "httpx"])
async def test_a_one_number_send_starts_one_worker_whatever_the_concurrency(
    sms_gateway, started_workers, http
):
    """A 1-number send on a sender of concurrency 256 starts one worker task, not 256."""
    async with sender(sms_gateway, http, concurrency=256) as bulk:
        result = await bulk.send(numbers(1), "Hello", sender_id="ITONAB")
    assert len(started_workers) == 1
    assert result.ok
    assert_accounted(result, numbers(1), sms_gateway)


async def test_a_three_batch_send_starts_at_most_three_workers(sms_gateway, started_workers):
    """A send of three batches never starts more workers than it has batches."""
    async with sender(sms_gateway, concurrency=64) as bulk:
        result = await bulk.send(numbers(250), "Hello", sender_id="ITONAB")
    assert 1 <= len(started_workers) <= 3
    assert_accounted(result, numbers(250), sms_gateway)


async def test_a_campaign_still_reaches_the_full_concurrency(sms_gateway_factory, started_workers):
    """A send of many slow batches has `concurrency` requests in flight at once."""
    gw = sms_gateway_factory(faults=[Fault("latency", rate=1.0, seconds=0.05)])
    async with sender(gw, concurrency=8) as bulk:
        result = await bulk.send(numbers(3000), "Hello", sender_id="ITONAB")
    assert len(started_workers) == 8
    assert gw.stats.max_in_flight == 8
    assert result.ok
    assert_accounted(result, numbers(3000), gw)
