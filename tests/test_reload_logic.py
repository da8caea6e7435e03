"""The pure parts of a config reload: clocks on a changed calendar, what needs a restart, and
the scheduler taking a new set of checks by key."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from incidents.calendar_spec import BusinessHoursSpec, build_calendar
from incidents.flow import REMOVED_FROM_CONFIGURATION, after_checks_removed, recompute_on_calendar
from incidents.model import Incident, IncidentStatus, TimelineKind
from incidents.severity import Severity
from incidents.sla import SlaContext, start_clocks
from monitor.config import load_config_text
from monitor.reload import needs_restart
from monitor.scheduler import Scheduler
from tests.helpers import eventually

LONDON = ZoneInfo("Europe/London")
OPENED = datetime(2024, 6, 7, 16, 0, tzinfo=LONDON)  # a Friday, an hour before closing


def context(**hours: object) -> SlaContext:
    return SlaContext(business=build_calendar(BusinessHoursSpec.model_validate(hours)))


def incident() -> Incident:
    opened = Incident(
        id=7,
        client="acme",
        site="acme/shop",
        title="shop is slow",
        severity=Severity.MAJOR,
        status=IncidentStatus.OPEN,
        opened_at=OPENED,
    )
    return start_clocks(opened, ctx=context(timezone="Europe/London"))


def test_clocks_are_counted_again_on_the_new_calendar_with_a_note() -> None:
    before = incident()
    # Severity 2: 8 business hours; London Mon-Fri 9-17 from Friday 16:00: Monday 16:00.
    assert before.response_due_at == datetime(2024, 6, 10, 16, 0, tzinfo=LONDON)
    now = datetime(2024, 6, 7, 16, 30, tzinfo=LONDON)
    weekends_too = context(
        timezone="Europe/London",
        hours={day: ["09:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
    )

    change = recompute_on_calendar(before, now=now, sla=weekends_too)

    assert change is not None
    assert change.incident.response_due_at == datetime(2024, 6, 8, 16, 0, tzinfo=LONDON)
    [note] = change.timeline
    assert note.kind is TimelineKind.INTERNAL_NOTE and note.at == now
    assert "calendar changed" in note.message and "Sat 08 Jun 16:00" in note.message


def test_the_same_calendar_recomputes_nothing() -> None:
    before = incident()
    now = datetime(2024, 6, 7, 16, 30, tzinfo=LONDON)
    assert recompute_on_calendar(before, now=now, sla=context(timezone="Europe/London")) is None


HOME, CART, PAY = "acme/shop/home", "acme/shop/cart", "acme/shop/pay"


def failing(*keys: str, attached: tuple[str, ...] = ()) -> Incident:
    return replace(incident(), checks=frozenset((*keys, *attached)), failing_checks=frozenset(keys))


def test_an_incident_with_no_failing_check_left_is_resolved_by_the_removal() -> None:
    now = datetime(2024, 6, 7, 16, 30, tzinfo=LONDON)
    for before, kept in [
        (failing(CART), [HOME]),  # its only check went
        (failing(CART, attached=(HOME,)), [HOME]),  # the failing one went, home recovered
        (failing(CART, PAY), [HOME]),  # both failing ones went
    ]:
        change = after_checks_removed(before, now=now, configured=kept)
        assert change is not None
        assert change.incident.status is IncidentStatus.RESOLVED
        assert change.incident.resolved_at == now and change.incident.failing_checks == set()
        [entry] = change.timeline
        assert entry.kind is TimelineKind.RESOLVED
        assert entry.message == f"resolved: {REMOVED_FROM_CONFIGURATION}"
        assert entry.evidence is not None
        assert entry.evidence["removed_from_configuration"] == sorted(before.checks - {HOME})


def test_a_failing_check_removed_beside_another_is_no_longer_waited_for() -> None:
    now = datetime(2024, 6, 7, 16, 30, tzinfo=LONDON)
    change = after_checks_removed(failing(CART, PAY), now=now, configured=[HOME, PAY])
    assert change is not None
    assert change.incident.is_open and change.incident.failing_checks == {PAY}
    [note] = change.timeline
    assert note.kind is TimelineKind.INTERNAL_NOTE
    assert note.message == f"{REMOVED_FROM_CONFIGURATION}: {CART}; still failing: {PAY}"
    # Only a recovered check went, or none: nothing to change.
    assert after_checks_removed(failing(PAY, attached=(CART,)), now=now, configured=[PAY]) is None
    assert after_checks_removed(failing(PAY), now=now, configured=[PAY, HOME]) is None


BASE = """
database: {url: "sqlite+aiosqlite:///a.db"}
server: {port: 9464}
clients:
  - id: acme
    sites:
      - id: shop
        url: http://127.0.0.1:1
        checks: [{id: home, url: /}]
"""


def test_restart_only_fields_are_named_never_their_values() -> None:
    old = load_config_text(BASE)
    new = load_config_text(
        BASE.replace("a.db", "b.db").replace("9464", "9465").replace("home", "front")
    )
    assert needs_restart(old, new) == ["database.url", "server.port"]
    assert needs_restart(old, load_config_text(BASE.replace("home", "front"))) == []


def test_browser_and_retry_fields_built_at_start_are_named_the_live_ones_not() -> None:
    old = load_config_text(BASE)
    new = load_config_text(
        BASE
        + "browser: {max_pages: 4, max_page_memory_mb: 128, screenshots_dir: /srv/shots}\n"
        + "notifications: {retry_max: 1h}\n"
    )
    # max_page_memory_mb is read at each journey: it follows the reload.
    assert needs_restart(old, new) == [
        "browser.max_pages",
        "browser.screenshots_dir",
        "notifications.retry_max",
    ]


@dataclass(frozen=True)
class Item:
    key: str
    host: str = "a.example"
    interval_seconds: float = 0.2


async def test_the_scheduler_takes_a_new_set_of_items_by_key() -> None:
    runs: dict[str, int] = {}

    async def run(item: Item, due: float) -> None:
        runs[item.key] = runs.get(item.key, 0) + 1

    scheduler = Scheduler(
        [Item("a", interval_seconds=3600), Item("b", interval_seconds=0.05)],
        run=run,
        monotonic=time.monotonic,
        max_concurrency=10,
        per_host=10,
    )
    task = asyncio.create_task(scheduler.run())
    try:
        await eventually(lambda: runs.get("b", 0) >= 2)
        hourly = runs.get("a", 0)
        scheduler.update([Item("a", interval_seconds=0.05), Item("c", interval_seconds=0.05)])
        scheduler.set_active(None)  # as the runtime does: what this process holds
        await eventually(lambda: runs.get("a", 0) >= hourly + 3 and runs.get("c", 0) >= 3)
        stopped = runs["b"]
        await eventually(lambda: runs["a"] >= hourly + 6)
        assert runs["b"] == stopped  # removed: never dispatched again, even by set_active(None)
        assert scheduler.active_count == 2
    finally:
        scheduler.stop()
        await asyncio.wait_for(task, 5)
