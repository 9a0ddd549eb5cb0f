"""BulkSender (sms_async/_engine.py): its lifecycle, misuse refused early, asyncio and trio."""

from __future__ import annotations

from collections import Counter

import anyio
import anyio.lowlevel
import httpx
import pytest
from engine_support import PASSWORD, FakeGateway, assert_accounted, numbers, outcomes, raise_, send, sender

from sms_async import (
    BulkSender,
    ConfigurationError,
    InvalidMessageError,
    InvalidSenderIdError,
    ItecPay,
    Iton,
    Outcome,
    UnsupportedOperationError,
)


async def test_one_sender_serves_consecutive_sends():
    """A sender can run one send after another, each starting its de-duplication afresh."""
    gateway = FakeGateway()
    async with sender(gateway) as bulk:
        one = await bulk.send(numbers(3), "Hello", sender_id="ITONAB")
        two = await bulk.send(numbers(3), "Hello", sender_id="ITONAB")
    assert one.message_ids == two.message_ids
    assert gateway.sent == Counter(dict.fromkeys(numbers(3), 2))


@pytest.mark.parametrize(
    ("text", "sender_id", "error_type"),
    [
        ("", "ITONAB", InvalidMessageError),
        ("Hello", "ABCDEFGHIJKL", InvalidSenderIdError),
        ("Hello", "ITON-AB", InvalidSenderIdError),
        ("Hello", "ITON.AB!", InvalidSenderIdError),
        ("Hello", "1234567890123456", InvalidSenderIdError),
        ("Hello", "", InvalidSenderIdError),
    ],
    ids=[
        "empty-text",
        "12-letter-sender",
        "dash-sender",
        "punctuation-sender",
        "16-digit-sender",
        "empty-sender",
    ],
)
async def test_misuse_raises_before_any_request(text, sender_id, error_type):
    """Bad text or sender ids raise from `send` and `stream` before any request is made."""
    gateway = FakeGateway()
    async with sender(gateway) as bulk:
        with pytest.raises(error_type):
            await bulk.send(numbers(3), text, sender_id=sender_id)
        with pytest.raises(error_type):
            async for _ in bulk.stream(numbers(3), text, sender_id=sender_id):
                pass
    assert gateway.calls == 0


@pytest.mark.parametrize(
    "make",
    [
        lambda: Iton(username="u", password=PASSWORD, base_url="http://sms.example/api/"),
        lambda: ItecPay("u", PASSWORD, base_url="http://10.0.0.5:8080"),
    ],
    ids=["iton", "itecpay"],
)
def test_plain_http_to_a_remote_host_is_refused(make):
    """An http:// base URL to a non-loopback host raises ConfigurationError."""
    with pytest.raises(ConfigurationError):
        make()


async def test_sender_must_be_opened():
    """Using the sender without `async with` raises ConfigurationError and sends nothing."""
    gateway = FakeGateway()
    bulk = sender(gateway)
    with pytest.raises(ConfigurationError):
        await bulk.send(numbers(3), "Hello", sender_id="ITONAB")
    assert gateway.calls == 0


@pytest.mark.parametrize(
    "kwargs",
    [{"concurrency": 0}, {"http": "carrier-pigeon"}, {"http": "fast"}],
    ids=["zero-concurrency", "unknown-http", "fast-with-transport"],
)
def test_bad_sender_options(kwargs):
    """Impossible sender options raise ConfigurationError."""
    with pytest.raises(ConfigurationError):
        sender(FakeGateway(), **kwargs)


async def test_a_single_string_of_recipients_is_misuse():
    """Passing one string instead of a list of numbers raises ConfigurationError from `send`."""
    gateway = FakeGateway()
    async with sender(gateway) as bulk:
        with pytest.raises(ConfigurationError):
            await bulk.send("+919812345678", "Hello", sender_id="ITONAB")
    assert gateway.calls == 0


async def test_errors_raised_inside_the_sender_block_are_not_wrapped():
    """An error raised inside ``async with BulkSender`` comes out as itself, not in an ExceptionGroup."""
    driver = ItecPay("u", "pass", base_url="http://127.0.0.1:9")
    with pytest.raises(UnsupportedOperationError):
        async with BulkSender(driver) as bulk:
            await bulk.balance()
    with pytest.raises(KeyError):
        async with BulkSender(driver):
            raise KeyError("mine")


# pytest-asyncio's auto mode runs every `async def` test on asyncio, even one marked
# `anyio`, so these tests drive their backend themselves with anyio.run.


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param


def test_send_on_each_backend(anyio_backend):
    """Batching, duplicates, a retried connect error and an invalid input work on asyncio and trio."""
    gateway = FakeGateway([raise_(httpx.ConnectError)])
    inputs = [*numbers(150), "+919800000000", "nonsense"]
    result = anyio.run(lambda: send(gateway, inputs), backend=anyio_backend)
    assert len(result.message_ids) == 150
    assert result.duplicates == {"+919800000000": 1}
    assert result.failed["nonsense"].outcome is Outcome.INVALID
    assert gateway.calls == 3
    assert_accounted(result, 152)


def test_ambiguous_fault_on_each_backend(anyio_backend):
    """A read timeout is UNKNOWN and not re-sent on asyncio and trio alike."""
    gateway = FakeGateway(always=raise_(httpx.ReadTimeout))
    result = anyio.run(lambda: send(gateway, numbers(3)), backend=anyio_backend)
    assert gateway.calls == 1
    assert outcomes(result) == Counter({Outcome.UNKNOWN: 3})
    assert_accounted(result, 3)
