"""Answers and errors as outcomes (sms_async/_outcomes.py): unknown, rejected, a wrong endpoint."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
from engine_support import FakeGateway, assert_accounted, itecpay, numbers, outcomes, raise_, respond, send

from sms_async import EndpointError, Outcome


@pytest.mark.parametrize(
    "fault",
    [
        raise_(httpx.ReadTimeout),
        raise_(httpx.ReadError),
        raise_(httpx.WriteError),
        raise_(httpx.WriteTimeout),
        raise_(httpx.RemoteProtocolError),
        respond(500, "Internal Server Error"),
        respond(502, "<html>Bad Gateway</html>"),
        respond(504, "Gateway Timeout"),
        respond(200, "<html><body>maintenance</body></html>"),
        respond(200, ""),
        respond(200, '{"id-1": '),
        respond(200, "Success"),
    ],
    ids=[
        "read-timeout",
        "read-error",
        "write-error",
        "write-timeout",
        "remote-protocol-error",
        "500",
        "502",
        "504",
        "200-html",
        "200-empty",
        "200-truncated-json",
        "200-success-without-id",
    ],
)
async def test_ambiguous_faults_are_unknown_and_never_resent(fault):
    """A fault after which the gateway may have sent is UNKNOWN, and no number is sent twice."""
    gateway = FakeGateway(always=fault)
    result = await send(gateway, numbers(150))
    assert gateway.calls == 2
    assert set(gateway.sent.values()) == {1}
    assert result.message_ids == {}
    assert outcomes(result) == Counter({Outcome.UNKNOWN: 150})
    assert result.retries == 0
    assert_accounted(result, 150)


@pytest.mark.parametrize(
    "fault",
    [respond(400, "Invalid sender id"), respond(200, "Invalid sender id"), respond(404, "No such command")],
    ids=["400", "200-text", "404"],
)
async def test_rejections_carry_the_gateway_words_and_are_not_retried(fault):
    """A refusal is REJECTED with the gateway's own words, after one request."""
    gateway = FakeGateway(always=fault)
    result = await send(gateway, numbers(3))
    assert gateway.calls == 1
    assert outcomes(result) == Counter({Outcome.REJECTED: 3})
    expected = fault(httpx.Request("GET", "https://x.example/")).text
    assert {failure.reason for failure in result.failed.values()} == {expected}
    assert result.aborted is None
    assert_accounted(result, 3)


async def test_itecpay_partial_rejection():
    """ItecPay recipients refused with status 400 are REJECTED with the description; the others keep ids."""
    refused = numbers(2)[1]

    def partial(request: httpx.Request) -> httpx.Response:
        messages = [
            {"recipient": n, "messageid": f"id-{n[1:]}", "status": 200}
            if n != refused
            else {"recipient": n, "status": 400, "description": "Number is on DND"}
            for n in FakeGateway.recipients(request)
        ]
        return httpx.Response(200, json={"status": 200, "messages": messages})

    gateway = FakeGateway(always=partial)
    result = await send(gateway, numbers(2), driver=itecpay())
    assert result.message_ids == {numbers(2)[0]: f"id-{numbers(2)[0][1:]}"}
    assert result.failed[refused].outcome is Outcome.REJECTED
    assert result.failed[refused].reason == "Number is on DND"
    assert_accounted(result, 2)


async def test_partial_json_answer_accounts_for_missing_numbers():
    """Numbers an ITON JSON answer leaves out are accounted for as failures, not dropped."""

    def partial(request: httpx.Request) -> httpx.Response:
        first = request.url.params["to"].split(",")[0]
        return httpx.Response(200, json={"only-id": first})

    gateway = FakeGateway(always=partial)
    result = await send(gateway, numbers(5))
    assert len(result.message_ids) == 1
    assert len(result.failed) == 4
    assert gateway.calls == 1
    assert_accounted(result, 5)


async def test_unreadable_deep_json_is_unknown():
    """A 200 holding JSON nested too deeply to read is UNKNOWN, and every input is accounted for."""
    gateway = FakeGateway(always=respond(200, '{"a":' + "[" * 100_000))
    result = await send(gateway, numbers(3))
    assert result.aborted is None
    assert outcomes(result) == Counter({Outcome.UNKNOWN: 3})
    assert_accounted(result, 3)


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        (respond(404, "Not Found"), Outcome.REJECTED),
        (respond(405, "Method Not Allowed"), Outcome.REJECTED),
        (respond(200, "<html><body>Welcome</body></html>", {"content-type": "text/html"}), Outcome.UNKNOWN),
    ],
    ids=["404", "405", "html-page"],
)
async def test_a_wrong_endpoint_stops_the_run_after_the_first_batches(fault, outcome):
    """The first three batches all answered as by a wrong address stop the run; the rest is unsent."""
    gateway = FakeGateway(always=fault)
    result = await send(gateway, numbers(2000), concurrency=1)
    assert_accounted(result, 2000)
    assert isinstance(result.aborted, EndpointError)
    assert "check base_url" in result.aborted.reason
    assert gateway.calls == 3
    assert outcomes(result) == {outcome: 300, Outcome.UNSENT: 1700}


async def test_a_wrong_endpoint_answer_after_a_success_does_not_stop_the_run():
    """A 404 after a good first answer is a rejection like any other: the run goes on."""
    gateway = FakeGateway([FakeGateway.success_fault()], always=respond(404, "Not Found"))
    result = await send(gateway, numbers(600), concurrency=1)
    assert result.aborted is None
    assert gateway.calls == 6
    assert outcomes(result) == {Outcome.REJECTED: 500}
