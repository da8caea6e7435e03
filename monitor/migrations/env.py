"""Alembic environment for the monitor's database.

At runtime `monitor.store` runs the upgrade and hands over its connection, already inside
a transaction (config.attributes["connection"]). For developers, the alembic CLI works too:

    alembic -c monitor/migrations/alembic.ini -x url=sqlite+aiosqlite:///dev.db \
        revision --autogenerate -m "add outbox"
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from monitor.store.engine import create_engine
from monitor.store.tables import metadata


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_from_cli(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_on)
            await connection.commit()
    finally:
        await engine.dispose()


def main() -> None:
    if context.is_offline_mode():
        raise RuntimeError("offline (--sql) migrations are not supported; pass -x url=...")
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise RuntimeError("pass the database with -x url=sqlite+aiosqlite:///path/to.db")
    asyncio.run(run_from_cli(url))


main()
