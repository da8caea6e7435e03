"""What follows an incident change (`incidents.flow`): clocks, on-call paging, operator actions
and the notifications they call for, driven by hand-built probe results at fixed times.

Times are London wall-clock times in June 2024 (BST, UTC+1), turned into UTC: Friday 7,
Saturday 8, Sunday 9, Monday 10, Tuesday 11. The client's business hours are Monday-Friday
09:00-17:00 in London.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from checks.result import Evidence, Outcome, ProbeResult
from incidents.calendar import BusinessCalendar
from incidents.engine import apply_result
from incidents.flow import (
    SITE_DOWN_MARK,
    THREAD_MARK,
    Change,
    NotifyPolicy,
    StillFailing,
    acknowledge,
    after_engine,
    after_tick,
    next_wakeup,
    notifications,
    post_update,
    resolve_by_hand,
    resolved_by_hand,
)
from incidents.messages import ClientInfo, MessageContext, thread_root
from incidents.model import (
    CheckRef,
    CheckState,
    Incident,
    IncidentStatus,
    TimelineEntry,
    TimelineKind,
)
from incidents.outgoing import Audience, MessageKind, Outgoing, OutgoingEmail, OutgoingWebhook
from incidents.severity import Severity, SeverityPolicy
from incidents.sla import DEFAULT_PLANS, SlaContext, overdue_mark, reminder_mark

LONDON = ZoneInfo("Europe/London")
LONDON_HOURS = BusinessCalendar(timezone=LONDON)  # Monday-Friday 09:00-17:00
STANDARD = SlaContext(business=LONDON_HOURS, plan=DEFAULT_PLANS["standard"])
RETAINER = SlaContext(business=LONDON_HOURS, plan=DEFAULT_PLANS["retainer"])

FRI, SAT, SUN, MON, TUE = "2024-06-07", "2024-06-08", "2024-06-09", "2024-06-10", "2024-06-11"
S1, S2, S3 = Severity.CRITICAL, Severity.MAJOR, Severity.MODERATE

OPENED = TimelineKind.OPENED
ESCALATED = TimelineKind.ESCALATED
PAGED = TimelineKind.ONCALL_PAGED
NOTIFIED = TimelineKind.ONCALL_NOTIFIED
REMINDER = TimelineKind.UPDATE_REMINDER
OVERDUE = TimelineKind.UPDATE_OVERDUE
BREACHED = TimelineKind.RESPONSE_BREACHED

INCIDENT_ID = 42

CLIENT = ClientInfo(
    id="acme", name="Acme Ltd", contacts=("ops@acme.example",), timezone="Europe/London"
)
MESSAGES = MessageContext(sender_domain="agency.example", oncall=("oncall@agency.example",))
WEBHOOKS = ("chat", "pager")
NOTIFY = NotifyPolicy(webhook_targets=WEBHOOKS)
SEVERITIES = SeverityPolicy()

# One confirmed result opens, escalates or resolves: every step of a test is one probe.
HOME = CheckRef(
    key="acme/shop/home",
    client="acme",
    site="acme/shop",
    site_label="shop.acme.example",
    failures_to_open=1,
    successes_to_resolve=1,
)


def london(day: str, hhmm: str) -> datetime:
    """`london(MON, "09:00")`: that wall-clock time in London, as a UTC datetime."""
    return datetime.fromisoformat(f"{day} {hhmm}").replace(tzinfo=LONDON).astimezone(UTC)


def client_root(opened_at: datetime) -> str:
    """The client thread's root id of INC-42 opened at `opened_at`."""
    return thread_root(INCIDENT_ID, Audience.CLIENT, "agency.example", opened_at=opened_at)


def oncall_root(opened_at: datetime) -> str:
    return thread_root(INCIDENT_ID, Audience.ONCALL, "agency.example", opened_at=opened_at)


def probe(outcome: Outcome, *, status: int | None, latency: float | None = 0.2) -> ProbeResult:
    return ProbeResult(
        outcome=outcome,
        started_at=london(MON, "00:00"),
        latency=latency,
        evidence=Evidence(url="https://shop.acme.example/", status=status),
    )


OK = probe(Outcome.OK, status=200)
E500 = probe(Outcome.HTTP_5XX, status=500)  # Severity 1
SLOW = probe(Outcome.SLOW, status=200, latency=7.5)  # Severity 2


@dataclass
class Step:
    """One stored change: the incident as written (id, thread marks) and what went out."""

    incident: Incident
    timeline: tuple[TimelineEntry, ...]
    out: list[Outgoing]

    @property
    def kinds(self) -> list[TimelineKind]:
        return [entry.kind for entry in self.timeline]


