"""``sms-async send`` against the simulated gateway: inputs, outputs, bad input, secrets, exit codes."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import pytest
from cli_support import env_for, invoke

from sms_async.testing import Fault, SimulatedGateway

SECRET = "Zq9-distinctive-P4ss!word"


def numbers(count: int, start: int = 0) -> list[str]:
    """Distinct valid Indian mobile numbers, national spelling."""
    return [f"98{start + i:08d}" for i in range(count)]


def read_rows(path: Path) -> list[dict[str, str | None]]:
    """The rows of a JSON Lines or CSV results file."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".csv":
        return list(csv.DictReader(io.StringIO(text)))
    return [json.loads(line) for line in text.splitlines() if line]


def send_args(path: Path | str, output: Path, *extra: str) -> list[str]:
    return [
        "send",
        str(path),
        "--text",
        "Hello from the test",
        "--sender-id",
        "ITONAB",
        "-o",
        str(output),
        *extra,
    ]


@pytest.fixture
def gw(sms_gateway_factory) -> SimulatedGateway:
    return sms_gateway_factory()


def test_csv_column_selection_to_jsonl(tmp_path, gw):
    """A CSV input sends the chosen column and writes one JSON Lines row per input."""
    source = tmp_path / "people.csv"
    valid = numbers(250)
    with source.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["name", "Phone", "city"])
        for i, number in enumerate(valid):
            writer.writerow([f"person {i}", number, "Pune"])
        writer.writerow(["dup", "+91 " + valid[0], "Pune"])
        writer.writerow(["bad", "12345", "Pune"])
    output = tmp_path / "results.jsonl"
    result = invoke(send_args(source, output, "--column", "phone"), env_for(gw, tmp_path))
    assert result.exit_code == 1, result.output  # one invalid input
    rows = read_rows(output)
    assert len(rows) == 252
    outcomes = Counter(r["outcome"] for r in rows)
    assert outcomes == {"accepted": 250, "duplicate": 1, "invalid": 1}
    accepted = {r["e164"] for r in rows if r["outcome"] == "accepted"}
    assert accepted == {"+91" + n for n in valid}
    assert all(r["message_id"] for r in rows if r["outcome"] == "accepted")
    assert {r["input"] for r in rows if r["outcome"] == "invalid"} == {"12345"}
    assert gw.stats.duplicate_numbers() == {}
    assert len(gw.stats.numbers) == 250
    assert "accepted" in result.stdout
    assert "250" in result.stdout


def test_text_file_to_csv_output_all_accepted(tmp_path, gw):
    """A one-number-per-line file with repeats is all accepted (exit 0) and written as CSV."""
    source = tmp_path / "numbers.txt"
    valid = numbers(120)
    source.write_text("\n".join([*valid, "", "0" + valid[5], "+91" + valid[6]]) + "\n")
    output = tmp_path / "results.csv"
    result = invoke(send_args(source, output), env_for(gw, tmp_path))
    assert result.exit_code == 0, result.output
    assert output.read_text().splitlines()[0] == "row,input,e164,outcome,message_id,reason"
    rows = read_rows(output)
    assert Counter(r["outcome"] for r in rows) == {"accepted": 120, "duplicate": 2}
    # Rows are the input's line numbers: the blank line 121 is skipped, not renumbered.
    assert sorted(int(r["row"]) for r in rows) == [*range(1, 121), 122, 123]
    assert len(gw.stats.numbers) == 120


def test_stdin_input(tmp_path, gw):
    """Recipients can come from standard input ("-")."""
    output = tmp_path / "results.jsonl"
    valid = numbers(30)
    result = invoke(send_args("-", output, "--quiet"), env_for(gw, tmp_path), stdin="\n".join(valid) + "\n")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # --quiet
    assert Counter(r["outcome"] for r in read_rows(output)) == {"accepted": 30}


def test_stdin_csv_with_column(tmp_path, gw):
    """Standard input is read as CSV when --column is given."""
    output = tmp_path / "results.jsonl"
    data = "id,msisdn\n" + "".join(f"{i},{n}\n" for i, n in enumerate(numbers(10)))
    result = invoke(send_args("-", output, "--column", "msisdn"), env_for(gw, tmp_path), stdin=data)
    assert result.exit_code == 0, result.output
    assert len(read_rows(output)) == 10


