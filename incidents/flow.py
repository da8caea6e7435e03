"""What follows an incident change: SLA clocks, on-call paging, and the notifications to send.

Pure, in two steps, because a notification names its incident (`INC-42`) and a new incident
only has its number once stored:

1. `after_engine`, `after_tick` and the operator actions (`acknowledge`, `post_update`,
   `resolve_by_hand`) return a `Change`: the incident with its clocks and paging state, and
   the timeline entries to append.
2. `notifications(incident, entries, ...)`, called by the store inside the same transaction once
   the incident has its id, composes the emails and webhooks those entries call for.

Who hears what:
- Severity 1 pages on-call at once, day or night, on every channel (email and webhooks);
  an escalation to Severity 1 pages again. Severity 2 and lower tell on-call at once inside
  the client's business hours, otherwise at the next opening (`after_tick` sends it then).
- The client hears of an opening when its severity is in `email_client_on_open`, of an
  escalation (which opens the client's thread if the opening was not mailed), once of the
  whole site being down when a part opened the incident at the same severity (SITE_DOWN), of
  every update an operator posts, and of the resolution (asking them to confirm) once their
  thread exists.
- On-call hears of reminders before a client update falls due, overdue updates and a
  breached response target.
- A severity with an escalation policy (`incidents.escalation`) is paged by it instead: each
  level when due (PAGED entries naming who), to each person paged (or, for `oncall` without
  a rotation, to on-call's addresses and webhooks as above), until someone responds.
- Which of on-call's channels hear each of these is the routes' to say (`incidents.routes`,
  through `route`): the on-call email, the webhook, chat and pager channels. Without routes,
  as above: email for all of it, the webhook and chat channels for Severity 1 pages.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from incidents import wording
from incidents.calendar import Calendar, TwentyFourSeven
from incidents.chat_text import compose_chat
from incidents.escalation import (
    NO_ESCALATION,
    ONCALL,
    Escalation,
    Page,
    next_page_at,
    paged_count,
    pages_due,
    started_at,
    with_paged,
    with_start,
)
from incidents.message_text import span
from incidents.messages import (
    ClientInfo,
    MessageContext,
    compose_email,
    compose_webhook,
    page_message_id,
)
from incidents.model import Incident, IncidentStatus, TimelineEntry, TimelineKind
from incidents.outgoing import Audience, MessageKind, Outgoing
from incidents.public_status import Stage
from incidents.routes import (
    EMAIL_CHANNEL,
    WEBHOOK_CHANNEL,
    Event,
    Route,
    channels_for,
    default_routes,
    entry_events,
)
from incidents.severity import Severity
from incidents.sla import (
    SlaContext,
    due_sla_events,
    escalate_clocks,
    format_utc,
    human_time,
    next_sla_wakeup,
    oncall_notify_at,
    pause_clocks,
    paused_time,
    recompute_clocks,
    record_client_update,
    record_response,
    resume_clocks,
    start_clocks,
    zone_of,
)

# Marks (in Incident.sla_marks) saying a thread has its first mail, so later mails reply to it.
THREAD_MARK = {Audience.CLIENT: "thread:client", Audience.ONCALL: "thread:oncall"}
# Why an incident was resolved when a reload took away every check it had.
REMOVED_FROM_CONFIGURATION = "check removed from the configuration"
# Marks that a client mail has named the whole site down, so its retitle is told once.
SITE_DOWN_MARK = "client:site_down"

_ONCALL_MAIL = {
    TimelineKind.ONCALL_PAGED: MessageKind.PAGE,
    TimelineKind.ONCALL_NOTIFIED: MessageKind.NOTIFY,
    TimelineKind.UPDATE_REMINDER: MessageKind.UPDATE_REMINDER,
    TimelineKind.UPDATE_OVERDUE: MessageKind.UPDATE_OVERDUE,
    TimelineKind.RESPONSE_BREACHED: MessageKind.RESPONSE_BREACHED,
}
# What a routed entry is called on a webhook or chat channel.
_ROUTED_KIND = {
    **_ONCALL_MAIL,
    TimelineKind.ESCALATED: MessageKind.ESCALATED,
    TimelineKind.RESOLVED: MessageKind.RESOLVED,
}


@dataclass(frozen=True, slots=True)
class Change:
    incident: Incident
    timeline: tuple[TimelineEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class NotifyPolicy:
    email_client_on_open: frozenset[Severity] = frozenset({Severity.CRITICAL, Severity.MAJOR})
    webhook_targets: tuple[str, ...] = ()  # configured on-call webhooks (channel `webhook`)
    chat_channels: tuple[str, ...] = ()  # configured `channels:` names (Apprise)
    # None: `default_routes` (on-call email hears all; webhook and chats hear pages).
    routes: tuple[Route, ...] | None = None
    agency_hours: Calendar = TwentyFourSeven()  # what `business` / `after_hours` routes mean
    # The people escalation levels and rotations name, by name.
    people: Mapping[str, Person] = field(default_factory=dict)

    def effective_routes(self) -> tuple[Route, ...]:
        if self.routes is not None:
            return self.routes
        return default_routes(webhook=bool(self.webhook_targets), chats=self.chat_channels)


@dataclass(frozen=True, slots=True)
class Person:
    """Someone who can be paged: by email, and on their own `channels` (configured names)."""

    name: str
    email: str
    phone: str | None = None
    channels: tuple[str, ...] = ()


# --- step 1: clocks and paging ------------------------------------------------------------


def after_engine(
    *,
    before: Incident | None,
    after: Incident,
    timeline: Sequence[TimelineEntry],
    now: datetime,
    sla: SlaContext,
    escalation: Escalation = NO_ESCALATION,
) -> Change:
    """Start or re-run the clocks for what the engine did, and page on-call when due."""
    incident = after
    escalated_to_critical = False
    for entry in timeline:
        if entry.kind is TimelineKind.OPENED:
            incident = start_clocks(incident, ctx=sla)
        elif entry.kind is TimelineKind.ESCALATED and before is not None:
            incident = escalate_clocks(
                incident, previous_severity=before.severity, at=entry.at, ctx=sla
            )
            escalated_to_critical = (
                incident.severity is Severity.CRITICAL and before.severity is not Severity.CRITICAL
            )
            if incident.severity is not before.severity:
                # The new severity's escalation counts from now, not from the opening.
                marks = with_start(incident.sla_marks, incident.severity, entry.at)
                incident = replace(incident, sla_marks=marks)
        elif entry.kind is TimelineKind.RESOLVED:
            # As when resolved by hand: a resolved incident owes the client no more updates.
            incident = replace(
                incident, next_update_due_at=None, paused_since=None, paused_until=None
            )
    incident, paging = _tell_oncall(
        incident, now=now, sla=sla, page=escalated_to_critical, escalation=escalation
    )
    return Change(incident=incident, timeline=(*timeline, *paging))


def after_tick(
    incident: Incident,
    *,
    now: datetime,
    sla: SlaContext,
    escalation: Escalation = NO_ESCALATION,
) -> Change | None:
    """Reminders, breaches, deferred on-call notices and escalation pages due by `now`;
    None when nothing is."""
    marked, events = due_sla_events(incident, now=now, ctx=sla)
    entries = tuple(
        TimelineEntry(at=now, kind=event.kind, message=event.message, severity=marked.severity)
        for event in events
    )
    told, paging = _tell_oncall(marked, now=now, sla=sla, page=False, escalation=escalation)
    if not entries and not paging and told == incident:
        return None
    # On-call hears of the incident before any reminder or breach about it.
    return Change(incident=told, timeline=(*paging, *entries))


def during_maintenance(
    incident: Incident, *, now: datetime, window: tuple[datetime, datetime] | None, sla: SlaContext
) -> Change | None:
    """Pause or resume the clocks for the site's maintenance; None when nothing changes.

    `window` is (start, end) of the site's maintenance in force at `now` (overlapping windows
    merged), None when none is. A pause starts at the window's start (or the opening, for an
    incident opened since) and ends at the window's end, or at `now` when it ended early
    (cancelled); each is recorded on the timeline with its own time.
    """
    if not incident.is_open:
        return None
    zone = zone_of(sla)
    if window is not None:
        start, end = window
        if incident.paused_since is None:
            at = max(start, incident.opened_at)
            paused_now = pause_clocks(incident, at=at, until=end)
            message = (
                f"maintenance window until {human_time(end, zone)}: SLA clocks paused, "
                "no client update due and no reminders"
            )
            entry = TimelineEntry(
                at=at,
                kind=TimelineKind.MAINTENANCE_STARTED,
                message=message,
                evidence={"starts_at": format_utc(start), "ends_at": format_utc(end)},
            )
            return Change(incident=paused_now, timeline=(entry,))
        extended = pause_clocks(incident, at=incident.paused_since, until=end)
        return Change(incident=extended) if extended != incident else None
    since = incident.paused_since
    if since is None:
        return None
    until = incident.paused_until
    ended = now if until is None else min(now, until)
    paused = paused_time(incident, start=since, end=ended, ctx=sla)
    resumed = resume_clocks(incident, at=ended, ctx=sla)
    message = f"maintenance window ended: SLA clocks resumed, due times moved by {_span(paused)}"
    entry = TimelineEntry(
        at=ended,
        kind=TimelineKind.MAINTENANCE_ENDED,
        message=message,
        evidence={"paused_seconds": int(paused.total_seconds())},
    )
    return Change(incident=resumed, timeline=(entry,))


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds()) // 60
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def next_wakeup(
    incident: Incident, *, sla: SlaContext, escalation: Escalation = NO_ESCALATION
) -> datetime | None:
    """When `after_tick` (or `during_maintenance`) may next have something to do."""
    if incident.is_open and incident.paused_until is not None:
        return incident.paused_until  # nothing else falls due while paused
    policy = escalation.policies.get(incident.severity)
    if policy is None:
        paging = oncall_notify_at(incident, ctx=sla)
    elif not incident.is_open:
        paging = None
    else:
        paging = next_page_at(
            policy,
            start=started_at(incident.sla_marks, incident.severity, opened_at=incident.opened_at),
            paged=paged_count(incident.sla_marks, incident.severity),
            acknowledged_at=incident.responded_at,
        )
    candidates = (next_sla_wakeup(incident, ctx=sla), paging)
    return min((moment for moment in candidates if moment is not None), default=None)


def _tell_oncall(
    incident: Incident,
    *,
    now: datetime,
    sla: SlaContext,
    page: bool,
    escalation: Escalation = NO_ESCALATION,
) -> tuple[Incident, tuple[TimelineEntry, ...]]:
    if incident.severity in escalation.policies:
        return _escalate(incident, now=now, escalation=escalation)
    due = oncall_notify_at(incident, ctx=sla)
    if not incident.is_open or not (page or (due is not None and due <= now)):
        return incident, ()
    critical = incident.severity is Severity.CRITICAL
    kind = TimelineKind.ONCALL_PAGED if critical else TimelineKind.ONCALL_NOTIFIED
    message = (
        f"on-call paged: {incident.severity.label}, {incident.title}"
        if critical
        else f"on-call notified: {incident.severity.label}, {incident.title}"
    )
    entry = TimelineEntry(at=now, kind=kind, message=message, severity=incident.severity)
    return replace(incident, oncall_notified_at=now), (entry,)


def _escalate(
    incident: Incident, *, now: datetime, escalation: Escalation
) -> tuple[Incident, tuple[TimelineEntry, ...]]:
    """The pages of the severity's escalation policy due by `now`, one PAGED entry each."""
    severity = incident.severity
    if not incident.is_open:
        return incident, ()
    due = pages_due(
        escalation.policies[severity],
        start=started_at(incident.sla_marks, severity, opened_at=incident.opened_at),
        paged=paged_count(incident.sla_marks, severity),
        acknowledged_at=incident.responded_at,
        now=now,
    )
    if not due:
        return incident, ()
    entries = tuple(
        _paged_entry(page, now=now, escalation=escalation, severity=severity) for page in due
    )
    paged = replace(
        incident,
        sla_marks=with_paged(incident.sla_marks, severity, due[-1].index + 1),
        oncall_notified_at=incident.oncall_notified_at or now,
    )
    return paged, entries


