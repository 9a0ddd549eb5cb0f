"""Hostile input: bad texts, sender ids, numbers, empty and huge inputs, texts that try to break the wire."""

from __future__ import annotations

import itertools
import json
import string
from urllib.parse import parse_qsl, urlsplit

import anyio
import pytest
from hostile_support import (
    GATEWAYS,
    SEND_OP,
    TRANSPORTS,
    RawServer,
    accept_all,
    assert_accounted,
    assert_no_double_send,
    http_response,
    lazily,
    numbers,
    on_wire,
    policy,
    sender,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sms_async import (
    BulkSender,
    ConfigurationError,
    InvalidMessageError,
    InvalidNumberError,
    InvalidSenderIdError,
    ItecPay,
    Iton,
    Outcome,
    Timeouts,
)
from sms_async.testing import Fault

pytestmark = [pytest.mark.hostile, pytest.mark.timeout(15)]


@pytest.mark.parametrize("gateway", GATEWAYS)
@pytest.mark.parametrize(
    "text",
    ["", "\ud800", "lone low \udc00 surrogate", "NUL \x00 inside", "\x00", "   \n\t "],
    ids=["empty", "lone-high-surrogate", "lone-low-surrogate", "nul", "only-nul", "only-whitespace"],
)
async def test_bad_text_is_refused_before_any_request(sms_gateway_factory, gateway, text):
    """An empty text, a lone surrogate or a NUL raises InvalidMessageError and nothing reaches the gateway."""
    gw = sms_gateway_factory()
    async with sender(gw, gateway, "fast") as bulk:
        with pytest.raises(InvalidMessageError):
            await bulk.send(numbers(5), text, sender_id="ITONAB")
        with pytest.raises(InvalidMessageError):
            async for _ in bulk.stream(numbers(5), text, sender_id="ITONAB"):
                pass  # pragma: no cover
    assert sum(gw.stats.requests.values()) == 0


@pytest.mark.parametrize("gateway", GATEWAYS)
@pytest.mark.parametrize(
    "sender_id",
    ["ABCDEFGHIJKL", "ITON-AB", "ITON!", "AB\nCD", "", "   ", "1234567890123456", "ÄBCDEF"],
    ids=["12-letters", "hyphen", "bang", "newline", "empty", "blank", "16-digits", "non-ascii"],
)
async def test_bad_sender_id_is_refused_before_any_request(sms_gateway_factory, gateway, sender_id):
    """A sender id of 12 letters, with punctuation, empty or of 16 digits raises before any request."""
    gw = sms_gateway_factory()
    async with sender(gw, gateway, "fast") as bulk:
        with pytest.raises(InvalidSenderIdError):
            await bulk.send(numbers(5), "Hello", sender_id=sender_id)
    assert sum(gw.stats.requests.values()) == 0


@pytest.mark.parametrize("http", TRANSPORTS)
@pytest.mark.parametrize("gateway", GATEWAYS)
async def test_invalid_recipients_are_invalid_with_a_reason_naming_them(sms_gateway_factory, http, gateway):
    """``+0123``, 16 digits and letters end invalid, each reason naming the input; the valid ones are sent."""
    gw = sms_gateway_factory()
    bad = [
        "+0123",
        "+1234567890123456",
        "abcdefg",
        "+91 98x12 34567",
        "",
        "+",
        "0" * 40,
        "+91981234567890123",
    ]
    good = numbers(3)
    async with sender(gw, gateway, http) as bulk:
        result = await bulk.send([*bad, *good], "Hello", sender_id="ITONAB")
    assert_accounted(result, len(bad) + 3)
    assert set(result.message_ids) == set(good)
    for raw in bad:
        failure = result.failed[raw]
        assert failure.outcome is Outcome.INVALID
        assert repr(raw)[:30] in failure.reason
        assert isinstance(failure.error, InvalidNumberError)
        assert failure.error.raw == raw
    # Only the valid numbers travelled.
    assert set(gw.stats.numbers) == {on_wire(gateway, n) for n in good}


@pytest.mark.parametrize("gateway", GATEWAYS)
async def test_only_invalid_recipients_make_no_request(sms_gateway_factory, gateway):
    """A list of nothing but invalid numbers is all invalid, and nothing reaches the gateway."""
    gw = sms_gateway_factory()
    async with sender(gw, gateway, "fast") as bulk:
        result = await bulk.send(["+0123", "abc", "abc", "+1234567890123456"], "Hello", sender_id="ITONAB")
    assert_accounted(result, 4)
    assert result.duplicates == {"abc": 1}
    assert {f.outcome for f in result.failed.values()} == {Outcome.INVALID}
    assert sum(gw.stats.requests.values()) == 0


@pytest.mark.parametrize("gateway", GATEWAYS)
@pytest.mark.parametrize(
    "empty", [[], (), iter([]), lazily(iter([]))], ids=["list", "tuple", "iterator", "generator"]
)
async def test_no_recipients_give_an_empty_result_and_no_request(sms_gateway_factory, gateway, empty):
    """An empty list of recipients gives a result with total 0 and makes no request."""
    gw = sms_gateway_factory()
    async with sender(gw, gateway, "fast") as bulk:
        result = await bulk.send(empty, "Hello", sender_id="ITONAB")
    assert result.total == 0
    assert not result.message_ids
    assert not result.failed
    assert not result.duplicates
    assert result.aborted is None
    assert result.requests == 0
    assert sum(gw.stats.requests.values()) == 0


@pytest.mark.parametrize("gateway", GATEWAYS)
async def test_a_million_copies_of_one_number_send_it_once(sms_gateway_factory, gateway):
    """A lazily generated million copies of one number: sent once, 999,999 counted as duplicates."""
    gw = sms_gateway_factory()
    recipients = lazily(itertools.repeat("+919812345678", 1_000_000))
    # The one request leaves after the first 1,000 inputs (LOCAL_FLUSH) while the
    # reader still de-duplicates 999,000 more, in the process whose other thread
    # is the simulator: the suite's 0.3 s read limit would time this machine's
    # scheduler, not the gateway, so the answer gets a limit that only a lost
    # answer reaches.
    async with sender(gw, gateway, "fast", timeouts=Timeouts(read=10.0)) as bulk:
        result = await bulk.send(recipients, "Hello", sender_id="ITONAB")
    assert_accounted(result, 1_000_000)
    assert list(result.message_ids) == ["+919812345678"], result.failed
    assert result.duplicates == {"+919812345678": 999_999}
    assert result.requests == 1
    assert gw.stats.numbers == {on_wire(gateway, "+919812345678"): 1}
    assert_no_double_send(gw)


HOSTILE_TEXTS = {
    "query-injection": "Hi &password=x&username=evil&cmd=account&to=15550000000 #frag",
    "percent": "100% sure %41%2B%zz %",
    "hash": "#hashtag ## #",
    "crlf": "line1\r\nline2\nline3\r\n\r\nGET / HTTP/1.1\r\nHost: evil",
    "quotes": "He said \"hi\" and 'bye' `tick` \\ back\\slash",
    "json-injection": 'x", "password": "x", "recipients": "+15550000000", "message": "y',
    "plus-and-space": "1+1 = 2  a+b ",
    "emoji": "Party 🎉😀 time ✓ — naïve café",
    "everything": "&password=x % # \r\n \" ' 😀 + = ? / ; , { } [ ] ~ | € ^",
}


@pytest.mark.parametrize("http", TRANSPORTS)
@pytest.mark.parametrize("gateway", GATEWAYS)
@pytest.mark.parametrize("name", list(HOSTILE_TEXTS))
async def test_hostile_text_reaches_the_gateway_byte_for_byte(sms_gateway_factory, http, gateway, name):
    """A text full of URL, JSON and HTTP syntax is stored by the gateway exactly as given."""
    text = HOSTILE_TEXTS[name]
    gw = sms_gateway_factory()
    recipients = numbers(150)
    async with sender(gw, gateway, http) as bulk:
        result = await bulk.send(recipients, text, sender_id="ITONAB")
    assert_accounted(result, 150)
    assert set(result.message_ids) == set(recipients)
    stored = [gw.message(i) for i in set(result.message_ids.values())]
    assert stored
    for message in stored:
        assert message is not None
        assert message.text == text
        assert message.sender == "ITONAB"
        if gateway == "iton":
            assert message.unicode == ("0" if text.isascii() and "`" not in text else "2")
    assert gw.stats.requests[SEND_OP[gateway]] == 2
    assert_no_double_send(gw)


# Characters that may stand unescaped in a query string value the way this library writes it.
_QUERY_SAFE = set(string.ascii_letters + string.digits + "-._~%&=/?:,+")


@pytest.mark.parametrize("http", TRANSPORTS)
@pytest.mark.parametrize("name", list(HOSTILE_TEXTS))
async def test_iton_request_carries_one_password_and_the_text_intact(http, name):
    """On the wire, an ITON send has exactly one of each parameter and the text decodes back unchanged."""
    text = HOSTILE_TEXTS[name]
    with RawServer(
        lambda _seen: http_response(200, "Success Your MessageId is 532073f7e4b05199d2c3d812")
    ) as server:
        driver = Iton("user1", "pass&word=1#x", base_url=server.origin + "/api/")
        async with BulkSender(driver, http=http) as bulk:
            result = await bulk.send(numbers(2), text, sender_id="ITONAB")
    assert_accounted(result, 2)
    assert len(result.message_ids) == 2
    (seen,) = server.requests
    assert seen.method == "GET"
    assert set(seen.target) <= _QUERY_SAFE, sorted(set(seen.target) - _QUERY_SAFE)
    parts = urlsplit(seen.target)
    assert parts.path == "/api/"
    assert not parts.fragment
    pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True, errors="strict")
    names = [key for key, _ in pairs]
    assert sorted(names) == sorted(["username", "password", "cmd", "sender", "message", "uniCode", "to"])
    values = dict(pairs)
    assert values["password"] == "pass&word=1#x"
    assert values["message"] == text
    assert values["cmd"] == "sendSMS"
    assert values["to"] == ",".join(n[1:] for n in numbers(2))


