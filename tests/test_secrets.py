"""The password and the token never show: not in a log record, a repr, an error or its chain."""

from __future__ import annotations

import gc
import json
import logging
import traceback
from collections.abc import Callable
from urllib.parse import quote, quote_plus

import httpx
import pytest

from sms_async import BulkResult, BulkSender, ItecPay, Iton, RetryPolicy, _redact

PASSWORD = "s3cr3t-P@ss&word=1"
TOKEN = "t0ken-S3CRET-77"
FAST = RetryPolicy(attempts=2, initial_wait=0.001, max_wait=0.01)
NUMBERS = ["+919812345678", "+919032728149", "garbage"]


def forms(secret: str) -> set[str]:
    """Every spelling a secret can take on the wire or in text, and its distinctive core."""
    return {secret, quote(secret, safe=""), quote(secret), quote_plus(secret), json.dumps(secret)[1:-1]}


LEAKS = forms(PASSWORD) | forms(TOKEN) | {"s3cr3t", "S3CRET"}


DRIVERS: dict[str, Callable[[], Iton | ItecPay]] = {
    "iton-password": lambda: Iton(username="user1", password=PASSWORD),
    "iton-token": lambda: Iton(token=TOKEN),
    "itecpay": lambda: ItecPay("user1", PASSWORD, base_url="https://gateway.itecpay.example"),
}


def echo(request: httpx.Request) -> str:
    """All a careless gateway or library could repeat back: the URL, the headers and the body."""
    headers = ", ".join(f"{k}: {v}" for k, v in request.headers.multi_items())
    return f"{request.method} {request.url} [{headers}] {request.content.decode()}"


def success(request: httpx.Request) -> httpx.Response:
    if request.method == "GET":
        return httpx.Response(200, text="Success Your MessageId is 532073f7e4b05199d2c3d812")
    return httpx.Response(200, json={"status": 200, "messageid": "m-1"})


def server_error(request: httpx.Request) -> httpx.Response:
    return httpx.Response(500, text=f"Internal error while handling {echo(request)}")


def read_timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout(f"timed out reading {request.url}", request=request)


