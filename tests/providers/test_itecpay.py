"""Unit tests of the ItecPay driver: JSON requests described and answers read, without any I/O."""

from __future__ import annotations

import json

import pytest
from driver_support import assert_only_sms_errors, build_send, ok
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sms_async import (
    AmbiguousResponseError,
    AuthenticationError,
    ConfigurationError,
    DeliveryStatus,
    GatewayBusyError,
    ItecPay,
    OutOfCreditError,
    RejectedError,
    UnsupportedOperationError,
)
from sms_async._wire import WireRequest
from sms_async.providers.itecpay import ITECPAY_STATUS_LETTERS

NUMBERS = ["+919812345678", "+919032728149", "+447700900123"]
BASE = "https://gateway.itecpay.example"


def itecpay(**kwargs) -> ItecPay:
    return ItecPay(
        "user1", kwargs.pop("password", "pw-itec-1"), base_url=kwargs.pop("base_url", BASE), **kwargs
    )


def send_request(
    text: str = "Hello", numbers: list[str] | None = None, driver: ItecPay | None = None
) -> WireRequest:
    return build_send(driver or itecpay(), text, numbers or NUMBERS)


# -- describing a send -------------------------------------------------------------


def test_send_is_a_json_post_with_every_field():
    """A send is a JSON POST holding username, password, recipients, sender and message."""
    request = send_request()
    assert request.method == "POST"
    assert request.target == "/api/sms/send"
    headers = {name.lower(): value for name, value in request.headers}
    assert headers["content-type"] == "application/json"
    assert json.loads(request.body) == {
        "username": "user1",
        "password": "pw-itec-1",
        "recipients": "+919812345678,+919032728149,+447700900123",
        "sender": "ITONAB",
        "message": "Hello",
    }


def test_recipients_are_e164_with_plus_and_no_spaces():
    """`recipients` is comma-separated E.164 with `+`, with no spaces."""
    recipients = json.loads(send_request().body)["recipients"]
    assert recipients.split(",") == NUMBERS
    assert " " not in recipients


@pytest.mark.parametrize(
    "text",
    [
        'He said "hi"',
        "back\\slash and \\n literal",
        "line one\r\nline two",
        "Hi \N{GRINNING FACE} and \N{LATIN SMALL LETTER C WITH CEDILLA}",
        "tab\tand </script>",
        '"}, "password": "hijack',
    ],
)
def test_message_is_valid_json_for_hostile_text(text):
    """Quotes, backslashes, CRLF and emoji give valid JSON that decodes back to the text exactly."""
    body = json.loads(send_request(text).body.decode("utf-8"))
    assert body["message"] == text
    assert body["password"] == "pw-itec-1"
    assert body["recipients"] == ",".join(NUMBERS)


def test_credentials_with_json_metacharacters_stay_valid_json():
    """A password holding quotes and backslashes stays one JSON string."""
    driver = itecpay(password='p"w\\d", "x": "')
    body = json.loads(send_request(driver=driver).body)
    assert body["password"] == 'p"w\\d", "x": "'
    assert set(body) == {"username", "password", "recipients", "sender", "message"}


@given(st.text(st.characters(exclude_categories=["Cs", "Cc"]), min_size=1, max_size=60).filter(str.strip))
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_printable_message_is_valid_json(text):
    """Any printable text travels in valid JSON unchanged."""
    assert json.loads(send_request(text).body)["message"] == text


def test_paths_are_configurable():
    """`send_path` and `status_path` are appended to the base URL's path."""
    driver = itecpay(base_url=BASE + "/v2/", send_path="/sms/out", status_path="sms/status")
    assert send_request(driver=driver).target == "/v2/sms/out"
    assert driver.build_status(["m1"]).target == "/v2/sms/status"


def test_base_url_is_required():
    """ItecPay names no URL of its own, so `base_url` must be given."""
    with pytest.raises(TypeError):
        ItecPay("user1", "pw-itec-1")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"username": "", "password": "pw-itec-1", "base_url": BASE},
        {"username": "user1", "password": "", "base_url": BASE},
        {"username": "user1", "password": "pw-itec-1", "base_url": "http://gateway.itecpay.example"},
        {"username": "user1", "password": "pw-itec-1", "base_url": ""},
        {"username": "user1", "password": "pw-itec-1", "base_url": "https://u:pw@gateway.example"},
    ],
)
def test_bad_configuration_raises(kwargs):
    """Missing credentials or an insecure or malformed base URL raise ConfigurationError."""
    with pytest.raises(ConfigurationError):
        ItecPay(**kwargs)