def test_itecpay_gateway(tmp_path, gw):
    """--gateway itecpay sends through the ItecPay protocol."""
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(numbers(150)) + "\n")
    output = tmp_path / "results.jsonl"
    env = env_for(gw, tmp_path, SMS_ASYNC_BASE_URL=gw.itecpay_url)
    result = invoke(send_args(source, output, "--gateway", "itecpay"), env)
    assert result.exit_code == 0, result.output
    assert Counter(r["outcome"] for r in read_rows(output)) == {"accepted": 150}
    assert gw.stats.requests["itecpay.send"] == 2


def test_dry_run_counts_and_sends_nothing(tmp_path, gw):
    """--dry-run counts recipients, segments, encoding and cost, and makes no request."""
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join([*numbers(40), "+91" + numbers(1)[0], "12345", "12345"]) + "\n")
    output = tmp_path / "results.jsonl"
    text = "Sale starts today — 20% off everything"
    result = invoke(
        ["send", str(source), "--text", text, "--sender-id", "ITONAB", "-o", str(output), "--dry-run"],
        env_for(gw, tmp_path),
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "40 distinct valid numbers" in out
    assert "UCS-2" in out
    assert "'—'" in out
    assert "40 credits" in out
    assert "invalid: '12345'" in out
    assert not output.exists()
    assert sum(gw.stats.requests.values()) == 0


def test_dry_run_needs_no_credentials(tmp_path, gw):
    """A dry run works without any credentials."""
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(numbers(5)) + "\n")
    env = env_for(gw, tmp_path, SMS_ASYNC_USERNAME=None, SMS_ASYNC_PASSWORD=None)
    result = invoke(["send", str(source), "--text", "Hi", "--sender-id", "ITONAB", "--dry-run"], env)
    assert result.exit_code == 0, result.output
    assert "GSM-7" in result.stdout


def test_missing_column_lists_columns(tmp_path, gw):
    """A --column the CSV lacks is a one-line error listing the columns, exit 2."""
    source = tmp_path / "people.csv"
    source.write_text("name,mobile number,city\nA,9812345678,Pune\n")
    result = invoke(send_args(source, tmp_path / "r.jsonl", "--column", "phone"), env_for(gw, tmp_path))
    assert result.exit_code == 2
    assert "no column 'phone'" in result.stderr
    assert "'name', 'mobile number', 'city'" in result.stderr
    assert "Traceback" not in result.output
    assert sum(gw.stats.requests.values()) == 0


def test_ambiguous_csv_needs_column(tmp_path, gw):
    """A CSV with several columns and none named like a phone number asks for --column."""
    source = tmp_path / "people.csv"
    source.write_text("a,b\n1,9812345678\n")
    result = invoke(send_args(source, tmp_path / "r.jsonl"), env_for(gw, tmp_path))
    assert result.exit_code == 2
    assert "--column" in result.stderr
    assert "'a', 'b'" in result.stderr


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_unreadable_input(tmp_path, gw, kind):
    """A missing file or a directory as input is a one-line error, exit 2."""
    path = tmp_path / "nope.txt"
    if kind == "directory":
        path.mkdir()
    result = invoke(send_args(path, tmp_path / "r.jsonl"), env_for(gw, tmp_path))
    assert result.exit_code == 2
    assert f"cannot read {path}" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "r.jsonl").exists()


def test_bad_number_lines_are_invalid_rows(tmp_path, gw):
    """Lines that are not numbers become invalid rows with a reason; the rest is sent (exit 1)."""
    source = tmp_path / "numbers.txt"
    bad = ["hello", "12345", "+91 98123 4567x", "9812345678901234"]
    source.write_text("\n".join([*numbers(20), *bad]) + "\n")
    output = tmp_path / "results.jsonl"
    result = invoke(send_args(source, output), env_for(gw, tmp_path))
    assert result.exit_code == 1
    rows = read_rows(output)
    invalid = {r["input"]: r for r in rows if r["outcome"] == "invalid"}
    assert set(invalid) == set(bad)
    assert all(r["reason"] and r["e164"] is None for r in invalid.values())
    assert Counter(r["outcome"] for r in rows)["accepted"] == 20


def test_missing_credentials(tmp_path, gw):
    """No credentials anywhere is a one-line error naming the environment variables, exit 2."""
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(numbers(3)) + "\n")
    env = env_for(gw, tmp_path, SMS_ASYNC_USERNAME=None, SMS_ASYNC_PASSWORD=None)
    result = invoke(send_args(source, tmp_path / "r.jsonl"), env)
    assert result.exit_code == 2
    assert "SMS_ASYNC_USERNAME" in result.stderr
    assert "SMS_ASYNC_PASSWORD" in result.stderr
    assert result.stderr.count("\n") == 1
    assert sum(gw.stats.requests.values()) == 0


