"""The retry policy (sms_async/_retry.py): safe faults retried, opting in, attempts, budget, deadline."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
from engine_support import (
    FakeGateway,
    assert_accounted,
    numbers,
    outcomes,
    raise_,
    respond,
    send,
    sleep_forever,
)

from sms_async import Outcome, RetryPolicy


@pytest.mark.parametrize(
    "fault",
    [
        raise_(httpx.ConnectError),
        raise_(httpx.ConnectTimeout),
        raise_(httpx.PoolTimeout),
        respond(429, "slow down", {"Retry-After": "0.01"}),
        respond(503, "busy", {"Retry-After": "0.01"}),
        respond(503, "busy"),
    ],
    ids=["connect-error", "connect-timeout", "pool-timeout", "429", "503-retry-after", "503"],
)
async def test_safe_faults_are_retried_then_accepted(fault):
    """A fault that means "never processed" is retried, and the retry is accepted."""
    gateway = FakeGateway([fault])
    result = await send(gateway, numbers(3))
    assert gateway.calls == 2
    assert result.message_ids == {n: f"id-{n[1:]}" for n in numbers(3)}
    assert result.requests == 2
    assert result.retries == 1
    assert result.ok
    assert_accounted(result, 3)


@pytest.mark.parametrize(
    "fault",
    [
        raise_(httpx.ReadTimeout),
        raise_(httpx.RemoteProtocolError),
        respond(500),
        respond(200, "<html></html>"),
    ],
    ids=["read-timeout", "remote-protocol-error", "500", "200-html"],
)
async def test_retry_ambiguous_opts_in_to_resending(fault):
    """With `retry_ambiguous=True` an ambiguous fault is re-sent, and the retry is accepted."""
    gateway = FakeGateway([fault])
    policy = RetryPolicy(initial_wait=0.001, max_wait=0.01, retry_ambiguous=True)
    result = await send(gateway, numbers(3), retry=policy)
    assert gateway.calls == 2
    assert gateway.sent == Counter(dict.fromkeys(numbers(3), 2))
    assert result.message_ids == {n: f"id-{n[1:]}" for n in numbers(3)}
    assert_accounted(result, 3)


async def test_connect_errors_forever_end_unsent_after_the_attempts():
    """A gateway that never accepts a connection leaves the batch UNSENT after `attempts` tries."""
    gateway = FakeGateway(always=raise_(httpx.ConnectError))
    policy = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.01)
    result = await send(gateway, numbers(5), retry=policy)
    assert gateway.calls == 3
    assert result.requests == 3
    assert result.retries == 2
    assert outcomes(result) == Counter({Outcome.UNSENT: 5})
    assert_accounted(result, 5)


async def test_retry_budget_caps_the_attempts_of_a_dead_gateway():
    """Retries across the run stop at the shared budget, whatever `attempts` allows per batch."""
    gateway = FakeGateway(always=raise_(httpx.ConnectError))
    policy = RetryPolicy(attempts=5, initial_wait=0.001, max_wait=0.01, budget_min=2, budget_ratio=0.0)
    result = await send(gateway, numbers(500), retry=policy, concurrency=2)
    assert result.batches == 5
    assert result.retries <= 2
    assert gateway.calls == result.requests == 5 + result.retries
    assert gateway.calls <= 5 * policy.attempts
    assert outcomes(result) == Counter({Outcome.UNSENT: 500})
    assert_accounted(result, 500)


async def test_busy_forever_ends_unsent():
    """A gateway that answers 429 to every try leaves the batch UNSENT: it was never processed."""
    gateway = FakeGateway(always=respond(429, "", {"Retry-After": "0.001"}))
    policy = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.01)
    result = await send(gateway, numbers(3), retry=policy)
    assert gateway.calls == 3
    assert outcomes(result) == Counter({Outcome.UNSENT: 3})
    assert_accounted(result, 3)


async def test_deadline_with_the_request_in_flight_is_unknown():
    """A batch whose deadline passes while its request is in flight is UNKNOWN and not re-sent."""
    gateway = FakeGateway(always=sleep_forever)
    policy = RetryPolicy(deadline=0.2, initial_wait=0.001, max_wait=0.01)
    result = await send(gateway, numbers(3), retry=policy)
    assert gateway.calls == 1
    assert_accounted(result, 3)
    assert outcomes(result) == Counter({Outcome.UNKNOWN: 3})


async def test_deadline_accounts_for_every_number():
    """Whatever the outcome it gives, a batch cut off by its deadline accounts for each number, sent once."""
    gateway = FakeGateway(always=sleep_forever)
    policy = RetryPolicy(deadline=0.2, initial_wait=0.001, max_wait=0.01)
    result = await send(gateway, numbers(3), retry=policy)
    assert gateway.calls == 1
    assert result.message_ids == {}
    assert len(result.failed) == 3
    assert_accounted(result, 3)
