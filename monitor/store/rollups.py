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

import functools
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
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
    uptime,
    worst_of,
)
from monitor.store import codec
from monitor.store.tables import daily_rollups, incident_spans, incidents, maintenance_windows

RETENTION_DAYS = 400

# Client id -> its calendar's time zone. Unknown clients count in UTC.
ZoneOf = Callable[[str], tzinfo]
# (site key, start, end) -> the site's recurring windows (from the YAML) overlapping it.
RecurringOf = Callable[[str, datetime, datetime], list[Window]]


def utc_zone(client: str) -> tzinfo:
    return UTC


def no_recurring(site: str, start: datetime, end: datetime) -> list[Window]:
    return []


@dataclass(frozen=True, slots=True)
class Calendars:
    """What the rollups need from the config: each client's time zone and each site's
    recurring maintenance windows (stored one-off windows the store reads itself)."""

    zone_of: ZoneOf = utc_zone
    recurring_of: RecurringOf = no_recurring


def client_of(key: str) -> str:
    return key.split("/", 1)[0]


def site_of_check(check_key: str) -> str:
    return check_key.rpartition("/")[0]


def probe_counts(
    rows: Iterable[tuple[str, datetime, str]], zone_of: ZoneOf
) -> dict[tuple[str, date, str], tuple[int, int]]:
    """(scope, day, site) -> (probes, failures) of history rows (check key, at, outcome)."""
    counts: dict[tuple[str, date, str], list[int]] = defaultdict(lambda: [0, 0])
    # A flush holds a second or so of results: remembering the day each zone is in spares a
    # time zone conversion per row (this runs for every probe).
    days: dict[tzinfo, tuple[datetime, datetime, date]] = {}
    for check_key, at, outcome in rows:
        site = site_of_check(check_key)
        tz = zone_of(client_of(check_key))
        known = days.get(tz)
        if known is None or not known[0] <= at < known[1]:
            day = local_day(at, tz)
            known = days[tz] = (*day_bounds(day, tz), day)
        day = known[2]
        failed = int(outcome != "ok")
        for scope in (check_key, site):
            entry = counts[(scope, day, site)]
            entry[0] += 1
            entry[1] += failed
    return {key: (probes, failures) for key, (probes, failures) in counts.items()}


def _upsert(conn: AsyncConnection, added: Sequence[str]) -> Any:
    return upsert_rollups(conn, added, add=True)


def upsert_rollups(conn: AsyncConnection, columns: Sequence[str], *, add: bool) -> Any:
    """An insert of rollup rows that, for rows already there, adds to `columns` (add=True)
    or sets them."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(daily_rollups)
    return stmt.on_conflict_do_update(
        index_elements=[daily_rollups.c.scope, daily_rollups.c.day],
        set_={
            name: daily_rollups.c[name] + stmt.excluded[name] if add else stmt.excluded[name]
            for name in columns
        },
    )


_ZEROES = {"probes": 0, "failures": 0, "down_seconds": 0.0, "degraded_seconds": 0.0, "incidents": 0}

# Plain driver SQL, like the history insert it rides with: one row per check and site in a
# flush, and SQLAlchemy's per-row parameter processing would cost more than the upsert.
_COUNTS_SQL = (
    "INSERT INTO daily_rollups (scope, day, site, day_seconds, probes, failures, "
    "down_seconds, degraded_seconds, incidents) VALUES ({}, {}, {}, {}, {}, {}, 0, 0, 0) "
    "ON CONFLICT (scope, day) DO UPDATE SET probes = daily_rollups.probes + excluded.probes, "
    "failures = daily_rollups.failures + excluded.failures"
)
_COUNTS_SQLITE = _COUNTS_SQL.format("?", "?", "?", "?", "?", "?")
_COUNTS_POSTGRESQL = _COUNTS_SQL.format("$1", "$2", "$3", "$4", "$5", "$6")


@functools.lru_cache(maxsize=4096)
def day_seconds(day: date, tz: tzinfo) -> float:
    start, end = day_bounds(day, tz)
    return (end - start).total_seconds()


async def add_probe_counts(
    conn: AsyncConnection,
    counts: dict[tuple[str, date, str], tuple[int, int]],
    *,
    zone_of: ZoneOf,
) -> None:
    """Add probes and failures per (scope, day, site), in the caller's transaction."""
    if not counts:
        return
    # Sorted, so two processes flushing at once take row locks in one order (no deadlock).
    ordered = sorted(counts.items())
    if conn.dialect.name == "sqlite":
        sqlite_rows = [
            (scope, day.isoformat(), site, day_seconds(day, zone_of(client_of(site))), p, f)
            for (scope, day, site), (p, f) in ordered
        ]
        await conn.exec_driver_sql(_COUNTS_SQLITE, sqlite_rows)
    else:
        rows = [
            (scope, day, site, day_seconds(day, zone_of(client_of(site))), p, f)
            for (scope, day, site), (p, f) in ordered
        ]
        await conn.exec_driver_sql(_COUNTS_POSTGRESQL, rows)


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
    counted_before: bool,
) -> dict[date, tuple[DayAmounts, int]]:
    """What the part [start, end) of an incident opened at `opened_at` adds per day: its
    seconds, and 1 incident on each day no earlier part of it touched. `counted_before`:
    the parts from its opening to `start` are in the rollups already."""
    amounts = day_amounts(
        spans=[Span(start, end, state)], windows=windows, start=start, end=end, tz=tz
    )
    earlier = _touched(opened_at, start, tz) if counted_before else set()
    new_days = _touched(start, end, tz) - earlier
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
    conn: AsyncConnection, site: str, *, start: datetime, end: datetime, calendars: Calendars
) -> list[Window]:
    """The site's maintenance windows overlapping [start, end): stored and recurring."""
    table = maintenance_windows
    query = sa.select(table.c.starts_at, table.c.ends_at).where(
        table.c.site == site, table.c.ends_at > start, table.c.starts_at < end
    )
    stored = [Window(row.starts_at, row.ends_at) for row in await conn.execute(query)]
    return stored + calendars.recurring_of(site, start, end)


