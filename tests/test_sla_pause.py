"""Maintenance pauses SLA clocks: the arithmetic (tables of fixed datetimes, business-hours
aware) and the flow step that records a window's start and end on the timeline."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from incidents.calendar_spec import BusinessHoursSpec, build_calendar
from incidents.flow import after_tick, during_maintenance, next_wakeup
from incidents.model import Incident, IncidentStatus, TimelineKind
from incidents.severity import Severity
from incidents.sla import (
    DEFAULT_PLANS,
    SlaContext,
    due_sla_events,
    escalate_clocks,
    pause_clocks,
    paused_time,
    record_client_update,
    record_response,
    resume_clocks,
    start_clocks,
)

LONDON = ZoneInfo("Europe/London")
STANDARD = SlaContext(
    business=build_calendar(BusinessHoursSpec.model_validate({"timezone": "Europe/London"})),
    plan=DEFAULT_PLANS["standard"],
)
RETAINER = SlaContext(business=STANDARD.business, plan=DEFAULT_PLANS["retainer"])
# June 2024, London on BST: Monday 10, Tuesday 11.
MON = "2024-06-10"
TUE = "2024-06-11"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=LONDON)


def opened(opened_at: datetime, *, ctx: SlaContext = STANDARD, severity: int = 1) -> Incident:
    incident = Incident(
        id=7,
        client="acme",
        site="acme/shop",
        title="shop.acme.example is down",
        severity=Severity(severity),
        status=IncidentStatus.OPEN,
        opened_at=opened_at,
    )
    return start_clocks(incident, ctx=ctx)


def acked(opened_at: str, ack_at: str, *, ctx: SlaContext = STANDARD) -> Incident:
    """Acknowledged at `ack_at`; on-call was told at the opening (nothing else pending)."""
    incident = replace(opened(at(opened_at), ctx=ctx), oncall_notified_at=at(opened_at))
    return record_response(incident, at=at(ack_at), by="alice", ctx=ctx)


def paused_between(incident: Incident, start: str, end: str, *, ctx: SlaContext) -> Incident:
    paused = pause_clocks(incident, at=at(start), until=at(end))
    return resume_clocks(paused, at=at(end), ctx=ctx)


# (id, plan, opened, acknowledged, window start, window end, update due before, after)
UPDATE_CASES: list[Any] = [
    pytest.param(
        STANDARD,
        f"{MON} 09:00",
        f"{MON} 10:00",
        f"{MON} 11:00",
        f"{MON} 13:00",
        f"{MON} 14:00",
        f"{MON} 16:00",
        id="2 hours inside business hours move the due time by 2 hours",
    ),
    pytest.param(
        STANDARD,
        f"{MON} 09:00",
        f"{MON} 12:00",
        f"{MON} 13:00",
        f"{MON} 15:00",
        f"{MON} 16:00",
        f"{TUE} 10:00",
        id="moved past the close: 1 hour on Monday, 1 on Tuesday",
    ),
    pytest.param(
        STANDARD,
        f"{MON} 09:00",
        f"{MON} 16:00",
        f"{MON} 18:00",
        f"{MON} 20:00",
        f"{TUE} 12:00",
        f"{TUE} 12:00",
        id="a window wholly outside business hours moves nothing",
    ),
    pytest.param(
        STANDARD,
        f"{MON} 09:00",
        f"{MON} 16:00",
        f"{MON} 16:30",
        f"{MON} 18:30",
        f"{TUE} 12:00",
        f"{TUE} 12:30",
        id="only the business half hour of a window across the close counts",
    ),
    pytest.param(
        STANDARD,
        f"{MON} 09:00",
        f"{MON} 16:00",
        f"{TUE} 08:00",
        f"{TUE} 10:00",
        f"{TUE} 12:00",
        f"{TUE} 13:00",
        id="a window across the opening counts from the opening",
    ),
    pytest.param(
        RETAINER,
        f"{MON} 09:00",
        f"{MON} 16:00",
        f"{MON} 18:00",
        f"{MON} 20:00",
        f"{MON} 20:00",
        f"{MON} 22:00",
        id="24x7 clocks move by the wall-clock time",
    ),
]


@pytest.mark.parametrize(
    ("ctx", "opened_at", "ack_at", "start", "end", "due_before", "due_after"), UPDATE_CASES
)
def test_a_pause_moves_the_update_due_time_by_the_paused_business_time(
    ctx: SlaContext,
    opened_at: str,
    ack_at: str,
    start: str,
    end: str,
    due_before: str,
    due_after: str,
) -> None:
    incident = acked(opened_at, ack_at, ctx=ctx)
    assert incident.next_update_due_at == at(due_before)
    resumed = paused_between(incident, start, end, ctx=ctx)
    assert resumed.next_update_due_at == at(due_after)
    assert resumed.paused_since is None and resumed.paused_until is None
    # A response already given keeps its times: only running clocks move.
    assert (resumed.response_aim_at, resumed.response_due_at) == (
        incident.response_aim_at,
        incident.response_due_at,
    )


def test_a_pause_before_the_response_moves_both_response_times() -> None:
    incident = opened(at(f"{MON} 09:00"))
    assert (incident.response_aim_at, incident.response_due_at) == (
        at(f"{MON} 11:00"),
        at(f"{MON} 13:00"),
    )
    resumed = paused_between(incident, f"{MON} 09:30", f"{MON} 11:30", ctx=STANDARD)
    assert (resumed.response_aim_at, resumed.response_due_at) == (
        at(f"{MON} 13:00"),
        at(f"{MON} 15:00"),
    )
    assert resumed.next_update_due_at is None


def test_paused_time_counts_in_the_incidents_calendar() -> None:
    incident = opened(at(f"{MON} 09:00"))
    assert paused_time(
        incident, start=at(f"{MON} 16:00"), end=at(f"{TUE} 10:00"), ctx=STANDARD
    ) == timedelta(hours=2)
    assert paused_time(
        incident, start=at(f"{MON} 16:00"), end=at(f"{TUE} 10:00"), ctx=RETAINER
    ) == timedelta(hours=18)


def test_no_event_fires_while_paused_and_an_update_during_the_pause_counts_from_itself() -> None:
    incident = acked(f"{MON} 09:00", f"{MON} 10:00")  # update due 14:00, reminder 13:30
    paused = pause_clocks(incident, at=at(f"{MON} 13:00"), until=at(f"{MON} 15:00"))
    assert due_sla_events(paused, now=at(f"{MON} 14:30"), ctx=STANDARD) == (paused, [])
    # The removal of the guard would fire both here: check the same time unpaused.
    assert [e.kind for e in due_sla_events(incident, now=at(f"{MON} 14:30"), ctx=STANDARD)[1]]

    # An update at 14:00 starts a new cadence (due 18:00 -> Tuesday 10:00); only the hour of
    # pause after it moves that.
    updated = record_client_update(paused, at=at(f"{MON} 14:00"), ctx=STANDARD)
    assert updated.paused_since == at(f"{MON} 14:00")
    resumed = resume_clocks(updated, at=at(f"{MON} 15:00"), ctx=STANDARD)
    assert resumed.next_update_due_at == at(f"{TUE} 11:00")


def test_overlapping_windows_extend_the_pause() -> None:
    incident = acked(f"{MON} 09:00", f"{MON} 10:00")
    paused = pause_clocks(incident, at=at(f"{MON} 11:00"), until=at(f"{MON} 12:00"))
    longer = pause_clocks(paused, at=at(f"{MON} 11:30"), until=at(f"{MON} 13:00"))
    assert (longer.paused_since, longer.paused_until) == (at(f"{MON} 11:00"), at(f"{MON} 13:00"))
    assert pause_clocks(longer, at=at(f"{MON} 11:40"), until=at(f"{MON} 12:30")) == longer


# --- the flow step: timeline entries, reminders --------------------------------------------


def test_a_two_hour_window_pauses_records_its_start_and_end_and_silences_reminders() -> None:
    incident = acked(f"{MON} 09:00", f"{MON} 10:00")  # update due 14:00, reminder 13:30
    window = (at(f"{MON} 13:00"), at(f"{MON} 15:00"))

    # The tick after the window began: paused from the window's start.
    change = during_maintenance(incident, now=at(f"{MON} 13:00:05"), window=window, sla=STANDARD)
    assert change is not None
    [started] = change.timeline
    assert started.kind is TimelineKind.MAINTENANCE_STARTED and started.at == window[0]
    assert "paused" in started.message and "15:00" in started.message
    paused = change.incident
    assert paused.paused_since == window[0] and paused.paused_until == window[1]
    assert during_maintenance(paused, now=at(f"{MON} 14:00"), window=window, sla=STANDARD) is None

    # Inside the window nothing falls due: no reminder at 13:30, no overdue at 14:00.
    assert next_wakeup(paused, sla=STANDARD) == window[1]
    for now in ("13:30", "14:00", "14:59"):
        assert after_tick(paused, now=at(f"{MON} {now}"), sla=STANDARD) is None

    # A tick a little late after the end: the pause ends at the window's end, due +2h.
    change = during_maintenance(paused, now=at(f"{MON} 15:00:07"), window=None, sla=STANDARD)
    assert change is not None
    [ended] = change.timeline
    assert ended.kind is TimelineKind.MAINTENANCE_ENDED and ended.at == window[1]
    assert "2h 00m" in ended.message
    assert ended.evidence == {"paused_seconds": 7200}
    resumed = change.incident
    assert resumed.next_update_due_at == at(f"{MON} 16:00")
    assert next_wakeup(resumed, sla=STANDARD) == at(f"{MON} 15:30")  # the moved reminder


def test_a_window_cancelled_early_ends_the_pause_when_it_is_noticed() -> None:
    incident = acked(f"{MON} 09:00", f"{MON} 10:00")
    paused = pause_clocks(incident, at=at(f"{MON} 11:00"), until=at(f"{MON} 13:00"))
    change = during_maintenance(paused, now=at(f"{MON} 11:30"), window=None, sla=STANDARD)
    assert change is not None and change.timeline[0].at == at(f"{MON} 11:30")
    assert change.incident.next_update_due_at == at(f"{MON} 14:30")


def test_an_incident_opened_during_a_window_is_paused_from_its_opening() -> None:
    incident = opened(at(f"{MON} 11:00"))
    window = (at(f"{MON} 10:00"), at(f"{MON} 12:00"))
    change = during_maintenance(incident, now=at(f"{MON} 11:00"), window=window, sla=STANDARD)
    assert change is not None and change.incident.paused_since == at(f"{MON} 11:00")
    resumed = during_maintenance(change.incident, now=at(f"{MON} 12:00"), window=None, sla=STANDARD)
    assert resumed is not None
    assert resumed.incident.response_due_at == at(f"{MON} 16:00")  # 15:00 + 1 hour paused


def test_a_resolved_incident_takes_no_pause() -> None:
    incident = opened(at(f"{MON} 09:00"))
    resolved = replace(incident, status=IncidentStatus.RESOLVED, resolved_at=at(f"{MON} 10:00"))
    window = (at(f"{MON} 10:00"), at(f"{MON} 12:00"))
    assert during_maintenance(resolved, now=at(f"{MON} 11:00"), window=window, sla=STANDARD) is None


def test_an_escalation_during_a_pause_counts_its_targets_from_the_pause_end() -> None:
    incident = opened(at(f"{MON} 09:00"), severity=2)  # Sev2: response due in 8 business hours
    paused = pause_clocks(incident, at=at(f"{MON} 10:00"), until=at(f"{MON} 12:00"))
    escalated = escalate_clocks(
        replace(paused, severity=Severity.CRITICAL),
        previous_severity=Severity.MAJOR,
        at=at(f"{MON} 11:00"),
        ctx=STANDARD,
    )
    resumed = resume_clocks(escalated, at=at(f"{MON} 12:00"), ctx=STANDARD)
    # Severity 1: aim 2h, due 4h, counted from the window's end at 12:00.
    assert (resumed.response_aim_at, resumed.response_due_at) == (
        at(f"{MON} 14:00"),
        at(f"{MON} 16:00"),
    )
