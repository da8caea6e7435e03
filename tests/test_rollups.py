"""Daily rollups on SQLite and PostgreSQL: uptime read from them equals the figure that a slow,
obvious reference computes minute by minute from the incident timeline, over generated
histories with maintenance windows and DST days."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from checks.result import Outcome
from incidents.model import CheckState, Headline, Incident, IncidentStatus, Transition
from incidents.recurring_maintenance import Weekly, occurrences
from incidents.severity import Severity
from incidents.uptime import DayStat, DayState, Window, day_bounds, uptime
from monitor.cli import main
from monitor.store import Calendars, MaintenanceWindow, Store
from monitor.uptime_gauge import UptimeGauge
from tests.helpers import head_revision
from tests.migration_helpers import database_at, old_open_incident
from tests.test_store import failing_state, probe

BERLIN = ZoneInfo("Europe/Berlin")
STEP = timedelta(minutes=5)
DAYS = 3
SLOTS = DAYS * 24 * 12
# The Saturdays before the clocks go forward and back in Berlin, and an ordinary one.
FIRST_DAYS = [date(2026, 3, 28), date(2026, 10, 24), date(2026, 6, 13)]
_sites = itertools.count()


def _headline(state: str) -> Headline:
    down = state == "down"
    return Headline(
        site_label="Shop",
        check="x",
        part="Home",
        # A slow availability check and a failing part are both "degraded", not down.
        availability=down or state == "slow",
        outcome=Outcome.HTTP_5XX if down or state == "part" else Outcome.SLOW,
    )


@dataclass(frozen=True)
class PlannedIncident:
    opened: datetime
    changes: tuple[tuple[datetime, str], ...]  # (at, state), the first at `opened`
    resolved: datetime | None  # None: still open at `now`


@dataclass(frozen=True)
class History:
    first: date
    windows: tuple[tuple[datetime, datetime], ...]
    incidents: tuple[PlannedIncident, ...]
    probes: tuple[tuple[datetime, bool], ...]  # (at, ok)
    now: datetime
    weekly: str | None = None  # a recurring window from the YAML, e.g. "sun 02:00-04:00"
    # The one-off windows are added after everything happened (for the past), and another one
    # is added and cancelled: the rollups already counted must follow.
    late_windows: bool = False


@st.composite
def histories(draw: st.DrawFn) -> History:
    first = draw(st.sampled_from(FIRST_DAYS))
    start, _ = day_bounds(first, BERLIN)

    def slot(index: int) -> datetime:
        return start + index * STEP

    count = draw(st.integers(0, 3))
    points = sorted(draw(st.sets(st.integers(0, SLOTS), min_size=2 * count, max_size=2 * count)))
    still_open = count > 0 and draw(st.booleans())
    states = st.sampled_from(["down", "slow", "part"])
    incidents = []
    for number in range(count):
        opened, ends = points[2 * number], points[2 * number + 1]
        inner = draw(st.sets(st.integers(opened + 1, ends), max_size=2)) if ends > opened else set()
        inner.discard(ends)
        changes = [(slot(opened), draw(states))]
        changes += [(slot(at), draw(states)) for at in sorted(inner)]
        last = still_open and number == count - 1
        incidents.append(
            PlannedIncident(slot(opened), tuple(changes), None if last else slot(ends))
        )
    windows = []
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, SLOTS))
        length = draw(st.integers(1, 12 * 30))
        windows.append((slot(at), slot(at + length)))
    probes = tuple(
        (slot(at), ok)
        for at, ok in draw(st.lists(st.tuples(st.integers(0, SLOTS), st.booleans()), max_size=8))
    )
    latest = max([*(slot(p) for p in points), *(at for at, _ in probes)], default=start)
    now = latest + draw(st.integers(1, 12 * 30)) * STEP
    # Both of these meet a change of the clocks on the DST weekends.
    weekly = draw(st.sampled_from([None, "sun 02:00-04:00", "sat 23:00-01:00"]))
    return History(
        first,
        tuple(windows),
        tuple(incidents),
        tuple(sorted(probes)),
        now,
        weekly,
        late_windows=draw(st.booleans()),
    )


def in_weekly(weekly: str | None, minute: datetime, tz: tzinfo) -> bool:
    """By the wall clock: the window's day and hours, or past midnight after its day."""
    if weekly is None:
        return False
    local = minute.astimezone(tz)
    recurrence = Weekly.parse(weekly)
    day, clock = local.weekday(), local.time()
    if recurrence.start < recurrence.end:
        return day in recurrence.days and recurrence.start <= clock < recurrence.end
    return (day in recurrence.days and clock >= recurrence.start) or (
        (day - 1) % 7 in recurrence.days and clock < recurrence.end
    )


