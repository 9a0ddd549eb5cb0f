"""Trust and proxies: one TLS context for both transports, and the proxy the environment names.

The default trust store is httpx's: certifi's CA bundle, or the file and
directory named by ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` when the
environment is trusted (``trust_env=True``). One context is built that way and
handed to whichever transport sends, so that switching transport never
changes which certificates are trusted.

Proxies are read as httpx reads them (``HTTP_PROXY``, ``HTTPS_PROXY``,
``ALL_PROXY`` and ``NO_PROXY``, in either case), and matched against the
gateway's origin by httpx's own rules.
"""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

import httpx

from sms_async import _exceptions as exc
from sms_async._wire import Origin

__all__ = ["describe_proxy", "environment_proxy", "ssl_context_for"]

# httpx's own reading and matching of the proxy variables, so that "a proxy
# applies" means here exactly what it means to the httpx client that will
# carry the request. They are not public names; should a later httpx move
# them, any proxy variable at all sends the request through httpx.
try:
    from httpx._utils import URLPattern, get_environment_proxies
except ImportError:  # pragma: no cover - depends on the installed httpx
    URLPattern = None  # type: ignore[assignment,misc]
    get_environment_proxies = None  # type: ignore[assignment]

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")


def ssl_context_for(verify: ssl.SSLContext | bool, *, trust_env: bool) -> ssl.SSLContext:
    """The TLS context both transports use: the caller's own, or httpx's default.

    ``verify=True`` trusts certifi's bundle (or ``SSL_CERT_FILE`` /
    ``SSL_CERT_DIR`` when ``trust_env``); ``False`` checks no certificate.
    """
    if isinstance(verify, ssl.SSLContext):
        return verify
    if not isinstance(verify, bool):
        raise exc.ConfigurationError(
            f"verify must be True, False or an ssl.SSLContext, got {type(verify).__name__}: "
            "for a CA bundle file, pass ssl.create_default_context(cafile=...)"
        )
    failure = None
    try:
        return httpx.create_ssl_context(verify=verify, trust_env=trust_env)
    except (OSError, ssl.SSLError) as error:
        # SSL_CERT_FILE or SSL_CERT_DIR names something unreadable.
        failure = exc.ConfigurationError(
            f"the CA certificates could not be loaded ({type(error).__name__}: {error}); check "
            "SSL_CERT_FILE and SSL_CERT_DIR, or pass trust_env=False or verify=<ssl.SSLContext>"
        )
    raise failure


def environment_proxy(origin: Origin) -> str | None:
    """The proxy URL the environment sets for ``origin``, as httpx would pick it; ``None`` if none."""
    if URLPattern is None or get_environment_proxies is None:  # pragma: no cover - older or newer httpx
        import os  # noqa: PLC0415 - only on this fallback path

        for name in _PROXY_VARIABLES:
            value = os.environ.get(name) or os.environ.get(name.upper())
            if value:
                return value
        return None
    url = httpx.URL(origin.url)
    # Most specific pattern first, as the httpx client orders its mounts.
    mounts = sorted(
        ((URLPattern(key), proxy) for key, proxy in get_environment_proxies().items()), key=lambda m: m[0]
    )
    for pattern, proxy in mounts:
        if pattern.matches(url):
            return proxy
    return None


def describe_proxy(proxy: str) -> str:
    """A proxy URL fit for a log line: scheme, host and port, never a user name or password."""
    try:
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host = parts.hostname or "?"
        port = parts.port
    except ValueError:
        return "(an unreadable proxy URL)"
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown}" + (f":{port}" if port else "")
