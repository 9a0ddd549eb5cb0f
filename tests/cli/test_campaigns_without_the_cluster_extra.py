"""Stored campaigns on the SQLite store need no PostgreSQL or Celery library installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from sms_async.testing import SimulatedGateway

# Runs the command line in a Python where the cluster extra's libraries cannot be
# imported, as on a machine where only `pip install 'sms_async[cli]'` was done.
WITHOUT_CLUSTER_EXTRA = """
import runpy, sys
for name in ("psycopg", "psycopg_pool", "celery", "kombu"):
    sys.modules[name] = None  # an import of it raises ImportError
sys.argv = ["sms-async", *sys.argv[1:]]
runpy.run_module("sms_async", run_name="__main__")
"""


def sms_async(args: list[str], cwd: Path, gw: SimulatedGateway) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SMS_ASYNC_")}
    env.update(
        SMS_ASYNC_USERNAME=gw.username,
        SMS_ASYNC_PASSWORD=gw.password,
        SMS_ASYNC_BASE_URL=gw.iton_url,
        HOME=str(cwd),
        XDG_CONFIG_HOME=str(cwd / ".config"),
    )
    return subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-c", WITHOUT_CLUSTER_EXTRA, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_create_run_status_and_export_on_sqlite_need_no_cluster_extra(tmp_path, sms_gateway):
    """create, run, status and export on the default SQLite store work with psycopg and Celery missing."""
    source = tmp_path / "customers.csv"
    source.write_text("phone,name\n+919812345678,Asha\n+919812345679,Ravi\nnot-a-number,Zed\n")
    created = sms_async(
        ["campaign", "create", str(source), "--text", "Hi {name}", "--sender-id", "ITONAB", "--json"],
        tmp_path,
        sms_gateway,
    )
    assert created.returncode == 0, created.stderr
    campaign = str(json.loads(created.stdout)["id"])
    assert (tmp_path / "sms-async-campaigns.db").exists()
    ran = sms_async(["campaign", "run", campaign], tmp_path, sms_gateway)
    assert ran.returncode == 1, ran.stderr  # the invalid input
    status = json.loads(sms_async(["campaign", "status", campaign, "--json"], tmp_path, sms_gateway).stdout)
    assert status["state"] == "done"
    assert (status["outcomes"]["accepted"], status["outcomes"]["invalid"]) == (2, 1)
    exported = sms_async(["campaign", "export", campaign, "--output", "out.jsonl"], tmp_path, sms_gateway)
    assert exported.returncode == 0, exported.stderr
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [row["outcome"] for row in rows] == ["accepted", "accepted", "invalid"]
    stats = sms_gateway.stats
    assert stats.received == 2
    assert not stats.duplicate_numbers()
    texts = sorted(sms_gateway.message(row["message_id"]).text for row in rows if row["message_id"])
    assert texts == ["Hi Asha", "Hi Ravi"]


def test_a_postgresql_store_without_the_extra_says_what_to_install(tmp_path, sms_gateway):
    """A postgresql:// store with psycopg missing is one line naming the extra, not an internal error."""
    source = tmp_path / "numbers.txt"
    source.write_text("+919812345678\n")
    done = sms_async(
        [
            *("campaign", "create", str(source), "--text", "Hi", "--sender-id", "ITONAB"),
            *("--store", "postgresql://nobody@127.0.0.1:1/none"),
        ],
        tmp_path,
        sms_gateway,
    )
    assert done.returncode != 0
    assert "sms_async[cluster]" in done.stderr
    assert "internal error" not in done.stderr
