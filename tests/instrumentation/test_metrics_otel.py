"""OpenTelemetryHooks over loopback: metrics read back with the SDK's InMemoryMetricReader, spans kept."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from metrics_support import SEND_OP, check_every_kind, count, faulty_gateway, faulty_run, total
from opentelemetry.trace import StatusCode

from sms_async import Outcome
from sms_async.instrumentation import OpenTelemetryHooks

GATEWAYS = ("iton", "itecpay")


@pytest.mark.parametrize("gateway", GATEWAYS)
async def test_recipients_are_counted_by_outcome(sms_gateway_factory, otel, gateway):
    """`sms_async.recipients` holds, per outcome, exactly the inputs the run's result has."""
    gw = faulty_gateway(sms_gateway_factory, gateway)
    result, recorder = await faulty_run(gw, gateway, [otel.hooks()])
    check_every_kind(recorder)
    points = otel.points()["sms_async.recipients"]
    for outcome, expected in result.counts().items():
        match = {"sms_async.gateway": gateway, "sms_async.outcome": outcome.value}
        assert total(points, match) == expected, outcome
    assert total(points) == result.total == 552
    # Outcomes no input had make no point at all.
    assert {attributes["sms_async.outcome"] for attributes, _ in points} == {
        outcome.value for outcome, n in result.counts().items() if n
    }


@pytest.mark.parametrize("gateway", GATEWAYS)
async def test_requests_are_counted_and_timed_by_status_class_or_error(sms_gateway_factory, otel, gateway):
    """Each request the gateway saw counts once, by operation and status class, or by error if unanswered."""
    gw = faulty_gateway(sms_gateway_factory, gateway)
    result, recorder = await faulty_run(gw, gateway, [otel.hooks()])
    points = otel.points()
    requests, latency = points["sms_async.requests"], points["sms_async.request.duration"]
    assert total(requests) == len(recorder.requests) == sum(gw.stats.requests.values())
    assert count(latency) == len(recorder.requests)
    send = {"sms_async.gateway": gateway, "sms_async.operation": "send"}
    assert total(requests, send) == gw.stats.requests[SEND_OP[gateway]] == result.requests == 6
    # ITON refuses credentials in a 200, ItecPay with a 401.
    assert total(requests, {**send, "sms_async.status_class": "2xx"}) == (3 if gateway == "iton" else 2)
    assert total(requests, {**send, "sms_async.status_class": "4xx"}) == (1 if gateway == "iton" else 2)
    assert total(requests, {**send, "sms_async.status_class": "5xx"}) == 1
    dropped = [(a, p) for a, p in requests if "error.type" in a]
    assert len(dropped) == 1
    assert dropped[0][1].value == 1
    assert "sms_async.status_class" not in dropped[0][0]
    # The dropped connection, by the class of the error it was mapped to.
    assert dropped[0][0]["error.type"] == "RemoteProtocolError"
    assert [r.error for r in recorder.requests if r.error] == ["RemoteProtocolError"]
    if gateway == "iton":
        assert total(requests, {"sms_async.operation": "balance", "sms_async.status_class": "2xx"}) == 1
        assert total(requests, {"sms_async.operation": "dnd"}) == gw.stats.requests["iton.check_DNDnumber"]
    # The latency histogram holds every request's seconds, with the bounds advised.
    assert sum(p.sum for _, p in latency) == pytest.approx(sum(r.seconds for r in recorder.requests))
    assert all(p.explicit_bounds[:3] == (0.005, 0.01, 0.025) for _, p in latency)


@pytest.mark.parametrize("gateway", GATEWAYS)
async def test_retries_pauses_and_aborts_are_counted(sms_gateway_factory, otel, gateway):
    """The 429 counts one retry and one pause of its Retry-After; bad credentials count one abort."""
    gw = faulty_gateway(sms_gateway_factory, gateway)
    result, _ = await faulty_run(gw, gateway, [otel.hooks()])
    points = otel.points()
    retry = {"sms_async.gateway": gateway, "sms_async.operation": "send", "error.type": "GatewayBusyError"}
    assert (
        total(points["sms_async.retries"]) == total(points["sms_async.retries"], retry) == result.retries == 1
    )
    pauses = points["sms_async.pause.duration"]
    assert count(pauses, {"sms_async.gateway": gateway, "sms_async.status_class": "4xx"}) == 1
    assert sum(p.sum for _, p in pauses) == pytest.approx(0.01)
    aborts = points["sms_async.aborts"]
    assert total(aborts) == total(aborts, {"sms_async.gateway": gateway, "error.type": "AuthenticationError"})
    assert total(aborts) == 1