@dataclass
class Desk:
    """Plays the store's and the scheduler's part for one site: it feeds results through the
    engine and `after_engine`, runs ticks and operator actions, gives a new incident its id,
    and composes notifications the way the store does, keeping everything that went out."""

    sla: SlaContext = STANDARD
    client: ClientInfo = CLIENT
    messages: MessageContext = MESSAGES
    policy: NotifyPolicy = NOTIFY
    incident: Incident | None = None
    states: dict[str, CheckState] = field(default_factory=dict)
    sent: list[Outgoing] = field(default_factory=list)

    @property
    def current(self) -> Incident:
        assert self.incident is not None, "open an incident first"
        return self.incident

    def probe(
        self,
        result: ProbeResult,
        *,
        now: datetime,
        severity: Severity | None = None,
        check: CheckRef = HOME,
    ) -> Step:
        if severity is None and not result.ok:
            severity = SEVERITIES.severity_for(result.outcome)
        before = self.incident if self.incident is not None and self.incident.is_open else None
        transition = apply_result(
            now=now,
            check=check,
            result=result,
            severity=severity,
            state=self.states.get(check.key, CheckState(key=check.key)),
            incident=before,
        )
        self.states[check.key] = transition.state
        assert transition.incident is not None, "every probe of these tests concerns an incident"
        change = after_engine(
            before=before,
            after=transition.incident,
            timeline=transition.timeline,
            now=now,
            sla=self.sla,
        )
        return self.store(change, now=now)

    def tick(self, now: datetime) -> Step | None:
        change = after_tick(self.current, now=now, sla=self.sla)
        return None if change is None else self.store(change, now=now)

    def ack(self, now: datetime, by: str = "alice") -> Step:
        return self.store(acknowledge(self.current, now=now, by=by, sla=self.sla), now=now)

    def update(self, now: datetime, text: str, by: str = "alice") -> Step:
        change = post_update(self.current, now=now, by=by, text=text, sla=self.sla)
        return self.store(change, now=now)

    def resolve(self, now: datetime, note: str = "") -> Step:
        return self.store(resolve_by_hand(self.current, now=now, by="alice", note=note), now=now)

    def store(self, change: Change, *, now: datetime) -> Step:
        incident = change.incident
        if incident.id is None:
            incident = replace(incident, id=INCIDENT_ID)
        incident, out = notifications(
            incident,
            change.timeline,
            now=now,
            client=self.client,
            ctx=self.messages,
            policy=self.policy,
        )
        self.incident = incident
        self.sent.extend(out)
        return Step(incident=incident, timeline=change.timeline, out=out)


def labels(out: list[Outgoing]) -> list[tuple[str, MessageKind]]:
    """(audience, kind) of each notification; a webhook's audience is `webhook:<target>`."""
    return [
        (str(item.audience), item.kind)
        if isinstance(item, OutgoingEmail)
        else (f"webhook:{item.target}", item.kind)
        for item in out
    ]


def emails(out: list[Outgoing], audience: Audience) -> list[OutgoingEmail]:
    return [item for item in out if isinstance(item, OutgoingEmail) and item.audience is audience]


def webhooks(out: list[Outgoing]) -> list[OutgoingWebhook]:
    return [item for item in out if isinstance(item, OutgoingWebhook)]


def assert_one_thread(mails: list[OutgoingEmail], root: str) -> None:
    """The first mail is the thread's root; every later one replies to it with its own id."""
    assert mails, "expected mails in the thread"
    first, *later = mails
    assert (first.message_id, first.in_reply_to, first.references) == (root, None, ())
    for mail in later:
        assert mail.message_id != root
        assert (mail.in_reply_to, mail.references) == (root, (root,))
    assert len({mail.message_id for mail in mails}) == len(mails)


# --- after_engine: opening -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sla", "result", "opened_at", "calendar", "aim", "due", "told"),
    [
        pytest.param(
            STANDARD, E500, london(SAT, "03:00"), "business",
            london(MON, "11:00"), london(MON, "13:00"), PAGED,
            id="sev1 standard saturday 03:00: paged at once, clocks from monday",
        ),
        pytest.param(
            RETAINER, E500, london(SAT, "03:00"), "24x7",
            london(SAT, "05:00"), london(SAT, "07:00"), PAGED,
            id="sev1 retainer saturday 03:00: paged, clocks 24x7",
        ),
        pytest.param(
            STANDARD, E500, london(MON, "10:00"), "business",
            london(MON, "12:00"), london(MON, "14:00"), PAGED,
            id="sev1 standard monday 10:00: paged",
        ),
        pytest.param(
            STANDARD, SLOW, london(MON, "10:00"), "business",
            london(TUE, "10:00"), london(TUE, "10:00"), NOTIFIED,
            id="sev2 in business hours: notified at once",
        ),
        pytest.param(
            STANDARD, SLOW, london(MON, "09:00"), "business",
            london(MON, "17:00"), london(MON, "17:00"), NOTIFIED,
            id="sev2 at the opening minute: notified",
        ),
        pytest.param(
            STANDARD, SLOW, london(MON, "08:59"), "business",
            london(MON, "17:00"), london(MON, "17:00"), None,
            id="sev2 a minute before opening: waits",
        ),
        pytest.param(
            STANDARD, SLOW, london(SAT, "03:00"), "business",
            london(MON, "17:00"), london(MON, "17:00"), None,
            id="sev2 saturday: waits for monday",
        ),
        pytest.param(
            RETAINER, SLOW, london(FRI, "17:00"), "business",
            london(MON, "17:00"), london(MON, "17:00"), None,
            id="sev2 retainer at friday closing: business clocks, waits",
        ),
    ],
)  # fmt: skip
def test_opening_starts_clocks_and_tells_oncall(
    sla: SlaContext,
    result: ProbeResult,
    opened_at: datetime,
    calendar: str,
    aim: datetime,
    due: datetime,
    told: TimelineKind | None,
) -> None:
    step = Desk(sla=sla).probe(result, now=opened_at)

    incident = step.incident
    assert (incident.calendar, incident.response_aim_at, incident.response_due_at) == (
        calendar,
        aim,
        due,
    )
    assert incident.responded_at is None and incident.next_update_due_at is None
    if told is None:
        assert step.kinds == [OPENED]
        assert incident.oncall_notified_at is None
    else:
        assert step.kinds == [OPENED, told]
        assert incident.oncall_notified_at == opened_at
        entry = step.timeline[-1]
        assert (entry.at, entry.severity) == (opened_at, incident.severity)


