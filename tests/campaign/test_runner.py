"""Crash-safe campaigns from Python, without the command line, against the simulated gateway."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import anyio
import pytest

from sms_async import BulkSender, ItecPay, Iton, Outcome, RetryPolicy, Template
from sms_async._batching import Batch
from sms_async._journal import Admission
from sms_async._models import Failure
from sms_async.campaign import (
    Campaign,
    CampaignError,
    CampaignJournal,
    Identity,
    ResultsEncoder,
    run_campaign,
)
from sms_async.testing import Fault, SimulatedGateway

FAST = RetryPolicy(initial_wait=0.001, max_wait=0.005, retry_after_cap=0.01)


def numbers(count: int, start: int = 0) -> list[str]:
    """Distinct valid Indian mobile numbers, national spelling."""
    return [f"98{start + i:08d}" for i in range(count)]


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def iton(gw: SimulatedGateway) -> Iton:
    return Iton(username=gw.username, password=gw.password, base_url=gw.iton_url)


async def test_run_campaign_writes_one_row_per_input_and_tallies_them(tmp_path, sms_gateway):
    """Every input gets one row, numbered by position, as read; the report's tally matches the rows."""
    gw = sms_gateway
    inputs = [*numbers(250), " 98 0000 0001 ", "", "", "n/a", "n/a"]
    results = tmp_path / "out.jsonl"
    async with BulkSender(iton(gw), default_region="IN") as bulk:
        report = await run_campaign(bulk, inputs, "Hello", sender_id="ITONAB", results=results)
    rows = rows_of(results)
    # Batches settle in any order (ordered=False): what is promised is one row per input.
    assert len(rows) == len(inputs)
    assert sorted(r["row"] for r in rows) == list(range(1, len(inputs) + 1))
    by_row = {r["row"]: r for r in rows}
    assert by_row[251]["input"] == " 98 0000 0001 "  # as read, not stripped
    assert by_row[251]["outcome"] == "duplicate"
    # A repeated invalid input (an empty one too) is invalid each time, never a duplicate.
    assert [by_row[n]["outcome"] for n in (252, 253, 254, 255)] == ["invalid"] * 4
    counts = Counter(r["outcome"] for r in rows)
    assert report.totals.counts == {o: counts[o.value] for o in Outcome}
    assert report.totals.empty == 2
    assert report.totals.credits == 250
    assert (report.totals.fewest_parts, report.totals.most_parts) == (1, 1)
    assert report.this_run.counts == report.totals.counts
    assert report.complete
    assert not (tmp_path / "out.jsonl.journal.lock").exists()  # removed after a clean run
    assert (tmp_path / "out.jsonl.journal").exists()


async def test_ordered_rows_come_in_input_order(tmp_path, sms_gateway_factory):
    """With ordered=True rows are written in input order although batches settle out of order."""
    gw = sms_gateway_factory(faults=[Fault("latency", rate=1.0, seconds=(0.0, 0.08))], seed=3)
    inputs = [n if i % 17 else "junk" for i, n in enumerate(numbers(1200))]
    results = tmp_path / "out.jsonl"
    async with BulkSender(iton(gw), default_region="IN", concurrency=8) as bulk:
        report = await run_campaign(bulk, inputs, "Hi", sender_id="ITONAB", results=results, ordered=True)
    rows = rows_of(results)
    assert [r["row"] for r in rows] == list(range(1, len(inputs) + 1))
    assert [r["input"] for r in rows] == inputs
    assert report.totals.total == len(inputs)


async def test_ordered_rows_survive_a_crash_in_the_journal(tmp_path):
    """A batch settled before the one ahead of it keeps its rows in the journal across a crash."""
    output = str(tmp_path / "r.jsonl")
    identity = Identity("in", "", "t", "ITONAB", "iton", "IN", output, "jsonl", "ordered", "")
    path = tmp_path / "r.jsonl.journal"

    def batch(index: int) -> Batch:
        made = Batch(index, index * 2 + 1, None)
        made.numbers = [f"+91980000{index:02d}0{i}" for i in range(2)]
        made.inputs = [n[3:] for n in made.numbers]
        return made

    journal = CampaignJournal.open(path, identity, ResultsEncoder("jsonl"), resume=False)
    async with journal:
        for index in (0, 1):
            assert await journal.admit(batch(index)) is Admission.SEND
            assert await journal.claim(batch(index))
        second = batch(1).to_result()
        second.message_ids.update({n: f"id-{n}" for n in second.numbers})
        await journal.settle(second)
    # The process dies with batch 0 in flight: nothing is closed in order.
    journal._writer.out.close()
    journal._writer.conn.close()
    journal._lock.release(remove=False)
    assert (tmp_path / "r.jsonl").read_bytes() == b""  # batch 1 waits for batch 0, in the journal

    journal = CampaignJournal.open(path, identity, ResultsEncoder("jsonl"), resume=True)
    async with journal:
        assert await journal.admit(batch(1)) is Admission.SKIP
        assert await journal.admit(batch(0)) is Admission.LOST
        lost = batch(0).to_result()
        lost.failed.update(dict.fromkeys(lost.numbers, Failure(Outcome.UNKNOWN, "lost in flight")))
        await journal.settle(lost)
    journal.close()
    rows = rows_of(tmp_path / "r.jsonl")
    assert [(r["row"], r["outcome"]) for r in rows] == [
        (1, "unknown"),
        (2, "unknown"),
        (3, "accepted"),
        (4, "accepted"),
    ]


