"""Recurring maintenance windows from the YAML: `weekly: sun 02:00-04:00`, or a cron expression
with a duration, read in the client's time zone.

Pure: whether a window is in force is a function of `now` and the zone. Wall-clock times are
kept across DST changes: `sun 02:00-04:00` in Europe/Berlin closes at 04:00 local time on the
night the clocks go forward too (then it lasts one hour: a start the clocks skip is moved
forward by the change) and on the night they go back (three hours: an ambiguous start is its
first occurrence).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Self

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from incidents.sla_policy import WallDuration

Span = tuple[datetime, datetime]  # (start, end), aware UTC

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKLY_EXAMPLE = "sun 02:00-04:00, or sat,sun 23:00-01:00 (ends the next day)"
_WEEKLY = re.compile(
    r"^\s*(?P<days>[a-z]{3}(?:\s*,\s*[a-z]{3})*)\s+"
    r"(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$"
)


def _clock_time(text: str, *, whole: str) -> time:
    hours, minutes = (int(part) for part in text.split(":"))
    if hours == 24 and minutes == 0:
        return time(0, 0)  # 24:00: midnight at the end of the day
    if hours > 23 or minutes > 59:
        raise ValueError(f"{text} is not a time of day in {whole!r}: use 00:00 to 23:59")
    return time(hours, minutes)


@dataclass(frozen=True, slots=True)
class Weekly:
    """On each of `days` (0 = Monday) from `start` to `end` local time; an end not after the
    start is on the next day."""

    days: frozenset[int]
    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> Weekly:
        match = _WEEKLY.match(text.lower())
        if not match:
            raise ValueError(f"must be days and hours such as {WEEKLY_EXAMPLE} (got {text!r})")
        days: set[int] = set()
        for name in re.split(r"\s*,\s*", match["days"]):
            if name not in DAYS:
                raise ValueError(
                    f"unknown day {name!r} in {text!r}: use {', '.join(DAYS)} "
                    f"(e.g. {WEEKLY_EXAMPLE})"
                )
            days.add(DAYS.index(name))
        start = _clock_time(match["start"], whole=text)
        end = _clock_time(match["end"], whole=text)
        if start == end:
            raise ValueError(f"{text!r} starts and ends at the same time: give it a length")
        return cls(frozenset(days), start, end)

    def spans_around(self, now: datetime, zone: tzinfo) -> Iterable[Span]:
        """Occurrences that could contain `now` or come within a week of it."""
        today = now.astimezone(zone).date()
        for offset in range(-1, 8):
            day = today + timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            end_day = day if self.end > self.start else day + timedelta(days=1)
            yield _local(day, self.start, zone), _local(end_day, self.end, zone)

    def __str__(self) -> str:
        days = ",".join(DAYS[d] for d in sorted(self.days))
        return f"{days} {self.start:%H:%M}-{self.end:%H:%M}"


def _local(day: date, at: time, zone: tzinfo) -> datetime:
    """`day` at wall-clock `at` in `zone`, as UTC. fold=0 (PEP 495): an ambiguous time is its
    first occurrence; a time the clocks skip is read with the offset before the change, so it
    lands that much after the gap (02:00 in a 02:00-03:00 gap is 03:00)."""
    return datetime.combine(day, at).replace(tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Cron:
    """Starts when `expression` matches (local time), lasts `duration`."""

    expression: str
    duration: timedelta

    @classmethod
    def parse(cls, expression: str, duration: timedelta) -> Cron:
        # Five fields only: croniter would also take seconds and years, which nobody means.
        if len(expression.split()) != 5 or not croniter.is_valid(expression):
            raise ValueError(
                "must be a cron expression of five fields: minute hour day month weekday, "
                f"e.g. '0 2 * * sun' for Sundays at 02:00 (got {expression!r})"
            )
        if duration <= timedelta(0):
            raise ValueError("duration must be positive, e.g. 2h")
        return cls(expression, duration)

    def spans_around(self, now: datetime, zone: tzinfo) -> Iterable[Span]:
        local = now.astimezone(zone)
        # The latest start at or before now (croniter's get_prev is strictly before its base).
        before = croniter(self.expression, local + timedelta(seconds=1)).get_prev(datetime)
        after = croniter(self.expression, local).get_next(datetime)
        for start in (before, after):
            begins = start.astimezone(UTC)
            yield begins, begins + self.duration

    def __str__(self) -> str:
        hours, rest = divmod(int(self.duration.total_seconds()) // 60, 60)
        length = f"{hours}h{rest:02d}m" if rest else f"{hours}h"
        return f"cron {self.expression} for {length}"


Recurrence = Weekly | Cron


class RecurringWindowSpec(BaseModel):
    """One recurring maintenance window of a client (all its sites) or of one site."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weekly: str | None = Field(
        default=None,
        description="Days and local hours, e.g. `sun 02:00-04:00` or `sat,sun 23:00-01:00` "
        "(an end before the start is on the next day). In the client's time zone.",
        examples=["sun 02:00-04:00"],
    )
    cron: str | None = Field(
        default=None,
        description="A cron expression for the start (minute hour day month weekday, in the "
        "client's time zone), with `duration`.",
        examples=["0 3 1 * *"],
    )
    duration: WallDuration | None = Field(
        default=None, description="How long a cron window lasts, e.g. 2h."
    )
    reason: str = Field(default="", description="Shown in `monitor maintenance list`.")

    @field_validator("weekly")
    @classmethod
    def _weekly(cls, value: str | None) -> str | None:
        if value is not None:
            Weekly.parse(value)
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            Cron.parse(value, timedelta(minutes=1))
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> Self:
        if (self.weekly is None) == (self.cron is None):
            raise ValueError(
                "give either weekly (e.g. `weekly: sun 02:00-04:00`) or cron with a duration "
                "(e.g. `cron: '0 3 1 * *'` and `duration: 2h`)"
            )
        if self.weekly is not None and self.duration is not None:
            raise ValueError("duration is for cron windows: weekly has its own end time")
        if self.cron is not None and (self.duration is None or not self.duration):
            raise ValueError("a cron window needs a positive duration, e.g. `duration: 2h`")
        return self

    def recurrence(self) -> Recurrence:
        if self.weekly is not None:
            return Weekly.parse(self.weekly)
        assert self.cron is not None and self.duration is not None  # the validator saw to it
        return Cron.parse(self.cron, self.duration)


