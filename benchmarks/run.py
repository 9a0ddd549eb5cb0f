"""Benchmarks for sms_async: the library against raw httpx and raw aiohttp loops.

``python benchmarks/run.py`` (the same as ``--quick``, about a minute) or
``--full`` (every configuration, 15-25 minutes on 2 cores); ``nox -s bench --
--full`` passes the flag on. The table goes to ``benchmarks/results/latest.md``.

How it measures (``benchmarks/README.md`` says why):

* The simulated gateway (``python -m sms_async.testing``) runs in a process of
  its own, pinned to CPU 0, with message storage and number tracking off so
  that its memory stays flat; one gateway per simulated latency.
* Every measurement is a fresh client process pinned to CPU 1. It builds its
  input (and, for the raw loops, every request), warms its connections up,
  then times one run with ``time.perf_counter`` and ``time.process_time`` and
  reports its peak RSS (``ru_maxrss``). A run in which any recipient was not
  accepted stops the benchmark, so that a broken run cannot report a speed.
* In each round every client of every configuration runs once (the order
  rotating from round to round); figures are medians over the rounds, and
  ratios are medians of per-round ratios to the raw aiohttp loop of the same
  configuration, so that other work on the machine hits all of them alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import json
import math
import os
import platform
import resource
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sms_async import BulkResult, BulkSender, ItecPay, Iton, Message  # noqa: E402  (after the path fix above)
from sms_async.providers._base import Driver  # noqa: E402

HOST = "127.0.0.1"
USERNAME = "bench"
PASSWORD = "bench-password"  # noqa: S105  (the simulated gateway's account)
TEXT = "Your order #123 is ready & waiting: 100% done. Reply STOP to opt out."
SENDER = "ITONAB"
ITON_PATH = "/ItonSMSAPI/smsService/api/"
SERVER_CPU = 0
CLIENT_CPU = 1
RESULTS = ROOT / "benchmarks" / "results"

GATEWAYS = ("iton", "itecpay")
CLIENTS = ("httpx", "aiohttp", "send", "stream")
NATIONAL_CLIENTS = ("aiohttp", "send")
SCALE_SIZES = (10_000, 100_000, 1_000_000)
#: Warm-up recipients come from here on, apart from the measured ones.
WARM_OFFSET = 900_000_000
#: The raw httpx loop starts no request after this many seconds (see ``measure_raw``).
HTTPX_SECONDS = 2.0
#: i -> i * _SPREAD % 10**9 permutes 0..10**9-1 (3**18 is coprime with 10**9).
_SPREAD = 387_420_489


# ---------------------------------------------------------------------------- recipients


def e164(i: int) -> str:
    """The i-th recipient: +919 and nine digits, a valid Indian mobile, distinct for i < 10**9."""
    return f"+919{i * _SPREAD % 10**9:09d}"


def national(i: int) -> str:
    """The same number spelled the Indian national way: ``098123 45678``."""
    digits = e164(i)[3:]
    return f"0{digits[:5]} {digits[5:]}"


def recipients(count: int, *, start: int = 0, spelling: str = "e164") -> list[str]:
    spell = national if spelling == "national" else e164
    return [spell(i) for i in range(start, start + count)]


def recipient_stream(count: int) -> Iterator[str]:
    """Distinct valid E.164 numbers made one at a time, never held in a list."""
    return (e164(i) for i in range(count))


# ---------------------------------------------------------------------------- one measurement, in a client


@dataclass(frozen=True)
class Job:
    """One measurement, run in a fresh client process."""

    kind: str  # "matrix", "scale" or "normalise"
    port: int = 0
    client: str = "aiohttp"
    gateway: str = "iton"
    concurrency: int = 64
    loop: str = "uvloop"
    spelling: str = "e164"
    recipients: int = 100_000
    repeat: int = 3  # timed runs in the process; the fastest is kept
    rounds: int = 3  # "normalise" only


@dataclass(frozen=True)
class Sample:
    """What a client process reports about its one timed run."""

    seconds: float
    cpu: float
    requests: int
    recipients: int
    rss_peak_kb: int
    rss_start_kb: int


@dataclass(frozen=True)
class RawRequest:
    """A request exactly as the driver builds it, for the raw loops."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    size: int  # recipients in it


def make_driver(gateway: str, port: int) -> Driver:
    if gateway == "iton":
        return Iton(username=USERNAME, password=PASSWORD, base_url=f"http://{HOST}:{port}{ITON_PATH}")
    return ItecPay(USERNAME, PASSWORD, base_url=f"http://{HOST}:{port}")


def success_prefix(gateway: str) -> bytes:
    """How the simulated gateway's answer to an accepted send begins."""
    return b"Success" if gateway == "iton" else b'{"status":200'


