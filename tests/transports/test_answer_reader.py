"""The fast transport's answer reader (llhttp through httptools) on its own: framing, keep-alive, caps."""

from __future__ import annotations

import time

import pytest
from answer_server import chunked, http_answer

from sms_async.transports._answer import AnswerError, AnswerReader
from sms_async.transports._base import MAX_BODY, MAX_HEAD


def read(*pieces: bytes, eof: bool = False) -> AnswerReader:
    """A reader fed ``pieces`` (and end of file) that completed an answer."""
    reader = AnswerReader()
    done = False
    for piece in pieces:
        done = reader.feed(piece)
    if eof:
        done = reader.feed_eof()
    assert done
    return reader


def test_an_http_1_1_answer_keeps_the_connection():
    """A plain HTTP/1.1 answer with a length leaves the connection reusable."""
    reader = read(http_answer(b"ok"))
    assert (reader.status, reader.response().body, reader.keep_alive) == (200, b"ok", True)


@pytest.mark.parametrize(
    "answer",
    [
        http_answer(b"ok", extra_headers=b"Connection: close\r\n"),
        http_answer(b"ok", version=b"HTTP/1.0"),
        http_answer(b"ok") + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nSTALE",
        http_answer(b"ok") + b"junk",
    ],
    ids=["connection-close", "http-1.0", "a-second-answer-after-it", "junk-after-it"],
)
def test_answers_that_retire_the_connection(answer):
    """Connection: close, HTTP/1.0 without keep-alive, or bytes after the answer retire the connection."""
    reader = read(answer)
    assert reader.response().body == b"ok"
    assert reader.keep_alive is False


def test_http_1_0_keep_alive_is_honoured():
    """An HTTP/1.0 answer that says Connection: keep-alive keeps the connection."""
    reader = read(http_answer(b"ok", version=b"HTTP/1.0", extra_headers=b"Connection: keep-alive\r\n"))
    assert reader.keep_alive is True


def test_keep_alive_timeout_is_noted_with_a_margin():
    """Keep-Alive: timeout=5 makes the connection expire a second earlier than the server would close it."""
    reader = read(http_answer(b"ok", extra_headers=b"Keep-Alive: timeout=5, max=100\r\n"))
    assert reader.server_keepalive == 4.0


@pytest.mark.parametrize("value", [b"timeout=nan", b"timeout=inf", b"timeout=x", b"max=3"])
def test_unreadable_keep_alive_timeouts_are_ignored(value):
    """A Keep-Alive header without a finite timeout sets no expiry."""
    reader = read(http_answer(b"ok", extra_headers=b"Keep-Alive: " + value + b"\r\n"))
    assert reader.server_keepalive is None


def test_informational_heads_leave_no_headers_behind():
    """The headers of a 103 before the answer are not the answer's headers."""
    reader = read(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + http_answer(b"ok"))
    assert "link" not in reader.headers
    assert reader.response().body == b"ok"


def test_trailers_are_not_headers():
    """Trailers after a chunked body are read past, not merged into the headers."""
    reader = read(chunked([b"ok"], trailers=b"X-Sum: 1\r\n"))
    assert reader.response().body == b"ok"
    assert "x-sum" not in reader.headers


def test_repeated_headers_are_joined():
    """Two lines of one header become one comma-separated value, as httpx shows them."""
    reader = read(http_answer(b"ok", extra_headers=b"X-A: 1\r\nx-a: 2\r\n"))
    assert reader.headers["x-a"] == "1, 2"


def test_a_read_until_close_body_ends_at_end_of_file():
    """Without Content-Length or chunking, the body is everything up to end of file."""
    reader = read(b"HTTP/1.1 200 OK\r\n\r\nhello ", b"world", eof=True)
    assert (reader.response().body, reader.keep_alive) == (b"hello world", False)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        b"HTTP/1.1 200 OK\r\nContent-",
        b"",
    ],
    ids=["short-body", "mid-chunk", "mid-head", "nothing"],
)
def test_end_of_file_does_not_complete_a_framed_answer(answer):
    """End of file before the announced end is not an answer."""
    reader = AnswerReader()
    assert reader.feed(answer) is False
    assert reader.feed_eof() is False


def test_a_malformed_answer_says_what_llhttp_found():
    """The error names llhttp's reason."""
    with pytest.raises(AnswerError, match="Invalid character in chunk size"):
        AnswerReader().feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-6\r\nabc\r\n")


def test_the_head_cap_holds_across_pieces():
    """A head that never ends is refused once it passes the cap, however it is cut."""
    reader = AnswerReader()
    reader.feed(b"HTTP/1.1 200 OK\r\nX-Long: ")
    for _ in range(MAX_HEAD // 1000 - 1):
        reader.feed(b"a" * 1000)
    with pytest.raises(AnswerError, match="head longer"):
        reader.feed(b"a" * 2000)


def test_the_body_cap_holds_for_chunks():
    """Chunks adding up past the body cap are refused, whatever each chunk announced."""
    reader = AnswerReader()
    reader.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    piece = b"%x\r\n%s\r\n" % (1 << 20, b"a" * (1 << 20))
    for _ in range(MAX_BODY // (1 << 20)):
        reader.feed(piece)
    with pytest.raises(AnswerError, match="cap"):
        reader.feed(piece)


def test_a_reader_fed_one_byte_at_a_time_does_linear_work():
    """Feeding an answer one byte at a time costs less than eight times more for four times the bytes."""

    def cost(size: int) -> float:
        data = chunked([b"a"] * size)
        best = float("inf")
        for _ in range(3):
            reader = AnswerReader()
            start = time.process_time()
            for i in range(len(data)):
                reader.feed(data[i : i + 1])
            best = min(best, time.process_time() - start)
            assert reader.complete
        return best

    small, large = cost(20_000), cost(80_000)
    assert large / small < 8, (small, large)  # quadratic work would be about 16


def test_one_reader_reads_the_answers_of_a_kept_connection_in_turn():
    """After a complete answer on a kept connection, reset() reads the next one from scratch."""
    reader = read(http_answer(b"first", extra_headers=b"Keep-Alive: timeout=5\r\n"))
    assert reader.keep_alive is True
    reader.reset()
    assert reader.feed(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n") is False
    assert reader.feed(b"6\r\nsecond\r\n0\r\n\r\n") is True
    response = reader.response()
    assert (response.status, response.body, reader.server_keepalive) == (201, b"second", None)
    assert "content-length" not in response.headers
