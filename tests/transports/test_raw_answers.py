"""Answers a gateway could send, byte for byte, against both transports.

Each case is served from a loopback socket to a real send of one ITON batch.
Each must end as the table says (accepted where the answer is well-formed,
unknown where it is not), with the request sent once, the event loop running
throughout (a heartbeat task ticks), and the client's memory bounded by the
body cap whatever the gateway announces or streams.
"""

from __future__ import annotations

import gzip
import time
import tracemalloc
from collections.abc import Callable

import anyio
import pytest
from answer_server import (
    SUCCESS,
    TIMEOUTS,
    AnswerServer,
    Heartbeat,
    chunked,
    http_answer,
    outcome_of,
    send_once,
    streamed,
)

from sms_async import MaybeSentError
from sms_async._wire import Origin, WireRequest
from sms_async.transports import open_transport
from sms_async.transports._base import MAX_BODY

# A hang must fail loudly: the thread method stops the run even when the event loop is stuck.
pytestmark = pytest.mark.timeout(120, method="thread")

TRANSPORTS = ("fast", "httpx")

BIG = b"\0" * 65536
# Far more than the body cap: a client that buffers it all blows the memory bound.
BIG_COUNT = (40 * 1024 * 1024) // len(BIG)
# A client may hold the capped body and a copy of it while it is being joined.
MEMORY_BOUND = 2 * MAX_BODY + 8 * 1024 * 1024
CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


class Case:
    """An answer, whether the connection closes after it, and the outcome both transports must reach."""

    def __init__(self, answer: Callable[[], object], outcome: str, *, close: bool = False) -> None:
        self.answer = answer
        self.outcome = outcome
        self.close = close


def once(data: bytes) -> Callable[[], bytes]:
    return lambda: data