@pytest.mark.parametrize("gateway", GATEWAYS)
async def test_one_span_per_batch_with_its_counts_and_times(sms_gateway_factory, otel, gateway):
    """A span per batch: gateway, size, outcome counts as attributes; from first request to settling."""
    gw = faulty_gateway(sms_gateway_factory, gateway)
    before = time.time_ns()
    result, recorder = await faulty_run(gw, gateway, [otel.hooks()])
    after = time.time_ns()
    spans = {span.attributes["sms_async.batch.index"]: span for span in otel.spans()}
    assert len(spans) == len(otel.spans()) == len(recorder.batches) == 6
    summed: Counter[str] = Counter()
    for record in recorder.batches:
        span = spans[record.index]
        attributes = dict(span.attributes)
        assert span.name == "sms_async.batch"
        assert span.instrumentation_scope.name == "sms_async"
        assert attributes["sms_async.gateway"] == gateway
        assert attributes["sms_async.batch.size"] == record.size
        assert attributes["sms_async.batch.requests"] == record.result.requests
        assert attributes["sms_async.batch.retries"] == record.result.retries
        for outcome in Outcome:
            assert attributes[f"sms_async.outcome.{outcome.value}"] == record.counts[outcome]
            summed[outcome.value] += record.counts[outcome]
        assert before <= span.start_time <= span.end_time <= after
        assert span.start_time == int(record.started_at * 1e9)
        assert span.end_time == int(record.settled_at * 1e9)
        failed = (
            record.counts[Outcome.REJECTED] + record.counts[Outcome.UNKNOWN] + record.counts[Outcome.UNSENT]
        )
        assert (span.status.status_code is StatusCode.ERROR) == bool(failed)
        assert ("error.type" in attributes) == (record.result.aborted is not None)
    assert summed == Counter({o.value: n for o, n in result.counts().items()})
    # Sent batches last from their first request to their answer; the one never sent has no length.
    assert spans[0].end_time > spans[0].start_time
    assert spans[5].attributes["sms_async.batch.requests"] == 0
    assert spans[4].status.description == "100 unsent"
    assert spans[4].attributes["error.type"] == "AuthenticationError"
    assert spans[1].status.description == "50 rejected"


async def test_batch_spans_are_children_of_the_callers_span(sms_gateway_factory, otel):
    """A span current where `send` is called is the parent of every batch span of that run."""
    gw = faulty_gateway(sms_gateway_factory, "iton")
    tracer = otel.tracer_provider.get_tracer("campaign")
    with tracer.start_as_current_span("campaign") as campaign:
        await faulty_run(gw, "iton", [otel.hooks()])
    batches = [span for span in otel.spans() if span.name == "sms_async.batch"]
    assert len(batches) == 6
    context = campaign.get_span_context()
    assert all(span.parent is not None and span.parent.span_id == context.span_id for span in batches)
    assert all(span.context.trace_id == context.trace_id for span in batches)


async def test_streamed_batches_make_spans_under_the_consumers_span(sms_gateway, otel):
    """`stream` reports each batch as `send` does, under the span current where the stream was opened."""
    from sms_async import BulkSender, Iton  # noqa: PLC0415 - local to this one test

    tracer = otel.tracer_provider.get_tracer("campaign")
    numbers = [f"+9198{n:08d}" for n in range(250)]
    with tracer.start_as_current_span("campaign") as campaign:
        async with BulkSender(
            Iton(sms_gateway.username, sms_gateway.password, base_url=sms_gateway.iton_url),
            hooks=otel.hooks(),
        ) as bulk:
            seen = [batch async for batch in bulk.stream(numbers, "Hello", sender_id="ITONAB")]
    spans = [span for span in otel.spans() if span.name == "sms_async.batch"]
    assert len(spans) == len(seen) == 3
    assert {span.parent.span_id for span in spans if span.parent} == {campaign.get_span_context().span_id}
    assert total(otel.points()["sms_async.recipients"], {"sms_async.outcome": "accepted"}) == 250


async def test_without_an_sdk_the_hooks_do_nothing_and_cost_no_errors(sms_gateway, caplog):
    """Hooks on the API's own no-op providers run a send cleanly: no errors, nothing logged by the hooks."""
    from opentelemetry.metrics import NoOpMeterProvider  # noqa: PLC0415 - local to this one test
    from opentelemetry.trace import NoOpTracerProvider  # noqa: PLC0415 - as above

    from sms_async import BulkSender, Iton  # noqa: PLC0415 - as above

    hooks = OpenTelemetryHooks(NoOpMeterProvider(), NoOpTracerProvider())
    async with BulkSender(
        Iton(sms_gateway.username, sms_gateway.password, base_url=sms_gateway.iton_url), hooks=hooks
    ) as bulk:
        result = await bulk.send([f"+9198{n:08d}" for n in range(150)], "Hello", sender_id="ITONAB")
    assert len(result.message_ids) == 150
    assert not [r for r in caplog.records if "hook" in r.getMessage()]


def test_equal_hooks_feed_the_same_providers(otel):
    """Two OpenTelemetryHooks are equal when they feed the same providers, so a sender keeps one."""
    assert otel.hooks() == otel.hooks()
    assert hash(otel.hooks()) == hash(otel.hooks())
    assert OpenTelemetryHooks() == OpenTelemetryHooks()
    assert otel.hooks() != OpenTelemetryHooks()
    assert OpenTelemetryHooks(otel.meter_provider) != OpenTelemetryHooks(
        otel.meter_provider, otel.tracer_provider
    )
    assert "OpenTelemetryHooks(meter_provider=" in repr(otel.hooks())
