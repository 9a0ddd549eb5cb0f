"""The simulator's own endpoint (/_simulator/stats, reset), SimulatorClient, and counters for rate checks."""

from __future__ import annotations

import httpx
import pytest

from sms_async.testing import Fault, GatewayStats, Request, SimulatorClient, SimulatorStats
from sms_async.testing._admin import SimulatorAdmin

NUMBERS = ["919800000001", "919800000002", "919800000003"]


@pytest.fixture
def client():
    with httpx.Client(timeout=10) as c:
        yield c


def send(gw, client, numbers, *, username="demo", password="demo-password", **extra):  # noqa: S107
    params = {
        "cmd": "sendSMS",
        "username": username,
        "password": password,
        "to": ",".join(numbers),
        "sender": "ITONAB",
        "message": "Hello",
        **extra,
    }
    return client.get(gw.iton_url, params=params)


def test_stats_document(sms_gateway, client):
    """GET /_simulator/stats answers the counters: totals, duplicates, accounts and their series, params."""
    sms_gateway.add_account("shop", "shop-pw")
    send(sms_gateway, client, NUMBERS, templateid="42")
    send(sms_gateway, client, NUMBERS[:1])
    send(sms_gateway, client, NUMBERS[1:], username="shop", password="shop-pw")
    send(sms_gateway, client, ["919800000004", "12345"])
    document = client.get(sms_gateway.origin + "/_simulator/stats").json()
    assert document["requests"] == {"iton.sendSMS": 4}
    assert (document["received"], document["accepted"], document["refused"]) == (8, 6, 2)
    assert document["numbers_tracked"] is True
    assert document["duplicates"] == {NUMBERS[0]: 2, NUMBERS[1]: 2, NUMBERS[2]: 2}
    assert document["params"] == {"templateid=42": 1}
    accounts = document["accounts"]
    assert {name: entry["accepted"] for name, entry in accounts.items()} == {"demo": 4, "shop": 2}
    assert [count for _, count in accounts["demo"]["series"]] == [3, 1]
    assert [count for _, count in accounts["shop"]["series"]] == [2]
    assert "numbers" not in document
    assert "max_in_window" not in document


def test_stats_window_and_numbers(sms_gateway, client):
    """?window= adds the busiest window's count, per account and for all; ?numbers=1 adds every number."""
    sms_gateway.add_account("shop", "shop-pw")
    send(sms_gateway, client, NUMBERS)
    send(sms_gateway, client, NUMBERS[:2], username="shop", password="shop-pw")
    url = sms_gateway.origin + "/_simulator/stats"
    document = client.get(url, params={"window": "60", "numbers": "1"}).json()
    assert document["window"] == 60.0
    assert document["max_in_window"] == 5
    assert document["accounts"]["demo"]["max_in_window"] == 3
    assert document["accounts"]["shop"]["max_in_window"] == 2
    assert document["numbers"] == {NUMBERS[0]: 2, NUMBERS[1]: 2, NUMBERS[2]: 1}


def test_stats_texts(sms_gateway, client):
    """?texts=1 adds, for each number of a stored message, the text and extra parameters it got; the client
    reads them as stats(texts=True).texts.
    """  # noqa: D205
    send(sms_gateway, client, NUMBERS[:2], templateid="42")
    send(sms_gateway, client, NUMBERS[:1], message="Hi again")
    url = sms_gateway.origin + "/_simulator/stats"
    assert "texts" not in client.get(url).json()
    assert client.get(url, params={"texts": "1"}).json()["texts"] == {
        NUMBERS[0]: [{"text": "Hello", "params": {"templateid": "42"}}, {"text": "Hi again", "params": {}}],
        NUMBERS[1]: [{"text": "Hello", "params": {"templateid": "42"}}],
    }
    with SimulatorClient(sms_gateway.origin) as simulator:
        assert simulator.stats().texts is None
        assert simulator.stats(texts=True).texts == {
            NUMBERS[0]: [("Hello", {"templateid": "42"}), ("Hi again", {})],
            NUMBERS[1]: [("Hello", {"templateid": "42"})],
        }


def test_stats_texts_of_a_simulator_that_keeps_no_messages(sms_gateway_factory, client):
    """A simulator that stores no messages cannot say which texts it got: a 409 that says so."""
    gw = sms_gateway_factory(store_messages=False)
    send(gw, client, NUMBERS)
    response = client.get(gw.origin + "/_simulator/stats", params={"texts": "1"})
    assert response.status_code == 409
    assert "keeps no messages" in response.json()["error"]
    with SimulatorClient(gw.origin) as simulator, pytest.raises(RuntimeError, match="HTTP 409"):
        simulator.stats(texts=True)


def test_own_endpoint_is_neither_counted_nor_faulted(sms_gateway_factory, client):
    """The simulator's own requests take no fault and are not counted as gateway requests."""
    gw = sms_gateway_factory(faults=[Fault("status_503", rate=1.0)])
    assert send(gw, client, NUMBERS).status_code == 503
    for _ in range(3):
        assert client.get(gw.origin + "/_simulator/stats").status_code == 200
    assert gw.stats.requests == {"iton.sendSMS": 1}
    assert gw.stats.faults == {"status_503": 1}


def test_reset(sms_gateway_factory, client):
    """POST /_simulator/reset zeroes the counters and restarts fault request numbers."""
    gw = sms_gateway_factory(faults=[Fault("status_503", on_requests={1}, operations={"iton.sendSMS"})])
    assert send(gw, client, NUMBERS).status_code == 503
    send(gw, client, NUMBERS)
    assert client.post(gw.origin + "/_simulator/reset").json() == {"reset": True}
    stats = gw.stats
    assert (stats.requests, stats.numbers, stats.accepted, stats.received) == ({}, {}, 0, 0)
    assert (stats.accepted_by_account, stats.accepted_series, stats.faults) == ({}, {}, {})
    assert send(gw, client, NUMBERS).status_code == 503


