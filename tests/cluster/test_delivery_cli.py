"""The campaign commands of delivery, windows and pause: create's schedule, status, reports, export, pause."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sqlite3

import pytest
from click.testing import CliRunner
from cluster_support import numbers

from sms_async.cli import cli
from sms_async.testing import DeliveryPlan, DeliveryRule, RequestLog, SimulatedGateway

EVERY_ONE_DELIVERED = DeliveryPlan([DeliveryRule("delivered", 0.9), DeliveryRule("never", 0.1)], seed=7)


@pytest.fixture
def here(tmp_path):
    """A SQLite store in the test's directory, and no credentials."""
    return {
        "SMS_ASYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'campaigns.db'}",
        "SMS_ASYNC_USERNAME": None,
        "SMS_ASYNC_PASSWORD": None,
        "SMS_ASYNC_GATEWAY": None,
        "SMS_ASYNC_CONFIG": None,
        "SMS_ASYNC_BROKER_URL": None,
        "HOME": str(tmp_path),
    }


def run(args, env):
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def create(env, tmp_path, count, *options):
    path = tmp_path / "numbers.txt"
    path.write_text("".join(f"{n}\n" for n in numbers(count)))
    return run(["campaign", "create", str(path), "-t", "Hello", "-s", "ITONAB", "--json", *options], env)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--window", "09:00-21:00", "--timezone", "Asia/Kolkatta"], "unknown time zone 'Asia/Kolkatta'"),
        (["--window", "09:00-09:00", "--timezone", "UTC"], "zero length"),
        (["--window", "9-21", "--timezone", "UTC"], "HH:MM-HH:MM"),
        (["--window", "09:00-21:00"], "needs a time zone"),
        (["--start-at", "2020-01-01T10:00+05:30"], "is in the past"),
        (["--start-at", "2099-01-01T10:00"], "no offset"),
    ],
)
def test_a_schedule_that_cannot_be_kept_is_refused_at_create_with_status_2(here, tmp_path, options, message):
    """A past start, an unknown zone, a zero-length or unreadable window: status 2, nothing stored."""
    done = create(here, tmp_path, 10, *options)
    assert done.exit_code == 2, done.output
    assert message in done.stderr
    assert not (tmp_path / "campaigns.db").exists()


def test_a_campaign_before_its_start_says_it_waits_and_sends_nothing_when_run(here, tmp_path):
    """Created to start in the far future, status says it waits; nothing is claimed meanwhile."""
    made = create(
        here,
        tmp_path,
        10,
        "--window",
        "09:00-21:00",
        "--timezone",
        "Asia/Kolkata",
        "--start-at",
        "2099-12-07T10:00+05:30",
    )
    campaign = json.loads(made.stdout)["id"]
    shown = run(["campaign", "status", str(campaign)], here)
    assert "waiting for its start time (10:00 IST, in " in shown.stdout
    assert "windows     09:00-21:00 (Asia/Kolkata)" in shown.stdout
    document = json.loads(run(["campaign", "status", str(campaign), "--json"], here).stdout)
    assert document["waiting"].startswith("waiting for its start time")
    assert (document["windows"], document["timezone"]) == ("09:00-21:00", "Asia/Kolkata")


def test_run_status_reports_and_export_show_delivery(here, tmp_path):
    """After a run, polls record delivery: status shows the rate, export the delivery columns."""
    made = create(here, tmp_path, 300, "--report-share", "0.5")
    campaign = json.loads(made.stdout)["id"]
    log = RequestLog()
    with SimulatedGateway(delivery=EVERY_ONE_DELIVERED, status_delays=(0.0, 0.0), request_log=log) as gw:
        env = {
            **here,
            "SMS_ASYNC_USERNAME": gw.username,
            "SMS_ASYNC_PASSWORD": gw.password,
            "SMS_ASYNC_BASE_URL": gw.iton_url,
        }
        assert run(["campaign", "run", str(campaign)], env).exit_code == 0
        shown = run(["campaign", "status", str(campaign)], env).stdout
        assert "300 accepted: 0 delivered, 0 undelivered, 0 failed, 0 expired, 300 pending" in shown
        early = run(["campaign", "reports", str(campaign)], env)
        assert "0 delivered" in early.stdout  # no poll is due 30 s after acceptance yet
        # Thirty seconds pass: every id falls due (the file is this test's own).
        with contextlib.closing(sqlite3.connect(tmp_path / "campaigns.db")) as conn, conn:
            conn.execute("UPDATE deliveries SET next_poll_at = next_poll_at - 30")
        polled = run(["campaign", "reports", str(campaign)], env)
        # Three ids (one per request of 100 numbers), asked about in one request, once.
        assert len(log.entries("iton.message_status")) == 1
        expected = EVERY_ONE_DELIVERED.expected(numbers(300), 60)
    assert polled.exit_code == 1, polled.output  # some numbers are still pending
    delivered = expected["delivered"]
    assert f"{delivered:,} delivered" in polled.stdout
    assert f"{300 - delivered:,} pending" in polled.stdout
    shown = run(["campaign", "status", str(campaign)], here).stdout
    assert f"delivery rate {delivered / 300:.1%}" in shown
    document = json.loads(run(["campaign", "status", str(campaign), "--json"], here).stdout)
    assert document["delivery"]["delivered"] == delivered
    assert document["delivery"]["pending"] == 300 - delivered
    output = tmp_path / "results.csv"
    assert run(["campaign", "export", str(campaign), "-o", str(output)], here).exit_code == 0
    rows = list(csv.DictReader(io.StringIO(output.read_text())))
    assert len(rows) == 300
    assert sum(row["delivery"] == "delivered" for row in rows) == delivered
    assert all(row["delivered_at"] for row in rows if row["delivery"] == "delivered")
    assert sum(row["delivery"] == "pending" and not row["delivered_at"] for row in rows) == 300 - delivered
    jsonl = tmp_path / "results.jsonl"
    assert run(["campaign", "export", str(campaign), "-o", str(jsonl), "--no-delivery"], here).exit_code == 0
    assert "delivery" not in jsonl.read_text()


def test_pause_and_resume_from_the_command_line(here, tmp_path):
    """A paused campaign's run sends nothing and says so; resumed, run sends it all, once."""
    campaign = json.loads(create(here, tmp_path, 250).stdout)["id"]
    paused = run(["campaign", "pause", str(campaign)], here)
    assert paused.exit_code == 0, paused.output
    assert f"resume it with: sms-async campaign resume {campaign}" in paused.stdout
    assert "paused already" in run(["campaign", "pause", str(campaign)], here).stdout
    with SimulatedGateway() as gw:
        env = {
            **here,
            "SMS_ASYNC_USERNAME": gw.username,
            "SMS_ASYNC_PASSWORD": gw.password,
            "SMS_ASYNC_BASE_URL": gw.iton_url,
        }
        held = run(["campaign", "run", str(campaign)], env)
        assert gw.stats.accepted == 0
        assert "paused: nothing more is sent until" in held.stdout
        resumed = run(["campaign", "resume", str(campaign)], here)
        assert f"sms-async campaign run {campaign}" in resumed.stdout
        done = run(["campaign", "run", str(campaign)], env)
        assert done.exit_code == 0, done.output
        assert gw.stats.accepted == 250
        assert not gw.stats.duplicate_numbers()
