"""How the engine drives a journal: admit, then claim after every wait, release before a backoff, settle."""

from __future__ import annotations

import httpx
import pytest

from sms_async import BatchResult, BulkSender, Iton, RetryPolicy
from sms_async._batching import Batch
from sms_async._journal import Admission

PASSWORD = "journal-protocol-password"
FAST = RetryPolicy(initial_wait=0.001, max_wait=0.005, retry_after_cap=0.01)


def numbers(count: int) -> list[str]:
    return [f"+9198{i:08d}" for i in range(count)]


class Events:
    """One ordered record of what the meter, the journal and the gateway saw."""

    def __init__(self) -> None:
        self.log: list[str] = []


class RecordingJournal:
    """A journal that admits everything, records its calls, and claims what it is told to."""

    def __init__(self, events: Events, *, claim: bool = True) -> None:
        self.events = events
        self.claim_answer = claim
        self.settled: list[BatchResult] = []

    async def admit(self, batch: Batch) -> Admission:
        """Admit every batch."""
        self.events.log.append(f"admit {batch.index}")
        return Admission.SEND

    async def claim(self, batch: Batch) -> bool:
        """Record the claim."""
        self.events.log.append(f"claim {batch.index}")
        return self.claim_answer

    async def release(self, batch: Batch) -> None:
        """Record the release."""
        self.events.log.append(f"release {batch.index}")

    async def settle(self, result: BatchResult) -> None:
        """Record the settled batch."""
        self.events.log.append(f"settle {result.index}")
        self.settled.append(result)


class RecordingMeter:
    """A messages-per-second meter that only records when it is passed."""

    def __init__(self, events: Events) -> None:
        self.events = events

    async def acquire(self, cost: int = 1) -> None:
        """Record the wait."""
        self.events.log.append(f"meter {cost}")


def gateway(events: Events, answers: list[int]):
    """Answer each send with the next status in ``answers`` (200 once they run out)."""

    def handle(request: httpx.Request) -> httpx.Response:
        status = answers.pop(0) if answers else 200
        events.log.append(f"write {status}")
        if status == 200:
            return httpx.Response(200, text="Success Your MessageId is 532073f7e4b05199d2c3d812")
        return httpx.Response(status, text="busy", headers={"retry-after": "0"})

    return handle


def sender(events: Events, answers: list[int], **kw) -> BulkSender:
    return BulkSender(
        Iton(username="user1", password=PASSWORD, base_url="https://gateway.iton.example/api/"),
        concurrency=1,
        retry=FAST,
        messages_per_second=RecordingMeter(events),
        transport=httpx.MockTransport(gateway(events, answers)),
        **kw,
    )


async def test_the_claim_comes_after_every_wait_and_just_before_the_write():
    """For each batch: admitted, the meter passed, then claimed, then written, then settled."""
    events = Events()
    journal = RecordingJournal(events)
    async with sender(events, []) as bulk:
        result = await bulk.send(numbers(150), "Hello", sender_id="ITONAB", journal=journal)
    assert len(result.message_ids) == 150
    log = events.log
    for index, size in ((0, 100), (1, 50)):
        claim = log.index(f"claim {index}")
        assert log.index(f"admit {index}") < log.index(f"meter {size}") < claim
        assert log[claim + 1] == "write 200"
        assert log.index(f"settle {index}") > claim + 1


@pytest.mark.parametrize("status", [429, 503])
async def test_a_batch_refused_before_processing_is_released_for_its_backoff(status):
    """A 429/503 leaves nothing sent: the batch is pending again while it waits, then claimed again."""
    events = Events()
    journal = RecordingJournal(events)
    async with sender(events, [status]) as bulk:
        result = await bulk.send(numbers(100), "Hello", sender_id="ITONAB", journal=journal)
    assert len(result.message_ids) == 100
    sequence = [e for e in events.log if e.split()[0] in {"claim", "write", "release"}]
    assert sequence == ["claim 0", f"write {status}", "release 0", "claim 0", "write 200"]


async def test_a_batch_that_may_have_been_sent_is_never_released():
    """A 500 may have been processed: the batch stays claimed (sending), and is not sent again."""
    events = Events()
    journal = RecordingJournal(events)
    async with sender(events, [500]) as bulk:
        result = await bulk.send(numbers(100), "Hello", sender_id="ITONAB", journal=journal)
    assert not result.message_ids
    assert "release 0" not in events.log
    assert events.log.count("claim 0") == 1
    assert [e for e in events.log if e.startswith("write")] == ["write 500"]


async def test_a_batch_the_journal_does_not_give_us_is_neither_sent_nor_reported():
    """A claim answered False (another worker has the batch): nothing is written, nothing yielded."""
    events = Events()
    journal = RecordingJournal(events, claim=False)
    async with sender(events, []) as bulk:
        result = await bulk.send(numbers(250), "Hello", sender_id="ITONAB", journal=journal)
    assert result.total == 0
    assert not [e for e in events.log if e.startswith("write")]
    assert not journal.settled
