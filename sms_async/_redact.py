"""Keeping credentials out of reprs, errors and every log record.

ITON carries the password in the query string, and httpx logs full URLs at
INFO, so redaction works on text: every registered secret, in every form it
can take on the wire (raw, percent-encoded, JSON-escaped), and any
``password=``/``token=`` query parameter whatever its value.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from urllib.parse import quote, quote_plus

__all__ = ["REDACTED", "install_log_filter", "redact", "register_secret"]

REDACTED = "[REDACTED]"
_MIN_SECRET = 4

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
_PARAM = re.compile(
    r"((?:password|passwd|token|api_key|apikey|secret)=)[^&\s\"'#]*|(Authorization:\s*\w+\s+)\S+|"
    r"(\"(?:password|token)\"\s*:\s*\")(?:[^\"\\]|\\.)*",
    re.IGNORECASE,
)

# Loggers whose records may carry a request URL. Filters attached to a logger
# only see records logged on that very logger, so the children are listed too.
_LOGGERS = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "sms_async",
    "aiohttp.client",
    "tenacity",
)


def register_secret(secret: str | None) -> None:
    """Remember a credential so that every later redaction removes it."""
    global _pattern  # noqa: PLW0603 - one process-wide registry, guarded by the lock
    if not secret or len(secret) < _MIN_SECRET:
        # Replacing every "p" of every log line would destroy them; a very
        # short secret is still caught where it travels, as a parameter.
        return
    forms = {secret, quote(secret, safe=""), quote_plus(secret, safe=""), json.dumps(secret)[1:-1]}
    with _lock:
        before = len(_secrets)
        _secrets.update(form for form in forms if form)
        if len(_secrets) != before:
            ordered = sorted(_secrets, key=len, reverse=True)
            _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def _param_sub(match: re.Match[str]) -> str:
    prefix = match.group(1) or match.group(2) or match.group(3) or ""
    return prefix + REDACTED


# Searched in the lower-cased text: a case-insensitive search is many times slower.
_HINTS = re.compile(r"passw|token|api_?key|secret|authorization")


def redact(text: str) -> str:
    """Return ``text`` with every known credential replaced by ``[REDACTED]``."""
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    # The parameter pattern is costlier; most texts (gateway answers on the
    # hot path) hold none of its words.
    if _HINTS.search(text.lower()) is not None:
        text = _PARAM.sub(_param_sub, text)
    return text


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record must not break logging
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = ()
        return True


_filter = _RedactingFilter()
_installed = False


def install_log_filter() -> None:
    """Attach the redacting filter to every logger that may see a request URL."""
    global _installed  # noqa: PLW0603 - install once per process
    if _installed:
        return
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _filter not in logger.filters:
            logger.addFilter(_filter)
    _installed = True
