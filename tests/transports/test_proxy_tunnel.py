"""A tunnel whose TLS handshake fails, and a proxy that asks for credentials, on a loopback proxy."""

from __future__ import annotations

import ssl

import httpx
import pytest
from answer_server import NUMBERS, AnswerServer, http_answer, outcome_of, policy, send_once
from connect_proxy import ConnectProxy

from sms_async import BulkSender, Iton, NotSentError, Outcome, Timeouts
from sms_async._wire import Origin
from sms_async.transports._httpx import HttpxTransport, pools_of

trustme = pytest.importorskip("trustme")

pytestmark = pytest.mark.timeout(60)

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def no_proxy_settings(monkeypatch):
    """Start each test with no proxy variable from the environment."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture(scope="module")
def ca():
    """A private certificate authority."""
    return trustme.CA()


@pytest.fixture
def tls_gateway(ca):
    """A loopback TLS gateway that closes each connection after its answer: each batch needs a tunnel."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    answer = http_answer(extra_headers=b"Connection: close\r\n")
    with AnswerServer(answer, close=True, tls=context) as server:
        yield server


def trusting(ca) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_a_reset_tls_handshake_in_a_tunnel_frees_its_slot_and_the_retry_opens_a_new_tunnel(
    monkeypatch, ca, tls_gateway
):
    """concurrency=1: each batch's first tunnel's TLS is reset; the retry opens another that carries it."""
    with ConnectProxy(lambda n: "reset" if n % 2 == 0 else "relay") as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        driver = Iton("user", "pass-word-1", base_url=tls_gateway.origin + "/api/")
        timeouts = Timeouts(connect=2.0, read=2.0, write=2.0, pool=2.0)
        async with BulkSender(
            driver, concurrency=1, retry=policy(attempts=2), timeouts=timeouts, verify=trusting(ca)
        ) as bulk:
            assert bulk.http_backend == "httpx"
            results = [await bulk.send(NUMBERS, "Hello", sender_id="ITONAB") for _ in range(3)]
            # Each tunnel closed after its answer, the reset ones included: none is left holding a slot.
            stats = bulk.stats()
    assert (stats.connections_open, stats.connections_idle) == (0, 0)
    # Without the workaround the first reset tunnel keeps the only slot: every later try is a PoolTimeout.
    assert [outcome_of(result) for result in results] == ["accepted"] * 3
    assert [result.requests for result in results] == [2, 2, 2]
    assert proxy.actions == ["reset", "relay"] * 3
    assert tls_gateway.requests == 3


async def test_a_proxy_407_on_connect_is_unsent_and_names_the_proxy(monkeypatch, ca, tls_gateway):
    """A CONNECT answered with 407 is unsent, and its message blames the proxy (named), not the gateway."""
    with ConnectProxy(lambda _: "407") as proxy:
        shown = proxy.url.removeprefix("http://")
        monkeypatch.setenv("HTTPS_PROXY", f"http://puser:proxy-pw-2@{shown}")
        result = await send_once(tls_gateway.origin, "httpx", http="auto", verify=trusting(ca))
    assert outcome_of(result) == str(Outcome.UNSENT)
    message = str(next(iter(result.failed.values())).error)
    assert shown in message
    assert "407" in message
    assert "proxy" in message
    assert "proxy-pw-2" not in message
    assert tls_gateway.requests == 0