@pytest.mark.parametrize("http", TRANSPORTS)
@pytest.mark.parametrize("name", list(HOSTILE_TEXTS))
async def test_itecpay_request_is_valid_json_with_one_password_and_the_text_intact(http, name):
    """On the wire, an ItecPay send is valid JSON with exactly one of each field and the text unchanged."""
    text = HOSTILE_TEXTS[name]
    answer = http_response(200, '{"status": 200, "messageid": "m-1"}', content_type="application/json")
    with RawServer(lambda _seen: answer) as server:
        driver = ItecPay("user1", 'pa"ss\\word\n1', base_url=server.origin)
        async with BulkSender(driver, http=http) as bulk:
            result = await bulk.send(numbers(2), text, sender_id="ITONAB")
    assert_accounted(result, 2)
    (seen,) = server.requests
    assert seen.method == "POST"
    assert seen.headers["content-type"].startswith("application/json")
    pairs = json.loads(seen.body, object_pairs_hook=lambda items: items)
    names = [key for key, _ in pairs]
    assert sorted(names) == sorted(["username", "password", "sender", "message", "recipients"])
    values = dict(pairs)
    assert values["password"] == 'pa"ss\\word\n1'
    assert values["message"] == text
    assert values["recipients"] == ",".join(numbers(2))


