"""Recurring maintenance windows from the YAML: the `weekly:` parser and cron windows as
tables of fixed datetimes across Europe/Berlin's DST changes, config errors that say where
and how, and a running monitor whose injected clock crosses the spring change."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestServer

from incidents.model import TimelineKind
from incidents.recurring_maintenance import Cron, RecurringWindow, Weekly, describe
from monitor.app import Running, running_monitor
from monitor.config import ConfigError, load_config_text
from monitor.events import EventKind, MonitorEvent
from tests.helpers import ShiftedClock, Target, eventually

BERLIN = ZoneInfo("Europe/Berlin")
SUNDAY_0200_TO_0400 = RecurringWindow(Weekly.parse("sun 02:00-04:00"), BERLIN)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- the weekly parser ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "days", "start", "end"),
    [
        ("sun 02:00-04:00", {6}, "02:00", "04:00"),
        ("Sat, Sun 23:00 - 01:00", {5, 6}, "23:00", "01:00"),
        ("mon,tue,wed,thu,fri 12:30-13:00", {0, 1, 2, 3, 4}, "12:30", "13:00"),
        ("fri 22:00-24:00", {4}, "22:00", "00:00"),
    ],
)
def test_weekly_parses_days_and_hours(text: str, days: set[int], start: str, end: str) -> None:
    weekly = Weekly.parse(text)
    assert weekly.days == days
    assert (f"{weekly.start:%H:%M}", f"{weekly.end:%H:%M}") == (start, end)


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("sunday 02:00-04:00", "such as sun 02:00-04:00"),
        ("sun 2am-4am", "such as sun 02:00-04:00"),
        ("sun 02:00", "such as sun 02:00-04:00"),
        ("son 02:00-04:00", "unknown day 'son'"),
        ("sun 25:00-04:00", "25:00 is not a time of day"),
        ("sun 02:00-02:00", "same time"),
    ],
)
def test_weekly_says_what_is_wrong_with_an_example(text: str, phrase: str) -> None:
    with pytest.raises(ValueError, match=phrase) as caught:
        Weekly.parse(text)
    assert "sun" in str(caught.value)


# --- in force across DST (Europe/Berlin: forward 29 March 2026, back 25 October 2026) ---------

# (now in UTC, the occurrence in force or None)
WEEKLY_CASES = [
    # A winter Sunday, CET = UTC+1: 02:00-04:00 local is 01:00-03:00 UTC.
    ("2026-03-22 00:59:59", None),
    ("2026-03-22 01:00:00", ("2026-03-22 01:00", "2026-03-22 03:00")),
    ("2026-03-22 02:59:59", ("2026-03-22 01:00", "2026-03-22 03:00")),
    ("2026-03-22 03:00:00", None),
    # The clocks go forward at 02:00 CET: the skipped 02:00 is 03:00 CEST (01:00 UTC) and
    # 04:00 CEST is 02:00 UTC, so the window lasts one hour.
    ("2026-03-29 00:59:59", None),
    ("2026-03-29 01:00:00", ("2026-03-29 01:00", "2026-03-29 02:00")),
    ("2026-03-29 01:59:59", ("2026-03-29 01:00", "2026-03-29 02:00")),
    ("2026-03-29 02:00:00", None),
    # A summer Sunday, CEST = UTC+2: 00:00-02:00 UTC.
    ("2026-04-05 00:00:00", ("2026-04-05 00:00", "2026-04-05 02:00")),
    ("2026-04-05 02:00:00", None),
    # The clocks go back at 03:00 CEST: 02:00 is its first occurrence (CEST, 00:00 UTC) and
    # 04:00 CET is 03:00 UTC, so the window lasts three hours.
    ("2026-10-25 00:00:00", ("2026-10-25 00:00", "2026-10-25 03:00")),
    ("2026-10-25 02:30:00", ("2026-10-25 00:00", "2026-10-25 03:00")),
    ("2026-10-25 03:00:00", None),
    # Not on other days.
    ("2026-03-28 01:30:00", None),
]


@pytest.mark.parametrize(("now", "expected"), WEEKLY_CASES)
def test_weekly_window_in_force_keeps_local_hours_across_dst(
    now: str, expected: tuple[str, str] | None
) -> None:
    span = SUNDAY_0200_TO_0400.in_force(utc(now))
    assert span == (None if expected is None else (utc(expected[0]), utc(expected[1])))


def test_a_window_past_midnight_ends_the_next_day() -> None:
    window = RecurringWindow(Weekly.parse("sat 23:00-01:00"), BERLIN)
    # Saturday 28 March 23:00 CET to Sunday 01:00 CET (before the change).
    assert window.in_force(utc("2026-03-28 23:30")) == (
        utc("2026-03-28 22:00"),
        utc("2026-03-29 00:00"),
    )
    assert window.in_force(utc("2026-03-29 00:00")) is None
    assert window.in_force(utc("2026-03-28 21:59")) is None


def test_next_span_is_the_one_in_force_or_the_next() -> None:
    assert SUNDAY_0200_TO_0400.next_span(utc("2026-03-25 12:00")) == (
        utc("2026-03-29 01:00"),
        utc("2026-03-29 02:00"),
    )
    assert SUNDAY_0200_TO_0400.next_span(utc("2026-03-22 02:00")) == (
        utc("2026-03-22 01:00"),
        utc("2026-03-22 03:00"),
    )


CRON_CASES = [
    # '0 2 * * sun' for 2 hours of elapsed time, starts read in Berlin time.
    ("2026-03-22 01:00:00", ("2026-03-22 01:00", "2026-03-22 03:00")),
    ("2026-03-22 03:00:00", None),
    ("2026-04-05 00:30:00", ("2026-04-05 00:00", "2026-04-05 02:00")),
    ("2026-04-05 02:00:00", None),
    ("2026-04-04 00:30:00", None),
]


@pytest.mark.parametrize(("now", "expected"), CRON_CASES)
def test_cron_window_starts_in_the_clients_zone(now: str, expected: tuple[str, str] | None) -> None:
    window = RecurringWindow(Cron.parse("0 2 * * sun", timedelta(hours=2)), BERLIN)
    span = window.in_force(utc(now))
    assert span == (None if expected is None else (utc(expected[0]), utc(expected[1])))


def test_descriptions() -> None:
    assert describe(Weekly.parse("Sun 02:00-04:00")) == "weekly sun 02:00-04:00"
    assert describe(Cron.parse("0 3 1 * *", timedelta(minutes=90))) == "cron 0 3 1 * * for 1h30m"


# --- config -----------------------------------------------------------------------------


def yaml_with(client_maintenance: str, site_maintenance: str = " []") -> str:
    return f"""
