"""Heartbeat pings in the store: one row per heartbeat check with its latest pings.

A ping is read, changed by `checks.heartbeat.apply_ping` and written back in one transaction
(a row lock on PostgreSQL, BEGIN IMMEDIATE on SQLite), so that a start and its success
reaching two processes at once still give the run's duration. The row is bounded: it holds
the latest of each kind, not a history (Prometheus and the incident timeline have that).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from checks.heartbeat import PingKind, PingState, apply_ping
from monitor.store.leases import upsert_for
from monitor.store.tables import heartbeat_pings

_COLUMNS = ("last_ping_at", "success_at", "failure_at", "exit_code", "started_at", "run_seconds")


def state_from_row(row: RowMapping) -> PingState:
    return PingState(**{name: row[name] for name in _COLUMNS})


def _values(check_key: str, state: PingState) -> dict[str, Any]:
    return {"check_key": check_key, **{name: getattr(state, name) for name in _COLUMNS}}


async def record(
    conn: AsyncConnection,
    *,
    check_key: str,
    kind: PingKind,
    at: datetime,
    exit_code: int | None,
) -> PingState:
    """Apply one ping to the check's row (inside the caller's transaction)."""
    query = sa.select(heartbeat_pings).where(heartbeat_pings.c.check_key == check_key)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().one_or_none()
    state = apply_ping(
        None if row is None else state_from_row(row), kind=kind, at=at, exit_code=exit_code
    )
    values = _values(check_key, state)
    insert = upsert_for(conn)(heartbeat_pings).values(values)
    changed = {name: insert.excluded[name] for name in _COLUMNS}
    await conn.execute(
        insert.on_conflict_do_update(index_elements=[heartbeat_pings.c.check_key], set_=changed)
    )
    return state


def states_query(keys: Iterable[str]) -> sa.Select[Any]:
    return sa.select(heartbeat_pings).where(heartbeat_pings.c.check_key.in_(list(keys)))
