"""Prometheus: the same metrics as the OpenTelemetry hooks, registered with ``prometheus-client``.

A registry holds each metric name once, and many senders (each with its own
hooks) share it: the metrics of one registry and namespace are made the
first time they are asked for and kept for as long as the registry lives.
Labels carry the gateway's name, the operation, outcomes, HTTP status classes
and error class names: never a number, a text or a credential.
"""

from __future__ import annotations

import re
import threading
import weakref
from typing import TYPE_CHECKING, Final

import attrs

from sms_async._models import Outcome
from sms_async.instrumentation._data import (
    BatchSettled,
    GatewayPaused,
    RequestFinished,
    RetryScheduled,
    RunAborted,
)
from sms_async.instrumentation._otel import LATENCY_BUCKETS, PAUSE_BUCKETS

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["PrometheusHooks"]

_NAMESPACE: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


@attrs.frozen
class _Metrics:
    """The metrics of one registry and namespace."""

    recipients: Counter
    requests: Counter
    request_duration: Histogram
    retries: Counter
    pause_duration: Histogram
    aborts: Counter


_lock = threading.Lock()
# registry -> namespace -> its metrics; an entry goes with its registry.
_registered: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, _Metrics]] = weakref.WeakKeyDictionary()


def _metrics_for(registry: CollectorRegistry, namespace: str) -> _Metrics:
    with _lock:
        by_namespace = _registered.setdefault(registry, {})
        metrics = by_namespace.get(namespace)
        if metrics is None:
            metrics = by_namespace[namespace] = _register(registry, namespace)
        return metrics


def _register(registry: CollectorRegistry, namespace: str) -> _Metrics:
    from prometheus_client import Counter, Histogram  # noqa: PLC0415 - checked by PrometheusHooks

    made: list[Counter | Histogram] = []

    def add(metric: Counter | Histogram) -> None:
        registry.register(metric)
        made.append(metric)

    def counter(name: str, documentation: str, labels: tuple[str, ...]) -> Counter:
        metric = Counter(f"{namespace}_{name}", documentation, labels, registry=None)
        add(metric)
        return metric

    def histogram(
        name: str, documentation: str, labels: tuple[str, ...], buckets: tuple[float, ...]
    ) -> Histogram:
        metric = Histogram(f"{namespace}_{name}", documentation, labels, registry=None, buckets=buckets)
        add(metric)
        return metric

    request_labels = ("gateway", "operation", "status_class", "error")
    try:
        return _Metrics(
            recipients=counter("recipients", "Inputs settled, by outcome.", ("gateway", "outcome")),
            requests=counter(
                "requests", "HTTP requests made to the gateway, by status class or error.", request_labels
            ),
            request_duration=histogram(
                "request_duration_seconds",
                "Seconds from writing a request to the end of its answer (or its failure).",
                request_labels,
                LATENCY_BUCKETS,
            ),
            retries=counter("retries", "Retries scheduled, by error.", ("gateway", "operation", "error")),
            pause_duration=histogram(
                "pause_duration_seconds",
                "Pauses of every worker that a busy gateway (429/503) asked for.",
                ("gateway", "status_class"),
                PAUSE_BUCKETS,
            ),
            aborts=counter(
                "aborts", "Runs stopped early (bad credentials, no credit), by error.", ("gateway", "error")
            ),
        )
    except ValueError as error:
        # Leave the registry as it was: half a set of metrics would only confuse the next attempt.
        for metric in made:
            registry.unregister(metric)
        raise ValueError(
            f"the Prometheus registry already has a metric that PrometheusHooks would register under the "
            f"namespace {namespace!r} ({error}); pass another namespace= or registry="
        ) from error


class PrometheusHooks:
    """Hooks that feed Prometheus metrics (``prometheus-client``).

    With the default namespace:

    * ``sms_async_recipients_total{gateway, outcome}``: inputs settled.
    * ``sms_async_requests_total{gateway, operation, status_class, error}`` and
      ``sms_async_request_duration_seconds`` (histogram, same labels): HTTP
      requests; ``status_class`` is ``2xx`` ... (``""`` when no answer came),
      ``error`` the error's class name when no answer came (else ``""``).
    * ``sms_async_retries_total{gateway, operation, error}``: retries scheduled.
    * ``sms_async_pause_duration_seconds{gateway, status_class}`` (histogram):
      pauses a busy gateway (429/503) imposed on every worker.
    * ``sms_async_aborts_total{gateway, error}``: runs stopped early.

    Args:
        registry: the ``CollectorRegistry`` to register with; default:
            ``prometheus_client.REGISTRY``, which ``start_http_server`` serves.
        namespace: the metric names' prefix.
    """

    __slots__ = ("_by_outcome", "_by_request", "_metrics", "_namespace", "_registry")

    def __init__(self, registry: CollectorRegistry | None = None, namespace: str = "sms_async") -> None:
        try:
            import prometheus_client  # noqa: PLC0415 - an optional dependency
        except ImportError as error:
            raise ImportError(
                "PrometheusHooks needs prometheus-client: install it with pip install 'sms_async[prometheus]'"
            ) from error
        if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
            raise ValueError(
                f"namespace must be letters, digits and underscores, not starting with a digit; "
                f"got {namespace!r}"
            )
        self._registry = prometheus_client.REGISTRY if registry is None else registry
        self._namespace = namespace
        self._metrics = _metrics_for(self._registry, namespace)
        # Labelled children are looked up once per distinct key, not once per record.
        self._by_request: dict[tuple[str, str, int | None, str | None], tuple[Counter, Histogram]] = {}
        self._by_outcome: dict[str, dict[Outcome, Counter]] = {}

    def __repr__(self) -> str:
        return f"PrometheusHooks(registry={self._registry!r}, namespace={self._namespace!r})"

    def __eq__(self, other: object) -> bool:
        # Equal hooks feed the same metrics: a sender keeps one of them, so nothing counts twice.
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, PrometheusHooks)  # noqa: S101 - for the type checker
        return other._registry is self._registry and other._namespace == self._namespace

    def __hash__(self) -> int:
        return hash((type(self), id(self._registry), self._namespace))

    def on_request(self, record: RequestFinished) -> None:
        """Count the request and observe its latency."""
        key = (record.gateway, record.operation, record.status, record.error)
        children = self._by_request.get(key)
        if children is None:
            labels = (record.gateway, record.operation, record.status_class, record.error or "")
            metrics = self._metrics
            children = self._by_request[key] = (
                metrics.requests.labels(*labels),
                metrics.request_duration.labels(*labels),
            )
        children[0].inc()
        children[1].observe(record.seconds)

    def on_retry(self, record: RetryScheduled) -> None:
        """Count the retry."""
        self._metrics.retries.labels(record.gateway, record.operation, record.error).inc()

    def on_pause(self, record: GatewayPaused) -> None:
        """Observe the pause."""
        status_class = f"{record.status // 100}xx" if record.status is not None else ""
        self._metrics.pause_duration.labels(record.gateway, status_class).observe(record.seconds)

    def on_abort(self, record: RunAborted) -> None:
        """Count the aborted run."""
        self._metrics.aborts.labels(record.gateway, record.error).inc()

    def on_batch(self, record: BatchSettled) -> None:
        """Count the batch's inputs by outcome."""
        per_outcome = self._by_outcome.get(record.gateway)
        if per_outcome is None:
            recipients = self._metrics.recipients
            per_outcome = self._by_outcome[record.gateway] = {
                outcome: recipients.labels(record.gateway, outcome.value) for outcome in Outcome
            }
        for outcome, count in record.counts.items():
            if count:
                per_outcome[outcome].inc(count)
