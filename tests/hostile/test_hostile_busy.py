"""429 and 503 over real sockets: Retry-After in every form (capped), and a 429 storm."""

from __future__ import annotations

import pytest
from hostile_support import (
    GATEWAYS,
    SEND_OP,
    TRANSPORTS,
    assert_accounted,
    assert_no_double_send,
    numbers,
    on_wire,
    policy,
    sender,
    with_outcome,
)

from sms_async import Outcome
from sms_async.instrumentation import GatewayPaused
from sms_async.testing import Fault

pytestmark = [pytest.mark.hostile, pytest.mark.timeout(15)]

CAP = 0.05


class RecordingPauses:
    """Hooks that remember every pause a 429/503 imposed on the sender's pool."""

    def __init__(self) -> None:
        self.pauses: list[float] = []

    def on_pause(self, record: GatewayPaused) -> None:
        """Remember the pause."""
        self.pauses.append(record.seconds)


# (Retry-After as the fault sends it, its form, the wait expected: a number, "cap" or "backoff")
RETRY_AFTERS = {
    "seconds": (0.02, "seconds", 0.02),
    "zero": (0, "seconds", 0.0),
    "http-date": (1, "http_date", "capped"),
    "far-http-date": (3600, "http_date", CAP),
    "huge-seconds": (99_999_999, "seconds", CAP),
    "huge-text": ("99999999999999999999999", "seconds", CAP),
    "infinite": ("1e400", "seconds", CAP),
    "negative": ("-5", "seconds", 0.0),
    "far-future-date": ("Fri, 31 Dec 9999 23:59:59 GMT", "seconds", CAP),
    "past-date": ("Thu, 01 Jan 1970 00:00:00 GMT", "seconds", 0.0),
    "garbage": ("soon, please", "seconds", "backoff"),
    "nan": ("nan", "seconds", "backoff"),
    "empty": ("", "seconds", "backoff"),
}


@pytest.mark.parametrize("http", TRANSPORTS)
@pytest.mark.parametrize("gateway", GATEWAYS)
@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("case", list(RETRY_AFTERS))
async def test_busy_answers_are_retried_honouring_a_capped_retry_after(
    sms_gateway_factory, http, gateway, status, case
):
    """A 429/503 is retried after its Retry-After (seconds or date, capped, junk ignored), then accepted."""
    value, form, expected = RETRY_AFTERS[case]
    fault = Fault(
        f"status_{status}",
        on_requests={1},
        operations=SEND_OP[gateway],
        retry_after=value,
        retry_after_form=form,
    )
    gw = sms_gateway_factory(faults=[fault])
    recipients = numbers(200)
    retry = policy(retry_after_cap=CAP, initial_wait=0.001, max_wait=0.01)
    throttle = RecordingPauses()
    async with sender(gw, gateway, http, concurrency=1, retry=retry, hooks=[throttle]) as bulk:
        result = await bulk.send(recipients, "Hello", sender_id="ITONAB")
    assert_accounted(result, 200)
    assert set(result.message_ids) == set(recipients)
    assert result.retries == 1
    assert gw.stats.requests[SEND_OP[gateway]] == 3  # the refused try, its retry, the second batch
    assert all(gw.stats.numbers[on_wire(gateway, n)] == 1 for n in recipients)
    assert_no_double_send(gw)
    (wait,) = throttle.pauses
    assert 0.0 <= wait <= CAP
    if expected == "backoff":
        assert wait <= 0.001  # the first backoff step, Retry-After ignored
    elif expected != "capped":
        assert wait == pytest.approx(expected)


@pytest.mark.parametrize("http", TRANSPORTS)
@pytest.mark.parametrize("gateway", GATEWAYS)
async def test_retry_after_forever_still_finishes_and_accounts_everything(sms_gateway_factory, http, gateway):
    """A gateway that always answers 429 with a huge Retry-After cannot hold the run: capped, then unsent."""
    gw = sms_gateway_factory(faults=[Fault("status_429", rate=1.0, retry_after=10**9)])
    retry = policy(attempts=3, retry_after_cap=0.02)
    throttle = RecordingPauses()
    async with sender(gw, gateway, http, retry=retry, hooks=[throttle]) as bulk:
        result = await bulk.send(numbers(300), "Hello", sender_id="ITONAB")
    assert_accounted(result, 300)
    assert len(with_outcome(result, Outcome.UNSENT)) == 300
    assert throttle.pauses
    assert max(throttle.pauses) == pytest.approx(0.02)
    assert gw.stats.requests[SEND_OP[gateway]] <= 3 * 3
    assert not gw.stats.numbers
    assert_no_double_send(gw)


@pytest.mark.parametrize("http", TRANSPORTS)
@pytest.mark.parametrize("gateway", GATEWAYS)
async def test_a_429_storm_completes_and_accounts_for_everything(sms_gateway_factory, http, gateway):
    """With 80% of requests refused by 429, every number is accepted or unsent, and requests stay bounded."""
    gw = sms_gateway_factory(faults=[Fault("status_429", rate=0.8, retry_after=0.001)], seed=3)
    attempts, batches = 6, 20
    recipients = numbers(batches * 100)
    retry = policy(attempts=attempts, max_wait=0.005, retry_after_cap=0.005, budget_min=1000)
    async with sender(gw, gateway, http, concurrency=8, retry=retry) as bulk:
        result = await bulk.send(recipients, "Hello", sender_id="ITONAB")
    assert_accounted(result, batches * 100)
    found = {f.outcome for f in result.failed.values()}
    assert found <= {Outcome.UNSENT}
    stats = gw.stats
    assert stats.requests[SEND_OP[gateway]] <= attempts * batches
    assert stats.requests[SEND_OP[gateway]] == result.requests
    # A 429 is refused before processing: exactly the accepted numbers reached the phones.
    processed = {n for n in recipients if stats.numbers[on_wire(gateway, n)]}
    assert processed == set(result.message_ids)
    assert stats.faults["status_429"] > batches  # it really was a storm
    assert_no_double_send(gw)
