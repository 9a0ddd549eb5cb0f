"""``send --reports``: polling after the sends, over the in-memory book, on a clock the test drives.

The results file gets the ``delivery`` and ``delivered_at`` columns when polling ends (as a
campaign's export writes them); a resumed run polls every number the campaign accepted.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from cli_support import env_for, invoke

from sms_async._models import Entry, Outcome
from sms_async.campaign import DeliveryTally, StorageError
from sms_async.campaign._results import encode_row, rewrite_delivery
from sms_async.testing import DeliveryPlan, DeliveryRule, Fault, RequestLog, TestClock

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
    """A test clock whose sleeps move it on at once (nothing else sleeps on it here).

    It can also copy the results file when the first sleep begins (polling has begun: the
    file is whole, without the delivery columns), and interrupt the process with SIGINT,
    as Ctrl+C does, once a sleep would take it past ``interrupt_at``.
    """

    snapshot: tuple[Path, Path] | None = None
    interrupt_at: datetime | None = None

    async def sleep(self, seconds: float) -> None:
        """Move the clock on by ``seconds``, then let others run."""
        if self.snapshot is not None:
            source, copy = self.snapshot
            self.snapshot = None
            shutil.copyfile(source, copy)
        if self.interrupt_at is not None and self.now() + timedelta(seconds=seconds) > self.interrupt_at:
            self.interrupt_at = None
            os.kill(os.getpid(), signal.SIGINT)
            # The command's signal receiver stops the polling (this sleep is cancelled at once);
            # the real-time bound only keeps a broken build from hanging.
            await anyio.sleep(30)
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


# -- the delivery columns in the results file ----------------------------------------------

START = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
GIVE_UP = timedelta(hours=72)
#: Each number's fate, from the plan: delivered at once or after 2 h, undelivered after 10 min, never.
FATES = DeliveryPlan(
    [
        DeliveryRule("delivered", 0.55),
        DeliveryRule("delivered", 0.15, after=2 * HOUR),
        DeliveryRule("undelivered", 0.15, after=600),
        DeliveryRule("never", 0.15),
    ],
    seed=11,
)
#: The delivery a number ends with once polling is done, by the plan's outcome.
FINAL = {"delivered": "delivered", "undelivered": "undelivered", "failed": "failed", "never": "expired"}
RESULTS_KEYS = ["row", "input", "e164", "outcome", "message_id", "reason"]


def read_rows(path: Path) -> tuple[list[str], list[dict[str, object]]]:
    """The header (CSV) or first row's keys (JSON Lines) and every row, in file order."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".csv":
        records = list(csv.reader(io.StringIO(text, newline="")))
        header = records[0]
        return header, [dict(zip(header, record, strict=True)) for record in records[1:]]
    rows = [json.loads(line) for line in text.splitlines()]
    return list(rows[0]), rows


def expected_final(e164: str) -> str:
    return FINAL[FATES.rule_for(e164).outcome]


def check_every_other_byte(final: Path, plain: Path, columns: list[str]) -> None:
    """The final file is the plain one with the two columns added: nothing else moved."""
    copy = final.with_name("stripped" + final.suffix)
    shutil.copyfile(final, copy)
    fmt = "csv" if final.suffix == ".csv" else "jsonl"
    assert rewrite_delivery(copy, fmt, columns, None) is True  # type: ignore[arg-type]
    assert copy.read_bytes() == plain.read_bytes()
    # And, read independently: each row is the plain row with the two cells after reason.
    _, with_cells = read_rows(final)
    _, without = read_rows(plain)
    assert len(with_cells) == len(without)
    for full, bare in zip(with_cells, without, strict=True):
        rest = {k: v for k, v in full.items() if k not in {"delivery", "delivered_at"}}
        if fmt == "csv":
            assert list(full.values())[:6] == list(bare.values())[:6]
            assert list(full.values())[8:] == list(bare.values())[6:]
        else:
            assert rest == bare
            assert list(full)[:8] == [*RESULTS_KEYS, "delivery", "delivered_at"]