async def _write(store: Store, site: str, history: History) -> None:
    """Write `history` through the store as the runtime would: windows first, then probes
    and incident changes in time order."""
    home = f"{site}/home"
    if not history.late_windows:
        await _add_windows(store, site, history.windows)
    events: list[tuple[datetime, int, object]] = []
    for at, ok in history.probes:
        events.append((at, 0, ok))
    for planned in history.incidents:
        for at, state in planned.changes:
            events.append((at, 1, state))
        if planned.resolved is not None:
            events.append((planned.resolved, 2, None))
    incident: Incident | None = None
    for at, kind, value in sorted(events, key=lambda e: (e[0], e[1])):
        if kind == 0:
            await store.record(
                check_key=home,
                result=probe(Outcome.OK if value else Outcome.HTTP_5XX, at),
                transition=Transition(state=CheckState(key=home), incident=incident),
                previous_state=CheckState(key=home),
            )
        elif kind == 1 and incident is None:
            headline = _headline(str(value))
            opened = Incident(
                id=None,
                client=site.split("/")[0],
                site=site,
                title="Shop",
                severity=Severity.CRITICAL,
                status=IncidentStatus.OPEN,
                opened_at=at,
                failing_checks=frozenset({home}),
                checks=frozenset({home}),
                headline=headline,
            )
            incident = await store.record(
                check_key=home,
                result=probe(Outcome.HTTP_5XX, at),
                transition=Transition(
                    state=failing_state(home, at), incident=opened, incident_changed=True
                ),
                previous_state=CheckState(key=home),
            )
        elif kind == 1:
            assert incident is not None
            incident = await store.save_incident(
                replace(incident, headline=_headline(str(value))), timeline=(), now=at
            )
        else:
            assert incident is not None
            await store.save_incident(
                replace(
                    incident,
                    status=IncidentStatus.RESOLVED,
                    resolved_at=at,
                    failing_checks=frozenset(),
                ),
                timeline=(),
                now=at,
            )
            incident = None
    if history.late_windows:
        await _add_windows(store, site, history.windows)
        # A window over the whole history, cancelled: nothing it held out stays held out.
        [cancelled] = await _add_windows(
            store, site, [(history.now - timedelta(days=DAYS + 2), history.now)]
        )
        assert await store.cancel_maintenance(cancelled.id) is not None


async def _add_windows(
    store: Store, site: str, windows: Iterable[tuple[datetime, datetime]]
) -> list[MaintenanceWindow]:
    return [
        await store.add_maintenance(
            site=site,
            starts_at=starts_at,
            ends_at=ends_at,
            reason="planned",
            created_by="ops",
            now=starts_at,
        )
        for starts_at, ends_at in windows
    ]


def reference_rolling(history: History, *, tz: tzinfo) -> float | None:
    """Minute by minute over the 24 hours up to `now`: a minute counts when its calendar day
    has data (as for the days); maintenance is left out; down minutes count against it."""
    start = history.now - timedelta(hours=24)
    days = reference(
        history, first=start.astimezone(tz).date(), last=history.now.astimezone(tz).date(), tz=tz
    )
    observed = {s.day for s in days if s.observed_seconds > 0}
    counted = down = 0
    minute = start
    while minute < history.now:
        if minute.astimezone(tz).date() in observed and not _held(history, minute, tz):
            counted += 1
            down += _state_at(history, minute) == "down"
        minute += timedelta(minutes=1)
    return None if counted == 0 else 1 - down / counted


