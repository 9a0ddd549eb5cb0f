"""The simulated ITON gateway, spoken to over real sockets with raw httpx."""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from sms_async.testing import SimulatedGateway

NUMBERS = ["919812345678", "447700900123", "14155550100"]
ID = re.compile(r"[0-9a-f]{24}")


@pytest.fixture
def client():
    with httpx.Client(timeout=10) as c:
        yield c


def iton(gw: SimulatedGateway, client: httpx.Client, **params: str) -> httpx.Response:
    query = {"username": gw.username, "password": gw.password, **params}
    return client.get(gw.iton_url, params=query)


def send(gw: SimulatedGateway, client: httpx.Client, numbers=NUMBERS, message="Hello", **extra: str):
    return iton(
        gw,
        client,
        cmd="sendSMS",
        to=",".join(numbers),
        sender="ITONAB",
        message=message,
        uniCode="0",
        **extra,
    )


def text_id(response: httpx.Response) -> str:
    match = re.fullmatch(r"Success Your MessageId is ([0-9a-f]{24})", response.text)
    assert match, response.text
    return match.group(1)


def test_send_text_form(sms_gateway, client):
    """A text-form send answers one 24-hex id and stores the message for all its numbers."""
    response = send(sms_gateway, client)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    message_id = text_id(response)
    stored = sms_gateway.message(message_id)
    assert stored is not None
    assert stored.numbers == tuple(NUMBERS)
    assert (stored.text, stored.sender, stored.unicode, stored.username) == ("Hello", "ITONAB", "0", "demo")


def test_send_json_form(sms_gateway_factory, client):
    """A JSON-form send maps one new id per number to the number as sent."""
    gw = sms_gateway_factory(iton_send_form="json")
    response = send(gw, client)
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert sorted(answer.values()) == sorted(NUMBERS)
    assert all(ID.fullmatch(key) for key in answer)
    assert {gw.message(key).numbers for key in answer} == {(n,) for n in NUMBERS}


def test_send_form_can_change_while_running(sms_gateway, client):
    """Switching the send form on a running gateway changes the next answer."""
    sms_gateway.iton_send_form = "json"
    assert send(sms_gateway, client).json()
    sms_gateway.iton_send_form = "text"
    assert text_id(send(sms_gateway, client))


def test_auth_by_token(sms_gateway, client):
    """The Authorization: ITON <token> header authenticates without username or password."""
    headers = {"Authorization": f"ITON {sms_gateway.token}"}
    response = client.get(sms_gateway.iton_url, params={"cmd": "account"}, headers=headers)
    assert response.text == "Remaining_Credits: 1000000000"


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        ({"username": "demo", "password": "wrong"}, {}),
        ({"username": "nobody", "password": "demo-password"}, {}),
        ({"username": "demo"}, {}),
        ({}, {}),
        ({}, {"Authorization": "ITON wrong-token"}),
        ({}, {"Authorization": "Bearer demo-token"}),
    ],
)
def test_bad_credentials(sms_gateway, client, params, headers):
    """Wrong or missing credentials get the plain-text error in an HTTP 200."""
    response = client.get(sms_gateway.iton_url, params={"cmd": "account", **params}, headers=headers)
    assert (response.status_code, response.text) == (200, "Invalid username or password")


def test_token_and_password_together_refused(sms_gateway, client):
    """A token header together with username and password is refused."""
    response = client.get(
        sms_gateway.iton_url,
        params={"cmd": "account", "username": "demo", "password": "demo-password"},
        headers={"Authorization": "ITON demo-token"},
    )
    assert response.text.startswith("Invalid request:")


def test_bad_credentials_send_nothing(sms_gateway, client):
    """A send with a wrong password takes no credit and counts no number."""
    response = client.get(
        sms_gateway.iton_url,
        params={
            "cmd": "sendSMS",
            "username": "demo",
            "password": "x",
            "to": NUMBERS[0],
            "sender": "A",
            "message": "m",
        },
    )
    assert response.text == "Invalid username or password"
    assert sms_gateway.credits() == 10**9
    assert not sms_gateway.stats.numbers