def test_the_results_file_gets_each_numbers_delivery_as_campaign_export_writes_it(
    tmp_path, sms_gateway_factory, clock
):
    """600 CSV rows with kept columns: exact counts per delivery state, the cells in export's format."""
    gw = sms_gateway_factory(clock=clock, delivery=FATES)
    lines = ["phone,name,delivery,note"]
    numbers = [f"98{i:08d}" for i in range(600)]
    for i, number in enumerate(numbers):
        note = 'has "quotes", a comma\nand a newline' if i % 50 == 0 else f"n{i}"
        lines.append(f'{number},Ann {i},kept-{i},"{note.replace(chr(34), chr(34) * 2)}"')
    lines += ["12345,Bad,kept-x,short", f"{numbers[0]},Again,kept-y,duplicate"]
    source = tmp_path / "customers.csv"
    source.write_text("\n".join(lines) + "\n")
    output = tmp_path / "results.csv"
    plain = tmp_path / "plain.csv"
    clock.snapshot = (output, plain)
    args = ["send", str(source), "--column", "phone", "-t", "Hi", "-s", "ITONAB", "-o", str(output)]
    done = invoke([*args, "--keep-columns", "--reports", "--json"], env_for(gw, tmp_path))
    assert done.exit_code == 1, done.output  # the invalid row
    header, rows = read_rows(output)
    # A kept column named like one of ours is told apart, as campaign export does.
    assert header == [*RESULTS_KEYS, "delivery", "delivered_at", "name", "delivery (input)", "note"]
    kept = sorted(str(r["delivery (input)"]) for r in rows)
    assert kept == sorted([*(f"kept-{i}" for i in range(600)), "kept-x", "kept-y"])
    assert len(rows) == 602
    accepted = [r for r in rows if r["message_id"]]
    assert len(accepted) == 600 == gw.stats.accepted
    assert not gw.stats.duplicate_numbers()
    assert Counter(r["outcome"] for r in rows) == {"accepted": 600, "invalid": 1, "duplicate": 1}
    # Rows without a message id have empty cells; every accepted number its plan's fate.
    assert all(r["delivery"] == r["delivered_at"] == "" for r in rows if not r["message_id"])
    assert all(r["delivery"] == expected_final(str(r["e164"])) for r in accepted)
    seen = FATES.expected([str(r["e164"]) for r in accepted], 72 * HOUR)
    counts = Counter(str(r["delivery"]) for r in accepted)
    assert counts == Counter(
        {k: v for k, v in {**seen, "expired": seen["sent"], "sent": 0}.items() if v and k != "sent"}
    )
    assert 0 < counts["delivered"] < 600
    assert counts["undelivered"]
    assert counts["expired"]
    delivery = json.loads(done.stdout)["delivery"]
    assert {k: delivery[k] for k in counts} == dict(counts)
    assert delivery["pending"] == 0
    # delivered_at: ISO 8601 in UTC, when a poll first saw the final state; expired at the give-up age.
    for row in accepted:
        at = datetime.fromisoformat(str(row["delivered_at"]))
        assert at.tzinfo is not None
        assert at.utcoffset() == timedelta(0)
        assert START < at <= START + GIVE_UP
        if row["delivery"] == "expired":
            assert at == START + GIVE_UP
        # As campaign export writes it: the time in UTC, in ISO 8601.
        assert row["delivered_at"] == at.astimezone(UTC).isoformat()
    check_every_other_byte(output, plain, ["name", "delivery", "note"])
    # status reads the rewritten file.
    looked = invoke(["status", str(output)], env_for(gw, tmp_path))
    assert looked.exit_code == 1, looked.output  # not every message delivered
    ids = {r["message_id"] for r in accepted}
    flat = " ".join(looked.output.split())
    assert f"Delivery reports for {len(ids):,} message ids" in flat
    # The gateway agrees with the file, number by number counted.
    assert f"delivered │ {counts['delivered']:,} │" in flat
    assert f"undelivered │ {counts['undelivered']:,} │" in flat
    assert f"sent │ {counts['expired']:,} │" in flat


