"""The store: incidents, their timelines, check state and bounded recent history.

One class for SQLite and PostgreSQL; the differences (upsert syntax, locking) stay inside.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from checks.result import ProbeResult
from incidents.model import CheckState, Incident, IncidentStatus, TimelineEntry, Transition
from monitor.store import codec
from monitor.store.codec import HistoryRow
from monitor.store.engine import SQLITE_BEGIN, create_engine, describe
from monitor.store.errors import (
    DuplicateOpenIncident,
    IncidentNotFound,
    StoreError,
    translated,
)
from monitor.store.migrate import upgrade_to_head
from monitor.store.tables import ALL_TABLES, check_history, check_state, incidents, timeline

log = logging.getLogger(__name__)

# Buffered history rows are written at the latest when this many are waiting (the runtime also
# flushes every second).
HISTORY_BATCH = 2000


class Store:
    """Persistence for the incident engine. Create with `await Store.open(url)`.

    Every method is safe to call from many tasks at once; `record` is one transaction.
    All datetimes in and out are timezone-aware UTC.
    """

    def __init__(
        self, engine: AsyncEngine, *, history_per_check: int = 50, history_trim_every: int = 10
    ) -> None:
        if history_per_check < 1 or history_trim_every < 1:
            raise ValueError("history_per_check and history_trim_every must be at least 1")
        self._engine = engine
        self._history_per_check = history_per_check
        self._trim_every = history_trim_every
        self._inserts: dict[str, int] = {}  # history rows written per check by this process
        # History rows of results that changed nothing else wait here and are written in one
        # batch by flush_history(): a healthy check then costs no transaction per probe.
        # Losing the last batch in a crash loses recent history only, never an incident.
        self._pending: list[dict[str, Any]] = []
        self._flush_lock = asyncio.Lock()

    @classmethod
    async def open(
        cls, url: str, *, history_per_check: int = 50, history_trim_every: int = 10
    ) -> Store:
        """Connect to `url` and apply any pending migrations.

        `url` is e.g. `sqlite+aiosqlite:///var/monitor.db` or
        `postgresql+asyncpg://user@host/db` (see monitor.store.engine for PostgreSQL
        session options such as the schema). Each check keeps its newest
        `history_per_check` results, plus up to `history_trim_every - 1` not yet trimmed.
        """
        engine = create_engine(url)
        try:
            with translated(f"migrating {describe(url)}"):
                await upgrade_to_head(engine)
        except BaseException:
            await engine.dispose()
            raise
        log.info("store open at %s", describe(url))
        return cls(
            engine, history_per_check=history_per_check, history_trim_every=history_trim_every
        )

    @property
    def engine(self) -> AsyncEngine:
        """The underlying engine, for health checks and tests; not for writing our tables."""
        return self._engine

    @property
    def history_bound(self) -> int:
        """The most history rows a check can have (trimming runs every few inserts)."""
        return self._history_per_check + self._trim_every - 1

    async def close(self) -> None:
        try:
            await self.flush_history()
        finally:
            await self._engine.dispose()

    async def load_check_states(self) -> dict[str, CheckState]:
        with translated("loading check states"):
            rows = await self._fetch(sa.select(check_state))
        states = (codec.state_from_row(row) for row in rows)
        return {state.key: state for state in states}

    async def load_open_incidents(self) -> dict[str, Incident]:
        """Open incidents keyed by site key ("client/site")."""
        query = sa.select(incidents).where(incidents.c.status == IncidentStatus.OPEN.value)
        with translated("loading open incidents"):
            rows = await self._fetch(query)
        found = (codec.incident_from_row(row) for row in rows)
        return {incident.site: incident for incident in found}

    async def record(
        self,
        *,
        check_key: str,
        result: ProbeResult,
        transition: Transition,
        previous_state: CheckState,
    ) -> Incident | None:
        """Write the consequences of one probe result in one transaction.

        Returns the site's incident after the write (with its id when it was just opened),
        or None when the site has none. Raises DuplicateOpenIncident when the site already
        has another open incident; nothing of the result is written then.
        """
        if transition.state.key != check_key:
            raise ValueError(f"transition is for {transition.state.key!r}, not {check_key!r}")
        incident = transition.incident
        if result.started_at.utcoffset() is None:
            # Checked here, not only when bound: a buffered row would fail later, elsewhere.
            raise StoreError(
                f"recording a result of {check_key}: naive datetime "
                f"{result.started_at.isoformat()}: pass an aware UTC datetime"
            )
        history = codec.history_values(check_key, result)
        state_changed = _state_changed(previous_state, transition.state)
        if not state_changed and not transition.incident_changed and not transition.timeline:
            self._pending.append(history)
            if len(self._pending) >= HISTORY_BATCH:
                await self.flush_history()
            return incident
        async with self._flush_lock:
            # Buffered rows go first, in the same transaction, so history stays in order.
            batch, self._pending = self._pending, []
            try:
                with translated(f"recording a result of {check_key}"):
                    async with self._write() as conn:
                        if state_changed:
                            await conn.execute(_upsert_state(conn, transition.state))
                        if incident is not None and transition.incident_changed:
                            incident = await _save_incident(conn, incident, transition, result)
                        if transition.timeline:
                            await _append_timeline(conn, incident, transition.timeline)
                        await self._append_history(conn, [*batch, history])
            except BaseException:
                self._pending[:0] = batch
                raise
        return incident

    async def list_incidents(self, *, open_only: bool = False, limit: int = 100) -> list[Incident]:
        """Incidents, newest first."""
        query = (
            sa.select(incidents)
            .order_by(incidents.c.opened_at.desc(), incidents.c.id.desc())
            .limit(limit)
        )
        if open_only:
            query = query.where(incidents.c.status == IncidentStatus.OPEN.value)
        with translated("listing incidents"):
            rows = await self._fetch(query)
        return [codec.incident_from_row(row) for row in rows]

    async def get_incident(self, incident_id: int) -> Incident | None:
        query = sa.select(incidents).where(incidents.c.id == incident_id)
        with translated(f"reading incident {incident_id}"):
            rows = await self._fetch(query)
        return codec.incident_from_row(rows[0]) if rows else None

    async def timeline(self, incident_id: int) -> list[TimelineEntry]:
        """The incident's timeline, oldest first (empty for an unknown incident)."""
        query = (
            sa.select(timeline).where(timeline.c.incident_id == incident_id).order_by(timeline.c.id)
        )
        with translated(f"reading the timeline of incident {incident_id}"):
            rows = await self._fetch(query)
        return [codec.timeline_from_row(row) for row in rows]

    async def recent_results(self, check_key: str, *, limit: int = 50) -> list[HistoryRow]:
        """The check's latest stored results, newest first."""
        await self.flush_history()
        query = (
            sa.select(check_history)
            .where(check_history.c.check_key == check_key)
            .order_by(check_history.c.id.desc())
            .limit(limit)
        )
        with translated(f"reading the history of {check_key}"):
            rows = await self._fetch(query)
        return [codec.history_from_row(row) for row in rows]

    async def count_rows(self) -> dict[str, int]:
        """Rows per table, e.g. {"incidents": 3, "timeline": 9, ...}."""
        await self.flush_history()
        counts: dict[str, int] = {}
        with translated("counting rows"):
            async with self._engine.connect() as conn:
                for table in ALL_TABLES:
                    query = sa.select(sa.func.count()).select_from(table)
                    counts[table.name] = (await conn.execute(query)).scalar_one()
        return counts

    async def _fetch(self, query: sa.Select[Any]) -> list[sa.RowMapping]:
        async with self._engine.connect() as conn:
            result = await conn.execute(query)
            return list(result.mappings())

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        async with self._engine.connect() as conn:
            if self._engine.dialect.name == "sqlite":
                await conn.execution_options(**{SQLITE_BEGIN: "BEGIN IMMEDIATE"})
            async with conn.begin():
                yield conn

    async def flush_history(self) -> int:
        """Write the buffered history rows in one transaction; returns how many."""
        async with self._flush_lock:
            batch, self._pending = self._pending, []
            if not batch:
                return 0
            try:
                with translated("writing check history"):
                    async with self._write() as conn:
                        await self._append_history(conn, batch)
            except BaseException:
                self._pending[:0] = batch  # keep them for the next flush
                raise
            return len(batch)

    async def _append_history(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        await conn.execute(sa.insert(check_history), rows)
        to_trim: set[str] = set()
        for row in rows:
            check_key = row["check_key"]
            written = self._inserts.get(check_key, 0)
            self._inserts[check_key] = written + 1
            # Trimming on every k-th insert (and the first after a start, whatever was left
            # behind) keeps each check within history_bound rows at one DELETE per k probes.
            if written % self._trim_every == 0:
                to_trim.add(check_key)
        for check_key in sorted(to_trim):
            await conn.execute(_trim_history(check_key, keep=self._history_per_check))


def _upsert_state(conn: AsyncConnection, state: CheckState) -> sa.Executable:
    values = codec.state_values(state)
    dialect = conn.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(check_state).values(values)
    changed = {name: stmt.excluded[name] for name in values if name != "check_key"}
    return stmt.on_conflict_do_update(index_elements=[check_state.c.check_key], set_=changed)


async def _save_incident(
    conn: AsyncConnection, incident: Incident, transition: Transition, result: ProbeResult
) -> Incident:
    updated_at = max([result.started_at, *(entry.at for entry in transition.timeline)])
    values = codec.incident_values(incident, updated_at=updated_at)
    try:
        if incident.id is None:
            stmt = sa.insert(incidents).values(values).returning(incidents.c.id)
            new_id: int = (await conn.execute(stmt)).scalar_one()
            return dataclasses.replace(incident, id=new_id)
        stmt_update = sa.update(incidents).where(incidents.c.id == incident.id).values(values)
        if (await conn.execute(stmt_update)).rowcount == 0:
            raise IncidentNotFound(incident.id)
        return incident
    except IntegrityError as exc:
        # The only constraint an incident row can break is the one open incident per site.
        raise DuplicateOpenIncident(incident.site) from exc


async def _append_timeline(
    conn: AsyncConnection, incident: Incident | None, entries: tuple[TimelineEntry, ...]
) -> None:
    if incident is None or incident.id is None:
        raise StoreError(
            "timeline entries need a stored incident: the transition carries entries but "
            "no incident with an id (set incident_changed when opening one)"
        )
    rows = [codec.timeline_values(entry, incident_id=incident.id) for entry in entries]
    await conn.execute(sa.insert(timeline), rows)


def _trim_history(check_key: str, *, keep: int) -> sa.Delete:
    # The id of the newest row to drop; NULL (nothing dropped) while there are <= keep rows.
    newest_dropped = (
        sa.select(check_history.c.id)
        .where(check_history.c.check_key == check_key)
        .order_by(check_history.c.id.desc())
        .offset(keep)
        .limit(1)
        .scalar_subquery()
    )
    return sa.delete(check_history).where(
        check_history.c.check_key == check_key, check_history.c.id <= newest_dropped
    )


def _state_changed(before: CheckState, after: CheckState) -> bool:
    """Whether the check_state row needs a write. `last_result_at` moves with every probe and
    the history row records it already, so a healthy check's state is written only when it
    really changes, not once per probe."""
    return dataclasses.replace(before, last_result_at=None) != dataclasses.replace(
        after, last_result_at=None
    )