def test_credits_decrease_by_segments_times_recipients(sms_gateway_factory, client):
    """Credits fall by segments x recipients: 161 GSM-7 characters are 2 parts, an emoji text of 71 is 2."""
    gw = sms_gateway_factory(credits=100)
    send(gw, client, message="a" * 161)
    assert iton(gw, client, cmd="account").text == f"Remaining_Credits: {100 - 2 * 3}"
    send(gw, client, numbers=NUMBERS[:1], message="😀" * 36)
    assert gw.credits() == 100 - 6 - 2


def test_insufficient_credits(sms_gateway_factory, client):
    """A send that costs more than the credits left is refused whole and takes nothing."""
    gw = sms_gateway_factory(credits=2)
    assert send(gw, client).text == "Insufficient credits"
    assert gw.credits() == 2
    assert not gw.stats.numbers
    assert text_id(send(gw, client, numbers=NUMBERS[:2]))
    assert gw.credits() == 0


def test_set_credits_and_extra_account(sms_gateway, client):
    """Credits can be set, and a second account has its own password, token and balance."""
    sms_gateway.set_credits(5)
    assert iton(sms_gateway, client, cmd="account").text == "Remaining_Credits: 5"
    sms_gateway.add_account("other", "pw2", token="tok2", credits=7)
    headers = {"Authorization": "ITON tok2"}
    assert (
        client.get(sms_gateway.iton_url, params={"cmd": "account"}, headers=headers).text
        == "Remaining_Credits: 7"
    )
    assert sms_gateway.credits("other") == 7


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"to": ""}, "Invalid request: missing parameter to"),
        ({"message": ""}, "Invalid request: missing parameter message"),
        ({"sender": ""}, "Invalid request: missing parameter sender"),
        ({"sender": "TWELVECHARSX"}, "Invalid sender id"),
        ({"sender": "12345678901234567"}, "Invalid sender id"),
        ({"sender": "BAD-ID"}, "Invalid sender id"),
        ({"uniCode": "1"}, "Invalid request: uniCode must be 0 or 2"),
        ({"to": ",".join(["919812345678"] * 101)}, "Too many numbers: at most 100"),
        ({"to": "919812345678,12345"}, "Invalid number: 12345"),
        ({"to": "+919812345678"}, "Invalid number: +919812345678"),
    ],
)
def test_send_errors(sms_gateway, client, params, error):
    """Each malformed send gets its short plain-text error and sends nothing."""
    query = {
        "cmd": "sendSMS",
        "to": NUMBERS[0],
        "sender": "ITONAB",
        "message": "Hi",
        "uniCode": "0",
        **params,
    }
    response = iton(sms_gateway, client, **query)
    assert (response.status_code, response.text) == (200, error)
    assert not sms_gateway.stats.numbers
    assert sms_gateway.credits() == 10**9


def test_numeric_sender_and_hundred_numbers(sms_gateway, client):
    """A numeric sender id and exactly 100 numbers are accepted."""
    numbers = [f"9198{i:08d}" for i in range(100)]
    response = iton(
        sms_gateway, client, cmd="sendSMS", to=",".join(numbers), sender="123456789012345", message="m"
    )
    assert text_id(response)
    assert sum(sms_gateway.stats.numbers.values()) == 100


def test_json_form_partial_acceptance_of_invalid_numbers(sms_gateway_factory, client):
    """In the JSON form an invalid number just gets no id while the others are sent."""
    gw = sms_gateway_factory(iton_send_form="json")
    answer = send(gw, client, numbers=[NUMBERS[0], "12345", NUMBERS[1]]).json()
    assert sorted(answer.values()) == sorted(NUMBERS[:2])
    stats = gw.stats
    assert set(stats.numbers) == set(NUMBERS[:2])
    assert stats.numbers_refused == {"12345": 1}