def _held(history: History, minute: datetime, tz: tzinfo) -> bool:
    stored = any(s <= minute < e for s, e in history.windows)
    return stored or in_weekly(history.weekly, minute, tz)


def _state_at(history: History, minute: datetime) -> str | None:
    for planned in history.incidents:
        end = planned.resolved or history.now
        if planned.opened <= minute < end:
            return [state for at, state in planned.changes if at <= minute][-1]
    return None


def reference(history: History, *, first: date, last: date, tz: tzinfo) -> list[DayStat]:
    """Minute by minute: in a window is maintenance; else in an incident whose latest state
    is "down" is down; else in an incident is degraded."""

    stats = []
    day = first
    while day <= last:
        start, end = day_bounds(day, tz)
        # The result that opened an incident is a failed probe too.
        results = [*history.probes, *((p.opened, False) for p in history.incidents)]
        probes = [ok for at, ok in results if start <= at < end]
        touching = [
            p for p in history.incidents if p.opened < end and (p.resolved or history.now) > start
        ]
        observed = bool(probes or touching) and start < history.now
        down = degraded = held = 0.0
        minute = start
        while observed and minute < min(end, history.now):
            if _held(history, minute, tz):
                held += 60
            elif _state_at(history, minute) == "down":
                down += 60
            elif _state_at(history, minute) is not None:
                degraded += 60
            minute += timedelta(minutes=1)
        worst = (
            DayState.NO_DATA
            if not observed
            else DayState.DOWN
            if down
            else DayState.DEGRADED
            if degraded
            else DayState.MAINTENANCE
            if held
            else DayState.OPERATIONAL
        )
        stats.append(
            DayStat(
                day=day,
                probes=len(probes),
                failures=probes.count(False),
                observed_seconds=(min(end, history.now) - start).total_seconds()
                if observed
                else 0.0,
                down_seconds=down,
                degraded_seconds=degraded,
                maintenance_seconds=held,
                incidents=len(touching),
                worst=worst,
            )
        )
        day += timedelta(days=1)
    return stats


async def _check(database_url: str, history: History) -> None:
    store = await Store.open(database_url)
    weekly = Weekly.parse(history.weekly) if history.weekly else None

    def recurring(site: str, start: datetime, end: datetime) -> list[Window]:
        if weekly is None:
            return []
        return [Window(*span) for span in occurrences(weekly, BERLIN, start=start, end=end)]

    store.use_calendars(Calendars(zone_of=lambda client: BERLIN, recurring_of=recurring))
    try:
        site = f"c{next(_sites)}/shop"  # a new site per example: examples share the database
        await _write(store, site, history)
        first, last = history.first - timedelta(days=1), history.first + timedelta(days=DAYS)
        found = await store.daily_stats(site, first=first, last=last, now=history.now)
        expected = reference(history, first=first, last=last, tz=BERLIN)
        assert found == expected
        down = sum(s.down_seconds for s in expected)
        counted = sum(s.observed_seconds - s.maintenance_seconds for s in expected)
        assert uptime(found) == (pytest.approx(1 - down / counted) if counted else None)
        # The site's one check has the site's probes and failures, and no seconds.
        checks = await store.daily_stats(f"{site}/home", first=first, last=last, now=history.now)
        assert [(c.probes, c.failures) for c in checks] == [(s.probes, s.failures) for s in found]
        assert not any(c.down_seconds or c.degraded_seconds or c.incidents for c in checks)
        # The gauge's bulk read gives the figure of the last n days' DayStats.
        today = history.now.astimezone(BERLIN).date()
        stats = await store.daily_stats(
            site, first=today - timedelta(days=89), last=today, now=history.now
        )
        ratios = (await store.uptime_ratios([site], now=history.now))[site]
        for n in (1, 7, 30, 90):
            figure = uptime(stats[-n:])
            assert ratios[n] == (None if figure is None else pytest.approx(figure)), n
        # The rolling 24 hours: the same definition over now - 24 h .. now.
        rolling = (await store.rolling_uptimes([site], now=history.now))[site]
        expected_rolling = reference_rolling(history, tz=BERLIN)
        assert rolling == (
            None if expected_rolling is None else pytest.approx(expected_rolling, abs=1e-9)
        )
    finally:
        await store.close()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories())
