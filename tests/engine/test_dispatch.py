"""The dispatch (sms_async/_dispatch.py): runs aborted by credentials or credit, a worker's lanes."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from engine_support import FakeGateway, assert_accounted, itecpay, numbers, outcomes, respond, send, sender

from sms_async import AuthenticationError, Outcome, OutOfCreditError, SendTimeout
from sms_async._dispatch import Lane


@pytest.mark.parametrize(
    ("fault", "error_type"),
    [
        (respond(200, "Invalid username or password"), AuthenticationError),
        (respond(200, "Login failed"), AuthenticationError),
        (respond(401, ""), AuthenticationError),
        (respond(200, "Insufficient credits"), OutOfCreditError),
        (respond(200, "Low balance"), OutOfCreditError),
    ],
    ids=["bad-password", "login-failed", "401", "no-credit", "low-balance"],
)
async def test_auth_and_credit_failures_abort_the_run(fault, error_type):
    """Bad credentials or no credit stop the run: at most `concurrency` requests, the rest UNSENT."""
    gateway = FakeGateway(always=fault)
    result = await send(gateway, numbers(1000), concurrency=4)
    assert isinstance(result.aborted, error_type)
    assert gateway.calls <= 4
    assert result.message_ids == {}
    assert outcomes(result) == Counter({Outcome.UNSENT: 1000})
    assert not result.ok
    with pytest.raises(error_type):
        result.raise_for_abort()
    assert_accounted(result, 1000)


async def test_abort_keeps_ids_already_issued():
    """Batches accepted before an abort keep their ids; the rest are UNSENT."""
    bad = respond(200, "Invalid username or password")
    gateway = FakeGateway([FakeGateway.success_fault(), FakeGateway.success_fault(), bad], always=bad)
    result = await send(gateway, numbers(500), concurrency=1)
    assert gateway.calls == 3
    assert len(result.message_ids) == 200
    assert outcomes(result) == Counter({Outcome.UNSENT: 300})
    assert isinstance(result.aborted, AuthenticationError)
    assert_accounted(result, 500)


async def test_itecpay_out_of_credit_aborts():
    """An ItecPay failure about balance aborts the run with OutOfCreditError."""
    gateway = FakeGateway(
        always=respond(200, json.dumps({"status": 400, "description": "Insufficient balance"}))
    )
    result = await send(gateway, numbers(300), driver=itecpay(), concurrency=2)
    assert isinstance(result.aborted, OutOfCreditError)
    assert gateway.calls <= 2
    assert outcomes(result) == Counter({Outcome.UNSENT: 300})
    assert_accounted(result, 300)


async def test_a_worker_dispatches_its_batches_in_one_cancel_scope(monkeypatch):
    """A worker's batches share one lane (one cancel scope) while nothing stops the call."""
    lanes: list[Lane] = []
    make = Lane.__init__

    def counted(self):
        make(self)
        lanes.append(self)

    monkeypatch.setattr(Lane, "__init__", counted)
    gateway = FakeGateway()
    result = await send(gateway, numbers(1000), concurrency=1)
    assert_accounted(result, 1000)
    assert result.batches == 10
    assert len(lanes) == 1
    assert not lanes[0].spent
    assert gateway.sent == Counter(dict.fromkeys(numbers(1000), 1))


async def test_a_stopped_lane_is_left_and_the_worker_goes_on_in_a_new_one(monkeypatch):
    """A timeout spends the lane of the batch waiting its turn; the worker settles the rest in a new lane."""
    lanes: list[Lane] = []
    make = Lane.__init__

    def counted(self):
        make(self)
        lanes.append(self)

    monkeypatch.setattr(Lane, "__init__", counted)
    gateway = FakeGateway()
    async with sender(gateway, concurrency=1, messages_per_second=100) as bulk:
        result = await bulk.send(numbers(500), "Hello", sender_id="ITONAB", timeout=0.3)
    assert isinstance(result.aborted, SendTimeout)
    assert_accounted(result, 500)
    assert any(lane.spent for lane in lanes)
    assert len(lanes) >= 2
    assert not lanes[-1].spent
    assert set(result.message_ids) == set(gateway.sent)
    assert all(count == 1 for count in gateway.sent.values())
    assert len(result.message_ids) < 500