def _paged_entry(
    page: Page, *, now: datetime, escalation: Escalation, severity: Severity
) -> TimelineEntry:
    on_call = escalation.on_call(page.due_at)
    people: list[str] = []
    team = False
    for name in page.notify:
        if name != ONCALL:
            people.append(name)
        elif on_call is not None:
            people.append(on_call)
        else:
            team = True  # no rotation: on-call's addresses and webhooks, as without escalation
    people = list(dict.fromkeys(people))  # one page per person, however often named
    who = ", ".join([*people, *(["on-call"] if team else [])])
    waited = _waited(page.waited)
    level = f"level {page.level}" + (f", repeat {page.repeat}" if page.repeat else "")
    return TimelineEntry(
        at=now,
        kind=TimelineKind.PAGED,
        message=f"paged {who} ({level}, {waited})",
        severity=severity,
        evidence={
            "level": page.level,
            "repeat": page.repeat,
            "page": page.index,
            "people": people,
            "oncall_team": team,
            "waited_seconds": int(page.waited.total_seconds()),
        },
    )


def _waited(waited: timedelta) -> str:
    """`at once`, `15 min without acknowledgement`, `2 s without ...` (sub-minute tests)."""
    seconds = int(waited.total_seconds())
    length = span(waited) if seconds >= 60 else f"{seconds} s"
    return f"{length} without acknowledgement" if seconds else "at once"


