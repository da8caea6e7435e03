"""Routes as a pure function: which channels hear an event, by severity, client, event and the
agency's business hours (Europe/Berlin, mon-fri 09:00-17:00), across a DST change."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from incidents.calendar_spec import BusinessHoursSpec, build_calendar
from incidents.model import TimelineEntry, TimelineKind
from incidents.routes import (
    Event,
    Hours,
    Route,
    channels_for,
    default_routes,
    entry_events,
)
from incidents.severity import Severity

BERLIN = build_calendar(BusinessHoursSpec(timezone="Europe/Berlin"))

ROUTES = (
    Route(channels=("pager",), events=frozenset({Event.PAGED}), hours=Hours.AFTER_HOURS),
    Route(channels=("team",), severities=frozenset({Severity.CRITICAL, Severity.MAJOR})),
    Route(channels=("acme-room",), clients=frozenset({"acme"}), hours=Hours.BUSINESS),
    Route(channels=("team", "email"), events=frozenset({Event.OVERDUE, Event.UPDATE_DUE})),
    Route(channels=("health",), events=frozenset({Event.MONITOR_HEALTH})),
)

# Monday 30 March 2026: Berlin is on summer time (UTC+2) since Sunday 29 March 02:00.
MON_SUMMER_0830_LOCAL = datetime(2026, 3, 30, 6, 30, tzinfo=UTC)  # 08:30 CEST: closed
MON_SUMMER_0930_LOCAL = datetime(2026, 3, 30, 7, 30, tzinfo=UTC)  # 09:30 CEST: open
# The Friday before, on winter time (UTC+1): the same UTC hour is an hour earlier locally.
FRI_WINTER_0730_UTC = datetime(2026, 3, 27, 7, 30, tzinfo=UTC)  # 08:30 CET: closed
FRI_WINTER_0830_UTC = datetime(2026, 3, 27, 8, 30, tzinfo=UTC)  # 09:30 CET: open
SAT_NOON = datetime(2026, 3, 28, 11, 0, tzinfo=UTC)  # weekend: closed
# The week DST ends (25 October 2026, back to UTC+1): Monday 26 October.
MON_AFTER_DST_END_0830_UTC = datetime(2026, 10, 26, 8, 30, tzinfo=UTC)  # 09:30 CET: open
MON_AFTER_DST_END_0730_UTC = datetime(2026, 10, 26, 7, 30, tzinfo=UTC)  # 08:30 CET: closed


@pytest.mark.parametrize(
    ("events", "severity", "client", "at", "expected"),
    [
        # A Severity 1 page at night: pager (after hours) and team (severity); acme's room
        # only in business hours.
        ({Event.PAGED, Event.OPENED}, 1, "acme", SAT_NOON, ("pager", "team")),
        ({Event.PAGED, Event.OPENED}, 1, "acme", MON_SUMMER_0930_LOCAL, ("team", "acme-room")),
        ({Event.PAGED, Event.OPENED}, 1, "acme", MON_SUMMER_0830_LOCAL, ("pager", "team")),
        # DST: 07:30 UTC is 08:30 local on winter time (closed) and 09:30 on summer time.
        ({Event.PAGED}, 1, "acme", FRI_WINTER_0730_UTC, ("pager", "team")),
        ({Event.PAGED}, 1, "acme", FRI_WINTER_0830_UTC, ("team", "acme-room")),
        ({Event.PAGED}, 1, "acme", MON_SUMMER_0930_LOCAL, ("team", "acme-room")),
        ({Event.PAGED}, 1, "acme", MON_AFTER_DST_END_0730_UTC, ("pager", "team")),
        ({Event.PAGED}, 1, "acme", MON_AFTER_DST_END_0830_UTC, ("team", "acme-room")),
        # Severity 3 of another client: nobody but the overdue route.
        ({Event.OPENED}, 3, "globex", MON_SUMMER_0930_LOCAL, ()),
        ({Event.OVERDUE}, 3, "globex", MON_SUMMER_0930_LOCAL, ("team", "email")),
        ({Event.UPDATE_DUE}, 2, "globex", SAT_NOON, ("team", "email")),
        ({Event.RESOLVED}, 2, "globex", SAT_NOON, ("team",)),
        ({Event.RESOLVED}, 4, "acme", MON_SUMMER_0930_LOCAL, ("acme-room",)),
        # Monitor health has no severity or client: only routes without those filters.
        ({Event.MONITOR_HEALTH}, None, None, SAT_NOON, ("health",)),
        (set(), 1, "acme", SAT_NOON, ()),
    ],
)
def test_channels_for_a_table_of_events(
    events: set[Event],
    severity: int | None,
    client: str | None,
    at: datetime,
    expected: tuple[str, ...],
) -> None:
    found = channels_for(
        ROUTES,
        events,
        severity=None if severity is None else Severity(severity),
        client=client,
        at=at,
        agency_hours=BERLIN,
    )
    assert found == expected


def test_default_routes_are_todays_behaviour() -> None:
    routes = default_routes(webhook=True, chats=("team",))
    at = SAT_NOON

    def heard(*events: Event) -> tuple[str, ...]:
        return channels_for(
            routes, events, severity=Severity.MAJOR, client="acme", at=at, agency_hours=BERLIN
        )

    # On-call email hears all it is mailed; the webhook and chats only pages.
    assert heard(Event.PAGED, Event.OPENED) == ("email", "webhook", "team")
    assert heard(Event.OPENED) == ("email",)
    assert heard(Event.OVERDUE) == ("email",)
    assert default_routes(webhook=False) == (Route(channels=("email",)),)


def _entry(kind: TimelineKind) -> TimelineEntry:
    return TimelineEntry(at=SAT_NOON, kind=kind, message=kind.value)


@pytest.mark.parametrize(
    ("kind", "with_kinds", "expected"),
    [
        (TimelineKind.ONCALL_PAGED, {TimelineKind.OPENED}, {Event.PAGED, Event.OPENED}),
        (TimelineKind.ONCALL_PAGED, {TimelineKind.ESCALATED}, {Event.PAGED, Event.ESCALATED}),
        (TimelineKind.ONCALL_PAGED, set(), {Event.PAGED}),
        # An escalation that pages is told once, by its page.
        (TimelineKind.ESCALATED, {TimelineKind.ONCALL_PAGED}, set()),
        (TimelineKind.ESCALATED, set(), {Event.ESCALATED}),
        (TimelineKind.ONCALL_NOTIFIED, {TimelineKind.OPENED}, {Event.OPENED}),
        (TimelineKind.UPDATE_REMINDER, set(), {Event.UPDATE_DUE}),
        (TimelineKind.UPDATE_OVERDUE, set(), {Event.OVERDUE}),
        (TimelineKind.RESPONSE_BREACHED, set(), {Event.OVERDUE}),
        (TimelineKind.RESOLVED, set(), {Event.RESOLVED}),
        (TimelineKind.OPENED, set(), set()),
        (TimelineKind.CHECK_FAILED, set(), set()),
    ],
)
def test_entry_events(
    kind: TimelineKind, with_kinds: set[TimelineKind], expected: set[Event]
) -> None:
    entry = _entry(kind)
    timeline = [entry, *(_entry(other) for other in with_kinds)]
    assert entry_events(entry, timeline) == frozenset(expected)
