"""Fault injection in the simulated gateway: every kind, and when each fires."""

from __future__ import annotations

import asyncio
import email.utils
import json
import socket
import time

import httpx
import pytest

from sms_async.testing import Fault
from sms_async.testing._faults import parse_fault

NUMBERS = [f"9198{i:08d}" for i in range(10)]


@pytest.fixture
def client():
    with httpx.Client(timeout=10) as c:
        yield c


def iton_send(gw, client, numbers=NUMBERS, **kwargs):
    params = {
        "cmd": "sendSMS",
        "username": gw.username,
        "password": gw.password,
        "to": ",".join(numbers),
        "sender": "ITONAB",
        "message": "Hello",
        "uniCode": "0",
    }
    return client.get(gw.iton_url, params=params, **kwargs)


def itecpay_send(gw, client, numbers=NUMBERS, **kwargs):
    body = {
        "username": gw.username,
        "password": gw.password,
        "recipients": ",".join("+" + n for n in numbers),
        "sender": "ITONAB",
        "message": "Hello",
    }
    return client.post(gw.itecpay_send_url, json=body, **kwargs)


def account(gw, client):
    return client.get(
        gw.iton_url, params={"cmd": "account", "username": gw.username, "password": gw.password}
    )


def raw_request(gw, numbers=NUMBERS) -> bytes:
    query = (
        f"cmd=sendSMS&username=demo&password=demo-password&to={','.join(numbers)}&sender=ITONAB&message=Hi"
    )
    return f"GET {gw.iton_url.split(str(gw.port), 1)[1]}?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


def read_response(sock: socket.socket) -> tuple[bytes, bytes, int]:
    """Read one response: (head, body, number of recv calls that returned data)."""
    data = b""
    chunks = 0
    while b"\r\n\r\n" not in data:
        part = sock.recv(65536)
        assert part, data
        data += part
        chunks += 1
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        part = sock.recv(65536)
        assert part, body
        body += part
        chunks += 1
    return head, body, chunks


def wait_for(predicate, what: str) -> None:
    for _ in range(2000):
        if predicate():
            return
        time.sleep(0.005)
    pytest.fail(f"gave up waiting for {what}")


def assert_processed(gw, numbers=NUMBERS) -> None:
    assert gw.stats.numbers == dict.fromkeys(numbers, 1)
    assert gw.credits() == 10**9 - len(numbers)


def assert_not_processed(gw) -> None:
    assert not gw.stats.numbers
    assert gw.credits() == 10**9
    assert not gw.messages


# ---------------------------------------------------------------- latency and concurrency


@pytest.mark.parametrize("seconds", [0.01, (0.001, 0.02)])
def test_latency(sms_gateway_factory, client, seconds):
    """A latency fault delays the answer, which is still the real one."""
    gw = sms_gateway_factory(faults=[Fault("latency", rate=1.0, seconds=seconds)])
    assert iton_send(gw, client).text.startswith("Success")
    assert gw.stats.faults == {"latency": 1}
    assert_processed(gw)


async def test_max_in_flight(sms_gateway_factory):
    """Requests held by a long latency are all in flight together, and max_in_flight says how many."""
    gw = sms_gateway_factory(faults=[Fault("latency", rate=1.0, seconds=60, operations={"iton.account"})])
    async with httpx.AsyncClient(timeout=60) as client:
        params = {"cmd": "account", "username": gw.username, "password": gw.password}
        tasks = [asyncio.create_task(client.get(gw.iton_url, params=params)) for _ in range(6)]
        for _ in range(2000):
            if gw.stats.in_flight == 6:
                break
            await asyncio.sleep(0.005)
        stats = gw.stats
        assert (stats.in_flight, stats.max_in_flight, stats.connections_opened) == (6, 6, 6)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# ---------------------------------------------------------------- refused before processing


