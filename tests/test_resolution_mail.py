"""The operator's resolution note reaches the client's resolution mail through the RESOLVED
timeline entry, with how long the incident lasted."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from incidents.flow import THREAD_MARK, NotifyPolicy, notifications, resolve_by_hand
from incidents.outgoing import Audience, MessageKind, OutgoingEmail
from tests.test_messages import CLIENT, CTX, RESPONDED, T0


def test_a_hand_resolution_mails_the_note_and_the_duration() -> None:
    incident = replace(
        RESPONDED,
        failing_since=T0 - timedelta(minutes=6),
        sla_marks=frozenset({THREAD_MARK[Audience.CLIENT]}),
    )
    at = T0 + timedelta(hours=1)
    change = resolve_by_hand(incident, now=at, by="alice", note="  Restored the database.  ")
    [entry] = change.timeline
    assert entry.evidence is not None and entry.evidence["note"] == "Restored the database."
    _, out = notifications(
        change.incident, change.timeline, now=at, client=CLIENT, ctx=CTX, policy=NotifyPolicy()
    )
    [mail] = [m for m in out if isinstance(m, OutgoingEmail) and m.kind is MessageKind.RESOLVED]
    assert "Restored the database." in mail.text and "Restored the database." in mail.html
    assert "It lasted 1 h 6 min, from Mon 4 Mar 2024 09:54 CET to Mon 4 Mar 2024 11:00 CET." in (
        mail.text
    )


def test_a_resolution_without_a_note_says_none() -> None:
    incident = replace(RESPONDED, sla_marks=frozenset({THREAD_MARK[Audience.CLIENT]}))
    change = resolve_by_hand(incident, now=T0 + timedelta(hours=1), by="alice")
    assert "note" not in (change.timeline[0].evidence or {})
    _, out = notifications(
        change.incident,
        change.timeline,
        now=T0 + timedelta(hours=1),
        client=CLIENT,
        ctx=CTX,
        policy=NotifyPolicy(),
    )
    [mail] = [m for m in out if isinstance(m, OutgoingEmail) and m.kind is MessageKind.RESOLVED]
    assert "A note from our team" not in mail.text