def test_loopback_http_is_allowed():
    """Plain http:// is accepted for a loopback gateway."""
    driver = itecpay(base_url="http://127.0.0.1:9000")
    assert driver.origin.is_loopback


def test_status_request_carries_one_message_id():
    """A status look-up posts username, password and messageid."""
    request = itecpay().build_status(["m-1"])
    assert request.method == "POST"
    assert json.loads(request.body) == {"username": "user1", "password": "pw-itec-1", "messageid": "m-1"}


def test_driver_repr_hides_the_password():
    """The driver's repr and the described request's repr do not show the password."""
    driver = itecpay()
    assert "pw-itec-1" not in repr(driver)
    assert "pw-itec-1" not in repr(send_request(driver=driver))


# -- reading a send answer -------------------------------------------------------------


@pytest.mark.parametrize("key", ["messageid", "message_id", "messageId"])
def test_whole_request_id_under_any_spelling(key):
    """An id under `messageid`, `message_id` or `messageId` is given to every number."""
    answer = itecpay().parse_send(NUMBERS, ok({"status": 200, "description": "Success", key: "abc-1"}))
    assert answer.accepted == dict.fromkeys(NUMBERS, "abc-1")
    assert answer.rejected == {}
    assert "abc-1" in answer.raw


def test_numeric_id_is_kept_as_text():
    """A numeric id becomes its text."""
    answer = itecpay().parse_send(NUMBERS[:1], ok({"status": 200, "messageid": 8624389}))
    assert answer.accepted == {NUMBERS[0]: "8624389"}


def test_per_recipient_list_with_some_refused():
    """A per-recipient list gives ids to the accepted and the description to those with status 400."""
    body = {
        "status": 200,
        "messages": [
            {"recipient": "+919812345678", "messageid": "a-1", "status": 200},
            {"recipient": "+919032728149", "status": 400, "description": "Number is on DND"},
            {"recipient": "447700900123", "messageid": "a-3", "status": "200"},
        ],
    }
    answer = itecpay().parse_send(NUMBERS, ok(body))
    assert answer.accepted == {"+919812345678": "a-1", "+447700900123": "a-3"}
    assert answer.rejected == {"+919032728149": "Number is on DND"}


def test_per_recipient_map_of_ids():
    """A map of number -> id under `messageid` gives each number its own id."""
    body = {
        "status": 200,
        "messageid": {"+919812345678": "x-1", "919032728149": "x-2", "+447700900123": "x-3"},
    }
    answer = itecpay().parse_send(NUMBERS, ok(body))
    assert answer.accepted == {NUMBERS[0]: "x-1", NUMBERS[1]: "x-2", NUMBERS[2]: "x-3"}


def test_list_of_ids_in_order():
    """A list of as many ids as numbers pairs them in order."""
    answer = itecpay().parse_send(NUMBERS, ok({"status": 200, "messageid": ["i1", "i2", "i3"]}))
    assert answer.accepted == {NUMBERS[0]: "i1", NUMBERS[1]: "i2", NUMBERS[2]: "i3"}


def test_http_400_with_description_is_rejected():
    """HTTP 400 with a description is a RejectedError whose reason is the description."""
    with pytest.raises(RejectedError) as info:
        itecpay().parse_send(NUMBERS, ok({"status": 400, "description": "Invalid sender name"}, 400))
    assert info.value.reason == "Invalid sender name"
    assert info.value.status_code == 400
    assert "Invalid sender name" in (info.value.raw or "")


@pytest.mark.parametrize("status", [400, "400"])
def test_http_200_with_status_400_is_a_failure(status):
    """HTTP 200 whose body says status 400 is a failure with the description as reason."""
    with pytest.raises(RejectedError) as info:
        itecpay().parse_send(NUMBERS, ok({"status": status, "description": "Message text is empty"}))
    assert info.value.reason == "Message text is empty"


def test_http_400_with_plain_text_is_rejected():
    """HTTP 400 with plain text is rejected with that text."""
    with pytest.raises(RejectedError) as info:
        itecpay().parse_send(NUMBERS, ok("Bad recipients", 400))
    assert info.value.reason == "Bad recipients"


