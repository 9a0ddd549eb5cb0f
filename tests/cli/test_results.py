"""``send`` as a new user runs it: rows joined back to the input, true counts, a typo that sends nothing."""

from __future__ import annotations

import csv
import io
import json
import socket
from collections import Counter
from pathlib import Path

import pytest
from cli_support import env_for, invoke

from sms_async.testing import Fault, SimulatedGateway


def numbers(count: int, start: int = 0) -> list[str]:
    """Distinct valid Indian mobile numbers, national spelling."""
    return [f"98{start + i:08d}" for i in range(count)]


def read_rows(path: Path) -> list[dict]:
    """The rows of a JSON Lines or CSV results file."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".csv":
        return list(csv.DictReader(io.StringIO(text)))
    return [json.loads(line) for line in text.splitlines() if line]


def send_args(path: Path | str, output: Path, *extra: str, text: str = "Hello") -> list[str]:
    return ["send", str(path), "--text", text, "--sender-id", "ITONAB", "-o", str(output), *extra]


@pytest.fixture
def gw(sms_gateway_factory) -> SimulatedGateway:
    return sms_gateway_factory()


def test_resume_without_a_journal_is_refused(tmp_path, gw):
    """--resume with a mistyped --output sends nothing (exit 2) and names the journal it looked for."""
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(numbers(300)) + "\n")
    env = env_for(gw, tmp_path)
    assert invoke(send_args(source, tmp_path / "results.jsonl"), env).exit_code == 0
    sent = gw.stats.requests["iton.sendSMS"]
    result = invoke(send_args(source, tmp_path / "result.jsonl", "--resume"), env)
    assert result.exit_code == 2
    assert "nothing to resume" in result.stderr
    assert str(tmp_path / "result.jsonl.journal") in result.stderr
    assert "results.jsonl.journal" in result.stderr.replace(str(tmp_path / "result.jsonl.journal"), "")
    assert gw.stats.requests["iton.sendSMS"] == sent
    assert not (tmp_path / "result.jsonl").exists()
    assert not (tmp_path / "result.jsonl.journal").exists()


def test_rows_join_back_to_the_input(tmp_path, gw):
    """Rows carry the CSV row (header = 1; a multi-line record is one row) and the cell as read."""
    source = tmp_path / "people.csv"
    source.write_text(
        "name,phone,city\n"  # row 1
        'Asha,"  98000 00001 ",Pune\n'  # row 2: spaces kept
        '"Ravi\nKumar",9800000002,Delhi\n'  # row 3: a record over two lines
        "\n"  # row 4: blank
        "Dup,+91 98000 00001,Goa\n"  # row 5: a repeat, spelled its own way
        "Empty,,Agra\n"  # row 6
        "Bad,n/a,Kochi\n"  # row 7
    )
    output = tmp_path / "results.jsonl"
    result = invoke(send_args(source, output, "--keep-columns"), env_for(gw, tmp_path))
    assert result.exit_code == 1, result.output
    rows = {r["row"]: r for r in read_rows(output)}
    assert sorted(rows) == [2, 3, 5, 6, 7]
    assert rows[2]["input"] == "  98000 00001 "
    assert rows[2]["e164"] == "+919800000001"
    assert rows[3]["columns"] == {"name": "Ravi\nKumar", "city": "Delhi"}
    assert (rows[5]["input"], rows[5]["outcome"]) == ("+91 98000 00001", "duplicate")
    assert (rows[6]["input"], rows[6]["outcome"]) == ("", "invalid")
    assert rows[7]["columns"] == {"name": "Bad", "city": "Kochi"}


def test_ordered_rows_and_kept_columns_in_csv(tmp_path, sms_gateway_factory):
    """--ordered writes rows in input order though batches end out of order; --keep-columns adds the rest."""
    gw = sms_gateway_factory(faults=[Fault("latency", rate=1.0, seconds=(0.0, 0.05))], seed=5)
    source = tmp_path / "people.csv"
    people = numbers(900)
    source.write_text("phone,name\n" + "".join(f"{n},person {i}\n" for i, n in enumerate(people)))
    output = tmp_path / "results.csv"
    args = send_args(source, output, "--ordered", "--keep-columns", "--concurrency", "8")
    result = invoke(args, env_for(gw, tmp_path))
    assert result.exit_code == 0, result.output
    lines = output.read_text().splitlines()
    assert lines[0] == "row,input,e164,outcome,message_id,reason,name"
    rows = read_rows(output)
    assert [int(r["row"]) for r in rows] == list(range(2, 902))
    assert [r["name"] for r in rows] == [f"person {i}" for i in range(900)]
    # A resume of an ordered campaign must keep it ordered.
    result = invoke(send_args(source, output, "--keep-columns", "--resume"), env_for(gw, tmp_path))
    assert result.exit_code == 2
    assert "order of the rows" in result.stderr


def test_counts_say_what_the_rows_say(tmp_path, gw):
    """Repeated invalid inputs and empty cells are invalid each time; the summary says how many were empty."""
    source = tmp_path / "people.csv"
    cells = [*numbers(50), *["" for _ in range(30)], *["garbage" for _ in range(20)], *numbers(5)]
    source.write_text("name,phone\n" + "".join(f"p{i},{cell}\n" for i, cell in enumerate(cells)))
    output = tmp_path / "results.jsonl"
    result = invoke(send_args(source, output), env_for(gw, tmp_path))
    assert result.exit_code == 1, result.output
    assert Counter(r["outcome"] for r in read_rows(output)) == {"accepted": 50, "invalid": 50, "duplicate": 5}
    table = dict(line.split("│")[1:3] for line in result.stdout.splitlines() if line.count("│") >= 3)
    assert {k.strip(): v.strip() for k, v in table.items()}["invalid"] == "50"
    assert "30 of the 50 invalid inputs were empty" in result.stdout


def test_parts_and_credits_in_every_summary(tmp_path, gw):
    """A send's summary shows the parts per text and the credits spent; above 10 parts it warns first."""
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(numbers(20)) + "\n")
    env = env_for(gw, tmp_path)
    result = invoke(send_args(source, tmp_path / "a.jsonl", text="x" * 300), env)
    assert result.exit_code == 0, result.output
    assert "parts: 2 per text; credits spent: 40" in result.stdout
    assert "warning" not in result.stderr
    long_text = "y" * (153 * 11)
    result = invoke(send_args(source, tmp_path / "b.jsonl", text=long_text), env)
    assert result.exit_code == 0, result.output
    assert "11 SMS parts" in result.stderr
    assert "--max-segments" in result.stderr
    assert "credits spent: 220" in result.stdout
    result = invoke(send_args(source, tmp_path / "c.jsonl", "--max-segments", "11", text=long_text), env)
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr
    result = invoke(send_args(source, tmp_path / "d.jsonl", text="z" * (153 * 256)), env)
    assert result.exit_code == 2
    assert "at most 255" in result.stderr


