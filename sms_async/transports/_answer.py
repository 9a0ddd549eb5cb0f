"""Reading one HTTP/1.1 answer with llhttp (through httptools), within fixed caps.

llhttp is the parser Node.js and uvicorn use. It refuses what a careful
parser must (conflicting or duplicate ``Content-Length``, a bad chunk size,
junk after a chunk, whitespace before a colon, a status line that is not
one), streams every framing (length, chunked, read until close) through one
callback, and does a constant amount of work per byte. What it does not do,
this module adds: caps on the head, the body, the trailers and the bytes a
gateway may send without the answer moving on; the choice of which
``Transfer-Encoding`` and ``Content-Encoding`` values we accept; and the end of
a read-until-close body at end of file (httptools has no ``finish()``).

:class:`AnswerReader` raises :class:`AnswerError`, whose text is ours and
holds nothing the gateway sent but llhttp's own reason.
"""

from __future__ import annotations

import contextlib
import math

from sms_async._wire import WireResponse
from sms_async.transports._base import MAX_BODY, MAX_HEAD

try:
    import httptools
except ImportError:  # pragma: no cover - a platform without its wheel; tests patch the name instead
    httptools = None  # type: ignore[assignment]

__all__ = ["AnswerError", "AnswerReader", "available"]

# Framing costs bytes beyond the body (a one-byte chunk takes six on the
# wire); past this many bytes for one answer the gateway is not answering.
_MAX_WIRE = MAX_HEAD + 8 * MAX_BODY


def available() -> bool:
    """Whether httptools (llhttp) can be imported here."""
    return httptools is not None


class AnswerError(Exception):
    """The answer broke HTTP/1.1 or a cap; the text says how (and holds no request data)."""


class _Stop(Exception):
    """Raised in a callback to stop llhttp; the reader's state says why."""


