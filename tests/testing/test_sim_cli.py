"""``python -m sms_async.testing``: several accounts, and the counters printed on SIGUSR1 and on exit."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from sms_async.testing import SimulatorClient, main
from sms_async.testing._cli import parse_account

NUMBERS = ["919800000001", "919800000002", "919800000003"]
COUNTERS = re.compile(
    r"requests=(\d+) received=(\d+) accepted=(\d+) duplicates=(\d+|untracked) refused=(\d+)"
)


def start(*options: str) -> tuple[subprocess.Popen[str], list[str]]:
    """Start the simulator on a free port; return the process and its banner lines."""
    process = subprocess.Popen(  # noqa: S603 - this interpreter running our own module
        [sys.executable, "-m", "sms_async.testing", "--port", "0", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert process.stdout is not None
    banner: list[str] = []
    while not banner or not banner[-1].startswith("Press Ctrl+C"):
        line = process.stdout.readline()
        assert line, process.stderr.read() if process.stderr else ""
        banner.append(line.rstrip("\n"))
    return process, banner


def counters(line: str) -> dict[str, str]:
    match = COUNTERS.search(line)
    assert match, line
    return dict(
        zip(("requests", "received", "accepted", "duplicates", "refused"), match.groups(), strict=True)
    )


def iton(client: httpx.Client, url: str, user: str, password: str, **params: str) -> httpx.Response:
    return client.get(url, params={"username": user, "password": password, **params})


def send(client: httpx.Client, url: str, numbers: list[str], user="demo", password="demo-password"):  # noqa: S107
    params = {"cmd": "sendSMS", "to": ",".join(numbers), "sender": "ITONAB", "message": "Hi"}
    return iton(client, url, user, password, **params)


def test_counters_on_sigusr1_and_on_exit():
    """SIGUSR1 prints the counters and serving goes on; SIGTERM prints the final counters and exits 0."""
    process, banner = start("--account", "shop:shop-pw:50", "--account", "clinic:c:l:i:n:i:c")
    try:
        assert process.stdout is not None
        text = "\n".join(banner)
        origin = re.search(r"listening on (http://127\.0\.0\.1:\d+)", text).group(1)
        iton_url = re.search(r"ITON\s+(http://\S+)", text).group(1)
        assert "accounts shop, clinic" in text
        assert "shop-pw" not in text
        with httpx.Client(timeout=10) as client:
            assert send(client, iton_url, NUMBERS).text.startswith("Success")
            assert send(client, iton_url, NUMBERS[:1]).text.startswith("Success")
            assert send(client, iton_url, NUMBERS[1:], "shop", "shop-pw").text.startswith("Success")
            assert send(client, iton_url, ["919800000004", "12345"]).text == "Invalid number: 12345"
            process.send_signal(signal.SIGUSR1)
            assert counters(process.stdout.readline()) == {
                "requests": "4",
                "received": "8",
                "accepted": "6",
                "duplicates": "3",
                "refused": "2",
            }
            balance = iton(client, iton_url, "shop", "shop-pw", cmd="account").text
            assert balance == "Remaining_Credits: 48"
            clinic = iton(client, iton_url, "clinic", "c:l:i:n:i:c", cmd="account").text
            assert clinic == "Remaining_Credits: 1000000000"
        with SimulatorClient(origin) as simulator:
            assert simulator.stats().accepted_by_account == {"demo": 4, "shop": 2}
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    final = [line for line in out.splitlines() if line.startswith("final counters:")]
    assert len(final) == 1
    assert counters(final[0])["requests"] == "6"


def test_quiet_prints_counters_on_sigusr1_only():
    """With --quiet nothing is printed on start or exit, but SIGUSR1 still prints the counters."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(  # noqa: S603 - as above
        [sys.executable, "-m", "sms_async.testing", "--port", str(port), "--quiet", "--no-track-numbers"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = f"http://127.0.0.1:{port}/ItonSMSAPI/smsService/api/"
        with httpx.Client(timeout=10) as client:
            # The signal handlers are in place before the first answer is written.
            for _ in range(2000):
                try:
                    response = send(client, url, NUMBERS)
                    break
                except httpx.ConnectError:
                    assert process.poll() is None, process.stderr.read() if process.stderr else ""
                    time.sleep(0.01)
            assert response.text.startswith("Success")
        process.send_signal(signal.SIGUSR1)
        assert counters(process.stdout.readline()) == {
            "requests": "1",
            "received": "3",
            "accepted": "3",
            "duplicates": "untracked",
            "refused": "0",
        }
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert out == ""


@pytest.mark.parametrize(
    ("spec", "account"),
    [
        ("shop:pw", ("shop", "pw", 10**9)),
        ("shop:pw:50", ("shop", "pw", 50)),
        ("shop:p:w", ("shop", "p:w", 10**9)),
        ("shop:p:5:0", ("shop", "p:5", 0)),
    ],
)
def test_parse_account(spec, account):
    """USER:PASSWORD[:CREDITS] takes a trailing number as the credits; other colons stay in the password."""
    assert parse_account(spec) == account


@pytest.mark.parametrize("spec", ["shop", "shop:", ":secret-pw", "shop::5"])
def test_bad_account_is_a_usage_error_that_hides_the_password(capsys, spec):
    """A malformed --account is a usage error, and the message does not repeat the password."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--account", spec, "--port", "0"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "USER:PASSWORD[:CREDITS]" in err
    assert "secret-pw" not in err
