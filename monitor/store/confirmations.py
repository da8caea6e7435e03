"""Confirmation requests: a failure seen from one location, re-probed from another before an
incident opens.

The worker owning the check's site asks (`request`); a worker in another location takes the
request (`claim`), probes the check and answers (`answer`); the asker polls for the answer
(`answer_of`) until the request expires, then decides without it. Rows are deleted by
`purge` once expired.

Lifecycle of a row (`ConfirmationStatus`):

    pending --claim (another location)--> claimed (until claimed_until)
    claimed --claimed_until passed, claim--> claimed by the new claimer
    pending | claimed --answer--> answered (final; the first answer wins)
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from monitor.store.tables import confirmations

ANSWER_MAX_CHARS = 4096


class ConfirmationStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for a worker in another location
    CLAIMED = "claimed"  # being probed by claimed_by, until claimed_until
    ANSWERED = "answered"  # final: the answer is stored


@dataclass(frozen=True, slots=True)
class ConfirmationRequest:
    """A request to re-probe `check_key`, as a claimer received it."""

    id: int
    check_key: str  # "client/site/check"
    requested_by: str  # worker id
    requested_location: str
    requested_at: datetime
    expires_at: datetime  # the asker stops waiting then
    claimed_until: datetime  # answer before then; afterwards another worker may take it


@dataclass(frozen=True, slots=True)
class ConfirmationAnswer:
    request_id: int
    check_key: str
    answered_by: str  # worker id
    answered_at: datetime
    # What the other location saw: {"outcome", "latency", "status", "error", "location"}.
    answer: dict[str, Any]


async def request(
    conn: AsyncConnection, *, check_key: str, worker: str, location: str, now: datetime, ttl: float
) -> int:
    if not ttl > 0:
        raise ValueError(f"ttl must be a positive number of seconds (got {ttl!r})")
    stmt = (
        sa.insert(confirmations)
        .values(
            check_key=check_key,
            requested_by=worker,
            requested_location=location,
            requested_at=now,
            expires_at=now + timedelta(seconds=ttl),
            status=ConfirmationStatus.PENDING.value,
        )
        .returning(confirmations.c.id)
    )
    request_id: int = (await conn.execute(stmt)).scalar_one()
    return request_id


async def claim(
    conn: AsyncConnection,
    *,
    worker: str,
    location: str,
    now: datetime,
    limit: int,
    claim_for: float,
) -> list[ConfirmationRequest]:
    """Take up to `limit` live requests from other locations, oldest first: pending ones
    and those whose claimer let its claim run out."""
    if not claim_for > 0:
        raise ValueError(f"claim_for must be a positive number of seconds (got {claim_for!r})")
    table = confirmations
    open_ = sa.or_(
        table.c.status == ConfirmationStatus.PENDING.value,
        sa.and_(table.c.status == ConfirmationStatus.CLAIMED.value, table.c.claimed_until <= now),
    )
    # SKIP LOCKED: a request another worker is claiming right now is left to it.
    takeable = (
        sa.select(table.c.id)
        .where(open_, table.c.expires_at > now, table.c.requested_location != location)
        .order_by(table.c.requested_at, table.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        sa.update(table)
        .where(table.c.id.in_(takeable.scalar_subquery()))
        .values(
            status=ConfirmationStatus.CLAIMED.value,
            claimed_by=worker,
            claimed_location=location,
            claimed_until=now + timedelta(seconds=claim_for),
        )
        .returning(table)
    )
    rows = (await conn.execute(stmt)).mappings().all()
    found = [_request_from_row(row) for row in rows]
    return sorted(found, key=lambda r: (r.requested_at, r.id))


async def answer(
    conn: AsyncConnection,
    *,
    request_id: int,
    worker: str,
    answer: dict[str, Any],
    now: datetime,
) -> bool:
    """Store the answer unless the request already has one (or is gone); True if stored.

    A worker whose claim ran out may still answer: what it saw is as good as anyone's.
    """
    _check_answer(answer)
    table = confirmations
    stmt = (
        sa.update(table)
        .where(table.c.id == request_id, table.c.status != ConfirmationStatus.ANSWERED.value)
        .values(
            status=ConfirmationStatus.ANSWERED.value,
            claimed_by=worker,
            claimed_until=None,
            answered_at=now,
            answer=answer,
        )
    )
    return bool((await conn.execute(stmt)).rowcount == 1)


def answer_query(request_id: int) -> sa.Select[Any]:
    return sa.select(confirmations).where(
        confirmations.c.id == request_id,
        confirmations.c.status == ConfirmationStatus.ANSWERED.value,
    )


def answer_from_row(row: RowMapping) -> ConfirmationAnswer:
    return ConfirmationAnswer(
        request_id=row["id"],
        check_key=row["check_key"],
        answered_by=row["claimed_by"],
        answered_at=row["answered_at"],
        answer=row["answer"],
    )


def purge(*, before: datetime) -> sa.Delete:
    return sa.delete(confirmations).where(confirmations.c.expires_at < before)


async def retire(conn: AsyncConnection, *, worker: str) -> None:
    """Hand `worker`'s claims back to the others, and drop its own requests: nobody will
    read their answers (the site's next owner asks again if it needs to)."""
    table = confirmations
    await conn.execute(sa.delete(table).where(table.c.requested_by == worker))
    await conn.execute(
        sa.update(table)
        .where(table.c.claimed_by == worker, table.c.status == ConfirmationStatus.CLAIMED.value)
        .values(
            status=ConfirmationStatus.PENDING.value,
            claimed_by=None,
            claimed_location=None,
            claimed_until=None,
        )
    )


def _check_answer(answer: dict[str, Any]) -> None:
    try:
        encoded = json.dumps(answer)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"a confirmation answer must be plain JSON: {exc}") from exc
    if not isinstance(answer, dict) or len(encoded) > ANSWER_MAX_CHARS:
        raise ValueError(
            f"a confirmation answer is a small JSON object (at most {ANSWER_MAX_CHARS} "
            "characters): outcome, latency, status, error (cut it short), location"
        )


def _request_from_row(row: RowMapping) -> ConfirmationRequest:
    return ConfirmationRequest(
        id=row["id"],
        check_key=row["check_key"],
        requested_by=row["requested_by"],
        requested_location=row["requested_location"],
        requested_at=row["requested_at"],
        expires_at=row["expires_at"],
        claimed_until=row["claimed_until"],
    )