class AnswerReader:
    """Collects the answers of one connection from the bytes fed to it, one at a time.

    Feed every received piece to :meth:`feed` until it returns ``True``; at
    end of file call :meth:`feed_eof`. Then :meth:`response` is the answer and
    :attr:`keep_alive` says whether the connection may carry another request;
    if it does, :meth:`reset` before the next one.
    """

    __slots__ = (
        "_body",
        "_body_size",
        "_extra",
        "_fed",
        "_head_done",
        "_informational",
        "_parser",
        "_problem",
        "_progress",
        "_stalled",
        "_trailer_size",
        "_until_close",
        "complete",
        "headers",
        "keep_alive",
        "server_keepalive",
        "status",
    )

    def __init__(self) -> None:
        if httptools is None:
            raise AnswerError("httptools is not installed")
        # One parser for the life of a connection: llhttp starts on the next
        # answer by itself after a complete one, and a parser per answer would
        # leave a reference cycle (parser -> our callbacks -> us) for the
        # garbage collector on every request.
        self._parser = httptools.HttpResponseParser(self)
        self.reset()

    def reset(self) -> None:
        """Start on the next answer (only after a complete one on a connection kept alive)."""
        self.headers: dict[str, str] = {}
        self.status = 0
        self.complete = False
        self.keep_alive = False
        #: Seconds the gateway said it keeps an idle connection (``Keep-Alive: timeout=``), less a margin.
        self.server_keepalive: float | None = None
        self._body: list[bytes] = []
        self._body_size = 0
        self._fed = 0
        self._stalled = 0
        self._trailer_size = 0
        self._head_done = False
        self._informational = False
        self._until_close = False
        self._extra = False
        self._progress = False
        self._problem: str | None = None

    # -- feeding ----------------------------------------------------------

    def feed(self, data: bytes) -> bool:
        """Parse ``data``; ``True`` once the answer is complete. Raises :class:`AnswerError`."""
        self._fed += len(data)
        self._progress = False
        problem = None
        try:
            self._parser.feed_data(data)
        except _PARSER_ERRORS as error:
            if not self.complete:
                problem = self._problem or f"malformed HTTP answer ({_reason(error)})"
        if self.complete:
            if self._extra:
                # Bytes nobody asked for followed the answer: the connection
                # is out of step with the gateway and must carry nothing more.
                self.keep_alive = False
            return True
        if problem is None:
            problem = self._over_a_cap(len(data))
        if problem is not None:
            raise AnswerError(problem)
        return False

    def _over_a_cap(self, size: int) -> str | None:
        if not self._head_done:
            # Everything fed so far is head (1xx heads included).
            return f"answer head longer than {MAX_HEAD} bytes" if self._fed > MAX_HEAD else None
        if self._fed > _MAX_WIRE:
            return f"answer longer than {_MAX_WIRE} bytes on the wire"
        if self._progress:
            self._stalled = 0
            return None
        # Bytes that moved nothing on (a chunk extension, a trailer, leading
        # zeros of a chunk size) are parsed but never kept; past a head's worth
        # the gateway is not answering.
        self._stalled += size
        if self._stalled > MAX_HEAD:
            return f"{self._stalled} bytes of chunk framing or trailers without any body"
        return None

    def feed_eof(self) -> bool:
        """The connection ended; ``True`` if that completed the answer (a read-until-close body)."""
        if self.complete:
            return True
        if self._head_done and self._until_close:
            self.complete = True
            self.keep_alive = False
            return True
        return False

    def response(self) -> WireResponse:
        """The complete answer."""
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        return WireResponse(self.status, self.headers, body)

    @property
    def started(self) -> bool:
        """Whether any byte of an answer arrived."""
        return self._fed > 0

    # -- llhttp callbacks -------------------------------------------------

    def on_message_begin(self) -> None:
        """A message starts: after a complete answer, it is one nobody asked for."""
        if self.complete:
            self._extra = True
            raise _Stop

    def on_header(self, name: bytes, value: bytes) -> None:
        """One header (or trailer) line, whole."""
        self._progress = True
        if self._head_done:
            self._trailer_size += len(name) + len(value)
            if self._trailer_size > MAX_HEAD:
                self._problem = f"trailers longer than {MAX_HEAD} bytes"
                raise _Stop
            return
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1").strip()
        headers = self.headers
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        """The head ended: check the status and the framing before any body byte."""
        self._progress = True
        status = self._parser.get_status_code()
        self.status = status
        problem = None
        if status < 100:
            problem = f"status {status} is not an HTTP status"
        elif status == 101:
            problem = "the gateway switched protocols, which was never asked for"
        elif status < 200:
            # 100 Continue and friends: skipped, the real answer follows.
            self._informational = True
            self.headers = {}
            return
        else:
            problem = self._check_framing(self.headers)
        if problem is not None:
            self._problem = problem
            raise _Stop
        self._head_done = True

    def _check_framing(self, headers: dict[str, str]) -> str | None:
        coding = headers.get("transfer-encoding")
        if coding is not None and coding.lower() != "chunked":
            return f"Transfer-Encoding {coding[:40]!r} is not supported (only chunked is)"
        content_coding = headers.get("content-encoding", "identity").lower()
        if content_coding not in {"identity", ""}:
            return (
                f"the answer came in Content-Encoding {content_coding[:40]!r} though identity was asked for"
            )
        length = headers.get("content-length")
        if length is not None and int(length) > MAX_BODY:  # llhttp checked it is digits
            return f"answer body of {length} bytes is over the {MAX_BODY}-byte cap"
        self._until_close = coding is None and length is None and self.status not in {204, 304}
        keep_alive = headers.get("keep-alive")
        if keep_alive:
            self._note_keep_alive(keep_alive)
        return None

    def _note_keep_alive(self, value: str) -> None:
        # "Keep-Alive: timeout=5": leave a margin so we never write on a
        # connection the server is about to close.
        for item in value.split(","):
            key, _, number = item.strip().partition("=")
            if key.strip().lower() == "timeout":
                with contextlib.suppress(ValueError):
                    seconds = float(number)
                    if math.isfinite(seconds):
                        self.server_keepalive = max(0.0, seconds - 1.0)

    def on_body(self, data: bytes) -> None:
        """A piece of the body, whatever the framing."""
        self._progress = True
        self._body_size += len(data)
        if self._body_size > MAX_BODY:
            self._problem = f"answer body over the {MAX_BODY}-byte cap"
            raise _Stop
        self._body.append(data)

    def on_chunk_header(self) -> None:
        """A chunk size line was read."""
        self._progress = True

    def on_chunk_complete(self) -> None:
        """A chunk (and its CRLF) was read."""
        self._progress = True

    def on_message_complete(self) -> None:
        """The message ended: an informational one is skipped, a final one completes the answer."""
        if self._informational:
            self._informational = False
            return
        self.keep_alive = self._parser.should_keep_alive()
        self.complete = True


_PARSER_ERRORS: tuple[type[Exception], ...] = (
    (httptools.HttpParserError, httptools.HttpParserUpgrade) if httptools is not None else ()
)


def _reason(error: Exception) -> str:
    if type(error).__name__ == "HttpParserUpgrade":
        return "an upgrade nobody asked for"
    return (str(error) or type(error).__name__)[:100]