def test_repeated_password_refused(sms_gateway, client):
    """A repeated password parameter is reported as an error and nothing is sent."""
    params = [
        ("cmd", "sendSMS"),
        ("username", "demo"),
        ("password", "demo-password"),
        ("password", "other"),
        ("to", NUMBERS[0]),
        ("sender", "ITONAB"),
        ("message", "m"),
    ]
    response = client.get(sms_gateway.iton_url, params=params)
    assert response.text == "Invalid request: repeated parameter password"
    assert not sms_gateway.stats.numbers


def test_unknown_and_missing_command(sms_gateway, client):
    """An unknown or missing cmd is a plain-text error, counted as iton.unknown."""
    assert iton(sms_gateway, client, cmd="nope").text == "Invalid request: unknown command nope"
    assert iton(sms_gateway, client).text == "Invalid request: missing parameter cmd"
    assert sms_gateway.stats.requests["iton.unknown"] == 2


def test_post_form_encoded(sms_gateway, client):
    """A POST with a form-encoded body is read like the query string."""
    body = {
        "cmd": "sendSMS",
        "username": "demo",
        "password": "demo-password",
        "to": NUMBERS[0],
        "sender": "ITONAB",
    }
    body["message"] = "posted & done"
    response = client.post(sms_gateway.iton_url, data=body)
    assert sms_gateway.message(text_id(response)).text == "posted & done"


def test_path_without_trailing_slash(sms_gateway, client):
    """The endpoint answers without its trailing slash too."""
    url = sms_gateway.iton_url.rstrip("/")
    response = client.get(url, params={"cmd": "account", "username": "demo", "password": "demo-password"})
    assert response.text.startswith("Remaining_Credits: ")


@pytest.mark.parametrize(
    "text",
    [
        "Tom & Jerry = 100% #1 ?x=y;z",
        "Line one\r\nLine two\n\"double\" and 'single' quotes",
        "Emoji 😀👍🏽 and ünïcödé — “curly” €",
        "plus+sign and%20not-decoded-twice %41 %",
        " leading and trailing spaces ",
    ],
)
def test_message_round_trips_byte_for_byte(sms_gateway, client, text):
    """Special characters in the message arrive and come back in message_status exactly as sent."""
    message_id = text_id(send(sms_gateway, client, message=text))
    assert sms_gateway.message(message_id).text == text
    status = iton(sms_gateway, client, cmd="message_status", ids=message_id).json()
    assert status[message_id]["message"] == text


def test_plus_in_raw_query_is_space(sms_gateway, client):
    """In a hand-written query string '+' means a space and '%2B' a plus."""
    query = "cmd=sendSMS&username=demo&password=demo-password&to=919812345678&sender=ITONAB&message=a+b%2Bc"
    response = client.get(f"{sms_gateway.iton_url}?{query}")
    assert sms_gateway.message(text_id(response)).text == "a b+c"


def test_message_status_moves_on_the_simulated_clock(sms_gateway_factory, client):
    """Statuses go QUEUED, SENT, DELIVIRED as the gateway's clock moves past the delays."""
    gw = sms_gateway_factory(status_delays=(10, 10))
    message_id = text_id(send(gw, client))
    seen = []
    for step in (0, 10, 10):
        gw.advance_clock(step)
        answer = iton(gw, client, cmd="message_status", ids=message_id).json()
        seen.append(set(answer[message_id]["phoneNumberWithRespectiveStatus"].values()))
    assert seen == [{"QUEUED"}, {"SENT"}, {"DELIVIRED"}]


def test_message_status_moves_in_real_time(sms_gateway_factory, client):
    """With short delays a message reaches its final status by itself, passing through the stages in order."""
    gw = sms_gateway_factory(status_delays=(0.02, 0.02))
    message_id = text_id(send(gw, client, numbers=NUMBERS[:1]))
    order = ["QUEUED", "SENT", "DELIVIRED"]
    seen = []
    for _ in range(1000):
        answer = iton(gw, client, cmd="message_status", ids=message_id).json()
        word = answer[message_id]["phoneNumberWithRespectiveStatus"][NUMBERS[0]]
        if not seen or seen[-1] != word:
            seen.append(word)
        if word == "DELIVIRED":
            break
        time.sleep(0.005)
    assert seen[-1] == "DELIVIRED"
    assert [order.index(w) for w in seen] == sorted(order.index(w) for w in seen)