def _waited_text(entry: TimelineEntry) -> str:
    return _waited(timedelta(seconds=int((entry.evidence or {}).get("waited_seconds", 0))))


# --- operator actions -----------------------------------------------------------------------


def acknowledge(incident: Incident, *, now: datetime, by: str, sla: SlaContext) -> Change:
    _require_open(incident, by)
    if incident.acknowledged_by is not None:
        return Change(incident=incident)  # acknowledged already: nothing new to record
    acknowledged = record_response(incident, at=now, by=by, ctx=sla)
    entry = TimelineEntry(at=now, kind=TimelineKind.ACKNOWLEDGED, message=f"acknowledged by {by}")
    return Change(incident=acknowledged, timeline=(entry,))


def post_update(
    incident: Incident,
    *,
    now: datetime,
    by: str,
    text: str,
    sla: SlaContext,
    public: bool = True,
    stage: Stage | None = None,
) -> Change:
    """An operator's update. Public (the default): emailed to the client, shown on its status
    page with `stage`, and it resets the update cadence. Not public: an internal note, kept on
    the timeline for the team only (no mail, no cadence)."""
    _require_open(incident, by)
    if not text.strip():
        raise ValueError("an update needs text for the client")
    first_line = text.strip().splitlines()[0][:120]
    # Whether it is public is the entry's kind: CLIENT_UPDATE always is, INTERNAL_NOTE never.
    evidence: dict[str, object] = {"text": text, "by": by}
    if stage is not None:
        evidence["stage"] = stage.value
    if not public:
        note = TimelineEntry(
            at=now,
            kind=TimelineKind.INTERNAL_NOTE,
            message=f"internal note by {by}: {first_line}",
            evidence={**evidence, "public": False},
        )
        return Change(incident=incident, timeline=(note,))
    updated = record_client_update(incident, at=now, ctx=sla)
    entry = TimelineEntry(
        at=now,
        kind=TimelineKind.CLIENT_UPDATE,
        message=f"client update by {by}: {first_line}",
        evidence=evidence,
    )
    return Change(incident=updated, timeline=(entry,))