def test_severity_2_on_a_weekend_is_told_at_the_next_opening() -> None:
    desk = Desk()
    desk.probe(SLOW, now=london(SAT, "03:00"))
    assert next_wakeup(desk.current, sla=STANDARD) == london(MON, "09:00")

    for quiet in (london(SAT, "12:00"), london(SUN, "23:59"), london(MON, "08:59")):
        assert desk.tick(quiet) is None, quiet
    assert desk.current.oncall_notified_at is None

    step = desk.tick(london(MON, "09:00"))
    assert step is not None
    assert step.kinds == [NOTIFIED]
    assert step.incident.oncall_notified_at == london(MON, "09:00")
    assert labels(step.out) == [("oncall", MessageKind.NOTIFY)]
    assert desk.tick(london(MON, "09:01")) is None
    # Nothing more until the response falls due (8 business hours after the opening).
    assert next_wakeup(desk.current, sla=STANDARD) == london(MON, "17:00")


def test_a_weekend_severity_2_resolved_before_monday_never_tells_oncall() -> None:
    desk = Desk()
    desk.probe(SLOW, now=london(SAT, "03:00"))
    desk.probe(OK, now=london(SUN, "10:00"))
    assert desk.current.status is IncidentStatus.RESOLVED
    assert next_wakeup(desk.current, sla=STANDARD) is None
    assert desk.tick(london(MON, "09:00")) is None


# --- after_engine: escalation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("sla", "opened_at", "acked_at", "escalated_at", "calendar", "aim", "due", "update_due"),
    [
        pytest.param(
            STANDARD, london(MON, "10:00"), None, london(MON, "11:00"), "business",
            london(MON, "13:00"), london(MON, "15:00"), None,
            id="before the response: sev1 targets from the escalation are sooner",
        ),
        pytest.param(
            STANDARD, london(FRI, "16:00"), None, london(MON, "15:00"), "business",
            london(MON, "16:00"), london(MON, "16:00"), None,
            id="before the response: the sooner sev2 deadline stays",
        ),
        pytest.param(
            RETAINER, london(SAT, "03:00"), None, london(SAT, "04:00"), "24x7",
            london(SAT, "06:00"), london(SAT, "08:00"), None,
            id="retainer weekend: the clocks move to 24x7",
        ),
        pytest.param(
            STANDARD, london(MON, "10:00"), london(MON, "10:30"), london(MON, "11:00"),
            "business", london(TUE, "10:00"), london(TUE, "10:00"), london(MON, "15:00"),
            id="after the response: the update falls due sooner, response clocks stay",
        ),
        pytest.param(
            STANDARD, london(MON, "10:00"), london(MON, "10:30"), london(TUE, "10:00"),
            "business", london(TUE, "10:00"), london(TUE, "10:00"), london(TUE, "10:30"),
            id="after the response: the sooner sev2 update stays",
        ),
    ],
)  # fmt: skip
def test_escalation_to_severity_1_reruns_clocks_and_pages(
    sla: SlaContext,
    opened_at: datetime,
    acked_at: datetime | None,
    escalated_at: datetime,
    calendar: str,
    aim: datetime,
    due: datetime,
    update_due: datetime | None,
) -> None:
    desk = Desk(sla=sla)
    desk.probe(SLOW, now=opened_at)
    if acked_at is not None:
        desk.ack(acked_at)

    step = desk.probe(E500, now=escalated_at)

    assert step.kinds == [ESCALATED, PAGED]
    incident = step.incident
    assert incident.severity is S1
    assert (incident.calendar, incident.response_aim_at, incident.response_due_at) == (
        calendar,
        aim,
        due,
    )
    assert incident.next_update_due_at == update_due
    assert incident.oncall_notified_at == escalated_at
    assert incident.responded_at == acked_at
    assert labels(step.out)[-3:] == [
        ("oncall", MessageKind.PAGE),
        ("webhook:chat", MessageKind.PAGE),
        ("webhook:pager", MessageKind.PAGE),
    ]


def test_escalation_pages_even_when_oncall_was_told_before() -> None:
    desk = Desk()
    opening = desk.probe(SLOW, now=london(MON, "10:00"))
    assert opening.kinds == [OPENED, NOTIFIED]

    step = desk.probe(E500, now=london(MON, "10:20"))

    assert step.kinds == [ESCALATED, PAGED]
    assert step.incident.oncall_notified_at == london(MON, "10:20")
    paged = step.timeline[-1]
    assert (paged.at, paged.severity) == (london(MON, "10:20"), S1)


def test_escalation_below_severity_1_does_not_page_again() -> None:
    desk = Desk()
    desk.probe(E500, now=london(MON, "10:00"), severity=S3)
    step = desk.probe(SLOW, now=london(MON, "10:30"))
    assert step.kinds == [ESCALATED]
    assert step.incident.severity is S2
    assert step.incident.oncall_notified_at == london(MON, "10:00")
    # Sev2 from 10:30 (8 business hours: Tue 10:30) is sooner than Sev3's 48 business hours.
    assert step.incident.response_due_at == london(TUE, "10:30")


def test_a_weekend_escalation_to_severity_1_pages_a_waiting_incident() -> None:
    desk = Desk()
    desk.probe(SLOW, now=london(SAT, "03:00"))
    step = desk.probe(E500, now=london(SUN, "04:00"))
    assert step.kinds == [ESCALATED, PAGED]
    assert step.incident.oncall_notified_at == london(SUN, "04:00")
    # Told already: Monday's opening brings no NOTIFY on top of the page.
    assert desk.tick(london(MON, "09:00")) is None


