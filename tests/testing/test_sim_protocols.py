"""A third gateway is one protocol class and one registration call: a toy gateway proves it over loopback."""

from __future__ import annotations

from typing import ClassVar

import httpx
import pytest
from toy_gateway import ToyProtocol

from sms_async.testing import (
    Fault,
    SimulatedGateway,
    SimulatedProtocol,
    register_protocol,
    registered_protocols,
    unregister_protocol,
)

NUMBERS = ["+15550000001", "+15550000002", "+15550000003"]


class Unlisted(ToyProtocol):
    """The toy under a name that nobody registers or declares by entry point."""

    name = "unlisted"
    operations = frozenset({"unlisted.send", "unlisted.status"})


@pytest.fixture
def toy_registered():
    register_protocol(ToyProtocol)
    yield ToyProtocol
    unregister_protocol("toy")


@pytest.fixture
def client():
    with httpx.Client(timeout=10) as c:
        yield c


def toy_send(
    gw: SimulatedGateway, client: httpx.Client, numbers=NUMBERS, text="Hello", name="toy"
) -> httpx.Response:
    body = {"user": gw.username, "key": gw.password, "to": numbers, "text": text}
    return client.post(gw.url(name) + "/toy/v1/messages", json=body)


def toy_status(gw: SimulatedGateway, client: httpx.Client, message_id: str) -> httpx.Response:
    params = {"user": gw.username, "key": gw.password, "id": message_id}
    return client.get(gw.url("toy") + "/toy/v1/status", params=params)


def test_registered_toy_gateway_sends_and_reports(toy_registered, sms_gateway_factory, client):
    """Once registered, the toy is served beside ITON and ItecPay, sharing their credits and counters."""
    gw = sms_gateway_factory(status_delays=(10, 10), credits=100)
    assert gw.protocols == ("iton", "itecpay", "toy")
    assert gw.url("toy") == gw.origin
    response = toy_send(gw, client)
    assert response.status_code == 201
    message_id = response.json()["id"]
    assert gw.message(message_id).numbers == tuple(NUMBERS)
    assert gw.message(message_id).gateway == "toy"
    assert gw.credits() == 100 - len(NUMBERS)
    assert toy_status(gw, client, message_id).json()["states"] == dict.fromkeys(NUMBERS, "queued")
    gw.advance_clock(20)
    assert toy_status(gw, client, message_id).json()["states"] == dict.fromkeys(NUMBERS, "delivered")
    toy_send(gw, client, NUMBERS[:1])
    stats = gw.stats
    assert stats.requests == {"toy.send": 2, "toy.status": 2}
    assert stats.duplicate_numbers() == {NUMBERS[0]: 2}
    assert (stats.received, stats.accepted) == (4, 4)
    iton = client.get(gw.iton_url, params={"cmd": "account", "username": "demo", "password": "demo-password"})
    assert iton.text == "Remaining_Credits: 96"


def test_toy_gateway_takes_faults_by_operation_name(toy_registered, sms_gateway_factory, client):
    """Faults limited to the toy's operations hit them and leave the other gateways alone."""
    gw = sms_gateway_factory(faults=[Fault("status_503", on_requests={1}, operations={"toy.send"})])
    assert toy_send(gw, client).status_code == 503
    assert toy_send(gw, client).status_code == 201
    assert gw.stats.faults == {"status_503": 1}
    assert gw.stats.accepted == len(NUMBERS)


def test_toy_gateway_on_its_own(client):
    """protocols=[...] serves only the given protocols, with no registration at all."""
    assert Unlisted not in registered_protocols()
    with SimulatedGateway(protocols=[Unlisted(answer_form="verbose")]) as gw:
        assert gw.protocols == ("unlisted",)
        assert toy_send(gw, client, name="unlisted").json()["to"] == NUMBERS
        assert gw.stats.requests == {"unlisted.send": 1}
        assert client.get(gw.origin + "/ItonSMSAPI/smsService/api/").status_code == 404
        with pytest.raises(ValueError, match="serves no protocol named 'iton'"):
            _ = gw.iton_url
        gw.set_answer_form("unlisted", "plain")
        assert "to" not in toy_send(gw, client, name="unlisted").json()
        assert gw.answer_form("unlisted") == "plain"


def test_toy_paths_are_options(client):
    """A protocol's paths can be moved per gateway by role."""
    toy = ToyProtocol(paths={"send": "/v2/send"})
    with SimulatedGateway(protocols=[toy]) as gw:
        body = {"user": "demo", "key": "demo-password", "to": NUMBERS, "text": "x"}
        assert client.post(gw.origin + "/v2/send", json=body).status_code == 201
        assert client.post(gw.origin + "/toy/v1/messages", json=body).status_code == 404
        assert gw.protocol("toy").paths == {"send": "/v2/send", "status": "/toy/v1/status"}


