"""The campaign's SQLite journal: claims, resume rules, group commit, locking, and rebuilding lost batches."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import anyio
import pytest

from sms_async import BulkSender, Iton, Message
from sms_async._batching import Batch, Batcher
from sms_async._journal import Admission, numbers_digest
from sms_async._models import BatchResult, Failure, LocalInput, Outcome
from sms_async._phone import PhoneNormaliser
from sms_async.campaign import CampaignError, CampaignJournal, Identity, ResultsEncoder, StorageError
from sms_async.campaign._writer import GroupWriter

NORMALISER = PhoneNormaliser("IN")


def campaign(tmp_path: Path, text: str = "t") -> Identity:
    return Identity(
        input_name="numbers.txt",
        input_fingerprint="sha256:abc:lines:",
        text_sha256=text,
        sender_id="ITONAB",
        gateway="iton",
        region="IN",
        output_path=str(tmp_path / "results.jsonl"),
        output_format="jsonl",
        layout="settled",
        columns="",
    )


def open_journal(
    tmp_path: Path, *, resume: bool = False, text: str = "t", **options: bool
) -> CampaignJournal:
    return CampaignJournal.open(
        tmp_path / "results.jsonl.journal",
        campaign(tmp_path, text),
        ResultsEncoder("jsonl"),
        resume=resume,
        **options,
    )


def batch_of(index: int, count: int, outcome: Outcome | None = None) -> BatchResult:
    nums = tuple(f"+9198{index:03d}{i:05d}" for i in range(count))
    batch = BatchResult(numbers=nums, inputs=tuple(n[3:] for n in nums), index=index, requests=1)
    for number in nums:
        if outcome is None:
            batch.message_ids[number] = f"id{index}"
        else:
            batch.failed[number] = Failure(outcome, f"{outcome.value} for the test")
    return batch


def as_batch(index: int, numbers: tuple[str, ...]) -> Batch:
    batch = Batch(index, 1, None)
    batch.numbers = list(numbers)
    batch.inputs = list(numbers)
    return batch


async def begin(journal: CampaignJournal, index: int, numbers: tuple[str, ...]) -> bool:
    """What the engine does before a request: admit the batch, then claim it."""
    batch = as_batch(index, numbers)
    return await journal.admit(batch) is Admission.SEND and await journal.claim(batch)


def states(tmp_path: Path) -> dict[int, str]:
    with contextlib.closing(sqlite3.connect(tmp_path / "results.jsonl.journal")) as conn:
        return dict(conn.execute("SELECT idx, state FROM batches").fetchall())


async def test_begin_commits_sending_before_it_returns(tmp_path):
    """After begin returns True the batch is recorded as sending, visible to another connection."""
    journal = open_journal(tmp_path)
    try:
        async with journal:
            assert await begin(journal, 0, batch_of(0, 3).numbers)
            assert states(tmp_path) == {0: "sending"}
            await journal.settle(batch_of(0, 3))
            assert states(tmp_path) == {0: "sent"}
    finally:
        journal.close()


async def test_resume_rules(tmp_path):
    """Sent and rejected batches are skipped, unsent ones go again, in-flight ones become unknown."""
    journal = open_journal(tmp_path)
    batches = [
        batch_of(0, 3),
        batch_of(1, 3, Outcome.REJECTED),
        batch_of(2, 3, Outcome.UNSENT),
        batch_of(3, 3),
    ]
    try:
        async with journal:
            for batch in batches:
                assert await begin(journal, batch.index, batch.numbers)
            for batch in batches[:3]:
                await journal.settle(batch)
            # Batch 3 never settles: the process "dies" with it in flight.
    finally:
        journal.close()
    assert states(tmp_path) == {0: "sent", 1: "rejected", 2: "pending", 3: "sending"}
    output = tmp_path / "results.jsonl"
    tail = [json.loads(line)["outcome"] for line in output.read_text().splitlines()]
    assert tail == ["accepted"] * 3 + ["rejected"] * 3 + ["unsent"] * 3  # the unsent rows come last

    journal = open_journal(tmp_path, resume=True)
    try:
        assert journal.resumed
        assert journal.needs_rows == {3}
        assert output.read_text().count("\n") == 6  # the provisional tail was cut
        async with journal:
            assert not await begin(journal, 0, batches[0].numbers)
            assert not await begin(journal, 1, batches[1].numbers)
            assert await begin(journal, 2, batches[2].numbers)
            assert not await begin(journal, 3, batches[3].numbers)
            assert await begin(journal, 4, batch_of(4, 2).numbers)
    finally:
        journal.close()
    assert states(tmp_path) == {0: "sent", 1: "rejected", 2: "sending", 3: "unknown", 4: "sending"}


async def test_resend_unknown(tmp_path):
    """With resend_unknown, a batch found in flight is sent again on resume."""
    journal = open_journal(tmp_path)
    try:
        async with journal:
            assert await begin(journal, 0, batch_of(0, 2).numbers)
    finally:
        journal.close()
    journal = open_journal(tmp_path, resume=True, resend_unknown=True)
    try:
        assert journal.needs_rows == frozenset()
        async with journal:
            assert await begin(journal, 0, batch_of(0, 2).numbers)
    finally:
        journal.close()


async def test_different_numbers_in_a_batch_are_refused(tmp_path):
    """A resumed batch whose numbers differ from the recorded hash stops the run with exit status 2."""
    journal = open_journal(tmp_path)
    try:
        async with journal:
            assert await begin(journal, 0, batch_of(0, 2).numbers)
            await journal.settle(batch_of(0, 2))
    finally:
        journal.close()
    journal = open_journal(tmp_path, resume=True)
    try:
        async with journal:
            assert not await begin(journal, 0, batch_of(9, 2).numbers)
            assert not await begin(journal, 1, batch_of(1, 2).numbers)  # stopped
    finally:
        journal.close()
    assert journal.failure is not None
    assert type(journal.failure) is CampaignError  # a usage problem, not a storage failure
    assert "differs" in journal.failure.reason


def test_existing_journal_needs_resume_and_same_campaign(tmp_path):
    """An existing journal is refused without resume, and with resume when the campaign differs."""
    open_journal(tmp_path).close()
    with pytest.raises(CampaignError, match="resume=True"):
        open_journal(tmp_path)
    with pytest.raises(CampaignError, match=r"different campaign.*message text"):
        open_journal(tmp_path, resume=True, text="other")
    open_journal(tmp_path, resume=True).close()


def test_second_process_is_refused(tmp_path):
    """While one journal holds the campaign, a second open is refused with a clear message."""
    first = open_journal(tmp_path)
    try:
        with pytest.raises(CampaignError, match="in use by another sms-async process") as caught:
            open_journal(tmp_path, resume=True)
        assert not isinstance(caught.value, StorageError)  # a usage problem: nothing was sent
    finally:
        first.close()
    open_journal(tmp_path, resume=True).close()


def test_an_opening_stopped_by_any_error_lets_the_campaign_go(tmp_path, monkeypatch):
    """An error the opening does not expect (an interrupt, say) still closes the journal and unlocks it."""

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("sms_async.campaign._store.read_campaign", interrupted)
    with pytest.raises(KeyboardInterrupt):
        open_journal(tmp_path)
    monkeypatch.undo()
    # Unlocked (a lock still held would refuse this), and the connection closed (the fixture checks).
    open_journal(tmp_path, resume=True).close()


def test_a_close_stopped_by_any_error_lets_the_campaign_go(tmp_path, monkeypatch):
    """An error close() does not expect still closes the journal's connection and unlocks the campaign."""
    journal = open_journal(tmp_path)

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(journal._writer, "finish", interrupted)
    with pytest.raises(KeyboardInterrupt):
        journal.close()
    assert journal._writer.out.closed
    open_journal(tmp_path, resume=True).close()


