"""Calendars that SLA clocks run on: business hours in a client's time zone, or 24x7.

Both kinds satisfy `Calendar`; plans decide which severities run on which. Shared rules:

- Datetimes in are timezone-aware (naive ones raise ValueError); datetimes out are UTC.
- Open time is half-open: a 09:00-17:00 window is open at 09:00, closed at 17:00.
- `add_business_time(start, d)` is the first instant by which `d` of open time has passed
  since `start`. A start outside hours starts the clock at the next opening; a `d` that runs
  out exactly at closing time gives that closing time, not the next opening.
- A zero duration gives `next_opening(start)`: `start` itself when open, else the next
  opening. A due time says when someone is expected to act; with nothing left to wait for,
  that is as soon as the desk is staffed, not "due now" at 3 a.m. on a Saturday (which a
  business-hours plan would then show as overdue all weekend). It is also the limit of ever
  smaller durations, so a due time never jumps backwards as a target shrinks.
- `business_time_between(a, b)` is the open time in [a, b). With b < a it is negative,
  -business_time_between(b, a), so "time left until due" goes negative once overdue and
  says by how much business time.
- Negative durations raise ValueError.

A business calendar builds each local date's windows in local time (zoneinfo) and does the
arithmetic in UTC, so DST changes shorten or lengthen the open time of that day exactly as
the wall clock does (see `incidents.wall_clock`).
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from incidents.business_duration import BusinessDuration
from incidents.wall_clock import Interval, local_date, merge, to_naive_utc, window_intervals

MINUTES_PER_DAY = 24 * 60
WINDOW_REGEX = r"^([01]?\d|2[0-4]):[0-5]\d-([01]?\d|2[0-4]):[0-5]\d$"
_WINDOW_PATTERN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_WINDOW_EXAMPLE = "must be hh:mm-hh:mm such as 09:00-17:00"
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# The search for the next open minute gives up after this much closed time in a row. A
# year of closure (holidays plus closed dates) is fine; three years means a mistake.
MAX_CLOSED_STRETCH = timedelta(days=3 * 366)
# Open intervals are gathered in UTC chunks of this length.
_CHUNK = timedelta(days=7)
_CACHE_DAYS = 4096


class NoOpeningError(RuntimeError):
    """A business calendar has no open time for MAX_CLOSED_STRETCH after `after`."""

    def __init__(self, after: datetime) -> None:
        super().__init__(
            f"no business hours in the {MAX_CLOSED_STRETCH.days} days after "
            f"{after.isoformat()}: are the calendar's closed dates right?"
        )
        self.after = after


@dataclass(frozen=True, slots=True, order=True)
class Window:
    """Open hours within one local day, in minutes after midnight; end 1440 is 24:00."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < MINUTES_PER_DAY:
            raise ValueError(f"a window must start between 00:00 and 23:59 (got {self})")
        if not self.start < self.end <= MINUTES_PER_DAY:
            raise ValueError(f"a window must end after it starts and by 24:00 (got {self})")

    @classmethod
    def parse(cls, text: str) -> Window:
        match = _WINDOW_PATTERN.match(text)
        if not match:
            raise ValueError(f"{_WINDOW_EXAMPLE} (got {text!r})")
        sh, sm, eh, em = (int(part) for part in match.groups())
        if sm > 59 or em > 59 or sh > 23 or eh > 24 or (eh == 24 and em != 0):
            raise ValueError(
                f"{_WINDOW_EXAMPLE}, with hours 00-23 and 24:00 only as an end (got {text!r})"
            )
        start, end = sh * 60 + sm, eh * 60 + em
        if end <= start:
            raise ValueError(f"must end after it starts, e.g. 09:00-17:00 (got {text!r})")
        return cls(start, end)

    @property
    def length(self) -> timedelta:
        return timedelta(minutes=self.end - self.start)

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


DEFAULT_HOURS: Mapping[int, tuple[Window, ...]] = {
    weekday: (Window(9 * 60, 17 * 60),) for weekday in range(5)
}
"""Monday to Friday, 09:00-17:00 (weekday numbers as in `date.weekday()`)."""


class Calendar(Protocol):
    """What SLA clocks need from a calendar. See the module docstring for the rules."""

    def is_open(self, at: datetime) -> bool: ...

    def next_opening(self, at: datetime) -> datetime:
        """`at` (in UTC) when open, else the start of the next open stretch."""
        ...

    def add_business_time(self, start: datetime, duration: timedelta) -> datetime: ...

    def business_time_between(self, a: datetime, b: datetime) -> timedelta: ...

    def span(self, duration: BusinessDuration) -> timedelta:
        """The open time that `duration` (e.g. 1d) stands for on this calendar."""
        ...

    def add(self, start: datetime, duration: BusinessDuration) -> datetime:
        """`add_business_time(start, span(duration))`."""
        ...


def _check_duration(duration: timedelta) -> None:
    if duration < timedelta(0):
        raise ValueError(f"duration must not be negative (got {duration})")


class TwentyFourSeven:
    """Always open: business time is elapsed time."""

    def is_open(self, at: datetime) -> bool:
        to_naive_utc(at, name="at")
        return True

    def next_opening(self, at: datetime) -> datetime:
        return to_naive_utc(at, name="at").replace(tzinfo=UTC)

    def add_business_time(self, start: datetime, duration: timedelta) -> datetime:
        _check_duration(duration)
        return to_naive_utc(start, name="start").replace(tzinfo=UTC) + duration

    def business_time_between(self, a: datetime, b: datetime) -> timedelta:
        return to_naive_utc(b, name="b") - to_naive_utc(a, name="a")

    def span(self, duration: BusinessDuration) -> timedelta:
        return duration.to_timedelta(day=timedelta(days=1), week=timedelta(days=7))

    def add(self, start: datetime, duration: BusinessDuration) -> datetime:
        return self.add_business_time(start, self.span(duration))

    def __repr__(self) -> str:
        return "TwentyFourSeven()"


