"""Refused credentials and an empty account over real sockets: the run stops after the requests in flight."""

from __future__ import annotations

import json
import traceback
from urllib.parse import quote, quote_plus

import pytest
from hostile_support import (
    SEND_OP,
    TRANSPORTS,
    RawServer,
    assert_accounted,
    assert_no_double_send,
    http_response,
    numbers,
    on_wire,
    policy,
    sender,
    with_outcome,
)

from sms_async import AuthenticationError, BulkSender, ItecPay, Iton, Outcome, OutOfCreditError
from sms_async.testing import Fault

pytestmark = [pytest.mark.hostile, pytest.mark.timeout(15)]

WRONG = "Wr0ng-&%#=pa55w0rd"
WRONG_TOKEN = "Bad-T0ken-&%#=zz9"
DRIVERS = ["iton-password", "iton-token", "itecpay"]


def leak_forms(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote(secret), quote_plus(secret), json.dumps(secret)[1:-1]}


def wrong_driver(gw, kind: str) -> Iton | ItecPay:
    if kind == "iton-password":
        return Iton(gw.username, WRONG, base_url=gw.iton_url)
    if kind == "iton-token":
        return Iton(token=WRONG_TOKEN, base_url=gw.iton_url)
    return ItecPay(gw.username, WRONG, base_url=gw.itecpay_url)


@pytest.mark.parametrize("http", TRANSPORTS)
@pytest.mark.parametrize("kind", DRIVERS)
@pytest.mark.parametrize("concurrency", [1, 4])
async def test_bad_credentials_abort_after_at_most_the_requests_in_flight(
    sms_gateway_factory, http, kind, concurrency
):
    """Refused credentials stop the run after <= concurrency requests; the rest is unsent; no secret shown."""
    gw = sms_gateway_factory()
    gateway = "itecpay" if kind == "itecpay" else "iton"
    async with BulkSender(wrong_driver(gw, kind), concurrency=concurrency, retry=policy(), http=http) as bulk:
        result = await bulk.send(numbers(2000), "Hello", sender_id="ITONAB")
        shown = [repr(bulk), repr(bulk.driver)]
    assert_accounted(result, 2000)
    assert isinstance(result.aborted, AuthenticationError)
    assert gw.stats.requests[SEND_OP[gateway]] <= concurrency
    assert result.requests <= concurrency
    assert not result.message_ids
    assert with_outcome(result, Outcome.UNSENT) == set(numbers(2000))
    assert not gw.stats.numbers
    assert_no_double_send(gw)
    with pytest.raises(AuthenticationError):
        result.raise_for_abort()
    shown += [
        str(result.aborted),
        repr(result.aborted),
        repr(result),
        *traceback.format_exception(result.aborted),
    ]
    for failure in {id(f): f for f in result.failed.values()}.values():
        shown += [str(failure), repr(failure), failure.reason]
        if failure.error is not None:
            shown += [str(failure.error), repr(failure.error), *traceback.format_exception(failure.error)]
    secret = WRONG_TOKEN if kind == "iton-token" else WRONG
    for text in shown:
        for form in leak_forms(secret):
            assert form not in text


@pytest.mark.parametrize("http", TRANSPORTS)
@pytest.mark.parametrize("gateway", ["iton", "itecpay"])
async def test_credentials_refused_mid_run_keep_the_ids_already_issued(sms_gateway_factory, http, gateway):
    """An auth failure on request 3 keeps earlier ids; later batches are unsent; requests <= 3 + in flight."""
    gw = sms_gateway_factory(faults=[Fault("auth_failure", on_requests={3}, operations=SEND_OP[gateway])])
    concurrency = 2
    recipients = numbers(2000)
    async with sender(gw, gateway, http, concurrency=concurrency) as bulk:
        result = await bulk.send(recipients, "Hello", sender_id="ITONAB")
    assert_accounted(result, 2000)
    assert isinstance(result.aborted, AuthenticationError)
    stats = gw.stats
    assert stats.requests[SEND_OP[gateway]] <= 3 + concurrency - 1
    processed = {n for n in recipients if stats.numbers[on_wire(gateway, n)]}
    assert processed == set(result.message_ids)
    assert len(result.message_ids) >= 200
    assert {f.outcome for f in result.failed.values()} == {Outcome.UNSENT}
    assert_no_double_send(gw)


@pytest.mark.parametrize("http", TRANSPORTS)
@pytest.mark.parametrize("gateway", ["iton", "itecpay"])
async def test_running_out_of_credit_aborts_the_run(sms_gateway_factory, http, gateway):
    """An out-of-credit answer stops the run: paid batches keep their ids, the rest is unsent."""
    gw = sms_gateway_factory(credits=250)
    recipients = numbers(1000)
    async with sender(gw, gateway, http, concurrency=1) as bulk:
        result = await bulk.send(recipients, "Hello", sender_id="ITONAB")
    assert_accounted(result, 1000)
    assert isinstance(result.aborted, OutOfCreditError)
    assert set(result.message_ids) == set(recipients[:200])
    assert with_outcome(result, Outcome.UNSENT) == set(recipients[200:])
    assert gw.stats.requests[SEND_OP[gateway]] == 3
    assert_no_double_send(gw)


@pytest.mark.parametrize("http", TRANSPORTS)
@pytest.mark.parametrize("gateway", ["iton", "itecpay"])
@pytest.mark.parametrize("status", [401, 403])
async def test_http_401_and_403_abort_after_at_most_the_requests_in_flight(http, gateway, status):
    """An HTTP 401 or 403 from either gateway stops the run after <= concurrency requests; the rest unsent."""
    answer = http_response(status, "<html>Unauthorized</html>", content_type="text/html")
    with RawServer(lambda _seen: answer) as server:
        if gateway == "iton":
            driver = Iton("user", WRONG, base_url=server.origin + "/api/")
        else:
            driver = ItecPay("user", WRONG, base_url=server.origin)
        async with BulkSender(driver, concurrency=4, retry=policy(), http=http) as bulk:
            result = await bulk.send(numbers(2000), "Hello", sender_id="ITONAB")
        requests = len(server.requests)
    assert_accounted(result, 2000)
    assert isinstance(result.aborted, AuthenticationError)
    assert result.aborted.status_code == status
    assert requests <= 4
    assert with_outcome(result, Outcome.UNSENT) == set(numbers(2000))
    for form in leak_forms(WRONG):
        assert form not in str(result.aborted)
