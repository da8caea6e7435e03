"""Daily rollups: per site and per check and calendar day of the client, what the daily bars
and uptime are read from (incidents.uptime has the definition).

Kept up to date as things happen, never by scanning history when read:

- probes and failures: added per (check, day) and (site, day) with each history flush, in its
  transaction (one upsert statement per flush, not a write per probe);
- down and degraded seconds, incidents: added for a site when its incident is written, for
  the part of the incident since its last write (`incidents.rollup_since`, in the state
  `incidents.rollup_state` it had), outside the site's stored maintenance windows;
- the part of an open incident since its last write, and maintenance seconds, are added when
  read: from the site's one open incident and its windows in the period read.

Rows older than the retention (400 days) are deleted by `purge`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from incidents.model import Incident
from incidents.uptime import (
    DayAmounts,
    DayStat,
    Span,
    SpanState,
    Window,
    day_amounts,
    day_bounds,
    days_of,
    local_day,
    span_state,
    worst_of,
)
from monitor.store.tables import daily_rollups, incidents, maintenance_windows

RETENTION_DAYS = 400

# Client id -> its calendar's time zone. Unknown clients count in UTC.
ZoneOf = Callable[[str], tzinfo]


def utc_zone(client: str) -> tzinfo:
    return UTC


def client_of(key: str) -> str:
    return key.split("/", 1)[0]


def site_of_check(check_key: str) -> str:
    return check_key.rpartition("/")[0]


def probe_counts(
    rows: Iterable[tuple[str, datetime, str]], zone_of: ZoneOf
) -> dict[tuple[str, date, str], tuple[int, int]]:
    """(scope, day, site) -> (probes, failures) of history rows (check key, at, outcome)."""
    counts: dict[tuple[str, date, str], list[int]] = defaultdict(lambda: [0, 0])
    for check_key, at, outcome in rows:
        site = site_of_check(check_key)
        day = local_day(at, zone_of(client_of(check_key)))
        failed = int(outcome != "ok")
        for scope in (check_key, site):
            entry = counts[(scope, day, site)]
            entry[0] += 1
            entry[1] += failed
    return {key: (probes, failures) for key, (probes, failures) in counts.items()}


def _upsert(conn: AsyncConnection, values: list[dict[str, Any]], added: Sequence[str]) -> Any:
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(daily_rollups)
    return stmt.on_conflict_do_update(
        index_elements=[daily_rollups.c.scope, daily_rollups.c.day],
        set_={name: daily_rollups.c[name] + stmt.excluded[name] for name in added},
    )


_ZEROES = {"probes": 0, "failures": 0, "down_seconds": 0.0, "degraded_seconds": 0.0, "incidents": 0}


async def add_probe_counts(
    conn: AsyncConnection, counts: dict[tuple[str, date, str], tuple[int, int]]
) -> None:
    if not counts:
        return
    # Sorted, so two processes flushing at once take row locks in one order (no deadlock).
    values = [
        {**_ZEROES, "scope": scope, "day": day, "site": site, "probes": p, "failures": f}
        for (scope, day, site), (p, f) in sorted(counts.items())
    ]
    await conn.execute(_upsert(conn, values, ("probes", "failures")), values)


def _touched(start: datetime, end: datetime, tz: tzinfo) -> set[date]:
    """The local days [start, end) touches; an empty stretch touches its own day."""
    if end <= start:
        return {local_day(start, tz)}
    return {day for day, _, _ in days_of(start, end, tz)}


def span_days(
    *,
    opened_at: datetime,
    start: datetime,
    end: datetime,
    state: SpanState,
    windows: Sequence[Window],
    tz: tzinfo,
) -> dict[date, tuple[DayAmounts, int]]:
    """What the part [start, end) of an incident opened at `opened_at` adds per day: its
    seconds, and 1 incident on each day no earlier part of it touched."""
    amounts = day_amounts(
        spans=[Span(start, end, state)], windows=windows, start=start, end=end, tz=tz
    )
    new_days = _touched(start, end, tz) - (
        _touched(opened_at, start, tz) if start > opened_at else set()
    )
    found: dict[date, tuple[DayAmounts, int]] = {}
    for day in sorted(set(amounts) | new_days):
        found[day] = (
            DayAmounts(
                down_seconds=amounts[day].down_seconds if day in amounts else 0.0,
                degraded_seconds=amounts[day].degraded_seconds if day in amounts else 0.0,
            ),
            int(day in new_days),
        )
    return found


async def site_windows(
    conn: AsyncConnection, site: str, *, start: datetime, end: datetime
) -> list[Window]:
    table = maintenance_windows
    query = sa.select(table.c.starts_at, table.c.ends_at).where(
        table.c.site == site, table.c.ends_at > start, table.c.starts_at < end
    )
    return [Window(row.starts_at, row.ends_at) for row in await conn.execute(query)]


def pending_span(
    incident: Incident, *, state: str | None, since: datetime | None
) -> tuple[datetime, SpanState]:
    """Where the part of `incident` not in the rollups starts, and its state. A row written
    before revision 0007 has neither: from its opening, in the state of its headline."""
    start = since if since is not None else incident.opened_at
    return start, SpanState(state) if state is not None else span_state(incident.headline)


async def advance(
    conn: AsyncConnection, incident: Incident, *, at: datetime, zone_of: ZoneOf
) -> None:
    """Add the part of `incident` (just written, at `at`) since its last write to the
    rollups, and note where the next part starts and in which state."""
    if incident.id is None:
        return
    row = (
        await conn.execute(
            sa.select(incidents.c.rollup_state, incidents.c.rollup_since).where(
                incidents.c.id == incident.id
            )
        )
    ).one()
    if row.rollup_since is not None and row.rollup_state is None:
        return  # resolved and counted already
    start, state = pending_span(incident, state=row.rollup_state, since=row.rollup_since)
    end = incident.resolved_at if incident.resolved_at is not None else at
    end = max(start, end)
    tz = zone_of(incident.client)
    windows = await site_windows(conn, incident.site, start=start, end=end)
    added = span_days(
        opened_at=incident.opened_at, start=start, end=end, state=state, windows=windows, tz=tz
    )
    values = [
        {
            **_ZEROES,
            "scope": incident.site,
            "day": day,
            "site": incident.site,
            "down_seconds": amounts.down_seconds,
            "degraded_seconds": amounts.degraded_seconds,
            "incidents": count,
        }
        for day, (amounts, count) in added.items()
    ]
    if values:
        await conn.execute(
            _upsert(conn, values, ("down_seconds", "degraded_seconds", "incidents")), values
        )
    await conn.execute(
        sa.update(incidents)
        .where(incidents.c.id == incident.id)
        .values(
            rollup_state=span_state(incident.headline).value if incident.is_open else None,
            rollup_since=end,
        )
    )


async def daily_stats(
    conn: AsyncConnection,
    scope: str,
    *,
    first: date,
    last: date,
    now: datetime,
    tz: tzinfo,
    open_incident: tuple[Incident, str | None, datetime | None] | None,
) -> list[DayStat]:
    """See Store.daily_stats."""
    query = sa.select(daily_rollups).where(
        daily_rollups.c.scope == scope, daily_rollups.c.day >= first, daily_rollups.c.day <= last
    )
    rows = {row.day: row for row in await conn.execute(query)}
    period_start, _ = day_bounds(first, tz)
    _, period_end = day_bounds(last, tz)
    observed_end = min(period_end, now)
    is_site = scope.count("/") == 1
    pending: dict[date, tuple[DayAmounts, int]] = {}
    windows: list[Window] = []
    if is_site and observed_end > period_start:
        windows = await site_windows(conn, scope, start=period_start, end=observed_end)
        if open_incident is not None:
            incident, state, since = open_incident
            start, span = pending_span(incident, state=state, since=since)
            if start < now:
                pending = span_days(
                    opened_at=incident.opened_at,
                    start=start,
                    end=now,
                    state=span,
                    windows=windows,
                    tz=tz,
                )
    maintenance = (
        day_amounts(spans=[], windows=windows, start=period_start, end=observed_end, tz=tz)
        if windows
        else {}
    )
    stats: list[DayStat] = []
    day = first
    while day <= last:
        row = rows.get(day)
        extra, extra_incidents = pending.get(day, (DayAmounts(), 0))
        probes = row.probes if row is not None else 0
        failures = row.failures if row is not None else 0
        down = (row.down_seconds if row is not None else 0.0) + extra.down_seconds
        degraded = (row.degraded_seconds if row is not None else 0.0) + extra.degraded_seconds
        count = (row.incidents if row is not None else 0) + extra_incidents
        day_start, day_end = day_bounds(day, tz)
        observed = (probes > 0 or count > 0 or down > 0 or degraded > 0) and day_start < now
        observed_seconds = (min(day_end, now) - day_start).total_seconds() if observed else 0.0
        held = maintenance[day].maintenance_seconds if observed and day in maintenance else 0.0
        stats.append(
            DayStat(
                day=day,
                probes=probes,
                failures=failures,
                observed_seconds=observed_seconds,
                down_seconds=down if is_site else 0.0,
                degraded_seconds=degraded if is_site else 0.0,
                maintenance_seconds=held,
                incidents=count,
                worst=worst_of(observed=observed, down=down, degraded=degraded, maintenance=held),
            )
        )
        day += timedelta(days=1)
    return stats


def purge_query(*, before: date) -> sa.Delete:
    return sa.delete(daily_rollups).where(daily_rollups.c.day < before)


def retention_start(today: date) -> date:
    return today - timedelta(days=RETENTION_DAYS)