def build_requests(driver: Driver, numbers: Sequence[str]) -> list[RawRequest]:
    """The requests ``BulkSender`` makes for ``numbers`` (E.164), built by the driver itself."""
    prepared = driver.prepare_send(Message.create(TEXT, SENDER))
    base = f"http://{driver.origin.host_header}"
    out = []
    for start in range(0, len(numbers), driver.max_batch):
        batch = numbers[start : start + driver.max_batch]
        wire = prepared.build(batch)
        body = wire.body or None
        out.append(RawRequest(wire.method, base + wire.target, dict(wire.headers), body, len(batch)))
    return out


def pin(cpu: int) -> bool:
    """Pin this process to ``cpu`` where the platform and the machine's CPU set allow it.

    A child inherits its parent's CPU mask, so a client started by the
    orchestrator (pinned to CPU 0) asks for CPU 1 outright rather than looking
    at its inherited mask; the kernel refuses a CPU outside the cgroup's set.
    """
    if (os.cpu_count() or 1) < 2:
        return False
    try:
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        return False
    return os.sched_getaffinity(0) == {cpu}


def rss_kb() -> int:
    """Peak resident set size of this process so far, in KiB (Linux units)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if kind == "uvloop":
        import uvloop  # noqa: PLC0415  (only the processes that use it pay for the import)

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def check(condition: bool, what: str) -> None:
    """The correctness guard: a run that lost recipients must not report a speed."""
    if not condition:
        raise SystemExit(f"correctness guard failed: {what}")


def warm_count(job: Job) -> int:
    """Warm-up recipients: two requests per connection."""
    return job.concurrency * 2 * 100


async def best_of(
    repeat: int, run: Callable[[], Awaitable[Any]], count: Callable[[Any], tuple[int, int]]
) -> tuple[float, float, tuple[int, int]]:
    """Time ``run`` ``repeat`` times; the fastest: (wall seconds, CPU seconds, count(value)).

    ``count`` checks each run's value and returns (recipients accepted,
    requests) outside the clock; the value is dropped before the next run.
    Other work on the machine can only slow a run down, so the fastest of a
    few back-to-back runs is the steadiest figure one process can give.
    """
    best: tuple[float, float, tuple[int, int]] | None = None
    for _ in range(repeat):
        gc.collect()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        value = await run()
        seconds, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        counts = count(value)
        del value
        if best is None or seconds < best[0]:
            best = (seconds, cpu, counts)
    assert best is not None
    return best


async def worker_pool(
    requests: Sequence[Any],
    concurrency: int,
    send: Callable[[Any], Awaitable[int]],
    stop_after: float | None = None,
) -> tuple[int, int]:
    """``concurrency`` tasks taking requests from one shared iterator: (recipients accepted, requests).

    With ``stop_after`` (seconds), no request is started after that time.
    """
    todo = iter(requests)
    stop_at = math.inf if stop_after is None else time.perf_counter() + stop_after

    async def worker() -> tuple[int, int]:
        accepted = sent = 0
        for request in todo:
            accepted += await send(request)
            sent += 1
            if time.perf_counter() >= stop_at:
                break
        return accepted, sent

    done = await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sum(a for a, _ in done), sum(n for _, n in done)


RawClient = tuple[Callable[[list[RawRequest]], list[Any]], Callable[[Any], Awaitable[int]]]


@contextlib.asynccontextmanager
async def raw_aiohttp(concurrency: int, prefix: bytes) -> AsyncIterator[RawClient]:
    """One ``aiohttp.ClientSession`` with ``concurrency`` connections at most."""
    import aiohttp  # noqa: PLC0415
    import yarl  # noqa: PLC0415

    def prebuild(requests: list[RawRequest]) -> list[Any]:
        # encoded=True: the target goes on the wire exactly as the driver built it.
        return [(r.method, yarl.URL(r.url, encoded=True), r.headers, r.body, r.size) for r in requests]

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def send(request: Any) -> int:
            method, url, headers, body, size = request
            async with session.request(method, url, headers=headers, data=body) as response:
                payload = await response.read()
                return size if response.status == 200 and payload.startswith(prefix) else 0

        yield prebuild, send


@contextlib.asynccontextmanager
async def raw_httpx(concurrency: int, prefix: bytes) -> AsyncIterator[RawClient]:
    """One ``httpx.AsyncClient`` with ``concurrency`` connections at most."""
    import httpx  # noqa: PLC0415

    def prebuild(requests: list[RawRequest]) -> list[Any]:
        return [(r.method, httpx.URL(r.url), r.headers, r.body, r.size) for r in requests]

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:

        async def send(request: Any) -> int:
            method, url, headers, body, size = request
            response = await client.request(method, url, headers=headers, content=body)
            return size if response.status_code == 200 and response.content.startswith(prefix) else 0

        yield prebuild, send


async def measure_raw(job: Job) -> Sample:
    """A raw httpx or aiohttp loop sending the driver-built requests.

    httpx goes through the same requests in the same order but starts none
    after ``HTTPX_SECONDS``: its connection pool (httpcore 1.0) scans every
    connection for every queued request, which makes it 10-100 times slower
    here, and a whole round would take minutes.
    """
    driver = make_driver(job.gateway, job.port)
    requests = build_requests(driver, recipients(job.recipients))
    warm = build_requests(driver, recipients(warm_count(job), start=WARM_OFFSET))
    open_client = raw_httpx if job.client == "httpx" else raw_aiohttp
    stop_after = HTTPX_SECONDS if job.client == "httpx" else None
    repeat = 1 if job.client == "httpx" else job.repeat

    def count(result: tuple[int, int]) -> tuple[int, int]:
        accepted, sent = result
        expected = sum(r.size for r in requests[:sent])
        check(accepted == expected, f"{job.client}: {accepted} of {expected} accepted")
        check(
            stop_after is not None or sent == len(requests), f"{job.client}: {sent} of {len(requests)} sent"
        )
        return accepted, sent

    rss_start = rss_kb()
    async with open_client(job.concurrency, success_prefix(job.gateway)) as (prebuild, send):
        warm_built, built = prebuild(warm), prebuild(requests)
        warmed, warm_sent = await worker_pool(warm_built, job.concurrency, send, stop_after)
        check(warmed == sum(r.size for r in warm[:warm_sent]), f"{job.client} warm-up: {warmed} accepted")
        seconds, cpu, (accepted, sent) = await best_of(
            repeat, lambda: worker_pool(built, job.concurrency, send, stop_after), count
        )
    return Sample(seconds, cpu, sent, accepted, rss_kb(), rss_start)


async def consume_stream(bulk: BulkSender, inputs: Iterable[str]) -> tuple[int, int, int]:
    """Iterate ``stream``, keeping nothing but counts: (accepted, not accepted, requests)."""
    accepted = other = requests = 0
    async for batch in bulk.stream(inputs, TEXT, sender_id=SENDER):
        accepted += len(batch.message_ids)
        other += len(batch.failed) + sum(batch.duplicates.values())
        requests += batch.requests
    return accepted, other, requests


async def measure_bulk(job: Job) -> Sample:
    """``BulkSender.send`` or ``BulkSender.stream`` on a list of recipients."""
    inputs = recipients(job.recipients, spelling=job.spelling)
    warm = recipients(warm_count(job), start=WARM_OFFSET, spelling=job.spelling)
    region = "IN" if job.spelling == "national" else None
    rss_start = rss_kb()
    driver = make_driver(job.gateway, job.port)
    async with BulkSender(driver, concurrency=job.concurrency, default_region=region) as bulk:
        warmed, _, _ = await consume_stream(bulk, warm)
        check(warmed == len(warm), f"{job.client} warm-up: {warmed} of {len(warm)} accepted")
        if job.client == "send":
            timing = await best_of(
                job.repeat,
                lambda: bulk.send(inputs, TEXT, sender_id=SENDER),
                lambda result: count_send(result, job.recipients),
            )
        else:
            timing = await best_of(
                job.repeat,
                lambda: consume_stream(bulk, inputs),
                lambda counts: count_stream(counts, job.recipients),
            )
    seconds, cpu, (accepted, requests) = timing
    return Sample(seconds, cpu, requests, accepted, rss_kb(), rss_start)


def count_send(result: BulkResult, expected: int) -> tuple[int, int]:
    check(result.aborted is None and not result.failed and not result.duplicates, f"send: {result!r}")
    check(len(result.message_ids) == expected, f"send: {len(result.message_ids)} of {expected} accepted")
    return len(result.message_ids), result.requests


def count_stream(counts: tuple[int, int, int], expected: int) -> tuple[int, int]:
    accepted, other, requests = counts
    check(other == 0 and accepted == expected, f"stream: {accepted} of {expected} accepted, {other} not")
    return accepted, requests


async def measure_scale(job: Job) -> Sample:
    """``stream`` over a generator of ``job.recipients`` numbers: peak memory, time per recipient."""
    driver = make_driver(job.gateway, job.port)
    async with BulkSender(driver, concurrency=job.concurrency) as bulk:
        warmed, _, _ = await consume_stream(bulk, recipients(warm_count(job), start=WARM_OFFSET))
        check(warmed == warm_count(job), "scale warm-up")
        gc.collect()
        rss_start = rss_kb()
        seconds, cpu, (accepted, requests) = await best_of(
            1,
            lambda: consume_stream(bulk, recipient_stream(job.recipients)),
            lambda counts: count_stream(counts, job.recipients),
        )
    return Sample(seconds, cpu, requests, accepted, rss_kb(), rss_start)


def measure_normalise(job: Job) -> dict[str, float]:
    """Numbers/s of the fast path and of phonenumbers itself, per spelling, alternating."""
    import phonenumbers  # noqa: PLC0415

    from sms_async._phone import PhoneNormaliser  # noqa: PLC0415

    e164_format = phonenumbers.PhoneNumberFormat.E164

    def reference(raw: str, region: str | None) -> str | None:
        try:
            number = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_valid_number(number):
            return None
        return phonenumbers.format_number(number, e164_format)

    out: dict[str, float] = {}
    expected = recipients(job.recipients)
    for spelling, region in (("e164", None), ("national", "IN")):
        inputs = recipients(job.recipients, spelling=spelling)
        fast = PhoneNormaliser(region).normalise_or_none
        check([fast(x) for x in inputs] == expected, f"fast path answers, {spelling}")
        check([reference(x, region) for x in inputs] == expected, f"phonenumbers answers, {spelling}")
        fast_rates, reference_rates = [], []
        for _ in range(job.rounds):
            # The fast path goes over the list 10 times, so that both sides run for a similar time.
            fast_rates.append(_calls_per_second(fast, inputs, 10))
            reference_rates.append(_calls_per_second(functools.partial(reference, region=region), inputs, 1))
        out[f"{spelling}_fast"] = statistics.median(fast_rates)
        out[f"{spelling}_reference"] = statistics.median(reference_rates)
    return out


def _calls_per_second(fn: Callable[[str], object], inputs: list[str], repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        for raw in inputs:
            fn(raw)
    return len(inputs) * repeat / (time.perf_counter() - start)


def client_main(job: Job) -> dict[str, Any]:
    """Entry point of a client process: run ``job``, return what to print as JSON."""
    pinned = pin(CLIENT_CPU)
    if job.kind == "normalise":
        return {**measure_normalise(job), "pinned": pinned}
    if job.kind == "scale":
        measure = measure_scale
    elif job.client in {"httpx", "aiohttp"}:
        measure = measure_raw
    else:
        measure = measure_bulk
    with asyncio.Runner(loop_factory=loop_factory(job.loop)) as runner:
        sample = runner.run(measure(job))
    return {**asdict(sample), "pinned": pinned}


# ---------------------------------------------------------------------------- the gateway process


class Gateway:
    """``python -m sms_async.testing`` in a process of its own, pinned to the server CPU."""

    def __init__(self, latency_ms: int) -> None:
        self.latency_ms = latency_ms
        self.port = _free_port()
        command = [
            sys.executable, "-m", "sms_async.testing",
            "--port", str(self.port), "--quiet", "--uvloop",
            "--username", USERNAME, "--password", PASSWORD, "--credits", str(10**15),
            "--no-store-messages", "--no-track-numbers",
        ]  # fmt: skip
        if latency_ms:
            command += ["--latency", str(latency_ms / 1000)]
        self.process = subprocess.Popen(command, cwd=ROOT)
        with contextlib.suppress(AttributeError, OSError):
            os.sched_setaffinity(self.process.pid, {SERVER_CPU})
        self._wait_until_ready()

    def _wait_until_ready(self, timeout: float = 15.0) -> None:
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            if self.process.poll() is not None:
                raise SystemExit(f"the simulated gateway exited with status {self.process.returncode}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=0.5):
                return
            time.sleep(0.05)
        self.stop()
        raise SystemExit(f"the simulated gateway accepted no connection within {timeout:g} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Config:
    """One cell of the matrix: every client in ``clients`` sends to the same recipients."""

    gateway: str
    concurrency: int
    latency_ms: int
    loop: str
    spelling: str = "e164"
    recipients: int = 100_000
    clients: tuple[str, ...] = CLIENTS

    @property
    def label(self) -> str:
        return f"{self.gateway} {self.spelling} c={self.concurrency} {self.latency_ms}ms {self.loop}"


@dataclass
class Row:
    """One client in one configuration, over the rounds."""

    config: Config
    client: str
    samples: list[Sample] = field(default_factory=list)
    #: Per round: this client's recipients/s over the raw aiohttp loop's.
    ratios: list[float] = field(default_factory=list)
    #: Per round: this client's CPU per request over the raw aiohttp loop's.
    cpu_ratios: list[float] = field(default_factory=list)

    @property
    def recipients_per_round(self) -> float:
        return statistics.median(s.recipients for s in self.samples)

    @property
    def recipients_per_s(self) -> float:
        return statistics.median(s.recipients / s.seconds for s in self.samples)

    @property
    def requests_per_s(self) -> float:
        return statistics.median(s.requests / s.seconds for s in self.samples)

    @property
    def cpu_us_per_request(self) -> float:
        return statistics.median(s.cpu / s.requests * 1e6 for s in self.samples)

    @property
    def rss_mb(self) -> float:
        return max(s.rss_peak_kb for s in self.samples) / 1024

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def cpu_ratio(self) -> float:
        return statistics.median(self.cpu_ratios)


@dataclass
class ScaleRow:
    """``stream`` over a generator of ``size`` recipients, over the rounds."""

    size: int
    samples: list[Sample] = field(default_factory=list)

    @property
    def us_per_recipient(self) -> float:
        return statistics.median(s.seconds / s.recipients * 1e6 for s in self.samples)

    @property
    def cpu_us_per_recipient(self) -> float:
        return statistics.median(s.cpu / s.recipients * 1e6 for s in self.samples)

    @property
    def rss_start_mb(self) -> float:
        return max(s.rss_start_kb for s in self.samples) / 1024

    @property
    def rss_peak_mb(self) -> float:
        return max(s.rss_peak_kb for s in self.samples) / 1024


@dataclass(frozen=True)
class NormRow:
    """Phone normalisation alone, for one spelling."""

    spelling: str
    fast_per_s: float
    reference_per_s: float

    @property
    def speedup(self) -> float:
        return self.fast_per_s / self.reference_per_s


@dataclass(frozen=True)
class Target:
    """A goal to report against (never a test)."""

    name: str
    measured: float | None  # None: not measured in this run
    threshold: float
    unit: str = "x"
    below: bool = False  # the measured value must stay under the threshold
    rounds: tuple[float, ...] = ()  # the per-round values the measured median comes from

    @property
    def verdict(self) -> str:
        if self.measured is None:
            return "not run"
        met = self.measured < self.threshold if self.below else self.measured >= self.threshold
        return "PASS" if met else "MISS"

    @property
    def margin(self) -> str:
        if self.measured is None:
            return "-"
        if self.below:
            return f"{self.threshold / self.measured - 1:+.0%}"
        return f"{self.measured / self.threshold - 1:+.0%}"

    def line(self) -> str:
        digits = 2 if self.unit == "x" else 1
        shown = "-" if self.measured is None else f"{self.measured:.{digits}f}{self.unit}"
        wanted = f"{'<' if self.below else '>='} {self.threshold:g}{self.unit}"
        rounds = " / ".join(f"{r:.2f}" for r in self.rounds) or "-"
        return f"| {self.name} | {shown} | {wanted} | {self.verdict} | {self.margin} | {rounds} |"


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    scale: list[ScaleRow] = field(default_factory=list)
    norm: list[NormRow] = field(default_factory=list)


# ---------------------------------------------------------------------------- orchestration

#: Client processes that could not pin themselves (reported in the header).
UNPINNED: list[Job] = []


def run_job(job: Job) -> dict[str, Any]:
    """Run ``job`` in a fresh client process and return what it printed."""
    command = [sys.executable, str(Path(__file__).resolve()), "--client-job", json.dumps(asdict(job))]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"client process failed ({job}):\n{done.stderr[-3000:]}{done.stdout[-1000:]}")
    data: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if not data.pop("pinned"):
        UNPINNED.append(job)
        print(f"  (client not pinned: CPU {CLIENT_CPU} is not available)", flush=True)
    return data


def run_sample(job: Job) -> Sample:
    return Sample(**run_job(job))


def matrix_job(config: Config, client: str, port: int, repeat: int, recipients: int | None = None) -> Job:
    return Job(
        "matrix",
        port,
        client,
        config.gateway,
        config.concurrency,
        config.loop,
        config.spelling,
        recipients or config.recipients,
        repeat,
    )


def calibrate(configs: list[Config], ports: dict[int, int], seconds: float) -> list[Config]:
    """Recipients per round so that the raw aiohttp loop takes about ``seconds``."""
    sizes: dict[tuple[str, int, int, str], int] = {}
    out = []
    for config in configs:
        key = (config.gateway, config.concurrency, config.latency_ms, config.loop)
        if key not in sizes:
            probe_size = max(20_000, config.concurrency * 400)
            probe = matrix_job(
                replace(config, spelling="e164"), "aiohttp", ports[config.latency_ms], 1, probe_size
            )
            sample = run_sample(probe)
            rate = sample.recipients / sample.seconds
            sizes[key] = int(min(max(rate * seconds, 20_000), 600_000) // 1000 * 1000)
            print(f"calibrated {config.label}: {rate:,.0f} recipients/s, {sizes[key]:,} a round", flush=True)
        out.append(replace(config, recipients=sizes[key]))
    return out


def run_matrix(configs: list[Config], ports: dict[int, int], rounds: int, repeat: int) -> list[Row]:
    rows = {(config, client): Row(config, client) for config in configs for client in config.clients}
    for number in range(1, rounds + 1):
        for config in configs:
            shift = number % len(config.clients)
            for client in config.clients[shift:] + config.clients[:shift]:
                sample = run_sample(matrix_job(config, client, ports[config.latency_ms], repeat))
                rows[config, client].samples.append(sample)
                print(
                    f"[{number}/{rounds}] {config.label:34s} {client:8s} "
                    f"{sample.recipients / sample.seconds:11,.0f} recipients/s "
                    f"{sample.cpu / sample.requests * 1e6:6.0f} µs CPU/request "
                    f"{sample.rss_peak_kb / 1024:6.1f} MB",
                    flush=True,
                )
    for row in rows.values():
        base = rows[row.config, "aiohttp"].samples
        for mine, theirs in zip(row.samples, base, strict=True):
            row.ratios.append((mine.recipients / mine.seconds) / (theirs.recipients / theirs.seconds))
            row.cpu_ratios.append((mine.cpu / mine.requests) / (theirs.cpu / theirs.requests))
    return list(rows.values())


def run_scaling(sizes: Sequence[int], port: int, rounds: int) -> list[ScaleRow]:
    rows = [ScaleRow(size) for size in sizes]
    for number in range(1, rounds + 1):
        for row in rows:
            sample = run_sample(Job("scale", port, "stream", "iton", 64, "uvloop", recipients=row.size))
            row.samples.append(sample)
            print(
                f"[{number}/{rounds}] stream of {row.size:>9,} from a generator: "
                f"{sample.seconds / sample.recipients * 1e6:.2f} µs/recipient, "
                f"RSS {sample.rss_start_kb / 1024:.1f} -> {sample.rss_peak_kb / 1024:.1f} MB",
                flush=True,
            )
    return rows


def run_normalisation(count: int, rounds: int) -> list[NormRow]:
    data = run_job(Job("normalise", recipients=count, rounds=rounds))
    rows = [NormRow(s, data[f"{s}_fast"], data[f"{s}_reference"]) for s in ("e164", "national")]
    for row in rows:
        print(f"normalise {row.spelling}: {row.fast_per_s:,.0f}/s, phonenumbers {row.reference_per_s:,.0f}/s")
    return rows


def run_all(args: argparse.Namespace, configs: list[Config]) -> Report:
    report = Report()
    latencies = sorted({c.latency_ms for c in configs} | ({0} if args.scale else set()))
    gateways: list[Gateway] = []
    try:
        gateways.extend(Gateway(latency) for latency in latencies)  # each one kept as soon as it runs
        ports = {g.latency_ms: g.port for g in gateways}
        if args.calibrate:
            configs = calibrate(configs, ports, args.round_seconds)
        if configs:
            report.rows = run_matrix(configs, ports, args.rounds, args.repeat)
        if args.scale:
            report.scale = run_scaling(args.scale, ports[0], args.scale_rounds)
    finally:
        for gateway in gateways:
            gateway.stop()
    if args.normalise_count:
        report.norm = run_normalisation(args.normalise_count, args.rounds)
    return report


# ---------------------------------------------------------------------------- the report


def find_row(rows: list[Row], client: str, **where: Any) -> Row | None:
    for row in rows:
        if row.client == client and all(getattr(row.config, k) == v for k, v in where.items()):
            return row
    return None


def targets(report: Report) -> list[Target]:
    out = []
    for gateway, name in (("iton", "ITON"), ("itecpay", "ItecPay")):
        cases = (
            ("E.164, 0 ms", "e164", 0, 0.7),
            ("national `098123 45678`, 0 ms", "national", 0, 0.5),
            ("E.164, 20 ms", "e164", 20, 0.9),
        )
        for what, spelling, latency, threshold in cases:
            row = find_row(
                report.rows, "send", gateway=gateway, spelling=spelling, latency_ms=latency, concurrency=64,
                loop="uvloop",
            )  # fmt: skip
            label = f"`send` / raw aiohttp recipients/s, {name}, {what}, c=64, uvloop"
            out.append(
                Target(label, row.ratio if row else None, threshold, rounds=tuple(row.ratios) if row else ())
            )
    million = next((r for r in report.scale if r.size == 1_000_000), None)
    rss = million.rss_peak_mb if million else None
    out.append(Target("`stream` of 1M recipients from a generator, peak RSS", rss, 150, " MB", below=True))
    out.extend(
        Target(f"normalisation, fast path / phonenumbers, {n.spelling}", n.speedup, 20) for n in report.norm
    )
    return out


def render(args: argparse.Namespace, report: Report, pinned: bool) -> str:
    lines = [
        "# sms_async benchmark results",
        "",
        *header_lines(args, pinned),
        "",
        "## Targets",
        "",
        "| target | measured | wanted | result | margin | each round |",
        "|---|---:|---:|---|---:|---|",
        *(t.line() for t in targets(report)),
    ]
    if report.rows:
        lines += ["", "## Throughput, CPU and memory per configuration", "", *matrix_table(report.rows)]
    if report.scale:
        lines += ["", "## `stream` from a generator: memory and time per recipient", ""]
        lines += scale_table(report.scale)
        lines += ["", flatness(report.scale)]
    if report.norm:
        lines += ["", "## Phone normalisation alone", "", *norm_table(report.norm)]
    return "\n".join(lines) + "\n\n" + NOTES


def header_lines(args: argparse.Namespace, pinned: bool) -> list[str]:
    packages = ("sms_async", "aiohttp", "httpx", "httpcore", "uvloop", "anyio", "phonenumbers")
    versions = ", ".join(f"{name} {_version(name)}" for name in packages)
    command = " ".join(["python benchmarks/run.py", *(shlex.quote(a) for a in args.argv)])
    machine = f"{platform.machine()}, {platform.system()} {platform.release()}"
    pinning = f"gateway on CPU {SERVER_CPU}, every client process on CPU {CLIENT_CPU}"
    commit = _commit()
    code = f"commit {commit}"
    if commit != args.commit_start:
        code = f"commit {args.commit_start} at the start, {commit} at the end"
    repeat = f"each client process times {args.repeat} back-to-back runs, the fastest kept (raw httpx: 1)"
    return [
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; took {args.took:.0f} s",
        f"- Machine: `nproc` {os.cpu_count()}, {machine}; load average at the start {args.load_start}",
        f"- Python: {platform.python_implementation()} {platform.python_version()}; {versions}",
        f"- Code: {code}, plus whatever was uncommitted in the working tree at the time",
        f"- Pinning: {pinning}"
        + ("" if pinned and not UNPINNED else " (NOT applied everywhere: not allowed here)"),
        f"- Rounds: {args.rounds}, alternating, medians reported; {repeat}",
        f"- Reproduce: `{command}`",
    ]


def matrix_table(rows: list[Row]) -> list[str]:
    lines = [
        (
            "| gateway | numbers | c | latency | loop | client | recipients a round | recipients/s "
            "| requests/s | x aiohttp (throughput) | client CPU µs/request | x aiohttp (CPU) | peak RSS MB |"
        ),
        "|---|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        c = row.config
        lines.append(
            f"| {c.gateway} | {c.spelling} | {c.concurrency} | {c.latency_ms} ms | {c.loop} | {row.client} "
            f"| {row.recipients_per_round:,.0f} | {row.recipients_per_s:,.0f} | {row.requests_per_s:,.0f} "
            f"| {row.ratio:.2f} | {row.cpu_us_per_request:.0f} | {row.cpu_ratio:.2f} | {row.rss_mb:.1f} |"
        )
    return lines


def scale_table(rows: list[ScaleRow]) -> list[str]:
    lines = [
        (
            "| recipients | µs per recipient | client CPU µs per recipient | recipients/s "
            "| RSS before the run MB | peak RSS MB |"
        ),
        "|---:|---:|---:|---:|---:|---:|",
    ]
    lines.extend(
        f"| {r.size:,} | {r.us_per_recipient:.2f} | {r.cpu_us_per_recipient:.2f} "
        f"| {1e6 / r.us_per_recipient:,.0f} | {r.rss_start_mb:.1f} | {r.rss_peak_mb:.1f} |"
        for r in rows
    )
    return lines


def flatness(rows: list[ScaleRow]) -> str:
    smallest, largest = rows[0], rows[-1]
    wall = largest.us_per_recipient / smallest.us_per_recipient
    cpu = largest.cpu_us_per_recipient / smallest.cpu_us_per_recipient
    return (
        f"Time per recipient at {largest.size:,} is {wall:.2f}x that at {smallest.size:,} "
        f"(client CPU per recipient: {cpu:.2f}x)."
    )


def norm_table(rows: list[NormRow]) -> list[str]:
    lines = [
        "| spelling | fast path numbers/s | phonenumbers numbers/s | speed-up |",
        "|---|---:|---:|---:|",
    ]
    lines.extend(
        f"| {n.spelling} | {n.fast_per_s:,.0f} | {n.reference_per_s:,.0f} | {n.speedup:.1f}x |" for n in rows
    )
    return lines


NOTES = """\
Notes:

- recipients/s, requests/s and CPU are medians over the rounds. Every request
  carries 100 recipients (the last of a round may carry fewer), so the
  requests/s ratio is the recipients/s ratio.
- "x aiohttp" columns are medians of per-round ratios to the raw aiohttp loop
  of the same configuration (throughput: higher is better; CPU: lower is better).
- client CPU is `time.process_time()` of the client process over the timed run.
- peak RSS is the client process's `ru_maxrss`, one fresh process per
  measurement; with list inputs it includes the list (and, for the raw loops,
  the pre-built requests).
- raw loops: `c` tasks over one `httpx.AsyncClient` / `aiohttp.ClientSession`
  limited to `c` connections, sending requests built before the clock starts
  by the drivers themselves (`prepare_send(...).build(batch)`), URL objects
  included. `send` / `stream` get the recipients as a list of strings and do
  everything else (normalising, de-duplicating, batching, building, parsing)
  on the clock.
- raw httpx starts no request after 2 s of a round (it goes through a prefix
  of the same requests): its pool makes it far slower here.
- national: `098123 45678`-style inputs with `default_region="IN"`; the raw
  aiohttp loop sends the requests for the same numbers, built from E.164.
- the 1M-recipient `stream` reads a generator; its memory beyond the start is
  mostly the de-duplication set (one Python int per distinct number).