def pending_span(
    incident: Incident, *, state: str | None, since: datetime | None
) -> tuple[datetime, SpanState]:
    """Where the part of `incident` not in the rollups starts, and its state. A row written
    before revision 0007 has neither: from its opening, in the state of its headline."""
    start = since if since is not None else incident.opened_at
    return start, SpanState(state) if state is not None else span_state(incident.headline)


async def advance(
    conn: AsyncConnection, incident: Incident, *, at: datetime, calendars: Calendars
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
    tz = calendars.zone_of(incident.client)
    windows = await site_windows(conn, incident.site, start=start, end=end, calendars=calendars)
    added = span_days(
        opened_at=incident.opened_at,
        start=start,
        end=end,
        state=state,
        windows=windows,
        tz=tz,
        counted_before=row.rollup_since is not None,
    )
    values = [
        {
            **_ZEROES,
            "scope": incident.site,
            "day": day,
            "site": incident.site,
            "day_seconds": day_seconds(day, tz),
            "down_seconds": amounts.down_seconds,
            "degraded_seconds": amounts.degraded_seconds,
            "incidents": count,
        }
        for day, (amounts, count) in added.items()
    ]
    if values:
        await conn.execute(_upsert(conn, ("down_seconds", "degraded_seconds", "incidents")), values)
    await record_span(
        conn, incident_id=incident.id, site=incident.site, start=start, end=end, state=state
    )
    await conn.execute(
        sa.update(incidents)
        .where(incidents.c.id == incident.id)
        .values(
            rollup_state=span_state(incident.headline).value if incident.is_open else None,
            rollup_since=end,
        )
    )


async def record_span(
    conn: AsyncConnection,
    *,
    incident_id: int,
    site: str,
    start: datetime,
    end: datetime,
    state: SpanState,
) -> None:
    """Note that [start, end) of the incident is in the rollups, in `state`: the incident's
    latest span grows when it ends at `start` in the same state (most writes change nothing
    but the time), else a span is added."""
    if end <= start:
        return
    grown = await conn.execute(
        sa.update(incident_spans)
        .where(
            incident_spans.c.incident_id == incident_id,
            incident_spans.c.ends_at == start,
            incident_spans.c.state == state.value,
        )
        .values(ends_at=end)
    )
    if grown.rowcount == 0:
        await conn.execute(
            sa.insert(incident_spans).values(
                incident_id=incident_id, site=site, starts_at=start, ends_at=end, state=state.value
            )
        )


async def daily_stats(
    conn: AsyncConnection,
    scope: str,
    *,
    first: date,
    last: date,
    now: datetime,
    calendars: Calendars,
    open_incident: tuple[Incident, str | None, datetime | None] | None,
) -> list[DayStat]:
    """See Store.daily_stats."""
    query = sa.select(daily_rollups).where(
        daily_rollups.c.scope == scope, daily_rollups.c.day >= first, daily_rollups.c.day <= last
    )
    rows = {row.day: row for row in await conn.execute(query)}
    tz = calendars.zone_of(client_of(scope))
    period_start, _ = day_bounds(first, tz)
    _, period_end = day_bounds(last, tz)
    observed_end = min(period_end, now)
    is_site = scope.count("/") == 1
    pending: dict[date, tuple[DayAmounts, int]] = {}
    windows: list[Window] = []
    if is_site and observed_end > period_start:
        windows = await site_windows(
            conn, scope, start=period_start, end=observed_end, calendars=calendars
        )
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
                    counted_before=since is not None,
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


# Sites per statement of the bulk uptime read: far below either database's parameter limit.
_SITES_CHUNK = 500


async def uptime_ratios(
    conn: AsyncConnection,
    sites: Sequence[str],
    *,
    now: datetime,
    calendars: Calendars,
    periods: Sequence[int],
) -> dict[str, dict[int, float | None]]:
    """incidents.uptime.uptime of each site over the last n calendar days of its client
    (today, up to `now`, is the last), for each n of `periods`: the same figure as
    `uptime(daily_stats(...)[-n:])`, read in a few statements for all sites.

    A site with neither an open incident nor a maintenance window in the period is summed in
    SQL; the others (few) go through daily_stats."""
    longest = max(periods)
    found: dict[str, dict[int, float | None]] = {}
    by_zone: dict[tzinfo, list[str]] = defaultdict(list)
    for site in sites:
        by_zone[calendars.zone_of(client_of(site))].append(site)
    open_sites = set(
        (
            await conn.execute(sa.select(incidents.c.site).where(incidents.c.status == "open"))
        ).scalars()
    )
    for tz, zone_sites in by_zone.items():
        today = local_day(now, tz)
        first = today - timedelta(days=longest - 1)
        period_start, _ = day_bounds(first, tz)
        today_start, _ = day_bounds(today, tz)
        stored = set(
            (
                await conn.execute(
                    sa.select(maintenance_windows.c.site)
                    .where(
                        maintenance_windows.c.ends_at > period_start,
                        maintenance_windows.c.starts_at < now,
                    )
                    .distinct()
                )
            ).scalars()
        )
        slow = [
            site
            for site in zone_sites
            if site in open_sites
            or site in stored
            or calendars.recurring_of(site, period_start, now)
        ]
        for site in slow:
            stats = await daily_stats(
                conn,
                site,
                first=first,
                last=today,
                now=now,
                calendars=calendars,
                open_incident=await open_incident(conn, site),
            )
            found[site] = {n: uptime(stats[-n:]) for n in periods}
        fast = sorted(set(zone_sites) - set(slow))
        for start in range(0, len(fast), _SITES_CHUNK):
            chunk = fast[start : start + _SITES_CHUNK]
            found.update(
                await _summed(
                    conn, chunk, today=today, today_start=today_start, now=now, periods=periods
                )
            )
    return found


async def _summed(
    conn: AsyncConnection,
    sites: Sequence[str],
    *,
    today: date,
    today_start: datetime,
    now: datetime,
    periods: Sequence[int],
) -> dict[str, dict[int, float | None]]:
    table = daily_rollups
    columns: list[Any] = [table.c.site]
    for n in periods:
        since = table.c.day >= today - timedelta(days=n - 1)
        columns.append(sa.func.sum(sa.case((since, table.c.day_seconds), else_=0.0)))
        columns.append(sa.func.sum(sa.case((since, table.c.down_seconds), else_=0.0)))
    # Only rows of the site's own scope (not its checks'), of days before today: today is
    # cut at `now`, below.
    query = (
        sa.select(*columns)
        .where(
            # A site's own rows have the site as scope: the primary key finds them alone.
            table.c.scope.in_(sites),
            table.c.day >= today - timedelta(days=max(periods) - 1),
            table.c.day < today,
        )
        .group_by(table.c.site)
    )
    past = {row[0]: row[1:] for row in await conn.execute(query)}
    today_query = sa.select(table.c.site, table.c.down_seconds).where(
        table.c.scope.in_(sites), table.c.day == today
    )
    today_down = {row.site: row.down_seconds for row in await conn.execute(today_query)}
    today_seconds = max(0.0, (now - today_start).total_seconds())
    found: dict[str, dict[int, float | None]] = {}
    for site in sites:
        sums = past.get(site)
        ratios: dict[int, float | None] = {}
        for index, n in enumerate(periods):
            observed = float(sums[2 * index] or 0.0) if sums else 0.0
            down = float(sums[2 * index + 1] or 0.0) if sums else 0.0
            if site in today_down:
                observed += today_seconds
                down += today_down[site]
            ratios[n] = None if observed <= 0 else max(0.0, 1.0 - down / observed)
        found[site] = ratios
    return found


async def open_incident(
    conn: AsyncConnection, site: str
) -> tuple[Incident, str | None, datetime | None] | None:
    query = sa.select(incidents).where(incidents.c.site == site, incidents.c.status == "open")
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        return None
    return codec.incident_from_row(row), row["rollup_state"], row["rollup_since"]