def test_json_summary_and_no_stale_lock(tmp_path, gw):
    """--json prints one machine-readable object on stdout; a clean run leaves no .journal.lock behind."""
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join([*numbers(120), "", "oops", "oops"]) + "\n")
    output = tmp_path / "results.jsonl"
    result = invoke(send_args(source, output, "--json"), env_for(gw, tmp_path))
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert summary["exit_code"] == 1
    assert summary["totals"]["outcomes"]["accepted"] == 120
    assert summary["totals"]["outcomes"]["invalid"] == 2
    assert summary["totals"]["total"] == 122
    assert summary["totals"]["credits"] == 120
    assert summary["results"] == str(output)
    assert summary["reasons"][0]["outcome"] == "invalid"
    assert not (tmp_path / "results.jsonl.journal.lock").exists()


def test_wrong_endpoint_stops_early_and_resend_rejected_retries(tmp_path, gw):
    """A send path answering 404 stops the run after 3 batches; --resume --resend-rejected sends them."""
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(numbers(2000)) + "\n")
    output = tmp_path / "results.jsonl"
    env = env_for(gw, tmp_path, SMS_ASYNC_BASE_URL=gw.itecpay_url)
    base = ["--gateway", "itecpay", "--concurrency", "1"]
    result = invoke(send_args(source, output, *base, "--send-path", "/api/sms/wrong"), env)
    assert result.exit_code == 3, result.output
    assert "EndpointError" in result.stderr
    assert gw.stats.requests["http.other"] == 3
    assert Counter(r["outcome"] for r in read_rows(output)) == {"rejected": 300, "unsent": 1700}
    assert "--resend-rejected" in result.stdout
    result = invoke(send_args(source, output, *base, "--resume"), env)
    assert result.exit_code == 1, result.output
    assert Counter(r["outcome"] for r in read_rows(output)) == {"rejected": 300, "accepted": 1700}
    result = invoke(send_args(source, output, *base, "--resume", "--resend-rejected"), env)
    assert result.exit_code == 0, result.output
    rows = read_rows(output)
    assert Counter(r["outcome"] for r in rows) == {"accepted": 2000}
    assert sorted(r["row"] for r in rows) == list(range(1, 2001))
    assert gw.stats.duplicate_numbers() == {}


def test_dead_port_summary_says_why(tmp_path, gw):
    """Every batch unsent because the port refuses connections: the summary says so, not only 'unsent'."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(numbers(150)) + "\n")
    env = env_for(gw, tmp_path, SMS_ASYNC_BASE_URL=f"http://127.0.0.1:{port}/ItonSMSAPI/smsService/api/")
    result = invoke(send_args(source, tmp_path / "results.jsonl"), env)
    assert result.exit_code == 1, result.output
    assert "unsent 150: could not connect to 127.0.0.1" in result.stdout
    # Nothing reached the gateway: no batch counts as sent.
    assert "this run: 0 batches sent" in result.stdout


def test_an_input_unreadable_part_way_stops_the_run(tmp_path, gw):
    """A CSV that cannot be read on stops the run (exit 3), saying where; the cut-short batch is not sent."""
    source = tmp_path / "people.csv"
    source.write_text(
        "phone,note\n"
        + "".join(f"{n},ok\n" for n in numbers(3000))
        + '9811111111,"'
        + "x" * 200_000
        + '"\n'
        + "".join(f"{n},ok\n" for n in numbers(100, start=5000))
    )
    output = tmp_path / "results.jsonl"
    result = invoke(send_args(source, output), env_for(gw, tmp_path))
    assert result.exit_code == 3, result.output
    assert "RecipientsError" in result.stderr
    assert "cannot read on" in result.stderr
    # Batches already on the wire finished; none was started after the failure (the reader is
    # ahead of the workers, so that may be none at all), and the batch it cut short never went out.
    rows = read_rows(output)
    assert {r["outcome"] for r in rows} <= {"accepted"}
    assert len(gw.stats.numbers) == len(rows) <= 2000


def test_dry_run_of_an_unreadable_input(tmp_path, gw):
    """A dry run of an input that cannot be read on is a one-line error naming the row (exit 2)."""
    source = tmp_path / "people.csv"
    source.write_text('phone,note\n9812345678,ok\n9812345679,"' + "x" * 200_000 + '"\n')
    result = invoke(["send", str(source), "--text", "Hi", "-s", "ITONAB", "--dry-run"], env_for(gw, tmp_path))
    assert result.exit_code == 2
    assert "row 3: cannot read on" in result.stderr
    assert "internal error" not in result.stderr
