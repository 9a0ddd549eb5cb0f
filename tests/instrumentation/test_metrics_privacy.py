"""No metric, label, attribute, span name or status carries a phone number, a text or a credential."""

from __future__ import annotations

import pytest
from metrics_support import (
    DND,
    INVALID,
    NUMBERS,
    PASSWORD,
    TEXT,
    TOKEN,
    USERNAME,
    check_every_kind,
    faulty_gateway,
    faulty_run,
)
from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from sms_async.instrumentation import PrometheusHooks

#: What must never show: each number's national digits (inside its E.164 and wire forms too),
#: the invalid input, the text and the credentials.
FORBIDDEN = (*(n[3:] for n in NUMBERS), DND[3:], INVALID, TEXT, USERNAME, PASSWORD, TOKEN)


def leaks(exported: str) -> list[str]:
    """The forbidden values found in ``exported``."""
    return [value for value in FORBIDDEN if value in exported]


def test_the_search_finds_what_it_looks_for():
    """The leak search is not blind: a number, in any of its forms, and each secret are found."""
    assert leaks(f"x{NUMBERS[17]}x") == [NUMBERS[17][3:]]
    assert leaks(NUMBERS[300][1:]) == [NUMBERS[300][3:]]
    assert leaks(f"{USERNAME}:{PASSWORD} {TOKEN}") == [USERNAME, PASSWORD, TOKEN]
    assert leaks(TEXT) == [TEXT]


@pytest.mark.parametrize("kind", ["iton", "iton-token", "itecpay"])
async def test_no_exported_value_carries_a_number_text_or_secret(sms_gateway_factory, otel, registry, kind):
    """Every exported metric, label, attribute, span and status, from a run through every fault, is clean."""
    gateway = kind.split("-")[0]
    gw = faulty_gateway(sms_gateway_factory, gateway)
    result, recorder = await faulty_run(
        gw, gateway, [otel.hooks(), PrometheusHooks(registry)], token=kind.endswith("token")
    )
    check_every_kind(recorder)
    assert result.aborted is not None  # the credentials were refused: errors with reasons were reported
    data = otel.reader.get_metrics_data()
    assert data is not None
    exported = [
        data.to_json(),
        *(span.to_json() for span in otel.spans()),
        generate_latest(registry).decode(),
        generate_openmetrics(registry).decode(),
    ]
    text = "\n".join(exported)
    # What was exported is the run's: every kind of metric, and a span per batch.
    for name in ("sms_async.recipients", "sms_async.retries", "sms_async.aborts", "sms_async.pause.duration"):
        assert name in text
    assert text.count('"name": "sms_async.batch"') == len(recorder.batches) == 6
    assert "sms_async_requests_total" in text
    assert leaks(text) == []
