"""Unit tests of the ITON driver: requests described and answers read, without any I/O."""

from __future__ import annotations

import email.utils
import json
import time
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from driver_support import assert_only_sms_errors, build_send, ok, raised
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sms_async import (
    AmbiguousResponseError,
    AuthenticationError,
    ConfigurationError,
    DeliveryStatus,
    GatewayBusyError,
    Iton,
    OutOfCreditError,
    RejectedError,
    SmsError,
)
from sms_async._wire import WireRequest
from sms_async.providers.iton import ITON_STATUS_WORDS

NUMBERS = ["+919812345678", "+919032728149", "+447700900123"]
DOC_ID = "532073f7e4b05199d2c3d812"
HOSTILE_TEXT = 'Hi &password=x 100% #1 \r\nsay "yes" it\'s \N{GRINNING FACE} ok'


def iton() -> Iton:
    return Iton(username="user1", password="pw-iton-1")


def query(request: WireRequest) -> dict[str, list[str]]:
    """The request target's query string, decoded the way a server would."""
    return parse_qs(urlsplit(request.target).query, keep_blank_values=True, strict_parsing=True)


def send_request(
    text: str = "Hello", numbers: list[str] | None = None, driver: Iton | None = None
) -> WireRequest:
    return build_send(driver or iton(), text, numbers or NUMBERS)


# -- describing a send ------------------------------------------------------------


def test_send_is_a_get_with_every_parameter_once():
    """A send is a GET whose query holds username, password, cmd, sender, message, uniCode, to once each."""
    request = send_request()
    assert request.method == "GET"
    assert request.body == b""
    assert request.target.startswith("/ItonSMSAPI/smsService/api/?")
    params = query(request)
    assert params == {
        "username": ["user1"],
        "password": ["pw-iton-1"],
        "cmd": ["sendSMS"],
        "sender": ["ITONAB"],
        "message": ["Hello"],
        "uniCode": ["0"],
        "to": ["919812345678,919032728149,447700900123"],
    }


def test_to_holds_digits_without_plus_comma_separated_without_spaces():
    """The `to` parameter is the numbers' digits without `+`, joined by commas, with no space anywhere."""
    request = send_request()
    raw_to = request.target.rsplit("to=", 1)[1]
    assert raw_to == "919812345678,919032728149,447700900123"
    assert " " not in request.target
    assert "+" not in raw_to
    assert "%2B" not in raw_to


def test_one_number_gives_no_trailing_comma():
    """A batch of one number puts exactly that number in `to`."""
    assert query(send_request(numbers=["+919812345678"]))["to"] == ["919812345678"]


@pytest.mark.parametrize(
    ("text", "flag"),
    [
        ("Hello", "0"),
        ("Price: 5 \N{EURO SIGN} {ok} [x]", "0"),
        ("Gar\N{LATIN SMALL LETTER C WITH CEDILLA}on", "2"),
        ("Hi \N{GRINNING FACE}", "2"),
        ("Hello\N{EM DASH}world", "2"),
    ],
)
def test_unicode_flag_follows_the_encoding(text, flag):
    """`uniCode` is 0 for GSM-7 text and 2 for text that needs UCS-2."""
    assert query(send_request(text))["uniCode"] == [flag]


def test_hostile_message_round_trips_byte_for_byte():
    """A message holding `&password=x`, `%`, `#`, CRLF, quotes and emoji decodes back to itself exactly."""
    request = send_request(HOSTILE_TEXT)
    params = query(request)
    assert params["message"] == [HOSTILE_TEXT]
    assert params["message"][0].encode() == HOSTILE_TEXT.encode()
    assert params["password"] == ["pw-iton-1"]
    assert params["uniCode"] == ["2"]
    # Nothing in the target would end the query or start a fragment early.
    assert "#" not in request.target
    assert "\r" not in request.target
    assert "\n" not in request.target
    assert request.target.isascii()


@given(st.text(st.characters(exclude_categories=["Cs", "Cc"]), min_size=1, max_size=60).filter(str.strip))
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_printable_message_round_trips(text):
    """Any printable text travels through the query string unchanged."""
    params = query(send_request(text))
    assert params["message"] == [text]
    assert len(params["password"]) == 1
    assert len(params["cmd"]) == 1


def test_credentials_with_reserved_characters_are_encoded():
    """A username and password holding `&`, `=`, `#` and `+` decode back to themselves."""
    driver = Iton(username="a&b=c", password="p+w#d&cmd=account")
    params = query(send_request(driver=driver))
    assert params["username"] == ["a&b=c"]
    assert params["password"] == ["p+w#d&cmd=account"]
    assert params["cmd"] == ["sendSMS"]