def test_fault_for_an_unregistered_gateway_is_checked_by_the_gateway():
    """A fault naming an unregistered gateway's operation is accepted, then refused where it is not served."""
    fault = Fault("status_503", operations={"unlisted.send"})
    SimulatedGateway(protocols=[Unlisted], faults=[fault])
    with pytest.raises(ValueError, match="does not serve"):
        SimulatedGateway(faults=[fault])
    gw = SimulatedGateway()
    with pytest.raises(ValueError, match="does not serve"):
        gw.set_faults([fault])


def test_fault_names_of_a_registered_gateway_are_checked(toy_registered):
    """Once the toy is registered, a fault naming an operation it lacks is refused when built."""
    with pytest.raises(ValueError, match=r"unknown operation 'toy\.nope'"):
        Fault("status_503", operations={"toy.nope"})
    with pytest.raises(ValueError, match=r"gateway\.operation"):
        Fault("status_503", operations={"sendSMS"})


def test_registration_rules(toy_registered):
    """A name is registered once unless replaced; reserved names, stray operations and gaps are refused."""
    assert register_protocol(ToyProtocol) is ToyProtocol  # the same class again is fine

    class OtherToy(ToyProtocol):
        pass

    with pytest.raises(ValueError, match="already registered"):
        register_protocol(OtherToy)
    register_protocol(OtherToy, replace=True)
    assert OtherToy in registered_protocols()

    class Reserved(ToyProtocol):
        name = "http"

    class Stray(ToyProtocol):
        name = "stray"

    class Unfinished(SimulatedProtocol):
        name = "unfinished"
        operations = frozenset({"unfinished.send"})
        default_paths: ClassVar[dict[str, str]] = {"send": "/u"}

    with pytest.raises(ValueError, match="reserved"):
        register_protocol(Reserved)
    with pytest.raises(ValueError, match=r"must start with 'stray\.'"):
        register_protocol(Stray)
    with pytest.raises(ValueError, match=r"must implement read\(\)"):
        register_protocol(Unfinished)
    with pytest.raises(TypeError):
        register_protocol(dict)  # type: ignore[type-var]
    with pytest.raises(ValueError, match="no gateway protocol named 'nope'"):
        unregister_protocol("nope")


def test_clashing_paths_and_names_are_refused():
    """Two protocols on one path, two of one name, or a path under /_simulator/ are refused when built."""
    with pytest.raises(ValueError, match="served by both"):
        SimulatedGateway(
            itecpay_send_path="/toy/v1/messages", protocols=[*registered_protocols(), ToyProtocol]
        )
    with pytest.raises(ValueError, match="two protocols are named 'toy'"):
        SimulatedGateway(protocols=[ToyProtocol, ToyProtocol(paths={"send": "/a", "status": "/b"})])
    with pytest.raises(ValueError, match="belong to the simulator"):
        SimulatedGateway(protocols=[ToyProtocol(paths={"send": "/_simulator/send"})])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"paths": {"inbox": "/x"}}, "unknown path role"),
        ({"paths": {"send": "no-slash"}}, "must start with '/'"),
        ({"answer_form": "xml"}, "answer form must be one of"),
    ],
)
def test_protocol_options_are_checked(options, message):
    """Unknown path roles, relative paths and unknown answer forms are refused when a protocol is built."""
    with pytest.raises(ValueError, match=message):
        ToyProtocol(**options)


def test_options_by_gateway_name(client):
    """answer_forms= and paths= configure any protocol by name, as the built-ins' shorthands do."""
    with SimulatedGateway(
        protocols=[ToyProtocol, Unlisted],
        answer_forms={"toy": "verbose"},
        paths={"unlisted": {"send": "/u/send", "status": "/u/status"}},
    ) as gw:
        assert gw.answer_form("toy") == "verbose"
        assert gw.answer_form("unlisted") == "plain"
        assert gw.protocol("unlisted").paths["send"] == "/u/send"
        assert toy_send(gw, client).json()["to"] == NUMBERS
    shorthand = SimulatedGateway(iton_send_form="json", itecpay_send_path="/v2/send")
    by_name = SimulatedGateway(answer_forms={"iton": "json"}, paths={"itecpay": {"send": "/v2/send"}})
    for gw in (shorthand, by_name):
        assert gw.iton_send_form == "json"
        assert gw.protocol("itecpay").paths["send"] == "/v2/send"


def test_a_protocol_declares_its_own_shorthands():
    """A protocol's declared shorthand is a keyword of SimulatedGateway; an undeclared one is refused."""
    gw = SimulatedGateway(protocols=[ToyProtocol], toy_send_form="verbose")
    assert gw.answer_form("toy") == "verbose"
    with pytest.raises(TypeError, match="unexpected keyword argument 'toy_colour'"):
        SimulatedGateway(toy_colour="blue")
    with pytest.raises(ValueError, match=r"toy_send_form must be one of \('plain', 'verbose'\)"):
        SimulatedGateway(protocols=[ToyProtocol], toy_send_form="loud")
    with pytest.raises(ValueError, match="'nope', which is neither registered nor given"):
        SimulatedGateway(answer_forms={"nope": "json"})
    with pytest.raises(ValueError, match="answer form must be one of"):
        SimulatedGateway(protocols=[ToyProtocol], answer_forms={"toy": "loud"})