@pytest.mark.parametrize(
    ("fault", "header"),
    [
        (Fault("status_429", rate=1.0, retry_after=2), "2"),
        (Fault("status_429", rate=1.0, retry_after=0.5), "0.5"),
        (Fault("status_429", rate=1.0, retry_after="soon, maybe"), "soon, maybe"),
        (Fault("status_429", rate=1.0), None),
        (Fault("status_503", rate=1.0), None),
        (Fault("status_503", rate=1.0, retry_after=7), "7"),
    ],
)
def test_busy_refuses_before_processing(sms_gateway_factory, client, fault, header):
    """429 and 503 carry Retry-After as configured and process nothing."""
    gw = sms_gateway_factory(faults=[fault])
    response = iton_send(gw, client)
    assert response.status_code == int(fault.kind[-3:])
    assert response.headers.get("retry-after") == header
    assert_not_processed(gw)
    assert gw.stats.faults == {fault.kind: 1}


def test_retry_after_http_date(sms_gateway_factory, client):
    """Retry-After can be an HTTP date that many seconds ahead."""
    gw = sms_gateway_factory(
        faults=[Fault("status_429", rate=1.0, retry_after=120, retry_after_form="http_date")]
    )
    before = time.time()
    when = email.utils.parsedate_to_datetime(iton_send(gw, client).headers["retry-after"])
    assert when.tzinfo is not None
    assert before + 100 < when.timestamp() < time.time() + 140


def test_busy_itecpay_body_is_json(sms_gateway_factory, client):
    """ItecPay's 429 answer is JSON like its other answers."""
    gw = sms_gateway_factory(faults=[Fault("status_429", rate=1.0, retry_after=1)])
    response = itecpay_send(gw, client)
    assert response.status_code == 429
    assert response.json() == {"status": 429, "description": "Too Many Requests"}
    assert_not_processed(gw)


def test_auth_failure(sms_gateway_factory, client):
    """An auth_failure fault answers as for bad credentials on each gateway and sends nothing."""
    gw = sms_gateway_factory(faults=[Fault("auth_failure", rate=1.0)])
    assert iton_send(gw, client).text == "Invalid username or password"
    response = itecpay_send(gw, client)
    assert response.status_code == 401
    assert response.json()["status"] == 401
    assert_not_processed(gw)


# ---------------------------------------------------------------- ambiguous answers


@pytest.mark.parametrize("kind", ["status_500", "status_502", "status_504"])
def test_server_errors_process_by_default(sms_gateway_factory, client, kind):
    """A 5xx fault carries the request out first by default (the worst case for a client)."""
    gw = sms_gateway_factory(faults=[Fault(kind, rate=1.0)])
    response = iton_send(gw, client)
    assert response.status_code == int(kind[-3:])
    assert response.headers["content-type"].startswith("text/html")
    assert_processed(gw)


def test_server_error_without_processing(sms_gateway_factory, client):
    """With process=False a 5xx fault sends nothing."""
    gw = sms_gateway_factory(faults=[Fault("status_502", rate=1.0, process=False)])
    assert iton_send(gw, client).status_code == 502
    assert_not_processed(gw)


def test_stall_until_client_closes(sms_gateway_factory):
    """A stall processes the request and never answers; it stays in flight until the client gives up."""
    gw = sms_gateway_factory(faults=[Fault("stall", rate=1.0)])
    with httpx.Client(timeout=httpx.Timeout(10, read=0.2)) as client, pytest.raises(httpx.ReadTimeout):
        iton_send(gw, client)
    assert_processed(gw)
    wait_for(lambda: gw.stats.in_flight == 0, "the stalled request to end with its connection")
    assert gw.stats.connections_open == 0


def test_stall_then_close(sms_gateway_factory, client):
    """A stall with seconds closes the connection after that long, with no answer."""
    gw = sms_gateway_factory(faults=[Fault("stall", rate=1.0, seconds=0.05)])
    with pytest.raises(httpx.RemoteProtocolError):
        iton_send(gw, client)
    assert_processed(gw)
    wait_for(lambda: gw.stats.in_flight == 0, "the stall to end")


@pytest.mark.parametrize("process", [True, False])
def test_drop_after_read(sms_gateway_factory, client, process):
    """drop_after_read closes the connection without an answer, having processed the request or not."""
    gw = sms_gateway_factory(faults=[Fault("drop_after_read", rate=1.0, process=process)])
    with pytest.raises(httpx.RemoteProtocolError):
        iton_send(gw, client)
    if process:
        assert_processed(gw)
    else:
        assert_not_processed(gw)
    assert gw.stats.in_flight == 0


