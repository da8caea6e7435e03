"""The notification outbox: rows written with the incident change that caused them.

A notification is queued in the transaction that changes its incident, so a crash either
loses both or keeps both; the delivery worker then reads due rows, sends them, and marks each
sent, retried or failed. Each row keeps everything needed to rebuild the `OutgoingEmail` or
`OutgoingWebhook` exactly, including its Message-ID or idempotency key, so a retry after a
crash sends the very same message and a receiver can drop the duplicate.

A notice about the monitor itself (a `NoticeKind`: lost connectivity, a mass failure) has no
incident and is queued on its own (`Store.queue_notice`); a mail held back (`not_before`, a
mass failure's hold) is simply due later.

Lifecycle of a row (`OutboxStatus`), moved only by `mark_*`:

    pending --mark_retry--> pending (attempts + 1, later next_attempt_at, last_error)
    pending --mark_sent---> sent    (final)
    pending --mark_failed-> failed  (final; attempts + 1)

Processes sharing the database deliver through claims: `claim` marks due rows as being
delivered by one worker until `claimed_until` (renewed by `extend` while it works), so no two
workers send a row at once; every `mark_*` ends the claim. A worker that dies mid-send leaves
its claim to run out, after which another sends the row again with the same Message-ID or
Idempotency-Key (at least once, as after a crash of a single process).
"""

from __future__ import annotations

import base64
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from incidents.model import Incident
from incidents.outgoing import (
    Attachment,
    Audience,
    MessageKind,
    NoticeKind,
    Outgoing,
    OutgoingChat,
    OutgoingEmail,
    OutgoingWebhook,
)
from monitor.store.codec import ERROR_MAX_CHARS

# Canonical home: monitor.store.maintenance (exported by monitor.store); re-exported here only
# because monitor.desk imports it from this module.
from monitor.store.outbox_errors import (
    DuplicateNotification,
    OutboxItemNotFound,
    OutboxItemNotPending,
)
from monitor.store.tables import outbox

# What the store calls, inside the transaction of an incident change, to learn what to say:
# it gets the stored incident (with its id) and returns it again, possibly with clocks or
# marks changed by the sending (e.g. oncall_notified_at), plus the notifications to queue.
Notify = Callable[[Incident], tuple[Incident, Sequence[Outgoing]]]


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its next attempt at next_attempt_at
    SENT = "sent"  # final: the server accepted it
    FAILED = "failed"  # final: refused for good (e.g. an unknown recipient); not retried