async def test_results_file_cut_to_recorded_length(tmp_path):
    """Bytes written after the last recorded length are cut on resume; a shorter file is refused."""
    journal = open_journal(tmp_path)
    try:
        async with journal:
            assert await begin(journal, 0, batch_of(0, 2).numbers)
            await journal.settle(batch_of(0, 2))
    finally:
        journal.close()
    output = tmp_path / "results.jsonl"
    good = output.read_bytes()
    output.write_bytes(good + b'{"input": "half a ro')
    open_journal(tmp_path, resume=True).close()
    assert output.read_bytes() == good
    output.write_bytes(good[:-5])
    with pytest.raises(CampaignError, match="shorter than the journal records"):
        open_journal(tmp_path, resume=True)


async def test_group_commit(tmp_path, monkeypatch):
    """32 batches beginning at once share a few commits instead of costing one fsync each."""
    journal = open_journal(tmp_path)
    commits = []
    original = GroupWriter.commit

    def counting(self, group):
        commits.append(len(group))
        original(self, group)

    monkeypatch.setattr(GroupWriter, "commit", counting)
    results = []
    try:
        async with journal:

            async def begin_one(index: int) -> None:
                results.append(await begin(journal, index, batch_of(index, 1).numbers))

            async with anyio.create_task_group() as tg:
                for index in range(32):
                    tg.start_soon(begin_one, index)
    finally:
        journal.close()
    assert results == [True] * 32
    assert sum(commits) == 32
    assert len(commits) <= 3


