"""Extra gateway parameters (India's DLT ids) and a text per recipient, end to end over loopback."""

from __future__ import annotations

import logging
from collections import Counter

import pytest

from sms_async import (
    BulkSender,
    ConfigurationError,
    ItecPay,
    Iton,
    Outcome,
    Template,
)

DLT = {"entityid": "1201159100000000001", "templateid": "1207161234567890123"}


def numbers(count: int, start: int = 0) -> list[str]:
    return [f"+9198{i:08d}" for i in range(start, start + count)]


def iton(gw, **options) -> Iton:
    return Iton(gw.username, gw.password, base_url=gw.iton_url, **options)


def itecpay(gw, **options) -> ItecPay:
    return ItecPay(gw.username, gw.password, base_url=gw.itecpay_url, **options)


def accounted(result) -> bool:
    return result.total == len(result.message_ids) + len(result.failed) + sum(result.duplicates.values())


# -- gateway parameters -------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [iton, itecpay], ids=["iton", "itecpay"])
async def test_gateway_params_reach_the_gateway_with_every_send(sms_gateway_factory, make):
    """Driver defaults merged under per-send parameters arrive on every send request, as given."""
    gw = sms_gateway_factory()
    driver = make(gw, params={"entityid": "driver-default", "peid": "P-1"})
    async with BulkSender(driver) as bulk:
        result = await bulk.send(numbers(150), "Hello", sender_id="ITONAB", gateway_params=DLT)
    assert len(result.message_ids) == 150
    messages = gw.messages
    assert len(messages) == 2
    for message in messages.values():
        assert message.params == {**DLT, "peid": "P-1"}  # the per-send entityid wins
    assert gw.stats.params[f"templateid={DLT['templateid']}"] == 2


@pytest.mark.parametrize(
    ("make", "name"),
    [(iton, "password"), (iton, "to"), (iton, "CMD"), (itecpay, "recipients"), (itecpay, "message")],
)
async def test_a_parameter_the_driver_owns_is_refused_before_any_request(sms_gateway_factory, make, name):
    """Overriding a name the gateway's protocol uses is a clear error, and nothing is sent."""
    gw = sms_gateway_factory()
    async with BulkSender(make(gw)) as bulk:
        with pytest.raises(ConfigurationError, match="set by the driver itself"):
            await bulk.send(numbers(3), "Hello", sender_id="ITONAB", gateway_params={name: "x"})
        with pytest.raises(ConfigurationError, match="set by the driver itself"):
            await bulk.send([(n, "Hi") for n in numbers(3)], sender_id="ITONAB", gateway_params={name: "x"})
    with pytest.raises(ConfigurationError, match="set by the driver itself"):
        make(gw, params={name: "x"})
    assert sum(gw.stats.requests.values()) == 0


async def test_parameter_values_must_be_text(sms_gateway_factory):
    """A number given where text is expected is refused with the fix in the message."""
    gw = sms_gateway_factory()
    async with BulkSender(iton(gw)) as bulk:
        with pytest.raises(ConfigurationError, match=r"must be text.*'1207'"):
            await bulk.send(numbers(1), "Hi", sender_id="ITONAB", gateway_params={"templateid": 1207})
    assert sum(gw.stats.requests.values()) == 0


async def test_a_secret_looking_parameter_is_redacted(sms_gateway_factory, caplog):
    """A parameter named like a secret never shows in a log record or an error."""
    secret = "dlt-api-key-0123456789"
    gw = sms_gateway_factory()
    caplog.set_level(logging.DEBUG)
    driver = Iton(gw.username, gw.password, base_url=gw.iton_url.replace("/api/", "/missing/"))
    async with BulkSender(driver, http="httpx") as bulk:  # httpx logs every request's URL
        result = await bulk.send(numbers(300), "Hi", sender_id="ITONAB", gateway_params={"apikey": secret})
    texts = [caplog.text, repr(result.failed), *(f.reason for f in result.failed.values())]
    assert all(secret not in text for text in texts)
    assert "[REDACTED]" in caplog.text  # httpx's request line, with the parameter hidden


# -- a text per recipient ----------------------------------------------------------------------------


@pytest.mark.parametrize("make", [iton, itecpay], ids=["iton", "itecpay"])
async def test_each_recipient_gets_their_own_text(sms_gateway_factory, make):
    """Pairs send each distinct text in its own requests; rows with the same text share a batch."""
    gw = sms_gateway_factory()
    pairs = [(n, f"Hi #{i}") for i, n in enumerate(numbers(5))]
    pairs += [(n, "Same for all") for n in numbers(120, start=100)]
    async with BulkSender(make(gw)) as bulk:
        result = await bulk.send(pairs, sender_id="ITONAB")
    assert accounted(result)
    assert len(result.message_ids) == 125
    assert result.requests == 5 + 2  # one request per distinct text, then 100 + 20 with the shared one
    by_number = {n: m.text for m in gw.messages.values() for n in m.numbers}
    for i, number in enumerate(numbers(5)):
        assert by_number[number.lstrip("+") if make is iton else number] == f"Hi #{i}"
    assert Counter(m.text for m in gw.messages.values())["Same for all"] == 2
    assert not gw.stats.duplicate_numbers()


