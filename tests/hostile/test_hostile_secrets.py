"""Secrets over real sockets: no password or token in any log record, error, chain, traceback or repr.

Also: plain http:// to a remote host is refused up front, and a redirect is never followed.
"""

from __future__ import annotations

import json
import logging
import traceback
from urllib.parse import quote, quote_plus

import pytest
from hostile_support import (
    TRANSPORTS,
    RawServer,
    assert_accounted,
    http_response,
    numbers,
    policy,
    with_outcome,
)

from sms_async import BatchResult, BulkSender, ConfigurationError, ItecPay, Iton, Outcome, Timeouts
from sms_async.instrumentation import BatchSettled
from sms_async.testing import Fault

pytestmark = [pytest.mark.hostile, pytest.mark.timeout(15)]

PASSWORD = "Hunter2-&%#=s3cr3t"
TOKEN = "T0k3n-&%#=zebra9"


def forms(secret: str) -> set[str]:
    """A secret raw, percent-encoded (quote and quote_plus, strict and lax) and JSON-escaped."""
    return {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret, safe=""),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
    }


# The distinctive tails catch a secret cut in two by a redaction that stopped at '&' or '#'.
LEAKS = forms(PASSWORD) | forms(TOKEN) | {"s3cr3t", "zebra9"}


def assert_clean(texts: list[str]) -> None:
    for text in texts:
        for leak in LEAKS:
            assert leak not in text, f"{leak!r} leaked in {text[:300]!r}"


def exception_texts(error: BaseException | None) -> list[str]:
    """str, repr and the formatted traceback of an error and of everything it chains to."""
    texts: list[str] = []
    seen: set[int] = set()
    stack = [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), *traceback.format_exception(current)]
        texts += [repr(value) for value in vars(current).values()]
        stack += [current.__cause__, current.__context__, *getattr(current, "exceptions", ())]
    return texts


def record_texts(records: list[logging.LogRecord]) -> list[str]:
    texts = []
    for record in records:
        texts += [record.getMessage(), str(record.msg), repr(record.args)]
        if record.exc_info and record.exc_info[1] is not None:
            texts += exception_texts(record.exc_info[1])
        if record.exc_text:
            texts.append(record.exc_text)
    return texts


class Keep:
    """Hooks that keep every settled batch."""

    def __init__(self) -> None:
        self.batches: list[BatchResult] = []

    def on_batch(self, record: BatchSettled) -> None:
        """Keep the batch."""
        self.batches.append(record.result)


SCENARIOS = {
    "success": [],
    "server-error": [Fault("status_500", rate=1.0)],
    "timeout": [Fault("stall", rate=1.0)],
    "auth-failure": [Fault("auth_failure", rate=1.0)],
    "dropped": [Fault("drop_after_read", rate=1.0)],
    "busy": [Fault("status_503", rate=1.0, retry_after=0.001)],
}
EXPECTED = {
    "success": Outcome.ACCEPTED,
    "server-error": Outcome.UNKNOWN,
    "timeout": Outcome.UNKNOWN,
    "auth-failure": Outcome.UNSENT,
    "dropped": Outcome.UNKNOWN,
    "busy": Outcome.UNSENT,
}


def make_driver(gw, kind: str) -> Iton | ItecPay:
    if kind == "iton-password":
        return Iton(gw.username, PASSWORD, base_url=gw.iton_url)
    if kind == "iton-token":
        return Iton(token=TOKEN, base_url=gw.iton_url)
    return ItecPay(gw.username, PASSWORD, base_url=gw.itecpay_url)


