"""Fixtures of the instrumentation tests: default hooks off, and in-memory OpenTelemetry and Prometheus."""

from __future__ import annotations

import pytest
from metrics_support import OtelCapture
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from sms_async.instrumentation import set_default_hooks


@pytest.fixture(autouse=True)
def no_default_hooks():
    """Each test sees only the hooks it passes; the defaults come back after it."""
    with set_default_hooks([]):
        yield


@pytest.fixture
def otel():
    """An OpenTelemetry SDK of this test's own: metrics and spans kept in memory."""
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield OtelCapture(reader, exporter, meter_provider, tracer_provider)
    meter_provider.shutdown()
    tracer_provider.shutdown()


@pytest.fixture
def registry():
    """A Prometheus registry of this test's own."""
    return CollectorRegistry()
