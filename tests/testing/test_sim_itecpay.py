"""The simulated ItecPay gateway, spoken to over real sockets with raw httpx."""

from __future__ import annotations

import re

import httpx
import pytest

RECIPIENTS = ["+919812345678", "+447700900123"]
ID = re.compile(r"[0-9a-f]{24}")


@pytest.fixture
def client():
    with httpx.Client(timeout=10) as c:
        yield c


def send(gw, client, to=RECIPIENTS, message="Hello", **fields):
    body = {
        "username": gw.username,
        "password": gw.password,
        "recipients": ",".join(to),
        "sender": "ITONAB",
        "message": message,
        **fields,
    }
    return client.post(gw.itecpay_send_url, json=body)


def status(gw, client, message_id, **fields):
    body = {"username": gw.username, "password": gw.password, "messageid": message_id, **fields}
    return client.post(gw.itecpay_status_url, json=body)


def test_urls(sms_gateway):
    """itecpay_url is the origin and the default paths sit under it."""
    assert sms_gateway.itecpay_url == f"http://127.0.0.1:{sms_gateway.port}"
    assert sms_gateway.itecpay_send_url == sms_gateway.itecpay_url + "/api/sms/send"
    assert sms_gateway.itecpay_status_url == sms_gateway.itecpay_url + "/api/sms/status"


def test_send_single_form(sms_gateway, client):
    """A single-form send answers status 200 with one message id for the whole request."""
    response = send(sms_gateway, client)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert (body["status"], body["description"]) == (200, "Message accepted")
    assert ID.fullmatch(body["messageid"])
    assert sms_gateway.message(body["messageid"]).numbers == tuple(RECIPIENTS)
    assert sms_gateway.credits() == 10**9 - 2


def test_send_per_recipient_form(sms_gateway_factory, client):
    """A per-recipient send lists every recipient with its own id, or status 400 and a reason."""
    gw = sms_gateway_factory(itecpay_send_form="per_recipient")
    body = send(gw, client, to=[RECIPIENTS[0], "+1234", RECIPIENTS[1]]).json()
    assert body["status"] == 200
    first, bad, last = body["messages"]
    assert (first["recipient"], first["status"]) == (RECIPIENTS[0], 200)
    assert ID.fullmatch(first["messageid"])
    assert bad == {"recipient": "+1234", "status": 400, "description": "Invalid number"}
    assert (last["recipient"], last["status"]) == (RECIPIENTS[1], 200)
    assert first["messageid"] != last["messageid"]
    assert gw.stats.numbers == dict.fromkeys(RECIPIENTS, 1)
    assert gw.stats.numbers_refused == {"+1234": 1}


def test_per_recipient_with_no_valid_number(sms_gateway_factory, client):
    """A per-recipient send with no valid number is an HTTP 400 that still lists each recipient."""
    gw = sms_gateway_factory(itecpay_send_form="per_recipient")
    response = send(gw, client, to=["919812345678"])
    assert response.status_code == 400
    assert response.json()["messages"] == [
        {"recipient": "919812345678", "status": 400, "description": "Invalid number"}
    ]


@pytest.mark.parametrize(
    "fields", [{"password": "wrong"}, {"username": "nobody"}, {"password": None}, {"username": 5}]
)
def test_bad_credentials(sms_gateway, client, fields):
    """Bad credentials are an HTTP 401 with status 401 in the body, and nothing is sent."""
    response = send(sms_gateway, client, **fields)
    assert response.status_code == 401
    assert response.json() == {
        "status": 401,
        "description": "Authentication failed: invalid username or password",
    }
    assert not sms_gateway.stats.numbers


def test_insufficient_balance(sms_gateway_factory, client):
    """No balance is an HTTP 200 whose body says status 400, and nothing is taken."""
    gw = sms_gateway_factory(credits=1)
    response = send(gw, client)
    assert response.status_code == 200
    assert response.json() == {"status": 400, "description": "Insufficient balance"}
    assert gw.credits() == 1


