"""PrometheusHooks over loopback: metrics read back from a CollectorRegistry of the test's own."""

from __future__ import annotations

import pytest
from metrics_support import SEND_OP, check_every_kind, faulty_gateway, faulty_run
from prometheus_client import CollectorRegistry, Counter

from sms_async import Outcome
from sms_async.instrumentation import PrometheusHooks

GATEWAYS = ("iton", "itecpay")


def samples(registry: CollectorRegistry, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample called ``name``."""
    return [
        (sample.labels, sample.value)
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == name
    ]


def added(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels hold ``labels``."""
    return sum(v for found, v in samples(registry, name) if labels.items() <= found.items())


@pytest.mark.parametrize("gateway", GATEWAYS)
async def test_every_record_kind_feeds_its_metric(sms_gateway_factory, registry, gateway):
    """Recipients by outcome, requests and their latency by status class or error, retries, pauses, aborts."""
    gw = faulty_gateway(sms_gateway_factory, gateway)
    result, recorder = await faulty_run(gw, gateway, [PrometheusHooks(registry)])
    check_every_kind(recorder)
    for outcome, expected in result.counts().items():
        value = registry.get_sample_value(
            "sms_async_recipients_total", {"gateway": gateway, "outcome": outcome.value}
        )
        assert value == expected, outcome
    assert added(registry, "sms_async_recipients_total") == 552

    assert added(registry, "sms_async_requests_total") == sum(gw.stats.requests.values())
    assert added(registry, "sms_async_request_duration_seconds_count") == len(recorder.requests)
    assert added(registry, "sms_async_request_duration_seconds_sum") == pytest.approx(
        sum(r.seconds for r in recorder.requests)
    )
    send = {"gateway": gateway, "operation": "send"}
    assert added(registry, "sms_async_requests_total", **send) == gw.stats.requests[SEND_OP[gateway]] == 6
    assert added(registry, "sms_async_requests_total", **send, status_class="5xx", error="") == 1
    assert added(registry, "sms_async_requests_total", **send, status_class="4xx") == (
        1 if gateway == "iton" else 2
    )
    assert (
        added(registry, "sms_async_requests_total", **send, status_class="", error="RemoteProtocolError") == 1
    )
    if gateway == "iton":
        assert added(registry, "sms_async_requests_total", operation="balance", status_class="2xx") == 1
        assert (
            added(registry, "sms_async_requests_total", operation="dnd")
            == gw.stats.requests["iton.check_DNDnumber"]
        )

    assert (
        registry.get_sample_value(
            "sms_async_retries_total", {"gateway": gateway, "operation": "send", "error": "GatewayBusyError"}
        )
        == 1
        == result.retries
    )
    assert added(registry, "sms_async_retries_total") == 1
    pause = {"gateway": gateway, "status_class": "4xx"}
    assert registry.get_sample_value("sms_async_pause_duration_seconds_count", pause) == 1
    assert registry.get_sample_value("sms_async_pause_duration_seconds_sum", pause) == pytest.approx(0.01)
    assert (
        registry.get_sample_value(
            "sms_async_aborts_total", {"gateway": gateway, "error": "AuthenticationError"}
        )
        == 1
    )
    assert added(registry, "sms_async_aborts_total") == 1


async def test_a_namespace_prefixes_every_metric(sms_gateway_factory, registry):
    """With namespace="campaign_7", every metric name starts with it and none with sms_async."""
    gw = faulty_gateway(sms_gateway_factory, "iton")
    await faulty_run(gw, "iton", [PrometheusHooks(registry, namespace="campaign_7")])
    names = {sample.name for metric in registry.collect() for sample in metric.samples}
    assert names
    assert all(name.startswith("campaign_7_") for name in names)
    assert added(registry, "campaign_7_recipients_total") == 552


async def test_senders_sharing_a_registry_add_up(sms_gateway, registry):
    """Two senders with their own PrometheusHooks on one registry register once and add up in one counter."""
    from sms_async import BulkSender, Iton  # noqa: PLC0415 - local to this one test

    for start in (0, 1000):
        driver = Iton(sms_gateway.username, sms_gateway.password, base_url=sms_gateway.iton_url)
        async with BulkSender(driver, hooks=PrometheusHooks(registry)) as bulk:
            numbers = [f"+9198{n:08d}" for n in range(start, start + 120)]
            await bulk.send(numbers, "Hello", sender_id="ITONAB")
    assert (
        registry.get_sample_value(
            "sms_async_recipients_total", {"gateway": "iton", "outcome": Outcome.ACCEPTED.value}
        )
        == 240
    )
    assert added(registry, "sms_async_requests_total", status_class="2xx") == 4


def test_every_outcome_is_exposed_from_the_first_batch(registry):
    """Once a gateway has settled a batch, every outcome has its series, at zero where nothing ended so."""
    from sms_async._models import BatchResult  # noqa: PLC0415 - local to this one test
    from sms_async.instrumentation import BatchSettled  # noqa: PLC0415 - as above

    hooks = PrometheusHooks(registry)
    hooks.on_batch(BatchSettled("iton", 0.0, BatchResult(message_ids={"+919800000000": "id"})))
    exposed = {labels["outcome"]: value for labels, value in samples(registry, "sms_async_recipients_total")}
    assert exposed == {outcome.value: float(outcome is Outcome.ACCEPTED) for outcome in Outcome}


def test_a_name_taken_in_the_registry_is_refused_clearly_and_nothing_half_registered(registry):
    """A registry already holding one of the names gets a clear error, and no metric of ours stays in it."""
    Counter("sms_async_retries", "someone else's", registry=registry)
    with pytest.raises(ValueError, match="another namespace= or registry=") as caught:
        PrometheusHooks(registry)
    assert "sms_async" in str(caught.value)
    names = {metric.name for metric in registry.collect()}
    assert names == {"sms_async_retries"}
    # Another namespace works on the same registry.
    PrometheusHooks(registry, namespace="other")


@pytest.mark.parametrize("namespace", ["", "7days", "sms-async", "sms async", None])
def test_a_bad_namespace_is_refused_with_what_is_allowed(registry, namespace):
    """A namespace that cannot start a Prometheus metric name is refused before anything is registered."""
    with pytest.raises(ValueError, match="letters, digits and underscores"):
        PrometheusHooks(registry, namespace=namespace)
    assert not list(registry.collect())


def test_equal_hooks_feed_the_same_metrics(registry):
    """PrometheusHooks on one registry and namespace are equal, so a sender keeps one; others differ."""
    assert PrometheusHooks(registry) == PrometheusHooks(registry)
    assert hash(PrometheusHooks(registry)) == hash(PrometheusHooks(registry))
    assert PrometheusHooks(registry) != PrometheusHooks(registry, namespace="other")
    assert PrometheusHooks(registry) != PrometheusHooks(CollectorRegistry())
    assert repr(PrometheusHooks(registry)).endswith("namespace='sms_async')")
