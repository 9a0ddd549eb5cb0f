"""OpenTelemetry: counters, latency histograms and a span per batch, on ``opentelemetry-api`` alone.

The hooks talk to the API only; what becomes of the measurements (an SDK
with its readers and exporters, or nothing) is the application's choice,
as OpenTelemetry means libraries to work. Without an SDK every call is the
API's no-op. Instruments and span attributes carry the gateway's name, the
operation, outcomes, HTTP status classes, error class names and counts: never
a number, a text or a credential.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from sms_async._models import Outcome
from sms_async.instrumentation._data import (
    BatchSettled,
    GatewayPaused,
    RequestFinished,
    RetryScheduled,
    RunAborted,
)

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider
    from opentelemetry.util.types import Attributes

__all__ = ["LATENCY_BUCKETS", "PAUSE_BUCKETS", "SCOPE", "SPAN_NAME", "OpenTelemetryHooks"]

#: The instrumentation scope (meter and tracer name).
SCOPE: Final = "sms_async"
#: The name of the span each settled batch makes.
SPAN_NAME: Final = "sms_async.batch"
#: Histogram bounds for request latency, in seconds (OpenTelemetry's advice for HTTP client durations).
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
#: Histogram bounds for the pauses a busy gateway asks for, in seconds.
PAUSE_BUCKETS: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

GATEWAY: Final = "sms_async.gateway"
OPERATION: Final = "sms_async.operation"
STATUS_CLASS: Final = "sms_async.status_class"
OUTCOME: Final = "sms_async.outcome"
ERROR_TYPE: Final = "error.type"
_OUTCOME_KEYS: Final = {outcome: f"sms_async.outcome.{outcome.value}" for outcome in Outcome}
# Outcomes that make a batch's span an error: the gateway refused, or may not have processed, numbers.
_FAILED: Final = (Outcome.REJECTED, Outcome.UNKNOWN, Outcome.UNSENT)


class OpenTelemetryHooks:
    """Hooks that feed OpenTelemetry: metrics from every record, and a span per settled batch.

    Metrics (meter ``sms_async``):

    * ``sms_async.recipients`` (counter): inputs settled, by ``sms_async.outcome``.
    * ``sms_async.requests`` (counter) and ``sms_async.request.duration``
      (histogram, seconds): HTTP requests, by ``sms_async.operation`` and
      ``sms_async.status_class`` (``2xx`` ...) or ``error.type`` when no answer came.
    * ``sms_async.retries`` (counter): retries scheduled, by operation and ``error.type``.
    * ``sms_async.pause.duration`` (histogram, seconds): pauses a busy gateway (429/503) imposed.
    * ``sms_async.aborts`` (counter): runs stopped early, by ``error.type``.

    Every one also carries ``sms_async.gateway``. The span ``sms_async.batch``
    (tracer ``sms_async``) runs from the batch's first request to its
    settlement, as a child of the span current where ``send``/``stream`` was
    called; its status is an error when any input ended rejected, unknown or unsent.

    Args:
        meter_provider: where the metrics go; default: the global one
            (``opentelemetry.metrics.set_meter_provider``, called before or
            after these hooks are made: until then the API's proxy holds on).
        tracer_provider: where the spans go; default: the global one, likewise.
    """

    __slots__ = (
        "_aborts",
        "_by_outcome",
        "_by_request",
        "_error_code",
        "_latency",
        "_meter_provider",
        "_pauses",
        "_recipients",
        "_requests",
        "_retries",
        "_status",
        "_tracer",
        "_tracer_provider",
    )

    def __init__(
        self, meter_provider: MeterProvider | None = None, tracer_provider: TracerProvider | None = None
    ) -> None:
        try:
            from opentelemetry import metrics, trace  # noqa: PLC0415 - an optional dependency
            from opentelemetry.trace import Status, StatusCode  # noqa: PLC0415 - as above
        except ImportError as error:
            raise ImportError(
                "OpenTelemetryHooks needs opentelemetry-api: install it with pip install 'sms_async[otel]'"
            ) from error
        import sms_async  # noqa: PLC0415 - the package imports this module while it loads

        version = sms_async.__version__
        self._status = Status
        self._error_code = StatusCode.ERROR
        self._meter_provider = meter_provider
        self._tracer_provider = tracer_provider
        meter = metrics.get_meter(SCOPE, version, meter_provider)
        self._recipients = meter.create_counter(
            "sms_async.recipients", "{recipient}", "Inputs settled, by outcome."
        )
        self._requests = meter.create_counter(
            "sms_async.requests", "{request}", "HTTP requests made to the gateway, by status class or error."
        )
        self._latency = meter.create_histogram(
            "sms_async.request.duration",
            "s",
            "Seconds from writing a request to the end of its answer (or its failure).",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        self._retries = meter.create_counter("sms_async.retries", "{retry}", "Retries scheduled, by error.")
        self._pauses = meter.create_histogram(
            "sms_async.pause.duration",
            "s",
            "Pauses of every worker that a busy gateway (429/503) asked for.",
            explicit_bucket_boundaries_advisory=PAUSE_BUCKETS,
        )
        self._aborts = meter.create_counter(
            "sms_async.aborts", "{abort}", "Runs stopped early (bad credentials, no credit), by error."
        )
        self._tracer = trace.get_tracer(SCOPE, version, tracer_provider)
        # Attribute sets are built once per distinct key, not once per record: the hot path only looks up.
        self._by_request: dict[tuple[str, str, int | None, str | None], Attributes] = {}
        self._by_outcome: dict[str, dict[Outcome, Attributes]] = {}

    def __repr__(self) -> str:
        return (
            f"OpenTelemetryHooks(meter_provider={self._meter_provider!r}, "
            f"tracer_provider={self._tracer_provider!r})"
        )

    def __eq__(self, other: object) -> bool:
        # Equal hooks feed the same providers: a sender keeps one of them, so nothing counts twice.
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, OpenTelemetryHooks)  # noqa: S101 - for the type checker
        return (
            other._meter_provider is self._meter_provider and other._tracer_provider is self._tracer_provider
        )

    def __hash__(self) -> int:
        return hash((type(self), id(self._meter_provider), id(self._tracer_provider)))

    def on_request(self, record: RequestFinished) -> None:
        """Count the request and record its latency."""
        key = (record.gateway, record.operation, record.status, record.error)
        attributes = self._by_request.get(key)
        if attributes is None:
            found: dict[str, str] = {GATEWAY: record.gateway, OPERATION: record.operation}
            if record.status is not None:
                found[STATUS_CLASS] = record.status_class
            if record.error is not None:
                found[ERROR_TYPE] = record.error
            attributes = self._by_request[key] = found
        self._requests.add(1, attributes)
        self._latency.record(record.seconds, attributes)

    def on_retry(self, record: RetryScheduled) -> None:
        """Count the retry."""
        self._retries.add(1, {GATEWAY: record.gateway, OPERATION: record.operation, ERROR_TYPE: record.error})

    def on_pause(self, record: GatewayPaused) -> None:
        """Record the pause."""
        attributes = {GATEWAY: record.gateway}
        if record.status is not None:
            attributes[STATUS_CLASS] = f"{record.status // 100}xx"
        self._pauses.record(record.seconds, attributes)

    def on_abort(self, record: RunAborted) -> None:
        """Count the aborted run."""
        self._aborts.add(1, {GATEWAY: record.gateway, ERROR_TYPE: record.error})

    def on_batch(self, record: BatchSettled) -> None:
        """Count the batch's inputs by outcome, and make its span."""
        gateway = record.gateway
        per_outcome = self._by_outcome.get(gateway)
        if per_outcome is None:
            per_outcome = {o: {GATEWAY: gateway, OUTCOME: o.value} for o in Outcome}
            self._by_outcome[gateway] = per_outcome
        counts = record.counts
        for outcome, count in counts.items():
            if count:
                self._recipients.add(count, per_outcome[outcome])
        start = int(record.started_at * 1e9)
        span = self._tracer.start_span(SPAN_NAME, attributes={GATEWAY: gateway}, start_time=start)
        if not span.is_recording():
            return  # no SDK, or not sampled: the attributes would be thrown away
        result = record.result
        attributes: dict[str, str | int] = {
            "sms_async.batch.index": record.index,
            "sms_async.batch.size": record.size,
            "sms_async.batch.requests": result.requests,
            "sms_async.batch.retries": result.retries,
        }
        for outcome, key in _OUTCOME_KEYS.items():
            attributes[key] = counts[outcome]
        if result.aborted is not None:
            attributes[ERROR_TYPE] = type(result.aborted).__name__
        span.set_attributes(attributes)
        failed = [f"{counts[outcome]} {outcome.value}" for outcome in _FAILED if counts[outcome]]
        if failed:
            span.set_status(self._status(self._error_code, ", ".join(failed)))
        span.end(end_time=max(start, int(record.settled_at * 1e9)))
