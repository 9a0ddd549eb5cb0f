"""The simulated gateway as an HTTP/1.1 server: parsing, connections, counters, life cycle, command line."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
import trio

from sms_async.testing import Fault, GatewayStats, SimulatedGateway, main

ACCOUNT = "/ItonSMSAPI/smsService/api/?cmd=account&username=demo&password=demo-password"


@pytest.fixture
def client():
    with httpx.Client(timeout=10) as c:
        yield c


def connect(gw) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    sock.settimeout(10)
    return sock


def get(target: str = ACCOUNT, headers: str = "", version: str = "HTTP/1.1") -> bytes:
    return f"GET {target} {version}\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode()


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[str, dict[str, str], bytes]:
    """Read one response from ``sock`` (leftover bytes stay in ``buffer``)."""
    while b"\r\n\r\n" not in buffer:
        part = sock.recv(65536)
        assert part, bytes(buffer)
        buffer += part
    end = buffer.index(b"\r\n\r\n")
    status, *lines = buffer[:end].decode("latin-1").split("\r\n")
    del buffer[: end + 4]
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    length = int(headers.get("content-length", "0"))
    while len(buffer) < length:
        part = sock.recv(65536)
        assert part, bytes(buffer)
        buffer += part
    body = bytes(buffer[:length])
    del buffer[:length]
    return status, headers, body


def exchange(gw, data: bytes) -> tuple[str, dict[str, str], bytes]:
    with connect(gw) as sock:
        sock.sendall(data)
        return read_response(sock, bytearray())


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


# ---------------------------------------------------------------- HTTP/1.1


def test_keep_alive_reuses_one_connection(sms_gateway, client):
    """Several requests from one client travel over one keep-alive connection."""
    for _ in range(3):
        assert client.get(
            sms_gateway.iton_url + "?cmd=account&username=demo&password=demo-password"
        ).is_success
    assert sms_gateway.stats.connections_opened == 1


def test_connection_close(sms_gateway):
    """A request with Connection: close is answered with Connection: close, then the server closes."""
    with connect(sms_gateway) as sock:
        sock.sendall(get(headers="Connection: close\r\n"))
        status, headers, body = read_response(sock, bytearray())
        assert status == "HTTP/1.1 200 OK"
        assert headers["connection"] == "close"
        assert body.startswith(b"Remaining_Credits: ")
        assert closed_by_server(sock)


def test_http_10(sms_gateway):
    """HTTP/1.0 closes after the answer unless the client asks for keep-alive."""
    with connect(sms_gateway) as sock:
        sock.sendall(get(version="HTTP/1.0"))
        assert read_response(sock, bytearray())[1]["connection"] == "close"
        assert closed_by_server(sock)
    with connect(sms_gateway) as sock:
        buffer = bytearray()
        for _ in range(2):
            sock.sendall(get(version="HTTP/1.0", headers="Connection: keep-alive\r\n"))
            assert "connection" not in read_response(sock, buffer)[1]


def test_pipelined_requests_answered_in_order(sms_gateway):
    """Requests sent back to back in one write are answered one by one, in order."""
    send = (
        "/ItonSMSAPI/smsService/api/?cmd=sendSMS&username=demo&password=demo-password&sender=A&message=m&to="
    )
    with connect(sms_gateway) as sock:
        sock.sendall(get(send + "919800000001") + get(ACCOUNT) + get(send + "919800000002"))
        buffer = bytearray()
        bodies = [read_response(sock, buffer)[2] for _ in range(3)]
    first, balance, last = bodies
    assert first.startswith(b"Success")
    assert last.startswith(b"Success")
    assert balance == b"Remaining_Credits: 999999999"
    first_id, last_id = first.split()[-1].decode(), last.split()[-1].decode()
    assert sms_gateway.message(first_id).numbers == ("919800000001",)
    assert sms_gateway.message(last_id).numbers == ("919800000002",)


def test_pipelining_behind_a_slow_request(sms_gateway_factory):
    """A pipelined request waits for the slow one before it, and the answers keep their order."""
    gw = sms_gateway_factory(faults=[Fault("latency", on_requests={1}, seconds=0.05)])
    with connect(gw) as sock:
        sock.sendall(
            get(ACCOUNT) + get("/ItonSMSAPI/smsService/api/?cmd=nope&username=demo&password=demo-password")
        )
        buffer = bytearray()
        first = read_response(sock, buffer)[2]
        second = read_response(sock, buffer)[2]
    assert first.startswith(b"Remaining_Credits")
    assert second == b"Invalid request: unknown command nope"


def test_half_closed_client_gets_every_answer(sms_gateway_factory):
    """A client that shuts down its sending side still gets answers to all it sent, then the server closes."""
    gw = sms_gateway_factory(faults=[Fault("latency", on_requests={1}, seconds=0.02)])
    with connect(gw) as sock:
        sock.sendall(get() + get())
        sock.shutdown(socket.SHUT_WR)
        buffer = bytearray()
        assert read_response(sock, buffer)[2].startswith(b"Remaining_Credits")
        assert read_response(sock, buffer)[2].startswith(b"Remaining_Credits")
        assert closed_by_server(sock)


def test_body_arriving_in_pieces(sms_gateway):
    """A Content-Length body split across several writes is read whole."""
    fields = {"username": "demo", "password": "demo-password", "recipients": "+919812345678", "sender": "A"}
    body = json.dumps({**fields, "message": "m"}).encode()
    head = (
        f"POST /api/sms/send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with connect(sms_gateway) as sock:
        data = head + body
        for i in range(0, len(data), 7):
            sock.sendall(data[i : i + 7])
            time.sleep(0.001)
        status, _, answer = read_response(sock, bytearray())
    assert status == "HTTP/1.1 200 OK"
    assert b'"Message accepted"' in answer


def test_expect_continue(sms_gateway):
    """A request with Expect: 100-continue gets an interim 100 before its body is sent."""
    body = b"cmd=account&username=demo&password=demo-password"
    head = (
        "POST /ItonSMSAPI/smsService/api/ HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with connect(sms_gateway) as sock:
        sock.sendall(head)
        buffer = bytearray()
        assert read_response(sock, buffer)[0] == "HTTP/1.1 100 Continue"
        sock.sendall(body)
        assert read_response(sock, buffer)[2].startswith(b"Remaining_Credits")


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET /x\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"get / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n bad: fold\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n", 413),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 411),
        (b"GET /\xff\xfe HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n", 431),
    ],
)
def test_malformed_requests(sms_gateway, data, status):
    """A malformed request gets its 4xx/5xx answer and the connection is closed."""
    with connect(sms_gateway) as sock:
        sock.sendall(data)
        line, headers, _ = read_response(sock, bytearray())
        assert line.startswith(f"HTTP/1.1 {status} ")
        assert headers["connection"] == "close"
        assert closed_by_server(sock)


def test_unknown_path(sms_gateway, client):
    """Any other path is a 404, counted as http.other."""
    assert client.get(f"http://127.0.0.1:{sms_gateway.port}/nope").status_code == 404
    assert sms_gateway.stats.requests == {"http.other": 1}


def test_leading_blank_lines_and_absolute_target(sms_gateway):
    """Blank lines before a request are skipped and an absolute-form target is understood."""
    target = f"http://127.0.0.1:{sms_gateway.port}{ACCOUNT}"
    assert exchange(sms_gateway, b"\r\n\r\n" + get(target))[2].startswith(b"Remaining_Credits")


def test_query_that_is_not_utf8(sms_gateway):
    """Percent-encoded bytes that are not UTF-8 are refused with ITON's plain-text error."""
    _, _, body = exchange(sms_gateway, get(ACCOUNT + "&sender=%FF%FE"))
    assert body == b"Invalid request: parameters must be UTF-8"