# --- after_tick: reminders, overdue updates, breaches ----------------------------------------

Tick = tuple[datetime, list[TimelineKind]]


@pytest.mark.parametrize(
    ("result", "acked_at", "ticks"),
    [
        pytest.param(
            E500, None,
            [
                (london(MON, "13:59"), []),
                (london(MON, "14:00"), [BREACHED]),
                (london(MON, "14:01"), []),
                (london(TUE, "12:00"), []),
            ],
            id="sev1 unanswered: breached once at 4 business hours",
        ),
        pytest.param(
            SLOW, None,
            [
                (london(MON, "17:00"), []),
                (london(TUE, "09:59"), []),
                (london(TUE, "10:00"), [BREACHED]),
            ],
            id="sev2 unanswered: breached the next business morning",
        ),
        pytest.param(
            E500, london(MON, "10:30"),
            [
                (london(MON, "13:59"), []),
                (london(MON, "14:00"), [REMINDER]),
                (london(MON, "14:10"), []),
                (london(MON, "14:30"), [OVERDUE]),
                (london(MON, "16:00"), []),
            ],
            id="sev1 answered: reminded 30 min before the update, then overdue, once each",
        ),
        pytest.param(
            E500, london(MON, "10:30"),
            [(london(MON, "14:31"), [OVERDUE]), (london(MON, "15:00"), [])],
            id="a late first tick: the overdue notice only",
        ),
        pytest.param(
            E500, london(MON, "13:15"),
            [
                (london(MON, "17:00"), []),
                (london(TUE, "08:44"), []),
                (london(TUE, "08:45"), [REMINDER]),
                (london(TUE, "09:15"), [OVERDUE]),
            ],
            id="update due tue 09:15: the reminder comes 30 wall minutes before",
        ),
    ],
)  # fmt: skip
def test_ticks_record_each_reminder_and_breach_once(
    result: ProbeResult, acked_at: datetime | None, ticks: list[Tick]
) -> None:
    desk = Desk()
    desk.probe(result, now=london(MON, "10:00"))
    if acked_at is not None:
        desk.ack(acked_at)
    expected_mail = {
        REMINDER: MessageKind.UPDATE_REMINDER,
        OVERDUE: MessageKind.UPDATE_OVERDUE,
        BREACHED: MessageKind.RESPONSE_BREACHED,
    }
    for now, kinds in ticks:
        step = desk.tick(now)
        if not kinds:
            assert step is None, now
            continue
        assert step is not None, now
        assert step.kinds == kinds
        assert all(entry.at == now for entry in step.timeline)
        assert labels(step.out) == [("oncall", expected_mail[kind]) for kind in kinds]


def test_tick_marks_what_it_recorded() -> None:
    desk = Desk()
    desk.probe(E500, now=london(MON, "10:00"))
    desk.ack(london(MON, "10:30"))
    due = london(MON, "14:30")
    assert desk.current.next_update_due_at == due
    desk.tick(london(MON, "14:00"))
    assert reminder_mark(due) in desk.current.sla_marks
    desk.tick(london(MON, "14:30"))
    assert overdue_mark(due) in desk.current.sla_marks
    # A new client update brings a new due time, with its own reminder and overdue notice.
    desk.update(london(MON, "15:00"), "We are restoring the database.")
    assert desk.current.next_update_due_at == london(TUE, "11:00")
    step = desk.tick(london(TUE, "10:30"))
    assert step is not None and step.kinds == [REMINDER]


def test_tick_on_a_resolved_incident_does_nothing() -> None:
    desk = Desk()
    desk.probe(E500, now=london(MON, "10:00"))
    desk.resolve(london(MON, "11:00"))
    assert next_wakeup(desk.current, sla=STANDARD) is None
    for later in (london(MON, "14:00"), london(TUE, "12:00")):
        assert after_tick(desk.current, now=later, sla=STANDARD) is None


def test_next_wakeup_follows_the_clocks() -> None:
    desk = Desk()
    desk.probe(E500, now=london(MON, "10:00"))
    assert next_wakeup(desk.current, sla=STANDARD) == london(MON, "14:00")  # the breach
    desk.ack(london(MON, "10:30"))
    assert next_wakeup(desk.current, sla=STANDARD) == london(MON, "14:00")  # the reminder
    desk.tick(london(MON, "14:00"))
    assert next_wakeup(desk.current, sla=STANDARD) == london(MON, "14:30")  # overdue


# --- operator actions --------------------------------------------------------------------------


def test_acknowledge_is_the_response_and_starts_the_cadence() -> None:
    desk = Desk()
    desk.probe(E500, now=london(MON, "10:00"))

    change = acknowledge(desk.current, now=london(MON, "10:15"), by="alice", sla=STANDARD)

    assert [entry.kind for entry in change.timeline] == [TimelineKind.ACKNOWLEDGED]
    entry = change.timeline[0]
    assert entry.at == london(MON, "10:15") and "alice" in entry.message
    incident = change.incident
    assert (incident.responded_at, incident.acknowledged_by) == (london(MON, "10:15"), "alice")
    assert incident.next_update_due_at == london(MON, "14:15")  # Sev1: 4 business hours


def test_a_second_acknowledgement_keeps_the_first_response() -> None:
    desk = Desk()
    desk.probe(E500, now=london(MON, "10:00"))
    desk.ack(london(MON, "10:15"), by="alice")
    first = desk.current

    change = acknowledge(first, now=london(MON, "11:00"), by="bob", sla=STANDARD)

    assert change.incident.responded_at == london(MON, "10:15")
    assert change.incident.acknowledged_by == "alice"
    assert change.incident.next_update_due_at == first.next_update_due_at
    assert change.timeline == ()  # nothing new to record


