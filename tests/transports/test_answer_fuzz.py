"""Arbitrary bytes as an answer: a parsed answer or a classified error, never a hang, never anything else.

The reader of the fast transport is checked alone on many inputs (and must
not care where the bytes were split), then both transports over a loopback
socket on fewer.
"""

from __future__ import annotations

import itertools
import time

import anyio
import pytest
from answer_server import AnswerServer, chunked, http_answer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sms_async import MaybeSentError, Timeouts
from sms_async._wire import Origin, WireRequest, WireResponse
from sms_async.transports import open_transport
from sms_async.transports._answer import AnswerError, AnswerReader

# A hang must fail loudly: the thread method stops the run even when the event loop is stuck.
pytestmark = pytest.mark.timeout(300, method="thread")

separators = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b"", b" \r\n"])
status_lines = st.one_of(
    st.sampled_from(
        [
            b"HTTP/1.1 200 OK",
            b"HTTP/1.0 200 OK",
            b"HTTP/1.1 100 Continue",
            b"HTTP/1.1 101 Switching Protocols",
            b"HTTP/1.1 204 No Content",
            b"HTTP/1.1 304 Not Modified",
            b"HTTP/1.1 503 Busy",
            b"HTTP/1.1 2000 OK",
            b"HTTP/1.1 099 OK",
            b"HTTP/1.1 -1 OK",
            b"HTTP/1.1 200",
            b"HTTP/2 200",
            b"http/1.1 200 OK",
            b"",
        ]
    ),
    st.binary(max_size=20),
)
header_lines = st.one_of(
    st.sampled_from(
        [
            b"Content-Length: 5",
            b"Content-Length: 0",
            b"Content-Length: -6",
            b"Content-Length: 5, 5",
            b"Content-Length: 99999999999999999999",
            b"Transfer-Encoding: chunked",
            b"Transfer-Encoding : chunked",
            b"Transfer-Encoding: xchunked",
            b"Transfer-Encoding: gzip, chunked",
            b"Connection: close",
            b"Connection: keep-alive",
            b"Keep-Alive: timeout=nan",
            b"Keep-Alive: timeout=5",
            b"Content-Encoding: gzip",
            b"Content-Encoding: identity",
            b"X-Nul: a\x00b",
            b" folded continuation",
            b"Upgrade: h2c",
        ]
    ),
    st.binary(max_size=30),
)
chunk_sizes = st.one_of(
    st.integers(0, 40).map(lambda n: b"%x" % n),
    st.sampled_from([b"-6", b"0x5", b"ffffffffffffffffffff", b"5;ext=1", b"5 ", b"", b"g"]),
)
chunks = st.lists(st.tuples(chunk_sizes, st.binary(max_size=40), separators), max_size=6).map(
    lambda items: b"".join(size + b"\r\n" + data + sep for size, data, sep in items)
)
heads = st.tuples(status_lines, st.lists(st.tuples(header_lines, separators), max_size=6), separators).map(
    lambda parts: parts[0] + b"\r\n" + b"".join(line + sep for line, sep in parts[1]) + parts[2]
)
near_answers = st.tuples(heads, st.one_of(chunks, st.binary(max_size=80))).map(
    lambda parts: parts[0] + parts[1]
)


def mutated(valid: bytes) -> st.SearchStrategy[bytes]:
    """``valid`` with a few bytes changed, inserted or deleted."""

    def apply(edits: list[tuple[int, int, bytes]]) -> bytes:
        data = bytearray(valid)
        for kind, where, byte in edits:
            at = where % (len(data) + 1)
            if kind == 0:
                data[at : at + 1] = byte
            elif kind == 1:
                data[at:at] = byte
            else:
                del data[at : at + 1]
        return bytes(data)

    return st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 10_000), st.binary(min_size=1, max_size=1)),
        min_size=1,
        max_size=4,
    ).map(apply)


VALID = [http_answer(), chunked([b"Success ", b"Your MessageId is x"], trailers=b"X-T: 1\r\n")]
answers = st.one_of(st.binary(max_size=300), near_answers, *(mutated(v) for v in VALID))


def read_all(pieces: list[bytes]) -> tuple[str, object]:
    """What the reader makes of ``pieces`` fed in order and then end of file.

    Whether the connection is kept is left out: bytes after an answer retire
    it on a connection, but when they come in a piece of their own it is the
    connection that sees them, not the reader.
    """
    reader = AnswerReader()
    try:
        for piece in pieces:
            if reader.feed(piece):
                response = reader.response()
                return ("answer", (response.status, response.headers, response.body))
        if reader.feed_eof():
            response = reader.response()
            return ("answer", (response.status, response.headers, response.body))
    except AnswerError:
        return ("error", None)
    return ("cut short", None)


@settings(max_examples=1500, deadline=None, database=None)
@given(data=answers, cuts=st.lists(st.integers(0, 400), max_size=8))
def test_the_reader_ends_in_an_answer_or_its_own_error_wherever_the_bytes_are_split(data, cuts):
    """Any bytes give an answer, an AnswerError or "cut short", and the same one however they are split."""
    whole = read_all([data])
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    split = read_all([data[a:b] for a, b in itertools.pairwise(points)])
    byte_by_byte = read_all([data[i : i + 1] for i in range(len(data))])
    assert whole[0] in {"answer", "error", "cut short"}
    assert split == whole
    assert byte_by_byte == whole


SOCKET_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.mark.parametrize("http", ["fast", "httpx"])
def test_any_answer_over_a_socket_ends_in_an_answer_or_a_maybe_sent_error(http):
    """Whatever bytes come back before the connection closes: an answer, or a MaybeSentError."""
    box: dict[str, bytes] = {}
    timeouts = Timeouts(connect=2.0, read=1.0, write=2.0, pool=2.0)
    with AnswerServer(lambda: box["answer"], close=True) as server:
        origin = Origin.parse(server.origin + "/")

        async def send() -> WireResponse | MaybeSentError:
            transport = open_transport(origin, concurrency=1, timeouts=timeouts, http=http)
            try:
                return await transport.send(WireRequest("GET", "/x"), time.monotonic() + 10)
            except MaybeSentError as error:
                return error
            finally:
                await transport.aclose()

        @SOCKET_SETTINGS
        @given(data=answers)
        def check(data: bytes) -> None:
            box["answer"] = data
            before = server.requests
            outcome = anyio.run(send, backend="asyncio")
            assert isinstance(outcome, WireResponse | MaybeSentError)
            assert server.requests == before + 1

        check()
