"""One measurement in a fresh client process: the workloads and every client that runs them.

A client process gets a :class:`Job`, builds its input (and, for the raw and
bare clients, every request) before the clock starts, warms its connections
up, times ``repeat`` back-to-back runs and keeps the fastest, and reports a
:class:`Sample`. Every run is checked twice, outside the clock: by the
client's own count, and against the simulated gateway's counter of accepted
numbers, so that no client (the bare one least of all) can report a speed for
work the gateway did not do.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import http.client
import itertools
import json
import math
import os
import resource
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from harness.bare import BarePool, encode
from sms_async import BulkResult, BulkSender, ItecPay, Iton, Message
from sms_async.instrumentation import LoggingHooks, set_default_hooks
from sms_async.providers._base import Driver

HOST = "127.0.0.1"
USERNAME = "bench"
PASSWORD = "bench-password"  # noqa: S105  (the simulated gateway's account)
TEXT = "Your order #123 is ready & waiting: 100% done. Reply STOP to opt out."
SENDER = "ITONAB"
ITON_PATH = "/ItonSMSAPI/smsService/api/"
SERVER_CPU = 0
CLIENT_CPU = 1
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


def personal_text(i: int) -> str:
    """The i-th recipient's own text: distinct for every i, GSM-7, one part."""
    return f"Hi customer {i:07d}, your order #{100_000 + i} has shipped. Reply STOP to opt out."


def recipients(count: int, *, start: int = 0, spelling: str = "e164") -> list[str]:
    spell = national if spelling == "national" else e164
    return [spell(i) for i in range(start, start + count)]


def recipient_stream(count: int) -> Iterator[str]:
    """Distinct valid E.164 numbers made one at a time, never held in a list."""
    return (e164(i) for i in range(count))


# ---------------------------------------------------------------------------- jobs and samples


@dataclass(frozen=True)
class Job:
    """One measurement, run in a fresh client process."""

    kind: str  # "matrix", "scale", "keys" or "normalise"
    port: int = 0
    client: str = "aiohttp"  # "bare", "httpx", "aiohttp", "send" or "stream"
    gateway: str = "iton"
    concurrency: int = 64
    loop: str = "uvloop"
    spelling: str = "e164"  # or "national"
    texts: str = "one"  # "one" text for everyone, or "personal": a text per recipient
    recipients: int = 100_000
    repeat: int = 3  # timed runs in the process; the fastest is kept
    rounds: int = 3  # "normalise" only


@dataclass(frozen=True)
class Sample:
    """What a client process reports about its fastest timed run."""

    seconds: float
    cpu: float
    requests: int
    recipients: int
    rss_peak_kb: int
    rss_start_kb: int


@dataclass(frozen=True)
class RawRequest:
    """A request exactly as the driver builds it, for the raw and bare clients."""

    method: str
    url: str
    target: str
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


def _raw(driver: Driver, prepared: Any, numbers: Sequence[str]) -> RawRequest:
    wire = prepared.build(numbers)
    url = f"http://{driver.origin.host_header}{wire.target}"
    return RawRequest(wire.method, url, wire.target, dict(wire.headers), wire.body or None, len(numbers))


def build_requests(driver: Driver, numbers: Sequence[str]) -> list[RawRequest]:
    """The requests ``BulkSender`` makes for ``numbers`` (E.164), built by the driver itself."""
    prepared = driver.prepare_send(Message.create(TEXT, SENDER))
    step = driver.max_batch
    return [_raw(driver, prepared, numbers[i : i + step]) for i in range(0, len(numbers), step)]


def build_personal_requests(driver: Driver, start: int, count: int) -> list[RawRequest]:
    """One request per recipient, each with its own text, built by the driver itself."""
    return [
        _raw(driver, driver.prepare_send(Message.create(personal_text(i), SENDER)), [e164(i)])
        for i in range(start, start + count)
    ]


def job_requests(job: Job, driver: Driver, start: int, count: int) -> list[RawRequest]:
    """The requests for ``count`` recipients from ``start`` (national ones go as E.164, as ``send`` sends)."""
    if job.texts == "personal":
        return build_personal_requests(driver, start, count)
    return build_requests(driver, recipients(count, start=start))


def job_inputs(job: Job, start: int, count: int) -> tuple[list[Any], str | None]:
    """What ``send``/``stream`` get: (recipients, text); personalised: ``(number, text)`` pairs, no text."""
    if job.texts == "personal":
        return [(e164(i), personal_text(i)) for i in range(start, start + count)], None
    return recipients(count, start=start, spelling=job.spelling), TEXT


def warm_count(job: Job) -> int:
    """Warm-up recipients: two requests per connection."""
    return job.concurrency * 2 * (1 if job.texts == "personal" else 100)