def test_message_status_shape_and_unknown_ids(sms_gateway_factory, client):
    """message_status is keyed by id with the documented fields, and unknown ids are left out."""
    gw = sms_gateway_factory(status_delays=(0, 0))
    message_id = text_id(send(gw, client))
    answer = iton(gw, client, cmd="message_status", ids=f"{message_id},ffffffffffffffffffffffff").json()
    assert list(answer) == [message_id]
    entry = answer[message_id]
    assert entry["phoneNumberWithRespectiveStatus"] == dict.fromkeys(NUMBERS, "DELIVIRED")
    assert (entry["message"], entry["sender_Id"], entry["user_Id"]) == ("Hello", "ITONAB", "demo")
    assert re.fullmatch(r"[A-Z][a-z]{2} \d{1,2}, \d{4} \d{1,2}:\d{2}:\d{2} [AP]M", entry["sending_Date"])


def test_message_status_errors(sms_gateway, client):
    """message_status wants ids, at most 100 of them."""
    assert iton(sms_gateway, client, cmd="message_status").text == "Invalid request: missing parameter ids"
    too_many = ",".join(f"{i:024x}" for i in range(101))
    assert iton(sms_gateway, client, cmd="message_status", ids=too_many).text == "Too many ids: at most 100"


@pytest.mark.parametrize(("rates", "word"), [((1.0, 0.0), "UNDELIVERED"), ((0.0, 1.0), "FAILED")])
def test_final_status_rates(sms_gateway_factory, client, rates, word):
    """undelivered_rate and failed_rate decide the final word."""
    gw = sms_gateway_factory(status_delays=(0, 0), undelivered_rate=rates[0], failed_rate=rates[1])
    message_id = text_id(send(gw, client))
    answer = iton(gw, client, cmd="message_status", ids=message_id).json()
    assert set(answer[message_id]["phoneNumberWithRespectiveStatus"].values()) == {word}


def test_final_status_mix_is_seeded(sms_gateway_factory, client):
    """A mixed outcome is the same for the same message, number and seed on every look-up."""
    gw = sms_gateway_factory(
        status_delays=(0, 0), undelivered_rate=0.3, failed_rate=0.3, iton_send_form="json"
    )
    numbers = [f"9198{i:08d}" for i in range(100)]
    ids = list(send(gw, client, numbers=numbers).json())
    first = iton(gw, client, cmd="message_status", ids=",".join(ids)).json()
    again = iton(gw, client, cmd="message_status", ids=",".join(ids)).json()
    assert first == again
    words = [next(iter(v["phoneNumberWithRespectiveStatus"].values())) for v in first.values()]
    assert {"DELIVIRED", "UNDELIVERED", "FAILED"} <= set(words)


def test_message_status_only_for_own_account(sms_gateway, client):
    """Another account's message ids are unknown to an account."""
    message_id = text_id(send(sms_gateway, client))
    sms_gateway.add_account("other", "pw")
    response = client.get(
        sms_gateway.iton_url,
        params={"cmd": "message_status", "username": "other", "password": "pw", "ids": message_id},
    )
    assert response.json() == {}


def test_check_dnd(sms_gateway_factory, client):
    """check_DNDnumber maps each number as sent to whether it is on the list."""
    gw = sms_gateway_factory(dnd_numbers=["919812345678"])
    response = iton(gw, client, cmd="check_DNDnumber", phoneNumbers="919812345678,447700900123")
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"919812345678": True, "447700900123": False}
    gw.set_dnd(["+447700900123"])
    assert gw.dnd_numbers == {"447700900123"}
    answer = json.loads(
        iton(gw, client, cmd="check_DNDnumber", phoneNumbers="919812345678,447700900123").text
    )
    assert answer == {"919812345678": False, "447700900123": True}
    assert iton(gw, client, cmd="check_DNDnumber").text == "Invalid request: missing parameter phoneNumbers"