def test_acknowledge_needs_a_name() -> None:
    desk = Desk()
    desk.probe(E500, now=london(MON, "10:00"))
    with pytest.raises(ValueError, match="say who acts"):
        acknowledge(desk.current, now=london(MON, "10:15"), by=" ", sla=STANDARD)


@pytest.mark.parametrize(
    ("sla", "posted_at", "next_due"),
    [
        pytest.param(STANDARD, london(MON, "10:00"), london(MON, "14:00"), id="standard in hours"),
        pytest.param(
            STANDARD, london(MON, "15:00"), london(TUE, "11:00"), id="standard over the night"
        ),
        pytest.param(RETAINER, london(MON, "15:00"), london(MON, "19:00"), id="retainer 24x7"),
        pytest.param(
            STANDARD, london(SAT, "10:00"), london(MON, "13:00"), id="standard on a saturday"
        ),
    ],
)
def test_post_update_is_the_first_response_and_resets_the_cadence(
    sla: SlaContext, posted_at: datetime, next_due: datetime
) -> None:
    desk = Desk(sla=sla)
    desk.probe(E500, now=london(SAT, "09:00"))
    text = "We found the fault.\nThe database is being restored."

    change = post_update(desk.current, now=posted_at, by="alice", text=text, sla=sla)

    assert [entry.kind for entry in change.timeline] == [TimelineKind.CLIENT_UPDATE]
    entry = change.timeline[0]
    assert entry.at == posted_at
    assert entry.evidence == {"text": text, "by": "alice"}
    assert entry.message == "client update by alice: We found the fault."
    incident = change.incident
    assert (incident.responded_at, incident.last_update_at) == (posted_at, posted_at)
    assert incident.next_update_due_at == next_due


def test_a_later_update_moves_the_cadence_not_the_response() -> None:
    desk = Desk()
    desk.probe(E500, now=london(MON, "10:00"))
    desk.ack(london(MON, "10:15"))
    assert desk.current.next_update_due_at == london(MON, "14:15")

    step = desk.update(london(MON, "12:00"), "Still on it.")

    assert step.incident.responded_at == london(MON, "10:15")
    assert step.incident.last_update_at == london(MON, "12:00")
    assert step.incident.next_update_due_at == london(MON, "16:00")


@pytest.mark.parametrize("text", ["", "   ", "\n\t\n"])
def test_an_update_needs_text(text: str) -> None:
    desk = Desk()
    desk.probe(E500, now=london(MON, "10:00"))
    with pytest.raises(ValueError, match="needs text"):
        post_update(desk.current, now=london(MON, "10:30"), by="alice", text=text, sla=STANDARD)


def test_resolve_by_hand() -> None:
    desk = Desk()
    desk.probe(E500, now=london(MON, "10:00"))
    desk.ack(london(MON, "10:15"))

    change = resolve_by_hand(
        desk.current, now=london(MON, "11:00"), by="alice", note=" restarted php-fpm "
    )

    incident = change.incident
    assert incident.status is IncidentStatus.RESOLVED
    assert incident.resolved_at == london(MON, "11:00")
    assert incident.failing_checks == frozenset()
    assert incident.checks == frozenset({HOME.key})
    assert incident.next_update_due_at is None
    assert [(e.kind, e.at, e.message) for e in change.timeline] == [
        (
            TimelineKind.RESOLVED,
            london(MON, "11:00"),
            "resolved by hand by alice: restarted php-fpm",
        )
    ]
    assert resolved_by_hand(change.timeline[0])
    assert change.timeline[0].evidence == {
        "resolved_by": "alice",
        "forced": False,
        "still_failing": [],
        "note": "restarted php-fpm",
    }


def test_resolve_by_hand_is_refused_while_a_check_still_fails_unless_forced() -> None:
    desk = Desk()
    desk.probe(E500, now=london(MON, "10:00"))
    failing = {HOME.key}

    with pytest.raises(StillFailing, match=HOME.key) as refused:
        resolve_by_hand(desk.current, now=london(MON, "11:00"), by="alice", still_failing=failing)
    assert refused.value.checks == (HOME.key,)
    assert "force" in str(refused.value)
    # A check whose latest result passed (recovering, not yet resolved) does not refuse it.
    assert resolve_by_hand(desk.current, now=london(MON, "11:00"), by="alice").incident.resolved_at

    change = resolve_by_hand(
        desk.current,
        now=london(MON, "11:00"),
        by="alice",
        note="restarted php-fpm",
        still_failing=failing | {"acme/shop/other-site-check"},
        force=True,
    )
    [entry] = change.timeline
    assert change.incident.status is IncidentStatus.RESOLVED
    assert entry.message == (
        "resolved by hand by alice, forced while home still failed: restarted php-fpm"
    )
    assert entry.evidence == {
        "resolved_by": "alice",
        "forced": True,
        "still_failing": [HOME.key],
        "note": "restarted php-fpm",
    }
    assert resolved_by_hand(entry)


def test_a_resolution_by_the_checks_is_not_by_hand() -> None:
    desk = Desk()
    desk.probe(E500, now=london(MON, "10:00"))
    step = desk.probe(OK, now=london(MON, "10:05"))
    resolved = [e for e in step.timeline if e.kind is TimelineKind.RESOLVED]
    assert resolved and not resolved_by_hand(resolved[0])