async def test_engine_sends_the_batchers_batches(tmp_path):
    """The engine's batches are the batcher's, invalid and repeats included: what a resume rebuilds."""
    raws = []
    for i in range(2500):
        raws.append(f"98{i:08d}")
        if i % 7 == 0:
            raws.append(f"+91 98{i // 2:08d}")  # a repeat in another spelling
        if i % 11 == 0:
            raws.append("not a number" if i % 22 else f"bad-{i}")
    raws.extend(f"junk-{i}" for i in range(1500))  # enough invalid entries to make a local-only batch

    class Recorder:
        def __init__(self, admission: Admission) -> None:
            self.admission = admission
            self.digests: dict[int, str] = {}
            self.settled: list[BatchResult] = []

        async def admit(self, batch: Batch) -> Admission:
            self.digests[batch.index] = numbers_digest(batch.numbers)
            return self.admission

        async def claim(self, batch: Batch) -> bool:
            raise AssertionError("no batch is sent")

        async def release(self, batch: Batch) -> None:
            raise AssertionError("no batch is sent")

        async def settle(self, batch: BatchResult) -> None:
            self.settled.append(batch)

    recorder = Recorder(Admission.SKIP)
    driver = Iton("u", "p", base_url="http://127.0.0.1:9/")
    async with BulkSender(driver, default_region="IN", concurrency=4) as bulk:
        result = await bulk.send(raws, "Hello", sender_id="ITONAB", journal=recorder)
    assert result.total == 0
    batcher = Batcher(NORMALISER, driver.max_batch, message=Message.create("Hello", "ITONAB"))
    cut = [*batcher.feed(raws), *batcher.finish()]
    assert {b.index: numbers_digest(b.numbers) for b in cut} == recorder.digests
    assert sum(b.size for b in cut) == len(raws)

    # A batch an earlier run lost in flight is reported unknown, number by number, and not sent.
    lost = Recorder(Admission.LOST)
    async with BulkSender(driver, default_region="IN", concurrency=4) as bulk:
        result = await bulk.send(raws, "Hello", sender_id="ITONAB", journal=lost)
    assert result.total == len(raws)
    assert result.requests == 0
    assert all(b.failed[n].outcome is Outcome.UNKNOWN for b in lost.settled for n in b.numbers)


async def test_rebuilt_rows_written_once_as_unknown(tmp_path):
    """A batch lost in flight gets its rows written once, as unknown, on the next resume."""
    journal = open_journal(tmp_path)
    lost = batch_of(0, 3)
    try:
        async with journal:
            assert await begin(journal, 0, lost.numbers)
    finally:
        journal.close()
    journal = open_journal(tmp_path, resume=True)
    garbage = Failure(Outcome.INVALID, "not a number")
    rebuilt = BatchResult(
        numbers=lost.numbers,
        inputs=lost.inputs,
        index=0,
        first=1,
        local=[LocalInput(len(lost.numbers), "garbage", "", garbage)],
    )
    rebuilt.failed.update(dict.fromkeys(lost.numbers, Failure(Outcome.UNKNOWN, "lost")))
    rebuilt.failed["garbage"] = garbage
    try:
        async with journal:
            assert await journal.admit(as_batch(0, lost.numbers)) is Admission.LOST
            await journal.settle(rebuilt)
    finally:
        journal.close()
    journal = open_journal(tmp_path, resume=True)
    try:
        assert journal.needs_rows == frozenset()
        assert journal.base[Outcome.UNKNOWN] == 3
        assert journal.base[Outcome.INVALID] == 1
    finally:
        journal.close()
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["outcome"] for r in rows] == ["unknown"] * 3 + ["invalid"]


def test_journal_holds_no_secret(tmp_path):
    """The campaign row holds what identifies a campaign, and nothing like a credential."""
    open_journal(tmp_path).close()
    with contextlib.closing(sqlite3.connect(tmp_path / "results.jsonl.journal")) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(campaign)")]
    assert not {"username", "password", "token", "base_url"} & set(columns)
