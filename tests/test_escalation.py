"""Escalation (`incidents.escalation` and its use in `incidents.flow`): which pages fall due
between instants, that acknowledging stops them, repeats, and the outbox rows of a page."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from incidents.calendar import BusinessCalendar
from incidents.escalation import (
    Escalation,
    EscalationPolicy,
    next_page_at,
    paged_count,
    pages_due,
    schedule,
    started_at,
    with_paged,
)
from incidents.flow import (
    NotifyPolicy,
    Person,
    after_engine,
    after_tick,
    next_wakeup,
    notifications,
)
from incidents.messages import ClientInfo, MessageContext
from incidents.model import Incident, IncidentStatus, TimelineEntry, TimelineKind
from incidents.outgoing import Audience, MessageKind, OutgoingEmail, OutgoingWebhook
from incidents.rotation import Rotation
from incidents.routes import Event, Route
from incidents.severity import Severity
from incidents.sla import DEFAULT_PLANS, SlaContext
from monitor.config import ConfigError, load_config_text
from tests.monitor_yaml import ONE_CLIENT

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a Monday, 11:00 in Berlin
SLA = SlaContext(
    business=BusinessCalendar(timezone=ZoneInfo("Europe/Berlin")), plan=DEFAULT_PLANS["standard"]
)
POLICY = EscalationPolicy.model_validate(
    {
        "levels": [
            {"after": "0m", "notify": ["oncall"]},
            {"after": "15m", "notify": ["bob"]},
            {"after": "30m", "notify": ["lead"]},
        ],
        "repeat": "30m",
    }
)
NO_REPEAT = POLICY.model_copy(update={"repeat": None})
ROTATION = Rotation(
    every="week", handover="mon 09:00", start="2026-11-23", people=["alice", "carol"]
)
ESCALATION = Escalation(
    policies={Severity.CRITICAL: POLICY}, rotation=ROTATION, zone=ZoneInfo("Europe/Berlin")
)
PEOPLE = {
    name: Person(name=name, email=f"{name}@agency.example")
    for name in ("alice", "bob", "carol", "lead")
}
CLIENT = ClientInfo(id="acme", name="Acme", contacts=("ops@acme.example",), timezone="UTC")
MESSAGES = MessageContext(sender_domain="agency.example", oncall=("team@agency.example",))


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def levels(
    paged: int, now: float, *, policy: EscalationPolicy = POLICY, ack: float | None = None
) -> list[tuple[int, int]]:
    due = pages_due(
        policy,
        start=T0,
        paged=paged,
        acknowledged_at=None if ack is None else minutes(ack),
        now=minutes(now),
    )
    return [(page.level, page.repeat) for page in due]


@pytest.mark.parametrize(
    ("paged", "now", "expected"),
    [
        (0, 0, [(1, 0)]),  # primary at once
        (1, 14.9, []),
        (1, 15, [(2, 0)]),  # secondary at 15 min
        (2, 29, []),
        (2, 30, [(3, 0)]),
        (3, 59, []),
        (3, 60, [(3, 1)]),  # the last level again every 30 min
        (4, 90, [(3, 2)]),
        (0, 16, [(1, 0), (2, 0)]),  # down for a while: each level not yet paged is paged
        (3, 125, [(3, 3)]),  # missed repeats collapse into the latest
        (2, 75, [(3, 1)]),  # a repeat due with its level's first page replaces it
    ],
)
def test_pages_due_between_instants(
    paged: int, now: float, expected: list[tuple[int, int]]
) -> None:
    assert levels(paged, now) == expected


def test_acknowledging_stops_every_page() -> None:
    assert levels(2, 30, ack=20) == []
    assert levels(2, 300, ack=20) == []
    assert next_page_at(POLICY, start=T0, paged=2, acknowledged_at=minutes(20)) is None


def test_next_page_and_no_repeat() -> None:
    assert next_page_at(POLICY, start=T0, paged=1, acknowledged_at=None) == minutes(15)
    assert next_page_at(POLICY, start=T0, paged=3, acknowledged_at=None) == minutes(60)
    assert next_page_at(NO_REPEAT, start=T0, paged=3, acknowledged_at=None) is None
    assert levels(3, 600, policy=NO_REPEAT) == []


def test_marks_keep_one_count_per_severity() -> None:
    marks = with_paged(frozenset({"response_breached"}), Severity.CRITICAL, 2)
    marks = with_paged(marks, Severity.CRITICAL, 3)
    assert paged_count(marks, Severity.CRITICAL) == 3
    assert paged_count(marks, Severity.MAJOR) == 0
    assert marks == {"response_breached", "page:1:3"}
    assert started_at(marks, Severity.CRITICAL, opened_at=T0) == T0


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        ({"levels": []}, "at least 1 item"),
        (
            {"levels": [{"after": "15m", "notify": ["a"]}, {"after": "0m", "notify": ["b"]}]},
            "in order",
        ),
        ({"levels": [{"after": "0m", "notify": []}]}, "at least 1 item"),
        ({"levels": [{"after": "soon", "notify": ["a"]}]}, "such as 10m, 30m or 2h"),
        ({"levels": [{"after": "0m", "notify": ["a"]}], "repeat": "0m"}, "longer than 0"),
    ],
)
def test_policy_errors_say_how_to_write_it(data: dict[str, object], phrase: str) -> None:
    with pytest.raises(ValidationError, match=phrase):
        EscalationPolicy.model_validate(data)


# --- through incidents.flow -----------------------------------------------------------------


def opened(severity: Severity = Severity.CRITICAL) -> tuple[Incident, tuple[TimelineEntry, ...]]:
    incident = Incident(
        id=42,
        client="acme",
        site="acme/shop",
        title="shop.acme.example is down",
        severity=severity,
        status=IncidentStatus.OPEN,
        opened_at=T0,
        failing_checks=frozenset({"acme/shop/home"}),
        checks=frozenset({"acme/shop/home"}),
    )
    entry = TimelineEntry(at=T0, kind=TimelineKind.OPENED, message="opened", severity=severity)
    return incident, (entry,)


def test_flow_pages_each_level_once_and_names_who() -> None:
    incident, timeline = opened()
    change = after_engine(
        before=None, after=incident, timeline=timeline, now=T0, sla=SLA, escalation=ESCALATION
    )
    paged = [e for e in change.timeline if e.kind is TimelineKind.PAGED]
    assert [e.message for e in paged] == ["paged alice (level 1, at once)"]
    assert not any(e.kind is TimelineKind.ONCALL_PAGED for e in change.timeline)
    incident = change.incident
    assert next_wakeup(incident, sla=SLA, escalation=ESCALATION) == minutes(15)
    assert after_tick(incident, now=minutes(14), sla=SLA, escalation=ESCALATION) is None
    second = after_tick(incident, now=minutes(15), sla=SLA, escalation=ESCALATION)
    assert second is not None
    assert [e.message for e in second.timeline] == [
        "paged bob (level 2, 15 min without acknowledgement)"
    ]
    # The same instant again: nothing new (the count is in the incident's marks).
    assert after_tick(second.incident, now=minutes(15), sla=SLA, escalation=ESCALATION) is None


def test_flow_without_a_policy_pages_as_before() -> None:
    incident, timeline = opened()
    change = after_engine(before=None, after=incident, timeline=timeline, now=T0, sla=SLA)
    assert [e.kind for e in change.timeline][-1] is TimelineKind.ONCALL_PAGED
    assert not any(e.kind is TimelineKind.PAGED for e in change.timeline)


def test_an_escalation_to_the_severity_starts_its_schedule_then() -> None:
    incident, timeline = opened(Severity.MAJOR)
    change = after_engine(
        before=None, after=incident, timeline=timeline, now=T0, sla=SLA, escalation=ESCALATION
    )
    major = change.incident
    critical = replace(major, severity=Severity.CRITICAL)
    rise = TimelineEntry(at=minutes(40), kind=TimelineKind.ESCALATED, message="escalated")
    risen = after_engine(
        before=major,
        after=critical,
        timeline=(rise,),
        now=minutes(40),
        sla=SLA,
        escalation=ESCALATION,
    )
    assert [e.message for e in risen.timeline if e.kind is TimelineKind.PAGED] == [
        "paged alice (level 1, at once)"
    ]
    assert next_wakeup(risen.incident, sla=SLA, escalation=ESCALATION) == minutes(55)


def test_a_page_goes_to_each_person_and_to_the_team_without_a_rotation() -> None:
    team = Escalation(policies={Severity.CRITICAL: POLICY})
    incident, timeline = opened()
    change = after_engine(
        before=None, after=incident, timeline=timeline, now=T0, sla=SLA, escalation=team
    )
    entry = next(e for e in change.timeline if e.kind is TimelineKind.PAGED)
    assert entry.message == "paged on-call (level 1, at once)"
    policy = NotifyPolicy(webhook_targets=("oncall",), people=PEOPLE)
    _, out = notifications(
        change.incident, (entry,), now=T0, client=CLIENT, ctx=MESSAGES, policy=policy
    )
    mails = [m for m in out if isinstance(m, OutgoingEmail)]
    assert [m.to for m in mails] == [("team@agency.example",)]
    assert [m.kind for m in out] == [MessageKind.PAGE, MessageKind.PAGE]
    assert isinstance(out[1], OutgoingWebhook)
    # A level naming two people: one mail each, with ids stable across compositions.
    both = replace(
        entry, evidence={**(entry.evidence or {}), "people": ["bob", "lead"], "oncall_team": False}
    )
    _, first = notifications(
        change.incident, (both,), now=T0, client=CLIENT, ctx=MESSAGES, policy=policy
    )
    _, again = notifications(
        change.incident, (both,), now=T0, client=CLIENT, ctx=MESSAGES, policy=policy
    )
    assert [m.to for m in first if isinstance(m, OutgoingEmail)] == [
        ("bob@agency.example",),
        ("lead@agency.example",),
    ]
    ids = [m.message_id for m in first if isinstance(m, OutgoingEmail)]
    assert ids == [m.message_id for m in again if isinstance(m, OutgoingEmail)]
    assert len(set(ids)) == 2


# --- the YAML -------------------------------------------------------------------------------

CONFIG = (
    """\