def test_fragment_is_ignored(sms_gateway):
    """Anything after a raw '#' in the target is ignored."""
    assert exchange(sms_gateway, get(ACCOUNT + "#frag&cmd=x"))[2].startswith(b"Remaining_Credits")


# ---------------------------------------------------------------- connections


def test_stop_and_start_listening(sms_gateway, client):
    """While not listening, connections are refused and idle ones closed; listening again reuses the port."""
    url = sms_gateway.iton_url + "?cmd=account&username=demo&password=demo-password"
    port = sms_gateway.port
    with connect(sms_gateway) as idle:
        idle.sendall(get())
        read_response(idle, bytearray())
        sms_gateway.stop_listening()
        assert not sms_gateway.listening
        assert closed_by_server(idle)
    with pytest.raises(httpx.ConnectError):
        client.get(url)
    sms_gateway.start_listening()
    assert sms_gateway.listening
    assert sms_gateway.port == port
    assert client.get(url).is_success


def test_stop_listening_can_keep_connections(sms_gateway):
    """stop_listening(close_connections=False) refuses new connections but serves open ones."""
    with connect(sms_gateway) as sock:
        buffer = bytearray()
        sock.sendall(get())
        read_response(sock, buffer)
        sms_gateway.stop_listening(close_connections=False)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", sms_gateway.port), timeout=10)
        sock.sendall(get())
        assert read_response(sock, buffer)[2].startswith(b"Remaining_Credits")


