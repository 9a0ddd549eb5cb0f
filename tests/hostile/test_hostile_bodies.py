"""Bodies a gateway should never send, over real sockets: HTML, truncated, wrongly typed, partial, any."""

from __future__ import annotations

import itertools
import json

import anyio
import pytest
from hostile_support import (
    GATEWAYS,
    SEND_OP,
    TRANSPORTS,
    CloseAfter,
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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sms_async import (
    AuthenticationError,
    BulkSender,
    ItecPay,
    Iton,
    MaybeSentError,
    Outcome,
    OutOfCreditError,
    SmsError,
)
from sms_async.testing import Fault

pytestmark = [pytest.mark.hostile, pytest.mark.timeout(15)]

both_transports = pytest.mark.parametrize("http", TRANSPORTS)


def shape_cases() -> list:
    cases = []
    for gateway, forms in (("iton", ("text", "json")), ("itecpay", ("single", "per_recipient"))):
        for form in forms:
            for kind, shape in [
                ("html_body", "list"),
                ("truncated_body", "list"),
                *[("wrong_type_body", s) for s in ("list", "number", "string", "null", "map_of_lists")],
            ]:
                name = kind if kind != "wrong_type_body" else f"wrong_type-{shape}"
                cases.append(pytest.param(gateway, form, kind, shape, id=f"{gateway}-{form}-{name}"))
    return cases


@both_transports
@pytest.mark.parametrize(("gateway", "form", "kind", "shape"), shape_cases())
async def test_unreadable_200_bodies_are_unknown(sms_gateway_factory, http, gateway, form, kind, shape):
    """An HTML page, a truncated answer or a wrongly typed JSON answer in a 200 ends unknown, sent once."""
    options = {"iton_send_form": form} if gateway == "iton" else {"itecpay_send_form": form}
    fault = Fault(kind, on_requests={1}, operations=SEND_OP[gateway], shape=shape)
    gw = sms_gateway_factory(faults=[fault], **options)
    # None of these numbers is the one the gateway's canned wrong answers name.
    recipients = numbers(150, start=500)
    async with sender(gw, gateway, http, concurrency=1) as bulk:
        result = await bulk.send(recipients, "Hello", sender_id="ITONAB")
    assert_accounted(result, 150)
    assert with_outcome(result, Outcome.UNKNOWN) == set(recipients[:100])
    assert set(result.message_ids) == set(recipients[100:])
    assert gw.stats.requests[SEND_OP[gateway]] == 2
    assert_no_double_send(gw)


@both_transports
@pytest.mark.parametrize(("gateway", "form"), [("iton", "json"), ("itecpay", "per_recipient")])
async def test_partial_acceptance_rejects_the_rest(sms_gateway_factory, http, gateway, form):
    """A batch the gateway only partly accepts: the accepted get ids, the rest are rejected, none re-sent."""
    options = {"iton_send_form": form} if gateway == "iton" else {"itecpay_send_form": form}
    fault = Fault("partial_accept", on_requests={1}, operations=SEND_OP[gateway], share=0.5)
    gw = sms_gateway_factory(faults=[fault], **options)
    recipients = numbers(250)
    async with sender(gw, gateway, http, concurrency=1) as bulk:
        result = await bulk.send(recipients, "Hello", sender_id="ITONAB")
    assert_accounted(result, 250)
    stats = gw.stats
    accepted_at_gateway = {n for n in recipients if stats.numbers[on_wire(gateway, n)]}
    refused_at_gateway = {n for n in recipients if stats.numbers_refused[on_wire(gateway, n)]}
    assert len(refused_at_gateway) == 50
    assert set(result.message_ids) == accepted_at_gateway
    assert with_outcome(result, Outcome.REJECTED) == refused_at_gateway
    assert len(set(result.message_ids.values())) == 200  # one id per number in these forms
    assert stats.requests[SEND_OP[gateway]] == 3
    assert_no_double_send(gw)


def per_recipient_answer(seen, with_id: int) -> bytes:
    recipients = json.loads(seen.body)["recipients"].split(",")
    entries = [
        {"recipient": n, "status": 200, "messageid": f"id{i}"}
        if i < with_id
        else {"recipient": n, "status": 200}
        for i, n in enumerate(recipients)
    ]
    body = json.dumps({"status": 200, "description": "ok", "messages": entries})
    return http_response(200, body, content_type="application/json")


@both_transports
async def test_per_recipient_entry_without_an_id_is_unknown(http):
    """A per-recipient ItecPay answer that accepts a number without an id leaves it unknown, not rejected."""
    with RawServer(lambda seen: per_recipient_answer(seen, with_id=3)) as server:
        driver = ItecPay("user", "pass-word-1", base_url=server.origin)
        async with BulkSender(driver, http=http, retry=policy()) as bulk:
            result = await bulk.send(numbers(6), "Hello", sender_id="ITONAB")
    assert_accounted(result, 6)
    assert set(result.message_ids) == set(numbers(3))
    assert with_outcome(result, Outcome.UNKNOWN) == set(numbers(6)[3:])


@both_transports
@pytest.mark.parametrize("gateway", GATEWAYS)
@pytest.mark.parametrize(
    "cut", ["in-status-line", "in-head", "no-body", "mid-body", "mid-chunk", "no-last-chunk"]
)
async def test_answer_cut_short_by_the_connection_closing_is_unknown(http, gateway, cut):
    """An answer whose connection closes before the whole body arrived is unknown, never re-sent."""
    text = b"Success Your MessageId is 532073f7e4b05199d2c3d812"
    full = http_response(200, text)
    head_end = full.index(b"\r\n\r\n") + 4
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (
        len(text),
        text,
    )
    sent = {
        "in-status-line": full[:6],
        "in-head": full[:20],
        "no-body": full[:head_end],
        "mid-body": full[: head_end + 10],
        "mid-chunk": chunked[: chunked.index(b"Success") + 10],
        "no-last-chunk": chunked[: chunked.index(b"0\r\n\r\n")],
    }[cut]

    with RawServer(lambda _seen: CloseAfter(sent)) as server:
        driver = (
            Iton("user", "pass-word-1", base_url=server.origin + "/api/")
            if gateway == "iton"
            else ItecPay("user", "pass-word-1", base_url=server.origin)
        )
        async with BulkSender(driver, http=http, retry=policy()) as bulk:
            result = await bulk.send(numbers(5), "Hello", sender_id="ITONAB")
        assert len(server.requests) == 1
    assert_accounted(result, 5)
    assert with_outcome(result, Outcome.UNKNOWN) == set(numbers(5))
    assert all(isinstance(f.error, MaybeSentError) for f in result.failed.values())


def answers_twice():
    """A responder whose first answer is followed, in the same write, by a second, unasked-for one."""
    count = itertools.count()

    def responder(_seen) -> bytes:
        n = next(count)
        answer = http_response(200, f"Success Your MessageId is fresh{n}")
        if n == 0:
            return answer + http_response(200, "Success Your MessageId is STALE")
        return answer

    return responder


@pytest.mark.parametrize(
    "http",
    [
        "fast",
        pytest.param(
            "httpx",
            marks=pytest.mark.xfail(
                reason="transports/_httpx.py HttpxTransport.send: bytes a gateway sends beyond an answer "
                "(here a second, unasked-for answer) stay in the pooled httpx connection and are read as "
                "the answer to the next request on it, so every later batch is credited with the id "
                "answered to the batch before (the fast transport drops them); the manual: accepted "
                "means the gateway issued an id for that request",
                strict=True,
            ),
        ),
    ],
)
async def test_bytes_beyond_an_answer_are_never_read_as_the_next_answer(http):
    """A gateway that writes an extra answer never gets a batch credited with an id it did not answer."""
    with RawServer(answers_twice()) as server:
        driver = Iton("user", "pass-word-1", base_url=server.origin + "/api/")
        async with BulkSender(driver, http=http, concurrency=1, retry=policy()) as bulk:
            result = await bulk.send(numbers(300), "Hello", sender_id="ITONAB")
        assert len(server.requests) == 3
    assert_accounted(result, 300)
    assert "STALE" not in set(result.message_ids.values())
    for index in range(3):
        for number in numbers(100, start=index * 100):
            assert result.message_ids.get(number, f"fresh{index}") == f"fresh{index}"


# -- hypothesis: whatever a 200 holds, the outcome is typed ---------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
any_body = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.sampled_from(
        [
            b"",
            b"Success Your MessageId is ",
            b"Success Your MessageId is 532073f7e4b05199d2c3d812",
            b"Invalid username or password",
            b"Insufficient credits",
            b'{"status": "400"}',
            b'{"status": 200, "messageid": {"x": []}}',
            b'{"messages": [1, 2]}',
            b'{"messages": [{"recipient": null}]}',
            b"[" * 10000,
            b"1" * 5000,
        ]
    ),
)
html_pages = st.builds(
    lambda doctype, title, text: (
        f"{doctype}<html><head><title>{title}</title></head><body>{text}</body></html>".encode()
    ),
    st.sampled_from(["", "<!DOCTYPE html>\n", "  \n<!doctype HTML>"]),
    st.text(max_size=30).filter(lambda t: "<" not in t),
    st.text(max_size=100),
)
ITECPAY_KEYS = {
    "status",
    "description",
    "message",
    "error",
    "messageid",
    "message_id",
    "messageId",
    "MessageId",
    "msgid",
    "id",
    "messages",
    "recipients",
    "results",
    "data",
}
# JSON a send answer can never be: not an object for ItecPay, no recognisable keys in an object.
wrongly_typed = st.one_of(
    st.lists(json_values, max_size=5),
    st.dictionaries(st.text(max_size=10).filter(lambda k: k not in ITECPAY_KEYS), json_values, max_size=5),
).map(lambda v: json.dumps(v).encode())


