"""Forced resolves and maintenance that pauses SLA clocks: a check held until it passes,
and an incident's paused clocks.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04

Additive only: existing checks are not held, existing incidents are not paused.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NOT NULL with a constant default is a plain ADD COLUMN on SQLite too (see 0002).
    op.add_column(
        "check_state",
        sa.Column("held", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("incidents", sa.Column("paused_since", sa.DateTime(timezone=True)))
    op.add_column("incidents", sa.Column("paused_until", sa.DateTime(timezone=True)))


def downgrade() -> None:
    # SQLite >= 3.35 drops plain columns in place (none of these is indexed or constrained).
    op.drop_column("incidents", "paused_until")
    op.drop_column("incidents", "paused_since")
    op.drop_column("check_state", "held")
