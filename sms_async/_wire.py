"""What travels on the wire: a described request, a received answer, an origin.

Drivers build :class:`WireRequest` values and parse :class:`WireResponse`
values; the HTTP layer moves them. The request target is kept as an
already-encoded string so that no URL is parsed per request: a driver builds
the long, constant part of an ITON query string once per campaign and appends
the numbers for each batch. What goes into it from configuration is encoded
once, here: a host name becomes its IDNA (ASCII) form, a path is
percent-encoded (an existing ``%XX`` escape is kept, so encoding twice
changes nothing).
"""

from __future__ import annotations

import email.utils
import ipaddress
import math
import re
import time
from urllib.parse import quote, urlsplit

import idna

from sms_async._exceptions import ConfigurationError
from sms_async._redact import redact

__all__ = ["Origin", "WireRequest", "WireResponse", "parse_retry_after"]

# RFC 3986 pchar and "/", less "%", which is only kept where it starts an escape.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_ESCAPE = re.compile(r"(%[0-9A-Fa-f]{2})")


def _encode_path(path: str) -> str:
    """``path`` percent-encoded as a URL path; valid ``%XX`` escapes are left as they are."""
    pieces = _ESCAPE.split(path)
    # split() with a group alternates text and escapes: escapes sit at odd indexes.
    return "".join(piece if i % 2 else quote(piece, safe=_PATH_SAFE) for i, piece in enumerate(pieces))


def _ascii_host(host: str, url: str, what: str) -> str:
    """``host`` as it goes on the wire and into DNS: IDNA (punycode) for a non-ASCII name."""
    if host.isascii():
        return host
    problem = None
    try:
        # The encoding httpx uses, so that both transports reach the same host.
        return idna.encode(host).decode("ascii")
    except idna.IDNAError as error:
        problem = str(error)
    raise ConfigurationError(
        f"{what} {redact(url)!r} has a host name that is not a valid internationalised domain name "
        f"({redact(problem)}): check its spelling, or give its ASCII (xn--) form"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Origin:
    """Scheme, host, port and base path of a gateway endpoint, parsed once."""

    __slots__ = ("base_path", "host", "host_header", "is_loopback", "port", "scheme")

    def __init__(self, scheme: str, host: str, port: int, base_path: str) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.base_path = base_path
        self.is_loopback = _is_loopback(host)
        default_port = 443 if scheme == "https" else 80
        shown = f"[{host}]" if ":" in host else host
        self.host_header = shown if port == default_port else f"{shown}:{port}"

    @classmethod
    def parse(cls, url: str, *, allow_insecure_http: bool = False, what: str = "base_url") -> Origin:
        """Parse and check a gateway URL.

        Only ``https://`` is accepted, except for a loopback host or with
        ``allow_insecure_http=True``: the request carries the account's
        password.
        """
        if not isinstance(url, str) or not url.strip():
            raise ConfigurationError(
                f"{what} must be a URL such as 'https://gateway.example/api/', got {url!r}"
            )
        problem = None
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as error:
            problem = str(error)
        if problem is not None:
            raise ConfigurationError(f"{what} {redact(url)!r} is not a valid URL: {redact(problem)}")
        scheme = parts.scheme.lower()
        if scheme not in {"http", "https"}:
            raise ConfigurationError(
                f"{what} {redact(url)!r} must start with https:// (got scheme {parts.scheme!r})"
            )
        host = parts.hostname or ""
        if not host:
            raise ConfigurationError(f"{what} {redact(url)!r} has no host name")
        if parts.username is not None or parts.password is not None:
            raise ConfigurationError(
                f"{what} must not carry credentials (user:password@host): "
                "pass them as username= and password="
            )
        if parts.query or parts.fragment:
            raise ConfigurationError(
                f"{what} {redact(url)!r} must not have a query string or fragment; the driver adds its own"
            )
        if scheme == "http" and not allow_insecure_http and not _is_loopback(host):
            raise ConfigurationError(
                f"{what} {url!r} uses plain http:// to a non-loopback host, which would send the password "
                "unencrypted: use https://, or pass allow_insecure_http=True if you really mean it"
            )
        default_port = 443 if scheme == "https" else 80
        host = _ascii_host(host, url, what)
        return cls(scheme, host, port or default_port, _encode_path(parts.path or "/"))

    @property
    def url(self) -> str:
        """The origin and base path as a URL (holds no credential)."""
        return f"{self.scheme}://{self.host_header}{self.base_path}"

    def join(self, path: str) -> str:
        """The base path with ``path`` appended (one slash between them), percent-encoded."""
        if not path:
            return self.base_path
        if "?" in path or "#" in path:
            raise ConfigurationError(
                f"the path {redact(path)!r} holds '?' or '#': give a path only; "
                "the driver builds the query string itself"
            )
        return self.base_path.rstrip("/") + "/" + _encode_path(path.lstrip("/"))

    def __repr__(self) -> str:
        return f"Origin({self.url!r})"


class WireRequest:
    """A request described by a driver: method, origin-form target, headers, body.

    ``target`` may hold a credential (ITON's query string); :meth:`__repr__`
    and :meth:`describe` redact it.
    """

    __slots__ = ("body", "headers", "method", "operation", "target")

    def __init__(
        self,
        method: str,
        target: str,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
        operation: str = "send",
    ) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.operation = operation

    def describe(self) -> str:
        """``METHOD target`` with credentials redacted, capped for log lines."""
        target = redact(self.target)
        if len(target) > 200:
            target = target[:200] + "..."
        return f"{self.method} {target}"

    def __repr__(self) -> str:
        return f"<WireRequest {self.operation} {self.describe()}>"


class WireResponse:
    """An answer: HTTP status, headers (lower-case names), body bytes."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def text(self) -> str:
        """The body decoded as UTF-8 (bad bytes replaced)."""
        return self.body.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"<WireResponse {self.status} {len(self.body)} bytes>"


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (seconds or an HTTP date).

    Returns ``None`` for a missing or unreadable value; never a negative or
    non-finite number. Capping is the retry policy's job.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when is None:
            return None  # older Pythons return None for junk
        current = time.time() if now is None else now
        try:
            seconds = when.timestamp() - current
        except (OverflowError, OSError, ValueError):
            return None
    if math.isnan(seconds):
        return None
    if math.isinf(seconds):
        return None if seconds < 0 else math.inf
    return max(0.0, seconds)