async def test_a_template_fills_each_row_and_a_missing_field_makes_that_row_invalid(sms_gateway_factory):
    """A Template's rows with every field are sent; a row missing one is invalid, naming the field."""
    gw = sms_gateway_factory()
    rows = [
        {"phone": "+919800000001", "name": "Asha", "order": "17"},
        {"phone": "+919800000002", "name": "Ravi"},
        {"phone": "+919800000003", "name": "Meena", "order": "18"},
        {"name": "No number", "order": "19"},
    ]
    async with BulkSender(iton(gw)) as bulk:
        result = await bulk.send(rows, Template("Hi {name}, order {order} has shipped"), sender_id="ITONAB")
    assert accounted(result)
    assert result.total == 4
    assert set(result.message_ids) == {"+919800000001", "+919800000003"}
    assert result.failed["+919800000002"].outcome is Outcome.INVALID
    assert "'order'" in result.failed["+919800000002"].reason
    assert "'phone'" in result.failed[""].reason
    texts = sorted(m.text for m in gw.messages.values())
    assert texts == ["Hi Asha, order 17 has shipped", "Hi Meena, order 18 has shipped"]


async def test_text_checks_apply_to_each_text(sms_gateway_factory):
    """An empty text, one past max_segments, and one past 255 parts make only their own rows invalid."""
    gw = sms_gateway_factory()
    pairs = [
        ("+919800000001", "fine"),
        ("+919800000002", ""),
        ("+919800000003", "x" * 400),  # 3 parts, over max_segments=2
        ("+919800000004", "x" * 40_000),  # 262 parts
        ("+919800000005", "€" * 80),  # one part: the extension table counts two septets each
        ("+919800000006", "ça va"),  # UCS-2
    ]
    async with BulkSender(iton(gw)) as bulk:
        result = await bulk.send(pairs, sender_id="ITONAB", max_segments=2)
    assert accounted(result)
    assert set(result.message_ids) == {"+919800000001", "+919800000005", "+919800000006"}
    reasons = {number: failure.reason for number, failure in result.failed.items()}
    assert "empty" in reasons["+919800000002"]
    assert "max_segments=2" in reasons["+919800000003"]
    assert "255" in reasons["+919800000004"]
    unicode = {m.text: m.unicode for m in gw.messages.values()}
    assert unicode == {"fine": "0", "€" * 80: "0", "ça va": "2"}


async def test_a_number_gets_one_message_whatever_its_texts(sms_gateway_factory):
    """The same number twice with different texts is sent once; a row whose text is bad does not use it up."""
    gw = sms_gateway_factory()
    pairs = [("+919800000001", ""), ("+919800000001", "first good"), ("098000 00001", "second good")]
    async with BulkSender(iton(gw), default_region="IN") as bulk:
        result = await bulk.send(pairs, sender_id="ITONAB")
    assert accounted(result)
    assert list(result.message_ids) == ["+919800000001"]
    assert result.duplicates == {"+919800000001": 1}
    assert [m.text for m in gw.messages.values()] == ["first good"]


async def test_the_estimate_sums_parts_per_recipient(sms_gateway_factory):
    """With a text per recipient the cost is each recipient's own parts, added up."""
    gw = sms_gateway_factory()
    pairs = [("+919800000001", "x" * 10), ("+919800000002", "x" * 200), ("+919800000003", "x" * 400)]
    async with BulkSender(iton(gw)) as bulk:
        estimate = await bulk.estimate(pairs, sender_id="ITONAB")
    assert (estimate.recipients, estimate.cost, estimate.segments) == (3, 1 + 2 + 3, 3)


async def test_pairs_that_are_not_pairs_are_invalid_rows(sms_gateway_factory):
    """An item that is not a (number, text) pair is an invalid row with a reason, never a crash."""
    gw = sms_gateway_factory()
    async with BulkSender(iton(gw)) as bulk:
        result = await bulk.send(
            [("+919800000001", "ok"), "+919800000002", ("+919800000003", 5)], sender_id="X1"
        )
    assert accounted(result)
    assert list(result.message_ids) == ["+919800000001"]
    assert len(result.failed) == 2
    assert all(f.outcome is Outcome.INVALID for f in result.failed.values())
