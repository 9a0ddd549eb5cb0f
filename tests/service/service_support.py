"""Helpers of the service tests: senders aimed at the simulated gateway, and the accounting checks.

Everything here talks to 127.0.0.1 only.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sms_async import BatchResult, BulkResult, BulkSender, Iton, Outcome, RetryPolicy, Timeouts
from sms_async.instrumentation import BatchSettled
from sms_async.testing import SimulatedGateway

TRANSPORTS = ("fast", "httpx")


def numbers(count: int, start: int = 0) -> list[str]:
    """``count`` distinct valid Indian mobile numbers in E.164."""
    return [f"+9198{n:08d}" for n in range(start, start + count)]


def sender(gw: SimulatedGateway, http: str = "fast", *, concurrency: int = 4, **options: Any) -> BulkSender:
    """A BulkSender for ``gw``'s ITON gateway with fast retries."""
    options.setdefault("retry", RetryPolicy(initial_wait=0.001, max_wait=0.01))
    options.setdefault("timeouts", Timeouts(connect=5.0, read=10.0, write=5.0, pool=10.0))
    return BulkSender(
        Iton(gw.username, gw.password, base_url=gw.iton_url),
        concurrency=concurrency,
        http=http,
        trust_env=False,
        **options,
    )


def received(gw: SimulatedGateway) -> set[str]:
    """The numbers (E.164) the gateway carried out a send for, checking none twice."""
    stats = gw.stats
    assert not stats.duplicate_numbers()
    return {f"+{n}" for n, times in stats.numbers.items() if times}


def assert_accounted(result: BulkResult, sent: list[str], gw: SimulatedGateway | None = None) -> None:
    """Every input has one outcome, and nothing the gateway received is reported unsent."""
    counts = result.counts()
    assert result.total == len(sent)
    assert result.total == len(result.message_ids) + len(result.failed) + sum(result.duplicates.values())
    assert sum(counts.values()) == result.total
    assert set(result.message_ids) | set(result.failed) == set(sent)
    if gw is not None:
        got = received(gw)
        assert set(result.message_ids) <= got
        assert not set(result.by_outcome(Outcome.UNSENT)) & got


class Settled:
    """Hooks that keep every settled batch."""

    def __init__(self) -> None:
        self.batches: list[BatchResult] = []

    def on_batch(self, record: BatchSettled) -> None:
        """Keep the batch."""
        self.batches.append(record.result)

    def counts(self) -> Counter[Outcome]:
        """Inputs per outcome over every batch kept."""
        total: Counter[Outcome] = Counter()
        for batch in self.batches:
            total.update(batch.counts())
        return total
