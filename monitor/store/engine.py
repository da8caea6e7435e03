"""Turning a database URL into a configured async engine.

Accepted URLs (the sync driver names are upgraded to their async drivers):

    sqlite+aiosqlite:///relative/monitor.db      sqlite:////var/lib/monitor/monitor.db
    postgresql+asyncpg://user:pass@host:5432/db  postgresql://user@host/db

PostgreSQL session settings go in the libpq-style `options` query parameter, the same text
psql accepts, e.g. a schema other than `public`:

    postgresql+asyncpg://monitor@db/monitor?options=-csearch_path%3Dmonitor

Each `-c name=value` becomes an asyncpg server setting (asyncpg has no `options` argument).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from monitor.store.errors import StoreError

log = logging.getLogger(__name__)

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
_EXAMPLES = "sqlite+aiosqlite:///monitor.db or postgresql+asyncpg://user@host/db"

# Execution option naming the statement that opens a transaction on SQLite.
SQLITE_BEGIN = "monitor_sqlite_begin"

# How long SQLite waits for another connection's write lock before "database is locked".
# Generous, unlike sqlite3's 5 s default: a monitor should rather wait out another process's
# migration than fail to start or to record. A `timeout` in the URL still wins.
SQLITE_BUSY_TIMEOUT = 30.0

# Backoff while another connection holds the lock use_wal needs (SQLite will not wait for it).
_WAL_RETRY_FIRST = 0.005
_WAL_RETRY_MAX = 0.25


def create_engine(url: str) -> AsyncEngine:
    """An engine for `url`; creates a SQLite file's parent directory if needed."""
    parsed = _parse(url)
    if parsed.get_backend_name() == "sqlite":
        _create_private_file(parsed)
        sqlite_args: dict[str, Any] = (
            {} if "timeout" in parsed.query else {"timeout": SQLITE_BUSY_TIMEOUT}
        )
        engine = create_async_engine(parsed, connect_args=sqlite_args)
        _install_sqlite_hooks(engine)
        return engine
    parsed, server_settings = _split_pg_options(parsed)
    connect_args: dict[str, Any] = {"server_settings": server_settings} if server_settings else {}
    try:
        # pre_ping: a long-running monitor outlives server restarts and idle-connection reapers.
        return create_async_engine(parsed, connect_args=connect_args, pool_pre_ping=True)
    except ModuleNotFoundError as exc:  # asyncpg is the `postgres` extra
        raise StoreError(
            f"database URL {describe(url)}: PostgreSQL needs asyncpg: "
            "pip install 'agency-monitor[postgres]'"
        ) from exc


async def use_wal(connection: AsyncConnection) -> None:
    """Switch the SQLite database behind `connection` to WAL; call outside a transaction.

    WAL lets readers (the HTTP API) and the writer (the scheduler) not block each other. The
    mode is stored in the file, so this changes a database once and is a lock-free no-op on
    every later open.

    Switching writes the file header under the write lock, and SQLite takes that lock by
    upgrading a read lock: an upgrade never waits on the busy timeout (waiting could deadlock),
    so while another connection writes a not-yet-WAL file (e.g. another process switching the
    same new file) the PRAGMA fails at once with "database is locked". Those failures are
    retried here, with backoff, for as long as SQLite's own busy timeout would wait.
    """
    raw = await connection.get_raw_connection()
    # The driver's own connection: through SQLAlchemy the PRAGMA would run inside its BEGIN,
    # and SQLite refuses to change the journal mode within a transaction.
    driver = raw.driver_connection
    assert driver is not None, "use_wal needs a live connection"
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT
    delay = _WAL_RETRY_FIRST
    while True:
        try:
            cursor = await driver.execute("PRAGMA journal_mode = WAL")
            await cursor.close()
            return
        except sqlite3.OperationalError as exc:
            # Extended codes (e.g. SQLITE_BUSY_RECOVERY) keep the primary code in the low byte.
            busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() + delay > deadline:
                raise
        if delay == _WAL_RETRY_FIRST:
            log.debug("another connection is writing the database; retrying the switch to WAL")
        await asyncio.sleep(delay)
        delay = min(delay * 2, _WAL_RETRY_MAX)


def describe(url: str) -> str:
    """The URL without its password, for logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"database URL {url!r} is not a URL; use {_EXAMPLES}") from exc
    backend = parsed.get_backend_name()
    if backend not in _ASYNC_DRIVERS:
        raise StoreError(
            f"database URL {describe(url)}: unsupported database {backend!r}; use {_EXAMPLES}"
        )
    if parsed.drivername == backend:
        parsed = parsed.set(drivername=_ASYNC_DRIVERS[backend])
    if parsed.drivername != _ASYNC_DRIVERS[backend]:
        raise StoreError(
            f"database URL {describe(url)}: driver {parsed.drivername!r} is not supported; "
            f"use {_ASYNC_DRIVERS[backend]}"
        )
    return parsed


def _create_private_file(url: URL) -> None:
    """Create the SQLite file (and its directory) readable by its owner only.

    The database holds incidents, client contacts and probe evidence. SQLite would create the
    file 0644 (less the umask), and gives its -wal and -shm files the database file's mode, so
    creating the file 0600 first keeps all three private.
    """
    database = url.database or ""
    # ":memory:" and "file:" URIs name no file we should create.
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning(
                "database file %s is readable by others (mode %o); chmod 600 it", path, mode
            )


def _split_pg_options(url: URL) -> tuple[URL, dict[str, str]]:
    raw = url.query.get("options")
    if raw is None:
        return url, {}
    text = raw if isinstance(raw, str) else " ".join(raw)
    settings: dict[str, str] = {}
    tokens = shlex.split(text)
    while tokens:
        token = tokens.pop(0)
        if token == "-c" and tokens:
            token = "-c" + tokens.pop(0)
        if token.startswith("-c"):
            pair = token[2:]
        elif token.startswith("--"):
            pair = token[2:]
        else:
            pair = ""
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise StoreError(
                f"database URL {url.render_as_string(hide_password=True)}: "
                f"options must be '-c name=value' settings, e.g. "
                f"options=-csearch_path%3Dmonitor (got {text!r})"
            )
        settings[name] = value
    return url.difference_update_query(["options"]), settings


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    # Python's sqlite3 (before 3.16) skips BEGIN for DDL and SELECT, so migrations would not
    # be atomic; SQLAlchemy's documented recipe hands BEGIN to us instead.
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        # Not the journal mode: it is stored in the file, and switching it can fail on a lock
        # that this synchronous hook could only wait for by blocking the loop (see use_wal).
        cursor.close()

    def on_begin(connection: Connection) -> None:
        # Writers ask for BEGIN IMMEDIATE: they queue on the busy timeout for the write lock
        # up front, rather than failing when a read transaction tries to upgrade.
        connection.exec_driver_sql(connection.get_execution_options().get(SQLITE_BEGIN, "BEGIN"))

    event.listen(engine.sync_engine, "connect", on_connect)
    event.listen(engine.sync_engine, "begin", on_begin)
