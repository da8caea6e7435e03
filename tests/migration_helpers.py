"""A database as an older revision left it, with rows in place: the start of every test
that a migration upgrades what is already there."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import command

from monitor.store.engine import create_engine
from monitor.store.migrate import alembic_config
from monitor.store.tables import UTCDateTime

# The incidents columns that every revision since 0001 has; an insert names only the
# columns it is given, so one table serves every old revision.
OLD_INCIDENTS = sa.table(
    "incidents",
    sa.column("id", sa.Integer),
    sa.column("client", sa.Text),
    sa.column("site", sa.Text),
    sa.column("title", sa.Text),
    sa.column("severity", sa.Integer),
    sa.column("status", sa.Text),
    sa.column("opened_at", UTCDateTime),
    sa.column("resolved_at", UTCDateTime),
    sa.column("failing_checks", sa.JSON),
    sa.column("checks", sa.JSON),
    sa.column("updated_at", UTCDateTime),
)


def old_open_incident(
    incident_id: int, *, opened_at: datetime, site: str = "acme/shop", **more: Any
) -> tuple[sa.TableClause, dict[str, Any]]:
    """A row of OLD_INCIDENTS: an open Severity 1 incident of `site` failing on its home
    check, last written when it opened; `more` adds or overrides columns."""
    check = f"{site}/home"
    values = {
        "id": incident_id,
        "client": site.split("/")[0],
        "site": site,
        "title": "shop is down",
        "severity": 1,
        "status": "open",
        "opened_at": opened_at,
        "failing_checks": [check],
        "checks": [check],
        "updated_at": opened_at,
    }
    return OLD_INCIDENTS, values | more


async def database_at(
    url: str, revision: str, *rows: tuple[sa.TableClause, dict[str, Any]]
) -> None:
    """Migrate the empty database at `url` up to `revision` only and insert `rows` there."""
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), revision))
            for table, values in rows:
                await conn.execute(sa.insert(table).values(**values))
    finally:
        await engine.dispose()