def test_bad_sender_id(tmp_path, gw):
    """An invalid sender id is a one-line error, exit 2, before anything is sent."""
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(numbers(3)) + "\n")
    args = [
        "send",
        str(source),
        "--text",
        "Hi",
        "--sender-id",
        "WAY-TOO-LONG-SENDER",
        "-o",
        str(tmp_path / "r.jsonl"),
    ]
    result = invoke(args, env_for(gw, tmp_path))
    assert result.exit_code == 2
    assert "sender_id" in result.stderr
    assert sum(gw.stats.requests.values()) == 0
    assert not (tmp_path / "r.jsonl").exists()


def test_empty_text(tmp_path, gw):
    """An empty text is a one-line error, exit 2."""
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(numbers(3)) + "\n")
    args = ["send", str(source), "--text", "", "--sender-id", "ITONAB", "-o", str(tmp_path / "r.jsonl")]
    result = invoke(args, env_for(gw, tmp_path))
    assert result.exit_code == 2
    assert "empty" in result.stderr
    assert sum(gw.stats.requests.values()) == 0


def test_text_file_and_options_checked(tmp_path, gw):
    """--text-file supplies the text; missing --text, --output and bad extensions are usage errors."""
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(numbers(3)) + "\n")
    message = tmp_path / "message.txt"
    message.write_text("Hello from a file\n")
    env = env_for(gw, tmp_path)
    base = ["send", str(source), "--sender-id", "ITONAB"]
    assert invoke([*base, "-o", str(tmp_path / "r.jsonl")], env).exit_code == 2
    result = invoke([*base, "--text", "x", "-o", str(tmp_path / "r.txt")], env)
    assert result.exit_code == 2
    assert "*.jsonl" in result.stderr
    result = invoke([*base, "--text", "x"], env)
    assert result.exit_code == 2
    assert "--output" in result.stderr
    result = invoke([*base, "--text-file", str(message), "-o", str(tmp_path / "r.jsonl")], env)
    assert result.exit_code == 0, result.output
    stored = next(iter(gw.messages.values()))
    assert stored.text == "Hello from a file"


def test_bad_password_aborts_with_exit_3(sms_gateway_factory, tmp_path):
    """The gateway refusing the credentials stops the run (exit 3); the rest is unsent, never echoed."""
    gw = sms_gateway_factory(password=SECRET)
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(numbers(300)) + "\n")
    output = tmp_path / "results.jsonl"
    wrong = "Wr0ng-" + SECRET
    result = invoke(send_args(source, output), env_for(gw, tmp_path, SMS_ASYNC_PASSWORD=wrong))
    assert result.exit_code == 3, result.output
    assert "AuthenticationError" in result.stderr
    assert Counter(r["outcome"] for r in read_rows(output)) == {"unsent": 300}
    assert "this run: 0 batches sent" in result.stdout
    assert wrong not in result.output
    assert quote(wrong, safe="") not in result.output
    assert wrong.encode() not in output.read_bytes()


def test_out_of_credit_aborts_then_resume_sends_the_rest(sms_gateway_factory, tmp_path):
    """Running out of credit stops the run (exit 3); --resume after a top-up sends only what was not sent."""
    gw = sms_gateway_factory(credits=250)
    source = tmp_path / "numbers.txt"
    valid = numbers(1000)
    source.write_text("\n".join([*valid, "bad-entry"]) + "\n")
    output = tmp_path / "results.jsonl"
    env = env_for(gw, tmp_path)
    result = invoke(send_args(source, output, "--concurrency", "2"), env)
    assert result.exit_code == 3, result.output
    assert "OutOfCreditError" in result.stderr
    first = Counter(r["outcome"] for r in read_rows(output))
    assert first["accepted"] >= 200
    assert first["accepted"] + first["unsent"] == 1000
    assert sum(first.values()) == 1001
    gw.set_credits(10**6)
    result = invoke(send_args(source, output, "--concurrency", "2", "--resume"), env)
    assert result.exit_code == 1, result.output  # the invalid entry
    rows = read_rows(output)
    assert len(rows) == 1001
    assert Counter(r["outcome"] for r in rows) == {"accepted": 1000, "invalid": 1}
    assert Counter(r["e164"] for r in rows if r["e164"]) == Counter("+91" + n for n in valid)
    assert gw.stats.duplicate_numbers() == {}
    assert len(gw.stats.numbers) == 1000


