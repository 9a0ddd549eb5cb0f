"""Sending windows and start times: parsing, checks at create time, open/next-open answers, DST nights."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sms_async import UsageError
from sms_async.campaign._windows import (
    Schedule,
    ScheduleError,
    SendingWindows,
    Window,
    format_wait,
    parse_start_at,
    wait_to_claim,
)
from sms_async.testing import TestClock

IST = ZoneInfo("Asia/Kolkata")
LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def ist(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=IST)


def london(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=LONDON)


# ------------------------------------------------------------------ parsing and create-time checks


def test_windows_parse_several_sorted_and_round_trip_through_their_spec():
    """Several windows (by comma or list) are read, sorted, and written back as one spec string."""
    windows = SendingWindows.parse(["14:00-21:00", "09:00-12:00"], "Asia/Kolkata")
    assert windows.spec == "09:00-12:00,14:00-21:00"
    again = SendingWindows.parse(windows.spec, windows.zone_name)
    assert again == windows


def test_a_window_crossing_midnight_holds_the_late_evening_and_early_morning():
    """21:00-06:00 is open at 23:30 and 05:59, closed at 06:00 and 12:00."""
    windows = SendingWindows.parse("21:00-06:00", "Asia/Kolkata")
    assert windows.windows[0].crosses_midnight
    assert windows.is_open(ist("2026-12-06T23:30"))
    assert windows.is_open(ist("2026-12-07T05:59"))
    assert not windows.is_open(ist("2026-12-07T06:00"))
    assert not windows.is_open(ist("2026-12-07T12:00"))


def test_a_whole_day_window_never_closes():
    """00:00-24:00 is open at every minute, and has no next close."""
    windows = SendingWindows.parse("00:00-24:00", "UTC")
    assert windows.covers_whole_day()
    assert windows.next_close(NOW) is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("09:00-09:00", "zero length"),
        ("00:00-00:00", "zero length"),
        ("9-21", "HH:MM-HH:MM"),
        ("09:00 to 21:00", "HH:MM-HH:MM"),
        ("25:00-26:00", "does not exist"),
        ("09:60-21:00", "does not exist"),
        ("09:00-24:30", "does not exist"),
    ],
)
def test_bad_windows_are_clear_errors(text, words):
    """A zero-length, malformed or impossible window is a UsageError saying what is wrong and what to do."""
    with pytest.raises(ScheduleError, match=words) as caught:
        Window.parse(text)
    assert isinstance(caught.value, UsageError)
    assert text in str(caught.value)


def test_an_unknown_zone_is_an_error_naming_it():
    """A misspelt zone names itself and the form to give."""
    with pytest.raises(ScheduleError, match=r"unknown time zone 'Asia/Kolkatta': give an IANA name"):
        SendingWindows.parse("09:00-21:00", "Asia/Kolkatta")
    with pytest.raises(ScheduleError, match=r"unknown time zone '\.\./etc/passwd'"):
        SendingWindows.parse("09:00-21:00", "../etc/passwd")


def test_create_checks_start_time_zone_and_window_together():
    """create() refuses a past start, a start without offset, a window without zone, a zone without window."""
    with pytest.raises(ScheduleError, match=r"is in the past .* give a later time, or none to start at once"):
        Schedule.create("09:00-21:00", "Asia/Kolkata", start_at="2026-12-05T10:00+05:30", now=NOW)
    with pytest.raises(ScheduleError, match="has no offset: add one, such as 2026-12-07T10:00\\+05:30"):
        Schedule.create(None, None, start_at="2026-12-07T10:00", now=NOW)
    with pytest.raises(ScheduleError, match="cannot read the start time 'tomorrow'"):
        Schedule.create(None, None, start_at="tomorrow", now=NOW)
    with pytest.raises(ScheduleError, match="needs a time zone"):
        Schedule.create("09:00-21:00", None, now=NOW)
    with pytest.raises(ScheduleError, match="without a sending window"):
        Schedule.create(None, "Asia/Kolkata", now=NOW)
    with pytest.raises(ScheduleError, match="unknown time zone"):
        Schedule.create(None, "Mars/Olympus", now=NOW)
    with pytest.raises(ScheduleError, match="zero length"):
        Schedule.create("10:00-10:00", "UTC", now=NOW)


def test_a_schedule_restores_from_what_a_store_keeps():
    """The three strings a store keeps give back an equal schedule, even once the start has passed."""
    made = Schedule.create(
        ["09:00-12:00", "14:00-21:00"], "Asia/Kolkata", start_at="2026-12-07T10:00+05:30", now=NOW
    )
    kept = (made.windows_spec, made.zone_name, made.start_at_iso)
    assert kept == ("09:00-12:00,14:00-21:00", "Asia/Kolkata", "2026-12-07T10:00:00+05:30")
    assert Schedule.restore(*kept) == made
    assert Schedule.restore(None, None, None) == Schedule()
    assert parse_start_at("2026-12-07T04:30Z") == made.start_at


# ------------------------------------------------------------------ answers


def test_an_empty_schedule_may_always_claim():
    """No window and no start: claim at once, never a waiting message."""
    schedule = Schedule()
    assert schedule.may_claim(NOW)
    assert schedule.next_claim(NOW) == NOW
    assert schedule.waiting_message(NOW) is None
    assert schedule.stops_claiming(NOW) is None


def test_india_evening_window_closes_at_21_and_reopens_at_9_with_its_message():
    """A 09:00-21:00 IST window: open at 20:50, closes at 21:00, says when it opens and in how long."""
    schedule = Schedule.create("09:00-21:00", "Asia/Kolkata", now=NOW)
    assert schedule.may_claim(ist("2026-12-06T20:50"))
    assert schedule.stops_claiming(ist("2026-12-06T20:50")) == ist("2026-12-06T21:00")
    assert not schedule.may_claim(ist("2026-12-06T21:00"))
    assert schedule.next_claim(ist("2026-12-06T21:00")) == ist("2026-12-07T09:00")
    assert schedule.waiting_message(ist("2026-12-07T05:48")) == (
        "waiting for its window (opens 09:00 IST, in 3 h 12 min)"
    )
    assert schedule.waiting_message(ist("2026-12-07T08:59:30")) == (
        "waiting for its window (opens 09:00 IST, in less than a minute)"
    )


def test_a_start_time_holds_claims_until_then_and_says_so():
    """Before its start time a campaign waits for the start; after, for its window."""
    schedule = Schedule.create("09:00-21:00", "Asia/Kolkata", start_at="2026-12-07T10:00+05:30", now=NOW)
    before = ist("2026-12-06T12:00")
    assert not schedule.may_claim(before)
    assert schedule.next_claim(before) == ist("2026-12-07T10:00")
    assert schedule.waiting_message(before) == "waiting for its start time (10:00 IST, in 22 h)"
    assert schedule.may_claim(ist("2026-12-07T10:00"))
    # A start outside the window waits on for the window.
    late = Schedule.create("09:00-21:00", "Asia/Kolkata", start_at="2026-12-07T22:00+05:30", now=NOW)
    assert late.next_claim(before) == ist("2026-12-08T09:00")
    assert late.waiting_message(before) == "waiting for its window (opens 09:00 IST, in 1 d 21 h)"


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "now"),
        (59, "less than a minute"),
        (60, "1 min"),
        (61, "2 min"),
        (3600, "1 h"),
        (11_520, "3 h 12 min"),
        (86_400, "1 d"),
        (90_000, "1 d 1 h"),
    ],
)
def test_waits_are_written_in_words_rounded_up_to_the_minute(seconds, words):
    """Waits read as days, hours and minutes, rounded up so 'in 0 min' is never said."""
    assert format_wait(seconds) == words


# ------------------------------------------------------------------ clock changes


def test_london_window_follows_the_wall_clock_in_winter_and_summer():
    """09:00-21:00 London opens at 09:00 UTC in winter and 08:00 UTC in summer."""
    windows = SendingWindows.parse("09:00-21:00", "Europe/London")
    assert windows.next_open(datetime(2026, 1, 10, 0, 0, tzinfo=UTC)) == datetime(2026, 1, 10, 9, tzinfo=UTC)
    assert windows.next_open(datetime(2026, 7, 10, 0, 0, tzinfo=UTC)) == datetime(2026, 7, 10, 8, tzinfo=UTC)


def test_a_window_opening_in_the_skipped_hour_opens_when_the_clocks_go_forward():
    """On 29 March 2026 London skips 01:00-02:00: 01:30-03:00 opens at 02:00 BST (01:00 UTC)."""
    windows = SendingWindows.parse("01:30-03:00", "Europe/London")
    opens = windows.next_open(datetime(2026, 3, 29, 0, 10, tzinfo=UTC))
    assert opens == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert windows.is_open(opens)
    assert not windows.is_open(opens - timedelta(seconds=1))
    assert windows.local_label(opens) == "02:00 BST"


def test_a_window_wholly_in_the_skipped_hour_does_not_open_that_night():
    """01:10-01:50 London does not exist on 29 March 2026; it opens next on the 30th."""
    windows = SendingWindows.parse("01:10-01:50", "Europe/London")
    assert windows.next_open(datetime(2026, 3, 28, 23, 10, tzinfo=UTC)) == london("2026-03-30T01:10")


def test_a_window_when_the_clocks_go_back_holds_both_passes_of_the_repeated_hour():
    """On 25 October 2026 London repeats 01:00-02:00: 01:15-01:45 is open in both passes."""
    windows = SendingWindows.parse("01:15-01:45", "Europe/London")
    first = datetime(2026, 10, 25, 0, 15, tzinfo=UTC)  # 01:15 BST
    second = datetime(2026, 10, 25, 1, 15, tzinfo=UTC)  # 01:15 GMT
    assert windows.next_open(datetime(2026, 10, 24, 23, 0, tzinfo=UTC)) == first
    assert windows.next_close(first) == datetime(2026, 10, 25, 0, 45, tzinfo=UTC)
    assert windows.next_open(datetime(2026, 10, 25, 0, 50, tzinfo=UTC)) == second


ZONES = ["Europe/London", "Asia/Kolkata", "America/New_York", "Australia/Lord_Howe", "UTC"]
minutes = st.integers(min_value=0, max_value=24 * 60 - 1)


@st.composite
def window_specs(draw):
    count = draw(st.integers(min_value=1, max_value=3))
    specs = []
    for _ in range(count):
        start = draw(minutes)
        end = draw(
            st.integers(min_value=1, max_value=24 * 60 - 1).map(lambda d, s=start: (s + d) % (24 * 60))
        )
        end = end or 24 * 60
        specs.append(f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}")
    return specs


instants = st.datetimes(
    min_value=datetime(2025, 1, 1),  # noqa: DTZ001  (hypothesis takes naive bounds)
    max_value=datetime(2028, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@settings(max_examples=150, deadline=None)
@given(specs=window_specs(), zone=st.sampled_from(ZONES), when=instants)
def test_next_open_is_the_first_open_instant(specs, zone, when):
    """next_open(t) is open, not before t, and no sampled instant between t and it is open."""
    windows = SendingWindows.parse(specs, zone)
    opens = windows.next_open(when)
    assert opens >= when
    assert windows.is_open(opens)
    if opens > when:
        assert not windows.is_open(opens - timedelta(seconds=1))
        probe = when
        while probe < opens:
            assert not windows.is_open(probe)
            probe += timedelta(minutes=7)
    assert opens - when < timedelta(days=2)


@settings(max_examples=150, deadline=None)
@given(specs=window_specs(), zone=st.sampled_from(ZONES), when=instants)
def test_next_close_is_the_first_closed_instant(specs, zone, when):
    """From an open instant, next_close is closed and every sampled instant before it is open."""
    windows = SendingWindows.parse(specs, zone)
    start = windows.next_open(when)
    closes = windows.next_close(start)
    if closes is None:
        assert windows.covers_whole_day()
        return
    assert closes > start
    assert not windows.is_open(closes)
    assert windows.is_open(closes - timedelta(seconds=1))
    probe = start
    while probe < closes:
        assert windows.is_open(probe)
        probe += timedelta(minutes=7)


async def test_wait_to_claim_sleeps_on_the_clock_until_the_window_opens():
    """The gate returns at once inside a window, and outside it wakes exactly when the window opens."""
    clock = TestClock(ist("2026-12-06T20:59"))
    schedule = Schedule.create("09:00-21:00", "Asia/Kolkata", now=clock.now())
    with anyio.fail_after(5):
        await wait_to_claim(schedule, clock)
        clock.advance(60)
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait_to_claim, schedule, clock)
            await anyio.wait_all_tasks_blocked()
            assert clock.next_deadline() == 12 * 3600
            clock.advance(12 * 3600 - 1)
            await anyio.wait_all_tasks_blocked()
            assert clock.sleepers == 1
            clock.advance(1)
    assert clock.now() == ist("2026-12-07T09:00")