def test_resolution_by_probe_and_by_hand_leave_the_same_clocks() -> None:
    resolved: list[Incident] = []
    for manual in (True, False):
        desk = Desk()
        desk.probe(E500, now=london(MON, "10:00"))
        desk.ack(london(MON, "10:30"))
        now = london(MON, "11:00")
        step = desk.resolve(now) if manual else desk.probe(OK, now=now)
        resolved.append(step.incident)
    by_hand, by_probe = resolved
    assert by_hand.next_update_due_at is None and by_probe.next_update_due_at is None
    assert (by_hand.status, by_hand.resolved_at, by_hand.failing_checks) == (
        by_probe.status,
        by_probe.resolved_at,
        by_probe.failing_checks,
    )


Action = Callable[[Incident, datetime], Change]


@pytest.mark.parametrize(
    "action",
    [
        pytest.param(
            lambda incident, now: acknowledge(incident, now=now, by="bob", sla=STANDARD),
            id="acknowledge",
        ),
        pytest.param(
            lambda incident, now: post_update(incident, now=now, by="bob", text="x", sla=STANDARD),
            id="post_update",
        ),
        pytest.param(
            lambda incident, now: resolve_by_hand(incident, now=now, by="bob"),
            id="resolve_by_hand",
        ),
    ],
)
def test_actions_on_a_resolved_incident_raise(action: Action) -> None:
    desk = Desk()
    desk.probe(E500, now=london(MON, "10:00"))
    desk.probe(OK, now=london(MON, "10:05"))
    assert desk.current.status is IncidentStatus.RESOLVED
    with pytest.raises(ValueError, match="INC-42 is resolved"):
        action(desk.current, london(MON, "10:30"))


# --- notifications -----------------------------------------------------------------------------


def test_severity_1_opening_mails_client_pages_oncall_and_calls_every_webhook() -> None:
    step = Desk().probe(E500, now=london(SAT, "03:00"))

    assert labels(step.out) == [
        ("client", MessageKind.OPENED),
        ("oncall", MessageKind.PAGE),
        ("webhook:chat", MessageKind.PAGE),
        ("webhook:pager", MessageKind.PAGE),
    ]
    [opened] = emails(step.out, Audience.CLIENT)
    assert opened.to == CLIENT.contacts
    assert opened.subject == "[INC-42] Severity 1: shop.acme.example is down"
    assert_one_thread([opened], client_root(london(SAT, "03:00")))
    [page] = emails(step.out, Audience.ONCALL)
    assert page.to == MESSAGES.oncall
    assert_one_thread([page], oncall_root(london(SAT, "03:00")))
    for hook in webhooks(step.out):
        assert (hook.incident_id, hook.body["severity"], hook.body["http_status"]) == (42, 1, 500)
    assert {THREAD_MARK[Audience.CLIENT], THREAD_MARK[Audience.ONCALL]} <= step.incident.sla_marks


def test_severity_3_opening_skips_the_client_until_it_escalates() -> None:
    desk = Desk()
    opening = desk.probe(E500, now=london(MON, "10:00"), severity=S3)
    assert labels(opening.out) == [("oncall", MessageKind.NOTIFY)]
    assert THREAD_MARK[Audience.CLIENT] not in opening.incident.sla_marks

    escalation = desk.probe(SLOW, now=london(MON, "11:00"))

    assert labels(escalation.out) == [("client", MessageKind.ESCALATED)]
    [first] = emails(escalation.out, Audience.CLIENT)
    assert_one_thread([first], client_root(london(MON, "10:00")))
    assert first.subject == "[INC-42] Escalated to Severity 2: shop.acme.example: pages load slowly"
    assert THREAD_MARK[Audience.CLIENT] in escalation.incident.sla_marks


def test_severity_3_escalating_to_1_opens_the_client_thread_and_pages() -> None:
    desk = Desk()
    desk.probe(E500, now=london(MON, "10:00"), severity=S3)
    step = desk.probe(E500, now=london(MON, "11:00"))
    assert labels(step.out) == [
        ("client", MessageKind.ESCALATED),
        ("oncall", MessageKind.PAGE),
        ("webhook:chat", MessageKind.PAGE),
        ("webhook:pager", MessageKind.PAGE),
    ]
    assert_one_thread(emails(step.out, Audience.CLIENT), client_root(london(MON, "10:00")))
    # On-call heard of the opening: the page replies in its thread.
    assert_one_thread(emails(desk.sent, Audience.ONCALL), oncall_root(london(MON, "10:00")))


def test_update_mail_carries_the_text_and_replies_to_the_root() -> None:
    desk = Desk()
    desk.probe(E500, now=london(MON, "10:00"))
    text = "We found the fault: a full disk.\nNext update by 14:00."

    step = desk.update(london(MON, "10:30"), text)

    [mail] = step.out
    assert isinstance(mail, OutgoingEmail)
    assert (mail.audience, mail.kind) == (Audience.CLIENT, MessageKind.UPDATE)
    assert "We found the fault: a full disk." in mail.text
    assert "Next update by 14:00." in mail.text
    root = client_root(london(MON, "10:00"))
    assert (mail.in_reply_to, mail.references) == (root, (root,))
    assert mail.message_id != root


def test_an_update_to_an_unmailed_client_opens_its_thread() -> None:
    desk = Desk()
    desk.probe(E500, now=london(MON, "10:00"), severity=S3)
    step = desk.update(london(MON, "10:30"), "We are looking into the broken image.")
    assert labels(step.out) == [("client", MessageKind.UPDATE)]
    assert_one_thread(emails(step.out, Audience.CLIENT), client_root(london(MON, "10:00")))


