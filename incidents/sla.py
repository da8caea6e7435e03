"""SLA clocks of an incident: response targets, update cadence, reminders and breaches.

Pure: every function takes the time as an argument and returns a new `Incident`; the caller
writes it (and the timeline entries of any `SlaEvent`) in one transaction.

The rules (targets come from `SlaPolicy`, calendars from `SlaContext`):

- The clocks of an incident count in one calendar: the client's business calendar, or 24x7
  when the client's plan lists the incident's severity in `around_the_clock`.
- Opening (`start_clocks`): `response_aim_at` / `response_due_at` = opened_at + the
  severity's targets. The aim is never later than the due time (a severity with one target
  aims at its due time). No update is due before the response.
- Response = the first operator action: an acknowledgement (`record_response`) or a client
  update posted by a person (`record_client_update`; automatic emails are not responses).
  From then on `next_update_due_at` = the last client update (or the response) + cadence,
  None when the severity has no cadence.
- Escalation (`escalate_clocks`): the calendar is chosen again for the new severity; before
  the response both response times become min(old, escalated_at + new target), after it
  `next_update_due_at` becomes min(old, escalated_at + new cadence). Never relaxes a deadline.
- Events (`due_sla_events`), each recorded once through a mark in `incident.sla_marks`:
  RESPONSE_BREACHED at `response_due_at` while nobody has responded; UPDATE_REMINDER at
  `next_update_due_at - remind_before` (wall-clock time) and UPDATE_OVERDUE at
  `next_update_due_at`, once per due time, so a new due time brings its own pair. A reminder
  whose due time has already passed when it is first seen is marked but not sent: the
  overdue notice says more. A resolved incident has no more events.
- Maintenance (`pause_clocks`, `resume_clocks`): while a maintenance window of the site lasts
  the clocks are paused: no event fires (no reminder, no breach). When it ends, every due
  time still running (the response times before a response, the next update) moves by the
  time paused *counted in the incident's calendar*: two hours inside business hours move a
  due time by two business hours, a window wholly outside them moves nothing. A response or
  client update during the pause restarts the pause from it, since its cadence starts there;
  the targets of an escalation during the pause count from the pause's end.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final

from incidents.business_duration import BusinessDuration
from incidents.calendar import TWENTY_FOUR_SEVEN, BusinessCalendar, Calendar
from incidents.model import Incident, IncidentStatus, TimelineKind
from incidents.severity import Severity
from incidents.sla_policy import (
    DEFAULT_PLANS,
    DEFAULT_TARGETS,
    PlanSpec,
    SeverityTargets,
    SlaPolicy,
    WallDuration,
)
from incidents.wall_clock import to_naive_utc

__all__ = [
    "AROUND_THE_CLOCK",
    "BUSINESS",
    "DEFAULT_PLANS",
    "DEFAULT_TARGETS",
    "RESPONSE_BREACHED_MARK",
    "PlanSpec",
    "SeverityTargets",
    "SlaContext",
    "SlaEvent",
    "SlaPolicy",
    "WallDuration",
    "due_sla_events",
    "escalate_clocks",
    "format_utc",
    "next_sla_wakeup",
    "oncall_notify_at",
    "overdue_mark",
    "pause_clocks",
    "paused_time",
    "preview",
    "record_client_update",
    "record_response",
    "reminder_mark",
    "resume_clocks",
    "start_clocks",
    "human_time",
    "zone_of",
]

BUSINESS: Final = "business"
AROUND_THE_CLOCK: Final = "24x7"
RESPONSE_BREACHED_MARK: Final = "response_breached"
UTC_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"


def format_utc(moment: datetime) -> str:
    """`2024-06-10T12:00:00Z`: how clocks appear in `monitor sla`, marks and the API."""
    return moment.astimezone(UTC).strftime(UTC_FORMAT)


def reminder_mark(due: datetime) -> str:
    return f"update_reminder@{format_utc(due)}"


def overdue_mark(due: datetime) -> str:
    return f"update_overdue@{format_utc(due)}"


@dataclass(frozen=True, slots=True)
class SlaContext:
    """What an incident's clocks depend on besides the incident: its client's calendar,
    plan, and the SLA policy."""

    business: Calendar  # the client's business calendar
    plan: PlanSpec = field(default_factory=PlanSpec)
    policy: SlaPolicy = field(default_factory=SlaPolicy)

    def calendar_for(self, severity: Severity) -> tuple[str, Calendar]:
        """("24x7", TWENTY_FOUR_SEVEN) when the plan covers `severity` around the clock,
        else ("business", the client's calendar)."""
        if severity in self.plan.around_the_clock:
            return AROUND_THE_CLOCK, TWENTY_FOUR_SEVEN
        return BUSINESS, self.business


# --- clocks --------------------------------------------------------------------------------


def _after(cal: Calendar, start: datetime, duration: BusinessDuration | None) -> datetime | None:
    return None if duration is None else cal.add(start, duration)


def _earliest(old: datetime | None, new: datetime | None) -> datetime | None:
    if old is None:
        return new
    if new is None:
        return old
    return min(old, new)


def _response_times(
    cal: Calendar, start: datetime, targets: SeverityTargets
) -> tuple[datetime | None, datetime | None]:
    due = _after(cal, start, targets.response_due)
    aim = _after(cal, start, targets.response_aim)
    if due is not None:
        # An aim beyond the due time (say a YAML that shortened only response_due) would be
        # no aim at all; the due time is the latest one can sensibly aim for.
        aim = _earliest(aim, due)
    return aim, due


def start_clocks(incident: Incident, *, ctx: SlaContext) -> Incident:
    """The clocks of an incident that has just opened, counted from `incident.opened_at`."""
    name, cal = ctx.calendar_for(incident.severity)
    aim, due = _response_times(cal, incident.opened_at, ctx.policy.targets(incident.severity))
    return replace(
        incident,
        calendar=name,
        response_aim_at=aim,
        response_due_at=due,
        next_update_due_at=None,
    )


def escalate_clocks(
    incident: Incident, *, previous_severity: Severity, at: datetime, ctx: SlaContext
) -> Incident:
    """The clocks after the severity rose from `previous_severity` to `incident.severity`
    at `at`. Unchanged when the severity did not rise."""
    if incident.severity >= previous_severity:
        return incident
    name, cal = ctx.calendar_for(incident.severity)
    targets = ctx.policy.targets(incident.severity)
    # Paused by maintenance: the new targets count from the pause's start, so that moving
    # every due time by the whole pause when it ends makes them count from its end.
    at = at if incident.paused_since is None else min(at, incident.paused_since)
    if incident.responded_at is None:
        aim, due = _response_times(cal, at, targets)
        return replace(
            incident,
            calendar=name,
            response_aim_at=_earliest(incident.response_aim_at, aim),
            response_due_at=_earliest(incident.response_due_at, due),
        )
    return replace(
        incident,
        calendar=name,
        next_update_due_at=_earliest(
            incident.next_update_due_at, _after(cal, at, targets.update_every)
        ),
    )


def recompute_clocks(incident: Incident, *, ctx: SlaContext) -> Incident:
    """An open incident's due times counted again on `ctx` (its client's calendar or plan
    changed): the response from the opening, the next client update from the last one (or
    the response). Time paused by maintenance before now is not added back."""
    name, cal = ctx.calendar_for(incident.severity)
    targets = ctx.policy.targets(incident.severity)
    aim, due = _response_times(cal, incident.opened_at, targets)
    next_update = incident.next_update_due_at
    since = incident.last_update_at or incident.responded_at
    if since is not None and next_update is not None:
        next_update = _after(cal, since, targets.update_every)
    return replace(
        incident,
        calendar=name,
        response_aim_at=aim,
        response_due_at=due,
        next_update_due_at=next_update,
    )


def record_response(incident: Incident, *, at: datetime, by: str, ctx: SlaContext) -> Incident:
    """An operator acknowledged the incident at `at`.

    The first response starts the update cadence. Acknowledging again changes nothing (the
    first one to acknowledge keeps it); acknowledging after a client update already counted
    as the response only records who acknowledged.
    """
    if not by.strip():
        raise ValueError("an acknowledgement must name the operator (by is empty)")
    if incident.acknowledged_by is not None:
        return incident
    if incident.responded_at is not None:
        return replace(incident, acknowledged_by=by)
    name, cal = ctx.calendar_for(incident.severity)
    return replace(
        incident,
        calendar=name,
        responded_at=at,
        acknowledged_by=by,
        next_update_due_at=_after(cal, at, ctx.policy.targets(incident.severity).update_every),
        paused_since=_restarted_pause(incident, at),
    )


def record_client_update(incident: Incident, *, at: datetime, ctx: SlaContext) -> Incident:
    """A person posted a client update at `at`: it is the response if none came before,
    and the cadence starts again from it."""
    name, cal = ctx.calendar_for(incident.severity)
    return replace(
        incident,
        calendar=name,
        last_update_at=at,
        responded_at=at if incident.responded_at is None else incident.responded_at,
        next_update_due_at=_after(cal, at, ctx.policy.targets(incident.severity).update_every),
        paused_since=_restarted_pause(incident, at),
    )


def _restarted_pause(incident: Incident, at: datetime) -> datetime | None:
    # The new due time counts from `at`: only the pause after it may move it.
    return None if incident.paused_since is None else max(incident.paused_since, at)


# --- maintenance pauses --------------------------------------------------------------------


def pause_clocks(incident: Incident, *, at: datetime, until: datetime) -> Incident:
    """A maintenance window of the site, in force from `at` until `until`, pauses the clocks.
    Already paused: the pause lasts until the later end (overlapping windows)."""
    if not incident.is_open:
        return incident
    if incident.paused_since is None:
        return replace(incident, paused_since=at, paused_until=until)
    current = incident.paused_until
    return replace(incident, paused_until=until if current is None else max(current, until))


def resume_clocks(incident: Incident, *, at: datetime, ctx: SlaContext) -> Incident:
    """The pause ended at `at`: the running due times move by the time paused, counted in
    the calendar of the incident's severity. Not paused: unchanged."""
    since = incident.paused_since
    if since is None:
        return incident
    resumed = replace(incident, paused_since=None, paused_until=None)
    if not incident.is_open or at <= since:
        return resumed
    paused = paused_time(incident, start=since, end=at, ctx=ctx)

    def moved(due: datetime | None) -> datetime | None:
        if due is None or not paused:
            return due
        return ctx.calendar_for(incident.severity)[1].add_business_time(due, paused)

    if incident.responded_at is None:
        resumed = replace(
            resumed,
            response_aim_at=moved(incident.response_aim_at),
            response_due_at=moved(incident.response_due_at),
        )
    return replace(resumed, next_update_due_at=moved(incident.next_update_due_at))


def paused_time(
    incident: Incident, *, start: datetime, end: datetime, ctx: SlaContext
) -> timedelta:
    """How much clock time a pause from `start` to `end` takes off the incident's deadlines."""
    if end <= start:
        return timedelta(0)
    return ctx.calendar_for(incident.severity)[1].business_time_between(start, end)


def oncall_notify_at(incident: Incident, *, ctx: SlaContext) -> datetime | None:
    """When on-call should be told of `incident`; None once told, or when it is resolved.

    Severity 1 at once (its open time, so a caller sees it is due now), on every plan; so is
    any severity whose clock the plan runs around the clock (an enterprise Severity 2 opened
    on Friday night would otherwise breach before anyone heard of it). Other severities at
    once inside the client's business hours, else at their next opening.
    """
    if not incident.is_open or incident.oncall_notified_at is not None:
        return None
    if incident.severity is Severity.CRITICAL or incident.severity in ctx.plan.around_the_clock:
        return incident.opened_at
    return ctx.business.next_opening(incident.opened_at)


# --- reminders and breaches ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SlaEvent:
    """A reminder or breach to record on the timeline and tell on-call about."""

    kind: TimelineKind  # RESPONSE_BREACHED, UPDATE_REMINDER or UPDATE_OVERDUE
    mark: str  # added to incident.sla_marks, so it is recorded once
    due_at: datetime  # the deadline it is about
    message: str  # one line a person reads


@dataclass(frozen=True, slots=True)
class _Pending:
    fires_at: datetime
    kind: TimelineKind
    mark: str
    due_at: datetime


def _pending(incident: Incident, policy: SlaPolicy) -> list[_Pending]:
    """Events not yet marked, whenever they fire."""
    if incident.status is not IncidentStatus.OPEN or incident.paused_since is not None:
        return []  # resolved, or paused by maintenance: nothing falls due
    pending: list[_Pending] = []
    due = incident.response_due_at
    if (
        incident.responded_at is None
        and due is not None
        and RESPONSE_BREACHED_MARK not in incident.sla_marks
    ):
        pending.append(_Pending(due, TimelineKind.RESPONSE_BREACHED, RESPONSE_BREACHED_MARK, due))
    due = incident.next_update_due_at
    if due is not None and overdue_mark(due) not in incident.sla_marks:
        remind = reminder_mark(due)
        if policy.remind_before > timedelta(0) and remind not in incident.sla_marks:
            pending.append(
                _Pending(due - policy.remind_before, TimelineKind.UPDATE_REMINDER, remind, due)
            )
        pending.append(_Pending(due, TimelineKind.UPDATE_OVERDUE, overdue_mark(due), due))
    return pending


def due_sla_events(
    incident: Incident, *, now: datetime, ctx: SlaContext
) -> tuple[Incident, list[SlaEvent]]:
    """Reminders and breaches due by `now` and not recorded yet, and the incident with
    their marks added (the same incident when there are none)."""
    to_naive_utc(now, name="now")  # a naive `now` would compare wrongly (or not at all)
    fired = [p for p in _pending(incident, ctx.policy) if now >= p.fires_at]
    if not fired:
        return incident, []
    overdue = {p.due_at for p in fired if p.kind is TimelineKind.UPDATE_OVERDUE}
    zone = zone_of(ctx)
    events = [
        SlaEvent(p.kind, p.mark, p.due_at, _message(p, now=now, zone=zone))
        for p in fired
        if not (p.kind is TimelineKind.UPDATE_REMINDER and p.due_at in overdue)
    ]
    marks = frozenset(p.mark for p in fired)
    return replace(incident, sla_marks=incident.sla_marks | marks), events


def next_sla_wakeup(incident: Incident, *, ctx: SlaContext) -> datetime | None:
    """The earliest instant at which `due_sla_events` would return something; None when
    nothing is pending. It may be in the past: then something is due now."""
    return min((p.fires_at for p in _pending(incident, ctx.policy)), default=None)


def zone_of(ctx: SlaContext) -> tzinfo:
    # People read times in the client's zone; a calendar without one (24x7) reads as UTC.
    return ctx.business.timezone if isinstance(ctx.business, BusinessCalendar) else UTC


def human_time(moment: datetime, zone: tzinfo) -> str:
    return moment.astimezone(zone).strftime("%a %d %b %H:%M %Z")


def _left(delta: timedelta) -> str:
    minutes = max(0, -(-delta // timedelta(minutes=1)))  # rounded up: "in 30 min", not 29
    hours, minutes = divmod(minutes, 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours}h {minutes:02d}m" if minutes else f"{hours}h"


def _message(pending: _Pending, *, now: datetime, zone: tzinfo) -> str:
    due = human_time(pending.due_at, zone)
    if pending.kind is TimelineKind.RESPONSE_BREACHED:
        return f"Response target breached: nobody has responded; it was due {due}"
    if pending.kind is TimelineKind.UPDATE_REMINDER:
        return f"Client update due {due} (in {_left(pending.due_at - now)})"
    return f"Client update overdue: it was due {due}"


# --- `monitor sla` ---------------------------------------------------------------------


def preview(*, opened_at: datetime, severity: Severity, ctx: SlaContext) -> dict[str, str | None]:
    """The clocks of an incident of `severity` opened at `opened_at`, and when the next
    update would be due after one posted at that moment: what `monitor sla` prints."""
    opened = start_clocks(
        Incident(
            id=None,
            client="",
            site="",
            title="",
            severity=severity,
            status=IncidentStatus.OPEN,
            opened_at=opened_at,
        ),
        ctx=ctx,
    )
    updated = record_client_update(opened, at=opened_at, ctx=ctx)

    def text(moment: datetime | None) -> str | None:
        return None if moment is None else format_utc(moment)

    return {
        "calendar": opened.calendar,
        "response_aim_at": text(opened.response_aim_at),
        "response_due_at": text(opened.response_due_at),
        "next_update_due_at": text(updated.next_update_due_at),
    }