def test_idle_timeout(sms_gateway_factory):
    """A keep-alive connection left idle is closed after idle_timeout."""
    gw = sms_gateway_factory(idle_timeout=0.05)
    with connect(gw) as sock:
        sock.sendall(get())
        read_response(sock, bytearray())
        assert closed_by_server(sock)
    assert gw.idle_timeout == 0.05


def test_close_idle_connections(sms_gateway):
    """close_idle_connections closes open keep-alive connections and says how many."""
    with connect(sms_gateway) as first, connect(sms_gateway) as second:
        for sock in (first, second):
            sock.sendall(get())
            read_response(sock, bytearray())
        assert sms_gateway.close_idle_connections() == 2
        assert closed_by_server(first)
        assert closed_by_server(second)


# ---------------------------------------------------------------- counters


def test_counters(sms_gateway_factory, client):
    """Requests, numbers, duplicates, faults, connections and bytes are counted."""
    gw = sms_gateway_factory(faults=[Fault("status_503", on_requests={3}, operations={"iton.sendSMS"})])
    params = {
        "cmd": "sendSMS",
        "username": "demo",
        "password": "demo-password",
        "sender": "ITONAB",
        "message": "m",
    }
    for to in ("919800000001,919800000002", "919800000002", "919800000003", "919800000003"):
        client.get(gw.iton_url, params={**params, "to": to})
    stats = gw.stats
    assert isinstance(stats, GatewayStats)
    assert stats.requests == {"iton.sendSMS": 4}
    assert stats.numbers == {"919800000001": 1, "919800000002": 2, "919800000003": 1}
    assert stats.duplicate_numbers() == {"919800000002": 2}
    assert stats.faults == {"status_503": 1}
    assert stats.connections_opened == 1
    assert stats.bytes_in > 0
    assert stats.bytes_out > 0
    assert stats.max_in_flight == 1


def test_bytes_in_counts_every_byte(sms_gateway):
    """bytes_in is exactly the bytes the clients sent."""
    data = get() + get()
    with connect(sms_gateway) as sock:
        sock.sendall(data)
        buffer = bytearray()
        read_response(sock, buffer)
        read_response(sock, buffer)
    assert sms_gateway.stats.bytes_in == len(data)


def test_stats_are_a_snapshot_and_reset(sms_gateway_factory, client):
    """gw.stats is a snapshot; reset_stats zeroes the counters and restarts request numbers."""
    gw = sms_gateway_factory(faults=[Fault("status_503", on_requests={1})])
    url = gw.iton_url + "?cmd=account&username=demo&password=demo-password"
    assert client.get(url).status_code == 503
    snapshot = gw.stats
    client.get(url)
    assert snapshot.requests == {"iton.account": 1}
    gw.reset_stats()
    empty = gw.stats
    assert (empty.requests, empty.faults, empty.bytes_in, empty.connections_opened) == ({}, {}, 0, 0)
    assert client.get(url).status_code == 503


def test_flat_memory_options(sms_gateway_factory, client):
    """With store_messages=False and track_numbers=False nothing is kept per message or number."""
    gw = sms_gateway_factory(store_messages=False, track_numbers=False, iton_send_form="json")
    params = {
        "cmd": "sendSMS",
        "username": "demo",
        "password": "demo-password",
        "sender": "ITONAB",
        "message": "m",
    }
    ids = client.get(gw.iton_url, params={**params, "to": "919800000001,919800000002"}).json()
    assert len(ids) == 2
    status = client.get(gw.iton_url, params={**params, "cmd": "message_status", "ids": ",".join(ids)})
    assert status.json() == {}
    assert not gw.messages
    assert not gw.stats.numbers
    assert gw.credits() == 10**9 - 2


# ---------------------------------------------------------------- life cycle


async def test_async_with_on_asyncio():
    """An asyncio test starts and stops the gateway with async with."""
    async with SimulatedGateway() as gw, httpx.AsyncClient() as client:
        response = await client.get(
            gw.iton_url, params={"cmd": "account", "username": "demo", "password": "demo-password"}
        )
        assert response.text.startswith("Remaining_Credits")
    assert not gw.running


