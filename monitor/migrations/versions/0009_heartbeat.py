"""The latest pings of each heartbeat check (issue 16: heartbeats).

Revision ID: 0008_heartbeat
Revises: 0007
Create Date: 2026-12-04

`heartbeat_pings` holds one row per heartbeat check: when it last pinged, its latest success
and failure (with an exit code), a start not yet finished and the latest run's duration (see
monitor.store.pings). Any process may write a ping; the one holding the site judges it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_heartbeat"
down_revision: str | Sequence[str] | None = "0008_status12"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "heartbeat_pings",
        sa.Column("check_key", sa.Text(), nullable=False),
        sa.Column("last_ping_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failure_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("run_seconds", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("check_key", name="pk_heartbeat_pings"),
    )


def downgrade() -> None:
    op.drop_table("heartbeat_pings")
