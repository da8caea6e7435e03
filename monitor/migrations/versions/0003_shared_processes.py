"""Processes sharing one database: workers, site leases, confirmations, incident versions
and outbox claims.

Revision ID: 0003
Revises: 0002
Create Date: 2024-08-01

Additive only: existing incidents start at version 1, existing outbox rows are unclaimed.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # NOT NULL with a constant default is a plain ADD COLUMN on SQLite too (see 0002).
    op.add_column(
        "incidents",
        sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1")),
    )
    op.add_column("outbox", sa.Column("claimed_by", sa.Text(), nullable=True))
    op.add_column("outbox", sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))

    op.create_table(
        "workers",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_workers"),
    )

    op.create_table(
        "site_leases",
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("location", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("site", name="pk_site_leases"),
    )
    op.create_index("ix_site_leases_owner", "site_leases", ["owner"])

    op.create_table(
        "confirmations",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("check_key", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=False),
        sa.Column("requested_location", sa.Text(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("claimed_by", sa.Text(), nullable=True),
        sa.Column("claimed_location", sa.Text(), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answer", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_confirmations"),
        sa.CheckConstraint(
            "status IN ('pending', 'claimed', 'answered')", name=op.f("ck_confirmations_status")
        ),
    )
    op.create_index("ix_confirmations_status_expires_at", "confirmations", ["status", "expires_at"])


def downgrade() -> None:
    op.drop_table("confirmations")
    op.drop_table("site_leases")
    op.drop_table("workers")
    # SQLite >= 3.35 drops plain columns in place (none of these is indexed or constrained).
    op.drop_column("outbox", "claimed_until")
    op.drop_column("outbox", "claimed_by")
    op.drop_column("incidents", "version")