def test_uptime_from_rollups_equals_the_minute_by_minute_reference(
    database_url: str, history: History
) -> None:
    asyncio.run(_check(database_url, history))


async def test_0007_upgrades_a_database_at_0006_and_counts_an_open_incident_from_its_opening(
    database_url: str,
) -> None:
    opened = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)  # Sunday 00:00 in Berlin, a 25 h day
    await database_at(database_url, "0006", old_open_incident(9, opened_at=opened))

    store = await Store.open(database_url)  # migrates to the head
    store.use_calendars(Calendars(zone_of=lambda client: BERLIN))
    try:
        async with store.engine.connect() as conn:
            version = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).all()
        assert version == [(head_revision(),)]
        sunday = date(2026, 10, 25)
        now = opened + timedelta(hours=2)
        # No headline (stored before 0005): counted as down, from its opening, before any write.
        [before] = await store.daily_stats("acme/shop", first=sunday, last=sunday, now=now)
        assert (before.down_seconds, before.incidents, before.worst) == (7200, 1, DayState.DOWN)
        old = await store.load_open_incident("acme/shop")
        assert old is not None
        resolved_at = opened + timedelta(hours=25)  # Monday 00:00 in Berlin
        await store.save_incident(
            replace(old, status=IncidentStatus.RESOLVED, resolved_at=resolved_at),
            timeline=(),
            now=resolved_at,
        )
        [after] = await store.daily_stats(
            "acme/shop", first=sunday, last=sunday, now=resolved_at + timedelta(days=1)
        )
        assert (after.down_seconds, after.observed_seconds, after.incidents) == (
            25 * 3600,
            25 * 3600,
            1,
        )
        assert uptime([after]) == 0.0
    finally:
        await store.close()


class FixedClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return 0.0

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


async def test_the_gauge_serves_the_rollups_uptime_and_rows_past_retention_go(
    store: Store,
) -> None:
    now = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)  # clients count in UTC by default
    old = now - timedelta(days=401)
    history = History(
        first=now.date(),
        windows=(),
        incidents=(
            PlannedIncident(
                opened=now - timedelta(hours=2),
                changes=((now - timedelta(hours=2), "down"),),
                resolved=now - timedelta(hours=1),
            ),
        ),
        probes=((old, True), (now - timedelta(hours=3), True)),
        now=now,
    )
    await _write(store, "acme/shop", history)
    await _write(store, "acme/blog", replace(history, incidents=()))
    sites = ["acme/blog", "acme/quiet", "acme/shop"]
    gauge = UptimeGauge(store=store, sites=lambda: sites, clock=FixedClock(now))
    registry = CollectorRegistry()
    registry.register(gauge)

    def value(site: str, window: str) -> float | None:
        labels = {"client": "acme", "site": site, "window": window}
        return registry.get_sample_value("monitor_site_uptime_ratio", labels)

    assert value("shop", "24h") is None  # nothing read yet: a scrape never reads the database
    await gauge.refresh()
    # Observed since midnight (12 h), one of them down.
    for window in ("24h", "7d", "30d", "90d"):
        assert value("shop", window) == pytest.approx(11 / 12)
        assert value("blog", window) == 1.0
        assert value("quiet", window) is None  # never observed: no figure, not 100 %
    [kept] = await store.daily_stats("acme/shop", first=old.date(), last=old.date(), now=now)
    assert kept.probes == 0  # the row of 401 days ago went with the refresh


