"""Helpers of the instrumentation tests: a faulty run that makes every kind of record, and metric readers.

Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sms_async import BulkResult, BulkSender, ItecPay, Iton, RetryPolicy, Timeouts
from sms_async.instrumentation import (
    BatchSettled,
    GatewayPaused,
    OpenTelemetryHooks,
    RequestFinished,
    RetryScheduled,
    RunAborted,
)
from sms_async.testing import Fault, SimulatedGateway

SEND_OP = {"iton": "iton.sendSMS", "itecpay": "itecpay.send"}
USERNAME = "metrics-user-31"
PASSWORD = "Pa55-w0rd-never-in-metrics"
TOKEN = "tok-0f3c9a-never-in-metrics"
TEXT = "Your code is 4417, do not share it"
#: Distinct valid Indian mobile numbers in E.164; their national digits are what a leak would show.
NUMBERS = [f"+91987654{n:04d}" for n in range(550)]
INVALID = "12-not-a-number"
#: On the do-not-disturb list: skipped where the gateway can tell (ITON).
DND = NUMBERS[5]
#: 550 numbers, then an invalid input and a repeat: 552 inputs in six batches.
INPUTS = [*NUMBERS, INVALID, NUMBERS[0]]


def faults(gateway: str) -> list[Fault]:
    """Send requests 1 (429), 3 (half rejected), 4 (500), 5 (dropped after reading), 6 (bad credentials)."""
    send = SEND_OP[gateway]
    return [
        Fault("status_429", on_requests={1}, operations=send, retry_after=0.01),
        Fault("partial_accept", on_requests={3}, operations=send, share=0.5),
        Fault("status_500", on_requests={4}, operations=send),
        Fault("drop_after_read", on_requests={5}, operations=send),
        Fault("auth_failure", on_requests={6}, operations=send),
    ]


def faulty_gateway(factory: Any, gateway: str) -> SimulatedGateway:
    """A simulated gateway with the test credentials and the faults above, naming each refused number."""
    gw: SimulatedGateway = factory(
        username=USERNAME,
        password=PASSWORD,
        token=TOKEN,
        faults=faults(gateway),
        iton_send_form="json",
        itecpay_send_form="per_recipient",
        dnd_numbers=[DND[1:]],
    )
    return gw


def driver(gw: SimulatedGateway, gateway: str, *, token: bool = False) -> Iton | ItecPay:
    """A driver for ``gateway`` on the simulated gateway, with the test credentials."""
    if gateway == "iton":
        if token:
            return Iton(token=TOKEN, base_url=gw.iton_url)
        return Iton(USERNAME, PASSWORD, base_url=gw.iton_url)
    return ItecPay(USERNAME, PASSWORD, base_url=gw.itecpay_url)


class Recorder:
    """Hooks that keep every record, to compare the metrics with."""

    def __init__(self) -> None:
        self.requests: list[RequestFinished] = []
        self.retries: list[RetryScheduled] = []
        self.pauses: list[GatewayPaused] = []
        self.aborts: list[RunAborted] = []
        self.batches: list[BatchSettled] = []

    def on_request(self, record: RequestFinished) -> None:
        """Keep it."""
        self.requests.append(record)

    def on_retry(self, record: RetryScheduled) -> None:
        """Keep it."""
        self.retries.append(record)

    def on_pause(self, record: GatewayPaused) -> None:
        """Keep it."""
        self.pauses.append(record)

    def on_abort(self, record: RunAborted) -> None:
        """Keep it."""
        self.aborts.append(record)

    def on_batch(self, record: BatchSettled) -> None:
        """Keep it."""
        self.batches.append(record)


async def faulty_run(
    gw: SimulatedGateway, gateway: str, hooks: list[object], *, token: bool = False
) -> tuple[BulkResult, Recorder]:
    """A balance look-up and DND checks (ITON), then a send through the faults: every kind of record."""
    recorder = Recorder()
    bulk = BulkSender(
        driver(gw, gateway, token=token),
        concurrency=1,  # one request at a time, so that the faults hit the batches in order
        retry=RetryPolicy(initial_wait=0.001, max_wait=0.01),
        timeouts=Timeouts(read=2.0),
        hooks=[*hooks, recorder],
    )
    async with bulk:
        if gateway == "iton":
            await bulk.balance()
        result = await bulk.send(INPUTS, TEXT, sender_id="ITONAB", skip_dnd=gateway == "iton")
    return result, recorder


def check_every_kind(recorder: Recorder) -> None:
    """The run made every kind of record."""
    assert recorder.requests
    assert recorder.retries
    assert recorder.pauses
    assert recorder.aborts
    assert recorder.batches


@attrs.frozen
class OtelCapture:
    """An OpenTelemetry SDK whose metrics and spans stay in memory."""

    reader: InMemoryMetricReader
    exporter: InMemorySpanExporter
    meter_provider: MeterProvider
    tracer_provider: TracerProvider

    def hooks(self) -> OpenTelemetryHooks:
        """Hooks that feed this SDK."""
        return OpenTelemetryHooks(self.meter_provider, self.tracer_provider)

    def points(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """Metric name -> (attributes, data point) for every point collected now."""
        found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        data = self.reader.get_metrics_data()
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found.setdefault(metric.name, []).extend(
                        (dict(point.attributes or {}), point) for point in metric.data.data_points
                    )
        return found

    def spans(self) -> tuple[ReadableSpan, ...]:
        """The spans finished so far."""
        return self.exporter.get_finished_spans()


Points = list[tuple[dict[str, Any], Any]]


def total(points: Points, match: Mapping[str, Any] | None = None) -> float:
    """The sum of the counter points whose attributes hold every item of ``match``."""
    return sum(point.value for attributes, point in points if _holds(attributes, match or {}))


def count(points: Points, match: Mapping[str, Any] | None = None) -> int:
    """The sum of the histogram points' counts whose attributes hold every item of ``match``."""
    return sum(point.count for attributes, point in points if _holds(attributes, match or {}))


def _holds(attributes: Mapping[str, Any], match: Mapping[str, Any]) -> bool:
    return all(attributes.get(key) == value for key, value in match.items())
