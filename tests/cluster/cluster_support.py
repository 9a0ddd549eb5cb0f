"""Helpers of the cluster tests: the services, a schema per test, and processes (simulator, workers, CLI).

Everything talks to 127.0.0.1 only. A test that needs a service that is not
reachable is skipped with the reason, unless SMS_ASYNC_REQUIRE_SERVICES=1
(CI), where it fails instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from clock_support import drive  # noqa: F401 - the cluster tests import it from here

DATABASE_URL = os.environ.get("SMS_ASYNC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
BROKER_HOST, BROKER_PORT = "127.0.0.1", 5672
ITON_PATH = "/ItonSMSAPI/smsService/api/"


def _unavailable(reason: str) -> None:
    if os.environ.get("SMS_ASYNC_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (SMS_ASYNC_REQUIRE_SERVICES=1: services are required)")
    pytest.skip(reason)


def require_postgres() -> None:
    """Skip (or fail, in CI) unless PostgreSQL answers at DATABASE_URL."""
    try:
        import psycopg  # noqa: PLC0415 - the cluster extra may be missing
    except ImportError:
        _unavailable("psycopg is not installed (pip install 'sms_async[cluster]')")
        return
    try:
        with psycopg.connect(DATABASE_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        _unavailable(f"PostgreSQL is not reachable at {DATABASE_URL}: {str(error).strip()[:200]}")


def require_rabbitmq() -> None:
    """Skip (or fail, in CI) unless RabbitMQ accepts connections and rabbitmqctl can make a vhost."""
    try:
        socket.create_connection((BROKER_HOST, BROKER_PORT), timeout=3).close()
    except OSError as error:
        _unavailable(f"RabbitMQ is not reachable at {BROKER_HOST}:{BROKER_PORT}: {error}")
    if shutil.which("rabbitmqctl") is None:
        _unavailable("rabbitmqctl is not installed: the worker tests need a vhost of their own")


def new_schema() -> str:
    """A schema name no other test run uses."""
    return f"sms_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"


def drop_schema(schema: str) -> None:
    """Drop a test schema and everything in it."""
    import psycopg  # noqa: PLC0415

    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def query(sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of one statement, on a connection of its own."""
    import psycopg  # noqa: PLC0415

    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        cursor = conn.execute(sql, params or None)  # type: ignore[call-overload]
        return cursor.fetchall() if cursor.description else []


def numbers(count: int, start: int = 0, prefix: str = "+9198") -> list[str]:
    """``count`` distinct valid Indian mobile numbers in E.164."""
    return [f"{prefix}{n:08d}" for n in range(start, start + count)]


def rabbitmqctl(*args: str) -> None:
    """Run rabbitmqctl; fail the test with its output if it fails."""
    done = subprocess.run(  # noqa: S603 - fixed arguments of the test itself
        ["rabbitmqctl", *args],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"rabbitmqctl {' '.join(args)} failed: {done.stderr.strip()[:300]}")


