"""Every httpx error maps to "never sent" or "maybe sent", and no mapped error carries a password."""

from __future__ import annotations

import traceback
from urllib.parse import quote, quote_plus

import httpx
import pytest

from sms_async import Iton, MaybeSentError, Message, NotSentError, RetryPolicy
from sms_async import _exceptions as exc
from sms_async.transports import HttpxTransport, map_httpx_error

PASSWORD = "s3cr3t-P@ss&word=1"
LEAKS = {PASSWORD, quote(PASSWORD, safe=""), quote_plus(PASSWORD), "s3cr3t"}

# The manual's retry table (docs/reference/retries.md), per httpx class: the class each maps to.
# Connect, connect timeout and pool timeout never left the machine; reads, writes and
# a broken answer may have reached the gateway. Classes httpx raises only in ways where
# we cannot tell (the abstract bases, a close or decoding failure) count as maybe sent.
EXPECTED: dict[type[httpx.HTTPError], type[exc.TransportError]] = {
    httpx.ConnectError: exc.ConnectError,
    httpx.ConnectTimeout: exc.ConnectTimeout,
    httpx.PoolTimeout: exc.PoolTimeout,
    httpx.ProxyError: exc.NotSentError,
    httpx.UnsupportedProtocol: exc.NotSentError,
    httpx.LocalProtocolError: exc.NotSentError,
    httpx.ReadTimeout: exc.ReadTimeout,
    httpx.ReadError: exc.ReadError,
    httpx.WriteError: exc.WriteError,
    httpx.WriteTimeout: exc.WriteError,
    httpx.RemoteProtocolError: exc.RemoteProtocolError,
    httpx.CloseError: exc.MaybeSentError,
    httpx.DecodingError: exc.MaybeSentError,
    httpx.TooManyRedirects: exc.MaybeSentError,
    httpx.HTTPStatusError: exc.MaybeSentError,
    httpx.HTTPError: exc.MaybeSentError,
    httpx.RequestError: exc.MaybeSentError,
    httpx.TransportError: exc.MaybeSentError,
    httpx.TimeoutException: exc.MaybeSentError,
    httpx.NetworkError: exc.MaybeSentError,
    httpx.ProtocolError: exc.MaybeSentError,
}


# Classes httpx raises outside httpx.HTTPError. InvalidURL and CookieConflict come while a
# request is built, before any byte leaves; a stream error may come after, so it is maybe sent.
OTHER_EXPECTED: dict[type[Exception], type[exc.TransportError]] = {
    httpx.InvalidURL: exc.ConnectError,
    httpx.CookieConflict: exc.ConnectError,
    httpx.StreamError: exc.MaybeSentError,
    httpx.StreamConsumed: exc.MaybeSentError,
    httpx.StreamClosed: exc.MaybeSentError,
    httpx.ResponseNotRead: exc.MaybeSentError,
    httpx.RequestNotRead: exc.MaybeSentError,
}


