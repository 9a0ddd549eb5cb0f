"""Campaigns across machines: throughput of 1, 2 and 4 workers beside one ``send``; loading; the store's cost.

Run as ``python benchmarks/bench_cluster.py`` (about five minutes on 2 cores).
It needs PostgreSQL (``SMS_ASYNC_TEST_DATABASE_URL``, default
``postgresql://postgres@127.0.0.1:5432/test``), RabbitMQ on 127.0.0.1:5672 and
``rabbitmqctl``; it works in a schema and a vhost of its own and drops both.

* **Throughput.** The simulated gateway runs in a process of its own with
  20 ms of latency on every request (messages not stored, numbers not
  counted). Each round sends the same recipients (``--recipients``, 200,000)
  once with ``BulkSender.send`` in a fresh process (concurrency 32, uvloop),
  once with ``sms-async send`` (the single-machine campaign: journal and
  results file), and once as a cluster campaign on 1, 2 and 4 worker processes
  (``sms-async worker``, 32 requests in flight each, started before the
  clock): from ``campaign start`` until the store says done. No rate limit.
  The order rotates from round to round; reported: each one's median
  recipients/s, and the median of its per-round ratio to ``BulkSender.send``.
* **Loading.** ``sms-async campaign create`` of a file of ``--create``
  recipients (1,000,000; 1 % repeats and 1 % invalid lines) and of a fifth of
  it: wall time and the process's peak RSS (``ru_maxrss`` from ``wait4``).
* **The store's cost per batch.** In this process, against the same database:
  ``claim`` then ``settle`` (100 result rows) of 2,000 batches, one at a
  time and 16 at a time; and ``reserve`` (the shared rate meter).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import anyio  # noqa: E402

from sms_async import Outcome  # noqa: E402
from sms_async.cluster import CampaignSpec, CampaignStore, create_campaign  # noqa: E402

DATABASE_URL = os.environ.get("SMS_ASYNC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
USERNAME, PASSWORD = "bench", "bench-password-1"
ITON_PATH = "/ItonSMSAPI/smsService/api/"


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:4])} failed: {done.stderr[-2000:]}")
    return done


class Services:
    """The simulator, a schema, a vhost, and the environment of the CLI and the workers."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.name = f"sms_bench_{uuid.uuid4().hex[:8]}"
        _run(["rabbitmqctl", "add_vhost", self.name])
        _run(["rabbitmqctl", "set_permissions", "-p", self.name, "guest", ".*", ".*", ".*"])
        self.sim = subprocess.Popen(
            [
                sys.executable,
                *("-m", "sms_async.testing", "--port", "0", "--latency", "0.02"),
                *("--username", USERNAME, "--password", PASSWORD),
                *("--no-store-messages", "--no-track-numbers"),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.sim.stdout is not None
        line = self.sim.stdout.readline()
        self.origin = line.rsplit(" ", 1)[-1].strip()
        self.env = {
            **os.environ,
            "SMS_ASYNC_DATABASE_URL": DATABASE_URL,
            "SMS_ASYNC_DATABASE_SCHEMA": self.name,
            "SMS_ASYNC_BROKER_URL": f"amqp://guest:guest@127.0.0.1:5672/{self.name}",
            "SMS_ASYNC_USERNAME": USERNAME,
            "SMS_ASYNC_PASSWORD": PASSWORD,
            "SMS_ASYNC_BASE_URL": self.origin + ITON_PATH,
            "HOME": str(tmp),
        }
        self.workers: list[subprocess.Popen[bytes]] = []

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run([sys.executable, "-m", "sms_async", *args], self.env)

    def start_workers(self, count: int) -> None:
        self.stop_workers()
        logs = []
        for n in range(count):
            log = self.tmp / f"worker-{n}.log"
            logs.append(log)
            self.workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "sms_async", "worker", "-Q", "bench", "--concurrency", "32"],
                    env=self.env,
                    stdout=log.open("w"),
                    stderr=subprocess.STDOUT,
                )
            )
        give_up = time.monotonic() + 60
        while not all(" ready." in log.read_text(errors="replace") for log in logs):
            if time.monotonic() > give_up:
                raise SystemExit("workers did not start")
            time.sleep(0.1)

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            worker.wait()
        self.workers = []

    def close(self) -> None:
        self.stop_workers()
        self.sim.terminate()
        self.sim.communicate()

        async def drop() -> None:
            async with CampaignStore(DATABASE_URL, schema=self.name) as store:
                await store.drop()

        anyio.run(drop)
        _run(["rabbitmqctl", "delete_vhost", self.name])


# -- throughput --------------------------------------------------------------------------------


