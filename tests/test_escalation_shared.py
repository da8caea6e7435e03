"""Two processes sharing one database (SQLite and PostgreSQL) both find the same escalation
page due at the same moment: the incident's version lets exactly one of them write it and its
outbox row; the other is refused, and on the stored copy finds nothing left to page."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from incidents.escalation import Escalation
from incidents.flow import Change, NotifyPolicy, after_tick, notifications
from incidents.model import Incident, TimelineKind
from incidents.outgoing import MessageKind, OutgoingEmail
from incidents.severity import Severity
from monitor.store import StaleIncident, Store
from tests.test_escalation import CLIENT, MESSAGES, PEOPLE, POLICY, SLA
from tests.test_store_shared import T0, open_incident, stores  # noqa: F401 - the fixture

ESCALATION = Escalation(policies={Severity.CRITICAL: POLICY})
POLICY_PEOPLE = NotifyPolicy(people=PEOPLE)


def due(incident: Incident, at: datetime) -> Change:
    change = after_tick(incident, now=at, sla=SLA, escalation=ESCALATION)
    assert change is not None
    return change


async def save(store: Store, change: Change, at: datetime) -> Incident:
    def notify(incident: Incident) -> tuple[Incident, list[OutgoingEmail]]:
        state, out = notifications(
            incident, change.timeline, now=at, client=CLIENT, ctx=MESSAGES, policy=POLICY_PEOPLE
        )
        return state, [m for m in out if isinstance(m, OutgoingEmail)]

    return await store.save_incident(
        change.incident, timeline=change.timeline, notify=notify, now=at
    )


async def test_two_processes_page_the_secondary_once(
    stores: tuple[Store, Store],  # noqa: F811 - the fixture imported above
) -> None:
    a, b = stores
    opened = await open_incident(a)
    assert opened.id is not None
    first = await save(a, due(opened, T0), T0)  # the primary, at once
    at = T0 + timedelta(minutes=15)
    copy_a, copy_b = await a.get_incident(opened.id), await b.get_incident(opened.id)
    assert copy_a is not None and copy_b is not None and copy_a.version == first.version

    async def attempt(store: Store, copy: Incident) -> str:
        try:
            await save(store, due(copy, at), at)
        except StaleIncident:
            return "refused"
        return "written"

    results = await asyncio.gather(attempt(a, copy_a), attempt(b, copy_b))
    assert sorted(results) == ["refused", "written"]
    rows = [r for r in await b.outbox_for_incident(opened.id) if r.kind is MessageKind.PAGE]
    assert [r.message.to for r in rows] == [("team@agency.example",), ("bob@agency.example",)]
    timeline = await b.timeline(opened.id)
    assert [e.message for e in timeline if e.kind is TimelineKind.PAGED] == [
        "paged on-call (level 1, at once)",
        "paged bob (level 2, 15 min without acknowledgement)",
    ]
    # The refused process starts again from the stored row: nothing is due any more.
    stored = await b.get_incident(opened.id)
    assert stored is not None
    assert after_tick(stored, now=at, sla=SLA, escalation=ESCALATION) is None
