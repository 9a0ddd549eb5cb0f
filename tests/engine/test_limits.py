"""The concurrency gate (sms_async/_limits.py): requests in flight bounded, used, and shared between sends."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest
from engine_support import FakeGateway, assert_accounted, numbers, send, sender


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_concurrency_bound(concurrency):
    """No more than `concurrency` requests are ever in progress at once."""
    gateway = FakeGateway(delay=0.005)
    result = await send(gateway, numbers(1000), concurrency=concurrency)
    assert gateway.max_active <= concurrency
    assert gateway.calls == 10
    assert_accounted(result, 1000)


async def test_concurrency_is_used():
    """With room for several requests the sender does run them side by side."""
    gateway = FakeGateway(delay=0.02)
    await send(gateway, numbers(1000), concurrency=4)
    assert gateway.max_active > 1


async def test_concurrency_is_shared_by_concurrent_sends():
    """Two sends on one sender together stay within its `concurrency`."""
    gateway = FakeGateway(delay=0.005)
    async with sender(gateway, concurrency=3) as bulk, anyio.create_task_group() as tg:
        for start in (0, 5000):
            tg.start_soon(lambda s=start: bulk.send(numbers(600, s), "Hello", sender_id="ITONAB"))
    assert gateway.max_active <= 3
    assert gateway.calls == 12