def send_once(services: Services, numbers_file: Path) -> tuple[float, float]:
    code = (
        "import sys, time, anyio\n"
        "from sms_async import BulkSender, Iton, Outcome\n"
        "numbers = open(sys.argv[1]).read().split()\n"
        "async def main():\n"
        "    driver = Iton(sys.argv[2], sys.argv[3], base_url=sys.argv[4])\n"
        "    async with BulkSender(driver, concurrency=32) as bulk:\n"
        "        started, cpu = time.perf_counter(), time.process_time()\n"
        "        result = await bulk.send(numbers, 'Hello', sender_id='ITONAB')\n"
        "        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu\n"
        "    assert result.counts()[Outcome.ACCEPTED] == len(numbers), result\n"
        "    print(elapsed, cpu)\n"
        "anyio.run(main, backend_options={'use_uvloop': True})\n"
    )
    done = _run(
        [sys.executable, "-c", code, str(numbers_file), USERNAME, PASSWORD, services.origin + ITON_PATH],
        services.env,
    )
    elapsed, cpu = done.stdout.split()
    return float(elapsed), float(cpu)


def cli_send_once(services: Services, numbers_file: Path, round_: int) -> float:
    output = services.tmp / f"send-{round_}.jsonl"
    started = time.perf_counter()
    services.cli(
        "send", str(numbers_file), "--text", "Hello", "--sender-id", "ITONAB", "--output", str(output), "-q"
    )
    return time.perf_counter() - started


def _cpu_seconds(pid: int) -> float:
    """User and system CPU of process ``pid`` so far (every thread), from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cluster_once(services: Services, numbers_file: Path) -> tuple[float, float]:
    """Seconds from ``campaign start`` until the store says done, and the workers' CPU seconds meanwhile."""
    created = services.cli(
        "campaign",
        "create",
        str(numbers_file),
        "--text",
        "Hello",
        "--sender-id",
        "ITONAB",
        "--queue",
        "bench",
        "--json",
    )
    campaign = int(json.loads(created.stdout)["id"])

    pids = [worker.pid for worker in services.workers]
    cpu = 0.0

    async def run() -> float:
        nonlocal cpu
        from sms_async.cluster.celery import app, configure, enqueue  # noqa: PLC0415

        configure(app, services.env["SMS_ASYNC_BROKER_URL"])
        async with CampaignStore(DATABASE_URL, schema=services.name) as store:
            cpu = -sum(map(_cpu_seconds, pids))
            started = time.perf_counter()
            found, shards = await store.start(campaign)
            enqueue(found, shards)
            while True:
                status = await store.status(campaign)
                if status.campaign.state == "done":
                    elapsed = time.perf_counter() - started
                    cpu += sum(map(_cpu_seconds, pids))
                    break
                await anyio.sleep(0.05)
            if status.outcomes[Outcome.ACCEPTED] != found.recipients:
                raise SystemExit(f"campaign {campaign} did not accept everything: {status.outcomes}")
            return elapsed

    return anyio.run(run), cpu


KINDS = (
    "BulkSender.send",
    "sms-async send",
    "cluster, 1 worker",
    "cluster, 2 workers",
    "cluster, 4 workers",
)


def throughput(
    services: Services, recipients: int, rounds: int, kinds: tuple[str, ...] = KINDS
) -> dict[str, Any]:
    """Each kind's recipients/s, median per-round ratio to ``BulkSender.send`` (which must be first) and CPU.

    CPU is the client's (``BulkSender.send``: its process; a cluster: its
    workers' processes while the campaign runs), in µs a recipient.
    """
    numbers_file = services.tmp / "numbers.txt"
    numbers_file.write_text("".join(f"+9198{n:08d}\n" for n in range(recipients)))
    samples: dict[str, list[float]] = {kind: [] for kind in kinds}
    cpus: dict[str, list[float]] = {kind: [] for kind in kinds}
    for round_ in range(rounds):
        shift = round_ % len(kinds)
        order = kinds[shift:] + kinds[:shift]
        for kind in order:
            cpu = math.nan
            if kind == "BulkSender.send":
                elapsed, cpu = send_once(services, numbers_file)
            elif kind == "sms-async send":
                elapsed = cli_send_once(services, numbers_file, round_)
            else:
                services.start_workers(int(kind.split(", ")[1].split()[0]))
                elapsed, cpu = cluster_once(services, numbers_file)
                services.stop_workers()
            samples[kind].append(elapsed)
            cpus[kind].append(cpu / recipients * 1e6)
            print(
                f"  round {round_ + 1}: {kind}: {recipients / elapsed:,.0f} recipients/s, "
                f"CPU {cpu / recipients * 1e6:.1f} µs a recipient",
                flush=True,
            )
    base = samples["BulkSender.send"]
    return {
        kind: {
            "recipients_per_s": recipients / statistics.median(values),
            "ratio_to_send": statistics.median(b / v for b, v in zip(base, values, strict=True)),
            "ratios": [b / v for b, v in zip(base, values, strict=True)],
            "cpu_us_per_recipient": statistics.median(cpus[kind]),
        }
        for kind, values in samples.items()
    }