# ---------------------------------------------------------------------------- the process and the clock


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


def gateway_accepted(port: int) -> int:
    """Numbers the simulated gateway has accepted so far (its ``/_simulator/stats`` counter)."""
    # http.client, not urllib: no proxy from the environment may stand between us and loopback.
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request("GET", "/_simulator/stats")
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    check(response.status == 200, f"the simulator's counters answered {response.status}")
    return int(json.loads(body)["accepted"])


@dataclass(frozen=True)
class Timing:
    seconds: float
    cpu: float
    accepted: int
    requests: int


async def best_of(
    job: Job, repeat: int, run: Callable[[], Awaitable[Any]], count: Callable[[Any], tuple[int, int]]
) -> Timing:
    """Time ``run`` ``repeat`` times and keep the fastest.

    ``count`` checks each run's value and returns (recipients accepted,
    requests) outside the clock; the value is dropped before the next run.
    Other work on the machine can only slow a run down, so the fastest of a
    few back-to-back runs is the steadiest figure one process can give. The
    gateway's own counter must have grown by what the runs counted.
    """
    best: Timing | None = None
    counted = 0
    before = gateway_accepted(job.port)
    for _ in range(repeat):
        gc.collect()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        value = await run()
        seconds, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        accepted, requests = count(value)
        del value
        counted += accepted
        if best is None or seconds < best.seconds:
            best = Timing(seconds, cpu, accepted, requests)
    grown = gateway_accepted(job.port) - before
    check(
        grown == counted,
        f"{job.client}: the gateway accepted {grown:,} numbers, the client counted {counted:,}",
    )
    assert best is not None
    return best


# ---------------------------------------------------------------------------- raw aiohttp and httpx loops


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
    requests = job_requests(job, driver, 0, job.recipients)
    warm = job_requests(job, driver, WARM_OFFSET, warm_count(job))
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
        timing = await best_of(
            job, repeat, lambda: worker_pool(built, job.concurrency, send, stop_after), count
        )
    return Sample(timing.seconds, timing.cpu, timing.requests, timing.accepted, rss_kb(), rss_start)


async def measure_bare(job: Job) -> Sample:
    """The limit: pre-built request bytes on ``c`` keep-alive connections, answers framed and counted."""
    driver = make_driver(job.gateway, job.port)
    host = driver.origin.host_header

    def wire(requests: list[RawRequest]) -> list[bytes]:
        return [encode(r.method, r.target, host, tuple(r.headers.items()), r.body or b"") for r in requests]

    requests = job_requests(job, driver, 0, job.recipients)
    warm = job_requests(job, driver, WARM_OFFSET, warm_count(job))
    size = sum(r.size for r in requests)
    rss_start = rss_kb()
    built, warm_built = wire(requests), wire(warm)
    del requests, warm

    def count(answers: int) -> tuple[int, int]:
        check(answers == len(built), f"bare: {answers} answers to {len(built)} requests")
        return size, answers

    pool = BarePool(HOST, job.port, job.concurrency)
    try:
        await pool.open()
        answers = await pool.run(warm_built)
        check(answers == len(warm_built), f"bare warm-up: {answers} answers to {len(warm_built)} requests")
        timing = await best_of(job, job.repeat, lambda: pool.run(built), count)
    finally:
        pool.close()
    return Sample(timing.seconds, timing.cpu, timing.requests, timing.accepted, rss_kb(), rss_start)


# ---------------------------------------------------------------------------- BulkSender


async def consume_stream(bulk: BulkSender, inputs: Iterable[Any], text: str | None) -> tuple[int, int, int]:
    """Iterate ``stream``, keeping nothing but counts: (accepted, not accepted, requests)."""
    accepted = other = requests = 0
    async for batch in bulk.stream(inputs, text, sender_id=SENDER):
        accepted += len(batch.message_ids)
        other += len(batch.failed) + sum(batch.duplicates.values())
        requests += batch.requests
    return accepted, other, requests


SendValue = tuple[BulkResult, int, str | None, int]