def test_token_auth_uses_the_header_and_no_password():
    """`Iton(token=...)` authenticates with `Authorization: ITON <token>` and puts no password in the URL."""
    driver = Iton(token="tok-532073f7")
    request = send_request(driver=driver)
    assert ("Authorization", "ITON tok-532073f7") in request.headers
    params = query(request)
    assert "password" not in params
    assert "username" not in params
    assert params["cmd"] == ["sendSMS"]
    assert "tok-532073f7" not in request.target


def test_token_with_username_sends_no_password_parameter():
    """`Iton(username=..., token=...)` sends the token header and no (empty) password parameter."""
    request = send_request(driver=Iton(username="user1", token="tok-532073f7"))
    assert ("Authorization", "ITON tok-532073f7") in request.headers
    assert "password" not in query(request)


def test_password_auth_sends_no_authorization_header():
    """Username and password travel in the query only, without an Authorization header."""
    request = send_request()
    assert not [name for name, _ in request.headers if name.lower() == "authorization"]


def test_request_repr_hides_the_password():
    """The repr of a described request does not show the password."""
    request = send_request()
    assert "pw-iton-1" not in repr(request)
    assert "pw-iton-1" not in request.describe()


def test_base_url_is_the_command_endpoint():
    """A loopback `base_url` is accepted over http and its path starts every target."""
    driver = Iton(username="u", password="pw-iton-1", base_url="http://127.0.0.1:8080/gw/api/")
    assert send_request(driver=driver).target.startswith("/gw/api/?")
    assert driver.origin.port == 8080


@pytest.mark.parametrize(
    "kwargs",
    [
        {"username": "u"},
        {"password": "p"},
        {},
        {"token": "  "},
        {"username": "u", "password": "pw-iton-1", "base_url": "http://gateway.example/api/"},
        {"username": "u", "password": "pw-iton-1", "base_url": "ftp://gateway.example/api/"},
    ],
)
def test_bad_configuration_raises(kwargs):
    """Missing credentials or a non-https, non-loopback base URL raise ConfigurationError."""
    with pytest.raises(ConfigurationError):
        Iton(**kwargs)


def test_status_balance_and_dnd_requests():
    """Look-ups use cmd=message_status/ids, cmd=account and cmd=check_DNDnumber/phoneNumbers."""
    driver = iton()
    status = query(driver.build_status(["a1", "b2"]))
    assert status["cmd"] == ["message_status"]
    assert status["ids"] == ["a1,b2"]
    assert query(driver.build_balance())["cmd"] == ["account"]
    dnd = query(driver.build_dnd(["+919032728149", "+919812345678"]))
    assert dnd["cmd"] == ["check_DNDnumber"]
    assert dnd["phoneNumbers"] == ["919032728149,919812345678"]


# -- reading a send answer -------------------------------------------------------


def test_plain_success_gives_one_id_to_every_number():
    """The documented `Success Your MessageId is <id>` gives that id to every number of the batch."""
    answer = iton().parse_send(NUMBERS, ok(f"Success Your MessageId is {DOC_ID}"))
    assert answer.accepted == dict.fromkeys(NUMBERS, DOC_ID)
    assert answer.rejected == {}
    assert DOC_ID in answer.raw


def test_plain_success_tolerates_surrounding_whitespace():
    """A trailing newline after the documented success line does not hide the id."""
    answer = iton().parse_send(NUMBERS[:1], ok(f"  Success Your MessageId is {DOC_ID}\r\n"))
    assert answer.accepted == {NUMBERS[0]: DOC_ID}


def test_json_id_to_number():
    """JSON mapping message id -> number (as digits or with `+`) gives each number its id."""
    body = json.dumps({"id-1": "919812345678", "id-2": "+919032728149", "id-3": "447700900123"})
    answer = iton().parse_send(NUMBERS, ok(body))
    assert answer.accepted == {NUMBERS[0]: "id-1", NUMBERS[1]: "id-2", NUMBERS[2]: "id-3"}


def test_json_id_to_comma_separated_numbers():
    """JSON mapping one id to several comma-separated numbers gives that id to each."""
    body = json.dumps({"id-1": "919812345678,919032728149", "id-2": "447700900123"})
    answer = iton().parse_send(NUMBERS, ok(body))
    assert answer.accepted == {NUMBERS[0]: "id-1", NUMBERS[1]: "id-1", NUMBERS[2]: "id-2"}