@pytest.mark.parametrize(
    ("method", "path", "params", "status"),
    [
        ("POST", "/_simulator/stats", {}, 405),
        ("GET", "/_simulator/reset", {}, 405),
        ("GET", "/_simulator/stats", {"window": "0"}, 400),
        ("GET", "/_simulator/stats", {"window": "soon"}, 400),
        ("GET", "/_simulator/stats", {"window": "inf"}, 400),
        ("GET", "/_simulator/stats", {"since": "1"}, 400),
        ("GET", "/_simulator/nope", {}, 404),
    ],
)
def test_own_endpoint_refusals(sms_gateway, client, method, path, params, status):
    """A wrong method, a bad window, an unknown parameter or an unknown path is refused with its status."""
    response = client.request(method, sms_gateway.origin + path, params=params)
    assert response.status_code == status
    if status == 405:
        assert response.headers["allow"] == ("GET" if path.endswith("stats") else "POST")


@pytest.mark.parametrize(("client_host", "status"), [("192.0.2.7", 403), (None, 403), ("::1", None)])
def test_own_endpoint_answers_loopback_only(client_host, status):
    """A client that is not on loopback (or unknown) is refused with a 403 before anything is read."""
    admin = SimulatorAdmin(reset=lambda: None)
    request = Request("GET", "/_simulator/stats", "", {}, b"", True, client_host)
    error = admin.read(request).error
    assert (error.status if error is not None else None) == status


def test_simulator_client(sms_gateway, client):
    """SimulatorClient reads the counters (numbers on request) and resets them."""
    send(sms_gateway, client, NUMBERS)
    send(sms_gateway, client, NUMBERS[:1], templateid="7")
    with SimulatorClient(sms_gateway.origin) as simulator:
        stats = simulator.stats()
        assert isinstance(stats, SimulatorStats)
        assert (stats.received, stats.accepted, stats.refused) == (4, 4, 0)
        assert stats.duplicates == {NUMBERS[0]: 2}
        assert stats.accepted_by_account == {"demo": 4}
        assert [count for _, count in stats.accepted_series["demo"]] == [3, 1]
        assert stats.params == {"templateid=7": 1}
        assert stats.requests == {"iton.sendSMS": 2}
        assert stats.numbers is None
        assert simulator.stats(numbers=True).numbers == {NUMBERS[0]: 2, NUMBERS[1]: 1, NUMBERS[2]: 1}
        assert stats.max_in_window(60.0) == sms_gateway.stats.max_in_window(60.0) == 4
        simulator.reset()
        assert simulator.stats().accepted == 0


def test_simulator_client_refuses_other_hosts():
    """SimulatorClient speaks to loopback only."""
    with pytest.raises(ValueError, match="loopback"):
        SimulatorClient("http://192.0.2.7:8080")


def test_flat_memory_keeps_totals_but_no_series(sms_gateway_factory, client):
    """With track_numbers=False totals per account are still counted, but no number and no series."""
    gw = sms_gateway_factory(track_numbers=False)
    send(gw, client, NUMBERS)
    send(gw, client, NUMBERS)
    stats = gw.stats
    assert (stats.accepted, stats.accepted_by_account) == (6, {"demo": 6})
    assert (stats.numbers, stats.accepted_series, stats.max_in_window()) == ({}, {}, 0)
    document = client.get(gw.origin + "/_simulator/stats").json()
    assert document["numbers_tracked"] is False
    assert document["accounts"] == {"demo": {"accepted": 6, "series": []}}


# ---------------------------------------------------------------- max_in_window


def series_stats() -> GatewayStats:
    stats = GatewayStats()
    for at, count in [(0.0, 100), (0.4, 100), (0.9, 100), (1.0, 100), (1.5, 50), (3.0, 10)]:
        stats.record_accepted("a", at, count)
    for at, count in [(0.95, 30), (2.0, 30)]:
        stats.record_accepted("b", at, count)
    return stats


def test_max_in_window_per_account_and_for_all():
    """The sliding window finds the busiest second per account, and for all accounts merged in time order."""
    stats = series_stats()
    assert stats.max_in_window(1.0, "a") == 300  # (0, 1.0]: 0.4, 0.9, 1.0; 1.5 - 0.4 > 1
    assert stats.max_in_window(1.0, "b") == 30
    assert stats.max_in_window(1.0) == 330  # (0, 1.0]: 0.4, 0.9, 0.95 (b), 1.0
    assert stats.max_in_window(10.0) == 520
    assert stats.max_in_window(1.0, "nobody") == 0


def test_max_in_window_is_half_open():
    """Two sends exactly one window apart never share a window."""
    stats = GatewayStats()
    stats.record_accepted("a", 5.0, 10)
    stats.record_accepted("a", 6.0, 10)
    assert stats.max_in_window(1.0) == 10
    assert stats.max_in_window(1.0001) == 20


def test_max_in_window_wants_a_positive_window():
    """A window of zero or less seconds is refused."""
    with pytest.raises(ValueError, match="positive"):
        GatewayStats().max_in_window(0)


def test_stats_copy_and_reset_cover_the_new_counters():
    """copy() is independent of the series and totals it copies; reset() zeroes them."""
    stats = series_stats()
    stats.accepted = 3
    stats.params["templateid=1"] += 1
    snapshot = stats.copy()
    stats.record_accepted("a", 9.0, 1)
    assert len(snapshot.accepted_series["a"]) == 6
    assert (snapshot.accepted, snapshot.params) == (3, {"templateid=1": 1})
    stats.reset()
    assert (stats.accepted, stats.accepted_series, stats.params) == (0, {}, {})