def attach_postmortem(incident: Incident, *, now: datetime, by: str, text: str) -> Change:
    """The post-mortem (Markdown) of a resolved incident; a later one replaces it on the page."""
    if incident.is_open:
        raise ValueError(f"{incident.ref} is still open: a post-mortem follows its resolution")
    if not text.strip():
        raise ValueError("a post-mortem needs text")
    entry = TimelineEntry(
        at=now,
        kind=TimelineKind.POSTMORTEM,
        message=f"post-mortem by {by}",
        evidence={"text": text, "by": by},
    )
    return Change(incident=incident, timeline=(entry,))


def change_severity(
    incident: Incident, *, now: datetime, by: str, severity: Severity, sla: SlaContext
) -> Change:
    """An operator sets the severity by hand. Raising it is an escalation as if the checks
    had caused it: tighter clocks, on-call paged again on Severity 1, the client's escalation
    mail (`notifications`). Lowering it keeps every due time already promised (the client
    was told them) and mails nobody; only the timeline records who and why."""
    _require_open(incident, by)
    if severity is incident.severity:
        raise ValueError(f"{incident.ref} is {severity.label} already")
    before = incident.severity
    changed = replace(incident, severity=severity)
    escalated = severity < before  # a lower number is more severe
    entry = TimelineEntry(
        at=now,
        kind=TimelineKind.ESCALATED if escalated else TimelineKind.DEESCALATED,
        message=f"{'escalated' if escalated else 'de-escalated'} by {by} from "
        f"{before.label} to {severity.label}",
        severity=severity,
        evidence={"by": by, "from": int(before)},
    )
    if not escalated:
        return Change(incident=changed, timeline=(entry,))
    changed = escalate_clocks(changed, previous_severity=before, at=now, ctx=sla)
    paged, paging = _tell_oncall(changed, now=now, sla=sla, page=severity is Severity.CRITICAL)
    return Change(incident=paged, timeline=(entry, *paging))


