"""`monitor_site_uptime_ratio{client,site,window}`: the uptime of incidents.uptime per site over
the last 24 hours (window "24h": now - 24 h .. now, Store.rolling_uptimes) and its client's last
7, 30 and 90 calendar days (window "7d", "30d", "90d"; today, up to now, is the last of them;
Store.uptime_ratios), for the Grafana uptime panels.

Read every `every` seconds for all the process's sites at once and served from that cache at
scrape time: a scrape never queries the database. The same loop deletes rollups past their
retention once a day.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from incidents.recurring_maintenance import RecurringWindow, occurrences
from incidents.uptime import Window
from monitor.clock import Clock
from monitor.config.models import MonitorConfig
from monitor.desk import recurring_windows
from monitor.store import Calendars, Store, StoreError

log = logging.getLogger(__name__)

# Calendar days per window label; "24h" is a rolling 24 hours (ROLLING).
PERIODS = {7: "7d", 30: "30d", 90: "90d"}
ROLLING = "24h"


def calendars_of(config: MonitorConfig) -> Calendars:
    """Each client's time zone and each site's recurring windows, from the config."""
    zones = {client.id: ZoneInfo(client.business_hours.timezone) for client in config.clients}
    recurring = recurring_windows(config)
    cache: dict[tuple[str, date, date], list[Window]] = {}

    def zone_of(client: str) -> ZoneInfo:
        return zones.get(client, ZoneInfo("UTC"))

    def recurring_of(site: str, start: datetime, end: datetime) -> list[Window]:
        windows = recurring.get(site)
        if not windows:
            return []
        # Whole UTC days around the period, remembered: the gauge asks every minute for a
        # period that moves by a minute, and a cron occurrence costs croniter about 2 ms.
        first, last = start.date() - timedelta(days=1), end.date() + timedelta(days=1)
        key = (site, first, last)
        if key not in cache:
            if len(cache) > 10_000:
                cache.clear()
            cache[key] = _occurrences(windows, first=first, last=last)
        return [w for w in cache[key] if w.end > start and w.start < end]

    return Calendars(zone_of=zone_of, recurring_of=recurring_of)


def _occurrences(windows: Iterable[RecurringWindow], *, first: date, last: date) -> list[Window]:
    start = datetime.combine(first, datetime.min.time(), tzinfo=ZoneInfo("UTC"))
    end = datetime.combine(last, datetime.min.time(), tzinfo=ZoneInfo("UTC"))
    return [
        Window(*span)
        for window in windows
        for span in occurrences(window.recurrence, window.zone, start=start, end=end)
    ]


class UptimeGauge(Collector):
    def __init__(self, *, store: Store, sites: Callable[[], Iterable[str]], clock: Clock) -> None:
        self._store = store
        self._sites = sites
        self._clock = clock
        self._values: dict[str, dict[str, float | None]] = {}
        self._purged_on: date | None = None

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "monitor_site_uptime_ratio",
            "Share of the site's observed time, maintenance windows left out, in which it "
            "was not down (an open incident whose availability checks are not served at all; "
            "a slow page or failing part is degraded, not down), over the last 24 hours "
            "(window 24h) or the client's last 7, 30 or 90 calendar days up to now.",
            labels=("client", "site", "window"),
        )
        for key, ratios in sorted(self._values.items()):
            client, _, site = key.partition("/")
            for label in (ROLLING, *PERIODS.values()):
                value = ratios.get(label)
                if value is not None:
                    family.add_metric((client, site, label), value)
        yield family

    async def refresh(self) -> None:
        """Read every site's uptime from the rollups into the cache the scrapes read."""
        now = self._clock.now()
        sites = sorted(self._sites())
        by_days = await self._store.uptime_ratios(sites, now=now, periods=tuple(PERIODS))
        rolling = await self._store.rolling_uptimes(sites, now=now)
        self._values = {
            site: {ROLLING: rolling.get(site)}
            | {PERIODS[n]: value for n, value in by_days.get(site, {}).items()}
            for site in sites
        }
        today = now.date()
        if self._purged_on != today:
            deleted = await self._store.purge_rollups(today=today)
            self._purged_on = today
            if deleted:
                log.info("deleted %d daily rollup rows past their retention", deleted)

    async def run(self, *, every: float, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.refresh()
            except StoreError as exc:  # keep serving the last figures; try again next round
                log.warning("uptime figures not refreshed: %s", exc)
            await self._clock.sleep(every)