@pytest.mark.parametrize("status", [401, 403])
def test_http_401_and_403_are_authentication_errors(status):
    """HTTP 401/403 refuse the credentials."""
    with pytest.raises(AuthenticationError):
        itecpay().parse_send(NUMBERS, ok({"status": status, "description": "Unauthorized"}, status))


@pytest.mark.parametrize(
    "description", ["Invalid username or password", "Authentication failed", "Login denied"]
)
def test_description_about_credentials_is_an_authentication_error(description):
    """A failure whose description speaks of credentials is an AuthenticationError."""
    with pytest.raises(AuthenticationError) as info:
        itecpay().parse_send(NUMBERS, ok({"status": 400, "description": description}))
    assert info.value.reason == description


@pytest.mark.parametrize("description", ["Insufficient balance", "Not enough credit", "Low balance"])
def test_description_about_balance_is_out_of_credit(description):
    """A failure whose description speaks of balance or credit is an OutOfCreditError."""
    with pytest.raises(OutOfCreditError) as info:
        itecpay().parse_send(NUMBERS, ok({"status": 400, "description": description}, 400))
    assert info.value.reason == description


@pytest.mark.parametrize(
    "body",
    [
        {"status": 200},
        {"status": 200, "description": "Message sent"},
        {"status": 200, "messageid": None},
        {"status": 200, "messageid": ""},
        {"status": 200, "messageid": True},
        {"status": 200, "messageid": ["only-one"]},
        "",
        "<html>oops</html>",
        "[]",
        '{"status": 200, "messageid": "x"',
        {"messages": [1, 2]},
        {"messages": [{"recipient": "+15550000000", "messageid": "z"}]},
    ],
)
def test_success_without_a_usable_id_is_ambiguous(body):
    """A 200 with no id, or that we cannot read, is AmbiguousResponseError: it may have sent."""
    with pytest.raises(AmbiguousResponseError):
        itecpay().parse_send(NUMBERS, ok(body))


@pytest.mark.parametrize(
    "body",
    [
        {"messages": [{"recipient": "+919812345678", "messageid": {}}]},
        {"messages": [{"recipient": "+919812345678", "messageid": True}]},
    ],
    ids=["entry-object", "entry-true"],
)
def test_unreadable_per_recipient_entry_is_unknown_for_that_number(body):
    """A per-recipient entry whose id is an object or a boolean leaves that number unknown, not accepted."""
    answer = itecpay().parse_send(["+919812345678"], ok(body))
    assert answer.accepted == {}
    assert "+919812345678" in answer.unknown


@pytest.mark.parametrize(
    "body",
    [
        {"messageid": {"+919812345678": None}},
        {"messageid": [None]},
        {"messageid": [{}]},
    ],
    ids=["map-null", "list-null", "list-object"],
)
def test_unreadable_per_recipient_ids_are_not_accepted(body):
    """An id that is null, a boolean or an object is no id: the answer is ambiguous, not accepted."""
    with pytest.raises(AmbiguousResponseError):
        itecpay().parse_send(["+919812345678"], ok(body))


@pytest.mark.parametrize("status", [429, 503])
def test_busy_answers(status):
    """429 and 503 are GatewayBusyError with Retry-After."""
    with pytest.raises(GatewayBusyError) as info:
        itecpay().parse_send(NUMBERS, ok("", status, {"retry-after": "3"}))
    assert info.value.retry_after == 3.0


@pytest.mark.parametrize("status", [500, 502, 504])
def test_server_errors_are_ambiguous(status):
    """500, 502 and 504 may have been processed."""
    with pytest.raises(AmbiguousResponseError):
        itecpay().parse_send(NUMBERS, ok({"status": 200, "messageid": "x"}, status))


@pytest.mark.parametrize(
    "body", ['{"status": Infinity, "messageid": "x"}', '{"status": 1e999, "messageid": "x"}']
)
def test_infinite_status_is_not_a_crash(body):
    """A `status` of JSON Infinity is read without raising anything but an SmsError."""
    assert_only_sms_errors(lambda: itecpay().parse_send(NUMBERS, ok(body)))


def test_deeply_nested_json_is_ambiguous():
    """JSON nested too deeply to read is an unreadable answer, not a crash."""
    with pytest.raises(AmbiguousResponseError):
        itecpay().parse_send(NUMBERS, ok('{"status": 200, "messageid": ' + "[" * 100_000))
    with pytest.raises(AmbiguousResponseError):
        itecpay().parse_status(["m1"], ok('{"sms_status": ' + "{" * 100_000))