REBUILD_CONFIG = """\
database: {{url: "{url}"}}
clients:
  - id: acme
    name: Acme GmbH
    business_hours: {{timezone: Europe/Berlin}}
    sites:
      - {{id: shop, name: Acme Shop, url: "https://shop.acme.example/", checks: [{{id: home}}]}}
      - {{id: blog, name: Acme Blog, url: "https://blog.acme.example/", checks: [{{id: home}}]}}
"""


async def test_incidents_resolved_before_0007_are_counted_at_start_and_by_rollups_rebuild(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    opened = datetime(2026, 6, 1, 7, 0, tzinfo=UTC)  # 09:00 in Berlin
    await database_at(
        database_url,
        "0006",
        old_open_incident(
            1, opened_at=opened, status="resolved", resolved_at=opened + timedelta(hours=2)
        ),
        old_open_incident(
            2,
            opened_at=opened + timedelta(days=1),
            site="acme/blog",
            status="resolved",
            resolved_at=opened + timedelta(days=1, minutes=30),
        ),
    )
    first, now = date(2026, 6, 1), datetime(2026, 6, 10, 12, 0, tzinfo=UTC)

    async def shop_and_blog() -> list[tuple[float, int, DayState]]:
        store = await Store.open(database_url)
        store.use_calendars(Calendars(zone_of=lambda client: BERLIN))
        try:
            shop = await store.daily_stats("acme/shop", first=first, last=first, now=now)
            blog = await store.daily_stats(
                "acme/blog", first=first, last=first + timedelta(days=1), now=now
            )
        finally:
            await store.close()
        return [(s.down_seconds, s.incidents, s.worst) for s in (*shop, *blog)]

    uncounted = (0.0, 0, DayState.NO_DATA)
    counted = [(7200.0, 1, DayState.DOWN), uncounted, (1800.0, 1, DayState.DOWN)]
    # Migrated to the head, the old incidents are in no rollup yet.
    assert await shop_and_blog() == [uncounted] * 3
    store = await Store.open(database_url)
    store.use_calendars(Calendars(zone_of=lambda client: BERLIN))
    try:
        # What the monitor does at start: count them, once.
        assert await store.rebuild_rollups(now=now, all_sites=False) == ["acme/blog", "acme/shop"]
        assert await store.rebuild_rollups(now=now, all_sites=False) == []
        # The rolling 24 hours read their spans too.
        rolling = await store.rolling_uptimes(["acme/shop"], now=opened + timedelta(hours=4))
        # 13:00 in Berlin: the day is observed since midnight (13 h), 2 h of them down.
        assert rolling == {"acme/shop": pytest.approx(1 - 2 / 13)}
    finally:
        await store.close()
    assert await shop_and_blog() == counted

    # `monitor rollups rebuild` recounts from the incidents: the same figures (it sets, never
    # adds), however often it runs.
    config = tmp_path / "monitor.yaml"
    config.write_text(REBUILD_CONFIG.format(url=database_url))
    base = ["rollups", "rebuild", "--config", str(config)]

    def cli(*args: str) -> int:
        return main([*base, *args])

    for _ in range(2):
        assert await asyncio.to_thread(cli, "--client", "acme", "--since", "2026-05-01") == 0
        assert "rollups rebuilt for 2 sites" in capsys.readouterr().out
        assert await shop_and_blog() == counted
    assert await asyncio.to_thread(cli, "--since", "May") == 2
    assert "--since must be a day such as 2026-01-31 (got 'May')" in capsys.readouterr().err
    assert await asyncio.to_thread(cli, "--client", "zeta") == 2
    assert "no client 'zeta'" in capsys.readouterr().err
