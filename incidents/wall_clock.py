"""Wall-clock windows of one local date as UTC intervals, exact across DST changes.

A window such as 09:00-17:00 on a date covers the instants whose local wall-clock time, by
the zone's rules, lies inside it on that date. Usually that is one UTC interval as long as
the window; on a DST change it is shorter (the clocks skip part of it), longer (they repeat
part of it) or even two pieces (the window lies wholly inside the repeated hour).

Naive datetimes here stand for UTC: plain arithmetic on them is exact and fast. Callers
convert at their boundary.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

Interval = tuple[datetime, datetime]  # [start, end) in naive UTC
Segment = tuple[datetime, datetime, timedelta]  # [start, end) in naive UTC, constant offset

# Wider than any UTC offset a zone has used (local mean times reached about -16h), so the
# segments around a date cover every instant whose local date it is.
_MARGIN = timedelta(hours=18)
# Offset changes are found by sampling at this step and bisecting where the offset differs.
# Two changes that cancel each other within one step would go unseen; no zone has any.
_STEP = timedelta(hours=2)
_SECOND = timedelta(seconds=1)


def utc_offset(zone: ZoneInfo, utc: datetime) -> timedelta:
    """The zone's UTC offset at the naive-UTC instant `utc`."""
    return zone.fromutc(utc.replace(tzinfo=zone)).utcoffset() or timedelta(0)


def local_date(zone: ZoneInfo, utc: datetime) -> date:
    return (utc + utc_offset(zone, utc)).date()


def _first_change(zone: ZoneInfo, lo: datetime, hi: datetime, offset: timedelta) -> datetime:
    # Invariant: the offset at lo is `offset`, at hi it is not. tzdata changes fall on whole
    # seconds, so bisecting down to one second finds the exact instant.
    while hi - lo > _SECOND:
        mid = lo + timedelta(seconds=(hi - lo) // _SECOND // 2)
        if utc_offset(zone, mid) == offset:
            lo = mid
        else:
            hi = mid
    return hi


def offset_segments(zone: ZoneInfo, day: date) -> list[Segment]:
    """Constant-offset stretches of UTC around `day`, covering every instant of that date."""
    lo = datetime.combine(day, time()) - _MARGIN
    hi = lo + timedelta(days=1) + 2 * _MARGIN
    segments: list[Segment] = []
    seg_start = cursor = lo
    offset = utc_offset(zone, lo)
    while cursor < hi:
        probe = min(cursor + _STEP, hi)
        if utc_offset(zone, probe) == offset:
            cursor = probe
            continue
        change = _first_change(zone, cursor, probe, offset)
        segments.append((seg_start, change, offset))
        seg_start = cursor = change
        offset = utc_offset(zone, change)
    segments.append((seg_start, hi, offset))
    return segments


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, with overlapping and touching intervals joined."""
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def window_intervals(
    zone: ZoneInfo, day: date, windows: Sequence[tuple[int, int]]
) -> list[Interval]:
    """The UTC intervals covered by `windows` (minutes after local midnight) on `day`."""
    if not windows:
        return []
    midnight = datetime.combine(day, time())
    pieces: list[Interval] = []
    for segment_start, segment_end, offset in offset_segments(zone, day):
        for start_minute, end_minute in windows:
            # Within one segment local = utc + offset, so the window's preimage is the
            # window shifted by the offset, cut to the segment.
            lo = max(midnight + timedelta(minutes=start_minute) - offset, segment_start)
            hi = min(midnight + timedelta(minutes=end_minute) - offset, segment_end)
            if lo < hi:
                pieces.append((lo, hi))
    return merge(pieces)


def to_naive_utc(value: datetime, *, name: str) -> datetime:
    """`value` as naive UTC; naive input is refused, since its zone would be a guess."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (got naive {value.isoformat()})")
    return value.astimezone(UTC).replace(tzinfo=None)