def connect_error(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError(f"could not connect for {request.url}", request=request)


def auth_failure(request: httpx.Request) -> httpx.Response:
    if request.method == "GET":
        return httpx.Response(200, text=f"Invalid username or password in {echo(request)}")
    return httpx.Response(
        200, json={"status": 400, "description": f"Authentication failed for {echo(request)}"}
    )


def unauthorized(request: httpx.Request) -> httpx.Response:
    return httpx.Response(401, text=f"Unauthorized: {echo(request)}")


def redirect(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        302, headers={"Location": f"https://elsewhere.example/?{request.url.query.decode()}"}
    )


def rejected(request: httpx.Request) -> httpx.Response:
    return httpx.Response(400, text=f"Invalid sender id; request was {echo(request)}")


SCENARIOS: dict[str, Callable[[httpx.Request], httpx.Response]] = {
    "success": success,
    "500": server_error,
    "read-timeout": read_timeout,
    "connect-error": connect_error,
    "auth-failure": auth_failure,
    "401": unauthorized,
    "redirect": redirect,
    "rejected": rejected,
}


def cases() -> list:
    return [pytest.param(d, s, id=f"{d}-{s}") for d in DRIVERS for s in SCENARIOS]


def assert_clean(text: str, where: str) -> None:
    for leak in LEAKS:
        assert leak not in text, f"{leak!r} leaked in {where}: {text[:500]!r}"


async def run(driver_name: str, scenario: str) -> tuple[BulkResult, list[str]]:
    """Send through httpx over MockTransport; return the result and every repr seen along the way."""
    driver = DRIVERS[driver_name]()
    bulk = BulkSender(
        driver,
        default_region="IN",
        concurrency=2,
        retry=FAST,
        http="httpx",
        transport=httpx.MockTransport(SCENARIOS[scenario]),
    )
    reprs = [repr(driver), repr(bulk)]
    async with bulk:
        reprs.append(repr(bulk))
        result = await bulk.send(NUMBERS, "Hello", sender_id="ITONAB")
    reprs += [repr(bulk), repr(result), repr(result.failed), repr(result.aborted)]
    return result, reprs


def chain_texts(error: BaseException | None) -> list[str]:
    """Str and repr of an error and of everything on its cause/context chain."""
    texts: list[str] = []
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        texts += [str(error), repr(error), "".join(traceback.format_exception(error))]
        texts += [str(getattr(error, name, "")) for name in ("reason", "raw")]
        error = error.__cause__ or error.__context__
    return texts


@pytest.mark.parametrize(("driver_name", "scenario"), cases())
async def test_log_records_hold_no_secret(driver_name, scenario, caplog):
    """Every log record of every logger at DEBUG, formatted or raw, is free of the password and the token."""
    caplog.set_level(logging.DEBUG)
    await run(driver_name, scenario)
    assert caplog.records, "httpx logs each request at INFO: the capture saw nothing"
    for record in caplog.records:
        assert_clean(record.getMessage(), f"log record {record.name}")
        assert_clean(repr(record.args), f"log record args {record.name}")
        if record.exc_info:
            assert_clean(
                "".join(traceback.format_exception(*record.exc_info)), f"log traceback {record.name}"
            )
    assert_clean(caplog.text, "formatted log output")


async def test_httpx_logs_the_request_line_redacted(caplog):
    """Httpx's INFO line about the request is kept, with the password replaced."""
    caplog.set_level(logging.DEBUG)
    await run("iton-password", "success")
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert any("HTTP Request" in line and "cmd=sendSMS" in line for line in lines)
    assert any(_redact.REDACTED in line for line in lines)


@pytest.mark.parametrize(("driver_name", "scenario"), cases())
async def test_results_and_errors_hold_no_secret(driver_name, scenario):
    """Reprs of driver, sender and result, and each failure's error with its whole chain, hide the secrets."""
    result, reprs = await run(driver_name, scenario)
    assert result.total == len(NUMBERS)
    for text in reprs:
        assert_clean(text, "a repr")
    for key, failure in result.failed.items():
        assert_clean(key, "a failed key")
        assert_clean(str(failure), "a failure")
        assert_clean(repr(failure), "a failure repr")
        for text in chain_texts(failure.error):
            assert_clean(text, f"the error of {key}")
    for text in chain_texts(result.aborted):
        assert_clean(text, "result.aborted")


@pytest.mark.parametrize(("driver_name", "scenario"), cases())
async def test_raise_for_abort_holds_no_secret(driver_name, scenario):
    """The exception `raise_for_abort` raises, formatted as a traceback, hides the secrets."""
    result, _ = await run(driver_name, scenario)
    try:
        result.raise_for_abort()
    except Exception as error:
        assert_clean("".join(traceback.format_exception(error)), "raise_for_abort traceback")


def test_a_secret_lives_as_long_as_its_owner():
    """A secret is redacted while a driver holding it lives, and forgotten once the last one is gone."""
    secret = "lifetime-secret-42"
    first = Iton(username="u", password=secret)
    second = Iton(username="u", password=secret)
    assert _redact.REDACTED in _redact.redact(f"x {secret} y")
    del first
    gc.collect()
    assert secret not in _redact.redact(f"x {secret} y")  # the second driver still holds it
    del second
    gc.collect()
    assert _redact.redact(f"x {secret} y") == f"x {secret} y"


def test_owners_dying_while_the_pattern_is_rebuilt_do_not_deadlock():
    """Drivers collected at any moment (finalizers run inside the registry's own work) never block it."""
    gc.collect()
    for round_ in range(300):
        driver = Iton(username="u", password=f"cycle-secret-{round_}")
        driver.cycle = driver  # freed only by the cyclic collector, at whatever allocation triggers it
        del driver
        _redact.redact("cycle-secret")  # rebuilds the pattern, allocating as it goes
    gc.collect()
    assert _redact.redact("cycle-secret-7 cycle-secret-299") == "cycle-secret-7 cycle-secret-299"


@pytest.mark.parametrize(
    "hint",
    [
        "Iton needs username= and password=, or token= (the Web API token)",
        "set password= or token=.",
        "password=",
    ],
)
def test_a_hint_naming_a_parameter_is_left_as_it_is(hint):
    """A parameter named in prose, with no value after it, is not a secret to redact."""
    assert _redact.redact(hint) == hint


def test_a_parameter_with_a_value_is_still_redacted_beside_punctuation():
    """A value that starts or ends with punctuation is still a value."""
    assert "s3cr" not in _redact.redact("password=s3cr, or token=,s3cr&x=1")
    assert _redact.redact("password=s3cr, next") == "password=[REDACTED] next"
