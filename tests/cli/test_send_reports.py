"""``send --reports``: polling after the sends, over the in-memory book, on a clock the test drives."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import anyio.lowlevel
import pytest
from cli_support import env_for, invoke

from sms_async.campaign import DeliveryTally
from sms_async.testing import DeliveryPlan, DeliveryRule, RequestLog, TestClock

HOUR = 3600.0
PLAN = DeliveryPlan(
    [
        DeliveryRule("delivered", 0.80),
        DeliveryRule("delivered", 0.15, after=HOUR),
        DeliveryRule("never", 0.05),
    ],
    seed=20,
)


class InstantClock(TestClock):
    """A test clock whose sleeps move it on at once (nothing else sleeps on it here)."""

    async def sleep(self, seconds: float) -> None:
        """Move the clock on by ``seconds``, then let others run."""
        self.advance(max(seconds, 0.0))
        await anyio.lowlevel.checkpoint()


@pytest.fixture
def clock(monkeypatch) -> InstantClock:
    """The clock send --reports reads, replaced by one that needs no waiting."""
    from sms_async.cli import _campaign  # noqa: PLC0415 - the one place the command takes its clock from

    made = InstantClock(datetime(2026, 12, 6, 9, 0, tzinfo=UTC))
    monkeypatch.setattr(_campaign, "REPORTS_CLOCK", made)
    return made


def test_send_with_reports_polls_until_nothing_is_pending_and_agrees_with_the_gateway(
    tmp_path, sms_gateway_factory, clock
):
    """2,000 numbers: 72 simulated hours of polls end with the gateway's delivered count, the rest expired."""
    log = RequestLog()
    gw = sms_gateway_factory(clock=clock, delivery=PLAN, request_log=log)
    national = [f"98{i:08d}" for i in range(2_000)]
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(national) + "\n")
    output = tmp_path / "out.jsonl"
    args = ["send", str(source), "-t", "Hello", "-s", "ITONAB", "-o", str(output), "--reports", "--json"]
    done = invoke(args, env_for(gw, tmp_path))
    assert done.exit_code == 0, done.output
    expected = PLAN.expected([f"+91{n}" for n in national], 2 * HOUR)
    delivery = json.loads(done.stdout)["delivery"]
    assert DeliveryTally(**{k: delivery[k] for k in ("delivered", "expired", "pending")}) == DeliveryTally(
        delivered=expected["delivered"], expired=expected["sent"]
    )
    assert delivery["rate"] == expected["delivered"] / 2_000
    # 20 ids (one per request of 100 numbers) make one request a round, and no poll after 72 h.
    polls = log.entries("iton.message_status")
    assert all(e.at <= clock.now() for e in polls)
    assert (clock.now() - polls[0].at).total_seconds() <= 72 * HOUR
    assert not gw.stats.duplicate_numbers()


def test_send_without_reports_polls_nothing(tmp_path, sms_gateway_factory, clock):
    """Without --reports, send asks the gateway nothing after its sends."""
    log = RequestLog()
    gw = sms_gateway_factory(clock=clock, request_log=log)
    source = tmp_path / "numbers.txt"
    source.write_text("9800000001\n9800000002\n")
    done = invoke(
        ["send", str(source), "-t", "Hello", "-s", "ITONAB", "-o", str(tmp_path / "o.csv"), "--json"],
        env_for(gw, tmp_path),
    )
    assert done.exit_code == 0, done.output
    assert "delivery" not in json.loads(done.stdout)
    assert log.entries("iton.message_status") == []
