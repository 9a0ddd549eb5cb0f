"""The fast transport's one timer per connection: kept across requests, armed anew only when late or early."""

from __future__ import annotations

import asyncio

import pytest

from sms_async import _exceptions as exc
from sms_async.transports import Timeouts, _fast

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class _Socket:
    """Just enough of an asyncio transport for a connection to write on."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    abort = close


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The transport's monotonic clock, moved by hand."""
    now = [1000.0]
    monkeypatch.setattr(_fast.time, "monotonic", lambda: now[0])
    return now


async def connection() -> _fast._Conn:
    conn = _fast._Conn(asyncio.get_running_loop())
    conn.connection_made(_Socket())  # type: ignore[arg-type]
    return conn


async def test_a_later_request_keeps_the_timer_and_gets_its_whole_read_timeout(clock: list[float]) -> None:
    """A request reuses the timer an earlier one armed, which, firing early for it, waits out the rest."""
    conn = await connection()
    timeouts = Timeouts(read=30.0)
    first = conn.start(b"GET / HTTP/1.1\r\n\r\n", timeouts, None)
    timer = conn.timer
    assert timer is not None
    conn.data_received(ANSWER)
    assert first.result().status == 200
    clock[0] += 10.0
    second = conn.start(b"GET / HTTP/1.1\r\n\r\n", timeouts, None)
    assert conn.timer is timer  # not cancelled and armed again
    clock[0] += 20.0  # the first request's 30 s are up; the second has 10 s left
    conn._on_timer()
    assert not second.done()
    assert conn.timer is not None
    assert conn.timer_at == pytest.approx(1040.0)
    clock[0] += 10.0
    conn._on_timer()
    with pytest.raises(exc.ReadTimeout):
        second.result()
    assert conn.closed
    assert conn.timer is None


async def test_a_nearer_deadline_arms_a_new_timer(clock: list[float]) -> None:
    """A batch deadline before the armed timer arms a timer for the deadline, which fails the request so."""
    conn = await connection()
    timeouts = Timeouts(read=30.0)
    first = conn.start(b"GET / HTTP/1.1\r\n\r\n", timeouts, None)
    old = conn.timer
    conn.data_received(ANSWER)
    assert first.done()
    second = conn.start(b"GET / HTTP/1.1\r\n\r\n", timeouts, clock[0] + 5.0)
    assert conn.timer is not old
    assert old is not None
    assert old.cancelled()
    clock[0] += 5.0
    conn._on_timer()
    with pytest.raises(exc.DeadlineExceeded):
        second.result()


async def test_an_idle_connection_s_timer_ends_quietly_and_closing_cancels_it(clock: list[float]) -> None:
    """A timer that fires with no request pending fails nothing; closing a connection cancels its timer."""
    conn = await connection()
    first = conn.start(b"GET / HTTP/1.1\r\n\r\n", Timeouts(read=30.0), None)
    conn.data_received(ANSWER)
    assert first.done()
    clock[0] += 30.0
    conn._on_timer()
    assert conn.timer is None
    assert not conn.closed
    conn.start(b"GET / HTTP/1.1\r\n\r\n", Timeouts(read=30.0), None)
    timer = conn.timer
    assert timer is not None
    conn.close()
    assert timer.cancelled()
    assert conn.timer is None