@pytest.mark.parametrize(
    ("severity", "resolved_mail"),
    [(S1, [("client", MessageKind.RESOLVED)]), (S2, [("client", MessageKind.RESOLVED)]), (S3, [])],
)
def test_resolved_mail_only_when_the_client_thread_exists(
    severity: Severity, resolved_mail: list[tuple[str, MessageKind]]
) -> None:
    by_hand, by_probe = Desk(), Desk()
    for desk in (by_hand, by_probe):
        desk.probe(E500, now=london(MON, "10:00"), severity=severity)

    assert labels(by_hand.resolve(london(MON, "11:00")).out) == resolved_mail
    by_recovery = by_probe.probe(OK, now=london(MON, "11:00"))
    assert by_recovery.kinds == [TimelineKind.CHECK_RECOVERED, TimelineKind.RESOLVED]
    assert labels(by_recovery.out) == resolved_mail
    for desk in (by_hand, by_probe):
        client_mails = emails(desk.sent, Audience.CLIENT)
        if client_mails:
            assert_one_thread(client_mails, client_root(london(MON, "10:00")))


@pytest.mark.parametrize(
    ("acked", "tick_at", "mail"),
    [
        pytest.param(False, london(MON, "14:00"), MessageKind.RESPONSE_BREACHED, id="breach"),
        pytest.param(True, london(MON, "14:00"), MessageKind.UPDATE_REMINDER, id="reminder"),
        pytest.param(True, london(MON, "14:30"), MessageKind.UPDATE_OVERDUE, id="overdue"),
    ],
)
def test_sla_events_mail_oncall_in_its_thread(
    acked: bool, tick_at: datetime, mail: MessageKind
) -> None:
    desk = Desk()
    desk.probe(E500, now=london(MON, "10:00"))
    if acked:
        desk.ack(london(MON, "10:30"))

    step = desk.tick(tick_at)

    assert step is not None
    assert labels(step.out) == [("oncall", mail)]
    assert_one_thread(emails(desk.sent, Audience.ONCALL), oncall_root(london(MON, "10:00")))
    assert not webhooks(step.out)  # webhooks page; they do not nag


def test_a_client_without_contacts_gets_no_mail() -> None:
    desk = Desk(client=replace(CLIENT, contacts=()))
    steps = [
        desk.probe(E500, now=london(MON, "10:00")),
        desk.update(london(MON, "10:30"), "On it."),
        desk.resolve(london(MON, "11:00")),
    ]
    assert [labels(step.out) for step in steps] == [
        [
            ("oncall", MessageKind.PAGE),
            ("webhook:chat", MessageKind.PAGE),
            ("webhook:pager", MessageKind.PAGE),
        ],
        [],
        [],
    ]
    assert THREAD_MARK[Audience.CLIENT] not in desk.current.sla_marks


def test_without_oncall_addresses_webhooks_still_page() -> None:
    desk = Desk(messages=replace(MESSAGES, oncall=()))
    step = desk.probe(E500, now=london(SAT, "03:00"))
    assert labels(step.out) == [
        ("client", MessageKind.OPENED),
        ("webhook:chat", MessageKind.PAGE),
        ("webhook:pager", MessageKind.PAGE),
    ]
    assert THREAD_MARK[Audience.ONCALL] not in step.incident.sla_marks
    # The breach is still recorded; there is nobody to mail it to, and webhooks only page.
    assert desk.tick(london(MON, "12:59")) is None
    breach = desk.tick(london(MON, "13:00"))
    assert breach is not None
    assert (breach.kinds, breach.out) == ([BREACHED], [])


def test_without_webhooks_a_page_is_an_email() -> None:
    step = Desk(policy=NotifyPolicy()).probe(E500, now=london(MON, "10:00"))
    assert labels(step.out) == [("client", MessageKind.OPENED), ("oncall", MessageKind.PAGE)]


def test_notifications_need_the_stored_id() -> None:
    desk = Desk()
    change = after_engine(
        before=None,
        after=Incident(
            id=None,
            client="acme",
            site="acme/shop",
            title="shop.acme.example is down",
            severity=S1,
            status=IncidentStatus.OPEN,
            opened_at=london(MON, "10:00"),
        ),
        timeline=(TimelineEntry(at=london(MON, "10:00"), kind=OPENED, message="opened"),),
        now=london(MON, "10:00"),
        sla=STANDARD,
    )
    with pytest.raises(ValueError, match="no id yet"):
        notifications(
            change.incident,
            change.timeline,
            now=london(MON, "10:00"),
            client=desk.client,
            ctx=desk.messages,
            policy=desk.policy,
        )


# --- a whole life cycle -----------------------------------------------------------------------


