"""Applying the alembic migrations in monitor/migrations/ to a database.

The alembic configuration is built in code, pointing at the migrations beside this package,
so upgrades work from an installed wheel in any working directory.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from monitor.store.engine import SQLITE_BEGIN, use_wal

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

# One lock per schema, so processes sharing a database upgrade it one at a time while
# unrelated schemas (e.g. parallel test runs) do not wait on each other.
_PG_LOCK = text(
    "SELECT pg_advisory_xact_lock("
    "hashtext('agency-monitor migrations ' || coalesce(current_schema(), '')))"
)


# Alembic keeps the running migration in a module-global `context`, so two upgrades in one
# process (on different databases) must not interleave at their awaits. One lock per loop,
# since an asyncio.Lock belongs to the loop it first waits on.
_IN_PROCESS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def alembic_config(connection: Connection | None = None) -> Config:
    """An alembic Config for our migrations; `connection` is the one env.py migrates."""
    config = Config()
    # configparser interpolation treats '%' specially.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def upgrade_to_head(engine: AsyncEngine) -> None:
    """Bring the database to the newest revision, in one transaction; SQLite also to WAL.

    Safe when several processes start at once: on PostgreSQL they serialise on an advisory
    lock held until commit; on SQLite on the write lock that BEGIN IMMEDIATE takes, after
    use_wal has waited out the others' switches to WAL.
    """
    in_process = _IN_PROCESS.setdefault(asyncio.get_running_loop(), asyncio.Lock())
    async with in_process, engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            # Before the transaction: SQLite cannot change the journal mode inside one.
            await use_wal(connection)
            await connection.execution_options(**{SQLITE_BEGIN: "BEGIN IMMEDIATE"})
        async with connection.begin():
            if engine.dialect.name == "postgresql":
                await connection.execute(_PG_LOCK)
            await connection.run_sync(_upgrade)


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")
