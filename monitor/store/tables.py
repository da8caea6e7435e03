"""The schema as SQLAlchemy Core metadata: the source the migrations are checked against.

A change here needs a new revision in monitor/migrations/versions/; a test compares the
migrated database with this metadata on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from monitor.store.text import storable, storable_json

# Deterministic constraint names, so later migrations can refer to them on both backends.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL needs 64 bits for tables that
# grow with every probe (10k checks every 30 s pass 2**31 ids in under three months).
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes in, timezone-aware UTC datetimes out, on every backend.

    SQLite has no time zone type: values are stored as naive UTC text and made aware again
    on the way out. Naive datetimes are refused, since their meaning is a guess.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class CleanText(sa.TypeDecorator[str]):
    """Text whose NUL and other control characters are dropped on the way in (see
    monitor.store.text): for columns that may hold what a target sent."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else storable(value)


class CleanJSON(sa.TypeDecorator[Any]):
    """JSON whose strings lose NUL and other control characters on the way in."""

    impl = sa.JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return storable_json(value)


OPEN_STATUS_CLAUSE = sa.text("status = 'open'")

incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("client", sa.Text, nullable=False),
    sa.Column("site", sa.Text, nullable=False),
    sa.Column("title", CleanText, nullable=False),
    sa.Column("severity", sa.Integer, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("opened_at", UTCDateTime, nullable=False),
    sa.Column("resolved_at", UTCDateTime, nullable=True),
    sa.Column("failing_checks", sa.JSON, nullable=False),
    sa.Column("checks", sa.JSON, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # SLA clocks (revision 0002); rows from before it have none of them.
    sa.Column("calendar", sa.Text, nullable=True),
    sa.Column("response_aim_at", UTCDateTime, nullable=True),
    sa.Column("response_due_at", UTCDateTime, nullable=True),
    sa.Column("responded_at", UTCDateTime, nullable=True),
    sa.Column("acknowledged_by", CleanText, nullable=True),
    sa.Column("last_update_at", UTCDateTime, nullable=True),
    sa.Column("next_update_due_at", UTCDateTime, nullable=True),
    sa.Column("oncall_notified_at", UTCDateTime, nullable=True),
    sa.Column("sla_marks", sa.JSON, nullable=False, server_default=sa.text("'[]'")),
    # Bumped by every update, which only applies to the version it read (revision 0003): a
    # writer holding a stale copy fails instead of overwriting what another wrote.
    sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
    # What the title is made of, so each mail words it in its reader's language, and the
    # first failure's time (revision 0005); rows from before it have neither.
    sa.Column("headline", sa.JSON, nullable=True),
    sa.Column("failing_since", UTCDateTime, nullable=True),
    # Clocks paused by a maintenance window of the site (revision 0004).
    sa.Column("paused_since", UTCDateTime, nullable=True),
    sa.Column("paused_until", UTCDateTime, nullable=True),
    # The part of the incident not yet added to daily_rollups: its state ("down" or
    # "degraded", incidents.uptime.SpanState) since when (revision 0007); None once resolved.
    sa.Column("rollup_state", sa.Text, nullable=True),
    sa.Column("rollup_since", UTCDateTime, nullable=True),
    # The database, not the engine, guarantees one open incident per site: two processes
    # racing to open one for the same site cannot both win.
    sa.Index(
        "uq_incidents_open_site",
        "site",
        unique=True,
        sqlite_where=OPEN_STATUS_CLAUSE,
        postgresql_where=OPEN_STATUS_CLAUSE,
    ),
    sa.Index("ix_incidents_opened_at", "opened_at"),
)

timeline = sa.Table(
    "timeline",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("message", CleanText, nullable=False),
    sa.Column("check_key", sa.Text, nullable=True),
    sa.Column("outcome", sa.Text, nullable=True),
    sa.Column("severity", sa.Integer, nullable=True),
    sa.Column("evidence", CleanJSON, nullable=True),
    sa.Index("ix_timeline_incident_id_id", "incident_id", "id"),
)

check_state = sa.Table(
    "check_state",
    metadata,
    sa.Column("check_key", sa.Text, primary_key=True),
    sa.Column("recent", sa.JSON, nullable=False),  # severities, newest last; null = success
    sa.Column("successes", sa.Integer, nullable=False),
    sa.Column("failing", sa.Boolean, nullable=False),
    sa.Column("severity", sa.Integer, nullable=True),
    sa.Column("last_outcome", sa.Text, nullable=True),
    sa.Column("last_result_at", UTCDateTime, nullable=True),
    sa.Column("since", UTCDateTime, nullable=True),
    # Resolved by hand while failing: failures wait for one success (revision 0004).
    sa.Column("held", sa.Boolean, nullable=False, server_default=sa.false()),
)

check_history = sa.Table(
    "check_history",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("check_key", sa.Text, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("latency", sa.Float, nullable=True),
    sa.Column("status", sa.Integer, nullable=True),
    sa.Column("error", CleanText, nullable=True),
    sa.Index("ix_check_history_check_key_id", "check_key", "id"),
)

# Notifications waiting to be delivered, written in the transaction of the incident change
# that caused them (see monitor.store.outbox).
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    # Null for a notice about the monitor itself, e.g. lost connectivity (revision 0006).
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=True),
    sa.Column("channel", sa.Text, nullable=False),  # "email" | "webhook" | "chat"
    sa.Column("kind", sa.Text, nullable=False),  # incidents.outgoing.MessageKind
    sa.Column("audience", sa.Text, nullable=True),  # emails only
    # The email's Message-ID or the webhook's idempotency key: the same notification can
    # never be queued twice, whichever process or retry tries.
    sa.Column("dedupe_key", sa.Text, nullable=False),
    sa.Column("payload", CleanJSON, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("last_error", CleanText, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=True),
    # The worker delivering it, until claimed_until (revision 0003): processes sharing the
    # database never send one row at the same time, and a dead one's claim runs out.
    sa.Column("claimed_by", sa.Text, nullable=True),
    sa.Column("claimed_until", UTCDateTime, nullable=True),
    sa.UniqueConstraint("dedupe_key"),
    sa.CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status"),
    sa.CheckConstraint("channel IN ('email', 'webhook', 'chat')", name="channel"),
    sa.Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
    sa.Index("ix_outbox_incident_id_id", "incident_id", "id"),
)

maintenance_windows = sa.Table(
    "maintenance_windows",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("site", sa.Text, nullable=False),  # site key "client/site"
    sa.Column("starts_at", UTCDateTime, nullable=False),
    sa.Column("ends_at", UTCDateTime, nullable=False),
    sa.Column("reason", CleanText, nullable=False),
    sa.Column("created_by", CleanText, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.CheckConstraint("ends_at > starts_at", name="ends_after_start"),
    sa.Index("ix_maintenance_windows_site_ends_at", "site", "ends_at"),
)

# --- processes sharing one database (revision 0003; see monitor.store.leases) ---

# Every `monitor run` process, alive while expires_at is ahead (renewed by its heartbeat).
workers = sa.Table(
    "workers",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("location", sa.Text, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("heartbeat_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)

# Which process probes a site ("client/site") and may write its state and incident: the
# owner, until expires_at. A row with no owner is free; an expired one may be taken.
site_leases = sa.Table(
    "site_leases",
    metadata,
    sa.Column("site", sa.Text, primary_key=True),
    sa.Column("owner", sa.Text, nullable=True),
    sa.Column("location", sa.Text, nullable=True),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("acquired_at", UTCDateTime, nullable=True),
    sa.Index("ix_site_leases_owner", "owner"),
)

# A failure seen from one location, to be re-probed from another before an incident opens
# (see monitor.store.confirmations for the lifecycle of a row).
confirmations = sa.Table(
    "confirmations",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("check_key", sa.Text, nullable=False),
    sa.Column("requested_by", sa.Text, nullable=False),
    sa.Column("requested_location", sa.Text, nullable=False),
    sa.Column("requested_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("claimed_by", sa.Text, nullable=True),  # after an answer: who answered
    sa.Column("claimed_location", sa.Text, nullable=True),
    sa.Column("claimed_until", UTCDateTime, nullable=True),
    sa.Column("answered_at", UTCDateTime, nullable=True),
    sa.Column("answer", CleanJSON, nullable=True),
    sa.CheckConstraint("status IN ('pending', 'claimed', 'answered')", name="status"),
    sa.Index("ix_confirmations_status_expires_at", "status", "expires_at"),
)

# Per site ("client/site") or check ("client/site/check") and calendar day of its client
# (revision 0007, see monitor.store.rollups): what the daily bars and uptime are read from.
daily_rollups = sa.Table(
    "daily_rollups",
    metadata,
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("site", sa.Text, nullable=False),
    # The day's length in its client's zone (23, 24 or 25 h): what sums of observed time add.
    sa.Column("day_seconds", sa.Float, nullable=False),
    sa.Column("probes", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("failures", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("down_seconds", sa.Float, nullable=False, server_default=sa.text("0")),
    sa.Column("degraded_seconds", sa.Float, nullable=False, server_default=sa.text("0")),
    sa.Column("incidents", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.PrimaryKeyConstraint("scope", "day"),
    sa.Index("ix_daily_rollups_day", "day"),
    sa.Index("ix_daily_rollups_site_day", "site", "day"),
)

# The parts of each incident already added to daily_rollups, in their state (revision
# 0008_status12): what a rolling 24 hours, a changed maintenance window and a rebuild read back
# instead of rescanning timelines. Consecutive parts in one state are one row.
incident_spans = sa.Table(
    "incident_spans",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
    sa.Column("site", sa.Text, nullable=False),
    sa.Column("starts_at", UTCDateTime, nullable=False),
    sa.Column("ends_at", UTCDateTime, nullable=False),
    sa.Column("state", sa.Text, nullable=False),  # incidents.uptime.SpanState
    sa.Index("ix_incident_spans_site_ends_at", "site", "ends_at"),
    sa.Index("ix_incident_spans_incident_id", "incident_id"),
)

# The latest pings of each heartbeat check, one row per check (revision 0008_heartbeat, see
# monitor.store.pings): whichever process a ping reaches writes it, the site's owner judges it.
heartbeat_pings = sa.Table(
    "heartbeat_pings",
    metadata,
    sa.Column("check_key", sa.Text, primary_key=True),
    sa.Column("last_ping_at", UTCDateTime, nullable=True),
    sa.Column("success_at", UTCDateTime, nullable=True),
    sa.Column("failure_at", UTCDateTime, nullable=True),
    sa.Column("exit_code", sa.Integer, nullable=True),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("run_seconds", sa.Float, nullable=True),
)

ALL_TABLES = (
    incidents,
    timeline,
    check_state,
    check_history,
    outbox,
    maintenance_windows,
    workers,
    site_leases,
    confirmations,
    daily_rollups,
    incident_spans,
    heartbeat_pings,
)