WELL_FORMED = {
    "content-length": Case(once(http_answer()), "accepted"),
    "http-1.0-content-length": Case(once(http_answer(version=b"HTTP/1.0")), "accepted", close=True),
    "http-1.0-read-until-close": Case(once(b"HTTP/1.0 200 OK\r\n\r\n" + SUCCESS), "accepted", close=True),
    "http-1.1-read-until-close": Case(
        once(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + SUCCESS), "accepted", close=True
    ),
    "100-continue-first": Case(once(b"HTTP/1.1 100 Continue\r\n\r\n" + http_answer()), "accepted"),
    "103-early-hints-first": Case(
        once(b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n" + http_answer()), "accepted"
    ),
    "chunked": Case(once(chunked([SUCCESS[:7], SUCCESS[7:]])), "accepted"),
    "chunk-extensions": Case(once(chunked([SUCCESS[:7], SUCCESS[7:]], extension=b";n=v;x")), "accepted"),
    "trailers": Case(once(chunked([SUCCESS], trailers=b"X-Sum: abc\r\nX-More: 1\r\n")), "accepted"),
    "many-tiny-chunks": Case(once(chunked([bytes([b]) for b in SUCCESS + b" " * 20000])), "accepted"),
    "status-line-without-reason": Case(
        once(b"HTTP/1.1 200\r\nContent-Length: %d\r\n\r\n%s" % (len(SUCCESS), SUCCESS)), "accepted"
    ),
    "keep-alive-header": Case(
        once(http_answer(extra_headers=b"Keep-Alive: timeout=5, max=100\r\n")), "accepted"
    ),
    "x-transfer-encoding-is-another-header": Case(
        once(http_answer(extra_headers=b"X-Transfer-Encoding: chunked\r\n")), "accepted"
    ),
}

MALFORMED = {
    "chunk-size-minus-6": Case(once(CHUNKED_HEAD + b"-6\r\nabc\r\n0\r\n\r\n"), "unknown"),
    "chunk-announcing-1-gib": Case(
        lambda: streamed(CHUNKED_HEAD + b"40000000\r\n", BIG, BIG_COUNT), "unknown"
    ),
    "read-until-close-past-the-cap": Case(
        lambda: streamed(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", BIG, BIG_COUNT),
        "unknown",
        close=True,
    ),
    "content-length-past-the-cap": Case(
        lambda: streamed(b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n", BIG, BIG_COUNT), "unknown"
    ),
    "conflicting-content-length": Case(
        once(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Length: %d\r\n\r\n%s-and-more"
            % (len(SUCCESS), len(SUCCESS) + 9, SUCCESS)
        ),
        "unknown",
    ),
    "junk-instead-of-crlf-after-a-chunk": Case(
        once(CHUNKED_HEAD + b"%x\r\n%sXX0\r\n\r\n" % (len(SUCCESS), SUCCESS)), "unknown"
    ),
    "space-before-colon": Case(
        once(chunked([SUCCESS]).replace(b"Transfer-Encoding:", b"Transfer-Encoding :")), "unknown", close=True
    ),
    "status-2000": Case(once(http_answer().replace(b" 200 ", b" 2000 ")), "unknown"),
    "status-099": Case(once(http_answer().replace(b" 200 ", b" 099 ")), "unknown"),
    "xchunked-is-not-chunked": Case(
        once(chunked([SUCCESS]).replace(b"chunked", b"xchunked")), "unknown", close=True
    ),
    "head-past-the-cap": Case(
        once(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200_000 + b"\r\n" + http_answer()[17:]), "unknown"
    ),
    "endless-trailer": Case(
        lambda: streamed(CHUNKED_HEAD + b"0\r\nX-T: ", b"a" * 65536, BIG_COUNT), "unknown"
    ),
    "endless-chunk-extension": Case(
        lambda: streamed(CHUNKED_HEAD + b"1;x=", b"a" * 65536, BIG_COUNT), "unknown"
    ),
    "gzip-though-identity-was-asked": Case(
        once(http_answer(gzip.compress(SUCCESS), extra_headers=b"Content-Encoding: gzip\r\n")), "unknown"
    ),
    "switching-protocols-unasked": Case(
        once(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n" + http_answer()
        ),
        "unknown",
    ),
    "not-http-at-all": Case(once(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"), "unknown", close=True),
    "closed-in-the-middle-of-a-chunk": Case(once(CHUNKED_HEAD + b"40\r\nSuccess"), "unknown", close=True),
}

CASES = {**WELL_FORMED, **MALFORMED}


@pytest.mark.parametrize("http", TRANSPORTS)
@pytest.mark.parametrize("name", list(CASES))
async def test_answer_ends_as_the_table_says(http, name):
    """The answer ends accepted or unknown as listed, sent once, with the loop alive and memory bounded."""
    case = CASES[name]
    heartbeat = Heartbeat()
    with AnswerServer(case.answer, close=case.close) as server:
        tracemalloc.start()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(heartbeat.run)
                result = await send_once(server.origin, http)
                tg.cancel_scope.cancel()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert outcome_of(result) == case.outcome, result.failed
    if case.outcome == "unknown":
        assert all(isinstance(f.error, MaybeSentError) for f in result.failed.values())
    assert server.requests == 1
    assert result.requests == 1
    assert heartbeat.ticks >= 1
    assert peak < MEMORY_BOUND, f"peak traced memory {peak / 2**20:.1f} MiB"


async def cpu_for_chunks(http: str, count: int) -> float:
    """Client CPU seconds (best of three) to read a chunked answer of ``count`` one-byte chunks."""
    data = chunked([b"a"] * count)
    best = float("inf")
    with AnswerServer(once(data)) as server:
        origin = Origin.parse(server.origin + "/")
        for _ in range(3):
            transport = open_transport(origin, concurrency=1, timeouts=TIMEOUTS, http=http)
            try:
                start = time.process_time()
                response = await transport.send(WireRequest("GET", "/x"))
                best = min(best, time.process_time() - start)
            finally:
                await transport.aclose()
            assert len(response.body) == count
    return best


@pytest.mark.parametrize(("http", "count"), [("fast", 200_000), ("httpx", 25_000)])
async def test_many_tiny_chunks_cost_linear_cpu(http, count):
    """Four times the one-byte chunks cost less than eight times the CPU (quadratic work would cost 16)."""
    small = await cpu_for_chunks(http, count)
    large = await cpu_for_chunks(http, 4 * count)
    assert large / small < 8, (small, large)
