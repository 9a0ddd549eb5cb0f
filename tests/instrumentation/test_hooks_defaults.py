"""The default hooks: detected by import, set and restored with set_default_hooks, never counted twice."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

import sms_async._dispatch
from sms_async import BulkSender, Iton, RetryPolicy
from sms_async.instrumentation import (
    Instruments,
    LoggingHooks,
    OpenTelemetryHooks,
    PrometheusHooks,
    default_hooks,
    set_default_hooks,
)
from sms_async.instrumentation import _prometheus as prometheus_module
from sms_async.testing import Fault


def iton(gw) -> Iton:
    return Iton(gw.username, gw.password, base_url=gw.iton_url)


def numbers(count: int) -> list[str]:
    return [f"+9198{n:08d}" for n in range(count)]


def test_defaults_are_logging_and_prometheus_until_opentelemetry_is_set_up():
    """With both libraries installed and no OpenTelemetry provider set: logging and Prometheus, made once."""
    with set_default_hooks(None):
        found = default_hooks()
        assert [type(hook) for hook in found] == [LoggingHooks, PrometheusHooks]
        assert default_hooks() == found
        assert all(a is b for a, b in zip(default_hooks(), found, strict=True))
        assert found[1] == PrometheusHooks()  # on prometheus_client.REGISTRY
    assert default_hooks() == ()  # this module's fixture set none


@pytest.mark.parametrize("provider", ["meter", "tracer"])
def test_opentelemetry_joins_the_defaults_once_a_provider_is_set(monkeypatch, otel, provider):
    """A meter or a tracer provider set by the application brings OpenTelemetryHooks into the defaults."""
    import opentelemetry.metrics  # noqa: PLC0415 - patched for this test only
    import opentelemetry.trace  # noqa: PLC0415 - as above

    with set_default_hooks(None):
        assert OpenTelemetryHooks not in [type(hook) for hook in default_hooks()]
        if provider == "meter":
            monkeypatch.setattr(opentelemetry.metrics, "get_meter_provider", lambda: otel.meter_provider)
        else:
            monkeypatch.setattr(opentelemetry.trace, "get_tracer_provider", lambda: otel.tracer_provider)
        found = default_hooks()
        assert [type(hook) for hook in found] == [LoggingHooks, OpenTelemetryHooks, PrometheusHooks]
        assert found[1] == OpenTelemetryHooks()  # on the global providers
        assert default_hooks()[1] is found[1]


def test_a_globally_set_up_sdk_gets_a_default_senders_metrics_and_spans():
    """In a process that sets global OpenTelemetry providers, a sender with no hooks given feeds them."""
    script = """
import anyio
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sms_async import BulkSender, Iton
from sms_async.instrumentation import default_hooks
from sms_async.testing import SimulatedGateway

before = [type(hook).__name__ for hook in default_hooks()]
reader, exporter = InMemoryMetricReader(), InMemorySpanExporter()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
tracer_provider = TracerProvider()
tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(tracer_provider)

async def main():
    with SimulatedGateway() as gw:
        async with BulkSender(Iton(gw.username, gw.password, base_url=gw.iton_url)) as bulk:
            await bulk.send([f"+9198{n:08d}" for n in range(250)], "Hello", sender_id="ITONAB")