# -- loading -----------------------------------------------------------------------------------


def loading(services: Services, count: int) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for size in (count // 5, count):
        path = services.tmp / f"load-{size}.txt"
        with path.open("w") as file:
            for n in range(size):
                if n % 100 == 7:
                    file.write("not a number\n")
                elif n % 100 == 13:
                    file.write(f"+9197{n - 1:08d}\n")  # repeats the line before
                else:
                    file.write(f"+9197{n:08d}\n")
        args = [
            sys.executable,
            "-m",
            "sms_async",
            "campaign",
            "create",
            str(path),
            "--text",
            "Hello",
            "--sender-id",
            "ITONAB",
            "--queue",
            "bench-load",
            "--json",
        ]
        started = time.perf_counter()
        process = subprocess.Popen(args, env=services.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        _, error = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"campaign create failed: {error.decode()[-2000:]}")
        found[str(size)] = {
            "seconds": elapsed,
            "peak_rss_mb": usage.ru_maxrss / 1024,
            "per_s": size / elapsed,
        }
        print(f"  create {size:,}: {elapsed:.1f} s, peak RSS {usage.ru_maxrss / 1024:.0f} MB", flush=True)
    return found


# -- the store's cost per batch ---------------------------------------------------------------------


async def store_cost(services: Services, batches: int = 2000) -> dict[str, float]:
    async with CampaignStore(DATABASE_URL, schema=services.name, max_connections=16, warm=True) as store:
        numbers = [f"+9196{n:08d}" for n in range(batches * 100)]
        campaign = await create_campaign(store, CampaignSpec("Hello", "ITONAB", queue="bench-cost"), numbers)
        await store.start(campaign.id)
        counts = {Outcome.ACCEPTED: 100}

        async def one(idx: int) -> None:
            assert await store.claim(campaign.id, idx, "bench")
            first = idx * 100 + 1
            rows = [(p, "accepted", f"{p:024x}", "") for p in range(first, first + 100)]
            assert await store.settle(campaign.id, idx, "bench", state="sent", counts=counts, rows=rows)

        half = batches // 2
        started, cpu = time.perf_counter(), time.process_time()
        for idx in range(half):
            await one(idx)
        sequential = (time.perf_counter() - started) / half
        sequential_cpu = (time.process_time() - cpu) / half

        limiter = anyio.CapacityLimiter(16)

        async def limited(idx: int) -> None:
            async with limiter:
                await one(idx)

        started, cpu = time.perf_counter(), time.process_time()
        async with anyio.create_task_group() as tg:
            for idx in range(half, batches):
                tg.start_soon(limited, idx)
        concurrent = (time.perf_counter() - started) / (batches - half)
        concurrent_cpu = (time.process_time() - cpu) / (batches - half)

        started = time.perf_counter()
        for _ in range(1000):
            await store.fetchone("reserve", key="bench", seconds=0.0)
        reserve = (time.perf_counter() - started) / 1000
    return {
        "claim_settle_one_at_a_time_ms": sequential * 1000,
        "claim_settle_16_at_a_time_ms": concurrent * 1000,
        "claim_settle_one_at_a_time_cpu_ms": sequential_cpu * 1000,
        "claim_settle_16_at_a_time_cpu_ms": concurrent_cpu * 1000,
        "reserve_ms": reserve * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--create", type=int, default=1_000_000)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "cluster.json")
    parser.add_argument(
        "--kinds",
        nargs="+",
        choices=KINDS,
        default=list(KINDS),
        metavar="KIND",
        help="the throughput rows to run (BulkSender.send always runs, first; --rounds 0 skips them all)",
    )
    parser.add_argument("--no-store", action="store_true", help="skip the store's cost per batch")
    args = parser.parse_args()
    kinds = ("BulkSender.send", *(kind for kind in args.kinds if kind != "BulkSender.send"))
    with tempfile.TemporaryDirectory(prefix="sms-bench-cluster-") as tmp:
        services = Services(Path(tmp))
        try:
            report: dict[str, Any] = {}
            if args.rounds:
                print("throughput (20 ms gateway latency):", flush=True)
                report["throughput"] = throughput(services, args.recipients, args.rounds, kinds)
            if args.create:
                print("loading:", flush=True)
                report["create"] = loading(services, args.create)
            if not args.no_store:
                print("store cost:", flush=True)
                report["store"] = anyio.run(store_cost, services)
        finally:
            services.close()
    report["recipients"] = args.recipients
    report["rounds"] = args.rounds
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