class StillFailing(ValueError):
    """A manual resolve refused: checks of the incident still fail (`checks`, keys)."""

    def __init__(self, incident: Incident, checks: Sequence[str]) -> None:
        self.checks = tuple(checks)
        super().__init__(
            f"{incident.ref} still has failing checks: {', '.join(self.checks)}; "
            "resolve it with force to close it anyway (those checks then must pass once "
            "before they can open a new incident)"
        )


def resolve_by_hand(
    incident: Incident,
    *,
    now: datetime,
    by: str,
    note: str = "",
    still_failing: Collection[str] = (),
    force: bool = False,
) -> Change:
    """An operator resolves the incident. `still_failing`: the check keys whose latest result
    is a failure; while any of them is among the incident's failing checks the resolve is
    refused (StillFailing) unless `force`. The RESOLVED entry names who and how; its
    evidence (`resolved_by`, `forced`, `still_failing`) tells the composer it was by hand."""
    _require_open(incident, by)
    failing = sorted(incident.failing_checks.intersection(still_failing))
    if failing and not force:
        raise StillFailing(incident, failing)
    resolved = _closed(incident, now=now)
    message = f"resolved by hand by {by}"
    if failing:
        names = [key.rsplit("/", 1)[-1] for key in failing]
        listed = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]
        message += f", forced while {listed} still failed"
    if note.strip():
        message += f": {note.strip()}"
    entry = TimelineEntry(
        at=now,
        kind=TimelineKind.RESOLVED,
        message=message,
        severity=incident.severity,
        # The note travels in the entry's evidence to the client's resolution mail.
        evidence={"resolved_by": by, "forced": bool(failing), "still_failing": failing}
        | ({"note": note.strip()} if note.strip() else {}),
    )
    return Change(incident=resolved, timeline=(entry,))


def _closed(incident: Incident, *, now: datetime) -> Incident:
    """`incident` resolved at `now`: nothing failing, no update owed, no pause."""
    return replace(
        incident,
        status=IncidentStatus.RESOLVED,
        resolved_at=now,
        failing_checks=frozenset(),
        next_update_due_at=None,
        paused_since=None,
        paused_until=None,
    )