@pytest.mark.parametrize(
    ("fields", "description"),
    [
        ({"recipients": ""}, "Missing field: recipients"),
        ({"recipients": ["+919812345678"]}, "Invalid field: recipients must be a comma-separated string"),
        ({"sender": ""}, "Missing field: sender"),
        ({"sender": "Way-too-long-sender"}, "Invalid sender"),
        ({"message": ""}, "Missing field: message"),
        ({"recipients": "+919812345678,919812345679"}, "Invalid number: 919812345679"),
        ({"recipients": ",".join(["+919812345678"] * 101)}, "Too many recipients: at most 100"),
    ],
)
def test_request_errors(sms_gateway, client, fields, description):
    """Each malformed send is an HTTP 400 with status 400 and the reason."""
    response = send(sms_gateway, client, **fields)
    assert response.status_code == 400
    assert response.json() == {"status": 400, "description": description}
    assert not sms_gateway.stats.numbers


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"\xff\xfe\x00", b""])
def test_malformed_json(sms_gateway, client, body):
    """A body that is not a JSON object is an HTTP 400 with status 400."""
    response = client.post(
        sms_gateway.itecpay_send_url, content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["status"] == 400
    assert response.json()["description"].startswith("Malformed JSON")


def test_get_not_allowed(sms_gateway, client):
    """ItecPay's paths only take POST."""
    response = client.get(sms_gateway.itecpay_send_url)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_message_round_trips(sms_gateway, client):
    """A message with quotes, CRLF, emoji and JSON escapes arrives exactly as sent."""
    text = 'He said "hi" \\ & 100% #1\r\n😀 \u2028 end'
    message_id = send(sms_gateway, client, message=text).json()["messageid"]
    assert sms_gateway.message(message_id).text == text


def test_status_letters_move_on_the_simulated_clock(sms_gateway_factory, client):
    """Status letters go Q, P, S, D as the gateway's clock moves past the delays."""
    gw = sms_gateway_factory(status_delays=(10, 10))
    message_id = send(gw, client).json()["messageid"]
    letters = []
    for step in (0, 5, 5, 10):
        gw.advance_clock(step)
        body = status(gw, client, message_id).json()
        assert (body["status"], body["description"], body["messageid"]) == (200, "OK", message_id)
        letters.append(body["sms_status"])
    assert letters == ["Q", "P", "S", "D"]


@pytest.mark.parametrize(("rates", "letter"), [((1.0, 0.0), "U"), ((0.0, 1.0), "E")])
def test_final_letter_rates(sms_gateway_factory, client, rates, letter):
    """undelivered_rate and failed_rate give U and E."""
    gw = sms_gateway_factory(status_delays=(0, 0), undelivered_rate=rates[0], failed_rate=rates[1])
    message_id = send(gw, client).json()["messageid"]
    assert status(gw, client, message_id).json()["sms_status"] == letter


def test_status_unknown_id(sms_gateway, client):
    """An unknown message id is an HTTP 200 whose body says status 400."""
    response = status(sms_gateway, client, "ffffffffffffffffffffffff")
    assert response.status_code == 200
    assert response.json() == {"status": 400, "description": "Unknown message id"}


def test_status_errors(sms_gateway, client):
    """The status call checks credentials and wants a message id."""
    assert status(sms_gateway, client, "x", password="wrong").status_code == 401
    response = status(sms_gateway, client, None)
    assert (response.status_code, response.json()["description"]) == (400, "Missing field: messageid")


def test_iton_ids_unknown_to_itecpay(sms_gateway, client):
    """A message sent through ITON is not known to ItecPay's status call."""
    response = client.get(
        sms_gateway.iton_url,
        params={"cmd": "sendSMS", "username": "demo", "password": "demo-password", "to": "919812345678"}
        | {"sender": "ITONAB", "message": "m"},
    )
    message_id = response.text.rsplit(" ", 1)[1]
    assert status(sms_gateway, client, message_id).json()["description"] == "Unknown message id"


def test_dnd_actions(sms_gateway_factory, client):
    """DND numbers: 'refuse' fails the single form, 'omit' drops them, per-recipient marks them 400."""
    gw = sms_gateway_factory(dnd_numbers=["919812345678"], dnd_action="refuse")
    response = send(gw, client)
    assert (response.status_code, response.json()["description"]) == (
        400,
        "Number in DND list: +919812345678",
    )
    gw.set_dnd(["919812345678"], action="omit")
    message_id = send(gw, client).json()["messageid"]
    assert gw.message(message_id).numbers == (RECIPIENTS[1],)
    gw.itecpay_send_form = "per_recipient"
    entries = send(gw, client).json()["messages"]
    assert entries[0] == {"recipient": RECIPIENTS[0], "status": 400, "description": "Number in DND list"}
    assert entries[1]["status"] == 200


def test_custom_paths(sms_gateway_factory, client):
    """The send and status paths are options."""
    gw = sms_gateway_factory(itecpay_send_path="/v2/send", itecpay_status_path="/v2/status")
    message_id = send(gw, client).json()["messageid"]
    assert gw.itecpay_send_url.endswith("/v2/send")
    assert status(gw, client, message_id).json()["status"] == 200
    assert client.post(gw.itecpay_url + "/api/sms/send", json={}).status_code == 404


def test_extra_fields_are_recorded(sms_gateway_factory, client):
    """JSON fields ItecPay does not own (DLT ids) are kept on each stored message and counted."""
    gw = sms_gateway_factory(itecpay_send_form="per_recipient")
    dlt = {"dltContentId": "1107161234567890123", "dltPrincipalEntityId": "1101234567890123456"}
    entries = send(gw, client, **dlt).json()["messages"]
    assert [gw.message(entry["messageid"]).params for entry in entries] == [dlt, dlt]
    assert gw.stats.params == {f"{name}={value}": 1 for name, value in dlt.items()}


@pytest.mark.parametrize("value", [5, None, ["x"], {"a": "b"}])
def test_extra_fields_must_be_text(sms_gateway, client, value):
    """An extra field whose value is not a string is an HTTP 400 naming it, and nothing is sent."""
    response = send(sms_gateway, client, templateid=value)
    assert response.status_code == 400
    assert response.json() == {"status": 400, "description": "Invalid field: templateid must be a string"}
    assert not sms_gateway.stats.numbers
    assert sms_gateway.credits() == 10**9


def test_each_request_keeps_its_own_text(sms_gateway, client):
    """Different texts in different requests are each stored as sent."""
    texts = {number: f"Hello {number[-4:]} € ünïcödé {i}" for i, number in enumerate(RECIPIENTS)}
    ids = {
        number: send(sms_gateway, client, to=[number], message=text).json()["messageid"]
        for number, text in texts.items()
    }
    assert {number: sms_gateway.message(message_id).text for number, message_id in ids.items()} == texts
    assert {sms_gateway.message(message_id).numbers for message_id in ids.values()} == {
        (n,) for n in RECIPIENTS
    }