people:
  - {name: alice, email: alice@agency.example}
oncall:
  rotation:
    start: 2026-11-23
    people: [alice, zoe]
escalation:
  1:
    levels:
      - {after: 0m, notify: [oncall]}
      - {after: 15m, notify: [bob]}
"""
    + ONE_CLIENT
)


def test_unknown_people_are_reported_with_file_line_and_the_fix() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text(CONFIG, filename="monitor.yaml", environ={})
    lines = str(caught.value).splitlines()
    assert lines[0].startswith("monitor.yaml:3: oncall: ")
    assert "oncall.rotation.people[1]: 'zoe' is not in `people` (people: alice)" in lines[0]
    assert lines[1].startswith("monitor.yaml:7: escalation: ")
    assert "escalation.1.levels[1].notify: 'bob' is not in `people`" in lines[1]
    assert "add `- {name: bob, email: bob@agency.example}` to `people`" in lines[1]


def test_a_valid_escalation_loads_and_a_severity_left_out_keeps_todays_paging() -> None:
    text = CONFIG.replace("[alice, zoe]", "[alice]").replace("[bob]", "[alice]")
    config = load_config_text(text, filename="monitor.yaml", environ={})
    assert list(config.escalation) == [Severity.CRITICAL]
    assert config.escalation[Severity.CRITICAL].levels[1].after == timedelta(minutes=15)
    assert config.oncall.rotation is not None and config.oncall.rotation.people == ["alice"]


def _walked(paged: int, now: datetime) -> list[tuple[int, int]]:
    """pages_due as a walk through the schedule: the definition the arithmetic must match."""
    due: list[tuple[int, int]] = []
    for page in schedule(POLICY, start=T0):
        if page.due_at > now:
            break
        if page.index < paged:
            continue
        if due and page.repeat and due[-1][0] == page.level:
            due[-1] = (page.level, page.repeat)
        else:
            due.append((page.level, page.repeat))
    return due


@pytest.mark.parametrize("paged", range(8))
def test_pages_due_matches_a_walk_through_the_schedule(paged: int) -> None:
    for step in range(0, 200, 5):
        assert levels(paged, step) == _walked(paged, minutes(step)), (paged, step)
        nxt = next(p for p in schedule(POLICY, start=T0) if p.index >= paged).due_at
        assert next_page_at(POLICY, start=T0, paged=paged, acknowledged_at=None) == nxt


def test_a_page_reaches_a_persons_own_channels_and_routes_decide_the_teams() -> None:
    incident, timeline = opened()
    change = after_engine(
        before=None, after=incident, timeline=timeline, now=T0, sla=SLA, escalation=ESCALATION
    )
    entry = next(e for e in change.timeline if e.kind is TimelineKind.PAGED)
    to_bob = replace(
        entry, evidence={**(entry.evidence or {}), "people": ["bob"], "oncall_team": False}
    )
    people = {
        **PEOPLE,
        "bob": Person(name="bob", email="bob@agency.example", channels=("bob-sms",)),
    }
    policy = NotifyPolicy(chat_channels=("bob-sms", "team-chat"), people=people)
    _, out = notifications(
        change.incident, (to_bob,), now=T0, client=CLIENT, ctx=MESSAGES, policy=policy
    )
    assert [(type(m).__name__, getattr(m, "channel", None)) for m in out] == [
        ("OutgoingEmail", None),
        ("OutgoingChat", "bob-sms"),
    ]
    # The team's page (no rotation) goes where the routes send `paged`: here chat only.
    team = replace(entry, evidence={**(entry.evidence or {}), "people": [], "oncall_team": True})
    chat_only = replace(
        policy, routes=(Route(channels=("team-chat",), events=frozenset({Event.PAGED})),)
    )
    _, out = notifications(
        change.incident, (team,), now=T0, client=CLIENT, ctx=MESSAGES, policy=chat_only
    )
    assert [(type(m).__name__, getattr(m, "channel", None)) for m in out] == [
        ("OutgoingChat", "team-chat")
    ]


def test_a_route_for_openings_hears_a_severity_paged_by_its_escalation_policy() -> None:
    # With a policy, the opening's on-call message is a PAGED entry (not ONCALL_PAGED): a
    # route that asks for `opened` must hear of it all the same, once per channel.
    incident, timeline = opened()
    change = after_engine(
        before=None, after=incident, timeline=timeline, now=T0, sla=SLA, escalation=ESCALATION
    )
    routes = (
        Route(channels=("team-chat", "webhook"), events=frozenset({Event.OPENED})),
        Route(channels=("email",), events=frozenset({Event.RESOLVED})),
    )
    policy = NotifyPolicy(
        chat_channels=("team-chat",), webhook_targets=("oncall",), routes=routes, people=PEOPLE
    )
    _, out = notifications(
        change.incident, change.timeline, now=T0, client=CLIENT, ctx=MESSAGES, policy=policy
    )
    oncall = [m for m in out if getattr(m, "audience", None) is not Audience.CLIENT]
    assert [(type(m).__name__, getattr(m, "channel", None), m.kind) for m in oncall] == [
        ("OutgoingEmail", None, MessageKind.PAGE),  # alice, on call
        ("OutgoingWebhook", None, MessageKind.PAGE),
        ("OutgoingChat", "team-chat", MessageKind.PAGE),
    ]
    assert oncall[0].to == ("alice@agency.example",)  # type: ignore[union-attr]
    # The team's own page (no rotation) hears it in one message per channel, not two.
    team = Escalation(policies={Severity.CRITICAL: POLICY})
    change = after_engine(
        before=None, after=incident, timeline=timeline, now=T0, sla=SLA, escalation=team
    )
    every = replace(policy, routes=(Route(channels=("team-chat", "email")),))
    _, out = notifications(
        change.incident, change.timeline, now=T0, client=CLIENT, ctx=MESSAGES, policy=every
    )
    oncall = [m for m in out if getattr(m, "audience", None) is not Audience.CLIENT]
    assert [(type(m).__name__, getattr(m, "channel", None), m.kind) for m in oncall] == [
        ("OutgoingEmail", None, MessageKind.PAGE),
        ("OutgoingChat", "team-chat", MessageKind.PAGE),
    ]
    # A later level pages bob alone: no second `opened`.
    later = after_tick(change.incident, now=minutes(15), sla=SLA, escalation=ESCALATION)
    assert later is not None
    _, out = notifications(
        later.incident, later.timeline, now=minutes(15), client=CLIENT, ctx=MESSAGES, policy=policy
    )
    assert [(type(m).__name__, m.kind) for m in out] == [("OutgoingEmail", MessageKind.PAGE)]


def test_a_severity_2_page_does_not_say_it_is_a_severity_1() -> None:
    major = Escalation(policies={Severity.MAJOR: NO_REPEAT}, rotation=ROTATION)
    incident, timeline = opened(Severity.MAJOR)
    change = after_engine(
        before=None, after=incident, timeline=timeline, now=T0, sla=SLA, escalation=major
    )
    policy = NotifyPolicy(people=PEOPLE)
    _, out = notifications(
        change.incident, change.timeline, now=T0, client=CLIENT, ctx=MESSAGES, policy=policy
    )
    (page,) = [m for m in out if isinstance(m, OutgoingEmail) and m.kind is MessageKind.PAGE]
    assert "Severity 2 (Major) incident INC-42 needs a response now" in " ".join(page.text.split())
    for text in (page.text, page.html):
        assert "Severity 1 bypasses the queue" not in text
    # A Severity 1's page still says so.
    incident, timeline = opened()
    change = after_engine(
        before=None, after=incident, timeline=timeline, now=T0, sla=SLA, escalation=ESCALATION
    )
    _, out = notifications(
        change.incident, change.timeline, now=T0, client=CLIENT, ctx=MESSAGES, policy=policy
    )
    (page,) = [m for m in out if isinstance(m, OutgoingEmail) and m.kind is MessageKind.PAGE]
    assert "Severity 1 bypasses the queue" in " ".join(page.text.split())
