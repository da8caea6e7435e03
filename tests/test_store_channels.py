"""Chat rows in the outbox, on SQLite and PostgreSQL: revision 0008_channels upgrades a
database at 0007 with rows in place, and a chat row is queued once, claimed, read back as
written (no URL in it) and given up like any other."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from incidents.connectivity import ConnectivityLost
from incidents.connectivity_notices import as_chat, connectivity_lost
from incidents.messages import MessageContext
from incidents.outgoing import NoticeKind, OutgoingChat
from monitor.store import Channel, OutboxStatus, Store
from tests.migration_helpers import database_at

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
CTX = MessageContext(sender_domain="agency.example", oncall=("oncall@agency.example",))

OUTBOX_0007 = sa.table(
    "outbox",
    sa.column("incident_id", sa.Integer),
    sa.column("channel", sa.Text),
    sa.column("kind", sa.Text),
    sa.column("audience", sa.Text),
    sa.column("dedupe_key", sa.Text),
    sa.column("payload", sa.JSON),
    sa.column("status", sa.Text),
    sa.column("attempts", sa.Integer),
    sa.column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


def lost_chat(channel: str = "team") -> OutgoingChat:
    lost = connectivity_lost(ConnectivityLost(since=T0, canaries=("uplink",)), ctx=CTX)
    return as_chat(lost, channel=channel)


async def test_0008_upgrades_a_database_at_0007_with_rows_in_place(database_url: str) -> None:
    old_mail = {
        "incident_id": None,
        "channel": "email",
        "kind": "connectivity_lost",
        "audience": "oncall",
        "dedupe_key": "<old@agency.example>",
        "payload": {
            "to": ["oncall@agency.example"],
            "subject": "PAGE",
            "text": "t",
            "html": "<p>t</p>",
            "message_id": "<old@agency.example>",
            "in_reply_to": None,
            "references": [],
        },
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": T0,
        "created_at": T0,
    }
    await database_at(database_url, "0007", (OUTBOX_0007, old_mail))

    store = await Store.open(database_url)
    try:
        assert await store.queue_notice([lost_chat()], now=T0)
        [latest] = await store.latest_notices([NoticeKind.CONNECTIVITY_LOST])
        assert latest.channel is Channel.CHAT and latest.destination == "team"
        assert latest.message == lost_chat()
        assert (await store.outbox_counts())["pending"] == 2
    finally:
        await store.close()


async def test_a_chat_row_is_queued_once_claimed_and_given_up(store: Store) -> None:
    chat = lost_chat()
    assert await store.queue_notice([chat], now=T0)
    assert not await store.queue_notice([chat], now=T0)  # the same notice: not twice

    [item] = await store.claim_outbox(worker="w1", now=T0, limit=10, claim_for=5)
    assert (item.channel, item.destination, item.message) == (Channel.CHAT, "team", chat)
    await store.mark_failed(item.id, error="channel 'team' (Slack): gave up", at=T0)
    [failed] = await store.latest_notices([NoticeKind.CONNECTIVITY_LOST])
    assert failed.status is OutboxStatus.FAILED and failed.attempts == 1
    assert (
        await store.claim_outbox(worker="w1", now=T0 + timedelta(hours=1), limit=10, claim_for=5)
        == []
    )
