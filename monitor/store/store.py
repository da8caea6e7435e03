"""The store: incidents, their timelines, check state and bounded recent history, the
notification outbox and maintenance windows; and what lets processes share one database:
workers, site leases, outbox claims and confirmation requests (see monitor.store.leases).

One class for SQLite and PostgreSQL; the differences (upsert syntax, locking) stay inside.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import operator
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from checks.heartbeat import PingKind, PingState
from checks.result import Outcome, ProbeResult
from incidents.model import CheckState, Incident, IncidentStatus, TimelineEntry, Transition
from incidents.outgoing import NoticeKind, Outgoing
from incidents.uptime import DayStat
from monitor.store import codec, leases, rollups, spans
from monitor.store import confirmations as cf
from monitor.store import maintenance as mw
from monitor.store import outbox as ob
from monitor.store import pings as hb
from monitor.store.codec import HistoryRow
from monitor.store.confirmations import ConfirmationAnswer, ConfirmationRequest
from monitor.store.engine import SQLITE_BEGIN, create_engine, describe
from monitor.store.errors import (
    UNAVAILABLE_ERRORS,
    DuplicateOpenIncident,
    IncidentNotFound,
    StaleIncident,
    StoreError,
    translated,
)
from monitor.store.health import StoreHealth
from monitor.store.leases import SiteLeases, WorkerInfo
from monitor.store.maintenance import MaintenanceWindow
from monitor.store.migrate import upgrade_to_head
from monitor.store.outbox import Notify, OutboxItem, OutboxStatus
from monitor.store.outbox_errors import DuplicateNotification
from monitor.store.tables import (
    ALL_TABLES,
    check_history,
    check_state,
    incidents,
    maintenance_windows,
    outbox,
    timeline,
)

log = logging.getLogger(__name__)

# Buffered history rows are written at the latest when this many are waiting (the runtime also
# flushes every second).
HISTORY_BATCH = 2000
HISTORY_BUFFER_MAX = 50 * HISTORY_BATCH


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
        self._pending: list[codec.HistoryValues] = []
        self._flush_lock = asyncio.Lock()
        # Sites whose lease rows exist (they are never deleted): claim_sites skips them.
        self._lease_rows: set[str] = set()
        self._health = StoreHealth()
        self._calendars = rollups.Calendars()

    def use_calendars(self, calendars: rollups.Calendars) -> None:
        """Count daily rollups in each client's time zone and leave out each site's recurring
        maintenance windows too (by default: every client in UTC, stored windows only). Set
        before the first write."""
        self._calendars = calendars

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
    def unavailable(self) -> str | None:
        """Why the database did not answer the latest request (e.g. "ConnectionRefusedError:
        ..."); None while it answers. For /healthz: the runtime keeps counting meanwhile."""
        return self._health.reason

    @property
    def history_bound(self) -> int:
        """The most history rows a check can have (trimming runs every few inserts)."""
        return self._history_per_check + self._trim_every - 1

    async def close(self) -> None:
        try:
            await self.flush_history()
        finally:
            await self._engine.dispose()

    async def load_check_states(self, keys: Iterable[str] | None = None) -> dict[str, CheckState]:
        """Stored check states by check key: all of them, or those of `keys` that exist
        (e.g. the checks of a site this process just took over)."""
        if keys is None:
            queries = [sa.select(check_state)]
        else:
            wanted = sorted(set(keys))
            queries = [
                sa.select(check_state).where(check_state.c.check_key.in_(chunk))
                for chunk in leases.chunks(wanted)
            ]
        rows: list[sa.RowMapping] = []
        with translated("loading check states"):
            for query in queries:
                rows.extend(await self._fetch(query))
        states = (codec.state_from_row(row) for row in rows)
        return {state.key: state for state in states}

    async def load_open_incidents(self) -> dict[str, Incident]:
        """Open incidents keyed by site key ("client/site")."""
        query = sa.select(incidents).where(incidents.c.status == IncidentStatus.OPEN.value)
        with translated("loading open incidents"):
            rows = await self._fetch(query)
        found = (codec.incident_from_row(row) for row in rows)
        return {incident.site: incident for incident in found}

    async def load_open_incident(self, site: str) -> Incident | None:
        """The open incident of `site` ("client/site"), if it has one."""
        query = sa.select(incidents).where(
            incidents.c.site == site, incidents.c.status == IncidentStatus.OPEN.value
        )
        with translated(f"loading the open incident of {site}"):
            rows = await self._fetch(query)
        return codec.incident_from_row(rows[0]) if rows else None

    async def record(
        self,
        *,
        check_key: str,
        result: ProbeResult,
        transition: Transition,
        previous_state: CheckState,
        notify: Notify | None = None,
        owner: str | None = None,
    ) -> Incident | None:
        """Write the consequences of one probe result in one transaction.

        Returns the site's incident after the write (with its id when it was just opened,
        and its new version whenever it was written), or None when the site has none.
        Raises DuplicateOpenIncident when the site already has another open incident, and
        StaleIncident when the incident was written by someone else since it was read;
        nothing of the result is written then.

        With `owner` (a worker id), the write is fenced by the lease on the check's site
        (the check key "client/site/check" without its last part): LeaseLost, and nothing
        written, unless `owner` holds it. A result that changes nothing but history is
        buffered (see flush_history) and not fenced: history is the probing worker's own.

        When the incident changed or gained timeline entries and `notify` is given, it is
        called with the stored incident inside the transaction; the incident it returns is
        written too (and returned), and its notifications are queued in the outbox, due at
        the latest time of the result and its timeline. If `notify` raises, or a notification
        is already queued (DuplicateNotification), nothing of the result is written.
        """
        if transition.state.key != check_key:
            raise ValueError(f"transition is for {transition.state.key!r}, not {check_key!r}")
        site = _site_of(check_key) if owner is not None else ""
        incident = transition.incident
        if result.started_at.utcoffset() is None:
            # Checked here, not only when bound: a buffered row would fail later, elsewhere.
            raise StoreError(
                f"recording a result of {check_key}: naive datetime "
                f"{result.started_at.isoformat()}: pass an aware UTC datetime"
            )
        history = codec.history_row(check_key, result)
        state_changed = _state_changed(previous_state, transition.state)
        worth_telling = transition.incident_changed or bool(transition.timeline)
        if not state_changed and not worth_telling:
            self._pending.append(history)
            if len(self._pending) > HISTORY_BUFFER_MAX:
                # The database has been away for a while: recent history is worth less than
                # bounded memory, so the oldest buffered rows go.
                del self._pending[: len(self._pending) - HISTORY_BUFFER_MAX]
            if len(self._pending) == HISTORY_BATCH:
                await self.flush_history()
            return incident
        # The store never reads the clock: rows it stamps take the time of what happened.
        written_at = max([result.started_at, *(entry.at for entry in transition.timeline)])
        async with self._flush_lock:
            # Buffered rows go first, in the same transaction, so history stays in order.
            batch, self._pending = self._pending, []
            try:
                with translated(f"recording a result of {check_key}"):
                    async with self._write() as conn:
                        if owner is not None:
                            await leases.fence(conn, site=site, owner=owner)
                        if state_changed:
                            await conn.execute(_upsert_state(conn, transition.state))
                        if incident is not None and transition.incident_changed:
                            incident = await _save_incident(conn, incident, updated_at=written_at)
                        if transition.timeline:
                            await _append_timeline(conn, incident, transition.timeline)
                        if incident is not None:
                            incident = await self._told_and_rolled(
                                conn,
                                incident,
                                notify=notify if worth_telling else None,
                                changed=transition.incident_changed,
                                at=written_at,
                            )
                        await self._append_history(conn, [*batch, history])
            except BaseException:
                self._pending[:0] = batch
                raise
        return incident

    async def _told_and_rolled(
        self,
        conn: AsyncConnection,
        incident: Incident,
        *,
        notify: Notify | None,
        changed: bool,
        at: datetime,
    ) -> Incident:
        """Queue what `notify` says about the written incident and, when it changed, add
        its part since the last write to the daily rollups."""
        if notify is not None:
            incident = await _notified(conn, incident, notify, now=at)
        if changed:
            await rollups.advance(conn, incident, at=at, calendars=self._calendars)
        return incident

    async def list_incidents(
        self,
        *,
        open_only: bool = False,
        limit: int = 100,
        client: str | None = None,
        resolved_since: datetime | None = None,
    ) -> list[Incident]:
        """Incidents, newest first; of one `client`; with `resolved_since`, the open ones and
        those resolved at or after it."""
        query = (
            sa.select(incidents)
            .order_by(incidents.c.opened_at.desc(), incidents.c.id.desc())
            .limit(limit)
        )
        if open_only:
            query = query.where(incidents.c.status == IncidentStatus.OPEN.value)
        if client is not None:
            query = query.where(incidents.c.client == client)
        if resolved_since is not None:
            query = query.where(
                sa.or_(
                    incidents.c.status == IncidentStatus.OPEN.value,
                    incidents.c.resolved_at >= resolved_since,
                )
            )
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

    async def timelines(self, incident_ids: Sequence[int]) -> dict[int, list[TimelineEntry]]:
        """The timelines of several incidents at once, each oldest first."""
        found: dict[int, list[TimelineEntry]] = {incident_id: [] for incident_id in incident_ids}
        if not found:
            return found
        query = (
            sa.select(timeline)
            .where(timeline.c.incident_id.in_(sorted(found)))
            .order_by(timeline.c.id)
        )
        with translated("reading incident timelines"):
            rows = await self._fetch(query)
        for row in rows:
            found[row["incident_id"]].append(codec.timeline_from_row(row))
        return found

    async def client_incidents_between(
        self, client: str, *, start: datetime, end: datetime
    ) -> list[Incident]:
        """The client's incidents open at some time in [start, end), oldest first (the
        monthly report's)."""
        query = (
            sa.select(incidents)
            .where(
                incidents.c.client == client,
                incidents.c.opened_at < end,
                sa.or_(
                    incidents.c.resolved_at.is_(None),
                    incidents.c.resolved_at >= start,
                ),
            )
            .order_by(incidents.c.opened_at, incidents.c.id)
        )
        with translated(f"listing the incidents of {client}"):
            rows = await self._fetch(query)
        return [codec.incident_from_row(row) for row in rows]

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

    async def recent_results_of(
        self, check_keys: Sequence[str], *, limit: int = 50
    ) -> dict[str, list[HistoryRow]]:
        """`recent_results` of many checks in one query: each key's latest `limit` results,
        newest first (keys without history are absent)."""
        await self.flush_history()
        if not check_keys:
            return {}
        newest = (
            sa.func.row_number()
            .over(partition_by=check_history.c.check_key, order_by=check_history.c.id.desc())
            .label("newest")
        )
        ranked = (
            sa.select(check_history, newest)
            .where(check_history.c.check_key.in_(list(check_keys)))
            .subquery()
        )
        query = (
            sa.select(ranked)
            .where(ranked.c.newest <= limit)
            .order_by(ranked.c.check_key, ranked.c.newest)
        )
        found: dict[str, list[HistoryRow]] = {}
        with translated(f"reading the history of {len(check_keys)} checks"):
            for row in await self._fetch(query):
                found.setdefault(row["check_key"], []).append(codec.history_from_row(row))
        return found

    async def save_incident(
        self,
        incident: Incident,
        *,
        timeline: Sequence[TimelineEntry],
        notify: Notify | None = None,
        now: datetime,
        owner: str | None = None,
    ) -> Incident:
        """Update a stored incident (an operator action, an SLA tick) in one transaction:
        its row, the `timeline` entries to append, and, when `notify` is given, what it
        returns (as in `record`), with notifications due at `now`. Returns the incident as
        written, with its new version. Raises IncidentNotFound when its id is not stored,
        StaleIncident when its version is not the stored one (someone else wrote it since
        it was read), and with `owner`, LeaseLost unless that worker holds the lease on the
        incident's site; nothing is written then.
        """
        if incident.id is None:
            raise ValueError(
                f"{incident.site}: save_incident updates a stored incident; an incident without "
                "an id is opened through record()"
            )
        with translated(f"saving incident {incident.id}"):
            async with self._write() as conn:
                if owner is not None:
                    await leases.fence(conn, site=incident.site, owner=owner)
                incident = await _save_incident(conn, incident, updated_at=now)
                if timeline:
                    await _append_timeline(conn, incident, timeline)
                if notify is not None:
                    incident = await _notified(conn, incident, notify, now=now)
                await rollups.advance(conn, incident, at=now, calendars=self._calendars)
        return incident

    # --- daily rollups (see monitor.store.rollups and incidents.uptime) ---

    async def daily_stats(
        self, scope: str, *, first: date, last: date, now: datetime
    ) -> list[DayStat]:
        """One DayStat per calendar day `first`..`last` (inclusive) of `scope`, a site
        ("client/site") or a check ("client/site/check"), in its client's time zone.

        Fields (incidents.uptime has the definition of uptime they serve):
        - probes, failures: results recorded that day (failures: any outcome but ok);
        - observed_seconds: the day's length (23, 24 or 25 h on DST days), cut at `now` for
          today; 0 on a day with no probe and no incident (worst "no_data"), and in the future;
        - down_seconds: time outside maintenance in an open incident of the site whose
          headline says it is down (incidents.wording.is_down), up to `now`;
        - degraded_seconds: time outside maintenance and down in an open incident that is not
          down (a slow page, a failing part);
        - maintenance_seconds: time of observed days in the site's stored maintenance windows;
        - incidents: incidents of the site open at some point of the day;
        - worst: "down" > "degraded" > "maintenance" > "operational", or "no_data".
        For a check only probes, failures, observed_seconds and worst are filled in; its
        seconds and incidents are 0 (incidents belong to sites).

        Reads the rollup rows of the period, the site's open incident and its windows in the
        period: no scan of history. Times are those of results and incident writes.
        """
        if last < first:
            raise ValueError(f"daily_stats of {scope}: last ({last}) is before first ({first})")
        await self.flush_history()
        with translated(f"reading the daily rollups of {scope}"):
            async with self._connect() as conn:
                open_incident = None
                if scope.count("/") == 1:
                    open_incident = await rollups.open_incident(conn, scope)
                return await rollups.daily_stats(
                    conn,
                    scope,
                    first=first,
                    last=last,
                    now=now,
                    calendars=self._calendars,
                    open_incident=open_incident,
                )

    async def uptime_ratios(
        self, sites: Sequence[str], *, now: datetime, periods: Sequence[int] = (1, 7, 30, 90)
    ) -> dict[str, dict[int, float | None]]:
        """Uptime (incidents.uptime) of each site ("client/site") over its client's last n
        calendar days, today up to `now` included, for each n of `periods`: equal to
        `uptime(daily_stats(site, first=today - (n - 1) days, last=today, now=now))`, read
        for all sites in a few statements (for the gauge). None: nothing observed."""
        if not sites:
            return {}
        await self.flush_history()
        with translated("reading uptime of every site"):
            async with self._connect() as conn:
                return await rollups.uptime_ratios(
                    conn, sites, now=now, calendars=self._calendars, periods=periods
                )

    async def rolling_uptimes(
        self, sites: Sequence[str], *, now: datetime, hours: int = 24
    ) -> dict[str, float | None]:
        """Uptime (incidents.uptime.rolling_uptime) of each site over the last `hours` up to
        `now`, not whole calendar days: read from the spans and windows overlapping them and
        the days they touch (monitor.store.spans). None: nothing observed."""
        if not sites:
            return {}
        await self.flush_history()
        with translated("reading the rolling uptime of sites"):
            async with self._connect() as conn:
                return await spans.rolling_uptimes(
                    conn,
                    list(sites),
                    now=now,
                    calendars=self._calendars,
                    length=timedelta(hours=hours),
                )

    async def rebuild_rollups(
        self,
        *,
        now: datetime,
        client: str | None = None,
        since: date | None = None,
        all_sites: bool = True,
    ) -> list[str]:
        """Recount the sites' down and degraded seconds and incidents per day from their
        incidents (monitor.store.spans.rebuild): `monitor rollups rebuild`, and at start
        (all_sites False) for incidents resolved before the rollups existed. The sites."""
        with translated("rebuilding the daily rollups"):
            async with self._write() as conn:
                return await spans.rebuild(
                    conn,
                    calendars=self._calendars,
                    now=now,
                    client=client,
                    since=since,
                    all_sites=all_sites,
                )

    async def purge_rollups(self, *, today: date) -> int:
        """Delete rollup rows older than the retention (400 days before `today`)."""
        with translated("purging daily rollups"):
            async with self._write() as conn:
                result = await conn.execute(
                    rollups.purge_query(before=rollups.retention_start(today))
                )
                return int(result.rowcount)

    # --- the outbox (see monitor.store.outbox for the lifecycle of a row) ---

    async def due_outbox(self, *, now: datetime, limit: int = 100) -> list[OutboxItem]:
        """Pending notifications whose next attempt is due at `now`, oldest due first,
        claimed or not: to look at; deliver what claim_outbox returns."""
        with translated("reading the due outbox"):
            rows = await self._fetch(ob.due_query(now=now, limit=limit))
        return [ob.item_from_row(row) for row in rows]

    async def claim_outbox(
        self, *, worker: str, now: datetime, limit: int, claim_for: float
    ) -> list[OutboxItem]:
        """Claim up to `limit` due notifications for `worker` until now + claim_for, oldest
        due first: no other worker gets them until a mark_* ends the claim or it runs out
        (then another sends the row again: same Message-ID / Idempotency-Key)."""
        with translated("claiming due notifications"):
            async with self._write() as conn:
                return await ob.claim(
                    conn, worker=worker, now=now, limit=limit, claim_for=claim_for
                )

    async def extend_outbox_claims(
        self, *, worker: str, item_ids: Sequence[int], now: datetime, claim_for: float
    ) -> set[int]:
        """Renew `worker`'s claims on `item_ids` until now + claim_for (a long delivery);
        returns the ids it still holds: do not send the others, another worker may."""
        with translated("renewing outbox claims"):
            async with self._write() as conn:
                return await ob.extend(
                    conn, worker=worker, item_ids=item_ids, now=now, claim_for=claim_for
                )

    async def outbox_for_incident(self, incident_id: int) -> list[OutboxItem]:
        """Every notification queued about the incident, in the order queued."""
        with translated(f"reading the outbox of incident {incident_id}"):
            rows = await self._fetch(ob.incident_query(incident_id))
        return [ob.item_from_row(row) for row in rows]

    async def list_outbox(
        self, *, statuses: Sequence[OutboxStatus], limit: int = 200
    ) -> list[OutboxItem]:
        """Notifications in `statuses`, newest first."""
        with translated("listing the outbox"):
            rows = await self._fetch(ob.status_query(statuses, limit=limit))
        return [ob.item_from_row(row) for row in rows]

    async def retry_outbox(self, item_id: int, *, now: datetime) -> OutboxItem | None:
        """Try a pending or failed notification again at `now` (an operator's retry); a sent
        one stays sent. None when there is no such row or it was sent."""
        with translated(f"retrying outbox item {item_id}"):
            async with self._write() as conn:
                return await ob.retry_now(conn, item_id, now=now)

    async def queue_notice(self, messages: Sequence[Outgoing], *, now: datetime) -> bool:
        """Queue notifications about the monitor itself (no incident), due at `now`, in one
        transaction. Returns False, queueing nothing, when one of them was queued before
        (same Message-ID): a notice survives a restart without being sent twice."""
        try:
            with translated("queueing a notice"):
                async with self._write() as conn:
                    await ob.enqueue(conn, messages, incident_id=None, now=now)
        except DuplicateNotification:
            return False
        return True

    async def notice_queued(self, message_id: str) -> bool:
        """Whether a notice with this Message-ID is in the outbox (pending, sent or failed)."""
        query = sa.select(outbox.c.id).where(outbox.c.dedupe_key == message_id).limit(1)
        with translated("looking up a notice"):
            return bool(await self._fetch(query))

    async def latest_notices(
        self, kinds: Sequence[NoticeKind], *, limit: int = 1
    ) -> list[OutboxItem]:
        """The newest notices about the monitor itself of `kinds`, newest first."""
        with translated("reading notices"):
            rows = await self._fetch(ob.notices_query(kinds, limit=limit))
        return [ob.item_from_row(row) for row in rows]

    async def outbox_counts(self) -> dict[str, int]:
        """Rows per status, every status present: {"pending": n, "sent": n, "failed": n}."""
        counts = {status.value: 0 for status in OutboxStatus}
        with translated("counting the outbox"):
            async with self._connect() as conn:
                for status, count in await conn.execute(ob.counts_query()):
                    counts[status] = count
        return counts

    async def mark_sent(self, item_id: int, *, at: datetime) -> None:
        """The server accepted the notification. Marking a sent item again does nothing."""
        await self._move(item_id, ob.sent_values(at=at), already=OutboxStatus.SENT)

    async def mark_retry(self, item_id: int, *, error: str, next_attempt_at: datetime) -> None:
        """An attempt failed for now: count it, keep the error, try again at next_attempt_at."""
        await self._move(item_id, ob.retry_values(error=error, next_attempt_at=next_attempt_at))

    async def mark_failed(self, item_id: int, *, error: str, at: datetime) -> None:
        """An attempt failed for good (e.g. a refused recipient): never try again."""
        await self._move(item_id, ob.failed_values(error=error, at=at))

    async def _move(
        self, item_id: int, values: dict[str, Any], *, already: OutboxStatus | None = None
    ) -> None:
        with translated(f"updating outbox item {item_id}"):
            async with self._write() as conn:
                await ob.move(conn, item_id, values=values, already=already)

    # --- processes sharing the database (see monitor.store.leases) ---

    async def heartbeat(
        self, *, worker: str, location: str, now: datetime, ttl: float
    ) -> list[WorkerInfo]:
        """Mark `worker` (in `location`) alive until now + ttl; returns the live workers
        (expires_at > now), itself included, by id. Forgets workers found dead."""
        with translated(f"heartbeat of worker {worker}"):
            async with self._write() as conn:
                return await leases.heartbeat(
                    conn, worker=worker, location=location, now=now, ttl=ttl
                )

    async def retire_worker(self, *, worker: str) -> None:
        """On a clean shutdown: forget `worker`, free its site leases and hand its outbox and
        confirmation claims back, so other workers take over at once. Its own confirmation
        requests are dropped."""
        with translated(f"retiring worker {worker}"):
            async with self._write() as conn:
                await leases.retire(conn, worker=worker)
                await ob.retire(conn, worker=worker)
                await cf.retire(conn, worker=worker)

    async def claim_sites(
        self,
        *,
        worker: str,
        location: str,
        sites: Sequence[str],
        now: datetime,
        lease: float,
        limit: int,
    ) -> SiteLeases:
        """In one transaction: renew the leases `worker` holds among `sites` until
        now + lease, free those it holds outside `sites`, then take free or expired leases
        among `sites` (by site key; concurrent claimers split them) until it holds `limit`.
        Returns what it holds, and which of those it just took (reload their state).

        `sites` is every site this worker may probe; holding more than `limit` releases
        nothing (release_sites does)."""
        with translated(f"claiming sites for worker {worker}"):
            async with self._write() as conn:
                claimed = await leases.claim(
                    conn,
                    worker=worker,
                    location=location,
                    sites=sites,
                    now=now,
                    lease=lease,
                    limit=limit,
                    known=self._lease_rows,
                )
        # Only once committed: rows inserted by a rolled-back claim do not exist.
        self._lease_rows.update(sites)
        return claimed

    async def release_sites(self, *, worker: str, sites: Iterable[str]) -> set[str]:
        """Give up `worker`'s leases among `sites` (e.g. to make room for a new worker);
        returns the sites freed."""
        with translated(f"releasing sites of worker {worker}"):
            async with self._write() as conn:
                return await leases.release(conn, worker=worker, sites=sites)

    async def held_sites(self, *, worker: str) -> set[str]:
        """The sites whose lease names `worker`, expired or not."""
        with translated(f"reading the sites of worker {worker}"):
            async with self._connect() as conn:
                return set(await leases.owned(conn, worker))

    # --- confirmations (see monitor.store.confirmations for the lifecycle of a request) ---

    async def request_confirmation(
        self, *, check_key: str, worker: str, location: str, now: datetime, ttl: float
    ) -> int:
        """Ask workers in other locations to re-probe `check_key` within `ttl` seconds;
        returns the request id to poll with confirmation_answer."""
        with translated(f"requesting a confirmation of {check_key}"):
            async with self._write() as conn:
                return await cf.request(
                    conn, check_key=check_key, worker=worker, location=location, now=now, ttl=ttl
                )

    async def claim_confirmations(
        self, *, worker: str, location: str, now: datetime, limit: int, claim_for: float
    ) -> list[ConfirmationRequest]:
        """Take up to `limit` unexpired requests from locations other than `location`,
        oldest first (pending, or claimed by a worker whose claim ran out), until
        now + claim_for."""
        with translated("claiming confirmation requests"):
            async with self._write() as conn:
                return await cf.claim(
                    conn,
                    worker=worker,
                    location=location,
                    now=now,
                    limit=limit,
                    claim_for=claim_for,
                )

    async def answer_confirmation(
        self, *, request_id: int, worker: str, answer: dict[str, Any], now: datetime
    ) -> bool:
        """Store what `worker` saw (a small JSON object: outcome, latency, status, error,
        location). True if stored; False if the request was answered already or is gone."""
        with translated(f"answering confirmation request {request_id}"):
            async with self._write() as conn:
                return await cf.answer(
                    conn, request_id=request_id, worker=worker, answer=answer, now=now
                )

    async def confirmation_answer(self, request_id: int) -> ConfirmationAnswer | None:
        """The answer to the request, or None while it has none (or was purged)."""
        with translated(f"reading confirmation request {request_id}"):
            rows = await self._fetch(cf.answer_query(request_id))
        return cf.answer_from_row(rows[0]) if rows else None

    async def purge_confirmations(self, *, before: datetime) -> int:
        """Delete the requests that expired before `before`; returns how many."""
        with translated("purging confirmation requests"):
            async with self._write() as conn:
                return int((await conn.execute(cf.purge(before=before))).rowcount)

    # --- maintenance windows ---

    async def add_maintenance(
        self,
        *,
        site: str,
        starts_at: datetime,
        ends_at: datetime,
        reason: str,
        created_by: str,
        now: datetime,
    ) -> MaintenanceWindow:
        """Store a window for `site` ("client/site"). Raises ValueError unless it ends after
        it starts."""
        values = mw.window_values(
            site=site,
            starts_at=starts_at,
            ends_at=ends_at,
            reason=reason,
            created_by=created_by,
            now=now,
        )
        # The whole row returned, so times come back in UTC like every other read.
        stmt = sa.insert(maintenance_windows).values(values).returning(maintenance_windows)
        with translated(f"adding a maintenance window for {site}"):
            async with self._write() as conn:
                row = (await conn.execute(stmt)).mappings().one()
                # Down time already counted in it is not down any more (issue 12).
                await spans.recount_window(
                    conn, site, starts_at=starts_at, ends_at=ends_at, calendars=self._calendars
                )
        return mw.window_from_row(row)

    async def active_maintenance(self, *, now: datetime) -> dict[str, MaintenanceWindow]:
        """The window in force at `now` per site key; of overlapping ones, the one ending last."""
        with translated("reading active maintenance windows"):
            rows = await self._fetch(mw.active_query(now=now))
        # Rows come ordered by end within each site, so the last one per site wins.
        return {window.site: window for window in map(mw.window_from_row, rows)}

    async def list_maintenance(
        self, *, site: str | None = None, include_past: bool = False, now: datetime
    ) -> list[MaintenanceWindow]:
        """Windows by start time, of one site or all; without include_past, only those that
        have not ended by `now` (in force or to come)."""
        query = mw.list_query(site=site, include_past=include_past, now=now)
        with translated("listing maintenance windows"):
            rows = await self._fetch(query)
        return [mw.window_from_row(row) for row in rows]

    async def cancel_maintenance(self, window_id: int) -> MaintenanceWindow | None:
        """Delete window `window_id` (to come or in force: it ends now); the deleted window,
        or None when there is no such window."""
        stmt = mw.delete_query(window_id=window_id).returning(maintenance_windows)
        with translated(f"cancelling maintenance window {window_id}"):
            async with self._write() as conn:
                row = (await conn.execute(stmt)).mappings().one_or_none()
                if row is not None:
                    # What it held out of the rollups counts again.
                    window = mw.window_from_row(row)
                    await spans.recount_window(
                        conn,
                        window.site,
                        starts_at=window.starts_at,
                        ends_at=window.ends_at,
                        calendars=self._calendars,
                    )
        return None if row is None else mw.window_from_row(row)

    # --- heartbeat pings ---

    async def record_ping(
        self, *, check_key: str, kind: PingKind, at: datetime, exit_code: int | None = None
    ) -> PingState:
        """Apply one ping of heartbeat check `check_key`; its latest pings after it."""
        with translated(f"recording a ping of {check_key}"):
            async with self._write() as conn:
                return await hb.record(
                    conn, check_key=check_key, kind=kind, at=at, exit_code=exit_code
                )

    async def ping_states(self, keys: Iterable[str]) -> dict[str, PingState]:
        """The latest pings per check key, of those that ever pinged."""
        with translated("reading heartbeat pings"):
            rows = await self._fetch(hb.states_query(keys))
        return {row["check_key"]: hb.state_from_row(row) for row in rows}

    async def count_rows(self) -> dict[str, int]:
        """Rows per table, e.g. {"incidents": 3, "timeline": 9, ...}."""
        await self.flush_history()
        counts: dict[str, int] = {}
        with translated("counting rows"):
            async with self._connect() as conn:
                for table in ALL_TABLES:
                    query = sa.select(sa.func.count()).select_from(table)
                    counts[table.name] = (await conn.execute(query)).scalar_one()
        return counts

    async def _fetch(self, query: sa.Select[Any]) -> list[sa.RowMapping]:
        async with self._connect() as conn:
            result = await conn.execute(query)
            return list(result.mappings())

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection, noting whether the database answered (see `unavailable`)."""
        try:
            async with self._engine.connect() as conn:
                yield conn
        except UNAVAILABLE_ERRORS as exc:
            self._health.failed(exc)
            raise
        except Exception:
            self._health.answered()  # it answered, with a refusal (a constraint, a fence)
            raise
        self._health.answered()

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        async with self._connect() as conn:
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

    async def _append_history(
        self, conn: AsyncConnection, rows: Sequence[codec.HistoryValues]
    ) -> None:
        # One executemany of plain tuples: hundreds of rows a second go through here, and
        # SQLAlchemy's per-row parameter processing would cost more than the insert itself.
        if conn.dialect.name == "sqlite":
            await conn.exec_driver_sql(_INSERT_HISTORY_SQLITE, codec.sqlite_history_rows(rows))
        else:
            await conn.exec_driver_sql(_INSERT_HISTORY_POSTGRESQL, list(rows))
        counts = rollups.probe_counts(
            ((row[0], row[1], row[2]) for row in rows), self._calendars.zone_of
        )
        await rollups.add_probe_counts(conn, counts, zone_of=self._calendars.zone_of)
        to_trim: list[str] = []
        inserts, trim_every = self._inserts, self._trim_every
        for row in rows:
            check_key = row[0]
            written = inserts.get(check_key, 0)
            inserts[check_key] = written + 1
            # Trimming on every k-th insert (and the first after a start, whatever was left
            # behind) keeps each check within history_bound rows, at one statement per flush
            # for all the checks due.
            if written % trim_every == 0:
                to_trim.append(check_key)
        keys = sorted(set(to_trim))
        for start in range(0, len(keys), _TRIM_CHUNK):
            chunk = keys[start : start + _TRIM_CHUNK]
            await conn.execute(_trim_history(chunk, keep=self._history_per_check))


def _upsert_state(conn: AsyncConnection, state: CheckState) -> sa.Executable:
    values = codec.state_values(state)
    dialect = conn.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(check_state).values(values)
    changed = {name: stmt.excluded[name] for name in values if name != "check_key"}
    return stmt.on_conflict_do_update(index_elements=[check_state.c.check_key], set_=changed)


async def _save_incident(
    conn: AsyncConnection, incident: Incident, *, updated_at: datetime
) -> Incident:
    """Insert the incident (returned with its id, at version 1) or update its row by id if
    it still has the incident's version (returned with the next one)."""
    values = codec.incident_values(incident, updated_at=updated_at)
    try:
        if incident.id is None:
            stmt = sa.insert(incidents).values({**values, "version": 1}).returning(incidents.c.id)
            new_id: int = (await conn.execute(stmt)).scalar_one()
            return dataclasses.replace(incident, id=new_id, version=1)
        stmt_update = (
            sa.update(incidents)
            .where(incidents.c.id == incident.id, incidents.c.version == incident.version)
            .values({**values, "version": incidents.c.version + 1})
        )
        if (await conn.execute(stmt_update)).rowcount == 0:
            exists = sa.select(incidents.c.id).where(incidents.c.id == incident.id)
            if (await conn.execute(exists)).first() is None:
                raise IncidentNotFound(incident.id)
            raise StaleIncident(incident.id, incident.version)
        return dataclasses.replace(incident, version=incident.version + 1)
    except IntegrityError as exc:
        # The only constraint an incident row can break is the one open incident per site.
        raise DuplicateOpenIncident(incident.site) from exc


async def _notified(
    conn: AsyncConnection, incident: Incident, notify: Notify, *, now: datetime
) -> Incident:
    """Ask `notify` what to say about the stored `incident`; write what it changed and queue
    its notifications. Returns the incident as it now stands."""
    if incident.id is None:
        raise StoreError(f"{incident.site}: notifications need a stored incident (no id)")
    changed, messages = notify(incident)
    if changed.id != incident.id or changed.version != incident.version:
        raise ValueError(
            f"notify returned incident {changed.id} version {changed.version} for incident "
            f"{incident.id} version {incident.version}; it may change the incident's clocks "
            "and marks, not which incident (or version) it is"
        )
    if changed != incident:
        changed = await _save_incident(conn, changed, updated_at=now)
    await ob.enqueue(conn, messages, incident_id=incident.id, now=now)
    return changed


async def _append_timeline(
    conn: AsyncConnection, incident: Incident | None, entries: Sequence[TimelineEntry]
) -> None:
    if incident is None or incident.id is None:
        raise StoreError(
            "timeline entries need a stored incident: the transition carries entries but "
            "no incident with an id (set incident_changed when opening one)"
        )
    rows = [codec.timeline_values(entry, incident_id=incident.id) for entry in entries]
    await conn.execute(sa.insert(timeline), rows)


def _site_of(check_key: str) -> str:
    site, _, check = check_key.rpartition("/")
    if not site or not check:
        raise ValueError(
            f"check key {check_key!r} names no site: fencing by site lease needs "
            '"client/site/check" keys'
        )
    return site


def _trim_history(check_keys: Sequence[str], *, keep: int) -> sa.Delete:
    """Delete all but the newest `keep` rows of each of `check_keys`, in one statement."""
    newest_first = (
        sa.select(
            check_history.c.id,
            sa.func.row_number()
            .over(partition_by=check_history.c.check_key, order_by=check_history.c.id.desc())
            .label("rank"),
        )
        .where(check_history.c.check_key.in_(check_keys))
        .subquery()
    )
    dropped = sa.select(newest_first.c.id).where(newest_first.c.rank > keep)
    return sa.delete(check_history).where(check_history.c.id.in_(dropped))


_HISTORY_INSERT = f"INSERT INTO check_history ({', '.join(codec.HISTORY_COLUMNS)}) VALUES "
_INSERT_HISTORY_SQLITE = _HISTORY_INSERT + "(?, ?, ?, ?, ?, ?)"
_INSERT_HISTORY_POSTGRESQL = _HISTORY_INSERT + "($1, $2, $3, $4, $5, $6)"
# Check keys per trimming statement: far below either database's limit on parameters.
_TRIM_CHUNK = 1000
# The check_state columns that make a write worth it: all but last_result_at (see below).
_STATE_FIELDS = operator.attrgetter(
    *(f.name for f in dataclasses.fields(CheckState) if f.name != "last_result_at")
)


def _state_changed(before: CheckState, after: CheckState) -> bool:
    """Whether the check_state row needs a write. `last_result_at` moves with every probe and
    the history row records it already, so a healthy check's state is written only when it
    really changes, not once per probe. A check seen healthy for the first time needs no row
    either: a missing row reads as a check with nothing against it, which is what it is. (At
    50,000 checks, a row each would cost a first round of 50,000 transactions.)"""
    if before is after or (_quiet(before) and _quiet(after)):
        return False
    return _STATE_FIELDS(before) != _STATE_FIELDS(after)


def _quiet(state: CheckState) -> bool:
    """Nothing counts against the check: never seen, or healthy and in no incident."""
    return (
        not state.recent
        and not state.successes
        and not state.failing
        and state.severity is None
        and state.last_outcome in (None, Outcome.OK)
    )