def test_secrets_never_leak(sms_gateway_factory, tmp_path):
    """A distinctive password never shows in stdout, stderr, the results file or the journal's bytes."""
    gw = sms_gateway_factory(password=SECRET)
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join([*numbers(150), "junk"]) + "\n")
    forms = [SECRET, quote(SECRET, safe=""), json.dumps(SECRET)[1:-1]]
    env = env_for(gw, tmp_path, SMS_ASYNC_PASSWORD=None)
    seen = []
    # On the command line (with a warning), with a fault that makes the gateway answer with an error body.
    gw.set_faults([Fault("status_500", on_requests={1}, operations={"iton.sendSMS"})])
    out1 = tmp_path / "one.jsonl"
    result = invoke([*send_args(source, out1), "--password", SECRET], env)
    assert result.exit_code == 1, result.output
    assert "visible" in result.stderr or "can be seen" in result.stderr
    seen.append(result.output)
    # From the environment, with a wrong password (authentication error path).
    out2 = tmp_path / "two.jsonl"
    result = invoke(send_args(source, out2), env_for(gw, tmp_path, SMS_ASYNC_PASSWORD=SECRET + "x"))
    assert result.exit_code == 3
    seen.append(result.output)
    # Status and balance too.
    result = invoke(["status", str(out1), "--password", SECRET], env)
    seen.append(result.output)
    result = invoke(["balance"], env_for(gw, tmp_path, SMS_ASYNC_PASSWORD=SECRET))
    assert result.exit_code == 0
    seen.append(result.output)
    blobs = [text.encode() for text in seen]
    blobs += [p.read_bytes() for p in tmp_path.iterdir() if p.is_file() and p.suffix != ".txt"]
    for blob in blobs:
        for form in forms:
            assert form.encode() not in blob


def test_config_file_credentials(tmp_path, gw):
    """Credentials and the sender id can come from the TOML config file instead of the environment."""
    config = tmp_path / ".config" / "sms-async" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(
        f'[iton]\nusername = "{gw.username}"\npassword = "{gw.password}"\n'
        f'base_url = "{gw.iton_url}"\nsender_id = "CFGSND"\n'
    )
    config.chmod(0o600)
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(numbers(10)) + "\n")
    env = env_for(gw, tmp_path, SMS_ASYNC_USERNAME=None, SMS_ASYNC_PASSWORD=None, SMS_ASYNC_BASE_URL=None)
    output = tmp_path / "r.jsonl"
    result = invoke(["send", str(source), "--text", "Hi", "-o", str(output)], env)
    assert result.exit_code == 0, result.output
    assert next(iter(gw.messages.values())).sender == "CFGSND"
    explicit = tmp_path / "other.toml"
    explicit.write_text("[iton\n")
    result = invoke(["balance", "--config", str(explicit)], env)
    assert result.exit_code == 2
    assert "not valid TOML" in result.stderr


def test_existing_journal_requires_resume(tmp_path, gw):
    """Running a campaign again without --resume is refused (exit 2) and sends nothing more."""
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(numbers(50)) + "\n")
    output = tmp_path / "results.jsonl"
    env = env_for(gw, tmp_path)
    assert invoke(send_args(source, output), env).exit_code == 0
    before = sum(gw.stats.requests.values())
    result = invoke(send_args(source, output), env)
    assert result.exit_code == 2
    assert "--resume" in result.stderr
    result = invoke(send_args(source, output, "--resume"), env)
    assert result.exit_code == 0
    assert sum(gw.stats.requests.values()) == before
    assert len(read_rows(output)) == 50


def test_resume_refuses_a_different_campaign(tmp_path, gw):
    """--resume with another text or input is refused, naming what differs (exit 2)."""
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(numbers(50)) + "\n")
    output = tmp_path / "results.jsonl"
    env = env_for(gw, tmp_path)
    assert invoke(send_args(source, output), env).exit_code == 0
    args = [
        "send",
        str(source),
        "--text",
        "Another text",
        "--sender-id",
        "ITONAB",
        "-o",
        str(output),
        "--resume",
    ]
    result = invoke(args, env)
    assert result.exit_code == 2
    assert "different campaign" in result.stderr
    assert "message text" in result.stderr
    source.write_text("\n".join(numbers(51)) + "\n")
    result = invoke(send_args(source, output, "--resume"), env)
    assert result.exit_code == 2
    assert "the input" in result.stderr
    assert len(read_rows(output)) == 50


def test_existing_output_without_journal(tmp_path, gw):
    """A results file no journal accounts for is not overwritten unless --overwrite."""
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(numbers(5)) + "\n")
    output = tmp_path / "results.jsonl"
    output.write_text("precious\n")
    env = env_for(gw, tmp_path)
    result = invoke(send_args(source, output), env)
    assert result.exit_code == 2
    assert "--overwrite" in result.stderr
    assert output.read_text() == "precious\n"
    assert invoke(send_args(source, output, "--overwrite"), env).exit_code == 0
    assert len(read_rows(output)) == 5