def truncated_answers(gateway: str) -> st.SearchStrategy[bytes]:
    if gateway == "iton":
        full = json.dumps({f"532073f7e4b05199d2c3d8{i:02d}": f"9198000000{i:02d}" for i in range(5)})
    else:
        full = json.dumps({"status": 200, "description": "Message accepted", "messageid": "532073f7e4b0519"})
    return st.integers(1, len(full) - 1).map(lambda cut: full[:cut].encode())


def run_body(server: RawServer, box: dict, body: bytes, http: str, gateway: str):
    box["answer"] = http_response(200, body, content_type=box.get("content_type", "application/json"))
    driver = (
        Iton("user", "pass-word-1", base_url=server.origin + "/api/")
        if gateway == "iton"
        else ItecPay("user", "pass-word-1", base_url=server.origin)
    )

    async def main():
        async with BulkSender(driver, http=http, retry=policy()) as bulk:
            return await bulk.send(numbers(5), "Hello", sender_id="ITONAB")

    return anyio.run(main, backend="asyncio")


HYPOTHESIS = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@both_transports
@pytest.mark.parametrize("gateway", GATEWAYS)
def test_any_200_body_gives_a_typed_outcome(http, gateway):
    """Whatever bytes a 200 carries, the run returns typed outcomes that add up; nothing else escapes."""
    box: dict = {}
    with RawServer(lambda _seen: box["answer"]) as server:

        @HYPOTHESIS
        @given(body=any_body)
        def check(body: bytes) -> None:
            before = len(server.requests)
            result = run_body(server, box, body, http, gateway)
            assert_accounted(result, 5)
            assert len(server.requests) == before + 1  # never re-sent
            for failure in result.failed.values():
                assert isinstance(failure.outcome, Outcome)
                assert failure.error is None or isinstance(failure.error, SmsError)
                assert failure.outcome in {Outcome.UNKNOWN, Outcome.REJECTED, Outcome.UNSENT}
            assert result.aborted is None or isinstance(
                result.aborted, AuthenticationError | OutOfCreditError
            )

        check()


@both_transports
@pytest.mark.parametrize("gateway", GATEWAYS)
@pytest.mark.parametrize("kind", ["html", "truncated", "wrongly-typed"])
def test_unreadable_200_bodies_from_hypothesis_are_unknown(http, gateway, kind):
    """Generated HTML pages, truncated answers and wrongly typed JSON in a 200 all end unknown."""
    strategy = {"html": html_pages, "truncated": truncated_answers(gateway), "wrongly-typed": wrongly_typed}[
        kind
    ]
    box: dict = {"content_type": "text/html" if kind == "html" else "application/json"}
    with RawServer(lambda _seen: box["answer"]) as server:

        @HYPOTHESIS
        @given(body=strategy)
        def check(body: bytes) -> None:
            result = run_body(server, box, body, http, gateway)
            assert_accounted(result, 5)
            assert with_outcome(result, Outcome.UNKNOWN) == set(numbers(5)), (body, result.failed)
            assert result.aborted is None

        check()