async def measure_bulk(job: Job) -> Sample:
    """``BulkSender.send`` or ``BulkSender.stream`` on a list of recipients (or of pairs)."""
    inputs, text = job_inputs(job, 0, job.recipients)
    warm, _ = job_inputs(job, WARM_OFFSET, warm_count(job))
    region = "IN" if job.spelling == "national" else None
    probe = e164(job.recipients // 2)
    rss_start = rss_kb()
    driver = make_driver(job.gateway, job.port)

    async with BulkSender(driver, concurrency=job.concurrency, default_region=region) as bulk:

        async def send() -> SendValue:
            result = await bulk.send(inputs, text, sender_id=SENDER)
            # Part of the job: a caller reads the ids and the failures, and
            # BulkResult merges its settled batches into them on that first read.
            ids = result.message_ids
            return result, len(ids), ids.get(probe), len(result.failed)

        # Warmed up the way it is measured: a `stream` imports numpy for its
        # compact keys, which a process that only calls `send` never does.
        if job.client == "send":
            warmed = len((await bulk.send(warm, text, sender_id=SENDER)).message_ids)
        else:
            warmed, _, _ = await consume_stream(bulk, warm, text)
        check(warmed == len(warm), f"{job.client} warm-up: {warmed} of {len(warm)} accepted")
        if job.client == "send":
            timing = await best_of(job, job.repeat, send, lambda value: count_send(value, job.recipients))
        else:
            timing = await best_of(
                job,
                job.repeat,
                lambda: consume_stream(bulk, inputs, text),
                lambda counts: count_stream(counts, job.recipients),
            )
    return Sample(timing.seconds, timing.cpu, timing.requests, timing.accepted, rss_kb(), rss_start)


def count_send(value: SendValue, expected: int) -> tuple[int, int]:
    result, accepted, probed, failed = value
    check(result.aborted is None and failed == 0 and not result.duplicates, f"send: {result!r}")
    check(accepted == expected, f"send: {accepted} of {expected} accepted")
    check(bool(probed), "send: a recipient's id is missing from message_ids")
    return accepted, result.requests


def count_stream(counts: tuple[int, int, int], expected: int) -> tuple[int, int]:
    accepted, other, requests = counts
    check(other == 0 and accepted == expected, f"stream: {accepted} of {expected} accepted, {other} not")
    return accepted, requests


async def measure_scale(job: Job) -> Sample:
    """``stream`` over a generator of ``job.recipients`` numbers: peak memory, time per recipient."""
    driver = make_driver(job.gateway, job.port)
    async with BulkSender(driver, concurrency=job.concurrency) as bulk:
        warmed, _, _ = await consume_stream(bulk, recipients(warm_count(job), start=WARM_OFFSET), TEXT)
        check(warmed == warm_count(job), "scale warm-up")
        gc.collect()
        rss_start = rss_kb()
        timing = await best_of(
            job,
            1,
            lambda: consume_stream(bulk, recipient_stream(job.recipients), TEXT),
            lambda counts: count_stream(counts, job.recipients),
        )
    return Sample(timing.seconds, timing.cpu, timing.requests, timing.accepted, rss_kb(), rss_start)


def measure_keys(job: Job) -> dict[str, Any]:
    """The compact de-duplication key store (``stream``'s), fed the scale rows' numbers: its bytes a number.

    Fed as a stream's batcher feeds it (chunks of 256, each checked and added
    at once). Reported at each power of ten, and the most it held a number on
    the way from 10,000 up (sampled at every chunk), since a table's share
    per number jumps when it grows.
    """
    from sms_async._keys import SeenNumbers  # noqa: PLC0415

    seen = SeenNumbers(compact=True)
    sizes: dict[str, float] = {}
    worst: dict[str, float] = {}
    most = 0.0
    numbers = recipient_stream(job.recipients)
    done = 0
    mark = 10_000
    while done < job.recipients:
        chunk = list(itertools.islice(numbers, 256))
        check(seen.add_new(chunk), "keys: a chunk of distinct numbers was refused")
        done += len(chunk)
        if done >= 10_000:
            most = max(most, seen.nbytes / len(seen))
        if done >= mark:
            sizes[str(mark)] = seen.nbytes / len(seen)
            worst[str(mark)] = most
            mark *= 10
    check(len(seen) == job.recipients, f"keys: {len(seen)} of {job.recipients} held")
    return {"bytes": sizes, "worst": worst}


def client_main(job: Job) -> dict[str, Any]:
    """Entry point of a client process: run ``job``, return what to print as JSON."""
    pinned = pin(CLIENT_CPU)
    if job.kind == "keys":
        return {**measure_keys(job), "pinned": pinned}
    if job.kind == "normalise":
        from harness.normalise import measure_normalise  # noqa: PLC0415  (phonenumbers only where needed)

        return {**measure_normalise(job), "pinned": pinned}
    # The same hooks whatever is installed: logging only. Metrics libraries
    # (prometheus-client in a dev environment) would otherwise join the
    # defaults; benchmarks/bench_hooks.py measures what they add.
    set_default_hooks([LoggingHooks()])
    measure: Callable[[Job], Awaitable[Sample]]
    if job.kind == "scale":
        measure = measure_scale
    elif job.client in {"httpx", "aiohttp"}:
        measure = measure_raw
    elif job.client == "bare":
        measure = measure_bare
    else:
        measure = measure_bulk
    with asyncio.Runner(loop_factory=loop_factory(job.loop)) as runner:
        sample = runner.run(measure(job))
    return {**asdict(sample), "pinned": pinned}