def test_html_body(sms_gateway_factory, client):
    """html_body answers 200 with an HTML page after processing."""
    gw = sms_gateway_factory(faults=[Fault("html_body", rate=1.0)])
    response = iton_send(gw, client)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.lstrip().startswith("<!DOCTYPE html>")
    assert_processed(gw)


@pytest.mark.parametrize("form", ["text", "json"])
def test_truncated_body(sms_gateway_factory, form):
    """truncated_body sends a cut-off prefix of the real answer with a Content-Length that matches it."""
    gw = sms_gateway_factory(iton_send_form=form, faults=[Fault("truncated_body", on_requests={1})])
    with socket.create_connection(("127.0.0.1", gw.port)) as sock:
        sock.sendall(raw_request(gw))
        head, cut, _ = read_response(sock)
        sock.sendall(raw_request(gw, NUMBERS[:1]))
        _, whole, _ = read_response(sock)
    assert head.startswith(b"HTTP/1.1 200")
    assert f"content-length: {len(cut)}".encode() in head.lower()
    assert cut
    if form == "text":
        assert whole.startswith(cut)
        assert len(cut) < len(whole)
    else:
        with pytest.raises(json.JSONDecodeError):
            json.loads(cut)
    assert gw.stats.numbers[NUMBERS[0]] == 2


@pytest.mark.parametrize(
    ("shape", "kind"),
    [("list", list), ("number", int), ("string", str), ("null", type(None)), ("map_of_lists", dict)],
)
def test_wrong_type_body(sms_gateway_factory, client, shape, kind):
    """wrong_type_body answers 200 with JSON of the wrong shape."""
    gw = sms_gateway_factory(faults=[Fault("wrong_type_body", rate=1.0, shape=shape)])
    response = itecpay_send(gw, client)
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, kind)
    if shape == "map_of_lists":
        assert all(isinstance(v, list) for v in body.values())
    assert_processed(gw, ["+" + n for n in NUMBERS])


def test_partial_accept_iton_json(sms_gateway_factory, client):
    """partial_accept gives ids to only a share of the numbers in ITON's JSON form, and charges only those."""
    gw = sms_gateway_factory(iton_send_form="json", faults=[Fault("partial_accept", rate=1.0, share=0.3)])
    answer = iton_send(gw, client).json()
    assert len(answer) == 3
    stats = gw.stats
    assert set(stats.numbers) == set(answer.values())
    assert set(stats.numbers_refused) == set(NUMBERS) - set(answer.values())
    assert gw.credits() == 10**9 - 3


def test_partial_accept_itecpay_per_recipient(sms_gateway_factory, client):
    """partial_accept marks the numbers it leaves out with status 400 in ItecPay's per-recipient form."""
    gw = sms_gateway_factory(itecpay_send_form="per_recipient", faults=[Fault("partial_accept", rate=1.0)])
    messages = itecpay_send(gw, client).json()["messages"]
    assert [m["recipient"] for m in messages] == ["+" + n for n in NUMBERS]
    refused = [m for m in messages if m["status"] == 400]
    assert len(refused) == 5
    assert all(m["description"] == "Rejected by operator" for m in refused)


def test_slow_drip(sms_gateway_factory, client):
    """slow_drip sends the whole, correct answer a byte at a time."""
    gw = sms_gateway_factory(faults=[Fault("slow_drip", on_requests={1, 2}, seconds=0.001)])
    with socket.create_connection(("127.0.0.1", gw.port)) as sock:
        sock.sendall(raw_request(gw))
        head, body, chunks = read_response(sock)
    assert head.startswith(b"HTTP/1.1 200")
    assert body.startswith(b"Success Your MessageId is ")
    assert chunks > 1
    assert iton_send(gw, client).text.startswith("Success")
    assert gw.stats.faults == {"slow_drip": 2}


# ---------------------------------------------------------------- when faults fire


def test_on_requests_counts_per_operation(sms_gateway_factory, client):
    """on_requests picks the n-th request of the operation, and other operations do not move the count."""
    gw = sms_gateway_factory(faults=[Fault("status_500", on_requests={2}, operations={"iton.sendSMS"})])
    codes = []
    for _ in range(3):
        account(gw, client)
        codes.append(iton_send(gw, client, NUMBERS[:1]).status_code)
    assert codes == [200, 500, 200]
    assert account(gw, client).status_code == 200
    assert gw.stats.requests == {"iton.sendSMS": 3, "iton.account": 4}