def test_json_partial_answer_leaves_missing_numbers_out():
    """JSON naming only some numbers accepts those and leaves the others out of `accepted`."""
    body = json.dumps({"id-1": "919812345678"})
    answer = iton().parse_send(NUMBERS, ok(body))
    assert answer.accepted == {NUMBERS[0]: "id-1"}
    assert NUMBERS[1] not in answer.accepted
    assert NUMBERS[2] not in answer.accepted


def test_json_number_to_id():
    """JSON mapping number -> message id (the other way round) is read too."""
    body = json.dumps({"919812345678": "m-1", "919032728149": "m-2", "447700900123": "m-3"})
    answer = iton().parse_send(NUMBERS, ok(body))
    assert answer.accepted == {NUMBERS[0]: "m-1", NUMBERS[1]: "m-2", NUMBERS[2]: "m-3"}


@pytest.mark.parametrize(
    ("body", "error_type"),
    [
        ("Invalid username or password", AuthenticationError),
        ("Login failed", AuthenticationError),
        ("Insufficient credits", OutOfCreditError),
        ("Low balance", OutOfCreditError),
        ("Invalid sender id", RejectedError),
    ],
)
def test_error_text_in_a_200_is_classified(body, error_type):
    """Plain error text in a 200 becomes the matching error, with the gateway's words as its reason."""
    with pytest.raises(error_type) as info:
        iton().parse_send(NUMBERS, ok(body))
    assert info.value.reason == body
    assert info.value.status_code == 200
    assert body in (info.value.raw or "")


def test_only_auth_and_credit_errors_abort_the_run():
    """Authentication and credit errors abort a run; a rejection does not."""
    assert AuthenticationError("x").aborts_run
    assert OutOfCreditError("x").aborts_run
    assert not RejectedError("x").aborts_run


@pytest.mark.parametrize(
    "body",
    [
        "<html><body>502 Bad Gateway</body></html>",
        "<!DOCTYPE html><html><head></head></html>",
        "",
        "   \r\n",
        '{"id-1": "9198123',
        "[]",
        '["919812345678"]',
        "{}",
        '{"id-1": 919812345678}',
        '{"id-1": null}',
        '{"id-1": {"to": "919812345678"}}',
        '{"id-1": ["919812345678", 5]}',
        '{"id-1": "441632960000"}',
        "Success",
        "Success Your MessageId is: ",
    ],
)
def test_unreadable_answers_are_ambiguous(body):
    """HTML, empty, truncated or foreign JSON, non-string values or a bare `Success` may have sent."""
    with pytest.raises(AmbiguousResponseError):
        iton().parse_send(NUMBERS, ok(body))


@pytest.mark.parametrize("body", ["Success Your MessageId is", "Success Your MessageId is   "])
def test_success_with_an_empty_id_is_ambiguous(body):
    """`Success Your MessageId is` with nothing after it carries no id, so the send's fate is unknown."""
    with pytest.raises(AmbiguousResponseError):
        iton().parse_send(NUMBERS, ok(body))


@pytest.mark.parametrize("body", ['{"a":' + "[" * 100_000, "[" * 100_000, "{" + '"a":{' * 50_000])
def test_deeply_nested_json_is_ambiguous(body):
    """JSON nested too deeply to read is an unreadable answer, not a crash."""
    with pytest.raises(AmbiguousResponseError):
        iton().parse_send(NUMBERS, ok(body))
    driver = iton()
    for call in (
        lambda: driver.parse_status(["m1"], ok(body)),
        lambda: driver.parse_dnd(NUMBERS, ok(body)),
        lambda: driver.parse_balance(ok(body)),
    ):
        assert isinstance(raised(call), SmsError)


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [("7", 7.0), ("0.01", 0.01), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("garbage", None), (None, None)],
)
def test_busy_answers_carry_retry_after(status, retry_after, expected):
    """429 and 503 are GatewayBusyError with Retry-After read as seconds or as an HTTP date."""
    headers = {} if retry_after is None else {"retry-after": retry_after}
    with pytest.raises(GatewayBusyError) as info:
        iton().parse_send(NUMBERS, ok("busy", status, headers))
    assert info.value.status_code == status
    assert info.value.retry_after == expected


def test_retry_after_as_a_future_http_date():
    """A Retry-After HTTP date in the future gives the seconds until then."""
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    with pytest.raises(GatewayBusyError) as info:
        iton().parse_send(NUMBERS, ok("", 429, {"retry-after": when}))
    assert info.value.retry_after is not None
    assert 60 < info.value.retry_after <= 121