def all_httpx_errors() -> set[type[httpx.HTTPError]]:
    found: set[type[httpx.HTTPError]] = {httpx.HTTPError}
    todo = [httpx.HTTPError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found and sub.__module__.split(".")[0] == "httpx":
                found.add(sub)
                todo.append(sub)
    return found


@pytest.fixture
def driver() -> Iton:
    return Iton(username="user1", password=PASSWORD)


def request_with_password(driver: Iton) -> httpx.Request:
    wire = driver.prepare_send(Message.create("Hello", "ITONAB")).build(["+919812345678"])
    return httpx.Request(wire.method, "https://sms.iton.in" + wire.target)


def make_error(cls: type[httpx.HTTPError], request: httpx.Request) -> httpx.HTTPError:
    """An instance of ``cls`` whose message holds the full URL, password included."""
    message = f"{cls.__name__} while talking to {request.url} (password={PASSWORD})"
    if cls is httpx.HTTPStatusError:
        return cls(message, request=request, response=httpx.Response(500, request=request))
    if issubclass(cls, httpx.RequestError):
        return cls(message, request=request)
    return cls(message)


def assert_no_secret(text: str) -> None:
    for leak in LEAKS:
        assert leak not in text, f"{leak!r} leaked in {text!r}"


def test_every_httpx_error_class_has_an_expectation():
    """Each subclass of httpx.HTTPError in the installed httpx is listed, so a new class fails here first."""
    assert all_httpx_errors() == set(EXPECTED)


def test_every_exception_httpx_exports_has_an_expectation():
    """Every exception class in httpx's public names is mapped, those outside httpx.HTTPError included."""
    exported = {
        value
        for name in httpx.__all__
        if isinstance(value := getattr(httpx, name), type) and issubclass(value, Exception)
    }
    assert exported == set(EXPECTED) | set(OTHER_EXPECTED)


@pytest.mark.parametrize("cls", sorted(OTHER_EXPECTED, key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_httpx_errors_outside_http_error_are_mapped(cls):
    """InvalidURL and the others outside httpx.HTTPError map to never sent or maybe sent, as listed."""
    try:
        error = cls(f"{cls.__name__} at https://gw.example/?password={PASSWORD}")
    except TypeError:
        error = cls()  # the stream errors take no message
    mapped = map_httpx_error(error)
    assert isinstance(mapped, OTHER_EXPECTED[cls])
    assert isinstance(mapped, NotSentError) != isinstance(mapped, MaybeSentError)
    assert_no_secret(str(mapped))


@pytest.mark.parametrize("cls", sorted(EXPECTED, key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_each_httpx_error_maps_per_the_retry_table(cls, driver):
    """Each httpx error maps to the expected NotSentError or MaybeSentError subclass."""
    mapped = map_httpx_error(make_error(cls, request_with_password(driver)))
    expected = EXPECTED[cls]
    assert isinstance(mapped, expected), f"{cls.__name__} -> {type(mapped).__name__}"
    assert isinstance(mapped, NotSentError) != isinstance(mapped, MaybeSentError)
    if issubclass(expected, NotSentError):
        assert isinstance(mapped, NotSentError)
    else:
        assert isinstance(mapped, MaybeSentError)


@pytest.mark.parametrize(
    ("cls", "retried_send"),
    [
        (httpx.ConnectError, True),
        (httpx.ConnectTimeout, True),
        (httpx.PoolTimeout, True),
        (httpx.ReadTimeout, False),
        (httpx.ReadError, False),
        (httpx.WriteError, False),
        (httpx.WriteTimeout, False),
        (httpx.RemoteProtocolError, False),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else str(v),
)
def test_mapped_errors_follow_the_retry_policy(cls, retried_send, driver):
    """A send is retried after a never-sent error only; a look-up or an opted-in send after either."""
    mapped = map_httpx_error(make_error(cls, request_with_password(driver)))
    assert RetryPolicy().should_retry(mapped, "send") is retried_send
    assert RetryPolicy().should_retry(mapped, "lookup") is True
    assert RetryPolicy(retry_ambiguous=True).should_retry(mapped, "send") is True


@pytest.mark.parametrize("cls", sorted(EXPECTED, key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_mapped_message_holds_no_password(cls, driver):
    """The mapped error's str, repr and formatted traceback never show the password, raw or encoded."""
    mapped = map_httpx_error(make_error(cls, request_with_password(driver)))
    assert_no_secret(str(mapped))
    assert_no_secret(repr(mapped))
    assert_no_secret(mapped.reason)
    assert_no_secret("".join(traceback.format_exception(mapped)))
    assert mapped.__cause__ is None


def test_mapped_message_holds_no_unregistered_password_parameter():
    """A `password=` query parameter is redacted even for a password that was never registered."""
    error = httpx.ReadError(
        "boom at https://gw.example/api/?username=u&password=never-registered-9&cmd=sendSMS"
    )
    assert "never-registered-9" not in str(map_httpx_error(error))


async def raising_transport(cls: type[httpx.HTTPError], driver: Iton) -> HttpxTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise make_error(cls, request)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return HttpxTransport(client, driver.origin, owns_client=True)


@pytest.mark.parametrize(
    "cls",
    [
        httpx.ConnectError,
        httpx.ConnectTimeout,
        httpx.PoolTimeout,
        httpx.ReadTimeout,
        httpx.RemoteProtocolError,
    ],
    ids=lambda c: c.__name__,
)
async def test_transport_raises_the_mapped_error(cls, driver):
    """HttpxTransport.send raises the mapped sms_async error, never the httpx one, and does not chain it."""
    transport = await raising_transport(cls, driver)
    wire = driver.prepare_send(Message.create("Hello", "ITONAB")).build(["+919812345678"])
    try:
        with pytest.raises(exc.TransportError) as info:
            await transport.send(wire)
    finally:
        await transport.aclose()
    assert isinstance(info.value, EXPECTED[cls])
    assert not isinstance(info.value, httpx.HTTPError)
    assert info.value.__cause__ is None
    assert_no_secret(str(info.value))
    assert_no_secret("".join(traceback.format_exception(info.value)))


@pytest.mark.parametrize("cls", [httpx.ConnectError, httpx.ReadTimeout], ids=lambda c: c.__name__)
async def test_transport_error_chain_holds_no_password(cls, driver):
    """Neither the raised error nor anything on its __cause__/__context__ chain shows the password."""
    transport = await raising_transport(cls, driver)
    wire = driver.prepare_send(Message.create("Hello", "ITONAB")).build(["+919812345678"])
    try:
        with pytest.raises(exc.TransportError) as info:
            await transport.send(wire)
    finally:
        await transport.aclose()
    error: BaseException | None = info.value
    while error is not None:
        assert_no_secret(str(error))
        assert_no_secret(repr(error))
        error = error.__cause__ or error.__context__


async def test_transport_never_follows_a_redirect(driver):
    """A 302 comes back as an answer; the Location is never requested."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers={"Location": "https://elsewhere.example/"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler), follow_redirects=True)
    transport = HttpxTransport(client, driver.origin, owns_client=True)
    wire = driver.prepare_send(Message.create("Hello", "ITONAB")).build(["+919812345678"])
    try:
        response = await transport.send(wire)
    finally:
        await transport.aclose()
    assert response.status == 302
    assert len(seen) == 1
    assert "elsewhere" not in seen[0]


async def test_a_url_httpx_refuses_is_never_sent_and_leaks_nothing(driver):
    """A target httpx cannot make a URL of is a ConnectError (never sent), unchained, without the password."""
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    transport = HttpxTransport(client, driver.origin, owns_client=True)
    wire = driver.prepare_send(Message.create("Hello", "ITONAB")).build(["+919812345678"])
    wire.target += "&x=\x01"  # httpx refuses non-printable characters in a URL
    try:
        with pytest.raises(exc.ConnectError, match=r"could not be built \(InvalidURL\)") as info:
            await transport.send(wire)
    finally:
        await transport.aclose()
    assert calls == []
    assert info.value.__cause__ is None
    assert info.value.__context__ is None
    assert_no_secret(str(info.value))
    assert_no_secret("".join(traceback.format_exception(info.value)))
