"""The monthly service report's composition: a month with a Severity 1 answered in time, a
Severity 2 whose update came late and a maintenance window, checked field by field; and the
verdicts as tables. The incidents get their clocks from incidents.sla, as in production."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from incidents.calendar_spec import BusinessHoursSpec, build_calendar
from incidents.model import Incident, IncidentStatus, TimelineEntry, TimelineKind
from incidents.report import (
    MonthlyReport,
    ReportIncident,
    ReportWindow,
    SiteFigures,
    Verdict,
    compose_report,
    month_bounds,
    parse_month,
)
from incidents.severity import Severity
from incidents.sla import (
    SlaContext,
    due_sla_events,
    record_client_update,
    record_response,
    start_clocks,
)

BERLIN = ZoneInfo("Europe/Berlin")
CTX = SlaContext(business=build_calendar(BusinessHoursSpec(timezone="Europe/Berlin")))
SHOP, BLOG = "acme/shop", "acme/blog"
NAMES = {SHOP: "Acme Shop", BLOG: "Acme Blog"}
CADENCE = frozenset({Severity.CRITICAL, Severity.MAJOR, Severity.MODERATE})


def berlin(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN)


def opened(
    incident_id: int, severity: Severity, at: str, *, site: str = SHOP, title: str = "t"
) -> Incident:
    return start_clocks(
        Incident(
            id=incident_id,
            client="acme",
            site=site,
            title=title,
            severity=severity,
            status=IncidentStatus.OPEN,
            opened_at=berlin(at),
        ),
        ctx=CTX,
    )


def resolved(incident: Incident, at: str) -> Incident:
    # As incidents.flow resolves: the cadence ends with the incident.
    return replace(
        incident,
        status=IncidentStatus.RESOLVED,
        resolved_at=berlin(at),
        next_update_due_at=None,
    )


def entry(kind: TimelineKind, at: datetime) -> TimelineEntry:
    return TimelineEntry(at=at, kind=kind, message=kind.value)


def sev1_answered_in_time() -> ReportIncident:
    """Tue 3 Nov 10:00: down. Aim 12:00, due 14:00 (business hours); acknowledged 11:30,
    client update 15:00, resolved 15:30."""
    incident = opened(7, Severity.CRITICAL, "2026-11-03T10:00", title="Acme Shop is down")
    incident = record_response(incident, at=berlin("2026-11-03T11:30"), by="ann", ctx=CTX)
    incident = record_client_update(incident, at=berlin("2026-11-03T15:00"), ctx=CTX)
    timeline = (
        entry(TimelineKind.OPENED, berlin("2026-11-03T10:00")),
        entry(TimelineKind.ACKNOWLEDGED, berlin("2026-11-03T11:30")),
        entry(TimelineKind.CLIENT_UPDATE, berlin("2026-11-03T15:00")),
        entry(TimelineKind.RESOLVED, berlin("2026-11-03T15:30")),
    )
    return ReportIncident(resolved(incident, "2026-11-03T15:30"), timeline)


def sev2_update_missed() -> ReportIncident:
    """Mon 9 Nov 10:00: slow. Responded at 11:00, so the next update (daily) was due Tue
    11:00; the monitor recorded it overdue then; the update came at 14:00; resolved Wed."""
    incident = opened(8, Severity.MAJOR, "2026-11-09T10:00", title="Acme Shop: pages load slowly")
    incident = record_response(incident, at=berlin("2026-11-09T11:00"), by="bob", ctx=CTX)
    assert incident.next_update_due_at == berlin("2026-11-10T11:00")
    incident, events = due_sla_events(incident, now=berlin("2026-11-10T11:00"), ctx=CTX)
    assert [e.kind for e in events] == [TimelineKind.UPDATE_OVERDUE]
    incident = record_client_update(incident, at=berlin("2026-11-10T14:00"), ctx=CTX)
    timeline = (
        entry(TimelineKind.OPENED, berlin("2026-11-09T10:00")),
        entry(TimelineKind.ACKNOWLEDGED, berlin("2026-11-09T11:00")),
        entry(TimelineKind.UPDATE_OVERDUE, events[0].due_at),
        entry(TimelineKind.CLIENT_UPDATE, berlin("2026-11-10T14:00")),
        entry(TimelineKind.RESOLVED, berlin("2026-11-11T12:00")),
    )
    return ReportIncident(resolved(incident, "2026-11-11T12:00"), timeline)


def november(**overrides: Any) -> MonthlyReport:
    values: dict[str, Any] = {
        "client_name": "Acme GmbH",
        "month": "2026-11",
        "timezone": "Europe/Berlin",
        "incidents": [sev2_update_missed(), sev1_answered_in_time()],
        "windows": [ReportWindow(SHOP, berlin("2026-11-15T02:00"), berlin("2026-11-15T04:00"))],
        "figures": {
            SHOP: SiteFigures(SHOP, 99.5, downtime_seconds=19800, maintenance_seconds=7200),
            BLOG: SiteFigures(BLOG, 100.0, downtime_seconds=0, maintenance_seconds=0),
        },
        "site_names": NAMES,
        "availability_target": 99.9,
        "cadence": CADENCE,
    }
    return compose_report(**(values | overrides))


def test_a_month_with_a_sev1_in_time_a_sev2_update_missed_and_maintenance() -> None:
    report = november()
    assert (report.client_name, report.month, report.timezone) == (
        "Acme GmbH",
        "2026-11",
        "Europe/Berlin",
    )
    assert report.period_start == berlin("2026-11-01T00:00")
    assert report.period_end == berlin("2026-12-01T00:00")
    assert report.availability_target == 99.9

    shop, blog = report.sites
    assert (shop.name, shop.availability, shop.target, shop.target_met) == (
        "Acme Shop",
        99.5,
        99.9,
        False,
    )
    assert (shop.downtime_minutes, shop.maintenance_minutes) == (330, 120)
    assert (blog.name, blog.availability, blog.target_met, blog.downtime_minutes) == (
        "Acme Blog",
        100.0,
        True,
        0,
    )

    sev1, sev2 = report.incidents  # oldest first, whatever order they came in
    assert sev1.ref == "INC-7"
    assert (sev1.site_name, sev1.title, sev1.severity) == (
        "Acme Shop",
        "Acme Shop is down",
        Severity.CRITICAL,
    )
    assert (sev1.opened_at, sev1.resolved_at) == (
        berlin("2026-11-03T10:00"),
        berlin("2026-11-03T15:30"),
    )
    assert sev1.duration == timedelta(hours=5, minutes=30)
    assert sev1.responded_at == berlin("2026-11-03T11:30")
    assert sev1.time_to_respond == timedelta(minutes=90)
    assert sev1.response_aim_at == berlin("2026-11-03T12:00")
    assert sev1.response_due_at == berlin("2026-11-03T14:00")
    assert (sev1.response_aim, sev1.response_due) == (Verdict.MET, Verdict.MET)
    assert (sev1.client_updates, sev1.updates_missed) == (1, 0)
    assert sev1.update_cadence is Verdict.MET

    assert sev2.ref == "INC-8"
    assert sev2.severity is Severity.MAJOR
    assert sev2.time_to_respond == timedelta(hours=1)
    # Severity 2: 8 business hours from Mon 10:00 is Tue 10:00, for aim and due alike.
    assert sev2.response_aim_at == sev2.response_due_at == berlin("2026-11-10T10:00")
    assert (sev2.response_aim, sev2.response_due) == (Verdict.MET, Verdict.MET)
    assert (sev2.client_updates, sev2.updates_missed) == (1, 1)
    assert sev2.update_cadence is Verdict.MISSED

    assert report.by_severity == (
        (Severity.CRITICAL, 1),
        (Severity.MAJOR, 1),
        (Severity.MODERATE, 0),
        (Severity.LOW, 0),
    )
    (window,) = report.maintenance
    assert (window.site_name, window.starts_at, window.duration) == (
        "Acme Shop",
        berlin("2026-11-15T02:00"),
        timedelta(hours=2),
    )


def test_only_what_overlaps_the_month_is_reported_and_windows_are_cut_to_it() -> None:
    october = ReportIncident(
        resolved(opened(1, Severity.MAJOR, "2026-10-20T10:00"), "2026-10-20T12:00")
    )
    into_november = ReportIncident(
        resolved(opened(2, Severity.MAJOR, "2026-10-30T10:00"), "2026-11-02T10:00")
    )
    december = ReportIncident(opened(3, Severity.MAJOR, "2026-12-01T00:00"))
    other_client = ReportWindow("zeta/web", berlin("2026-11-10T02:00"), berlin("2026-11-10T03:00"))
    report = november(
        incidents=[december, into_november, october],
        windows=[
            ReportWindow(BLOG, berlin("2026-10-31T23:00"), berlin("2026-11-01T01:00")),
            ReportWindow(SHOP, berlin("2026-10-01T01:00"), berlin("2026-10-01T02:00")),
            other_client,
        ],
    )
    assert [line.ref for line in report.incidents] == ["INC-2"]
    (window,) = report.maintenance
    assert (window.site_name, window.starts_at, window.ends_at) == (
        "Acme Blog",
        berlin("2026-11-01T00:00"),
        berlin("2026-11-01T01:00"),
    )


def test_titles_in_the_report_language_replace_the_stored_english_one() -> None:
    report = november(titles={7: "Acme Shop ist nicht erreichbar"})
    assert [line.title for line in report.incidents] == [
        "Acme Shop ist nicht erreichbar",
        "Acme Shop: pages load slowly",
    ]


# Severity 1 opened Tue 3 Nov 10:00: aim 12:00, due 14:00.
@pytest.mark.parametrize(
    ("responded", "resolved_at", "now", "aim", "due"),
    [
        ("2026-11-03T12:00", None, None, Verdict.MET, Verdict.MET),  # on the aim: met
        ("2026-11-03T12:01", None, None, Verdict.MISSED, Verdict.MET),
        ("2026-11-03T14:01", None, None, Verdict.MISSED, Verdict.MISSED),
        (None, "2026-11-03T11:00", None, Verdict.NOT_DUE, Verdict.NOT_DUE),  # recovered alone
        (None, "2026-11-03T13:00", None, Verdict.MISSED, Verdict.NOT_DUE),
        (None, "2026-11-03T16:00", None, Verdict.MISSED, Verdict.MISSED),
        (None, None, None, Verdict.MISSED, Verdict.MISSED),  # open, never answered
        (None, None, "2026-11-03T11:00", Verdict.NOT_DUE, Verdict.NOT_DUE),  # month so far
    ],
)
def test_response_verdicts(
    responded: str | None, resolved_at: str | None, now: str | None, aim: Verdict, due: Verdict
) -> None:
    incident = opened(5, Severity.CRITICAL, "2026-11-03T10:00")
    if responded:
        incident = record_response(incident, at=berlin(responded), by="ann", ctx=CTX)
    if resolved_at:
        incident = resolved(incident, resolved_at)
    report = november(
        incidents=[ReportIncident(incident)], now=None if now is None else berlin(now)
    )
    (line,) = report.incidents
    assert (line.response_aim, line.response_due) == (aim, due)


def test_a_target_the_severity_does_not_have_is_no_verdict() -> None:
    incident = replace(opened(5, Severity.LOW, "2026-11-03T10:00"), response_aim_at=None)
    (line,) = november(incidents=[ReportIncident(incident)]).incidents
    assert line.response_aim is Verdict.NONE
    # Due 5 working days after Tue 3 Nov; the month is over and nobody answered.
    assert line.response_due is Verdict.MISSED


@pytest.mark.parametrize(
    ("severity", "respond", "overdue_entry", "open_due_passed", "verdict"),
    [
        (Severity.CRITICAL, True, False, False, Verdict.MET),
        (Severity.CRITICAL, True, True, False, Verdict.MISSED),
        (Severity.CRITICAL, True, False, True, Verdict.MISSED),  # overdue, not yet recorded
        (Severity.CRITICAL, False, False, False, Verdict.NONE),  # no response: no cadence ran
        (Severity.LOW, True, False, False, Verdict.NONE),  # no cadence for the severity
    ],
)
def test_update_cadence_verdicts(
    severity: Severity, respond: bool, overdue_entry: bool, open_due_passed: bool, verdict: Verdict
) -> None:
    incident = opened(5, severity, "2026-11-03T10:00")
    if respond:
        incident = record_response(incident, at=berlin("2026-11-03T10:30"), by="ann", ctx=CTX)
    timeline: tuple[TimelineEntry, ...] = ()
    if overdue_entry:
        timeline = (entry(TimelineKind.UPDATE_OVERDUE, berlin("2026-11-03T14:30")),)
    if not open_due_passed:
        incident = resolved(incident, "2026-11-03T12:00")
    (line,) = november(incidents=[ReportIncident(incident, timeline)]).incidents
    assert line.update_cadence is verdict


@pytest.mark.parametrize(
    ("month", "start", "end"),
    [
        ("2026-11", "2026-11-01T00:00", "2026-12-01T00:00"),
        ("2026-12", "2026-12-01T00:00", "2027-01-01T00:00"),  # the year turns
        ("2026-03", "2026-03-01T00:00", "2026-04-01T00:00"),  # 743 hours: DST starts in it
    ],
)
def test_month_bounds_are_local_midnights(month: str, start: str, end: str) -> None:
    assert month_bounds(month, BERLIN) == (berlin(start), berlin(end))


@pytest.mark.parametrize("text", ["2026-13", "2026-1", "11/2026", "", "2026-00"])
def test_a_malformed_month_says_the_form(text: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM, e.g. 2026-11"):
        parse_month(text)
