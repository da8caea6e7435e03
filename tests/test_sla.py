"""SLA clocks: tables of fixed datetimes for opening, cadence, escalation, reminders and
breaches, `monitor sla` previews across DST weeks, and the YAML of the policy."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import ValidationError

from incidents.calendar import TWENTY_FOUR_SEVEN, BusinessCalendar
from incidents.calendar_spec import BusinessHoursSpec, build_calendar
from incidents.model import Incident, IncidentStatus, TimelineKind
from incidents.severity import Severity
from incidents.sla import (
    DEFAULT_PLANS,
    DEFAULT_TARGETS,
    PlanSpec,
    SeverityTargets,
    SlaContext,
    SlaPolicy,
    due_sla_events,
    escalate_clocks,
    next_sla_wakeup,
    oncall_notify_at,
    overdue_mark,
    preview,
    record_client_update,
    record_response,
    reminder_mark,
    start_clocks,
)

LONDON = ZoneInfo("Europe/London")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
REMINDER = TimelineKind.UPDATE_REMINDER
OVERDUE = TimelineKind.UPDATE_OVERDUE
BREACHED = TimelineKind.RESPONSE_BREACHED


def calendar(**spec: Any) -> BusinessCalendar:
    return build_calendar(BusinessHoursSpec.model_validate(spec))


LONDON_CAL = calendar(timezone="Europe/London")  # Monday-Friday 09:00-17:00


def at(text: str, zone: ZoneInfo = LONDON) -> datetime:
    """`2024-06-10 09:00` as that wall-clock time in `zone` (London unless said)."""
    return datetime.fromisoformat(text).replace(tzinfo=zone)


# June 2024: Friday 7, Saturday 8, Monday 10 ... Friday 14. London is on BST (UTC+1).
FRI = "2024-06-07"
SAT = "2024-06-08"
MON = "2024-06-10"
TUE = "2024-06-11"
WED = "2024-06-12"
THU = "2024-06-13"


def ctx(
    plan: str = "standard",
    *,
    business: BusinessCalendar = LONDON_CAL,
    policy: SlaPolicy | None = None,
) -> SlaContext:
    return SlaContext(business=business, plan=DEFAULT_PLANS[plan], policy=policy or SlaPolicy())


def opened(severity: int, opened_at: datetime, *, context: SlaContext) -> Incident:
    incident = Incident(
        id=42,
        client="acme",
        site="acme/shop",
        title="shop.acme.example is down",
        severity=Severity(severity),
        status=IncidentStatus.OPEN,
        opened_at=opened_at,
    )
    return start_clocks(incident, ctx=context)


# --- opening ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "severity", "opened_at", "calendar_name", "aim", "due"),
    [
        pytest.param(
            "standard", 1, at(f"{SAT} 03:00"), "business",
            at(f"{MON} 11:00"), at(f"{MON} 13:00"),
            id="sev1 standard saturday 03:00: due monday 13:00",
        ),
        pytest.param(
            "retainer", 1, at(f"{SAT} 03:00"), "24x7",
            at(f"{SAT} 05:00"), at(f"{SAT} 07:00"),
            id="sev1 retainer saturday 03:00: due saturday 07:00",
        ),
        pytest.param(
            "enterprise", 1, at(f"{SAT} 03:00"), "24x7",
            at(f"{SAT} 05:00"), at(f"{SAT} 07:00"),
            id="sev1 enterprise: 24x7",
        ),
        pytest.param(
            "enterprise", 2, at(f"{SAT} 03:00"), "24x7",
            at(f"{SAT} 11:00"), at(f"{SAT} 11:00"),
            id="sev2 enterprise saturday 03:00: due saturday 11:00",
        ),
        pytest.param(
            "retainer", 2, at(f"{SAT} 03:00"), "business",
            at(f"{MON} 17:00"), at(f"{MON} 17:00"),
            id="sev2 retainer: business hours",
        ),
        pytest.param(
            "standard", 2, at(f"{FRI} 16:00"), "business",
            at(f"{MON} 16:00"), at(f"{MON} 16:00"),
            id="sev2 standard friday 16:00: 1h friday + 7h monday",
        ),
        pytest.param(
            "standard", 3, at(f"{MON} 10:00"), "business",
            at(f"{THU} 10:00"), at("2024-06-18 10:00"),
            id="sev3 standard: aim 24 business hours, due 48",
        ),
        pytest.param(
            "enterprise", 3, at(f"{MON} 10:00"), "24x7",
            at(f"{TUE} 10:00"), at(f"{WED} 10:00"),
            id="sev3 enterprise: aim 24h, due 48h",
        ),
        pytest.param(
            "standard", 4, at(f"{MON} 10:00"), "business",
            at(f"{THU} 10:00"), at("2024-06-17 10:00"),
            id="sev4 standard: aim 3 working days, due 5",
        ),
        pytest.param(
            "enterprise", 4, at(f"{MON} 10:00"), "24x7",
            at(f"{THU} 10:00"), at("2024-06-15 10:00"),
            id="sev4 enterprise: 3 and 5 days of 24h",
        ),
    ],
)  # fmt: skip
def test_opening_clocks(
    plan: str,
    severity: int,
    opened_at: datetime,
    calendar_name: str,
    aim: datetime,
    due: datetime,
) -> None:
    incident = opened(severity, opened_at, context=ctx(plan))
    assert (incident.calendar, incident.response_aim_at, incident.response_due_at) == (
        calendar_name,
        aim,
        due,
    )
    assert incident.next_update_due_at is None
    assert incident.responded_at is None


def test_a_day_is_one_working_day_of_the_calendar() -> None:
    # 08:00-18:00 makes a working day 10 hours: Sev4's 3d is 30 business hours.
    weekdays = ("mon", "tue", "wed", "thu", "fri")
    long_days = calendar(timezone="Europe/London", hours=dict.fromkeys(weekdays, ["08:00-18:00"]))
    incident = opened(4, at(f"{MON} 10:00"), context=ctx(business=long_days))
    assert incident.response_aim_at == at(f"{THU} 10:00")


def test_the_aim_is_never_later_than_the_due_time() -> None:
    policy = SlaPolicy.model_validate({"severities": {1: {"response_due": "1h"}}})
    incident = opened(1, at(f"{MON} 10:00"), context=ctx(policy=policy))
    assert incident.response_aim_at == incident.response_due_at == at(f"{MON} 11:00")


def test_a_severity_without_response_targets_has_no_response_clock() -> None:
    policy = SlaPolicy.model_validate(
        {"severities": {4: {"response_aim": None, "response_due": None}}}
    )
    incident = opened(4, at(f"{MON} 10:00"), context=ctx(policy=policy))
    assert (incident.response_aim_at, incident.response_due_at) == (None, None)
    assert next_sla_wakeup(incident, ctx=ctx(policy=policy)) is None


def test_calendar_for_follows_the_plan() -> None:
    retainer = ctx("retainer")
    assert retainer.calendar_for(Severity.CRITICAL) == ("24x7", TWENTY_FOUR_SEVEN)
    assert retainer.calendar_for(Severity.MAJOR) == ("business", LONDON_CAL)


# --- response and cadence --------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "severity", "opened_at", "ack_at", "next_update"),
    [
        pytest.param("standard", 1, at(f"{MON} 09:00"), at(f"{MON} 10:00"), at(f"{MON} 14:00"),
                     id="sev1: every 4 business hours"),
        pytest.param("standard", 1, at(f"{MON} 09:00"), at(f"{MON} 16:00"), at(f"{TUE} 12:00"),
                     id="sev1: 1h monday + 3h tuesday"),
        pytest.param("retainer", 1, at(f"{SAT} 03:00"), at(f"{SAT} 04:00"), at(f"{SAT} 08:00"),
                     id="sev1 retainer: 4 hours on 24x7"),
        pytest.param("standard", 2, at(f"{MON} 09:00"), at(f"{TUE} 11:00"), at(f"{WED} 11:00"),
                     id="sev2: next working day, same time"),
        pytest.param("standard", 2, at(f"{FRI} 09:00"), at(f"{FRI} 15:00"), at(f"{MON} 15:00"),
                     id="sev2 friday: monday, same time"),
        pytest.param("standard", 3, at(f"{MON} 09:00"), at(f"{WED} 10:00"),
                     at("2024-06-19 10:00"), id="sev3: a working week"),
        pytest.param("enterprise", 3, at(f"{MON} 09:00"), at(f"{WED} 10:00"),
                     at("2024-06-19 10:00"), id="sev3 enterprise: 7 days"),
        pytest.param("standard", 4, at(f"{MON} 09:00"), at(f"{MON} 10:00"), None,
                     id="sev4: no cadence"),
    ],
)  # fmt: skip
def test_acknowledgement_starts_the_update_cadence(
    plan: str, severity: int, opened_at: datetime, ack_at: datetime, next_update: datetime | None
) -> None:
    context = ctx(plan)
    incident = record_response(
        opened(severity, opened_at, context=context), at=ack_at, by="alice", ctx=context
    )
    assert (incident.responded_at, incident.acknowledged_by) == (ack_at, "alice")
    assert incident.next_update_due_at == next_update


def test_each_client_update_restarts_the_cadence() -> None:
    context = ctx()
    incident = record_response(
        opened(1, at(f"{MON} 09:00"), context=context), at=at(f"{MON} 10:00"), by="a", ctx=context
    )
    assert incident.next_update_due_at == at(f"{MON} 14:00")
    incident = record_client_update(incident, at=at(f"{MON} 16:00"), ctx=context)
    assert incident.next_update_due_at == at(f"{TUE} 12:00")
    assert incident.last_update_at == at(f"{MON} 16:00")
    assert incident.responded_at == at(f"{MON} 10:00")  # the response stays the first action
    two_day = ctx(policy=SlaPolicy.model_validate({"severities": {1: {"update_every": "2d"}}}))
    incident = record_client_update(incident, at=at(f"{TUE} 12:00"), ctx=two_day)
    assert incident.next_update_due_at == at(f"{THU} 12:00")


def test_a_client_update_before_any_acknowledgement_is_the_response() -> None:
    context = ctx()
    incident = record_client_update(
        opened(2, at(f"{MON} 09:00"), context=context), at=at(f"{MON} 11:00"), ctx=context
    )
    assert (incident.responded_at, incident.last_update_at) == (at(f"{MON} 11:00"),) * 2
    assert incident.acknowledged_by is None
    assert incident.next_update_due_at == at(f"{TUE} 11:00")
    # An acknowledgement afterwards only records who took it; the cadence stays.
    acked = record_response(incident, at=at(f"{MON} 12:00"), by="bob", ctx=context)
    assert acked == replace(incident, acknowledged_by="bob")


def test_acknowledging_again_changes_nothing() -> None:
    context = ctx()
    first = record_response(
        opened(1, at(f"{MON} 09:00"), context=context), at=at(f"{MON} 10:00"), by="a", ctx=context
    )
    assert record_response(first, at=at(f"{MON} 11:00"), by="b", ctx=context) == first
    with pytest.raises(ValueError, match="must name the operator"):
        record_response(first, at=at(f"{MON} 11:00"), by=" ", ctx=context)


def test_severity_4_updates_never_fall_due() -> None:
    context = ctx()
    incident = record_response(
        opened(4, at(f"{MON} 09:00"), context=context), at=at(f"{MON} 10:00"), by="a", ctx=context
    )
    incident = record_client_update(incident, at=at(f"{MON} 11:00"), ctx=context)
    assert incident.next_update_due_at is None
    assert next_sla_wakeup(incident, ctx=context) is None


# --- escalation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("escalated_at", "aim", "due"),
    [
        pytest.param(at(f"{MON} 10:00"), at(f"{MON} 12:00"), at(f"{MON} 14:00"),
                     id="both new targets earlier"),
        pytest.param(at(f"{MON} 14:00"), at(f"{MON} 16:00"), at(f"{MON} 17:00"),
                     id="new aim earlier, old due earlier"),
        pytest.param(at(f"{MON} 16:00"), at(f"{MON} 17:00"), at(f"{MON} 17:00"),
                     id="both old targets earlier"),
    ],
)  # fmt: skip
def test_escalation_before_response_takes_the_earlier_response_times(
    escalated_at: datetime, aim: datetime, due: datetime
) -> None:
    context = ctx()
    incident = opened(2, at(f"{MON} 09:00"), context=context)  # aim = due = Monday 17:00
    escalated = escalate_clocks(
        replace(incident, severity=Severity.CRITICAL),
        previous_severity=Severity.MAJOR,
        at=escalated_at,
        ctx=context,
    )
    assert (escalated.response_aim_at, escalated.response_due_at) == (aim, due)
    assert escalated.next_update_due_at is None


@pytest.mark.parametrize(
    ("escalated_at", "next_update"),
    [
        pytest.param(at(f"{MON} 11:00"), at(f"{MON} 15:00"), id="new cadence earlier"),
        pytest.param(at(f"{MON} 16:30"), at(f"{TUE} 10:00"), id="old due earlier"),
    ],
)
def test_escalation_after_response_takes_the_earlier_update_due(
    escalated_at: datetime, next_update: datetime
) -> None:
    context = ctx()
    incident = record_response(
        opened(2, at(f"{MON} 09:00"), context=context), at=at(f"{MON} 10:00"), by="a", ctx=context
    )
    assert incident.next_update_due_at == at(f"{TUE} 10:00")
    escalated = escalate_clocks(
        replace(incident, severity=Severity.CRITICAL),
        previous_severity=Severity.MAJOR,
        at=escalated_at,
        ctx=context,
    )
    assert escalated.next_update_due_at == next_update
    # The response was on time; its clock is history and stays as it was.
    assert escalated.response_due_at == incident.response_due_at


def test_escalation_to_severity_1_on_a_retainer_switches_to_24x7() -> None:
    context = ctx("retainer")
    incident = opened(2, at(f"{SAT} 03:00"), context=context)
    assert (incident.calendar, incident.response_due_at) == ("business", at(f"{MON} 17:00"))
    escalated = escalate_clocks(
        replace(incident, severity=Severity.CRITICAL),
        previous_severity=Severity.MAJOR,
        at=at(f"{SAT} 05:00"),
        ctx=context,
    )
    assert escalated.calendar == "24x7"
    assert (escalated.response_aim_at, escalated.response_due_at) == (
        at(f"{SAT} 07:00"),
        at(f"{SAT} 09:00"),
    )
    # After the response the cadence runs around the clock too: Monday 20:00 + 4h.
    responded = record_response(incident, at=at(f"{MON} 10:00"), by="a", ctx=context)
    evening = escalate_clocks(
        replace(responded, severity=Severity.CRITICAL),
        previous_severity=Severity.MAJOR,
        at=at(f"{MON} 20:00"),
        ctx=context,
    )
    assert (evening.calendar, evening.next_update_due_at) == ("24x7", at(f"{TUE} 00:00"))


def test_escalation_from_a_severity_without_cadence_starts_one() -> None:
    context = ctx()
    incident = record_response(
        opened(4, at(f"{MON} 09:00"), context=context), at=at(f"{MON} 10:00"), by="a", ctx=context
    )
    escalated = escalate_clocks(
        replace(incident, severity=Severity.MODERATE),
        previous_severity=Severity.LOW,
        at=at(f"{TUE} 10:00"),
        ctx=context,
    )
    assert escalated.next_update_due_at == at("2024-06-18 10:00")  # a working week


def test_escalation_that_is_no_rise_changes_nothing() -> None:
    context = ctx()
    incident = opened(2, at(f"{MON} 09:00"), context=context)
    same = escalate_clocks(
        incident, previous_severity=Severity.MAJOR, at=at(f"{MON} 10:00"), ctx=context
    )
    assert same == incident


# --- reminders and breaches ------------------------------------------------------------


def tick(
    incident: Incident, now: datetime, context: SlaContext
) -> tuple[Incident, list[TimelineKind]]:
    """due_sla_events, checking that next_sla_wakeup predicted it."""
    wakeup = next_sla_wakeup(incident, ctx=context)
    after, events = due_sla_events(incident, now=now, ctx=context)
    assert bool(events) == (wakeup is not None and wakeup <= now)
    for event in events:
        assert event.mark in after.sla_marks and event.mark not in incident.sla_marks
    return after, [event.kind for event in events]


def test_update_reminder_and_overdue_are_recorded_once_per_due_time() -> None:
    context = ctx()
    incident = record_response(
        opened(1, at(f"{MON} 09:00"), context=context), at=at(f"{MON} 10:00"), by="a", ctx=context
    )
    due = at(f"{MON} 14:00")
    assert next_sla_wakeup(incident, ctx=context) == at(f"{MON} 13:30")
    for now, kinds in [
        (at(f"{MON} 13:29"), []),
        (at(f"{MON} 13:30"), [REMINDER]),
        (at(f"{MON} 13:50"), []),
        (at(f"{MON} 14:00"), [OVERDUE]),
        (at(f"{MON} 16:00"), []),
    ]:
        incident, fired = tick(incident, now, context)
        assert fired == kinds, now
    assert incident.sla_marks == {reminder_mark(due), overdue_mark(due)}
    assert next_sla_wakeup(incident, ctx=context) is None

    # A new due time gets its own reminder and overdue notice.
    incident = record_client_update(incident, at=at(f"{MON} 16:00"), ctx=context)
    assert next_sla_wakeup(incident, ctx=context) == at(f"{TUE} 11:30")
    for now, kinds in [
        (at(f"{TUE} 11:29"), []),
        (at(f"{TUE} 11:30"), [REMINDER]),
        (at(f"{TUE} 12:00"), [OVERDUE]),
        (at(f"{TUE} 12:01"), []),
    ]:
        incident, fired = tick(incident, now, context)
        assert fired == kinds, now
    assert overdue_mark(at(f"{TUE} 12:00")) in incident.sla_marks


def test_event_messages_read_in_the_client_zone() -> None:
    context = ctx()
    incident = record_response(
        opened(1, at(f"{MON} 09:00"), context=context), at=at(f"{MON} 10:00"), by="a", ctx=context
    )
    incident, [reminder] = due_sla_events(incident, now=at(f"{MON} 13:30"), ctx=context)
    assert reminder.message == "Client update due Mon 10 Jun 14:00 BST (in 30 min)"
    assert reminder.mark == "update_reminder@2024-06-10T13:00:00Z"
    assert reminder.due_at == at(f"{MON} 14:00")
    _, [overdue] = due_sla_events(incident, now=at(f"{MON} 14:00"), ctx=context)
    assert overdue.message == "Client update overdue: it was due Mon 10 Jun 14:00 BST"
    assert overdue.mark == "update_overdue@2024-06-10T13:00:00Z"


def test_response_breach_is_recorded_once() -> None:
    context = ctx()
    incident = opened(1, at(f"{MON} 09:00"), context=context)
    assert next_sla_wakeup(incident, ctx=context) == at(f"{MON} 13:00")
    incident, fired = tick(incident, at(f"{MON} 12:59"), context)
    assert fired == []
    incident, events = due_sla_events(incident, now=at(f"{MON} 13:00"), ctx=context)
    assert [(e.kind, e.mark, e.due_at) for e in events] == [
        (BREACHED, "response_breached", at(f"{MON} 13:00"))
    ]
    assert events[0].message == (
        "Response target breached: nobody has responded; it was due Mon 10 Jun 13:00 BST"
    )
    assert next_sla_wakeup(incident, ctx=context) is None
    incident, fired = tick(incident, at(f"{MON} 15:00"), context)
    assert fired == []
    # A late response starts the cadence; the breach is not repeated.
    incident = record_response(incident, at=at(f"{MON} 15:30"), by="a", ctx=context)
    assert incident.next_update_due_at == at(f"{TUE} 11:30")
    incident, fired = tick(incident, at(f"{TUE} 11:00"), context)
    assert fired == [REMINDER]


def test_a_late_tick_sends_the_overdue_notice_without_a_stale_reminder() -> None:
    context = ctx()
    incident = record_response(
        opened(1, at(f"{MON} 09:00"), context=context), at=at(f"{MON} 10:00"), by="a", ctx=context
    )
    incident, fired = tick(incident, at(f"{MON} 14:05"), context)
    assert fired == [OVERDUE]
    assert reminder_mark(at(f"{MON} 14:00")) in incident.sla_marks
    assert next_sla_wakeup(incident, ctx=context) is None


def test_remind_before_zero_sends_only_the_overdue_notice() -> None:
    context = ctx(policy=SlaPolicy.model_validate({"remind_before": "0m"}))
    incident = record_response(
        opened(1, at(f"{MON} 09:00"), context=context), at=at(f"{MON} 10:00"), by="a", ctx=context
    )
    assert next_sla_wakeup(incident, ctx=context) == at(f"{MON} 14:00")
    incident, fired = tick(incident, at(f"{MON} 13:59"), context)
    assert fired == []
    incident, fired = tick(incident, at(f"{MON} 14:00"), context)
    assert fired == [OVERDUE]


def test_remind_before_counts_in_wall_clock_time() -> None:
    # An update at Monday 13:15 falls due Tuesday 09:15 (3h45 on Monday, 15 min on Tuesday);
    # the reminder comes 30 wall-clock minutes before, at 08:45, before the desk opens.
    context = ctx()
    incident = record_response(
        opened(1, at(f"{MON} 09:00"), context=context), at=at(f"{MON} 10:00"), by="a", ctx=context
    )
    incident = record_client_update(incident, at=at(f"{MON} 13:15"), ctx=context)
    assert incident.next_update_due_at == at(f"{TUE} 09:15")
    assert next_sla_wakeup(incident, ctx=context) == at(f"{TUE} 08:45")


def test_a_resolved_incident_has_no_reminders_or_breaches() -> None:
    context = ctx()
    responded = record_response(
        opened(1, at(f"{MON} 09:00"), context=context), at=at(f"{MON} 10:00"), by="a", ctx=context
    )
    unanswered = opened(1, at(f"{MON} 09:00"), context=context)
    for incident in (responded, unanswered):
        resolved = replace(incident, status=IncidentStatus.RESOLVED, resolved_at=at(f"{MON} 11:00"))
        assert due_sla_events(resolved, now=at(f"{WED} 09:00"), ctx=context) == (resolved, [])
        assert next_sla_wakeup(resolved, ctx=context) is None


def test_due_sla_events_refuses_a_naive_now() -> None:
    context = ctx()
    incident = opened(1, at(f"{MON} 09:00"), context=context)
    with pytest.raises(ValueError, match="timezone-aware"):
        due_sla_events(incident, now=datetime(2024, 6, 10, 14), ctx=context)


# --- on-call ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "severity", "opened_at", "notify_at"),
    [
        pytest.param("standard", 1, at(f"{SAT} 03:00"), at(f"{SAT} 03:00"),
                     id="sev1 pages at once, day or night"),
        pytest.param("standard", 2, at(f"{SAT} 03:00"), at(f"{MON} 09:00"),
                     id="sev2 at night: the next opening"),
        pytest.param("enterprise", 2, at(f"{SAT} 03:00"), at(f"{SAT} 03:00"),
                     id="a 24x7 clock: told at once, before it can run out unseen"),
        pytest.param("standard", 3, at(f"{MON} 10:00"), at(f"{MON} 10:00"),
                     id="in hours: at once"),
    ],
)  # fmt: skip
def test_oncall_notification_time(
    plan: str, severity: int, opened_at: datetime, notify_at: datetime
) -> None:
    context = ctx(plan)
    incident = opened(severity, opened_at, context=context)
    assert oncall_notify_at(incident, ctx=context) == notify_at
    told = replace(incident, oncall_notified_at=notify_at)
    assert oncall_notify_at(told, ctx=context) is None
    resolved = replace(incident, status=IncidentStatus.RESOLVED)
    assert oncall_notify_at(resolved, ctx=context) is None


# --- `monitor sla` ---------------------------------------------------------------------

BERLIN_CAL = calendar(timezone="Europe/Berlin")
NEW_YORK_CAL = calendar(timezone="America/New_York")
LONDON_ENGLAND = calendar(
    timezone="Europe/London", holidays={"country": "GB", "subdivision": "ENG"}
)


def expected(
    calendar_name: str, aim: str, due: str, next_update: str | None
) -> dict[str, str | None]:
    return {
        "calendar": calendar_name,
        "response_aim_at": aim,
        "response_due_at": due,
        "next_update_due_at": next_update,
    }


@pytest.mark.parametrize(
    ("business", "plan", "severity", "opened_at", "output"),
    [
        pytest.param(
            LONDON_CAL, "standard", 1, at(f"{SAT} 03:00"),
            expected("business", "2024-06-10T10:00:00Z", "2024-06-10T12:00:00Z",
                     "2024-06-10T12:00:00Z"),
            id="london sev1 standard saturday night",
        ),
        pytest.param(
            LONDON_CAL, "retainer", 1, at(f"{SAT} 03:00"),
            expected("24x7", "2024-06-08T04:00:00Z", "2024-06-08T06:00:00Z",
                     "2024-06-08T06:00:00Z"),
            id="london sev1 retainer saturday night",
        ),
        pytest.param(
            LONDON_CAL, "standard", 4, at(f"{MON} 10:00"),
            expected("business", "2024-06-13T09:00:00Z", "2024-06-17T09:00:00Z", None),
            id="sev4: no cadence",
        ),
        pytest.param(
            LONDON_ENGLAND, "standard", 1, at("2024-05-25 03:00"),
            expected("business", "2024-05-28T10:00:00Z", "2024-05-28T12:00:00Z",
                     "2024-05-28T12:00:00Z"),
            id="london: spring bank holiday monday skipped",
        ),
        pytest.param(
            # Clocks go forward on Sunday 31 March: Friday is CET, Monday CEST.
            BERLIN_CAL, "standard", 1, at("2024-03-29 16:00", BERLIN),
            expected("business", "2024-04-01T08:00:00Z", "2024-04-01T10:00:00Z",
                     "2024-04-01T10:00:00Z"),
            id="berlin spring forward: sev1 friday 16:00",
        ),
        pytest.param(
            # 24x7 counts elapsed time: 8h after 22:00 CET is 07:00 CEST on the wall.
            BERLIN_CAL, "enterprise", 2, at("2024-03-30 22:00", BERLIN),
            expected("24x7", "2024-03-31T05:00:00Z", "2024-03-31T05:00:00Z",
                     "2024-03-31T21:00:00Z"),
            id="berlin spring forward: sev2 enterprise across the night",
        ),
        pytest.param(
            # Clocks go back on Sunday 27 October: Friday is CEST, the next week CET.
            BERLIN_CAL, "standard", 3, at("2024-10-25 13:00", BERLIN),
            expected("business", "2024-10-30T12:00:00Z", "2024-11-04T12:00:00Z",
                     "2024-11-01T12:00:00Z"),
            id="berlin fall back: sev3 friday 13:00",
        ),
        pytest.param(
            # Clocks go forward on Sunday 10 March: Friday is EST, Monday EDT.
            NEW_YORK_CAL, "standard", 2, at("2024-03-08 16:00", NEW_YORK),
            expected("business", "2024-03-11T20:00:00Z", "2024-03-11T20:00:00Z",
                     "2024-03-11T20:00:00Z"),
            id="new york spring forward: sev2 friday 16:00",
        ),
        pytest.param(
            # Clocks go back on Sunday 3 November: Friday is EDT, Monday EST.
            NEW_YORK_CAL, "standard", 2, at("2024-11-01 16:00", NEW_YORK),
            expected("business", "2024-11-04T21:00:00Z", "2024-11-04T21:00:00Z",
                     "2024-11-04T21:00:00Z"),
            id="new york fall back: sev2 friday 16:00",
        ),
        pytest.param(
            # Opened in the repeated hour's first pass (EDT); 24x7 ignores the wall clock.
            NEW_YORK_CAL, "retainer", 1, at("2024-11-03 01:30", NEW_YORK),
            expected("24x7", "2024-11-03T07:30:00Z", "2024-11-03T09:30:00Z",
                     "2024-11-03T09:30:00Z"),
            id="new york fall back: sev1 retainer in the repeated hour",
        ),
    ],
)  # fmt: skip
def test_preview(
    business: BusinessCalendar,
    plan: str,
    severity: int,
    opened_at: datetime,
    output: dict[str, str | None],
) -> None:
    context = ctx(plan, business=business)
    assert preview(opened_at=opened_at, severity=Severity(severity), ctx=context) == output


def test_preview_json_is_stable() -> None:
    output = preview(opened_at=at(f"{SAT} 03:00"), severity=Severity.MODERATE, ctx=ctx())
    assert json.dumps(output) == (
        '{"calendar": "business", "response_aim_at": "2024-06-12T16:00:00Z", '
        '"response_due_at": "2024-06-17T16:00:00Z", "next_update_due_at": "2024-06-14T16:00:00Z"}'
    )


# --- the YAML --------------------------------------------------------------------------


def policy(text: str) -> SlaPolicy:
    return SlaPolicy.model_validate(yaml.safe_load(text) or {})


def targets_text(targets: SeverityTargets) -> tuple[str | None, ...]:
    return tuple(
        None if value is None else str(value)
        for value in (targets.response_aim, targets.response_due, targets.update_every)
    )


@pytest.mark.parametrize(
    ("severity", "aim", "due", "cadence"),
    [
        (1, "2h", "4h", "4h"),
        (2, "8h", "8h", "1d"),
        (3, "24h", "48h", "1w"),
        (4, "3d", "5d", None),
    ],
)
def test_defaults_are_the_service_level_page(
    severity: int, aim: str, due: str, cadence: str | None
) -> None:
    assert targets_text(policy("").targets(Severity(severity))) == (aim, due, cadence)
    assert policy("").remind_before == timedelta(minutes=30)


def test_a_partial_override_keeps_every_other_default() -> None:
    loaded = policy(
        """
        severities:
          2: {update_every: 2d}
          "3": {update_every: null}
        remind_before: 10m
        """
    )
    assert targets_text(loaded.targets(Severity.MAJOR)) == ("8h", "8h", "2d")
    assert targets_text(loaded.targets(Severity.MODERATE)) == ("24h", "48h", None)
    for kept in (Severity.CRITICAL, Severity.LOW):
        assert loaded.targets(kept) == DEFAULT_TARGETS[kept]
    assert loaded.remind_before == timedelta(minutes=10)
    # What it writes back reads the same.
    dumped = loaded.model_dump(mode="json")
    assert dumped["remind_before"] == "10m"
    assert dumped["severities"]["2"] == {
        "response_aim": "8h",
        "response_due": "8h",
        "update_every": "2d",
    }
    assert SlaPolicy.model_validate(dumped) == loaded


def test_a_targets_object_in_code_replaces_its_severity() -> None:
    only_due = SeverityTargets.model_validate({"response_due": "1h"})
    built = SlaPolicy(severities={Severity.MAJOR: only_due})
    assert built.targets(Severity.MAJOR) == only_due
    assert built.targets(Severity.CRITICAL) == DEFAULT_TARGETS[Severity.CRITICAL]


@pytest.mark.parametrize(
    ("text", "loc", "message"),
    [
        pytest.param(
            "severities: {1: {response_due: 4 hours}}",
            ("severities", 1, "response_due"),
            "must be a business duration such as 30m, 4h, 1d or 1w (got '4 hours')",
            id="bad duration",
        ),
        pytest.param(
            "severities: {1: {respond_due: 4h}}",
            ("severities", 1, "respond_due"),
            "Extra inputs are not permitted",
            id="unknown target",
        ),
        pytest.param(
            "sla: {}", ("sla",), "Extra inputs are not permitted", id="unknown top-level key"
        ),
        pytest.param(
            "severities: {7: {response_due: 4h}}",
            ("severities", 7, "[key]"),
            "Input should be 1, 2, 3 or 4",
            id="severity 7",
        ),
        pytest.param(
            "severities: {2: {update_every: 0d}}",
            ("severities", 2, "update_every"),
            "must be longer than 0, e.g. 4h (use null for no cadence)",
            id="zero cadence",
        ),
        pytest.param(
            "remind_before: 1d",
            ("remind_before",),
            "must be a wall-clock duration in s, m or h such as 10m, 30m or 2h (got '1d')",
            id="remind_before in days",
        ),
    ],
)
def test_bad_policies_say_where_and_what(
    text: str, loc: tuple[str | int, ...], message: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        policy(text)
    [error] = raised.value.errors()
    assert error["loc"] == loc
    assert message in error["msg"]


def test_plans() -> None:
    assert DEFAULT_PLANS["standard"].around_the_clock == ()
    assert DEFAULT_PLANS["retainer"].around_the_clock == (Severity.CRITICAL,)
    assert set(DEFAULT_PLANS["enterprise"].around_the_clock) == set(Severity)
    custom = PlanSpec.model_validate(yaml.safe_load("around_the_clock: [1, 2]"))
    assert custom.around_the_clock == (Severity.CRITICAL, Severity.MAJOR)
    with pytest.raises(ValidationError, match="Input should be 1, 2, 3 or 4"):
        PlanSpec.model_validate({"around_the_clock": [5]})
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        PlanSpec.model_validate({"covers": [1]})


def test_json_schema_accepts_what_the_model_accepts() -> None:
    import jsonschema

    schema = SlaPolicy.model_json_schema()
    assert schema["properties"]["remind_before"]["default"] == "30m"
    example = {"severities": {"2": {"update_every": "2d"}}, "remind_before": "10m"}
    jsonschema.validate(example, schema)
    assert policy(json.dumps(example)).targets(Severity.MAJOR).update_every is not None
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"severities": {"2": {"update_every": "2 days"}}}, schema)