class Simulator:
    """The simulated gateway in a process of its own (``python -m sms_async.testing``)."""

    def __init__(
        self,
        accounts: Iterable[str],
        latency: float = 0.0,
        faults: Iterable[str] = (),
        *,
        store_messages: bool = False,
    ) -> None:
        args = [sys.executable, "-m", "sms_async.testing", "--port", "0"]
        if not store_messages:
            args.append("--no-store-messages")
        for account in accounts:
            args += ["--account", account]
        for fault in faults:
            args += ["--fault", fault]
        if latency:
            args += ["--latency", str(latency)]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # noqa: S603
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+", line)
        if found is None:
            self.stop()
            pytest.fail(f"the simulator did not start: {line!r}")
        self.origin = found.group(0)
        self.iton_url = self.origin + ITON_PATH

    def stats(self, *, numbers: bool = False, texts: bool = False) -> Any:
        """The simulator's counters (with ``numbers``, every accepted number; with ``texts``, their texts)."""
        from sms_async.testing import SimulatorClient  # noqa: PLC0415

        with SimulatorClient(self.origin) as client:
            return client.stats(numbers=numbers, texts=texts)

    def stop(self) -> None:
        """Stop the simulator (reading what it printed last, and closing its pipe)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()


class Cluster:
    """One test module's services: a schema, a RabbitMQ vhost, the environment workers and the CLI get."""

    def __init__(self, tmp: Path, **settings: str) -> None:
        self.schema = new_schema()
        self.vhost = self.schema
        self.tmp = tmp
        rabbitmqctl("add_vhost", self.vhost)
        rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        self.env = {
            **os.environ,
            "SMS_ASYNC_DATABASE_URL": DATABASE_URL,
            "SMS_ASYNC_DATABASE_SCHEMA": self.schema,
            "SMS_ASYNC_BROKER_URL": f"amqp://guest:guest@{BROKER_HOST}:{BROKER_PORT}/{self.vhost}",
            "SMS_ASYNC_LEASE": "3",
            "SMS_ASYNC_HEARTBEAT": "0.5",
            "SMS_ASYNC_SHARD_SECONDS": "10",
            "HOME": str(tmp),
            "XDG_CONFIG_HOME": str(tmp / ".config"),
            **settings,
        }
        for name in ("SMS_ASYNC_USERNAME", "SMS_ASYNC_PASSWORD", "SMS_ASYNC_TOKEN", "SMS_ASYNC_CONFIG"):
            self.env.pop(name, None)
        self.workers: list[Worker] = []

    def cli(
        self, *args: str, check: bool = True, timeout: float = 180, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``sms-async ARGS`` in a process with the cluster's environment (and ``env`` over it)."""
        done = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "sms_async", *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode not in {0, 1}:
            pytest.fail(
                f"sms-async {' '.join(args)} exited {done.returncode}: "
                f"{done.stdout.strip()[-800:]} {done.stderr.strip()[-800:]}"
            )
        return done

    def create(self, path: Path, *options: str) -> int:
        """``campaign create``; the new campaign's id."""
        done = self.cli(
            "campaign", "create", str(path), "--text", "Hello", "--sender-id", "ITONAB", "--json", *options
        )
        return int(json.loads(done.stdout)["id"])

    def status(self, campaign: int, *options: str) -> tuple[int, dict[str, Any]]:
        """``campaign status --json``: its exit status and document."""
        done = self.cli("campaign", "status", str(campaign), "--json", *options, check=False)
        if done.returncode not in {0, 1, 3}:
            pytest.fail(f"campaign status exited {done.returncode}: {done.stderr.strip()[-800:]}")
        return done.returncode, json.loads(done.stdout)

    def export(self, campaign: int) -> list[dict[str, Any]]:
        """``campaign export`` to JSON Lines, read back."""
        output = self.tmp / f"export-{campaign}.jsonl"
        self.cli("campaign", "export", str(campaign), "--output", str(output))
        with output.open(encoding="utf-8") as file:
            return [json.loads(line) for line in file]

    def worker(
        self, sim: Simulator, queue: str, username: str, password: str, concurrency: int = 16
    ) -> Worker:
        """Start a worker on ``queue`` with that account, and wait until it takes tasks."""
        env = {
            **self.env,
            "SMS_ASYNC_USERNAME": username,
            "SMS_ASYNC_PASSWORD": password,
            "SMS_ASYNC_BASE_URL": sim.iton_url,
        }
        started = Worker(env, queue, concurrency, self.tmp / f"worker-{len(self.workers)}.log")
        self.workers.append(started)
        return started

    def close(self) -> None:
        """Stop the workers, drop the schema and the vhost."""
        for started in self.workers:
            if started.process.poll() is None:
                started.process.send_signal(signal.SIGTERM)
        for started in self.workers:
            started.stop()
        try:
            drop_schema(self.schema)
        finally:
            rabbitmqctl("delete_vhost", self.vhost)


class Worker:
    """``sms-async worker`` in a process of its own, its log in a file."""

    def __init__(self, env: dict[str, str], queue: str, concurrency: int, log: Path) -> None:
        self.log = log
        self._file = log.open("w")
        self.process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "sms_async", "worker", "-Q", queue, "--concurrency", str(concurrency)],
            env=env,
            stdout=self._file,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.process.pid

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait until the worker takes tasks."""
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            if " ready." in self.log.read_text(errors="replace"):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        pytest.fail(f"the worker did not start: {self.log.read_text(errors='replace')[-2000:]}")

    def kill(self) -> None:
        """SIGKILL: the worker dies at once, whatever it is doing."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """Stop the worker (warm shutdown), or kill it if it does not stop."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._file.close()


def write_numbers(path: Path, values: Iterable[str]) -> Path:
    """One number a line."""
    with path.open("w", encoding="utf-8") as file:
        for value in values:
            file.write(value + "\n")
    return path


def wait_for(condition: Any, timeout: float, what: str) -> None:
    """Poll ``condition()`` every 0.1 s until it holds; fail after ``timeout`` seconds."""
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")
