"""Uptime: the one definition that the daily bars, the percentages, the monthly report and the
Prometheus gauge all use. Pure functions of plain values (no clock, no SQL).

Definition (the README says the same):

    uptime = 1 - down / (observed - maintenance)

over the calendar days of the site's client (its `business_hours.timezone`), where

- observed: the seconds of each day with data (a probe, or an incident open), up to now;
- maintenance: the seconds of those inside a maintenance window of the site;
- down: the seconds, outside maintenance, in which the site had an open incident whose headline
  says the site is down (`incidents.wording.is_down`: an availability check not served at
  all). An open incident about a part (a failing checkout, a slow page) is "degraded": it is
  shown, but it does not count against uptime.

An incident's headline can change while it is open (slow pages, then down), so an incident is
a sequence of `Span`s, each in one state.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from incidents.model import Headline
from incidents.wording import is_down


class SpanState(enum.StrEnum):
    DOWN = "down"  # the incident's headline says the site is down
    DEGRADED = "degraded"  # open, about a part or slow pages: not counted against uptime


class DayState(enum.StrEnum):
    """The colour of a daily bar: the worst that happened that day, in this order."""

    DOWN = "down"  # some down time outside maintenance
    DEGRADED = "degraded"  # some degraded time, no down time
    MAINTENANCE = "maintenance"  # some maintenance, nothing worse
    OPERATIONAL = "operational"  # observed, nothing of the above
    NO_DATA = "no_data"  # no probe and no incident that day (not monitored, or in the future)


@dataclass(frozen=True, slots=True)
class Span:
    """A stretch [start, end) of one incident in one state (UTC-aware datetimes)."""

    start: datetime
    end: datetime
    state: SpanState


@dataclass(frozen=True, slots=True)
class Window:
    """A maintenance window [start, end) (UTC-aware datetimes)."""

    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class DayAmounts:
    """Seconds of one calendar day: down and degraded exclude maintenance; down wins over
    degraded where both would apply."""

    down_seconds: float = 0.0
    degraded_seconds: float = 0.0
    maintenance_seconds: float = 0.0

    def __add__(self, other: DayAmounts) -> DayAmounts:
        return DayAmounts(
            down_seconds=self.down_seconds + other.down_seconds,
            degraded_seconds=self.degraded_seconds + other.degraded_seconds,
            maintenance_seconds=self.maintenance_seconds + other.maintenance_seconds,
        )


@dataclass(frozen=True, slots=True)
class DayStat:
    """One site (or check) on one calendar day of its client.

    For a check, only `probes` and `failures` are kept; its seconds are 0 and its `worst` is
    "operational" or "no_data" (incidents belong to sites).
    """

    day: date
    probes: int  # probe results recorded that day
    failures: int  # of them, failures (any outcome but ok, confirmed or not)
    observed_seconds: float  # the day's length (23, 24 or 25 h) up to now; 0 without data
    down_seconds: float  # in an open "down" incident, maintenance excluded
    degraded_seconds: float  # in an open incident that is not "down", maintenance excluded
    maintenance_seconds: float  # in a maintenance window of the site, up to now
    incidents: int  # incidents of the site open at some point of the day
    worst: DayState

    @property
    def downtime_minutes(self) -> float:
        return self.down_seconds / 60


def span_state(headline: Headline | None) -> SpanState:
    """The state an open incident with `headline` puts its site in. An incident stored before
    headlines were kept (revision 0005) has none and counts as down: the cautious reading."""
    if headline is None or is_down(headline):
        return SpanState.DOWN
    return SpanState.DEGRADED


def day_bounds(day: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """The UTC-aware start and end of local `day` in `tz` (23 or 25 hours on DST days)."""
    # In UTC: Python subtracts two datetimes of one tzinfo by their wall clocks, which
    # would make every day 24 hours long.
    start = datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=tz).astimezone(UTC)
    return start, end


def local_day(at: datetime, tz: tzinfo) -> date:
    return at.astimezone(tz).date()


def days_of(
    start: datetime, end: datetime, tz: tzinfo
) -> Iterator[tuple[date, datetime, datetime]]:
    """[start, end) cut at local midnights of `tz`: (day, piece start, piece end)."""
    day = local_day(start, tz)
    while True:
        day_start, day_end = day_bounds(day, tz)
        piece_start, piece_end = max(start, day_start), min(end, day_end)
        if piece_start >= end:
            return
        if piece_end > piece_start:
            yield day, piece_start, piece_end
        day += timedelta(days=1)


def day_amounts(
    *,
    spans: Sequence[Span],
    windows: Sequence[Window],
    start: datetime,
    end: datetime,
    tz: tzinfo,
) -> dict[date, DayAmounts]:
    """Seconds per local day of [start, end): maintenance (the union of `windows`), down
    (union of down spans, outside maintenance) and degraded (the rest of the spans, outside
    maintenance and down). Days with nothing to count are left out."""
    found: dict[date, DayAmounts] = {}
    for day, piece_start, piece_end in days_of(start, end, tz):
        amounts = _piece_amounts(spans, windows, piece_start, piece_end)
        if amounts != DayAmounts():
            found[day] = amounts
    return found


def _piece_amounts(
    spans: Sequence[Span], windows: Sequence[Window], start: datetime, end: datetime
) -> DayAmounts:
    cuts = {start, end}
    edges = [(s.start, s.end) for s in spans] + [(w.start, w.end) for w in windows]
    for pair in edges:
        cuts.update(at for at in pair if start < at < end)
    ordered = sorted(cuts)
    down = degraded = maintenance = 0.0
    for left, right in zip(ordered, ordered[1:], strict=False):
        seconds = (right - left).total_seconds()
        if any(w.start <= left and right <= w.end for w in windows):
            maintenance += seconds
            continue
        covering = [s.state for s in spans if s.start <= left and right <= s.end]
        if SpanState.DOWN in covering:
            down += seconds
        elif covering:
            degraded += seconds
    return DayAmounts(down_seconds=down, degraded_seconds=degraded, maintenance_seconds=maintenance)


def worst_of(*, observed: bool, down: float, degraded: float, maintenance: float) -> DayState:
    if not observed:
        return DayState.NO_DATA
    if down > 0:
        return DayState.DOWN
    if degraded > 0:
        return DayState.DEGRADED
    if maintenance > 0:
        return DayState.MAINTENANCE
    return DayState.OPERATIONAL


def uptime(stats: Sequence[DayStat]) -> float | None:
    """The share of observed, non-maintenance time that was not down, from 0.0 to 1.0; None
    when there is no such time (nothing observed, or all of it maintenance)."""
    counted = sum(max(0.0, s.observed_seconds - s.maintenance_seconds) for s in stats)
    if counted <= 0:
        return None
    down = sum(s.down_seconds for s in stats)
    return max(0.0, 1.0 - down / counted)


def rolling_uptime(
    *,
    spans: Sequence[Span],
    windows: Sequence[Window],
    start: datetime,
    end: datetime,
    observed_days: Collection[date],
    tz: tzinfo,
) -> float | None:
    """`uptime` of the stretch [start, end) (a rolling 24 hours, say) rather than of whole
    days, by the same definition: a piece of a calendar day counts as observed when its day
    is (see DayStat.observed_seconds), maintenance leaves the denominator, and only down time
    outside maintenance counts against it. None without such time."""
    counted = down = 0.0
    for day, piece_start, piece_end in days_of(start, end, tz):
        if day not in observed_days:
            continue
        amounts = _piece_amounts(spans, windows, piece_start, piece_end)
        counted += (piece_end - piece_start).total_seconds() - amounts.maintenance_seconds
        down += amounts.down_seconds
    if counted <= 0:
        return None
    return max(0.0, 1.0 - down / counted)


def downtime_minutes(stats: Sequence[DayStat]) -> float:
    return sum(s.down_seconds for s in stats) / 60