def test_async_with_on_trio():
    """A trio test can use async with too, since the server has its own thread and loop."""

    async def scenario() -> str:
        async with SimulatedGateway() as gw, httpx.AsyncClient() as client:
            response = await client.get(
                gw.iton_url, headers={"Authorization": "ITON demo-token"}, params={"cmd": "account"}
            )
            return response.text

    assert trio.run(scenario).startswith("Remaining_Credits")


def test_start_stop_restart(client):
    """A gateway can be stopped and started again, on the same port, keeping its state."""
    gw = SimulatedGateway(use_uvloop=False)
    with pytest.raises(RuntimeError):
        gw.start_listening()
    gw.start()
    try:
        with pytest.raises(RuntimeError):
            gw.start()
        port = gw.port
        gw.set_credits(5)
    finally:
        gw.stop()
    assert not gw.running
    with gw:
        assert gw.port == port
        assert client.get(
            gw.iton_url, params={"cmd": "account", "username": "demo", "password": "demo-password"}
        ).text == ("Remaining_Credits: 5")


def test_port_in_use_is_reported(sms_gateway):
    """Starting on a port that is taken raises OSError from start()."""
    with pytest.raises(OSError):
        SimulatedGateway(port=sms_gateway.port).start()


def test_refuses_non_loopback_host():
    """Only loopback hosts are accepted unless allow_non_loopback is set."""
    with pytest.raises(ValueError, match="loopback"):
        SimulatedGateway(host="0.0.0.0")  # noqa: S104  (checking that it is refused)
    SimulatedGateway(host="localhost")
    SimulatedGateway(host="::1")


@pytest.mark.parametrize(
    "options",
    [
        {"iton_send_form": "xml"},
        {"itecpay_send_form": "list"},
        {"dnd_action": "block"},
        {"iton_path": "no-slash"},
        {"status_delays": (-1, 0)},
        {"undelivered_rate": 0.6, "failed_rate": 0.6},
        {"port": 70000},
    ],
)
def test_bad_options(options):
    """Bad options are refused when the gateway is built."""
    with pytest.raises(ValueError):
        SimulatedGateway(**options)


def test_repr_hides_credentials(sms_gateway):
    """The gateway's repr shows where it listens, not its password."""
    assert sms_gateway.password not in repr(sms_gateway)
    assert str(sms_gateway.port) in repr(sms_gateway)


def test_command_line(client):
    """The module's command line prints both URLs and the credentials, serves, and stops on SIGTERM."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sms_async.testing",
            "--port",
            "0",
            "--iton-send-form",
            "json",
            "--fault",
            "status_429:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    try:
        assert process.stdout is not None
        # The banner has a line or more per served gateway (installed ones included), then this.
        banner: list[str] = []
        for line in iter(process.stdout.readline, ""):
            banner.append(line)
            if line.startswith("Press Ctrl+C"):
                break
        text = "".join(banner)
        iton_url = re.search(r"ITON\s+(http://127\.0\.0\.1:\d+/ItonSMSAPI/smsService/api/)", text).group(1)
        assert re.search(r"ItecPay\s+http://127\.0\.0\.1:\d+", text)
        assert "demo-password" in text
        assert "demo-token" in text
        params = {"cmd": "sendSMS", "username": "demo", "password": "demo-password", "to": "919812345678"}
        response = client.get(iton_url, params={**params, "sender": "ITONAB", "message": "m"})
        assert list(response.json().values()) == ["919812345678"]
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
    assert process.returncode == 0, err


def test_command_line_refuses_non_loopback(capsys):
    """The command line refuses a non-loopback host before listening."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--host", "0.0.0.0", "--port", "0"])  # noqa: S104  (checking that it is refused)
    assert exit_info.value.code == 2
    assert "loopback" in capsys.readouterr().err


def test_command_line_bad_fault(capsys):
    """A malformed --fault is a usage error."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--fault", "explode:0.1"])
    assert exit_info.value.code == 2
    assert "explode" in capsys.readouterr().err


def test_command_line_port_in_use(sms_gateway, capsys):
    """A port that is taken makes main() return 1 with a message."""
    assert main(["--port", str(sms_gateway.port), "--quiet"]) == 1
    assert "cannot listen" in capsys.readouterr().err