def test_ambiguous_answer_is_unknown_and_not_resent(tmp_path, gw):
    """A 500 after processing makes a batch unknown (exit 1); --resume does not send it again."""
    gw.set_faults([Fault("status_500", on_requests={2}, operations={"iton.sendSMS"})])
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(numbers(300)) + "\n")
    output = tmp_path / "results.jsonl"
    env = env_for(gw, tmp_path)
    result = invoke(send_args(source, output, "--concurrency", "1"), env)
    assert result.exit_code == 1
    assert Counter(r["outcome"] for r in read_rows(output)) == {"accepted": 200, "unknown": 100}
    assert "sms-async status" in result.stdout
    requests = gw.stats.requests["iton.sendSMS"]
    result = invoke(send_args(source, output, "--concurrency", "1", "--resume"), env)
    assert result.exit_code == 1
    assert gw.stats.requests["iton.sendSMS"] == requests
    assert len(read_rows(output)) == 300
    assert gw.stats.duplicate_numbers() == {}


def test_skip_dnd_and_rate(tmp_path, sms_gateway_factory):
    """--skip-dnd skips listed numbers (which do not count against), and --rate is accepted."""
    valid = numbers(20)
    gw = sms_gateway_factory(dnd_numbers=["91" + valid[3]])
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(valid) + "\n")
    output = tmp_path / "results.jsonl"
    result = invoke(send_args(source, output, "--skip-dnd", "--rate", "1000"), env_for(gw, tmp_path))
    assert result.exit_code == 0, result.output
    rows = read_rows(output)
    assert Counter(r["outcome"] for r in rows) == {"accepted": 19, "skipped": 1}
    assert "91" + valid[3] not in gw.stats.numbers


def test_max_segments(tmp_path, gw):
    """A text longer than --max-segments allows is refused before sending (exit 2)."""
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(numbers(3)) + "\n")
    args = [
        "send",
        str(source),
        "--text",
        "a" * 200,
        "--sender-id",
        "ITONAB",
        "-o",
        str(tmp_path / "r.jsonl"),
    ]
    result = invoke([*args, "--max-segments", "1"], env_for(gw, tmp_path))
    assert result.exit_code == 2
    assert "max_segments" in result.stderr


def test_unusable_output_or_journal(tmp_path, gw):
    """The input as output, or a journal in a missing directory, is a one-line error (exit 2)."""
    source = tmp_path / "numbers.csv"
    source.write_text("phone\n9812345678\n")
    env = env_for(gw, tmp_path)
    result = invoke(send_args(source, source), env)
    assert result.exit_code == 2
    assert "is the input" in result.stderr
    assert source.read_text() == "phone\n9812345678\n"
    missing = tmp_path / "no-such-dir" / "j.journal"
    result = invoke(send_args(source, tmp_path / "r.jsonl", "--journal", str(missing)), env)
    assert result.exit_code == 2
    assert "cannot use the journal" in result.stderr
    assert "Traceback" not in result.output
    assert sum(gw.stats.requests.values()) == 0


def test_skip_dnd_unsupported_by_itecpay(tmp_path, gw):
    """--skip-dnd with ItecPay, which has no do-not-disturb look-up, is refused before any journal exists."""
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(numbers(3)) + "\n")
    output = tmp_path / "r.jsonl"
    env = env_for(gw, tmp_path, SMS_ASYNC_BASE_URL=gw.itecpay_url)
    result = invoke(send_args(source, output, "--gateway", "itecpay", "--skip-dnd"), env)
    assert result.exit_code == 2
    assert "do-not-disturb" in result.stderr
    assert not output.exists()
    assert not (tmp_path / "r.jsonl.journal").exists()


@pytest.mark.parametrize(("name", "content"), [("numbers.txt", "\n\n"), ("people.csv", "phone,name\n")])
def test_an_input_without_recipients_is_refused_as_campaign_create_refuses_it(gw, tmp_path, name, content):
    """An empty input (blank lines, or a CSV header alone) is exit 2 with one line, and no file is written."""
    source = tmp_path / name
    source.write_text(content)
    output = tmp_path / "results.jsonl"
    result = invoke(send_args(source, output), env_for(gw, tmp_path))
    assert result.exit_code == 2, result.output
    assert f"{source} holds no input" in result.stderr
    assert not output.exists()
    assert not Path(f"{output}.journal").exists()
    assert not gw.messages