def after_checks_removed(
    incident: Incident, *, now: datetime, configured: Collection[str]
) -> Change | None:
    """What a configuration reload that kept only the checks `configured` (keys) does to an
    open incident; None when none of its checks went away.

    When no check still failing is left (every check went, or every failing one did),
    nothing could see the incident recover: it is resolved, and the timeline says why. When
    some failing checks went and others stay, the ones that went are no longer waited for:
    the others' recovery resolves it; an internal note says so. The team's edit closed it,
    so a client mail (when configured) reads as a resolve by hand, not as a recovery."""
    keys = frozenset(configured)
    gone = sorted(incident.checks - keys)
    if not gone:
        return None
    failing_left = incident.failing_checks & keys
    if not failing_left:
        entry = TimelineEntry(
            at=now,
            kind=TimelineKind.RESOLVED,
            message=f"resolved: {REMOVED_FROM_CONFIGURATION}",
            severity=incident.severity,
            evidence={
                "resolved_by": "configuration",
                "forced": False,
                "removed_from_configuration": gone,
            },
        )
        return Change(incident=_closed(incident, now=now), timeline=(entry,))
    if failing_left == incident.failing_checks:
        return None  # only checks that had recovered went: nothing to change
    entry = TimelineEntry(
        at=now,
        kind=TimelineKind.INTERNAL_NOTE,
        message=f"{REMOVED_FROM_CONFIGURATION}: {', '.join(gone)}; "
        f"still failing: {', '.join(sorted(failing_left))}",
        severity=incident.severity,
    )
    return Change(incident=replace(incident, failing_checks=failing_left), timeline=(entry,))


def recompute_on_calendar(incident: Incident, *, now: datetime, sla: SlaContext) -> Change | None:
    """The clocks of an open incident counted again on its client's new calendar (a reload
    changed the business hours or the plan), with an internal note saying so; None when the
    due times come out the same."""
    recomputed = recompute_clocks(incident, ctx=sla)
    if recomputed == incident:
        return None
    zone = zone_of(sla)
    shown = [
        f"{what} {human_time(at, zone)}"
        for what, at in (
            ("response due", recomputed.response_due_at),
            ("next client update due", recomputed.next_update_due_at),
        )
        if at is not None
    ]
    entry = TimelineEntry(
        at=now,
        kind=TimelineKind.INTERNAL_NOTE,
        message="SLA clocks recomputed: the client's calendar changed in the configuration"
        + (f" ({', '.join(shown)})" if shown else ""),
        severity=incident.severity,
    )
    return Change(incident=recomputed, timeline=(entry,))


def resolved_by_hand(entry: TimelineEntry) -> bool:
    """Whether a RESOLVED entry is an operator's resolve (not the checks passing again)."""
    return entry.kind is TimelineKind.RESOLVED and "resolved_by" in (entry.evidence or {})


def _require_open(incident: Incident, by: str) -> None:
    if not by.strip():
        raise ValueError("say who acts: `by` must not be empty")
    if not incident.is_open:
        raise ValueError(f"{incident.ref} is {incident.status}: only open incidents take actions")


# --- step 2: what to send -------------------------------------------------------------------


