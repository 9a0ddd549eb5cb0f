"""When a campaign may send: daily sending windows in a time zone, and a start time.

Pure functions of a time (and one coroutine, :func:`wait_to_claim`, that
sleeps on a given clock until a batch may be claimed). A store keeps a
schedule as three strings (:attr:`Schedule.windows_spec`, the zone's IANA
name and the start time in ISO 8601) and a runner asks :meth:`Schedule.may_claim`
before it claims a batch; delivery polling ignores the schedule (it goes on
at any hour).

Windows are read on the local wall clock of their zone, so ``09:00-21:00`` in
``Europe/London`` is 09:00 to 21:00 in winter and in summer. A window whose
end is not after its start crosses midnight (``21:00-06:00``). On the night
the clocks go forward, a window that would open inside the skipped hour
opens at the first instant after it; on the night they go back, a window's
wall-clock times that occur twice are inside it twice.

::

    schedule = Schedule.create(["09:00-21:00"], "Asia/Kolkata", start_at="2026-12-07T10:00+05:30", now=now)
    schedule.may_claim(t)          # False before the start time and outside every window
    schedule.next_claim(t)         # the first instant from t on when it may
    schedule.waiting_message(t)    # "waiting for its window (opens 09:00 IST, in 3 h 12 min)"
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from sms_async._clock import SYSTEM_CLOCK, Clock
from sms_async._exceptions import UsageError

__all__ = [
    "Schedule",
    "ScheduleError",
    "SendingWindows",
    "Window",
    "format_wait",
    "parse_start_at",
    "parse_zone",
    "wait_to_claim",
]

_WINDOW: Final = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")
_DAY: Final = 24 * 60
# One second: how finely the instant a window opens is found inside a clock change.
_RESOLUTION: Final = timedelta(seconds=1)


class ScheduleError(UsageError):
    """A sending window, time zone or start time that cannot be used; the message says what to do."""


@attrs.frozen(order=True)
class Window:
    """One daily window ``[start, end)``, in minutes after local midnight.

    It crosses midnight when ``end <= start``; ``end`` may be 1440 (``24:00``, the end of the day).
    """

    start: int
    end: int

    @classmethod
    def parse(cls, text: str) -> Window:
        """Read ``HH:MM-HH:MM`` (``24:00`` allowed as an end).

        Raises:
            ScheduleError: malformed, out of range, or of zero length.
        """
        match = _WINDOW.fullmatch(text)
        if match is None:
            raise ScheduleError(
                f"cannot read the sending window {text!r}: write it as HH:MM-HH:MM, such as 09:00-21:00"
            )
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if h1 > 23 or m1 > 59 or m2 > 59 or end > _DAY:
            raise ScheduleError(
                f"the sending window {text!r} names a time that does not exist: "
                "hours run 00-23 (24:00 only as an end), minutes 00-59"
            )
        if start == end:
            raise ScheduleError(
                f"the sending window {text!r} has zero length: give an end after its start "
                "(a window may cross midnight, such as 21:00-06:00; 00:00-24:00 is the whole day)"
            )
        return cls(start, end)

    @property
    def crosses_midnight(self) -> bool:
        """Whether the window ends on the next day."""
        return self.end <= self.start

    def contains(self, minute: float) -> bool:
        """Whether a local wall-clock time (minutes after midnight, with fractions) is inside."""
        if self.crosses_midnight:
            return minute >= self.start or minute < self.end
        return self.start <= minute < self.end

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_zone(name: str) -> ZoneInfo:
    """The IANA time zone called ``name``.

    Raises:
        ScheduleError: no such zone (the message names it and says what to give).
    """
    try:
        # A path-like or empty key raises ValueError rather than ZoneInfoNotFoundError.
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"unknown time zone {name!r}: give an IANA name such as Asia/Kolkata, Europe/London "
            "or UTC (zoneinfo.available_timezones() lists them)"
        ) from None


def parse_start_at(text: str) -> datetime:
    """Read an ISO 8601 time with its offset (``2026-12-07T10:00+05:30``, or ``...Z``).

    Raises:
        ScheduleError: unreadable, or without an offset (which would leave the
            instant to the machine's own zone).
    """
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ScheduleError(
            f"cannot read the start time {text!r}: write it in ISO 8601 with an offset, "
            "such as 2026-12-07T10:00+05:30"
        ) from None
    if when.utcoffset() is None:
        raise ScheduleError(
            f"the start time {text!r} has no offset: add one, such as {text.strip()}+05:30 or {text.strip()}Z"
        )
    return when


def format_wait(seconds: float) -> str:
    """A wait in words, rounded up to the minute: ``3 h 12 min``, ``2 d 1 h``, ``less than a minute``."""
    if seconds <= 0:
        return "now"
    if seconds < 60:
        return "less than a minute"
    minutes = math.ceil(seconds / 60)
    days, minutes = divmod(minutes, _DAY)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


@attrs.frozen
class SendingWindows:
    """Daily windows in one time zone; a time is inside when any window holds its local wall-clock time."""

    windows: tuple[Window, ...]
    zone: ZoneInfo = attrs.field(eq=False)
    #: The zone's IANA name (compared instead of the ZoneInfo object).
    zone_name: str

    @classmethod
    def parse(cls, windows: str | Iterable[str], zone: str) -> SendingWindows:
        """Read windows (``"09:00-12:00,14:00-21:00"`` or a list of such) in the IANA zone ``zone``.

        Raises:
            ScheduleError: a malformed or zero-length window, no window, or an unknown zone.
        """
        parts = [windows] if isinstance(windows, str) else list(windows)
        texts = [piece for part in parts for piece in part.split(",") if piece.strip()]
        if not texts:
            raise ScheduleError("no sending window given: give one such as 09:00-21:00")
        tz = parse_zone(zone)
        return cls(tuple(sorted({Window.parse(t) for t in texts})), tz, zone)

    @property
    def spec(self) -> str:
        """The windows as one string that :meth:`parse` reads back (``09:00-12:00,14:00-21:00``)."""
        return ",".join(map(str, self.windows))

    def _minute(self, when: datetime) -> float:
        local = when.astimezone(self.zone)
        return local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60

    def is_open(self, when: datetime) -> bool:
        """Whether ``when`` (timezone-aware) is inside a window."""
        minute = self._minute(when)
        return any(w.contains(minute) for w in self.windows)

    def next_open(self, when: datetime) -> datetime:
        """The first instant at or after ``when`` that is inside a window (``when`` itself if it is)."""
        if self.is_open(when):
            return when
        day = when.astimezone(self.zone).date()
        candidates = (
            instant
            for offset in range(3)
            for window in self.windows
            for instant in self._instants(day + timedelta(days=offset), window.start)
        )
        # A window that lies wholly inside an hour the clocks skip does not open that day.
        return min(c for c in candidates if c > when and self.is_open(c))

    def next_close(self, when: datetime) -> datetime | None:
        """The first instant after ``when`` that is outside every window; None if windows cover the day."""
        if self.covers_whole_day():
            return None
        if not self.is_open(when):
            return when
        # Local minutes where some window ends and no window holds the time:
        # the first such instant after `when` is when claiming must stop.
        day = when.astimezone(self.zone).date()
        closes = [
            c
            for offset in range(3)
            for window in self.windows
            for c in self._instants(day + timedelta(days=offset), window.end % _DAY)
            if c > when and not self.is_open(c)
        ]
        return min(closes, default=None)

    def covers_whole_day(self) -> bool:
        """Whether every minute of the day is inside some window."""
        return all(any(w.contains(m) for w in self.windows) for m in range(_DAY))

    def _instants(self, day: date, minute: int) -> tuple[datetime, ...]:
        """When local wall-clock time on ``day`` reaches ``minute``: twice on the night the clocks go back."""
        first = self._opening(day, minute)
        wall = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=self.zone).replace(fold=1)
        second = wall.astimezone(UTC)
        if second != first and second.astimezone(self.zone).replace(tzinfo=None) == wall.replace(tzinfo=None):
            return (first, second)
        return (first,)

    def _opening(self, day: date, minute: int) -> datetime:
        """The first instant whose local wall-clock time on ``day`` reaches ``minute``.

        When the clocks skip over that time, it is the instant after the skip.
        """
        wall = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=self.zone)
        instant = wall.astimezone(UTC)
        if instant.astimezone(self.zone).replace(tzinfo=None) == wall.replace(tzinfo=None):
            # It exists (on an ambiguous night, fold=0 is its first occurrence).
            return instant
        # In a gap: fold=0 reads it with the offset before the change (an
        # instant after the change), fold=1 with the one after (before it).
        # The clock change lies between; find it to the second.
        low = wall.replace(fold=1).astimezone(UTC)
        high = instant
        if low > high:
            low, high = high, low
        target = minute
        while high - low > _RESOLUTION:
            middle = low + (high - low) / 2
            local = middle.astimezone(self.zone)
            if local.date() > day or local.hour * 60 + local.minute >= target:
                high = middle
            else:
                low = middle
        return high.replace(microsecond=0) if high.microsecond else high

    def local_label(self, when: datetime) -> str:
        """``09:00 IST``: the local time and the zone's abbreviation at ``when``."""
        local = when.astimezone(self.zone)
        return f"{local:%H:%M} {local.tzname()}"


@attrs.frozen
class Schedule:
    """A campaign's sending schedule: optional daily windows and an optional start time.

    An empty schedule (no windows, no start) may always claim.
    """

    windows: SendingWindows | None = None
    start_at: datetime | None = None

    @classmethod
    def create(
        cls,
        windows: str | Sequence[str] | None,
        zone: str | None,
        *,
        start_at: str | datetime | None = None,
        now: datetime,
    ) -> Schedule:
        """Read and check a schedule as a campaign is created.

        Args:
            windows: ``"09:00-21:00"`` (several joined by commas) or a list of such; None for none.
            zone: The windows' IANA zone; required with windows, refused without them.
            start_at: ISO 8601 with an offset, or an aware datetime; None starts at once.
            now: The time of creation (from the caller's clock).

        Raises:
            ScheduleError: a malformed or zero-length window, an unknown or
                missing zone, or a start time without offset or in the past.
        """
        parsed: SendingWindows | None = None
        if windows:
            if zone is None:
                raise ScheduleError(
                    "a sending window needs a time zone: give one such as Asia/Kolkata (an IANA name)"
                )
            parsed = SendingWindows.parse(windows, zone)
        elif zone is not None:
            parse_zone(zone)  # an unknown zone is an error even on its own
            raise ScheduleError(
                f"a time zone ({zone}) was given without a sending window: give one, such as 09:00-21:00"
            )
        start: datetime | None = None
        if start_at is not None:
            start = parse_start_at(start_at) if isinstance(start_at, str) else start_at
            if start.utcoffset() is None:
                raise ScheduleError(f"the start time {start!r} must be timezone-aware")
            if start < now:
                raise ScheduleError(
                    f"the start time {start.isoformat()} is in the past (it is now "
                    f"{now.astimezone(start.tzinfo).isoformat(timespec='minutes')}): give a later time, "
                    "or none to start at once"
                )
        return cls(parsed, start)

    @classmethod
    def restore(cls, windows_spec: str | None, zone: str | None, start_at: str | None) -> Schedule:
        """A schedule from what a store kept (:attr:`windows_spec`, :attr:`zone_name`, :attr:`start_at_iso`).

        No check against the present: a stored start time may since have passed.
        """
        parsed = SendingWindows.parse(windows_spec, zone or "UTC") if windows_spec else None
        return cls(parsed, parse_start_at(start_at) if start_at else None)

    @property
    def windows_spec(self) -> str | None:
        """The windows as a store keeps them, or None."""
        return None if self.windows is None else self.windows.spec

    @property
    def zone_name(self) -> str | None:
        """The windows' IANA zone name, or None."""
        return None if self.windows is None else self.windows.zone_name

    @property
    def start_at_iso(self) -> str | None:
        """The start time in ISO 8601 with its offset, or None."""
        return None if self.start_at is None else self.start_at.isoformat()

    def may_claim(self, when: datetime) -> bool:
        """Whether a batch may be claimed at ``when``: at or after the start, inside a window."""
        if self.start_at is not None and when < self.start_at:
            return False
        return self.windows is None or self.windows.is_open(when)

    def next_claim(self, when: datetime) -> datetime:
        """The first instant at or after ``when`` when a batch may be claimed."""
        if self.start_at is not None and when < self.start_at:
            when = self.start_at
        return when if self.windows is None else self.windows.next_open(when)

    def stops_claiming(self, when: datetime) -> datetime | None:
        """When claiming must stop next (the end of the window ``when`` is in), or None for never."""
        if self.windows is None or not self.may_claim(when):
            return None if self.windows is None else when
        return self.windows.next_close(when)

    def waiting_message(self, when: datetime) -> str | None:
        """Why nothing may be claimed at ``when``, in words; None when a batch may be.

        ``waiting for its window (opens 09:00 IST, in 3 h 12 min)``, or
        ``waiting for its start time (10:00 IST, in 45 min)``.
        """
        if self.may_claim(when):
            return None
        opens = self.next_claim(when)
        wait = format_wait((opens - when).total_seconds())
        if self.start_at is not None and when < self.start_at and opens == self.start_at:
            label = (
                self.windows.local_label(opens)
                if self.windows is not None
                else f"{opens:%Y-%m-%d %H:%M} {opens.tzname() or ''}".rstrip()
            )
            return f"waiting for its start time ({label}, in {wait})"
        label = self.windows.local_label(opens) if self.windows is not None else opens.isoformat()
        return f"waiting for its window (opens {label}, in {wait})"


async def wait_to_claim(schedule: Schedule, clock: Clock = SYSTEM_CLOCK) -> None:
    """Return once ``schedule`` lets a batch be claimed, sleeping on ``clock`` until then.

    A runner awaits this before each claim: outside a window it sleeps until
    the window opens (a clock moved meanwhile is read again on waking).
    """
    while not schedule.may_claim(now := clock.now()):
        await clock.sleep((schedule.next_claim(now) - now).total_seconds())
