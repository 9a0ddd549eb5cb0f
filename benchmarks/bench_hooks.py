"""Instrumentation: what each kind of hooks adds to a request and to a settled batch.

Run as ``python benchmarks/bench_hooks.py`` (about 15 seconds;
``--requests``, ``--batches`` and ``--rounds`` change the work). Needs
``opentelemetry-sdk`` and ``prometheus-client`` (the ``test`` extra has both).

The engine's own code is timed, with nothing else on the clock:

* per request: ``Dispatcher.send_request`` (the wrapper every request goes
  through: the clock read, the ``RequestFinished`` record, each hook's
  ``on_request``) over a transport that answers at once with a prebuilt 200;
* per batch: ``Run.report`` (the ``BatchSettled`` record and each hook's
  ``on_batch``) for a batch of 100 accepted numbers, and for one of 100
  numbers that failed (whose outcome counts walk the failures).

Each configuration runs in turn within every round, the order rotating from
round to round; the median over rounds is reported, in microseconds per call,
with the difference from the same code with no hooks at all measured in the
same round. Configurations:

* ``none``: no hooks (``set_default_hooks([])`` and none given): no record built;
* ``logging``: :class:`LoggingHooks` alone;
* ``otel-api``: :class:`OpenTelemetryHooks` on the API's global providers
  with no SDK configured (what the defaults would cost an application that
  never set up OpenTelemetry, had they included it; they do not);
* ``otel-sdk``: :class:`OpenTelemetryHooks` on an SDK ``MeterProvider`` (an
  in-memory reader) and ``TracerProvider`` (spans to an in-memory exporter);
* ``prometheus``: :class:`PrometheusHooks` on a registry of its own;
* ``defaults``: logging + Prometheus: the detected defaults with
  ``prometheus-client`` installed and no OpenTelemetry provider set;
* ``defaults+otel-sdk``: logging + Prometheus + ``otel-sdk``: the detected
  defaults in an application that has set up OpenTelemetry.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from sms_async import Iton, RetryPolicy
from sms_async._dispatch import Dispatcher, Run
from sms_async._limits import Limits
from sms_async._message import Message
from sms_async._models import BatchResult, Failure, Outcome
from sms_async._wire import WireRequest, WireResponse
from sms_async.instrumentation import (
    Instruments,
    LoggingHooks,
    OpenTelemetryHooks,
    PrometheusHooks,
)
from sms_async.transports._base import BeforeWrite

NUMBERS = [f"+9198{n:08d}" for n in range(100)]


class InstantTransport:
    """A transport whose every answer is the same prebuilt 200, given at once."""

    name = "instant"

    def __init__(self) -> None:
        self.response = WireResponse(200, {"content-type": "application/json"}, b"{}")

    async def send(
        self, request: WireRequest, deadline_at: float | None = None, before_write: BeforeWrite | None = None
    ) -> WireResponse:
        if before_write is not None:
            await before_write()
        return self.response

    async def aclose(self) -> None:
        return None


def configurations() -> dict[str, Callable[[], list[object]]]:
    exporter = InMemorySpanExporter()

    def otel_sdk() -> OpenTelemetryHooks:
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        exporter.clear()  # spans kept from an earlier round would only grow the heap
        return OpenTelemetryHooks(MeterProvider(metric_readers=[InMemoryMetricReader()]), tracer_provider)

    return {
        "none": list,
        "logging": lambda: [LoggingHooks()],
        "otel-api": lambda: [OpenTelemetryHooks()],
        "otel-sdk": lambda: [otel_sdk()],
        "prometheus": lambda: [PrometheusHooks(CollectorRegistry())],
        "defaults": lambda: [LoggingHooks(), PrometheusHooks(CollectorRegistry())],
        "defaults+otel-sdk": lambda: [LoggingHooks(), PrometheusHooks(CollectorRegistry()), otel_sdk()],
    }


def parts(hooks: list[object]) -> tuple[Dispatcher, Run, WireRequest]:
    driver = Iton("bench-user", "bench-password")
    message = Message.create("Hello", "ITONAB")
    limits = Limits(32)
    instruments = Instruments(driver.name, hooks)
    dispatcher = Dispatcher(driver, InstantTransport(), limits, limits.open(), RetryPolicy(), instruments)
    run = dispatcher.run(message, skip_dnd=False, journal=None, params=None)
    request = driver.prepare_send(message).build(NUMBERS)
    return dispatcher, run, request


async def time_requests(dispatcher: Dispatcher, request: WireRequest, count: int) -> float:
    send = dispatcher.send_request
    started = time.perf_counter()
    for _ in range(count):
        await send(request, math.inf, 100)
    return (time.perf_counter() - started) / count * 1e6


def time_batches(run: Run, result: BatchResult, count: int) -> float:
    report = run.report
    started_at = time.time()
    started = time.perf_counter()
    for _ in range(count):
        report(result, started_at)
    return (time.perf_counter() - started) / count * 1e6


def results() -> dict[str, BatchResult]:
    accepted = BatchResult(message_ids={n: f"id{i}" for i, n in enumerate(NUMBERS)}, numbers=NUMBERS)
    accepted.requests, accepted.index = 1, 0
    failure = Failure(Outcome.UNKNOWN, "the gateway answered 500")
    failed = BatchResult(failed=dict.fromkeys(NUMBERS, failure), numbers=NUMBERS)
    failed.requests, failed.index = 1, 1
    return {"accepted": accepted, "failed": failed}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests", type=int, default=20_000, help="requests timed per round and configuration"
    )
    parser.add_argument(
        "--batches", type=int, default=5_000, help="batches timed per round and configuration"
    )
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    makers = configurations()
    names = list(makers)
    batches = results()
    samples: dict[tuple[str, str], list[float]] = {}
    for round_number in range(args.rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            dispatcher, run, request = parts(makers[name]())
            await time_requests(
                dispatcher, request, 1_000
            )  # warm the caches of label children and attributes
            samples.setdefault((name, "request"), []).append(
                await time_requests(dispatcher, request, args.requests)
            )
            for kind, result in batches.items():
                time_batches(run, result, 100)
                samples.setdefault((name, f"batch, {kind}"), []).append(
                    time_batches(run, result, args.batches)
                )
        print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr)

    print(
        f"\nMedian of {args.rounds} rounds; µs per call, and (in brackets) the µs this configuration adds "
        "to the same code without hooks, measured in the same round.\n"
    )
    columns = ["request", "batch, accepted", "batch, failed"]
    print("| hooks | " + " | ".join(f"{c} µs (+hooks)" for c in columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for name in names:
        cells = []
        for column in columns:
            own = samples[name, column]
            added = [a - b for a, b in zip(own, samples["none", column], strict=True)]
            cells.append(f"{statistics.median(own):.2f} (+{statistics.median(added):.2f})")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    asyncio.run(main())