def test_dnd_allow_sends(sms_gateway_factory, client):
    """By default a do-not-disturb number is sent like any other."""
    gw = sms_gateway_factory(dnd_numbers=[NUMBERS[0]])
    assert text_id(send(gw, client))
    assert gw.stats.numbers[NUMBERS[0]] == 1


def test_dnd_omit(sms_gateway_factory, client):
    """With dnd_action='omit' the request succeeds and the number is neither sent nor charged."""
    gw = sms_gateway_factory(dnd_numbers=[NUMBERS[0]], dnd_action="omit")
    message_id = text_id(send(gw, client))
    assert gw.message(message_id).numbers == tuple(NUMBERS[1:])
    assert gw.credits() == 10**9 - 2
    gw.iton_send_form = "json"
    assert sorted(send(gw, client).json().values()) == sorted(NUMBERS[1:])


def test_dnd_refuse(sms_gateway_factory, client):
    """With dnd_action='refuse' the text form refuses the whole request and the JSON form gives no id."""
    gw = sms_gateway_factory(dnd_numbers=[NUMBERS[0]], dnd_action="refuse")
    assert send(gw, client).text == f"DND number: {NUMBERS[0]}"
    assert not gw.stats.numbers
    gw.iton_send_form = "json"
    assert sorted(send(gw, client).json().values()) == sorted(NUMBERS[1:])


def test_custom_path_and_credentials(sms_gateway_factory, client):
    """The endpoint path and the default account's credentials are options."""
    gw = sms_gateway_factory(iton_path="/sms/", username="u", password="p", token=None)
    assert gw.iton_url.endswith("/sms/")
    assert iton(gw, client, cmd="account").text.startswith("Remaining_Credits")
    assert client.get(
        gw.iton_url, params={"cmd": "account"}, headers={"Authorization": "ITON demo-token"}
    ).text == ("Invalid username or password")


def test_extra_parameters_are_recorded(sms_gateway_factory, client):
    """Query parameters ITON does not own (DLT ids) are kept on each stored message and counted."""
    gw = sms_gateway_factory(iton_send_form="json")
    dlt = {"templateid": "1107161234567890123", "entityid": "1101234567890123456"}
    answer = send(gw, client, numbers=NUMBERS[:2], **dlt).json()
    for message_id in answer:
        assert gw.message(message_id).params == dlt
    gw.iton_send_form = "text"
    plain = gw.message(text_id(send(gw, client, numbers=NUMBERS[:1])))
    assert plain.params == {}
    stats = gw.stats
    assert stats.params == {"templateid=1107161234567890123": 1, "entityid=1101234567890123456": 1}


def test_each_request_keeps_its_own_text(sms_gateway, client):
    """Different texts in different requests (a personalised campaign) are each stored and reported."""
    texts = {number: f"Hi {i}, your order {100 + i} has shipped" for i, number in enumerate(NUMBERS)}
    ids = {
        number: text_id(send(sms_gateway, client, numbers=[number], message=text))
        for number, text in texts.items()
    }
    for number, message_id in ids.items():
        assert sms_gateway.message(message_id).text == texts[number]
    status = iton(sms_gateway, client, cmd="message_status", ids=",".join(ids.values())).json()
    assert {number: status[message_id]["message"] for number, message_id in ids.items()} == texts


def test_received_counts_numbers_of_refused_requests_too(sms_gateway_factory, client):
    """Received counts every number of an authenticated send carried out; accepted only those charged."""
    gw = sms_gateway_factory(credits=2)
    send(gw, client)
    send(gw, client, numbers=NUMBERS[:2])
    send(gw, client, numbers=[NUMBERS[0], "12345"])
    stats = gw.stats
    assert (stats.received, stats.accepted) == (7, 2)
    assert stats.accepted_by_account == {"demo": 2}
