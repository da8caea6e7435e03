"""Outbox rows for named chat and pager channels (issue 14: channels).

Revision ID: 0008_channels
Revises: 0007
Create Date: 2026-12-04

`outbox.channel` may now be "chat": a message to a destination of the `channels:` section,
delivered through Apprise. The channel's name travels in the payload; its URL (a secret)
never reaches the database. Existing rows are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008_channels"
down_revision: str | Sequence[str] | None = "0008_heartbeat"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A table rebuild on SQLite (batch mode, see env.py); a plain ALTER on PostgreSQL.
    with op.batch_alter_table("outbox") as batch:
        batch.drop_constraint(op.f("ck_outbox_channel"), type_="check")
        batch.create_check_constraint(
            op.f("ck_outbox_channel"), "channel IN ('email', 'webhook', 'chat')"
        )


def downgrade() -> None:
    op.execute("DELETE FROM outbox WHERE channel = 'chat'")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_constraint(op.f("ck_outbox_channel"), type_="check")
        batch.create_check_constraint(op.f("ck_outbox_channel"), "channel IN ('email', 'webhook')")