@pytest.mark.parametrize("status", [500, 502, 504])
def test_server_errors_are_ambiguous(status):
    """500, 502 and 504 may have been processed: AmbiguousResponseError."""
    with pytest.raises(AmbiguousResponseError) as info:
        iton().parse_send(NUMBERS, ok(f"Success Your MessageId is {DOC_ID}", status))
    assert info.value.status_code == status


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_over_http(status):
    """HTTP 401 and 403 are AuthenticationError."""
    with pytest.raises(AuthenticationError) as info:
        iton().parse_send(NUMBERS, ok("", status))
    assert info.value.status_code == status


def test_redirect_is_rejected_not_followed():
    """A 302 is a RejectedError naming the redirect, and the Location's password is redacted."""
    location = "https://elsewhere.example/api/?username=user1&password=pw-iton-1"
    with pytest.raises(RejectedError) as info:
        iton().parse_send(NUMBERS, ok("", 302, {"location": location}))
    assert info.value.status_code == 302
    assert "302" in info.value.reason
    assert "pw-iton-1" not in str(info.value)


def test_bad_request_text_is_rejected_with_its_words():
    """An HTTP 400 with the gateway's words is a RejectedError carrying them."""
    with pytest.raises(RejectedError) as info:
        iton().parse_send(NUMBERS, ok("Invalid sender id", 400))
    assert info.value.reason == "Invalid sender id"
    assert info.value.status_code == 400


@pytest.mark.parametrize("response", [ok("", 404), ok("<html>Not Found</html>", 404), ok("", 400)])
def test_client_errors_without_words_are_rejected(response):
    """A 4xx other than 429 is rejected even with an empty or HTML body: the gateway did not process it."""
    with pytest.raises(RejectedError):
        iton().parse_send(NUMBERS, response)


# -- reading a status answer -----------------------------------------------------------

DOC_STATUS = {
    "5320729be4b05199d2c3d80f": {
        "phoneNumberWithRespectiveStatus": {"919812345678": "DELIVIRED"},
        "message": "Hello",
        "sender_Id": "itonXXXX",
        "user_Id": "XXXXXX",
        "sending_Date": "Mar 12, 2013 8:13:39 PM",
    }
}


def test_status_documented_example():
    """The documented answer reads `DELIVIRED` as DELIVERED, keeps the raw word, gives the number in E.164."""
    reports = iton().parse_status(["5320729be4b05199d2c3d80f"], ok(json.dumps(DOC_STATUS)))
    assert len(reports) == 1
    (report,) = reports
    assert report.message_id == "5320729be4b05199d2c3d80f"
    assert report.number == "+919812345678"
    assert report.status is DeliveryStatus.DELIVERED
    assert report.raw == "DELIVIRED"
    assert report.is_final


@pytest.mark.parametrize(("word", "status"), sorted(ITON_STATUS_WORDS.items()))
def test_every_known_status_word(word, status):
    """Every word in ITON_STATUS_WORDS maps to its status, whatever its case, and the raw word is kept."""
    for spelled in (word, word.lower()):
        body = {"m1": {"phoneNumberWithRespectiveStatus": {"919812345678": spelled}}}
        (report,) = iton().parse_status(["m1"], ok(json.dumps(body)))
        assert report.status is status
        assert report.raw == spelled


def test_unknown_status_word_keeps_the_raw_word():
    """A word the library does not know gives UNKNOWN with the word in `raw`."""
    body = {"m1": {"phoneNumberWithRespectiveStatus": {"919812345678": "ON_HOLD_BY_OPERATOR"}}}
    (report,) = iton().parse_status(["m1"], ok(json.dumps(body)))
    assert report.status is DeliveryStatus.UNKNOWN
    assert report.raw == "ON_HOLD_BY_OPERATOR"


def test_status_id_missing_from_the_answer_is_unknown():
    """An id the answer does not mention gets one UNKNOWN report; the others are read."""
    reports = iton().parse_status(["5320729be4b05199d2c3d80f", "missing-id"], ok(json.dumps(DOC_STATUS)))
    by_id = {r.message_id: r for r in reports}
    assert set(by_id) == {"5320729be4b05199d2c3d80f", "missing-id"}
    assert by_id["missing-id"].status is DeliveryStatus.UNKNOWN
    assert by_id["missing-id"].number is None
    assert by_id["5320729be4b05199d2c3d80f"].status is DeliveryStatus.DELIVERED


