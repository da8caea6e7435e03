"""Notices without an incident and held client mails in the outbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from prometheus_client import CollectorRegistry

from incidents.connectivity import ConnectivityLost, ConnectivityRestored
from incidents.connectivity_notices import as_webhook, connectivity_lost, connectivity_restored
from incidents.messages import MessageContext
from incidents.outgoing import Audience, MessageKind, NoticeKind, OutgoingEmail
from monitor.delivery.mail import SmtpMailer, SmtpSettings
from monitor.metrics import Metrics
from monitor.outbox_worker import OutboxWorker
from monitor.store import OutboxStatus, Store
from monitor.store.migrate import alembic_config
from tests.helpers import ShiftedClock
from tests.smtp_helpers import Inbox, smtpd
from tests.test_store import open_incident

T0 = datetime(2026, 12, 4, 19, 0, tzinfo=UTC)
CTX = MessageContext(sender_domain="agency.example", oncall=("oncall@agency.example",))


async def test_a_notice_is_queued_once_and_read_back_without_an_incident(store: Store) -> None:
    lost = connectivity_lost(ConnectivityLost(since=T0, canaries=("uplink",)), ctx=CTX)
    page = as_webhook(lost, target="oncall")
    assert await store.queue_notice([lost, page], now=T0) is True
    # The same episode again (a restart, a second process): refused by its Message-ID.
    assert await store.queue_notice([lost, page], now=T0 + timedelta(minutes=1)) is False
    items = await store.claim_outbox(worker="w", now=T0, limit=10, claim_for=5)
    assert [item.message for item in items] == [lost, page]
    assert all(item.incident_id is None for item in items)
    assert all(item.kind is NoticeKind.CONNECTIVITY_LOST for item in items)
    for item in items:
        await store.mark_sent(item.id, at=T0)

    restored = connectivity_restored(
        ConnectivityRestored(since=T0, at=T0 + timedelta(minutes=3), canary="uplink"), ctx=CTX
    )
    assert await store.queue_notice([restored], now=T0 + timedelta(minutes=3))
    kinds = [NoticeKind.CONNECTIVITY_LOST, NoticeKind.CONNECTIVITY_RESTORED]
    [latest] = await store.latest_notices(kinds)
    assert latest.kind is NoticeKind.CONNECTIVITY_RESTORED
    assert [n.kind for n in await store.latest_notices(kinds, limit=5)] == [
        NoticeKind.CONNECTIVITY_RESTORED,
        NoticeKind.CONNECTIVITY_LOST,  # the webhook page
        NoticeKind.CONNECTIVITY_LOST,  # the mail
    ]
    assert await store.latest_notices([NoticeKind.MASS_FAILURE]) == []


async def test_a_held_client_mail_is_due_when_its_hold_ends(store: Store) -> None:
    incident = await open_incident(store)
    assert incident.id is not None
    hold_until = T0 + timedelta(minutes=5)
    held = OutgoingEmail(
        kind=MessageKind.OPENED,
        audience=Audience.CLIENT,
        incident_id=incident.id,
        to=("ops@acme.example",),
        subject="s",
        text="t",
        html="h",
        message_id="<held@agency.example>",
        not_before=hold_until,
    )
    now = T0 + timedelta(seconds=1)
    await store.save_incident(incident, timeline=(), notify=lambda i: (i, [held]), now=now)
    assert (
        await store.claim_outbox(
            worker="w", now=hold_until - timedelta(seconds=1), limit=10, claim_for=5
        )
        == []
    )
    [item] = await store.claim_outbox(worker="w", now=hold_until, limit=10, claim_for=5)
    assert item.next_attempt_at == hold_until
    assert item.status is OutboxStatus.PENDING
    assert item.incident_id == incident.id


async def test_0006_downgrades_dropping_only_notices(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        incident = await open_incident(store)
        lost = connectivity_lost(ConnectivityLost(since=T0, canaries=("uplink",)), ctx=CTX)
        assert await store.queue_notice([lost], now=T0)
        mail = OutgoingEmail(
            kind=MessageKind.OPENED,
            audience=Audience.CLIENT,
            incident_id=incident.id,
            to=("ops@acme.example",),
            subject="s",
            text="t",
            html="h",
            message_id="<kept@agency.example>",
        )
        await store.save_incident(incident, timeline=(), notify=lambda i: (i, [mail]), now=T0)
        async with store.engine.connect() as conn, conn.begin():
            await conn.run_sync(lambda sync: command.downgrade(alembic_config(sync), "0005"))
        async with store.engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT incident_id FROM outbox"))).all()
            version = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).all()
        assert rows == [(incident.id,)]
        assert version == [("0005",)]
    finally:
        await store.close()


async def test_the_outbox_worker_logs_a_notice_as_a_notice_not_as_inc_none(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    lost = connectivity_lost(ConnectivityLost(since=T0, canaries=("uplink",)), ctx=CTX)
    restored = connectivity_restored(
        ConnectivityRestored(since=T0, at=T0 + timedelta(minutes=3), canary="uplink"), ctx=CTX
    )
    assert await store.queue_notice([lost], now=T0)
    assert await store.queue_notice([restored], now=T0)
    # The first delivery fails for a moment: its retry line names the notice too.
    inbox = Inbox(data_reply="451 try again later")
    caplog.set_level(logging.INFO, logger="monitor.outbox_worker")
    clock = ShiftedClock(T0)
    async with smtpd(inbox) as port:
        worker = OutboxWorker(
            store=store,
            mailer=SmtpMailer(
                SmtpSettings(
                    host="127.0.0.1",
                    port=port,
                    security="none",
                    username=None,
                    password=None,
                    timeout=5.0,
                    sender="Monitor <monitor@agency.example>",
                )
            ),
            webhooks=None,
            clock=clock,
            metrics=Metrics(CollectorRegistry()),
        )
        assert await worker.deliver_due() == 2
        inbox.data_reply = None
        clock.advance(timedelta(hours=1))  # past any retry delay
        assert await worker.deliver_due() == 2
    assert len(inbox.received) == 2
    lines = [r.getMessage() for r in caplog.records if r.name == "monitor.outbox_worker"]
    assert "INC-None" not in "\n".join(lines)
    for kind in ("connectivity_lost", "connectivity_restored"):
        assert any(
            line.startswith(f"outbox: email notice {kind} not delivered (attempt 1)")
            for line in lines
        ), lines
        assert f"outbox: sent email notice {kind}" in lines