class Channel(enum.StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"
    CHAT = "chat"  # a named `channels:` destination (Apprise); its name is in the payload


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One queued notification and where its delivery stands."""

    id: int
    incident_id: int | None  # None: a notice about the monitor itself
    channel: Channel
    kind: MessageKind | NoticeKind
    status: OutboxStatus
    attempts: int  # failed delivery attempts so far
    # Pending: when to try next. Sent or failed: when the final attempt was made.
    next_attempt_at: datetime
    last_error: str | None  # the latest failure, cut to ERROR_MAX_CHARS
    created_at: datetime
    sent_at: datetime | None
    message: OutgoingEmail | OutgoingWebhook | OutgoingChat
    claimed_by: str | None = None  # the worker delivering it, while claimed_until is ahead
    claimed_until: datetime | None = None

    @property
    def destination(self) -> str:
        """Where it goes, as metrics and the API name it: "email", "webhook", or the name of
        a configured chat channel (never its URL)."""
        if isinstance(self.message, OutgoingChat):
            return self.message.channel
        return self.channel.value


def capped_error(error: str) -> str:
    """An error text short enough to keep on a row that may fail a thousand times."""
    return error[:ERROR_MAX_CHARS]


def outbox_values(message: Outgoing, *, incident_id: int | None, now: datetime) -> dict[str, Any]:
    """A new pending row for `message`, due at once (or when it is held until, see
    `OutgoingEmail.not_before`). Raises ValueError for a message about another incident or
    without a stable key (the key is what makes a retry safe)."""
    if message.incident_id != incident_id:
        raise ValueError(
            f"a {message.kind.value} notification about incident {message.incident_id} "
            f"cannot be queued with a change of incident {incident_id}"
        )
    common = {
        "incident_id": incident_id,
        "kind": message.kind.value,
        "status": OutboxStatus.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "last_error": None,
        "created_at": now,
        "sent_at": None,
    }
    if isinstance(message, OutgoingEmail):
        if message.not_before is not None and message.not_before > now:
            common["next_attempt_at"] = message.not_before
        key = message.message_id
        channel, audience = Channel.EMAIL, message.audience.value
        payload: dict[str, Any] = {
            "to": list(message.to),
            "subject": message.subject,
            "text": message.text,
            "html": message.html,
            "message_id": message.message_id,
            "in_reply_to": message.in_reply_to,
            "references": list(message.references),
        }
        if message.attachments:
            # Kept in the row with the mail, so a retry sends the very same file.
            payload["attachments"] = [
                {
                    "filename": a.filename,
                    "content_type": a.content_type,
                    "data": base64.b64encode(a.data).decode("ascii"),
                }
                for a in message.attachments
            ]
    elif isinstance(message, OutgoingChat):
        key = message.idempotency_key
        channel, audience = Channel.CHAT, Audience.ONCALL.value
        payload = {
            "channel": message.channel,
            "title": message.title,
            "body": message.body,
            "idempotency_key": key,
        }
    else:
        key = message.idempotency_key
        channel, audience = Channel.WEBHOOK, None
        payload = {"target": message.target, "body": message.body, "idempotency_key": key}
    if not key.strip():
        raise ValueError(
            f"a {message.kind.value} {channel.value} for incident {incident_id} has no "
            "message id / idempotency key; compose it with one so retries can be deduplicated"
        )
    return {
        **common,
        "channel": channel.value,
        "audience": audience,
        "dedupe_key": key,
        "payload": payload,
    }


def item_from_row(row: RowMapping) -> OutboxItem:
    return OutboxItem(
        id=row["id"],
        incident_id=row["incident_id"],
        channel=Channel(row["channel"]),
        kind=_kind(row["kind"]),
        status=OutboxStatus(row["status"]),
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        sent_at=row["sent_at"],
        message=_message_from_row(row),
        claimed_by=row["claimed_by"],
        claimed_until=row["claimed_until"],
    )


_NOTICE_KINDS = frozenset(kind.value for kind in NoticeKind)


def _kind(value: str) -> MessageKind | NoticeKind:
    return NoticeKind(value) if value in _NOTICE_KINDS else MessageKind(value)


def _message_from_row(row: RowMapping) -> OutgoingEmail | OutgoingWebhook | OutgoingChat:
    payload = row["payload"]
    kind = _kind(row["kind"])
    if Channel(row["channel"]) is Channel.CHAT:
        return OutgoingChat(
            kind=kind,
            incident_id=row["incident_id"],
            channel=payload["channel"],
            title=payload["title"],
            body=payload["body"],
            idempotency_key=payload["idempotency_key"],
        )
    if Channel(row["channel"]) is Channel.EMAIL:
        return OutgoingEmail(
            kind=kind,
            audience=Audience(row["audience"]),
            incident_id=row["incident_id"],
            to=tuple(payload["to"]),
            subject=payload["subject"],
            text=payload["text"],
            html=payload["html"],
            message_id=payload["message_id"],
            in_reply_to=payload["in_reply_to"],
            references=tuple(payload["references"]),
            attachments=tuple(
                Attachment(a["filename"], a["content_type"], base64.b64decode(a["data"]))
                for a in payload.get("attachments", ())
            ),
        )
    return OutgoingWebhook(
        kind=kind,
        incident_id=row["incident_id"],
        target=payload["target"],
        body=payload["body"],
        idempotency_key=payload["idempotency_key"],
    )


async def enqueue(
    conn: AsyncConnection,
    messages: Sequence[Outgoing],
    *,
    incident_id: int | None,
    now: datetime,
) -> None:
    """Insert one pending row per message, in the caller's transaction."""
    rows = [outbox_values(message, incident_id=incident_id, now=now) for message in messages]
    # One statement per row (an incident change queues a handful) so a refusal names its key.
    for row in rows:
        try:
            await conn.execute(sa.insert(outbox).values(row))
        except IntegrityError as exc:
            # The incident row exists in this transaction and the values pass the checks, so
            # the only constraint left to break is the unique dedupe key.
            raise DuplicateNotification(row["dedupe_key"]) from exc


def due_query(*, now: datetime, limit: int) -> sa.Select[Any]:
    return (
        sa.select(outbox)
        .where(outbox.c.status == OutboxStatus.PENDING.value, outbox.c.next_attempt_at <= now)
        .order_by(outbox.c.next_attempt_at, outbox.c.id)
        .limit(limit)
    )


async def claim(
    conn: AsyncConnection, *, worker: str, now: datetime, limit: int, claim_for: float
) -> list[OutboxItem]:
    """Claim up to `limit` due rows nobody holds a live claim on, oldest due first."""
    if not claim_for > 0:
        raise ValueError(f"claim_for must be a positive number of seconds (got {claim_for!r})")
    claimable = (
        sa.select(outbox.c.id)
        .where(
            outbox.c.status == OutboxStatus.PENDING.value,
            outbox.c.next_attempt_at <= now,
            sa.or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until <= now),
        )
        .order_by(outbox.c.next_attempt_at, outbox.c.id)
        .limit(limit)
        # Rows another worker is claiming right now are left to it, not waited for; one it
        # claimed and committed meanwhile is re-checked against the WHERE and dropped.
        .with_for_update(skip_locked=True)
    )
    stmt = (
        sa.update(outbox)
        .where(outbox.c.id.in_(claimable.scalar_subquery()))
        .values(claimed_by=worker, claimed_until=now + timedelta(seconds=claim_for))
        .returning(outbox)
    )
    items = [item_from_row(row) for row in (await conn.execute(stmt)).mappings()]
    return sorted(items, key=lambda item: (item.next_attempt_at, item.id))