clients:
  - id: acme
    business_hours: {{timezone: Europe/Berlin}}
    maintenance:{client_maintenance}
    sites:
      - id: shop
        url: https://shop.example
        checks: [{{id: home}}]
        maintenance:{site_maintenance}
"""


def test_config_takes_weekly_and_cron_windows_per_client_and_site() -> None:
    config = load_config_text(
        yaml_with(
            "\n      - weekly: sun 02:00-04:00\n        reason: backups",
            "\n          - cron: '0 3 1 * *'\n            duration: 90m",
        ),
        environ={},
    )
    [client] = config.clients
    assert client.maintenance[0].reason == "backups"
    assert client.sites[0].maintenance[0].duration == timedelta(minutes=90)


@pytest.mark.parametrize(
    ("client_yaml", "line", "where", "phrase"),
    [
        ("\n      - weekly: sunday 02:00-04:00", 6, "maintenance[0].weekly", "sun 02:00-04:00"),
        ("\n      - cron: '0 3 1 *'\n        duration: 1h", 6, "maintenance[0].cron", "five"),
        ("\n      - cron: '0 3 1 * *'", 6, "maintenance[0]", "needs a positive duration"),
        ("\n      - weekly: sun 02:00-04:00\n        duration: 1h", 6, "maintenance[0]", "cron"),
        ("\n      - reason: nothing", 6, "maintenance[0]", "weekly"),
    ],
)
def test_config_errors_name_line_field_and_example(
    client_yaml: str, line: int, where: str, phrase: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text(yaml_with(client_yaml), filename="monitor.yaml", environ={})
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.path) == (
        "monitor.yaml",
        line,
        f"clients[0].{where}",
    )
    assert phrase in problem.message


# --- a running monitor across the spring change ------------------------------------------------


async def test_a_recurring_window_opens_and_closes_on_schedule_across_dst(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    targets: dict[str, Target] = {}
    urls: dict[str, str] = {}
    for name in ("shop", "blog"):
        targets[name] = Target()
        server: TestServer = await aiohttp_server(targets[name].app())
        urls[name] = str(server.make_url("")).rstrip("/")
    document = {
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path}/monitor.db"},
        "server": {"port": 0},
        "api": {"token": _API_TOKEN},  # reads need it too (api.protect_reads)
        "scheduler": {"sla_tick": "100ms"},
        "defaults": {"interval": "100ms", "timeout": "2s", "failures_to_open": 2},
        "notifications": {
            "sender": "Agency Support <support@agency.example>",
            "outbox_dir": str(tmp_path / "outbox"),
        },
        "clients": [
            {
                "id": "acme",
                "plan": "enterprise",  # clocks around the clock: the pause moves them
                "business_hours": {"timezone": "Europe/Berlin"},
                "maintenance": [{"weekly": "sun 02:00-04:00", "reason": "backups"}],
                "sites": [
                    {"id": name, "url": url, "checks": [{"id": "home", "url": "/"}]}
                    for name, url in urls.items()
                ],
            }
        ],
    }
    # Sunday 29 March 2026, 01:59 in Berlin (CET): a minute before the window, on the night
    # the clocks go forward.
    clock = ShiftedClock(utc("2026-03-29 00:59:00"))
    events: list[MonitorEvent] = []
    config = load_config_text(json.dumps(document))
    async with running_monitor(config, clock=clock, listeners=[events.append]) as running:
        desk = running.monitor.desk
        targets["shop"].set("/", status=500)
        shop = await eventually(lambda: _open_incident(running, "acme/shop"))
        assert shop.response_due_at is not None
        due = shop.response_due_at

        # 02:00 CET = 01:00 UTC: the window opens; the shop's clocks pause.
        clock.advance(utc("2026-03-29 01:00:05") - clock.now())
        await desk.tick()
        assert desk.in_maintenance("acme/blog", clock.now())
        started = await _entries(running, shop.id, TimelineKind.MAINTENANCE_STARTED)
        assert [e.at for e in started] == [utc("2026-03-29 01:00")]

        # A failure inside the window opens nothing.
        targets["blog"].set("/", status=500)
        hits = targets["blog"].hits["/"]
        await eventually(lambda: targets["blog"].hits["/"] >= hits + 4 or None)
        assert await _open_incident(running, "acme/blog") is None
        [failed] = [
            e.message
            for e in events
            if e.kind is EventKind.CHECK_FAILED and e.fields["check"] == "acme/blog/home"
        ]
        assert failed.endswith("during a maintenance window of its site")

        # 04:00 CEST = 02:00 UTC: it closes after one hour of elapsed time.
        clock.advance(utc("2026-03-29 01:59:50") - clock.now())
        assert desk.in_maintenance("acme/blog", clock.now())
        clock.advance(utc("2026-03-29 02:00:05") - clock.now())
        await desk.tick()
        assert not desk.in_maintenance("acme/blog", clock.now())
        ended = await _entries(running, shop.id, TimelineKind.MAINTENANCE_ENDED)
        assert [e.at for e in ended] == [utc("2026-03-29 02:00")]
        resumed = await running.store.get_incident(shop.id)  # type: ignore[arg-type]
        assert resumed is not None and resumed.response_due_at == due + timedelta(hours=1)

        # The blog's failures count again now.
        blog = await eventually(lambda: _open_incident(running, "acme/blog"))
        assert blog.opened_at >= utc("2026-03-29 02:00")

        # The listing shows the next occurrence, a week on (CEST: 00:00-02:00 UTC).
        listed = [w for w in await _maintenance(running) if w["site"] == "acme/shop"]
        assert listed == [
            {
                "id": None,
                "site": "acme/shop",
                "starts_at": "2026-04-05T00:00:00Z",
                "ends_at": "2026-04-05T02:00:00Z",
                "reason": "backups",
                "created_by": "config",
                "recurring": "weekly sun 02:00-04:00",
            }
        ]


_API_TOKEN = "maintenance-test-token"


async def _open_incident(running: Running, site: str) -> Any:
    found = await running.store.list_incidents(open_only=True)
    return next((i for i in found if i.site == site), None)


async def _entries(running: Running, incident_id: Any, kind: TimelineKind) -> list[Any]:
    return [e for e in await running.store.timeline(incident_id) if e.kind is kind]


async def _maintenance(running: Running) -> list[dict[str, Any]]:
    import aiohttp

    bearer = {"Authorization": f"Bearer {_API_TOKEN}"}
    async with (
        aiohttp.ClientSession(headers=bearer) as http,
        http.get(f"{running.url}/api/maintenance") as r,
    ):
        assert r.status == 200
        body: dict[str, Any] = await r.json()
        return list(body["maintenance"])


@pytest.mark.parametrize(
    "recurrence",
    [Weekly.parse("sun 02:00-04:00"), Cron.parse("30 1 * * sun", timedelta(hours=2))],
    ids=["weekly", "cron"],
)
def test_the_memoised_answer_equals_a_fresh_one_minute_by_minute(recurrence: Any) -> None:
    # One window asked again and again (as per probe) against fresh ones, across both DST
    # nights and back in time too.
    kept = RecurringWindow(recurrence, BERLIN)
    for day in ("2026-03-28 22:00", "2026-10-24 22:00", "2026-03-28 23:00"):
        start = utc(day)
        for minute in range(0, 8 * 60, 7):
            now = start + timedelta(minutes=minute)
            assert kept.in_force(now) == RecurringWindow(recurrence, BERLIN).in_force(now), now
