"""What an incident's title is made of, and when its first failure was seen.

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-04

Additive only: existing incidents keep their English title and get no headline, so their
mails show that title as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns: a plain ADD COLUMN on SQLite too (see 0002).
    op.add_column("incidents", sa.Column("headline", sa.JSON(), nullable=True))
    op.add_column(
        "incidents", sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    # SQLite >= 3.35 drops plain columns in place (neither is indexed or constrained).
    op.drop_column("incidents", "failing_since")
    op.drop_column("incidents", "headline")