anyio.run(main)
points = [
    point.value
    for resource in reader.get_metrics_data().resource_metrics
    for scope in resource.scope_metrics
    for metric in scope.metrics
    if metric.name == "sms_async.recipients"
    for point in metric.data.data_points
]
after = [type(hook).__name__ for hook in default_hooks()]
print(before, after, sum(points), len(exporter.get_finished_spans()))
"""
    shown = subprocess.run(  # noqa: S603 - this interpreter, running the script above
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=30
    )
    assert shown.stdout.strip() == (
        "['LoggingHooks', 'PrometheusHooks'] ['LoggingHooks', 'OpenTelemetryHooks', 'PrometheusHooks'] 250 3"
    )


@pytest.mark.parametrize("missing", ["prometheus_client", "opentelemetry"])
def test_an_integration_whose_library_is_missing_is_left_out(monkeypatch, missing):
    """A library that cannot be imported leaves its integration out of the defaults, and nothing else."""
    monkeypatch.setitem(sys.modules, missing, None)
    with set_default_hooks(None):
        found = [type(hook) for hook in default_hooks()]
    expected = [LoggingHooks] if missing == "prometheus_client" else [LoggingHooks, PrometheusHooks]
    assert found == expected


@pytest.mark.parametrize(
    ("missing", "make", "extra"),
    [
        ("prometheus_client", PrometheusHooks, "sms_async[prometheus]"),
        ("opentelemetry", OpenTelemetryHooks, "sms_async[otel]"),
    ],
)
def test_making_an_integration_without_its_library_says_what_to_install(monkeypatch, missing, make, extra):
    """PrometheusHooks() / OpenTelemetryHooks() without their library raise ImportError naming the extra."""
    monkeypatch.setitem(sys.modules, missing, None)
    with pytest.raises(ImportError, match=extra.replace("[", r"\[").replace("]", r"\]")):
        make()


def test_an_integration_that_fails_otherwise_is_logged_once_and_left_out(monkeypatch, caplog):
    """An integration that cannot be made (its names taken, say) is logged once and skipped; senders work."""

    def taken(*args, **kwargs):
        raise ValueError("Duplicated timeseries in CollectorRegistry")

    monkeypatch.setattr(prometheus_module, "PrometheusHooks", taken)
    with set_default_hooks(None):
        found = [type(hook) for hook in default_hooks()]
        bulk = BulkSender(Iton("u", "p"))
        BulkSender(Iton("u", "p"))
    assert found == [LoggingHooks]
    assert bulk._hooks == (LoggingHooks(),)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == ["the prometheus hooks are left out of the default hooks"]


def test_set_default_hooks_restores_what_was_before_on_leaving():
    """Nested `with set_default_hooks(...)` blocks put back the defaults they found; a plain call sticks."""
    first, second = LoggingHooks(), object()
    with set_default_hooks([first]):
        assert default_hooks() == (first,)
        with set_default_hooks([second]):
            assert default_hooks() == (second,)
        assert default_hooks() == (first,)
        restorer = set_default_hooks([second])
        assert default_hooks() == (second,)
        restorer.restore()
        assert default_hooks() == (first,)
    assert default_hooks() == ()


def test_senders_take_the_defaults_of_when_they_are_made():
    """A sender keeps the defaults it was made with; later changes reach only senders made after them."""
    mine = LoggingHooks()
    own = object()
    with set_default_hooks([mine]):
        before = BulkSender(Iton("u", "p"), hooks=own)
    after = BulkSender(Iton("u", "p"), hooks=own)
    assert before._hooks == (mine, own)
    assert after._hooks == (own,)


@pytest.mark.parametrize("wrong", [LoggingHooks(), "LoggingHooks", 3])
def test_set_default_hooks_wants_a_list(wrong):
    """One hook, a string or a number instead of a list is refused with what to pass instead."""
    with pytest.raises(TypeError, match=r"wrap a single hook as \[hook\]"):
        set_default_hooks(wrong)
    assert default_hooks() == ()


async def test_with_no_hooks_at_all_no_record_is_built(sms_gateway_factory, monkeypatch):
    """No defaults and no hooks: a run through a 429 and a bad batch builds not one record."""
    built: list[str] = []
    for name in ("RequestFinished", "RetryScheduled", "GatewayPaused", "RunAborted", "BatchSettled"):
        real = getattr(sms_async._dispatch, name)

        def spy(*args, _name=name, _real=real, **kwargs):
            built.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(sms_async._dispatch, name, spy)
    gw = sms_gateway_factory(
        faults=[
            Fault("status_429", on_requests={1}, retry_after=0.001),
            Fault("auth_failure", on_requests={3}, operations="iton.sendSMS"),
        ]
    )
    async with BulkSender(iton(gw), concurrency=1, retry=RetryPolicy(initial_wait=0.001)) as bulk:
        result = await bulk.send(numbers(350), "Hello", sender_id="ITONAB")
        instruments = bulk._dispatcher.instruments
    assert result.aborted is not None
    assert result.retries == 1
    assert built == []
    assert (instruments.on_request, instruments.on_batch, instruments.on_retry) == ((), (), ())
    # The same run with one listener builds that listener's records, and only those.

    class Batches:
        def on_batch(self, record):
            """Nothing."""

    async with BulkSender(iton(gw), concurrency=1, hooks=[Batches()]) as bulk:
        await bulk.send(numbers(10), "Hello", sender_id="ITONAB")
    assert set(built) == {"BatchSettled"}


async def test_a_hook_given_while_the_defaults_have_it_counts_once(sms_gateway, registry):
    """PrometheusHooks on the same registry in the defaults and in hooks= count each recipient once."""
    with set_default_hooks([LoggingHooks(), PrometheusHooks(registry)]):
        async with BulkSender(
            iton(sms_gateway), hooks=[PrometheusHooks(registry), LoggingHooks(), PrometheusHooks(registry)]
        ) as bulk:
            await bulk.send(numbers(120), "Hello", sender_id="ITONAB")
            instruments = bulk._dispatcher.instruments
    assert len(instruments.on_batch) == 1  # one PrometheusHooks
    assert len(instruments.on_retry) == 2  # one LoggingHooks, one PrometheusHooks
    assert (
        registry.get_sample_value("sms_async_recipients_total", {"gateway": "iton", "outcome": "accepted"})
        == 120
    )


def test_hooks_whose_equality_fails_are_all_kept():
    """A hook whose __eq__ raises, or that is unhashable, is never merged with another."""

    class Touchy:
        __hash__ = None  # type: ignore[assignment]

        def __eq__(self, other):
            raise RuntimeError("no comparisons")

        def on_batch(self, record):
            """Nothing."""

    a, b = Touchy(), Touchy()
    assert len(Instruments("g", [a, b, a]).on_batch) == 2
    assert len(Instruments("g", [LoggingHooks(), LoggingHooks()]).on_retry) == 1


def test_importing_the_package_imports_neither_library():
    """`import sms_async` loads neither OpenTelemetry nor prometheus-client; a first sender's defaults do."""
    script = (
        "import sys, sms_async\n"
        "before = [m in sys.modules for m in ('opentelemetry', 'prometheus_client')]\n"
        "sms_async.BulkSender(sms_async.Iton('u', 'p'))\n"
        "after = [m in sys.modules for m in ('opentelemetry', 'prometheus_client')]\n"
        "print(before, after)\n"
    )
    shown = subprocess.run(  # noqa: S603 - this interpreter, running the script above
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert shown.stdout.strip() == "[False, False] [True, True]"