def test_a_resumed_send_with_reports_polls_the_numbers_earlier_runs_accepted(
    tmp_path, sms_gateway_factory, clock
):
    """Credentials refused on request 3: 200 accepted, 800 unsent; --resume --reports sends 800, polls all."""
    log = RequestLog()
    gw = sms_gateway_factory(clock=clock, delivery=FATES, request_log=log)
    numbers = [f"97{i:08d}" for i in range(1_000)]
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(numbers) + "\n")
    output = tmp_path / "results.jsonl"
    args = ["send", str(source), "-t", "Hello", "-s", "ITONAB", "-o", str(output), "--concurrency", "1"]
    gw.set_faults([Fault("auth_failure", on_requests={3}, operations="iton.sendSMS")])
    first = invoke([*args, "--reports", "--json"], env_for(gw, tmp_path))
    assert first.exit_code == 3, first.output
    _, rows = read_rows(output)
    assert Counter(r["outcome"] for r in rows) == {"accepted": 200, "unsent": 800}
    # The sends stopped early: nothing was polled, and the columns say what is known.
    assert Counter((r["outcome"], r["delivery"], r["delivered_at"]) for r in rows) == {
        ("accepted", "pending", None): 200,
        ("unsent", None, None): 800,
    }
    earlier = {str(r["e164"]) for r in rows if r["message_id"]}
    assert log.entries("iton.message_status") == []

    gw.set_faults([])
    second = invoke([*args, "--resume", "--reports", "--json"], env_for(gw, tmp_path))
    assert second.exit_code == 0, second.output
    keys, rows = read_rows(output)
    assert keys == [*RESULTS_KEYS, "delivery", "delivered_at"]
    assert [r["row"] for r in rows].count(1) == 1
    assert len(rows) == 1_000
    assert {str(r["e164"]) for r in rows} == {f"+91{n}" for n in numbers}
    assert all(r["outcome"] == "accepted" for r in rows)
    # Every number once at the gateway, and every accepted number (the first run's too) polled to its end.
    assert gw.stats.accepted == 1_000
    assert not gw.stats.duplicate_numbers()
    assert all(r["delivery"] == expected_final(str(r["e164"])) for r in rows)
    firsts = [r for r in rows if r["e164"] in earlier]
    assert len(firsts) == 200
    assert all(r["delivery"] != "pending" for r in firsts)
    seen = FATES.expected([str(r["e164"]) for r in rows], 72 * HOUR)
    delivery = json.loads(second.stdout)["delivery"]
    assert (delivery["delivered"], delivery["undelivered"], delivery["expired"], delivery["pending"]) == (
        seen["delivered"],
        seen["undelivered"],
        seen["sent"],
        0,
    )
    assert delivery["accepted"] == 1_000
    assert log.entries("iton.message_status")
    # Each line is the very line campaign export writes for that row.
    lines = output.read_text().splitlines(keepends=True)
    for line, row in zip(lines, rows, strict=True):
        entry = Entry(
            int(row["row"]), str(row["input"]), str(row["e164"]), Outcome.ACCEPTED, str(row["message_id"]), ""
        )
        assert line == encode_row(entry, "jsonl", delivery=(str(row["delivery"]), str(row["delivered_at"])))


def test_interrupted_polling_writes_what_it_knew_and_a_resume_finishes_it(
    tmp_path, sms_gateway_factory, clock
):
    """SIGINT 90 min into polling: the file holds what the 72.5 min poll saw; --resume --reports ends it."""
    log = RequestLog()
    gw = sms_gateway_factory(clock=clock, delivery=FATES, request_log=log)
    numbers = [f"96{i:08d}" for i in range(500)]
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(numbers) + "\n")
    output = tmp_path / "results.csv"
    args = ["send", str(source), "-t", "Hello", "-s", "ITONAB", "-o", str(output)]
    clock.interrupt_at = START + timedelta(minutes=90)
    first = invoke([*args, "--reports", "--json"], env_for(gw, tmp_path))
    assert first.exit_code == 4, first.output  # interrupted
    assert clock.now() < START + timedelta(minutes=90)
    header, rows = read_rows(output)
    assert header == [*RESULTS_KEYS, "delivery", "delivered_at"]
    assert len(rows) == 500
    assert all(r["outcome"] == "accepted" for r in rows)
    # Polls at 30 s, 2.5, 12.5 and 72.5 min after acceptance: the file says what the last one saw.
    age = 72.5 * 60
    e164s = [str(r["e164"]) for r in rows]
    seen = FATES.expected(e164s, age)
    assert Counter(str(r["delivery"]) for r in rows) == Counter(
        {"delivered": seen["delivered"], "undelivered": seen["undelivered"], "pending": seen["sent"]}
    )
    assert all(r["delivered_at"] == "" for r in rows if r["delivery"] == "pending")
    delivery = json.loads(first.stdout)["delivery"]
    assert delivery["pending"] == seen["sent"] > 0
    before = {str(r["e164"]): r for r in rows}
    sent_before = gw.stats.accepted
    assert invoke(["status", str(output)], env_for(gw, tmp_path)).exit_code == 1

    # A resume without --reports polls nothing and keeps the columns as they were.
    written = output.read_bytes()
    polls = len(log.entries("iton.message_status"))
    again = invoke([*args, "--resume", "--json"], env_for(gw, tmp_path))
    assert again.exit_code == 0, again.output
    assert output.read_bytes() == written
    assert len(log.entries("iton.message_status")) == polls

    second = invoke([*args, "--resume", "--reports", "--json"], env_for(gw, tmp_path))
    assert second.exit_code == 0, second.output
    _, rows = read_rows(output)
    assert [r["e164"] for r in rows] == e164s  # same rows, same order
    assert gw.stats.accepted == sent_before == 500
    assert not gw.stats.duplicate_numbers()
    assert all(r["delivery"] == expected_final(str(r["e164"])) for r in rows)
    final = FATES.expected(e164s, 72 * HOUR)
    assert Counter(str(r["delivery"]) for r in rows) == Counter(
        {"delivered": final["delivered"], "undelivered": final["undelivered"], "expired": final["sent"]}
    )
    # What the first run learnt stands: a final state keeps the time a poll first saw it.
    for row in rows:
        was = before[str(row["e164"])]
        if was["delivery"] != "pending":
            assert (row["delivery"], row["delivered_at"]) == (was["delivery"], was["delivered_at"])
        elif row["delivery"] == "expired":
            assert datetime.fromisoformat(str(row["delivered_at"])) == START + GIVE_UP
    assert all(e.at <= START + GIVE_UP for e in log.entries("iton.message_status"))


