"""A service's small sends: the CPU one 1-number ``send`` costs, at concurrency 4, 64 and 256.

Run as ``python benchmarks/bench_small_send.py`` (about 20 seconds;
``--sends`` and ``--rounds`` change the work).

A service sizes its one ``BulkSender`` for its largest sends, then mostly
sends to one number per request; what such a send costs must not grow with
the sender's ``concurrency``. The simulated gateway runs in a process of its
own (so that its CPU is not on the clock), answering at once. For each
concurrency, one sender (fast transport, the default hooks set to logging
only, as in ``benchmarks/run.py``) is opened
and warmed up with a few sends, then ``--sends`` 1-number sends are made one
after the other; reported: ``time.process_time()`` per send, in microseconds,
the median over rounds (each round runs every concurrency, the order
rotating), and its ratio to concurrency 4.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sms_async import BulkSender, Iton
from sms_async.instrumentation import LoggingHooks, set_default_hooks

CONCURRENCIES = (4, 64, 256)
USERNAME, PASSWORD = "bench", "bench-password-1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_gateway(port: int, *, latency: float = 0.0) -> subprocess.Popen[bytes]:
    gateway = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sms_async.testing",
            "--port",
            str(port),
            "--username",
            USERNAME,
            "--password",
            PASSWORD,
            "--no-store-messages",
            "--no-track-numbers",
            "--quiet",
            *(["--latency", str(latency)] if latency else []),
        ]
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            time.sleep(0.05)
        else:
            return gateway
    gateway.kill()
    raise SystemExit("the simulated gateway did not start")


async def cpu_per_send(port: int, concurrency: int, sends: int) -> float:
    driver = Iton(USERNAME, PASSWORD, base_url=f"http://127.0.0.1:{port}/ItonSMSAPI/smsService/api/")
    async with BulkSender(driver, concurrency=concurrency, http="fast", trust_env=False) as bulk:
        for n in range(20):
            await bulk.send([f"+9198{n:08d}"], "Hello", sender_id="ITONAB")
        started = time.process_time()
        for n in range(sends):
            result = await bulk.send([f"+9197{n:08d}"], "Hello", sender_id="ITONAB")
            assert result.ok, result
        return (time.process_time() - started) / sends * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    set_default_hooks([LoggingHooks()])
    port = free_port()
    gateway = start_gateway(port)
    samples: dict[int, list[float]] = {c: [] for c in CONCURRENCIES}
    try:
        for round_ in range(args.rounds):
            order = CONCURRENCIES[round_ % 3 :] + CONCURRENCIES[: round_ % 3]
            for concurrency in order:
                samples[concurrency].append(asyncio.run(cpu_per_send(port, concurrency, args.sends)))
    finally:
        gateway.terminate()
        gateway.wait()
    base = statistics.median(samples[CONCURRENCIES[0]])
    print(f"CPU per 1-number send ({args.sends} sends, median of {args.rounds} rounds):")
    for concurrency in CONCURRENCIES:
        median = statistics.median(samples[concurrency])
        print(f"  concurrency {concurrency:>3}: {median:7.0f} us  ({median / base:.2f}x)")


if __name__ == "__main__":
    main()