TWENTY_FOUR_SEVEN = TwentyFourSeven()


def _weekly_windows(hours: Mapping[int, Sequence[Window]]) -> tuple[tuple[Window, ...], ...]:
    week: list[tuple[Window, ...]] = []
    for weekday in range(7):
        windows = tuple(sorted(hours.get(weekday, ())))
        for before, after in zip(windows, windows[1:], strict=False):
            if after.start < before.end:
                raise ValueError(f"{WEEKDAY_NAMES[weekday]}: windows {before} and {after} overlap")
        week.append(windows)
    unknown = set(hours) - set(range(7))
    if unknown:
        raise ValueError(f"weekdays are numbered 0 (Monday) to 6 (got {sorted(unknown)})")
    if not any(week):
        raise ValueError("no open hours in the week: give at least one day a window")
    return tuple(week)


class BusinessCalendar:
    """Weekly open hours in one time zone, closed on public holidays and on closed dates."""

    def __init__(
        self,
        *,
        timezone: ZoneInfo | str = "UTC",
        hours: Mapping[int, Sequence[Window]] = DEFAULT_HOURS,
        holidays: Container[date] | None = None,
        closed_dates: Iterable[date] = (),
    ) -> None:
        """`hours` maps `date.weekday()` numbers (0 is Monday) to windows; days left out are
        closed. `holidays` is anything that answers `date in holidays`, e.g. the `holidays`
        package's country calendars."""
        self.timezone = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
        self.hours = _weekly_windows(hours)
        self.holidays = holidays
        self.closed_dates = frozenset(closed_dates)
        # Each local date's open intervals, computed once: a walk over a week reuses them.
        self._days: dict[date, list[Interval]] = {}

    @property
    def weekly_open(self) -> timedelta:
        """Open time in a week without holidays or DST changes."""
        return sum((w.length for day in self.hours for w in day), timedelta(0))

    @property
    def working_day(self) -> timedelta:
        """The length of `1d`: weekly open time divided by the weekdays that open."""
        return self.weekly_open / sum(1 for day in self.hours if day)

    def is_closed_date(self, day: date) -> bool:
        return day in self.closed_dates or (self.holidays is not None and day in self.holidays)

    def is_open(self, at: datetime) -> bool:
        moment = to_naive_utc(at, name="at")
        return any(True for _ in self._open_between(moment, moment + timedelta.resolution))

    def next_opening(self, at: datetime) -> datetime:
        return self.add_business_time(at, timedelta(0))

    def add_business_time(self, start: datetime, duration: timedelta) -> datetime:
        _check_duration(duration)
        left = duration
        for lo, hi in self._open_from(to_naive_utc(start, name="start")):
            if hi - lo >= left:
                return (lo + left).replace(tzinfo=UTC)
            left -= hi - lo
        raise AssertionError("unreachable: _open_from never ends")  # pragma: no cover

    def business_time_between(self, a: datetime, b: datetime) -> timedelta:
        lo, hi = to_naive_utc(a, name="a"), to_naive_utc(b, name="b")
        if hi < lo:
            return -self.business_time_between(b, a)
        return sum((end - start for start, end in self._open_between(lo, hi)), timedelta(0))

    def span(self, duration: BusinessDuration) -> timedelta:
        return duration.to_timedelta(day=self.working_day, week=self.weekly_open)

    def add(self, start: datetime, duration: BusinessDuration) -> datetime:
        return self.add_business_time(start, self.span(duration))

    def _day(self, day: date) -> list[Interval]:
        cached = self._days.get(day)
        if cached is None:
            if self.is_closed_date(day):
                cached = []
            else:
                windows = [(w.start, w.end) for w in self.hours[day.weekday()]]
                cached = window_intervals(self.timezone, day, windows)
            if len(self._days) >= _CACHE_DAYS:
                self._days.clear()
            self._days[day] = cached
        return cached

    def _open_between(self, lo: datetime, hi: datetime) -> Iterator[Interval]:
        """Open intervals within [lo, hi) (naive UTC), in order, cut to that range."""
        # Around a DST change the instants of one local date may come after some of the
        # next date's (a zone falling back across midnight), so a day either side is taken
        # and everything is sorted.
        first = local_date(self.timezone, lo) - timedelta(days=1)
        last = local_date(self.timezone, hi) + timedelta(days=1)
        days = (first + timedelta(days=n) for n in range((last - first).days + 1))
        for start, end in merge(piece for day in days for piece in self._day(day)):
            start, end = max(start, lo), min(end, hi)
            if start < end:
                yield start, end

    def _open_from(self, start: datetime) -> Iterator[Interval]:
        """Open intervals from `start` on, endlessly; NoOpeningError after a long closure."""
        lo, last_open = start, start
        while True:
            hi = lo + _CHUNK
            for interval in self._open_between(lo, hi):
                last_open = interval[1]
                yield interval
            if hi - last_open > MAX_CLOSED_STRETCH:
                raise NoOpeningError(last_open.replace(tzinfo=UTC))
            lo = hi

    def __repr__(self) -> str:
        hours = ", ".join(
            f"{WEEKDAY_NAMES[n]} {' '.join(map(str, day))}"
            for n, day in enumerate(self.hours)
            if day
        )
        return f"BusinessCalendar({self.timezone.key}: {hours})"