async def test_a_forwarding_proxy_407_is_unsent_and_names_the_proxy(monkeypatch):
    """A plain-HTTP proxy answering 407 itself leaves the batch unsent (not rejected), blaming the proxy."""
    refusal = (
        b"HTTP/1.1 407 Proxy Authentication Required\r\n"
        b'Proxy-Authenticate: Basic realm="loopback"\r\nContent-Length: 0\r\n\r\n'
    )
    with (
        AnswerServer(http_answer(), close=False) as gateway,
        AnswerServer(refusal, close=False) as proxy,
    ):
        shown = f"127.0.0.1:{proxy.port}"
        monkeypatch.setenv("HTTP_PROXY", f"http://puser:proxy-pw-3@{shown}")
        result = await send_once(gateway.origin, "httpx", http="auto", retry=policy(attempts=2))
    assert outcome_of(result) == str(Outcome.UNSENT)
    error = next(iter(result.failed.values())).error
    assert isinstance(error, NotSentError)
    assert shown in str(error)
    assert "gateway did not see it" in str(error)
    assert "proxy-pw-3" not in str(error)
    assert gateway.requests == 0


def test_httpx_still_keeps_its_proxy_pools_where_the_workaround_looks():
    """The workaround reaches httpx's proxy pools by two private names; this fails if httpx moves them."""
    import httpcore  # noqa: PLC0415 - only here

    client = httpx.AsyncClient(proxy="http://127.0.0.1:1")
    pools = [getattr(t, "_pool", None) for t in client._mounts.values()]
    assert any(isinstance(pool, httpcore.AsyncHTTPProxy) for pool in pools)


async def test_stats_count_the_connections_in_the_proxy_pool(monkeypatch, ca):
    """Through ``HTTPS_PROXY`` the sender's connections are the proxy pool's tunnels, and are counted."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    with (
        AnswerServer(http_answer(), close=False, tls=context) as gateway,
        ConnectProxy(lambda _: "relay") as proxy,
    ):
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        driver = Iton("user", "pass-word-1", base_url=gateway.origin + "/api/")
        async with BulkSender(driver, concurrency=2, retry=policy(), verify=trusting(ca)) as bulk:
            assert bulk.http_backend == "httpx"
            before = bulk.stats()
            results = [await bulk.send(NUMBERS, "Hello", sender_id="ITONAB") for _ in range(2)]
            after = bulk.stats()
    assert [outcome_of(result) for result in results] == ["accepted"] * 2
    assert (before.connections_open, before.connections_idle) == (0, 0)
    # One tunnel, kept alive and reused by the second send.
    assert proxy.tunnels == 1
    assert (after.connections_open, after.connections_idle) == (1, 1)


def test_httpx_still_keeps_its_pools_where_the_stats_look():
    """``stats()`` reads httpx's pools by three private names, and httpcore's connections by public ones.

    This fails if httpx moves them; the sender would then report the connections as not known (``None``).
    """
    import httpcore  # noqa: PLC0415 - only here

    client = httpx.AsyncClient(proxy="http://127.0.0.1:1", mounts={"http://example.org": None})
    assert isinstance(client._transport, httpx.AsyncHTTPTransport)
    assert isinstance(client._transport._pool, httpcore.AsyncConnectionPool)
    assert isinstance(client._mounts, dict)
    proxies = [t._pool for t in client._mounts.values() if isinstance(t, httpx.AsyncHTTPTransport)]
    assert any(isinstance(pool, httpcore.AsyncHTTPProxy) for pool in proxies)
    assert isinstance(httpcore.AsyncConnectionPool.connections, property)
    for method in ("is_idle", "is_closed"):
        assert callable(getattr(httpcore.AsyncConnectionInterface, method))
    pools = pools_of(client)
    assert pools is not None
    assert len(pools) == 2


def test_stats_say_not_known_when_httpx_keeps_its_pools_elsewhere():
    """A client whose transports are not where httpx keeps them now: no pools, and no crash."""
    client = httpx.AsyncClient()
    moved = httpx.AsyncClient()
    del moved._transport
    mocked = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(200)))
    assert pools_of(moved) is None
    assert pools_of(mocked) is None
    origin = Origin("http", "127.0.0.1", 1, "/")
    transport = HttpxTransport(client, origin, owns_client=True)
    assert transport.connections() == (0, 0)
    transport._pools = (object(),)  # type: ignore[assignment]  # a pool without `connections`
    assert transport.connections() is None