def test_life_cycle_of_one_incident() -> None:
    desk = Desk()
    timeline: list[TimelineKind] = []

    def run(step: Step | None) -> None:
        assert step is not None
        timeline.extend(step.kinds)

    run(desk.probe(SLOW, now=london(MON, "10:00")))  # Sev2 in business hours
    run(desk.probe(E500, now=london(MON, "10:20")))  # escalates to Sev1
    run(desk.ack(london(MON, "10:30")))  # update due 14:30
    assert desk.tick(london(MON, "13:59")) is None
    run(desk.tick(london(MON, "14:00")))  # reminder
    run(desk.tick(london(MON, "14:30")))  # overdue
    run(desk.update(london(MON, "14:45"), "The hosting provider replaced a failed disk."))
    run(desk.probe(OK, now=london(MON, "15:00")))  # recovered: resolved
    assert desk.tick(london(MON, "19:00")) is None

    assert timeline == [
        OPENED,
        NOTIFIED,
        ESCALATED,
        PAGED,
        TimelineKind.ACKNOWLEDGED,
        REMINDER,
        OVERDUE,
        TimelineKind.CLIENT_UPDATE,
        TimelineKind.CHECK_RECOVERED,
        TimelineKind.RESOLVED,
    ]
    assert labels(desk.sent) == [
        ("client", MessageKind.OPENED),
        ("oncall", MessageKind.NOTIFY),
        ("client", MessageKind.ESCALATED),
        ("oncall", MessageKind.PAGE),
        ("webhook:chat", MessageKind.PAGE),
        ("webhook:pager", MessageKind.PAGE),
        ("oncall", MessageKind.UPDATE_REMINDER),
        ("oncall", MessageKind.UPDATE_OVERDUE),
        ("client", MessageKind.UPDATE),
        ("client", MessageKind.RESOLVED),
    ]
    assert_one_thread(emails(desk.sent, Audience.CLIENT), client_root(london(MON, "10:00")))
    assert_one_thread(emails(desk.sent, Audience.ONCALL), oncall_root(london(MON, "10:00")))
    assert all(item.incident_id == INCIDENT_ID for item in desk.sent)
    subjects = [mail.subject for mail in emails(desk.sent, Audience.CLIENT)]
    assert subjects == [
        "[INC-42] Severity 2: shop.acme.example: pages load slowly",
        "[INC-42] Escalated to Severity 1: shop.acme.example is down",
        "[INC-42] Update: shop.acme.example is down",
        "[INC-42] Resolved: shop.acme.example is down",
    ]
    final = desk.current
    assert final.status is IncidentStatus.RESOLVED
    assert final.responded_at == london(MON, "10:30")
    assert final.last_update_at == london(MON, "14:45")


def test_an_internal_note_mails_nobody_and_keeps_the_cadence() -> None:
    desk = Desk()
    desk.probe(E500, now=london(SAT, "09:00"))
    before = desk.current
    change = post_update(
        before, now=london(SAT, "10:00"), by="alice", text="db01 again", sla=desk.sla, public=False
    )
    assert [entry.kind for entry in change.timeline] == [TimelineKind.INTERNAL_NOTE]
    assert change.incident == before  # no response recorded, no cadence reset
    assert change.timeline[0].evidence == {"text": "db01 again", "by": "alice", "public": False}


# --- the whole site down after a part failed first ------------------------------------------

CHECKOUT = replace(HOME, key="acme/shop/checkout", name="Checkout", availability=False)


def test_the_site_going_down_after_a_part_tells_the_client_once_in_its_thread() -> None:
    desk = Desk()
    opened_at = london(MON, "10:00")
    [opening] = emails(desk.probe(E500, now=opened_at, check=CHECKOUT).out, Audience.CLIENT)
    assert (
        opening.subject == "[INC-42] Severity 1: shop.acme.example: Checkout unreachable (HTTP 500)"
    )

    # The home page fails as severely a minute later: no escalation, the title becomes "down".
    down = desk.probe(E500, now=london(MON, "10:01"))
    assert down.kinds == [TimelineKind.CHECK_FAILED]
    assert down.incident.title == "shop.acme.example is down"
    [told] = emails(down.out, Audience.CLIENT)
    assert told.kind is MessageKind.SITE_DOWN
    assert told.subject == "[INC-42] Now the whole site: shop.acme.example is down"
    assert (told.in_reply_to, told.references) == (
        client_root(opened_at),
        (client_root(opened_at),),
    )
    assert "now affects your whole site" in told.text
    assert "The whole site (shop.acme.example)" in told.text
    assert emails(down.out, Audience.ONCALL) == []  # on-call was paged already

    # The home page recovers and fails again while checkout still fails: the client knows.
    desk.probe(OK, now=london(MON, "10:05"))
    again = desk.probe(E500, now=london(MON, "10:06"))
    assert again.kinds == [TimelineKind.CHECK_FAILED]
    assert again.incident.title == "shop.acme.example is down"
    assert emails(again.out, Audience.CLIENT) == []
    assert [m.kind for m in emails(desk.sent, Audience.CLIENT)] == [
        MessageKind.OPENED,
        MessageKind.SITE_DOWN,
    ]


def test_a_retitle_that_is_not_the_site_down_stays_on_the_timeline() -> None:
    desk = Desk()
    desk.probe(E500, now=london(MON, "10:00"), check=CHECKOUT)
    # The whole site turns slow: the title says so, but nothing is down that was not.
    slow = desk.probe(SLOW, now=london(MON, "10:01"))
    assert slow.kinds == [TimelineKind.CHECK_FAILED]
    assert slow.incident.title.startswith("shop.acme.example: pages load slowly")
    assert emails(slow.out, Audience.CLIENT) == []


@pytest.mark.parametrize("marked", [True, False], ids=["marked", "opened before the mark"])
def test_a_site_opened_down_is_not_told_again_when_a_part_fails_too(marked: bool) -> None:
    desk = Desk()
    opened = desk.probe(E500, now=london(MON, "10:00"))
    assert SITE_DOWN_MARK in opened.incident.sla_marks
    if not marked:  # its opening mail went out before the mark existed
        desk.incident = replace(
            opened.incident, sla_marks=opened.incident.sla_marks - {SITE_DOWN_MARK}
        )
    later = desk.probe(E500, now=london(MON, "10:01"), check=CHECKOUT)
    assert later.kinds == [TimelineKind.CHECK_FAILED]
    assert later.incident.title == "shop.acme.example is down"
    assert emails(later.out, Audience.CLIENT) == []