# -- reading a status answer -------------------------------------------------------------


@pytest.mark.parametrize(("letter", "status"), sorted(ITECPAY_STATUS_LETTERS.items()))
def test_every_status_letter(letter, status):
    """Each documented letter P D Q E S U maps to its status, and the raw letter is kept."""
    (report,) = itecpay().parse_status(["m1"], ok({"status": 200, "sms_status": letter}))
    assert report.message_id == "m1"
    assert report.status is status
    assert report.raw == letter


def test_documented_letters_are_all_known():
    """The table holds exactly the six documented letters with their meanings."""
    assert ITECPAY_STATUS_LETTERS == {
        "P": DeliveryStatus.PROCESSING,
        "D": DeliveryStatus.DELIVERED,
        "Q": DeliveryStatus.QUEUED,
        "E": DeliveryStatus.FAILED,
        "S": DeliveryStatus.SENT,
        "U": DeliveryStatus.UNDELIVERED,
    }


@pytest.mark.parametrize("key", ["message_status", "delivery_status"])
def test_status_letter_under_other_keys(key):
    """The letter is also read from `message_status` and `delivery_status`."""
    (report,) = itecpay().parse_status(["m1"], ok({"status": 200, key: "D"}))
    assert report.status is DeliveryStatus.DELIVERED
    assert report.raw == "D"


def test_unknown_letter_keeps_the_raw_word():
    """A letter that is not documented gives UNKNOWN with the letter kept."""
    (report,) = itecpay().parse_status(["m1"], ok({"status": 200, "sms_status": "X"}))
    assert report.status is DeliveryStatus.UNKNOWN
    assert report.raw == "X"


@pytest.mark.parametrize(
    "response",
    [
        ok({"status": 400, "description": "Unknown message id"}),
        ok({"status": 400, "description": "Unknown message id"}, 400),
    ],
)
def test_unknown_message_id_is_an_unknown_report(response):
    """A refused look-up of an unknown id gives one UNKNOWN report for that id, not an error."""
    (report,) = itecpay().parse_status(["m-404"], response)
    assert report.message_id == "m-404"
    assert report.status is DeliveryStatus.UNKNOWN
    assert "Unknown message id" in report.raw


def test_status_auth_failure_raises():
    """A status look-up with refused credentials raises AuthenticationError."""
    with pytest.raises(AuthenticationError):
        itecpay().parse_status(["m1"], ok({"status": 401, "description": "Unauthorized"}, 401))


# -- commands ItecPay does not have ---------------------------------------------------------


def test_balance_and_dnd_are_unsupported():
    """Balance and DND look-ups raise UnsupportedOperationError, both to build and to parse."""
    driver = itecpay()
    with pytest.raises(UnsupportedOperationError):
        driver.build_balance()
    with pytest.raises(UnsupportedOperationError):
        driver.build_dnd(NUMBERS)
    with pytest.raises(UnsupportedOperationError):
        driver.parse_balance(ok("Remaining_Credits: 417"))
    with pytest.raises(UnsupportedOperationError):
        driver.parse_dnd(NUMBERS, ok({"919812345678": True}))


# -- robustness -------------------------------------------------------------------------------

KEYS = st.sampled_from(
    [
        "status",
        "description",
        "messageid",
        "message_id",
        "messageId",
        "messages",
        "recipients",
        "recipient",
        "number",
        "sms_status",
        "message_status",
        "delivery_status",
        "+919812345678",
        "919812345678",
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["+919812345678", "919812345678", "400", "200", "D", "credit", "password"])
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
    | st.dictionaries(KEYS, JSON_VALUES, max_size=5).map(lambda v: json.dumps(v).encode())
)


@given(body=BODIES, status=st.sampled_from([200, 200, 200, 400, 401, 404, 429, 500]))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_body_raises_only_sms_errors(body, status):
    """Whatever the body, every parser returns a value or raises an SmsError subclass, nothing else."""
    driver = itecpay()
    response = ok(body, status)
    numbers = ["+919812345678", "+919032728149"]
    for call in (
        lambda: driver.parse_send(numbers, response),
        lambda: driver.parse_status(["m1"], response),
        lambda: driver.parse_dnd(numbers, response),
        lambda: driver.parse_balance(response),
    ):
        assert_only_sms_errors(call)
