"""The status, balance, dnd, simulate and demo commands, and the help text, against the simulator."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from cli_support import env_for, invoke
from click.testing import CliRunner

from sms_async.cli import cli
from sms_async.testing import SimulatedGateway


def sent_campaign(tmp_path: Path, gw: SimulatedGateway, count: int = 250) -> Path:
    source = tmp_path / "numbers.txt"
    source.write_text("".join(f"98{i:08d}\n" for i in range(count)))
    output = tmp_path / "results.jsonl"
    args = ["send", str(source), "--text", "Hi", "--sender-id", "ITONAB", "-o", str(output), "--quiet"]
    assert invoke(args, env_for(gw, tmp_path)).exit_code == 0
    return output


@pytest.fixture
def gw(sms_gateway_factory) -> SimulatedGateway:
    return sms_gateway_factory(status_delays=(0.02, 0.05))


def test_status_once_and_polling(tmp_path, gw):
    """Status reads the ids from a results file; --poll waits until every report is final."""
    output = sent_campaign(tmp_path, gw)
    env = env_for(gw, tmp_path)
    reports = tmp_path / "reports.jsonl"
    result = invoke(
        ["status", str(output), "--poll", "--interval", "0.05", "--timeout", "10", "-o", str(reports)], env
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in reports.read_text().splitlines()]
    assert len(rows) == 250
    assert Counter(r["status"] for r in rows) == {"delivered": 250}
    assert "delivered" in result.stdout
    result = invoke(["status", "--id", rows[0]["message_id"]], env)
    assert result.exit_code == 0, result.output


def test_status_not_final_and_csv_reports(tmp_path, sms_gateway_factory):
    """A report that is not yet delivered gives exit status 1; reports can be written as CSV."""
    gw = sms_gateway_factory(status_delays=(30.0, 30.0))
    output = sent_campaign(tmp_path, gw, count=10)
    reports = tmp_path / "reports.csv"
    result = invoke(["status", str(output), "-o", str(reports)], env_for(gw, tmp_path))
    assert result.exit_code == 1
    assert reports.read_text().splitlines()[0] == "message_id,number,status,raw,error"
    assert "queued" in result.stdout


def test_status_needs_ids(tmp_path, gw):
    """Status without any message id is a usage error."""
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = invoke(["status", str(empty)], env_for(gw, tmp_path))
    assert result.exit_code == 2
    assert "no message ids" in result.stderr


def test_balance(tmp_path, sms_gateway_factory):
    """Balance prints the remaining credits; ItecPay, which has no balance command, is a usage error."""
    gw = sms_gateway_factory(credits=417)
    result = invoke(["balance"], env_for(gw, tmp_path))
    assert result.exit_code == 0, result.output
    assert "Remaining credits: 417" in result.stdout
    result = invoke(
        ["balance", "--gateway", "itecpay"], env_for(gw, tmp_path, SMS_ASYNC_BASE_URL=gw.itecpay_url)
    )
    assert result.exit_code == 2
    assert "balance" in result.stderr


def test_balance_bad_credentials(tmp_path, gw):
    """Refused credentials give exit status 3."""
    result = invoke(["balance"], env_for(gw, tmp_path, SMS_ASYNC_PASSWORD="wrong-one"))
    assert result.exit_code == 3
    assert "AuthenticationError" in result.stderr
    assert "wrong-one" not in result.output


def test_dnd(tmp_path, sms_gateway_factory):
    """Dnd checks numbers from arguments and a file, and reports invalid ones (exit 1)."""
    gw = sms_gateway_factory(dnd_numbers=["919800000001"])
    listing = tmp_path / "more.txt"
    listing.write_text("9800000002\n9800000003\n")
    env = env_for(gw, tmp_path)
    result = invoke(["dnd", "9800000001", "+91 98000 00004", "--file", str(listing)], env)
    assert result.exit_code == 0, result.output
    assert "1 listed, 3 not listed, 0 invalid" in result.stdout
    result = invoke(["dnd", "9800000001", "12345"], env)
    assert result.exit_code == 1
    assert "1 invalid" in result.stdout
    assert invoke(["dnd"], env).exit_code == 2


def test_demo_small(tmp_path, monkeypatch):
    """The demo sends a generated campaign with faults to its own simulator and accounts for every row."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["demo", "--count", "3000"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    output = tmp_path / "sms-demo-results.jsonl"
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    counts = Counter(r["outcome"] for r in rows)
    shown = re.search(r"inputs\s*│\s*([\d,]+)", result.stdout)
    assert shown is not None
    assert int(shown.group(1).replace(",", "")) == len(rows)
    assert counts["accepted"] >= 2800
    assert counts["unknown"] == 100  # the dropped connection
    assert counts["invalid"] > 0
    assert counts["duplicate"] > 0
    # Every figure shown comes from one tally: the table says what the rows say, the header adds none.
    for outcome, count in counts.items():
        shown = re.search(rf"{outcome}\s*│\s*([\d,]+)", result.stdout)
        assert shown is not None
        assert int(shown.group(1).replace(",", "")) == count, outcome
    header = next(line for line in result.stdout.splitlines() if line.startswith("Campaign:"))
    assert re.search(r"[\d,]+ (repeated|invalid)", header) is None
    assert "delivered" in result.stdout
    assert str(output) in result.stdout.replace("\n", "")


def test_help_documents_exit_codes():
    """--help lists every subcommand and the exit codes."""
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for word in ("send", "status", "balance", "dnd", "simulate", "demo", "Exit codes", "interrupted"):
        assert word in result.stdout
    result = CliRunner().invoke(cli, ["send", "--help"])
    assert "--resume" in result.stdout
    assert "Exit codes" in result.stdout
    result = CliRunner().invoke(cli, ["send", "--no-such-option"])
    assert result.exit_code == 2


def test_module_entry_point():
    """Python -m sms_async runs the command line."""
    done = subprocess.run(
        [sys.executable, "-m", "sms_async", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert "sms-async" in done.stdout


def test_simulate_serves_until_terminated(tmp_path):
    """Simulate serves the simulated gateway on loopback until SIGTERM, and other commands can use it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sms_async", "simulate", "--port", "0", "--credits", "99"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        match = re.search(r"ITON\s+(http://127\.0\.0\.1:\d+\S*)", "".join(lines))
        assert match is not None, lines
        run_env = {
            "SMS_ASYNC_USERNAME": "demo",
            "SMS_ASYNC_PASSWORD": "demo-password",
            "SMS_ASYNC_BASE_URL": match.group(1),
            "HOME": str(tmp_path),
            "XDG_CONFIG_HOME": str(tmp_path),
            "SMS_ASYNC_CONFIG": None,
        }
        result = CliRunner().invoke(cli, ["balance"], env=run_env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert "Remaining credits: 99" in result.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
    assert proc.returncode == 0