recipient_texts = st.one_of(
    st.text(max_size=24),
    st.from_regex(r"\+?[0-9 ()\-.]{0,20}", fullmatch=True),
    st.integers(0, 10**16).map(str),
    st.sampled_from(
        [
            "+919812345678",
            "+91 98123 45678",
            "098123 45678",
            "9812345678",
            "0091 98123 45678",
            "+0123",
            "+1234567890123456",
            "abcdefg",
            "",
            "\x00",
            "\ud800",
            "+\uff19\uff11\uff19\uff18\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18",
            "+91 98123\u200f45678",
            "1" * 5000,
        ]
    ),
)


@pytest.mark.parametrize("http", TRANSPORTS)
@pytest.mark.parametrize("gateway", GATEWAYS)
def test_any_recipient_list_is_accounted_for_and_only_valid_numbers_travel(
    sms_gateway_factory, http, gateway
):
    """Whatever strings come in, each ends in one outcome, and only valid numbers reach the gateway, once."""
    gw = sms_gateway_factory()

    async def send(recipients: list[str]):
        async with sender(gw, gateway, http, default_region="IN") as bulk:
            return await bulk.send(recipients, "Hello", sender_id="ITONAB")

    @settings(
        max_examples=20,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(recipients=st.lists(recipient_texts, max_size=25))
    def check(recipients: list[str]) -> None:
        gw.reset_stats()
        result = anyio.run(send, recipients, backend="asyncio")
        assert_accounted(result, len(recipients))
        for key, failure in result.failed.items():
            assert failure.outcome is Outcome.INVALID, (key, failure)
            assert isinstance(failure.error, InvalidNumberError)
            assert len(failure.reason) < 300
        stats = gw.stats
        assert set(stats.numbers) == {on_wire(gateway, n) for n in result.message_ids}
        assert not stats.duplicate_numbers()
        for number in result.message_ids:
            assert number[0] == "+"
            assert number[1:].isascii()
            assert number[1:].isdigit()

    check()


@pytest.mark.parametrize("http", ["fast", "httpx"])
@pytest.mark.parametrize("token", ["good\r\nX-Injected: 1", "good\nX-Injected: 1"], ids=["crlf", "lf"])
async def test_a_token_with_a_line_break_never_injects_a_header(http, token):
    """A token holding CR/LF is refused, or its requests fail unsent; no extra header reaches the wire."""
    result = None
    with RawServer(accept_all) as server:
        try:
            driver = Iton(token=token, base_url=server.origin + "/api/")
            async with BulkSender(driver, http=http, retry=policy(attempts=2)) as bulk:
                result = await bulk.send(numbers(3), "Hello", sender_id="ITONAB")
        except ConfigurationError:
            pass  # refused before any request: the best answer
        requests = list(server.requests)
    assert all("x-injected" not in seen.headers for seen in requests)
    if result is not None:
        assert_accounted(result, 3)
        assert not result.message_ids
        assert set(result.by_outcome(Outcome.UNSENT)) == set(numbers(3))


async def failing_recipients():
    """2,000 numbers, then (with the last batches in flight) an error, as from a file that went away."""
    for number in numbers(2000):
        yield number
    await anyio.sleep(0.1)
    raise OSError("the recipients file went away")


@pytest.mark.parametrize("http", TRANSPORTS)
async def test_recipients_failing_mid_run_still_give_send_a_result(sms_gateway_factory, http):
    """If the recipients iterable fails after batches went out, send returns them accounted, run aborted."""
    gw = sms_gateway_factory(faults=[Fault("latency", rate=1.0, seconds=0.3)])
    async with sender(gw, "iton", http, concurrency=4) as bulk:
        result = await bulk.send(failing_recipients(), "Hello", sender_id="ITONAB")
    await anyio.sleep(0.4)  # let the gateway count what it was processing
    assert_accounted(result)
    assert result.aborted is not None
    reached = {n for n in numbers(2000) if gw.stats.numbers[n[1:]]}
    assert reached <= set(result.message_ids) | set(result.by_outcome(Outcome.UNKNOWN))


@pytest.mark.parametrize("http", TRANSPORTS)
async def test_recipients_failing_mid_run_are_reported_by_stream(sms_gateway_factory, http):
    """If the recipients fail mid-run, stream still yields each batch that went out, and the abort."""
    gw = sms_gateway_factory(faults=[Fault("latency", rate=1.0, seconds=0.3)])
    reported: dict[str, Outcome] = {}
    aborted = []
    async with sender(gw, "iton", http, concurrency=4) as bulk:
        async for batch in bulk.stream(failing_recipients(), "Hello", sender_id="ITONAB"):
            reported.update(dict.fromkeys(batch.message_ids, Outcome.ACCEPTED))
            reported.update({n: f.outcome for n, f in batch.failed.items()})
            aborted.append(batch.aborted)
    await anyio.sleep(0.4)
    reached = {n for n in numbers(2000) if gw.stats.numbers[n[1:]]}
    assert reached
    assert {reported.get(n) for n in reached} <= {Outcome.ACCEPTED, Outcome.UNKNOWN}
    assert any(error is not None for error in aborted)
