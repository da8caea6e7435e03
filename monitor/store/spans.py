"""What the stored incident spans (`incident_spans`: the parts of each incident already in the
daily rollups, in their state) make possible without rescanning history:

- `rolling_uptimes`: uptime over the last 24 hours (not calendar days), from the spans and
  windows that overlap them, the open incidents' parts not counted yet, and which of the
  days touched have data;
- `recount`: a site's down and degraded seconds and incidents of some days computed afresh
  from its spans and windows, when a maintenance window was added for the past or cancelled
  (only that site and the days the window touches);
- `rebuild`: the same over a longer period, after counting incidents that were resolved
  before the rollups existed (revision 0007) and were never counted.

Probes and failures are never recounted: they come from results as they are written, and
history is kept only briefly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from incidents.uptime import (
    Span,
    SpanState,
    Window,
    day_amounts,
    day_bounds,
    days_of,
    local_day,
    rolling_uptime,
    span_state,
)
from monitor.store import codec
from monitor.store.rollups import (
    Calendars,
    client_of,
    day_seconds,
    pending_span,
    retention_start,
    site_windows,
    upsert_rollups,
)
from monitor.store.tables import daily_rollups, incident_spans, incidents, maintenance_windows

ROLLING = timedelta(hours=24)
# Sites per statement: small, so one chunk's rows and arithmetic hold the event loop briefly.
_CHUNK = 500


async def rolling_uptimes(
    conn: AsyncConnection,
    sites: Sequence[str],
    *,
    now: datetime,
    calendars: Calendars,
    length: timedelta = ROLLING,
) -> dict[str, float | None]:
    """incidents.uptime.rolling_uptime of each site over [now - length, now)."""
    found: dict[str, float | None] = {}
    for at in range(0, len(sites), _CHUNK):
        found.update(
            await _rolling_chunk(
                conn, sites[at : at + _CHUNK], now=now, calendars=calendars, length=length
            )
        )
    return found


async def _rolling_chunk(
    conn: AsyncConnection,
    sites: Sequence[str],
    *,
    now: datetime,
    calendars: Calendars,
    length: timedelta,
) -> dict[str, float | None]:
    start = now - length
    spans: dict[str, list[Span]] = defaultdict(list)
    span_query = sa.select(incident_spans).where(
        incident_spans.c.site.in_(sites),
        incident_spans.c.ends_at > start,
        incident_spans.c.starts_at < now,
    )
    for row in await conn.execute(span_query):
        spans[row.site].append(Span(row.starts_at, row.ends_at, SpanState(row.state)))
    windows: dict[str, list[Window]] = defaultdict(list)
    window_query = sa.select(
        maintenance_windows.c.site, maintenance_windows.c.starts_at, maintenance_windows.c.ends_at
    ).where(
        maintenance_windows.c.site.in_(sites),
        maintenance_windows.c.ends_at > start,
        maintenance_windows.c.starts_at < now,
    )
    for row in await conn.execute(window_query):
        windows[row.site].append(Window(row.starts_at, row.ends_at))
    # Every time zone's days that [start, now) can touch; each site keeps its own below.
    observed: dict[str, set[date]] = defaultdict(set)
    day_query = sa.select(daily_rollups.c.scope, daily_rollups.c.day).where(
        daily_rollups.c.scope.in_(sites),
        daily_rollups.c.day >= start.date() - timedelta(days=1),
        daily_rollups.c.day <= now.date() + timedelta(days=1),
        sa.or_(
            daily_rollups.c.probes > 0,
            daily_rollups.c.incidents > 0,
            daily_rollups.c.down_seconds > 0,
            daily_rollups.c.degraded_seconds > 0,
        ),
    )
    for row in await conn.execute(day_query):
        observed[row.scope].add(row.day)
    open_query = sa.select(incidents).where(
        incidents.c.site.in_(sites), incidents.c.status == "open"
    )
    for found_row in (await conn.execute(open_query)).mappings():
        incident = codec.incident_from_row(found_row)
        begins, state = pending_span(
            incident, state=found_row["rollup_state"], since=found_row["rollup_since"]
        )
        if begins < now:
            # The part not in the rollups yet, as daily_stats adds it when read.
            spans[incident.site].append(Span(begins, now, state))
            tz = calendars.zone_of(incident.client)
            observed[incident.site].update(day for day, _, _ in days_of(begins, now, tz))
    found: dict[str, float | None] = {}
    pieces: dict[tzinfo, list[tuple[date, float]]] = {}
    for site in sites:
        tz = calendars.zone_of(client_of(site))
        held = windows[site] + calendars.recurring_of(site, start, now)
        if spans[site] or held:
            found[site] = rolling_uptime(
                spans=spans[site],
                windows=held,
                start=start,
                end=now,
                observed_days=observed[site],
                tz=tz,
            )
            continue
        # Most sites: no incident and no window in the 24 hours, so up all the time observed;
        # the days are cut once per time zone (this runs for every site every minute).
        if tz not in pieces:
            pieces[tz] = [(day, (b - a).total_seconds()) for day, a, b in days_of(start, now, tz)]
        seen = sum(seconds for day, seconds in pieces[tz] if day in observed[site])
        found[site] = 1.0 if seen > 0 else None
    return found


async def recount(
    conn: AsyncConnection, site: str, *, first: date, last: date, calendars: Calendars
) -> None:
    """Set the site's down and degraded seconds and incidents of days first..last (its
    client's calendar days) to what its spans and maintenance windows give, in the caller's
    transaction. Probes and failures stay."""
    if last < first:
        return
    tz = calendars.zone_of(client_of(site))
    start, _ = day_bounds(first, tz)
    _, end = day_bounds(last, tz)
    span_query = sa.select(incident_spans).where(
        incident_spans.c.site == site,
        incident_spans.c.ends_at > start,
        incident_spans.c.starts_at < end,
    )
    spans = [
        Span(row.starts_at, row.ends_at, SpanState(row.state))
        for row in await conn.execute(span_query)
    ]
    windows = await site_windows(conn, site, start=start, end=end, calendars=calendars)
    amounts = day_amounts(spans=spans, windows=windows, start=start, end=end, tz=tz)
    counts: dict[date, int] = defaultdict(int)
    # An incident counts on each day its counted part touches, as rollups.span_days counts
    # it: from its opening to its resolution, or while open to where the rollups stop.
    incident_query = sa.select(
        incidents.c.opened_at, incidents.c.resolved_at, incidents.c.status, incidents.c.rollup_since
    ).where(
        incidents.c.site == site,
        incidents.c.opened_at < end,
        sa.or_(incidents.c.resolved_at.is_(None), incidents.c.resolved_at >= start),
    )
    for row in await conn.execute(incident_query):
        counted_to = row.resolved_at if row.status != "open" else row.rollup_since
        if counted_to is None:
            continue  # open and not counted yet: daily_stats adds it when read
        touched = (
            [day for day, _, _ in days_of(row.opened_at, counted_to, tz)]
            if counted_to > row.opened_at
            else [local_day(row.opened_at, tz)]
        )
        for day in touched:
            if first <= day <= last:
                counts[day] += 1
    await conn.execute(
        sa.update(daily_rollups)
        .where(
            daily_rollups.c.scope == site, daily_rollups.c.day >= first, daily_rollups.c.day <= last
        )
        .values(down_seconds=0.0, degraded_seconds=0.0, incidents=0)
    )
    values: list[dict[str, Any]] = []
    counted = {day for day, got in amounts.items() if got.down_seconds or got.degraded_seconds}
    # No row for a day with nothing to count: a row is what makes a day "observed".
    for day in sorted(counted | set(counts)):
        if not first <= day <= last:
            continue
        values.append(
            {
                "scope": site,
                "day": day,
                "site": site,
                "day_seconds": day_seconds(day, tz),
                "probes": 0,
                "failures": 0,
                "down_seconds": amounts[day].down_seconds if day in amounts else 0.0,
                "degraded_seconds": amounts[day].degraded_seconds if day in amounts else 0.0,
                "incidents": counts.get(day, 0),
            }
        )
    if values:
        await conn.execute(
            upsert_rollups(conn, ("down_seconds", "degraded_seconds", "incidents"), add=False),
            values,
        )


async def recount_window(
    conn: AsyncConnection,
    site: str,
    *,
    starts_at: datetime,
    ends_at: datetime,
    calendars: Calendars,
) -> None:
    """After the window [starts_at, ends_at) of `site` was added or cancelled: recount the
    days it touches. A window wholly ahead touches no counted time, but costs little."""
    tz = calendars.zone_of(client_of(site))
    first = local_day(starts_at, tz)
    last = local_day(ends_at - timedelta(microseconds=1), tz)
    await recount(conn, site, first=first, last=last, calendars=calendars)


async def count_uncounted(
    conn: AsyncConnection, *, client: str | None = None
) -> dict[str, datetime]:
    """Give incidents resolved before the rollups existed (no `rollup_since`) their span, in
    the state of their headline, and mark them counted; the earliest opening per site."""
    query = sa.select(incidents).where(
        incidents.c.status != "open", incidents.c.rollup_since.is_(None)
    )
    if client is not None:
        query = query.where(incidents.c.client == client)
    earliest: dict[str, datetime] = {}
    for row in (await conn.execute(query)).mappings():
        incident = codec.incident_from_row(row)
        end = incident.resolved_at or incident.opened_at
        if incident.id is None:
            continue
        if end > incident.opened_at:
            await conn.execute(
                sa.insert(incident_spans).values(
                    incident_id=incident.id,
                    site=incident.site,
                    starts_at=incident.opened_at,
                    ends_at=end,
                    state=span_state(incident.headline).value,
                )
            )
        await conn.execute(
            sa.update(incidents)
            .where(incidents.c.id == incident.id)
            .values(rollup_since=end, rollup_state=None)
        )
        known = earliest.get(incident.site)
        earliest[incident.site] = min(known, incident.opened_at) if known else incident.opened_at
    return earliest


async def rebuild(
    conn: AsyncConnection,
    *,
    calendars: Calendars,
    now: datetime,
    client: str | None = None,
    since: date | None = None,
    all_sites: bool = True,
) -> list[str]:
    """Count the never counted incidents (count_uncounted), then recount the days of the
    sites (of `client`, or all) from `since` (default: as far back as rollups are kept) to
    today. With all_sites False, only the sites that had uncounted incidents, from the
    earliest of them. The sites recounted."""
    earliest = await count_uncounted(conn, client=client)
    if all_sites:
        query = sa.select(incidents.c.site).distinct()
        if client is not None:
            query = query.where(incidents.c.client == client)
        sites = sorted(set((await conn.execute(query)).scalars()) | set(earliest))
    else:
        sites = sorted(earliest)
    for site in sites:
        tz = calendars.zone_of(client_of(site))
        today = local_day(now, tz)
        oldest = retention_start(today)
        if since is not None:
            first = since
        elif not all_sites:
            first = local_day(earliest[site], tz)
        else:
            first = oldest
        await recount(conn, site, first=max(first, oldest), last=today, calendars=calendars)
    return sites