async def extend(
    conn: AsyncConnection,
    *,
    worker: str,
    item_ids: Sequence[int],
    now: datetime,
    claim_for: float,
) -> set[int]:
    """Renew `worker`'s claims on the pending rows `item_ids`; returns the ids still held.

    A claim that ran out is renewed too while nobody else took it: nobody else sent the row.
    """
    if not item_ids:
        return set()
    stmt = (
        sa.update(outbox)
        .where(
            outbox.c.id.in_(list(item_ids)),
            outbox.c.claimed_by == worker,
            outbox.c.status == OutboxStatus.PENDING.value,
        )
        .values(claimed_until=now + timedelta(seconds=claim_for))
        .returning(outbox.c.id)
    )
    return set((await conn.execute(stmt)).scalars())


async def retire(conn: AsyncConnection, *, worker: str) -> None:
    """Hand `worker`'s claims back: others may send those rows at once."""
    await conn.execute(sa.update(outbox).where(outbox.c.claimed_by == worker).values(_UNCLAIMED))


def incident_query(incident_id: int) -> sa.Select[Any]:
    return sa.select(outbox).where(outbox.c.incident_id == incident_id).order_by(outbox.c.id)


def notices_query(kinds: Sequence[NoticeKind], *, limit: int) -> sa.Select[Any]:
    """The latest notices about the monitor itself (no incident) of `kinds`, newest first."""
    return (
        sa.select(outbox)
        .where(outbox.c.incident_id.is_(None), outbox.c.kind.in_([k.value for k in kinds]))
        .order_by(outbox.c.id.desc())
        .limit(limit)
    )


def status_query(statuses: Sequence[OutboxStatus], *, limit: int) -> sa.Select[Any]:
    return (
        sa.select(outbox)
        .where(outbox.c.status.in_([status.value for status in statuses]))
        .order_by(outbox.c.id.desc())
        .limit(limit)
    )


async def retry_now(conn: AsyncConnection, item_id: int, *, now: datetime) -> OutboxItem | None:
    """A pending or failed row becomes pending, due at `now`, its attempts kept (so the
    backoff goes on from where it was). A row a worker holds keeps its claim."""
    stmt = (
        sa.update(outbox)
        .where(
            outbox.c.id == item_id,
            outbox.c.status.in_([OutboxStatus.PENDING.value, OutboxStatus.FAILED.value]),
        )
        .values(status=OutboxStatus.PENDING.value, next_attempt_at=now)
    )
    if (await conn.execute(stmt)).rowcount != 1:
        return None
    row = (await conn.execute(sa.select(outbox).where(outbox.c.id == item_id))).mappings().one()
    return item_from_row(row)


def counts_query() -> sa.Select[Any]:
    return sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status)


_UNCLAIMED: dict[str, Any] = {"claimed_by": None, "claimed_until": None}


def sent_values(*, at: datetime) -> dict[str, Any]:
    return {
        "status": OutboxStatus.SENT.value,
        "sent_at": at,
        "next_attempt_at": at,
        **_UNCLAIMED,
    }


def retry_values(*, error: str, next_attempt_at: datetime) -> dict[str, Any]:
    return {
        "attempts": outbox.c.attempts + 1,
        "last_error": capped_error(error),
        "next_attempt_at": next_attempt_at,
        **_UNCLAIMED,
    }


def failed_values(*, error: str, at: datetime) -> dict[str, Any]:
    return {
        "status": OutboxStatus.FAILED.value,
        "next_attempt_at": at,
        "attempts": outbox.c.attempts + 1,
        "last_error": capped_error(error),
        **_UNCLAIMED,
    }


async def move(
    conn: AsyncConnection,
    item_id: int,
    *,
    values: dict[str, Any],
    already: OutboxStatus | None = None,
) -> None:
    """Apply `values` to the pending row `item_id`. A row already in status `already` is left
    as it is (marking sent twice, e.g. after a lost connection, is harmless); any other
    non-pending row is refused."""
    stmt = (
        sa.update(outbox)
        .where(outbox.c.id == item_id, outbox.c.status == OutboxStatus.PENDING.value)
        .values(values)
    )
    if (await conn.execute(stmt)).rowcount == 1:
        return
    found = await conn.execute(sa.select(outbox.c.status).where(outbox.c.id == item_id))
    status = found.scalar_one_or_none()
    if status is None:
        raise OutboxItemNotFound(item_id)
    if already is not None and status == already.value:
        return
    raise OutboxItemNotPending(item_id, status)