@pytest.mark.parametrize("http", TRANSPORTS)
@pytest.mark.parametrize("kind", ["iton-password", "iton-token", "itecpay"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_no_secret_in_logs_errors_tracebacks_or_reprs(
    sms_gateway_factory, caplog, http, kind, scenario
):
    """Log records at DEBUG, errors with their chains and tracebacks, and reprs never show the secrets."""
    caplog.set_level(logging.DEBUG)
    gw = sms_gateway_factory(password=PASSWORD, token=TOKEN, faults=SCENARIOS[scenario])
    hooks = Keep()
    bulk = BulkSender(
        make_driver(gw, kind),
        concurrency=2,
        retry=policy(attempts=2),
        timeouts=Timeouts(read=0.3),
        http=http,
        hooks=hooks,
    )
    shown = [repr(bulk), repr(bulk.driver)]
    async with bulk:
        shown.append(repr(bulk))
        result = await bulk.send(numbers(150), "Hello", sender_id="ITONAB")
        shown.append(repr(bulk))
    assert_accounted(result, 150)
    assert with_outcome(result, EXPECTED[scenario]) == set(numbers(150))
    assert not gw.stats.duplicate_numbers()
    shown += [repr(result), str(result), repr(result.counts())]
    shown += exception_texts(result.aborted)
    for failure in {id(f): f for f in result.failed.values()}.values():
        shown += [str(failure), repr(failure), failure.reason, *exception_texts(failure.error)]
    for batch in hooks.batches:
        shown += [repr(batch), str(batch.raw)]
    if result.aborted is not None:
        try:
            result.raise_for_abort()
        except Exception as error:
            shown += exception_texts(error)
    assert_clean(shown)
    # The capture did see the lines that would carry a secret: httpx logs every request URL at INFO,
    # and sms_async logs each failed batch.
    names = {record.name for record in caplog.records}
    if http == "httpx" and scenario not in {"timeout", "dropped"}:  # httpx logs once an answer came
        assert "httpx" in names
        if kind == "iton-password":  # the logged URL did carry the password, and it was redacted
            assert "password=[REDACTED]" in caplog.text
    if scenario != "success":
        assert "sms_async" in names
    assert_clean(record_texts(caplog.records))
    assert_clean([caplog.text])


@pytest.mark.parametrize(
    "url",
    [
        "http://sms.iton.in/ItonSMSAPI/smsService/api/",
        "http://10.0.0.1/api/",
        "http://0.0.0.0:8080/",
        "http://127.0.0.1.nip.io/",
        "http://localhost.example.com/",
        "HTTP://SMS.EXAMPLE.COM/",
        "http://[::ffff:8.8.8.8]/",
        "http://2130706433/",
    ],
)
@pytest.mark.parametrize("gateway", ["iton", "itecpay"])
def test_plain_http_to_a_remote_host_is_refused_up_front(url, gateway):
    """http:// to anything but loopback raises ConfigurationError as the driver is made, before connecting."""
    make = Iton if gateway == "iton" else ItecPay
    with pytest.raises(ConfigurationError) as caught:
        make("user", PASSWORD, base_url=url)
    assert_clean(exception_texts(caught.value))


@pytest.mark.parametrize("http", TRANSPORTS)
@pytest.mark.parametrize("kind", ["iton-password", "iton-token", "itecpay"])
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirect_is_not_followed(http, kind, status):
    """A redirect to another host is rejected without following it: the other server receives nothing."""
    with RawServer(lambda _seen: http_response(404, "nothing here")) as elsewhere:

        def redirect(seen):
            # A hostile gateway echoes the whole request target, password and all, into Location.
            location = f"http://127.0.0.1:{elsewhere.port}{seen.target}"
            return http_response(status, "moved", headers=(("Location", location),))

        with RawServer(redirect) as gateway:
            if kind == "iton-password":
                driver = Iton("user", PASSWORD, base_url=gateway.origin + "/api/")
            elif kind == "iton-token":
                driver = Iton(token=TOKEN, base_url=gateway.origin + "/api/")
            else:
                driver = ItecPay("user", PASSWORD, base_url=gateway.origin)
            async with BulkSender(driver, http=http, retry=policy()) as bulk:
                result = await bulk.send(numbers(150), "Hello", sender_id="ITONAB")
            assert len(gateway.requests) == 2  # one per batch, none repeated
        assert elsewhere.requests == []
    assert_accounted(result, 150)
    assert with_outcome(result, Outcome.REJECTED) == set(numbers(150))
    texts = []
    for failure in {id(f): f for f in result.failed.values()}.values():
        assert "redirect" in failure.reason
        texts += [failure.reason, *exception_texts(failure.error)]
    assert_clean(texts)
