"""The counted parts of each incident, in their state (issue 12: a rolling 24 hours, windows
changed afterwards, rebuilding the rollups).

Revision ID: 0008_status12
Revises: 0007
Create Date: 2026-12-04

`incident_spans` holds, per incident, the stretches already added to `daily_rollups` with
their state ("down" or "degraded"). Existing incidents get one span each, from their opening
to their resolution (or, while open, to `rollup_since`), in the state of their current
headline: the one reading possible, as earlier revisions kept no history of headlines. The
rollups of incidents resolved before revision 0007 are filled in by the monitor on its next
start (or `monitor rollups rebuild`): that needs each client's time zone, from the config.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from incidents.uptime import span_state
from monitor.store.codec import headline_from_values
from monitor.store.tables import UTCDateTime

revision: str = "0008_status12"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INCIDENTS = sa.table(
    "incidents",
    sa.column("id", sa.Integer),
    sa.column("site", sa.Text),
    sa.column("status", sa.Text),
    sa.column("opened_at", UTCDateTime),
    sa.column("resolved_at", UTCDateTime),
    sa.column("rollup_since", UTCDateTime),
    sa.column("headline", sa.JSON),
)


def upgrade() -> None:
    op.create_table(
        "incident_spans",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"]),
        sa.PrimaryKeyConstraint("id", name="pk_incident_spans"),
    )
    op.create_index("ix_incident_spans_site_ends_at", "incident_spans", ["site", "ends_at"])
    op.create_index("ix_incident_spans_incident_id", "incident_spans", ["incident_id"])
    rows = op.get_bind().execute(sa.select(_INCIDENTS)).mappings()
    values = []
    for row in rows:
        end = row["resolved_at"] if row["status"] != "open" else row["rollup_since"]
        if end is None or end <= row["opened_at"]:
            continue  # open and never counted: read from its opening, as before
        state = span_state(headline_from_values(row["headline"]))
        values.append(
            {
                "incident_id": row["id"],
                "site": row["site"],
                "starts_at": row["opened_at"],
                "ends_at": end,
                "state": state.value,
            }
        )
    if values:
        target = sa.table(
            "incident_spans",
            sa.column("incident_id", sa.Integer),
            sa.column("site", sa.Text),
            sa.column("starts_at", UTCDateTime),
            sa.column("ends_at", UTCDateTime),
            sa.column("state", sa.Text),
        )
        op.bulk_insert(target, values)


def downgrade() -> None:
    op.drop_index("ix_incident_spans_incident_id", table_name="incident_spans")
    op.drop_index("ix_incident_spans_site_ends_at", table_name="incident_spans")
    op.drop_table("incident_spans")
