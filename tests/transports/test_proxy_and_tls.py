"""Proxies from the environment, and TLS with a private CA, over loopback on both transports."""

from __future__ import annotations

import logging
import ssl

import pytest
from answer_server import AnswerServer, http_answer, outcome_of, policy, send_once

from sms_async import ConfigurationError, NotSentError, Outcome

trustme = pytest.importorskip("trustme")

pytestmark = pytest.mark.timeout(60)

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def no_proxy_settings(monkeypatch):
    """Start each test with no proxy variable and no CA location from the environment."""
    for name in (*PROXY_VARIABLES, "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


# -- proxies ---------------------------------------------------------------------------


@pytest.fixture
def gateway():
    """A gateway that would answer, to show whether a request went direct."""
    with AnswerServer(http_answer(), close=False) as server:
        yield server


@pytest.fixture
def proxy():
    """A forward proxy on loopback that answers for the gateway itself (it records what it was asked)."""
    with AnswerServer(http_answer(), close=False) as server:
        yield server


async def test_a_send_with_http_proxy_set_goes_through_the_proxy(monkeypatch, caplog, gateway, proxy):
    """With HTTP_PROXY set, the request reaches the proxy (through httpx), never the gateway, and says so."""
    monkeypatch.setenv("HTTP_PROXY", f"http://puser:proxy-secret-1@127.0.0.1:{proxy.port}")
    caplog.set_level(logging.DEBUG, logger="sms_async")
    result = await send_once(gateway.origin, "httpx", http="auto")
    assert outcome_of(result) == "accepted"
    assert gateway.requests == 0
    assert proxy.requests == 1
    assert proxy.targets[0].startswith(f"{gateway.origin}/api/?")  # absolute form: a proxied request
    messages = [r.getMessage() for r in caplog.records if r.name == "sms_async"]
    assert any("proxy" in m and f"127.0.0.1:{proxy.port}" in m for m in messages), messages
    assert "proxy-secret-1" not in caplog.text
    assert "puser" not in caplog.text


async def test_all_proxy_applies_too(monkeypatch, gateway, proxy):
    """ALL_PROXY sends an http:// request through the proxy as well."""
    monkeypatch.setenv("ALL_PROXY", f"http://127.0.0.1:{proxy.port}")
    result = await send_once(gateway.origin, "httpx", http="auto")
    assert outcome_of(result) == "accepted"
    assert (gateway.requests, proxy.requests) == (0, 1)


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "*", "localhost,127.0.0.1"])
async def test_no_proxy_sends_direct_on_the_fast_transport(monkeypatch, gateway, proxy, no_proxy):
    """An origin NO_PROXY names goes direct, on the fast transport."""
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    result = await send_once(gateway.origin, "fast", http="auto")
    assert outcome_of(result) == "accepted"
    assert (gateway.requests, proxy.requests) == (1, 0)


async def test_trust_env_false_ignores_the_proxy(monkeypatch, gateway, proxy):
    """trust_env=False sends direct, whatever the environment says."""
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    result = await send_once(gateway.origin, "fast", http="auto", trust_env=False)
    assert outcome_of(result) == "accepted"
    assert (gateway.requests, proxy.requests) == (1, 0)


async def test_https_proxy_does_not_apply_to_an_http_origin(monkeypatch, gateway, proxy):
    """HTTPS_PROXY is for https:// origins; an http:// one goes direct."""
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
    result = await send_once(gateway.origin, "fast", http="auto")
    assert outcome_of(result) == "accepted"
    assert proxy.requests == 0


async def test_asking_for_the_fast_transport_behind_a_proxy_is_refused(monkeypatch, gateway, proxy):
    """http='fast' never goes direct past a proxy: it is a configuration error that says what to do."""
    monkeypatch.setenv("HTTP_PROXY", f"http://user:pw-in-proxy-url@127.0.0.1:{proxy.port}")
    with pytest.raises(ConfigurationError, match="trust_env=False") as info:
        await send_once(gateway.origin, "fast", http="fast")
    assert "pw-in-proxy-url" not in str(info.value)
    assert (gateway.requests, proxy.requests) == (0, 0)


async def test_a_proxy_httpx_cannot_use_is_a_configuration_error(monkeypatch, gateway):
    """A proxy variable with a scheme httpx does not know is refused up front, without its password."""
    monkeypatch.setenv("HTTP_PROXY", "ftp://user:pw-in-ftp-url@127.0.0.1:1")
    with pytest.raises(ConfigurationError, match="HTTP_PROXY") as info:
        await send_once(gateway.origin, "httpx", http="auto")
    assert "pw-in-ftp-url" not in str(info.value)
    assert gateway.requests == 0


# -- TLS ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca():
    """A private certificate authority."""
    return trustme.CA()


@pytest.fixture
def tls_gateway(ca):
    """A TLS gateway on loopback whose certificate the private CA issued."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    with AnswerServer(http_answer(), close=False, tls=context) as server:
        yield server


def trusting(ca) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.mark.parametrize(("http", "backend"), [("auto", "fast"), ("httpx", "httpx")])
async def test_verify_with_a_private_ca_context_works(ca, tls_gateway, http, backend):
    """verify=<SSLContext trusting a private CA> reaches a loopback TLS gateway, on fast and on httpx."""
    result = await send_once(tls_gateway.origin, backend, http=http, verify=trusting(ca))
    assert outcome_of(result) == "accepted"
    assert tls_gateway.requests == 1


@pytest.mark.parametrize(("http", "backend"), [("auto", "fast"), ("httpx", "httpx")])
async def test_an_untrusted_certificate_is_never_sent(tls_gateway, http, backend):
    """With the default trust store, a private CA's certificate fails: unsent after retries, nothing read."""
    result = await send_once(tls_gateway.origin, backend, http=http, retry=policy(attempts=2))
    assert outcome_of(result) == str(Outcome.UNSENT)
    assert all(isinstance(f.error, NotSentError) for f in result.failed.values())
    assert result.requests == 2
    assert tls_gateway.requests == 0
    assert tls_gateway.handshake_failures >= 1


@pytest.mark.parametrize(("http", "backend"), [("auto", "fast"), ("httpx", "httpx")])
async def test_ssl_cert_file_is_the_default_store_of_both_transports(
    monkeypatch, tmp_path, ca, tls_gateway, http, backend
):
    """SSL_CERT_FILE names the CA bundle both transports trust by default (the environment being trusted)."""
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    result = await send_once(tls_gateway.origin, backend, http=http)
    assert outcome_of(result) == "accepted"
    untrusted = await send_once(
        tls_gateway.origin, backend, http=http, trust_env=False, retry=policy(attempts=1)
    )
    assert outcome_of(untrusted) == str(Outcome.UNSENT)


async def test_verify_false_checks_no_certificate(tls_gateway):
    """verify=False (httpx's meaning) skips the check on the fast transport too."""
    result = await send_once(tls_gateway.origin, "fast", verify=False)
    assert outcome_of(result) == "accepted"


@pytest.mark.parametrize("verify", ["/etc/ssl/certs/ca-certificates.crt", None, 1])
def test_verify_of_another_type_is_refused_with_advice(verify):
    """A path, None or a number for verify= is a configuration error naming the way to pass a CA file."""
    from sms_async import BulkSender, Iton  # noqa: PLC0415 - kept next to its only use

    with pytest.raises(ConfigurationError, match="create_default_context"):
        BulkSender(Iton("u", "password-1", base_url="https://127.0.0.1:1/api/"), verify=verify)
