"""The store's issue-3 parts on SQLite and PostgreSQL: migration 0002, SLA fields, the
notification outbox written with its incident change, and maintenance windows."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from checks.result import Evidence, Outcome, ProbeResult
from incidents.model import (
    CheckState,
    Incident,
    IncidentStatus,
    TimelineEntry,
    TimelineKind,
    Transition,
)
from incidents.outgoing import Audience, MessageKind, Outgoing, OutgoingEmail, OutgoingWebhook
from incidents.severity import Severity
from monitor.store import (
    Channel,
    DuplicateNotification,
    IncidentNotFound,
    OutboxItemNotFound,
    OutboxItemNotPending,
    OutboxStatus,
    Store,
)
from monitor.store.tables import UTCDateTime, metadata
from tests.helpers import head_revision
from tests.migration_helpers import database_at, old_open_incident

T0 = datetime(2024, 6, 3, 10, 0, tzinfo=UTC)
SITE = "acme/shop"
HOME = "acme/shop/home"
DOMAIN = "agency.example"
OPENED_STAMP = "20240603T100000Z"  # T0 in UTC, as Message-IDs name an incident's opening


class Boom(Exception):
    """What a failing notify callback raises."""


def probe(at: datetime, outcome: Outcome = Outcome.HTTP_5XX) -> ProbeResult:
    evidence = Evidence(url="https://shop.acme.example/", status=500, error=outcome.value)
    return ProbeResult(outcome=outcome, started_at=at, latency=0.2, evidence=evidence)


def failing(key: str, at: datetime) -> CheckState:
    return CheckState(
        key=key,
        recent=(Severity.CRITICAL,) * 3,
        failing=True,
        severity=Severity.CRITICAL,
        last_outcome=Outcome.HTTP_5XX,
        last_result_at=at,
        since=at - timedelta(minutes=1),
    )


def new_incident(*, at: datetime = T0, site: str = SITE, **sla: object) -> Incident:
    return Incident(
        id=None,
        client="acme",
        site=site,
        title="shop.acme.example is down",
        severity=Severity.CRITICAL,
        status=IncidentStatus.OPEN,
        opened_at=at,
        failing_checks=frozenset({f"{site}/home"}),
        checks=frozenset({f"{site}/home"}),
        **sla,  # type: ignore[arg-type]
    )


def entry(kind: TimelineKind, at: datetime, message: str = "") -> TimelineEntry:
    return TimelineEntry(at=at, kind=kind, message=message or kind.value)


def email(
    incident_id: int, kind: MessageKind = MessageKind.OPENED, *, tag: str = "root"
) -> OutgoingEmail:
    audience = Audience.ONCALL if kind is MessageKind.PAGE else Audience.CLIENT
    root = f"<incident-{incident_id}.{OPENED_STAMP}.{audience.value}@{DOMAIN}>"
    first = tag == "root"
    return OutgoingEmail(
        kind=kind,
        audience=audience,
        incident_id=incident_id,
        to=("ops@acme.example", "cto@acme.example"),
        subject=f"[INC-{incident_id}] Severity 1: shop.acme.example is down",
        text="We saw HTTP 500 on https://shop.acme.example/ since 10:00.",
        html="<p>We saw HTTP 500 on https://shop.acme.example/ since 10:00.</p>",
        message_id=root if first else f"<incident-{incident_id}.{OPENED_STAMP}.{tag}@{DOMAIN}>",
        in_reply_to=None if first else root,
        references=() if first else (root,),
    )


def webhook(incident_id: int, *, key: str = "page-1") -> OutgoingWebhook:
    return OutgoingWebhook(
        kind=MessageKind.PAGE,
        incident_id=incident_id,
        target="oncall",
        body={"event": "page", "incident_id": incident_id, "severity": 1, "tags": ["a", "b"]},
        idempotency_key=f"incident-{incident_id}.{key}",
    )


@dataclasses.dataclass
class Notifier:
    """A notify callback that records what it was given and answers as told."""

    # incident id -> messages to queue; None: a page by email and by webhook
    messages: Callable[[int], Sequence[Outgoing]] | None = None
    change: dict[str, object] = dataclasses.field(default_factory=dict)
    fail: bool = False
    seen: list[Incident] = dataclasses.field(default_factory=list)

    def __call__(self, incident: Incident) -> tuple[Incident, Sequence[Outgoing]]:
        self.seen.append(incident)
        if self.fail:
            raise Boom("composition failed")
        assert incident.id is not None
        outgoing: Sequence[Outgoing] = (
            self.messages(incident.id)
            if self.messages is not None
            else (email(incident.id, MessageKind.PAGE), webhook(incident.id))
        )
        return dataclasses.replace(incident, **self.change), outgoing  # type: ignore[arg-type]


async def record_opening(
    store: Store,
    *,
    at: datetime = T0,
    site: str = SITE,
    notify: Notifier | None = None,
    incident: Incident | None = None,
) -> Incident:
    key = f"{site}/home"
    stored = await store.record(
        check_key=key,
        result=probe(at),
        transition=Transition(
            state=failing(key, at),
            incident=incident or new_incident(at=at, site=site),
            incident_changed=True,
            timeline=(entry(TimelineKind.OPENED, at),),
        ),
        previous_state=CheckState(key=key),
        notify=notify,
    )
    assert stored is not None and stored.id is not None
    return stored


# --- migration 0002 ---

OLD_TIMELINE = sa.table(
    "timeline",
    sa.column("incident_id", sa.Integer),
    sa.column("at", UTCDateTime),
    sa.column("kind", sa.Text),
    sa.column("message", sa.Text),
)


async def test_0002_upgrades_a_database_at_0001_and_keeps_its_incidents(
    database_url: str,
) -> None:
    await database_at(
        database_url,
        "0001",
        old_open_incident(7, opened_at=T0, title="shop.acme.example is down", resolved_at=None),
        (OLD_TIMELINE, {"incident_id": 7, "at": T0, "kind": "opened", "message": "opened"}),
    )

    store = await Store.open(database_url)
    try:
        old = dataclasses.replace(new_incident(), id=7)
        assert await store.get_incident(7) == old  # every SLA field None, no marks
        assert await store.load_open_incidents() == {SITE: old}
        assert await store.timeline(7) == [entry(TimelineKind.OPENED, T0, "opened")]
        async with store.engine.connect() as conn:
            diffs = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
            version = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).all()
        assert diffs == []
        assert version == [(head_revision(),)]
        # The old incident takes clocks like a new one.
        stored = await store.get_incident(7)
        assert stored is not None and stored.version == 1
        clocked = dataclasses.replace(
            stored,
            calendar="24x7",
            response_due_at=T0 + timedelta(hours=4),
            sla_marks=frozenset({"x"}),
        )
        await store.save_incident(clocked, timeline=(), now=T0 + timedelta(minutes=5))
        assert await store.get_incident(7) == clocked
    finally:
        await store.close()


# --- SLA fields ---


async def test_sla_fields_round_trip(store: Store) -> None:
    berlin = timezone(timedelta(hours=2))
    clocked = new_incident(
        calendar="business",
        response_aim_at=T0 + timedelta(hours=2),
        response_due_at=T0 + timedelta(hours=4),
        oncall_notified_at=T0,
        sla_marks=frozenset({"response_breached", "update_reminder@2024-06-03T14:00:00Z"}),
    )
    opened = await record_opening(store, incident=clocked)
    assert opened == dataclasses.replace(clocked, id=opened.id)
    assert await store.get_incident(opened.id or 0) == opened
    assert await store.load_open_incidents() == {SITE: opened}

    responded = dataclasses.replace(
        opened,
        # Another zone in, UTC out: the same instants.
        responded_at=datetime(2024, 6, 3, 12, 30, tzinfo=berlin),
        acknowledged_by="alice",
        last_update_at=T0 + timedelta(minutes=40),
        next_update_due_at=T0 + timedelta(hours=4, minutes=40),
    )
    await store.save_incident(
        responded,
        timeline=(entry(TimelineKind.ACKNOWLEDGED, T0 + timedelta(minutes=30)),),
        now=T0 + timedelta(minutes=30),
    )
    back = await store.get_incident(opened.id or 0)
    assert back == responded
    assert back is not None and back.responded_at is not None
    assert back.responded_at.utcoffset() == timedelta(0)
    assert await store.list_incidents() == [responded]


# --- record() with notify ---


async def test_record_queues_notifications_in_the_incident_transaction(store: Store) -> None:
    notifier = Notifier(change={"oncall_notified_at": T0 + timedelta(seconds=1)})
    key = HOME
    stored = await store.record(
        check_key=key,
        result=probe(T0),
        transition=Transition(
            state=failing(key, T0),
            incident=new_incident(),
            incident_changed=True,
            timeline=(entry(TimelineKind.OPENED, T0 + timedelta(seconds=1)),),
        ),
        previous_state=CheckState(key=key),
        notify=notifier,
    )
    assert stored is not None and stored.id is not None
    # notify saw the incident as written, with its new id; its change was written too.
    assert notifier.seen == [dataclasses.replace(new_incident(), id=stored.id)]
    assert stored.oncall_notified_at == T0 + timedelta(seconds=1)
    assert await store.get_incident(stored.id) == stored

    items = await store.outbox_for_incident(stored.id)
    assert [item.message for item in items] == [
        email(stored.id, MessageKind.PAGE),
        webhook(stored.id),
    ]
    assert [(i.channel, i.kind, i.status, i.attempts) for i in items] == [
        (Channel.EMAIL, MessageKind.PAGE, OutboxStatus.PENDING, 0),
        (Channel.WEBHOOK, MessageKind.PAGE, OutboxStatus.PENDING, 0),
    ]
    # Stamped with the latest time of what happened (the timeline entry), not the wall clock.
    assert {(i.created_at, i.next_attempt_at, i.sent_at, i.last_error) for i in items} == {
        (T0 + timedelta(seconds=1), T0 + timedelta(seconds=1), None, None)
    }
    assert all(i.incident_id == stored.id for i in items)


async def test_notify_is_not_asked_when_only_check_state_changed(store: Store) -> None:
    opened = await record_opening(store)
    notifier = Notifier()
    at = T0 + timedelta(seconds=30)
    first_success = dataclasses.replace(failing(HOME, T0), successes=1, last_result_at=at)
    result = await store.record(
        check_key=HOME,
        result=probe(at, Outcome.OK),
        transition=Transition(state=first_success, incident=opened),
        previous_state=failing(HOME, T0),
        notify=notifier,
    )
    assert result == opened
    assert notifier.seen == []
    assert await store.outbox_for_incident(opened.id or 0) == []


async def test_a_failing_notify_leaves_nothing_written(store: Store) -> None:
    before = await store.count_rows()
    with pytest.raises(Boom):
        await record_opening(store, notify=Notifier(fail=True))
    assert await store.count_rows() == before  # no incident, timeline, outbox or state
    assert await store.load_check_states() == {}

    # And on an update of a stored incident: the escalation, its entry and mails all go.
    opened = await record_opening(store, notify=Notifier())
    before = await store.count_rows()
    at = T0 + timedelta(minutes=5)
    with pytest.raises(Boom):
        await store.record(
            check_key=HOME,
            result=probe(at),
            transition=Transition(
                state=failing(HOME, at),
                incident=dataclasses.replace(opened, title="changed"),
                incident_changed=True,
                timeline=(entry(TimelineKind.ESCALATED, at),),
            ),
            previous_state=failing(HOME, T0),
            notify=Notifier(fail=True),
        )
    assert await store.count_rows() == before
    assert await store.get_incident(opened.id or 0) == opened
    assert len(await store.outbox_for_incident(opened.id or 0)) == 2


async def test_the_same_notification_is_never_queued_twice(store: Store) -> None:
    opened = await record_opening(store, notify=Notifier())
    incident_id = opened.id or 0
    # A second page with the same Message-ID (e.g. a retried SLA tick): refused whole.
    later = T0 + timedelta(hours=1)
    with pytest.raises(DuplicateNotification) as refused:
        await store.save_incident(
            dataclasses.replace(opened, acknowledged_by="bob"),
            timeline=(entry(TimelineKind.ONCALL_PAGED, later),),
            notify=Notifier(messages=lambda i: (email(i, MessageKind.PAGE),)),
            now=later,
        )
    assert refused.value.dedupe_key == f"<incident-{incident_id}.{OPENED_STAMP}.oncall@{DOMAIN}>"
    assert await store.get_incident(incident_id) == opened
    assert len(await store.timeline(incident_id)) == 1
    assert len(await store.outbox_for_incident(incident_id)) == 2

    # Two copies in one batch are refused too, and so is a reused webhook key.
    for duplicate in (
        lambda i: (email(i, tag="a"), email(i, tag="a")),
        lambda i: (webhook(i, key="page-1"),),
    ):
        with pytest.raises(DuplicateNotification):
            await store.save_incident(
                opened, timeline=(), notify=Notifier(messages=duplicate), now=later
            )
    assert len(await store.outbox_for_incident(incident_id)) == 2


async def test_notifications_must_belong_to_the_incident_and_carry_a_key(store: Store) -> None:
    opened = await record_opening(store)
    incident_id = opened.id or 0
    for wrong in (
        lambda i: (email(i + 1),),
        lambda i: (dataclasses.replace(webhook(i), idempotency_key=" "),),
    ):
        with pytest.raises(ValueError):
            await store.save_incident(opened, timeline=(), notify=Notifier(messages=wrong), now=T0)
    with pytest.raises(ValueError, match="not which incident"):
        await store.save_incident(
            opened, timeline=(), notify=Notifier(change={"id": incident_id + 1}), now=T0
        )
    assert await store.outbox_for_incident(incident_id) == []


# --- save_incident ---


async def test_save_incident_writes_row_timeline_and_outbox_at_once(store: Store) -> None:
    opened = await record_opening(store)
    incident_id = opened.id or 0
    at = T0 + timedelta(minutes=20)
    acked = dataclasses.replace(opened, responded_at=at, acknowledged_by="alice")
    update_entry = entry(TimelineKind.CLIENT_UPDATE, at, "We are restarting the shop.")
    notifier = Notifier(
        messages=lambda i: (email(i, MessageKind.UPDATE, tag="update-1"),),
        change={"last_update_at": at, "next_update_due_at": at + timedelta(hours=4)},
    )
    saved = await store.save_incident(
        acked,
        timeline=(entry(TimelineKind.ACKNOWLEDGED, at), update_entry),
        notify=notifier,
        now=at,
    )
    assert notifier.seen == [acked]
    assert saved == dataclasses.replace(
        acked, last_update_at=at, next_update_due_at=at + timedelta(hours=4)
    )
    assert await store.get_incident(incident_id) == saved
    assert [e.kind for e in await store.timeline(incident_id)] == [
        TimelineKind.OPENED,
        TimelineKind.ACKNOWLEDGED,
        TimelineKind.CLIENT_UPDATE,
    ]
    [item] = await store.outbox_for_incident(incident_id)
    assert item.message == email(incident_id, MessageKind.UPDATE, tag="update-1")
    assert (item.created_at, item.next_attempt_at) == (at, at)
    assert item.message.in_reply_to == f"<incident-{incident_id}.{OPENED_STAMP}.client@{DOMAIN}>"

    # Without notify: only the row and the timeline.
    resolved = dataclasses.replace(saved, status=IncidentStatus.RESOLVED, resolved_at=at)
    assert await store.save_incident(resolved, timeline=(), now=at) == resolved
    assert await store.load_open_incidents() == {}


async def test_save_incident_needs_a_stored_incident(store: Store) -> None:
    with pytest.raises(ValueError, match="record"):
        await store.save_incident(new_incident(), timeline=(), now=T0)
    ghost = dataclasses.replace(new_incident(), id=404)
    with pytest.raises(IncidentNotFound) as missing:
        await store.save_incident(
            ghost, timeline=(entry(TimelineKind.ACKNOWLEDGED, T0),), notify=Notifier(), now=T0
        )
    assert missing.value.incident_id == 404
    assert (await store.count_rows())["timeline"] == 0
    assert (await store.count_rows())["outbox"] == 0


# --- the outbox lifecycle ---


async def queue(store: Store, incident: Incident, *, tag: str, at: datetime) -> int:
    """Queue one client mail about `incident` at `at`; returns its outbox id."""
    # Each save moves the stored version on: save the current one, not the caller's copy.
    current = await store.get_incident(incident.id or 0)
    assert current is not None
    await store.save_incident(
        current,
        timeline=(),
        notify=Notifier(messages=lambda i: (email(i, MessageKind.UPDATE, tag=tag),)),
        now=at,
    )
    items = await store.outbox_for_incident(incident.id or 0)
    return items[-1].id


async def test_due_outbox_is_oldest_due_first_and_skips_later_ones(store: Store) -> None:
    opened = await record_opening(store)
    later = await queue(store, opened, tag="later", at=T0 + timedelta(minutes=10))
    early = await queue(store, opened, tag="early", at=T0 + timedelta(minutes=2))
    also_early = await queue(store, opened, tag="same", at=T0 + timedelta(minutes=2))
    future = await queue(store, opened, tag="future", at=T0 + timedelta(hours=1))

    now = T0 + timedelta(minutes=10)
    assert [i.id for i in await store.due_outbox(now=now)] == [early, also_early, later]
    assert [i.id for i in await store.due_outbox(now=now, limit=2)] == [early, also_early]
    assert await store.due_outbox(now=T0) == []

    # A retry moves a row behind the others; a settled row is never due again.
    await store.mark_retry(early, error="421 try later", next_attempt_at=now + timedelta(hours=2))
    await store.mark_sent(also_early, at=now)
    everything = now + timedelta(days=1)
    assert [i.id for i in await store.due_outbox(now=everything)] == [later, future, early]


async def test_marks_move_pending_rows_and_counts_follow(store: Store) -> None:
    opened = await record_opening(store)
    a = await queue(store, opened, tag="a", at=T0)
    b = await queue(store, opened, tag="b", at=T0)
    c = await queue(store, opened, tag="c", at=T0)
    assert await store.outbox_counts() == {"pending": 3, "sent": 0, "failed": 0}

    retry_at = T0 + timedelta(seconds=5)
    await store.mark_retry(a, error="x" * 5000, next_attempt_at=retry_at)
    await store.mark_retry(
        a, error="connection refused", next_attempt_at=T0 + timedelta(seconds=15)
    )
    [item] = [i for i in await store.outbox_for_incident(opened.id or 0) if i.id == a]
    assert (item.status, item.attempts, item.last_error) == (
        OutboxStatus.PENDING,
        2,
        "connection refused",
    )
    assert item.next_attempt_at == T0 + timedelta(seconds=15)

    sent_at = T0 + timedelta(seconds=20)
    await store.mark_sent(a, at=sent_at)
    await store.mark_sent(a, at=sent_at + timedelta(seconds=1))  # twice: harmless
    await store.mark_failed(b, error="550 no such user " + "y" * 5000, at=sent_at)
    by_id = {i.id: i for i in await store.outbox_for_incident(opened.id or 0)}
    assert (by_id[a].status, by_id[a].sent_at, by_id[a].attempts) == (
        OutboxStatus.SENT,
        sent_at,
        2,
    )
    assert (by_id[b].status, by_id[b].attempts, by_id[b].sent_at) == (OutboxStatus.FAILED, 1, None)
    error = by_id[b].last_error
    assert error is not None and len(error) == 1000 and error.startswith("550 no such user")
    assert await store.outbox_counts() == {"pending": 1, "sent": 1, "failed": 1}

    # Settled rows are final; unknown ids are reported.
    with pytest.raises(OutboxItemNotPending) as settled:
        await store.mark_retry(a, error="late", next_attempt_at=sent_at)
    assert settled.value.status == "sent"
    with pytest.raises(OutboxItemNotPending):
        await store.mark_sent(b, at=sent_at)
    with pytest.raises(OutboxItemNotFound):
        await store.mark_sent(10_000, at=sent_at)
    assert await store.outbox_counts() == {"pending": 1, "sent": 1, "failed": 1}
    assert [i.id for i in await store.due_outbox(now=sent_at)] == [c]


async def test_pending_notifications_survive_a_restart(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        opened = await record_opening(store, notify=Notifier())
        queued = await store.outbox_for_incident(opened.id or 0)
        await store.mark_retry(queued[0].id, error="timeout", next_attempt_at=T0)
        queued = await store.outbox_for_incident(opened.id or 0)
    finally:
        await store.close()

    store = await Store.open(database_url)
    try:
        assert await store.due_outbox(now=T0) == queued
        assert await store.outbox_counts() == {"pending": 2, "sent": 0, "failed": 0}
    finally:
        await store.close()


# --- maintenance windows ---


async def test_maintenance_windows_active_and_listed(store: Store) -> None:
    other = "globex/www"
    h = timedelta(hours=1)
    first = await store.add_maintenance(
        site=SITE, starts_at=T0, ends_at=T0 + 2 * h, reason="deploy", created_by="alice", now=T0
    )
    overlapping = await store.add_maintenance(
        site=SITE,
        starts_at=T0 + h,
        ends_at=T0 + 3 * h,
        reason="database upgrade",
        created_by="bob",
        now=T0,
    )
    past = await store.add_maintenance(
        site=other, starts_at=T0 - 5 * h, ends_at=T0 - 4 * h, reason="old", created_by="a", now=T0
    )
    future = await store.add_maintenance(
        site=other, starts_at=T0 + 5 * h, ends_at=T0 + 6 * h, reason="new", created_by="a", now=T0
    )
    assert (first.site, first.starts_at, first.ends_at, first.reason, first.created_by) == (
        SITE,
        T0,
        T0 + 2 * h,
        "deploy",
        "alice",
    )
    assert first.created_at == T0 and len({first.id, overlapping.id, past.id, future.id}) == 4

    assert await store.active_maintenance(now=T0 - timedelta(seconds=1)) == {}
    assert await store.active_maintenance(now=T0) == {SITE: first}
    # Both in force: the one that ends last.
    assert await store.active_maintenance(now=T0 + 1.5 * h) == {SITE: overlapping}
    assert await store.active_maintenance(now=T0 + 2 * h) == {SITE: overlapping}  # end exclusive
    assert await store.active_maintenance(now=T0 + 5.5 * h) == {other: future}
    assert await store.active_maintenance(now=T0 + 6 * h) == {}

    now = T0 + 1.5 * h
    assert await store.list_maintenance(now=now) == [first, overlapping, future]
    assert await store.list_maintenance(now=now, include_past=True) == [
        past,
        first,
        overlapping,
        future,
    ]
    assert await store.list_maintenance(site=other, now=now) == [future]
    assert await store.list_maintenance(site=other, now=now, include_past=True) == [past, future]
    assert await store.list_maintenance(now=T0 + 2.5 * h) == [overlapping, future]


async def test_an_empty_or_inverted_window_is_refused(store: Store) -> None:
    for ends_at in (T0, T0 - timedelta(minutes=1)):
        with pytest.raises(ValueError, match="must be after"):
            await store.add_maintenance(
                site=SITE, starts_at=T0, ends_at=ends_at, reason="r", created_by="c", now=T0
            )
    assert await store.list_maintenance(now=T0, include_past=True) == []