def test_status_with_several_numbers_per_id():
    """One id sent to several numbers gives one report per number."""
    body = {"m1": {"phoneNumberWithRespectiveStatus": {"919812345678": "DELIVRD", "919032728149": "PENDING"}}}
    reports = iton().parse_status(["m1"], ok(json.dumps(body)))
    assert {(r.number, r.status) for r in reports} == {
        ("+919812345678", DeliveryStatus.DELIVERED),
        ("+919032728149", DeliveryStatus.QUEUED),
    }


@pytest.mark.parametrize(
    ("response", "error_type"),
    [
        (ok("Invalid username or password"), AuthenticationError),
        (ok("<html></html>"), AmbiguousResponseError),
        (ok("[]"), AmbiguousResponseError),
        (ok('{"m1": {"phoneNumberWithRespectiveStatus": "DELIVIRED"}}'), AmbiguousResponseError),
        (ok("", 503), GatewayBusyError),
    ],
)
def test_status_errors(response, error_type):
    """Bad status answers raise the error they mean."""
    with pytest.raises(error_type):
        iton().parse_status(["m1"], response)


# -- balance and DND -------------------------------------------------------------------


def test_balance_documented_example():
    """`Remaining_Credits: 417` is Decimal 417."""
    assert iton().parse_balance(ok("Remaining_Credits: 417")) == Decimal(417)


def test_balance_errors():
    """A balance answer with credential words is an AuthenticationError; nonsense is not a number."""
    with pytest.raises(AuthenticationError):
        iton().parse_balance(ok("Invalid username or password"))
    with pytest.raises(SmsError):
        iton().parse_balance(ok("<html></html>"))


def test_dnd_keys_as_sent():
    """DND keys spelled as sent (digits without `+`) map back to E.164."""
    body = {"919032728149": True, "919812345678": False}
    result = iton().parse_dnd(["+919032728149", "+919812345678"], ok(json.dumps(body)))
    assert result == {"+919032728149": True, "+919812345678": False}


def test_dnd_documented_national_key():
    """The documented answer keyed by the national number `9032728149` maps back to the E.164 number."""
    result = iton().parse_dnd(["+919032728149"], ok('{\n"9032728149":true\n}'))
    assert result == {"+919032728149": True}


def test_dnd_missing_number_is_ambiguous():
    """A DND answer that does not mention every number asked about is not trusted."""
    with pytest.raises(AmbiguousResponseError):
        iton().parse_dnd(["+919032728149", "+919812345678"], ok('{"9032728149": true}'))


def test_dnd_non_boolean_is_ambiguous():
    """A DND value that is not true/false is not trusted."""
    with pytest.raises(AmbiguousResponseError):
        iton().parse_dnd(["+919032728149"], ok('{"9032728149": "yes"}'))


# -- robustness ------------------------------------------------------------------------

KEYS = st.sampled_from(
    [
        "919812345678",
        "+919812345678",
        "9812345678",
        "m1",
        "phoneNumberWithRespectiveStatus",
        "Remaining_Credits",
        "credits",
        "status",
        "",
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["919812345678", "DELIVIRED", "9812345678,919032728149", "417"])
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(KEYS | st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
BODIES = (
    st.binary(max_size=200)
    | st.text(max_size=200).map(str.encode)
    | JSON_VALUES.map(lambda v: json.dumps(v).encode())
    | st.sampled_from(["Success Your MessageId is ", "Remaining_Credits: ", "{", "<html"]).flatmap(
        lambda head: st.text(max_size=40).map(lambda tail: (head + tail).encode())
    )
)


@given(body=BODIES)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_200_body_raises_only_sms_errors(body):
    """Whatever a 200 holds, every parser returns a value or raises an SmsError subclass, nothing else."""
    driver = iton()
    response = ok(body)
    numbers = ["+919812345678", "+919032728149"]
    calls = [
        lambda: driver.parse_send(numbers, response),
        lambda: driver.parse_status(["m1", "919812345678"], response),
        lambda: driver.parse_dnd(numbers, response),
        lambda: driver.parse_balance(response),
    ]
    for call in calls:
        assert_only_sms_errors(call)


@given(body=BODIES, status=st.integers(100, 599), retry_after=st.none() | st.text(max_size=30))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_status_and_body_raise_only_sms_errors(body, status, retry_after):
    """Whatever the HTTP status, body and Retry-After, the send parser raises only SmsError subclasses."""
    headers = {} if retry_after is None else {"retry-after": retry_after}
    assert_only_sms_errors(lambda: iton().parse_send(["+919812345678"], ok(body, status, headers)))
