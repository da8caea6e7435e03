"""Daily rollups per site and per check, in the client's calendar (issue 12: uptime).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

`daily_rollups` holds one row per site (scope "client/site") or check (scope
"client/site/check") and local calendar day: probes and failures (added with each history
flush), and for sites the down and degraded seconds and incidents (added as incidents change;
see monitor.store.rollups). `incidents.rollup_state` and `rollup_since` say which part of an
open incident is not in the rollups yet. Existing incidents get neither: an open one counts
from its next change on, from `opened_at` (see rollups.pending_span).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "daily_rollups",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("day_seconds", sa.Float(), nullable=False),
        sa.Column("probes", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("failures", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("down_seconds", sa.Float(), nullable=False, server_default=sa.text("0")),
        sa.Column("degraded_seconds", sa.Float(), nullable=False, server_default=sa.text("0")),
        sa.Column("incidents", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.PrimaryKeyConstraint("scope", "day", name="pk_daily_rollups"),
    )
    op.create_index("ix_daily_rollups_day", "daily_rollups", ["day"])
    op.create_index("ix_daily_rollups_site_day", "daily_rollups", ["site", "day"])
    # Nullable columns: a plain ADD COLUMN on SQLite too (see 0002).
    op.add_column("incidents", sa.Column("rollup_state", sa.Text(), nullable=True))
    op.add_column("incidents", sa.Column("rollup_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("incidents", "rollup_since")
    op.drop_column("incidents", "rollup_state")
    op.drop_index("ix_daily_rollups_site_day", table_name="daily_rollups")
    op.drop_index("ix_daily_rollups_day", table_name="daily_rollups")
    op.drop_table("daily_rollups")
