"""Outbox rows about the monitor itself: `outbox.incident_id` may be null.

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-04

A notice such as "the monitor lost its connectivity" (see incidents.connectivity) is about no
incident, yet must be delivered, retried and deduplicated like any other notification.
Existing rows keep their incident.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A table rebuild on SQLite (batch mode, see env.py); a plain ALTER on PostgreSQL.
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("incident_id", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM outbox WHERE incident_id IS NULL")
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("incident_id", existing_type=sa.Integer(), nullable=False)
