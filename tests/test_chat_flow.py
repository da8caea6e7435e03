"""Chat messages and routes in the incident flow, as pure values: what `notifications` queues
for chat channels, the on-call email and webhook under routes, and the chat text itself."""

from __future__ import annotations

from dataclasses import replace

from incidents.chat_text import chat_text
from incidents.connectivity import ConnectivityLost
from incidents.connectivity_notices import as_chat, connectivity_lost, episode_since
from incidents.flow import NotifyPolicy
from incidents.outgoing import (
    Audience,
    MessageKind,
    NoticeKind,
    Outgoing,
    OutgoingChat,
    OutgoingEmail,
)
from incidents.routes import Event, Hours, Route
from tests.test_flow import (
    CLIENT,
    E500,
    LONDON_HOURS,
    MESSAGES,
    MON,
    S2,
    SAT,
    SLOW,
    Desk,
    Step,
    london,
)

CHATS = ("team", "pager")


def chats(out: list[Outgoing]) -> list[tuple[str, MessageKind]]:
    return [(item.channel, item.kind) for item in out if isinstance(item, OutgoingChat)]


def oncall_mails(out: list[Outgoing]) -> list[MessageKind]:
    return [
        item.kind
        for item in out
        if isinstance(item, OutgoingEmail) and item.audience is Audience.ONCALL
    ]


def test_without_routes_every_chat_channel_hears_a_severity_1_page_once() -> None:
    desk = Desk(policy=NotifyPolicy(webhook_targets=("oncall",), chat_channels=CHATS))
    step = desk.probe(E500, now=london(SAT, "03:00"))

    assert chats(step.out) == [("team", MessageKind.PAGE), ("pager", MessageKind.PAGE)]
    assert oncall_mails(step.out) == [MessageKind.PAGE]
    team, pager = (item for item in step.out if isinstance(item, OutgoingChat))
    assert (team.title, team.body) == (pager.title, pager.body)
    assert team.idempotency_key != pager.idempotency_key
    assert team.incident_id == 42
    # A Severity 2 tells on-call by mail only, as before routes.
    other = Desk(policy=NotifyPolicy(chat_channels=CHATS)).probe(SLOW, now=london(MON, "10:00"))
    assert chats(other.out) == []
    assert oncall_mails(other.out) == [MessageKind.NOTIFY]


def test_routes_decide_who_hears_what() -> None:
    routes = (
        Route(channels=("pager",), events=frozenset({Event.PAGED}), hours=Hours.AFTER_HOURS),
        Route(channels=("team",), events=frozenset({Event.OPENED, Event.RESOLVED})),
        Route(channels=("email",), severities=frozenset({S2})),
    )
    policy = NotifyPolicy(chat_channels=CHATS, routes=routes, agency_hours=LONDON_HOURS)

    night = Desk(policy=policy)
    opened = night.probe(E500, now=london(SAT, "03:00"))
    # Severity 1 at night: the pager (after hours) and the team room (opened); no on-call
    # email, since no route gives it Severity 1.
    assert chats(opened.out) == [("pager", MessageKind.PAGE), ("team", MessageKind.PAGE)]
    assert oncall_mails(opened.out) == []
    resolved = night.probe(replace(E500, outcome=E500.outcome.OK), now=london(SAT, "04:00"))
    assert chats(resolved.out) == [("team", MessageKind.RESOLVED)]

    day = Desk(policy=policy).probe(E500, now=london(MON, "10:00"))
    assert chats(day.out) == [("team", MessageKind.PAGE)]  # the pager sleeps in hours

    slow = Desk(policy=policy).probe(SLOW, now=london(MON, "10:00"))
    assert chats(slow.out) == [("team", MessageKind.NOTIFY)]
    assert oncall_mails(slow.out) == [MessageKind.NOTIFY]


def a_page_on_monday() -> Step:
    return Desk(policy=NotifyPolicy(chat_channels=("team",))).probe(E500, now=london(MON, "10:00"))


def test_chat_text_is_short_and_says_what_failed_when_and_where_to_look() -> None:
    step = a_page_on_monday()
    cause = step.timeline[0]
    title, body = chat_text(
        MessageKind.PAGE,
        incident=step.incident,
        client=CLIENT,
        cause=cause,
        now=london(MON, "10:00"),
        agency_timezone="Europe/London",
        dashboard_url="https://monitor.agency.example/",
    )
    assert title == "[INC-42] PAGE Severity 1: shop.acme.example is down"
    lines = body.splitlines()
    assert lines[0] == "Severity 1 (Critical) · Acme Ltd · shop"
    assert lines[1] == "Failed: home (http_5xx, HTTP 500) at https://shop.acme.example/"
    assert lines[2] == "Response due 14:00 BST"  # the target (aim 12:00) of the standard plan
    assert lines[3] == "https://monitor.agency.example/incidents/42"
    assert len(lines) == 4


def test_chat_text_never_shows_a_checks_query_or_password() -> None:
    step = a_page_on_monday()
    cause = replace(
        step.timeline[0],
        evidence={"url": "https://user:hunter22@shop.acme.example/health?token=s3cr3t-t0ken"},
    )
    title, body = chat_text(
        MessageKind.PAGE,
        incident=step.incident,
        client=CLIENT,
        cause=cause,
        now=london(MON, "10:00"),
    )
    for secret in ("hunter22", "s3cr3t-t0ken", "user:"):
        assert secret not in title + body
    assert "https://shop.acme.example/health" in body


def test_a_monitor_health_notice_for_a_chat_is_stable_per_episode() -> None:
    since = london(SAT, "03:00")
    lost = connectivity_lost(ConnectivityLost(since=since, canaries=("uplink",)), ctx=MESSAGES)
    chat = as_chat(lost, channel="team")
    assert (chat.kind, chat.incident_id, chat.channel) == (
        NoticeKind.CONNECTIVITY_LOST,
        None,
        "team",
    )
    assert chat.title == lost.subject
    assert 0 < len(chat.body.splitlines()) <= 4
    assert as_chat(lost, channel="team") == chat
    assert as_chat(lost, channel="pager").idempotency_key != chat.idempotency_key
    # A restart reads the episode back from the chat's key as from the mail's.
    assert episode_since(chat.idempotency_key) == since
