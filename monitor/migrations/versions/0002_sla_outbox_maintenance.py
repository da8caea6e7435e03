"""SLA clocks on incidents, the notification outbox and maintenance windows.

Revision ID: 0002
Revises: 0001
Create Date: 2024-07-01

Additive only: existing incidents keep their rows and get no clocks (every new column is
nullable, and `sla_marks` defaults to an empty list).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_SLA_TIMES = (
    "response_aim_at",
    "response_due_at",
    "responded_at",
    "last_update_at",
    "next_update_due_at",
    "oncall_notified_at",
)


def upgrade() -> None:
    # Plain ADD COLUMN works on SQLite too (nullable, or NOT NULL with a constant default), so
    # no batch rebuild of the incidents table and its partial unique index is needed.
    op.add_column("incidents", sa.Column("calendar", sa.Text(), nullable=True))
    for name in _SLA_TIMES[:3]:
        op.add_column("incidents", sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    op.add_column("incidents", sa.Column("acknowledged_by", sa.Text(), nullable=True))
    for name in _SLA_TIMES[3:]:
        op.add_column("incidents", sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "incidents",
        sa.Column("sla_marks", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
    )

    op.create_table(
        "outbox",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("audience", sa.Text(), nullable=True),
        sa.Column("dedupe_key", sa.Text(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name="fk_outbox_incident_id_incidents"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("dedupe_key", name="uq_outbox_dedupe_key"),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'failed')", name=op.f("ck_outbox_status")
        ),
        sa.CheckConstraint("channel IN ('email', 'webhook')", name=op.f("ck_outbox_channel")),
    )
    op.create_index("ix_outbox_status_next_attempt_at", "outbox", ["status", "next_attempt_at"])
    op.create_index("ix_outbox_incident_id_id", "outbox", ["incident_id", "id"])

    op.create_table(
        "maintenance_windows",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_maintenance_windows"),
        sa.CheckConstraint(
            "ends_at > starts_at", name=op.f("ck_maintenance_windows_ends_after_start")
        ),
    )
    op.create_index(
        "ix_maintenance_windows_site_ends_at", "maintenance_windows", ["site", "ends_at"]
    )


def downgrade() -> None:
    op.drop_table("maintenance_windows")
    op.drop_table("outbox")
    # SQLite >= 3.35 drops plain columns in place (none of these is indexed or constrained).
    for name in ("sla_marks", *_SLA_TIMES, "acknowledged_by", "calendar"):
        op.drop_column("incidents", name)
