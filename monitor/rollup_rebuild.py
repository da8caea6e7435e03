"""`monitor rollups rebuild`: recount the daily rollups' down and degraded seconds and
incidents from the incidents in the database (monitor.store.spans.rebuild), for one client or
all, from a day on. The monitor does the part that is needed on its own at start: incidents
resolved before the rollups existed (revision 0007) are counted once."""

from __future__ import annotations

from datetime import date, datetime

from monitor.config.models import MonitorConfig
from monitor.reports import find_client
from monitor.store import Store
from monitor.uptime_gauge import calendars_of


def parse_day(text: str) -> date:
    """YYYY-MM-DD; ValueError saying so otherwise."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since must be a day such as 2026-01-31 (got {text!r})") from None


async def rebuild_rollups(
    config: MonitorConfig, *, client: str | None, since: date | None, now: datetime
) -> list[str]:
    """The sites recounted. ValueError for a client the config does not have."""
    if client is not None:
        find_client(config, client)
    store = await Store.open(config.database.url)
    store.use_calendars(calendars_of(config))
    try:
        return await store.rebuild_rollups(now=now, client=client, since=since)
    finally:
        await store.close()