def test_json_lines_kept_columns_named_like_ours_stay_where_they_were(tmp_path, sms_gateway_factory, clock):
    """Kept columns named reason, delivery, delivered_at, values that look like members: bytes kept."""
    gw = sms_gateway_factory(clock=clock, delivery=FATES)
    numbers = [f"95{i:08d}" for i in range(120)]
    tricky = ['x", "reason": "y', "back\\slash\\", ', "delivery": null', "é\u2028"]
    lines = ["phone,reason,delivery,delivered_at"]
    for i, number in enumerate(numbers):
        value = tricky[i % len(tricky)].replace('"', '""')
        lines.append(f'{number},"{value}",kept-{i},at-{i}')
    lines.append('not a number,"oops, ""quoted""",kept-bad,at-bad')
    source = tmp_path / "customers.csv"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    output = tmp_path / "results.jsonl"
    plain = tmp_path / "plain.jsonl"
    clock.snapshot = (output, plain)
    args = ["send", str(source), "--column", "phone", "-t", "Hi", "-s", "ITONAB", "-o", str(output)]
    done = invoke([*args, "--keep-columns", "--reports", "--json"], env_for(gw, tmp_path))
    assert done.exit_code == 1, done.output  # the invalid row
    _, rows = read_rows(output)
    assert len(rows) == 121
    for row in rows:
        kept = row["columns"]
        assert isinstance(kept, dict)
        assert list(kept) == ["reason", "delivery", "delivered_at"]
        if row["message_id"]:
            assert row["delivery"] == expected_final(str(row["e164"]))
            assert kept["delivery"] == f"kept-{numbers.index(str(row['e164'])[3:])}"
        else:
            assert (row["outcome"], row["delivery"], row["delivered_at"]) == ("invalid", None, None)
            assert kept == {"reason": 'oops, "quoted"', "delivery": "kept-bad", "delivered_at": "at-bad"}
    check_every_other_byte(output, plain, ["reason", "delivery", "delivered_at"])
    assert gw.stats.accepted == 120
    assert not gw.stats.duplicate_numbers()


def test_a_results_file_changed_by_hand_is_left_as_it_was(tmp_path):
    """A row the campaign would not write (a bare carriage return) stops the rewrite; nothing changes."""
    path = tmp_path / "results.csv"
    path.write_bytes(b"row,input,e164,outcome,message_id,reason\n1,98\r00,+91,accepted,id1,\n")
    before = path.read_bytes()
    with pytest.raises(StorageError, match="left as it was"):
        rewrite_delivery(path, "csv", (), lambda _e164, _id: ("delivered", ""))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]  # no temporary file left behind


def test_a_resume_killed_after_taking_the_columns_out_gets_them_back_from_the_journal(
    tmp_path, sms_gateway_factory, clock
):
    """The journal keeps the states: a file left without its columns (a resume killed) gets them back."""
    gw = sms_gateway_factory(clock=clock, delivery=FATES)
    numbers = [f"94{i:08d}" for i in range(300)]
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(numbers) + "\n")
    output = tmp_path / "results.csv"
    args = ["send", str(source), "-t", "Hello", "-s", "ITONAB", "-o", str(output), "--ordered"]
    done = invoke([*args, "--reports"], env_for(gw, tmp_path))
    assert done.exit_code == 0, done.output
    written = output.read_bytes()
    _, rows = read_rows(output)
    assert [r["row"] for r in rows] == [str(i) for i in range(1, 301)]
    assert all(r["delivery"] == expected_final(str(r["e164"])) for r in rows)
    # What a resume leaves while it runs: the file without the columns, whole.
    assert rewrite_delivery(output, "csv", (), None) is True
    assert "delivery" not in output.read_text().splitlines()[0]
    again = invoke([*args, "--resume"], env_for(gw, tmp_path))
    assert again.exit_code == 0, again.output
    assert output.read_bytes() == written
    assert gw.stats.accepted == 300
    assert not gw.stats.duplicate_numbers()
