"""Keeping credentials out of reprs, errors and every log record.

ITON carries the password in the query string, and httpx logs full URLs at
INFO, so redaction works on text: every secret of a live owner (a driver, or
the command line's settings), in every form it can take on the wire (raw,
percent-encoded, JSON-escaped), and any ``password=``/``token=`` parameter
whatever its value.

A secret is kept for as long as its owner lives (:func:`keep_secrets`): a
driver that is garbage-collected takes its password with it, so nothing
piles up in a long-running process, and one test's secrets never stand in for
another's. The logging filter is attached once, on first use (a sender
opening) or when :func:`install_log_filter` is called, never by a
constructor.
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import re
import threading
import weakref
from urllib.parse import quote, quote_plus

__all__ = ["REDACTED", "install_log_filter", "keep_secrets", "redact"]

REDACTED = "[REDACTED]"
_MIN_SECRET = 4

_lock = threading.Lock()
# Secret form -> how many live owners hold it.
_forms: dict[str, int] = {}
# id(owner) -> (a weak reference to it, its token); token -> the forms it holds.
_owners: dict[int, tuple[weakref.ref[object], int]] = {}
_held: dict[int, set[str]] = {}
_tokens = itertools.count()
# Tokens of owners that died. A finalizer may run at any allocation, even
# while this thread holds the lock, so it only appends here (deque.append is
# atomic); whoever takes the lock next forgets them.
_dead: collections.deque[int] = collections.deque()
_pattern: re.Pattern[str] | None = None
_stale = False

_PARAM = re.compile(
    # A bare "password=" followed by punctuation and a space (or the end) names the
    # parameter in prose, as a hint does ("needs password=, or token="): it holds no value.
    r"((?:password|passwd|token|api_key|apikey|secret)=)(?![,.;:)]*(?:\s|$))[^&\s\"'#]*|"
    r"(Authorization:\s*\w+\s+)\S+|"
    r"(\"(?:password|token)\"\s*:\s*\")(?:[^\"\\]|\\.)*",
    re.IGNORECASE,
)
# Searched in the lower-cased text: a case-insensitive search is many times slower.
_HINTS = re.compile(r"passw|token|api_?key|secret|authorization")

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


def _forms_of(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote_plus(secret, safe=""), json.dumps(secret)[1:-1]} - {""}


def _forget_the_dead() -> None:
    """Forget the secrets of owners that died (the lock is held)."""
    global _stale  # noqa: PLW0603 - the registry is one per process, guarded by the lock
    while _dead:
        token = _dead.popleft()
        for form in _held.pop(token, ()):
            left = _forms.get(form, 0) - 1
            if left > 0:
                _forms[form] = left
            else:
                _forms.pop(form, None)
        _stale = True
    for key in [key for key, (_, token) in _owners.items() if token not in _held]:
        del _owners[key]


def keep_secrets(owner: object, *secrets: str | None) -> None:
    """Redact ``secrets`` everywhere for as long as ``owner`` lives.

    A secret shorter than four characters is not searched for as text
    (replacing every "p" of every log line would destroy them); it is still
    caught where it travels, as a ``password=`` or ``token=`` parameter.
    """
    global _stale  # noqa: PLW0603 - see _forget_the_dead
    forms: set[str] = set()
    for secret in secrets:
        if secret and len(secret) >= _MIN_SECRET:
            forms |= _forms_of(secret)
    if not forms:
        return
    with _lock:
        if _dead:
            _forget_the_dead()
        entry = _owners.get(id(owner))
        if entry is None or entry[0]() is not owner:
            token = next(_tokens)
            _owners[id(owner)] = (weakref.ref(owner), token)
            _held[token] = set()
            weakref.finalize(owner, _dead.append, token)
        else:
            token = entry[1]
        held = _held[token]
        new = forms - held
        if not new:
            return
        held |= new
        for form in new:
            _forms[form] = _forms.get(form, 0) + 1
        _stale = True


def _current_pattern() -> re.Pattern[str] | None:
    global _pattern, _stale  # noqa: PLW0603 - see _forget_the_dead
    if _stale or _dead:
        with _lock:
            _forget_the_dead()
            ordered = sorted(_forms, key=len, reverse=True)
            _pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
            _stale = False
    return _pattern


def _param_sub(match: re.Match[str]) -> str:
    prefix = match.group(1) or match.group(2) or match.group(3) or ""
    return prefix + REDACTED


def redact(text: str) -> str:
    """Return ``text`` with every known credential replaced by ``[REDACTED]``."""
    pattern = _current_pattern()
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
    """Attach the redacting filter to every logger that may see a request URL (once per process).

    A sender does this when it opens; call it yourself to cover log records
    made before that.
    """
    global _installed  # noqa: PLW0603 - install once per process
    if _installed:
        return
    with _lock:
        for name in _LOGGERS:
            logger = logging.getLogger(name)
            if _filter not in logger.filters:
                logger.addFilter(_filter)
        _installed = True