def test_on_requests_without_operations_counts_each_operation(sms_gateway_factory, client):
    """Without operations, on_requests={1} hits the first request of every operation."""
    gw = sms_gateway_factory(faults=[Fault("status_503", on_requests={1})])
    assert account(gw, client).status_code == 503
    assert account(gw, client).status_code == 200
    assert iton_send(gw, client).status_code == 503
    assert itecpay_send(gw, client).status_code == 503


def test_max_times(sms_gateway_factory, client):
    """max_times caps how often a fault fires."""
    gw = sms_gateway_factory(faults=[Fault("status_503", rate=1.0, max_times=2)])
    assert [account(gw, client).status_code for _ in range(4)] == [503, 503, 200, 200]


def test_rate_is_seeded(sms_gateway_factory, client):
    """The same seed gives the same faults in the same order; a rate fires on some requests only."""
    runs = []
    for _ in range(2):
        gw = sms_gateway_factory(seed=42, faults=[Fault("status_429", rate=0.5)])
        runs.append([account(gw, client).status_code for _ in range(40)])
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 429}


def test_operations_filter(sms_gateway_factory, client):
    """A fault limited to ItecPay's send leaves ITON alone."""
    gw = sms_gateway_factory(faults=[Fault("status_503", rate=1.0, operations="itecpay.send")])
    assert iton_send(gw, client).status_code == 200
    assert itecpay_send(gw, client).status_code == 503


def test_set_faults_while_running(sms_gateway, client):
    """Faults can be put in force and taken away on a running gateway; request numbers restart."""
    assert account(sms_gateway, client).status_code == 200
    sms_gateway.set_faults([Fault("status_503", on_requests={1})])
    assert sms_gateway.faults == (Fault("status_503", on_requests={1}),)
    assert account(sms_gateway, client).status_code == 503
    sms_gateway.set_faults([])
    assert account(sms_gateway, client).status_code == 200


def test_latency_adds_to_another_fault(sms_gateway_factory, client):
    """A latency fault and another fault both fire on one request."""
    faults = [
        Fault("latency", rate=1.0, seconds=0.001),
        Fault("status_429", rate=1.0),
        Fault("status_503", rate=1.0),
    ]
    gw = sms_gateway_factory(faults=faults)
    assert account(gw, client).status_code == 429
    assert gw.stats.faults == {"latency": 1, "status_429": 1}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "explode"},
        {"kind": "status_429", "rate": 1.5},
        {"kind": "status_429", "operations": {"iton.sendsms"}},
        {"kind": "status_429", "on_requests": {0}},
        {"kind": "status_429", "max_times": 0},
        {"kind": "latency", "seconds": (0.2, 0.1)},
        {"kind": "wrong_type_body", "shape": "tuple"},
    ],
)
def test_fault_validation(kwargs):
    """A fault with a bad kind, rate, operation, request number, limit, range or shape is refused."""
    kind = kwargs.pop("kind")
    with pytest.raises(ValueError):
        Fault(kind, **kwargs)


def test_parse_fault():
    """The command-line fault syntax reads kind, rate and options."""
    assert parse_fault("status_429:0.05") == Fault("status_429", rate=0.05)
    assert parse_fault("status_429:0.1:retry_after=2") == Fault("status_429", rate=0.1, retry_after=2.0)
    assert parse_fault("status_429:1:retry_after=soon") == Fault("status_429", rate=1.0, retry_after="soon")
    assert parse_fault("status_500:0:on=3,5:ops=iton.sendSMS:process=no") == Fault(
        "status_500", on_requests={3, 5}, operations={"iton.sendSMS"}, process=False
    )
    assert parse_fault("latency:1:seconds=0.01-0.05") == Fault("latency", rate=1.0, seconds=(0.01, 0.05))
    assert parse_fault("stall:on=1:seconds=2:max_times=1") == Fault(
        "stall", on_requests={1}, seconds=2.0, max_times=1
    )
    with pytest.raises(ValueError):
        parse_fault("status_429:0.1:retry_after")
