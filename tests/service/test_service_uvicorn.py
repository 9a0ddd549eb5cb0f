"""The service recipe in a real uvicorn process, under faults and client disconnects, stopped with SIGTERM."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from recipe_support import check_record, recipe_environment, records
from service_support import numbers, received

from sms_async.testing import Fault

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

LAUNCHER = Path(__file__).with_name("run_service.py")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def listening(port: int, process: subprocess.Popen[bytes]) -> None:
    """Wait until the service accepts connections."""
    with anyio.fail_after(30):
        while True:
            assert process.poll() is None, "the service exited before listening"
            try:
                stream = await anyio.connect_tcp("127.0.0.1", port)
            except OSError:
                await anyio.sleep(0.05)
            else:
                await stream.aclose()
                return


class Clients:
    """Clients that post distinct numbers until told to stop; some give up early (a disconnect)."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/send"
        self.requests: dict[str, list[str]] = {}
        self.answers: dict[str, dict[str, Any]] = {}
        self.errors: dict[str, str] = {}
        self.stopping = False
        self._next = 0
        self._random = random.Random(5)

    def _numbers(self) -> list[str]:
        size = self._random.choice([1, 1, 3, 50, 150, 300])
        start, self._next = self._next, self._next + size
        return numbers(size, start)

    async def client(self, index: int) -> None:
        """Post one request after another; every third client gives up after 0.3 s."""
        timeout = 0.3 if index % 3 == 0 else 30.0
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as http:
            serial = 0
            while not self.stopping:
                request_id = f"c{index}-{serial}"
                serial += 1
                to = self._numbers()
                self.requests[request_id] = to
                try:
                    response = await http.post(
                        self.url,
                        json={"to": to, "text": "Hello", "sender_id": "ITONAB"},
                        headers={"x-request-id": request_id},
                    )
                except httpx.HTTPError as error:
                    self.errors[request_id] = type(error).__name__
                    if isinstance(error, httpx.ConnectError):
                        return  # the service is gone
                    continue
                if response.status_code != 200:
                    # Only a call the shutdown cut short may fail (uvicorn answers 500 for it).
                    assert self.stopping, response.text
                    self.errors[request_id] = f"HTTP {response.status_code}"
                    continue
                self.answers[request_id] = response.json()


async def test_sigterm_under_faults_accounts_for_every_number(sms_gateway_factory, tmp_path):
    """Under faults, disconnects and a SIGTERM mid-load, every number is accounted for, none sent unsent."""
    gw = sms_gateway_factory(
        faults=[
            Fault("status_503", rate=0.05, retry_after=0.05),
            Fault("stall", rate=0.02),
            Fault("latency", rate=1.0, seconds=(0.01, 0.4)),
        ],
        seed=11,
    )
    port = free_port()
    log = tmp_path / "service.log"
    environment = {
        **os.environ,
        **recipe_environment(gw, SMS_CONCURRENCY="16", SMS_SEND_TIMEOUT="2"),
        "SERVICE_PORT": str(port),
        "SERVICE_LOG": str(log),
        "GRACEFUL_SHUTDOWN": "1",
    }
    # Started and polled without blocking the loop; only the kill on failure waits.
    process = subprocess.Popen([sys.executable, str(LAUNCHER)], env=environment)  # noqa: S603, ASYNC220
    try:
        await listening(port, process)
        clients = Clients(port)
        async with anyio.create_task_group() as tg:
            for index in range(24):
                tg.start_soon(clients.client, index)
            with anyio.fail_after(30):
                while len(clients.answers) < 40 or gw.stats.in_flight < 4:  # noqa: ASYNC110 - other threads
                    await anyio.sleep(0.01)
            process.send_signal(signal.SIGTERM)
            clients.stopping = True
            with anyio.fail_after(60):
                while process.poll() is None:  # noqa: ASYNC110 - another process
                    await anyio.sleep(0.05)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    # Uvicorn raises the signal it caught again once it has shut down gracefully.
    assert process.returncode in {0, -signal.SIGTERM}
    assert "Application shutdown complete" in log.read_text()
    with anyio.fail_after(20):
        while gw.stats.in_flight:  # noqa: ASYNC110 - the gateway's thread
            await anyio.sleep(0.01)

    got = received(gw)  # checks that no number reached the gateway twice
    logged = {record["request"]: record for record in records(log.read_text().splitlines())}
    stopped = {r["aborted"] for r in logged.values()} - {None}
    assert stopped  # some calls were cut: by a deadline, a disconnect or the shutdown
    accounted_for: set[str] = set()
    for request_id, to in clients.requests.items():
        record = logged.get(request_id)
        if record is None:
            # The service never started this call (refused, or cut before its body was read).
            assert request_id not in clients.answers
            assert not set(to) & got
            continue
        check_record(record, to, got)
        if request_id in clients.answers:
            assert clients.answers[request_id] == {k: v for k, v in record.items() if k != "request"}
        accounted_for |= set(to)
    assert got <= accounted_for
    assert len(logged) <= len(clients.requests)
