"""What one ``bulk.stats()`` costs, on each transport, with 4, 64 and 256 connections in the pool.

Run as ``python benchmarks/bench_stats.py`` (about 20 seconds; ``--calls``
and ``--rounds`` change the work).

A health endpoint or a metrics scrape calls ``stats()`` on a sender that is
working; its cost must stay negligible at any pool size. The fast transport
keeps its counts; through httpx they are counted over httpcore's pool, one
connection at a time. The simulated gateway runs in a process of its own,
answering after 20 ms. For each transport (``fast``, ``httpx``) and
concurrency, one sender is opened and sends ``100 x concurrency`` numbers at
once, so that its pool holds ``concurrency`` connections (the report shows
how many ``stats()`` saw), idle once the send is over; then ``--calls`` calls
of ``bulk.stats()`` are timed back to back, with nothing awaited between them.
Reported: ``time.perf_counter()`` and ``time.process_time()`` per call, in
microseconds, the median over rounds (each round runs every configuration,
the order rotating).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from bench_small_send import PASSWORD, USERNAME, free_port, start_gateway

from sms_async import BulkSender, Iton
from sms_async.instrumentation import LoggingHooks, set_default_hooks

TRANSPORTS = ("fast", "httpx")
CONCURRENCIES = (4, 64, 256)
CONFIGURATIONS = [(http, c) for http in TRANSPORTS for c in CONCURRENCIES]


async def time_stats(port: int, http: str, concurrency: int, calls: int) -> tuple[float, float, int]:
    """Wall and CPU microseconds per ``stats()`` call, and the connections it reported open."""
    driver = Iton(USERNAME, PASSWORD, base_url=f"http://127.0.0.1:{port}/ItonSMSAPI/smsService/api/")
    async with BulkSender(driver, concurrency=concurrency, http=http, trust_env=False) as bulk:
        numbers = [f"+9198{n:08d}" for n in range(100 * concurrency)]
        result = await bulk.send(numbers, "Hello", sender_id="ITONAB")
        assert result.ok, result
        stats = bulk.stats()
        assert stats.connections_open is not None, stats
        assert stats.connections_idle == stats.connections_open, stats
        for _ in range(100):
            bulk.stats()
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            bulk.stats()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return wall / calls * 1e6, cpu / calls * 1e6, stats.connections_open


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    set_default_hooks([LoggingHooks()])
    port = free_port()
    gateway = start_gateway(port, latency=0.02)
    walls: dict[tuple[str, int], list[float]] = {config: [] for config in CONFIGURATIONS}
    cpus: dict[tuple[str, int], list[float]] = {config: [] for config in CONFIGURATIONS}
    pools: dict[tuple[str, int], set[int]] = {config: set() for config in CONFIGURATIONS}
    try:
        for round_ in range(args.rounds):
            shift = round_ % len(CONFIGURATIONS)
            for http, concurrency in CONFIGURATIONS[shift:] + CONFIGURATIONS[:shift]:
                wall, cpu, pool = asyncio.run(time_stats(port, http, concurrency, args.calls))
                walls[http, concurrency].append(wall)
                cpus[http, concurrency].append(cpu)
                pools[http, concurrency].add(pool)
    finally:
        gateway.terminate()
        gateway.wait()
    print(f"One bulk.stats() call ({args.calls} calls, median of {args.rounds} rounds):")
    for http, concurrency in CONFIGURATIONS:
        seen = "/".join(str(n) for n in sorted(pools[http, concurrency]))
        print(
            f"  {http:<5} concurrency {concurrency:>3} ({seen:>3} connections): "
            f"{statistics.median(walls[http, concurrency]):6.2f} us wall, "
            f"{statistics.median(cpus[http, concurrency]):6.2f} us CPU"
        )


if __name__ == "__main__":
    main()