@dataclass(slots=True)
class RecurringWindow:
    """A recurrence as the desk uses it: for a site, in its client's zone.

    Asked on every probe result (is the site in maintenance?), so the answer is memoised
    until the next boundary (an occurrence's start or end): a cron occurrence costs
    croniter about 2 ms to find, a weekly one some 20 us.
    """

    recurrence: Recurrence
    zone: tzinfo
    reason: str = ""
    _answer: Span | None = field(default=None, init=False, repr=False, compare=False)
    _valid: Span | None = field(default=None, init=False, repr=False, compare=False)

    def in_force(self, now: datetime) -> Span | None:
        """The occurrence in force at `now` (from inclusive, to exclusive), or None."""
        valid = self._valid
        if valid is not None and valid[0] <= now < valid[1]:
            return self._answer
        spans = list(self.recurrence.spans_around(now, self.zone))
        answer = next(((start, end) for start, end in spans if start <= now < end), None)
        later = [moment for span in spans for moment in span if moment > now]
        # Nothing changes before the next start or end: that is how long the answer holds.
        self._answer, self._valid = answer, (now, min(later, default=now + timedelta(hours=1)))
        return answer

    def next_span(self, now: datetime) -> Span | None:
        """The occurrence in force at `now`, else the next one to start."""
        spans = sorted(s for s in self.recurrence.spans_around(now, self.zone) if s[1] > now)
        return spans[0] if spans else None


def recurring_in_force(windows: Iterable[RecurringWindow], now: datetime) -> list[Span]:
    return [span for window in windows if (span := window.in_force(now)) is not None]


def occurrences(
    recurrence: Recurrence, zone: tzinfo, *, start: datetime, end: datetime
) -> list[Span]:
    """Every occurrence of `recurrence` in `zone` that overlaps [start, end), oldest first:
    what the daily rollups leave out of a period as maintenance."""
    found: set[Span] = set()
    if isinstance(recurrence, Weekly):
        day = start.astimezone(zone).date() - timedelta(days=1)
        while _local(day, time(), zone) < end:
            if day.weekday() in recurrence.days:
                end_day = day if recurrence.end > recurrence.start else day + timedelta(days=1)
                found.add(
                    (_local(day, recurrence.start, zone), _local(end_day, recurrence.end, zone))
                )
            day += timedelta(days=1)
    else:
        runs = croniter(recurrence.expression, (start - recurrence.duration).astimezone(zone))
        while (begins := runs.get_next(datetime).astimezone(UTC)) < end:
            found.add((begins, begins + recurrence.duration))
    return sorted(span for span in found if span[1] > start and span[0] < end)


def describe(spec: Any) -> str:
    """How `monitor maintenance list` names a recurring window."""
    recurrence = spec.recurrence() if isinstance(spec, RecurringWindowSpec) else spec
    return f"weekly {recurrence}" if isinstance(recurrence, Weekly) else str(recurrence)