"""


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _commit() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return done.stdout.strip()


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def write_json(path: Path, report: Report) -> None:
    """Every sample, for whoever wants more than medians."""
    data = {
        "rows": [
            {"config": asdict(r.config), "client": r.client, "samples": [asdict(s) for s in r.samples]}
            for r in report.rows
        ],
        "scale": [{"size": r.size, "samples": [asdict(s) for s in r.samples]} for r in report.scale],
        "normalisation": [asdict(n) for n in report.norm],
    }
    path.write_text(json.dumps(data, indent=1) + "\n")


# ---------------------------------------------------------------------------- command line


def build_configs(args: argparse.Namespace) -> list[Config]:
    configs = [
        Config(gateway, concurrency, latency, loop, recipients=args.recipients)
        for latency in args.latency
        for loop in args.loops
        for concurrency in args.concurrency
        for gateway in args.gateways
    ]
    if args.national:
        configs += [
            Config(gateway, 64, 0, "uvloop", "national", args.recipients, NATIONAL_CLIENTS)
            for gateway in args.gateways
        ]
    return configs


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    preset = parser.add_mutually_exclusive_group()
    preset.add_argument("--quick", action="store_true", help="c=64, 0 ms, uvloop, 100k recipients (default)")
    preset.add_argument("--full", action="store_true", help="every configuration, calibrated round sizes")
    add = parser.add_argument
    add("--gateways", nargs="+", choices=GATEWAYS, default=list(GATEWAYS))
    add("--concurrency", nargs="+", type=int, help="default 64 (--full: 16 64 256)")
    add("--latency", nargs="+", type=int, help="simulated gateway latency in ms (default 0; --full: 0 20)")
    add("--loops", nargs="+", choices=("uvloop", "asyncio"), help="default uvloop (--full: both)")
    add("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    add("--recipients", type=int, help="recipients a round (default 100k; --full: calibrated)")
    add("--repeat", type=int, default=3, help="timed runs in each client process; the fastest is kept")
    add("--round-seconds", type=float, default=0.7, help="--full: size runs for the raw aiohttp loop")
    add("--no-national", dest="national", action="store_false", help="skip the national-spelling case")
    add("--scale", nargs="*", type=int, help="stream sizes (default 10k 100k 1M; give none to skip)")
    add("--normalise-count", type=int, default=20_000, help="numbers a spelling (0 skips)")
    add("--output", type=Path, default=RESULTS / "latest.md")
    args = parser.parse_args(argv)
    args.argv = argv
    args.concurrency = args.concurrency or ([16, 64, 256] if args.full else [64])
    args.latency = args.latency if args.latency is not None else ([0, 20] if args.full else [0])
    args.loops = args.loops or (["uvloop", "asyncio"] if args.full else ["uvloop"])
    args.calibrate = args.full and args.recipients is None
    args.recipients = args.recipients or 100_000
    args.scale = list(SCALE_SIZES) if args.scale is None else args.scale
    args.scale_rounds = args.rounds if args.full else 1
    args.load_start = _load()
    args.commit_start = _commit()
    return args


def _stop_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through run_all's finally: the gateways are stopped


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    started = time.perf_counter()
    # The orchestrator mostly waits; it shares CPU 0 with the gateway, which inherits the pinning.
    pinned = pin(SERVER_CPU)
    report = run_all(args, build_configs(args))
    args.took = time.perf_counter() - started
    text = render(args, report, pinned)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    write_json(args.output.with_suffix(".json"), report)
    if args.full and args.output == RESULTS / "latest.md":
        (RESULTS / "full.md").write_text(text)
    print()
    print(text)
    print(f"written to {args.output} (every sample in {args.output.with_suffix('.json').name})")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--client-job":
        print(json.dumps(client_main(Job(**json.loads(sys.argv[2])))), flush=True)
    else:
        main(sys.argv[1:])