async def test_resume_needs_a_journal(tmp_path):
    """resume=True with no journal is refused before anything is made or sent, naming the files looked for."""
    (tmp_path / "results.jsonl.journal").touch()  # another campaign's journal nearby
    driver = Iton("u", "p", base_url="http://127.0.0.1:9/")
    async with BulkSender(driver, default_region="IN") as bulk:
        with pytest.raises(CampaignError, match="nothing to resume") as caught:
            await run_campaign(
                bulk, numbers(5), "Hi", sender_id="ITONAB", results=tmp_path / "result.jsonl", resume=True
            )
    message = caught.value.reason
    assert str(tmp_path / "result.jsonl.journal") in message
    assert "results.jsonl.journal" in message  # the journal the user probably meant
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.jsonl.journal"]


async def test_stop_then_resume_finishes_the_campaign(tmp_path, sms_gateway_factory):
    """stop() lets the batches in flight finish and starts no more; a resume sends only the rest."""
    gw = sms_gateway_factory(faults=[Fault("latency", rate=1.0, seconds=0.02)])
    inputs = numbers(2000)
    results = tmp_path / "out.csv"
    campaign = Campaign(results)
    async with BulkSender(iton(gw), default_region="IN", concurrency=2) as bulk:
        report = await campaign.run(
            bulk, inputs, "Hi", sender_id="ITONAB", on_batch=lambda _batch: campaign.stop()
        )
        assert report.stopped
        assert not report.complete
        assert 0 < report.totals.total < len(inputs)
        report = await Campaign(results, resume=True).run(bulk, inputs, "Hi", sender_id="ITONAB")
    assert report.complete
    assert report.totals[Outcome.ACCEPTED] == len(inputs)
    assert gw.stats.duplicate_numbers() == {}
    lines = results.read_text().splitlines()
    assert lines[0] == "row,input,e164,outcome,message_id,reason"
    assert len(lines) == len(inputs) + 1


async def test_resend_rejected_after_fixing_the_endpoint(tmp_path, sms_gateway):
    """A wrong path stops the run early; after the fix, resend_rejected sends the refused batches again."""
    gw = sms_gateway
    inputs = numbers(800)
    results = tmp_path / "out.jsonl"
    wrong = ItecPay(gw.username, gw.password, base_url=gw.itecpay_url, send_path="/no/such/path")
    async with BulkSender(wrong, default_region="IN", concurrency=1, retry=FAST) as bulk:
        report = await run_campaign(bulk, inputs, "Hi", sender_id="ITONAB", results=results)
    assert type(report.aborted).__name__ == "EndpointError"
    assert report.totals[Outcome.REJECTED] == 300
    assert report.totals[Outcome.UNSENT] == 500
    right = ItecPay(gw.username, gw.password, base_url=gw.itecpay_url)
    async with BulkSender(right, default_region="IN", retry=FAST) as bulk:
        report = await run_campaign(bulk, inputs, "Hi", sender_id="ITONAB", results=results, resume=True)
        assert report.totals[Outcome.REJECTED] == 300  # a plain resume leaves them
        report = await run_campaign(
            bulk, inputs, "Hi", sender_id="ITONAB", results=results, resume=True, resend_rejected=True
        )
    assert report.totals.counts[Outcome.ACCEPTED] == 800
    rows = rows_of(results)
    assert sorted(r["row"] for r in rows) == list(range(1, 801))
    assert Counter(r["outcome"] for r in rows) == {"accepted": 800}
    assert gw.stats.duplicate_numbers() == {}


async def test_personalised_resume_refuses_a_changed_text(tmp_path, sms_gateway):
    """Each batch's text is in its digest: a resume whose rows render other texts is refused."""
    gw = sms_gateway
    rows = [{"phone": n, "name": f"n{i}"} for i, n in enumerate(numbers(30))]
    template = Template("Hi {name}", number="phone")
    results = tmp_path / "out.jsonl"
    async with BulkSender(iton(gw), default_region="IN") as bulk:
        report = await run_campaign(bulk, rows, template, sender_id="ITONAB", results=results)
        assert report.totals[Outcome.ACCEPTED] == 30
        assert {m.text for m in gw.messages.values()} == {f"Hi n{i}" for i in range(30)}
        changed = [{**row, "name": "someone else"} for row in rows]
        report = await run_campaign(bulk, changed, template, sender_id="ITONAB", results=results, resume=True)
    assert report.problem is not None
    assert "differs" in report.problem.reason
    assert len(gw.messages) == 30


async def test_a_crash_leaves_the_lock_and_the_next_run_takes_it_over(tmp_path, sms_gateway):
    """A lock file left by a dead process does not stop the next run, which removes it when done."""
    lock = tmp_path / "out.jsonl.journal.lock"
    lock.write_text("999999\n")
    async with BulkSender(iton(sms_gateway), default_region="IN") as bulk:
        report = await run_campaign(
            bulk, numbers(3), "Hi", sender_id="ITONAB", results=tmp_path / "out.jsonl"
        )
    assert report.complete
    assert not lock.exists()


async def test_stop_now_cancels_what_is_in_flight(tmp_path, sms_gateway_factory):
    """stop(now=True) cancels the batches in flight: reported unknown, never sent again by a plain resume."""
    gw = sms_gateway_factory(faults=[Fault("latency", rate=1.0, seconds=0.3)])
    results = tmp_path / "out.jsonl"
    campaign = Campaign(results)

    async def stop_soon() -> None:
        await anyio.sleep(0.1)
        campaign.stop(now=True)

    async with (
        BulkSender(iton(gw), default_region="IN", concurrency=2) as bulk,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(stop_soon)
        report = await campaign.run(bulk, numbers(1000), "Hi", sender_id="ITONAB")
    assert report.stopped
    assert report.totals[Outcome.UNKNOWN] == 200  # two batches were on the wire
    assert report.totals[Outcome.ACCEPTED] == 0