def notifications(
    incident: Incident,
    timeline: Sequence[TimelineEntry],
    *,
    now: datetime,
    client: ClientInfo,
    ctx: MessageContext,
    policy: NotifyPolicy,
) -> tuple[Incident, list[Outgoing]]:
    """The emails and webhooks `timeline` calls for, and `incident` with its thread marks.

    Audiences without addresses are skipped (a client with no contacts gets no mail).
    """
    out: list[Outgoing] = []
    state = incident

    def email(
        kind: MessageKind,
        cause: TimelineEntry | None,
        text: str | None = None,
        note: str | None = None,
    ) -> None:
        nonlocal state
        audience = Audience.CLIENT if kind in _CLIENT_KINDS else Audience.ONCALL
        if not (client.contacts if audience is Audience.CLIENT else ctx.oncall):
            return
        first = THREAD_MARK[audience] not in state.sla_marks
        out.append(
            compose_email(
                kind,
                incident=state,
                client=client,
                ctx=ctx,
                now=now,
                cause=cause,
                update_text=text,
                note=note,
                first_in_thread=first,
            )
        )
        marks = {THREAD_MARK[audience]} if first else set()
        if audience is Audience.CLIENT and _site_down(state):
            marks.add(SITE_DOWN_MARK)
        if not marks <= state.sla_marks:
            state = replace(state, sla_marks=state.sla_marks | marks)

    cause = _evidence_entry(timeline)
    client_thread = THREAD_MARK[Audience.CLIENT] in state.sla_marks
    for entry in timeline:
        kind = entry.kind
        told = _client_mail(entry, state, client_thread=client_thread, policy=policy)
        if told is not None:
            email(told, entry)
        elif kind is TimelineKind.CLIENT_UPDATE:
            text = str((entry.evidence or {}).get("text", entry.message))
            email(MessageKind.UPDATE, cause, text)
        elif kind is TimelineKind.RESOLVED and THREAD_MARK[Audience.CLIENT] in state.sla_marks:
            note = (entry.evidence or {}).get("note")
            shown = note if isinstance(note, str) and note else None
            # By hand, the mail says so (the entry says who and whether checks still failed).
            cause = entry if resolved_by_hand(entry) else _last_recovery(timeline)
            email(MessageKind.RESOLVED, cause, note=shown)
        elif kind is TimelineKind.PAGED:
            # Replies in the on-call thread, under ids of their own: the thread's root is
            # left to the on-call mails that are one per incident.
            out.extend(
                page_messages(
                    state, entry, client=client, ctx=ctx, policy=policy, now=now, cause=cause
                )
            )
        events = entry_events(entry, timeline)
        if events:
            # A resolution is explained by the recovery, not by the failure that opened it.
            why = None if kind is TimelineKind.RESOLVED else cause
            heard, routed = route(
                _ROUTED_KIND[kind],
                events,
                incident=state,
                client=client,
                cause=why,
                now=now,
                ctx=ctx,
                policy=policy,
            )
            if kind in _ONCALL_MAIL and EMAIL_CHANNEL in heard:
                email(_ONCALL_MAIL[kind], cause)
            out.extend(routed)
        client_thread = THREAD_MARK[Audience.CLIENT] in state.sla_marks
    return state, out


def page_messages(
    incident: Incident,
    entry: TimelineEntry,
    *,
    client: ClientInfo,
    ctx: MessageContext,
    policy: NotifyPolicy,
    now: datetime,
    cause: TimelineEntry | None,
) -> list[Outgoing]:
    """The outbox rows of one escalation page (a PAGED entry): the page mail and a chat message
    on their own channels to each person named; for `oncall` without a rotation, what the
    routes send for `paged` (on-call's addresses, webhooks and channels).

    Every row's id is derived from the incident, the page and the person, so the outbox's
    unique key refuses a second copy of the same page whatever wrote it."""
    evidence = entry.evidence or {}
    index = int(evidence.get("page", 0))
    severity = entry.severity or incident.severity
    out: list[Outgoing] = []
    names = [str(name) for name in evidence.get("people", ())]
    if evidence.get("oncall_team"):
        names.append(ONCALL)
    level = f"Escalation level {evidence.get('level', 1)}: {_waited_text(entry)}."
    team_heard: tuple[str, ...] = ()
    routed: list[Outgoing] = []
    if evidence.get("oncall_team"):
        team_heard, routed = route(
            MessageKind.PAGE,
            (Event.PAGED,),
            incident=incident,
            client=client,
            cause=cause,
            now=now,
            ctx=ctx,
            policy=policy,
        )
    for name in names:
        person = policy.people.get(name)
        if name == ONCALL and EMAIL_CHANNEL not in team_heard:
            continue  # the team's page, and the routes send it no email
        # A person no longer configured (the config changed since): the team instead, so the
        # page is not lost.
        to = (person.email,) if person is not None else ctx.oncall
        if not to:
            continue  # on-call has no address
        message_id = page_message_id(
            incident, severity=int(severity), page=index, person=name, domain=ctx.sender_domain
        )
        out.append(
            compose_email(
                MessageKind.PAGE,
                incident=incident,
                client=client,
                ctx=replace(ctx, oncall=to),
                now=now,
                cause=cause,
                first_in_thread=False,
                message_id=message_id,
                note=level,
            )
        )
        if person is not None and person.channels:
            out.extend(
                compose_chat(
                    MessageKind.PAGE,
                    incident=incident,
                    client=client,
                    cause=cause,
                    now=now,
                    channels=[c for c in person.channels if c in policy.chat_channels],
                    agency_timezone=ctx.agency_timezone,
                    dashboard_url=ctx.dashboard_url,
                )
            )
    out.extend(routed)  # the team's webhooks and channels, after the mails
    return out


def route(
    kind: MessageKind,
    events: Iterable[Event],
    *,
    incident: Incident,
    client: ClientInfo,
    cause: TimelineEntry | None,
    now: datetime,
    ctx: MessageContext,
    policy: NotifyPolicy,
) -> tuple[tuple[str, ...], list[Outgoing]]:
    """Routing's single entry point: the channels that hear `events` about `incident` (stored,
    with its id) at `now`, and the webhook and chat messages for them, called `kind`. The
    caller queues the messages with the change that raised the events (one transaction: the
    outbox); the on-call email is the caller's to compose (it threads), when the channels
    include `email`. Escalation pages are `Event.PAGED` with `MessageKind.PAGE`."""
    heard = channels_for(
        policy.effective_routes(),
        events,
        severity=incident.severity,
        client=incident.client,
        at=now,
        agency_hours=policy.agency_hours,
    )
    out: list[Outgoing] = []
    if WEBHOOK_CHANNEL in heard:
        out.extend(
            compose_webhook(kind, incident=incident, client=client, cause=cause, target=name)
            for name in policy.webhook_targets
        )
    out.extend(
        compose_chat(
            kind,
            incident=incident,
            client=client,
            cause=cause,
            now=now,
            channels=[name for name in heard if name in policy.chat_channels],
            agency_timezone=ctx.agency_timezone,
            dashboard_url=ctx.dashboard_url,
        )
    )
    return heard, out


_CLIENT_KINDS = frozenset(
    {
        MessageKind.OPENED,
        MessageKind.ESCALATED,
        MessageKind.SITE_DOWN,
        MessageKind.UPDATE,
        MessageKind.RESOLVED,
    }
)


def _client_mail(
    entry: TimelineEntry, incident: Incident, *, client_thread: bool, policy: NotifyPolicy
) -> MessageKind | None:
    """The client mail an engine entry calls for: the opening, an escalation (which opens the
    thread if the opening was not mailed), or the whole site down after a part failed."""
    on_open = incident.severity in policy.email_client_on_open
    if entry.kind is TimelineKind.OPENED:
        return MessageKind.OPENED if on_open else None
    if entry.kind is TimelineKind.ESCALATED:
        return MessageKind.ESCALATED if client_thread or on_open else None
    if entry.kind is TimelineKind.CHECK_FAILED and client_thread:
        # Same severity, so no escalation: the retitle alone tells the client.
        return MessageKind.SITE_DOWN if _now_site_down(incident, entry) else None
    return None


def _site_down(incident: Incident) -> bool:
    return incident.headline is not None and wording.is_down(incident.headline)


def _now_site_down(incident: Incident, entry: TimelineEntry) -> bool:
    """`entry` (another check confirmed failing) retitled the incident "<site> is down", and no
    client mail has said so yet. Only a check that takes the title becomes its headline's."""
    headline = incident.headline
    return (
        headline is not None
        and headline.check == entry.check
        and wording.is_down(headline)
        and SITE_DOWN_MARK not in incident.sla_marks
    )


def _evidence_entry(timeline: Sequence[TimelineEntry]) -> TimelineEntry | None:
    """The entry whose probe evidence best explains this change (the latest with evidence)."""
    for entry in reversed(timeline):
        # Probe results only: an update's text or a resolve's who-and-how explain nothing.
        if entry.evidence and entry.check is not None:
            return entry
    return None


def _last_recovery(timeline: Sequence[TimelineEntry]) -> TimelineEntry | None:
    for entry in reversed(timeline):
        if entry.kind is TimelineKind.CHECK_RECOVERED:
            return entry
    return None
