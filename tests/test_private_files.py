"""Files the monitor creates hold client data and stay private to its user (issue 11)."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.store import Store


@pytest.fixture
def open_umask() -> Iterator[None]:
    # With umask 0 anything not created private on purpose would come out world-writable.
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_sqlite_database_and_its_wal_and_shm_files_are_0600(
    tmp_path: Path, open_umask: None
) -> None:
    database = tmp_path / "data" / "monitor.db"
    store = await Store.open(f"sqlite+aiosqlite:///{database}")
    try:
        start = datetime(2026, 12, 1, tzinfo=UTC)
        await store.add_maintenance(
            site="acme/shop",
            starts_at=start,
            ends_at=start + timedelta(hours=1),
            reason="r",
            created_by="b",
            now=start,
        )
        files = [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
        assert all(path.exists() for path in files)
        assert {path.name: _mode(path) for path in files} == {path.name: 0o600 for path in files}
    finally:
        await store.close()


async def test_an_existing_readable_database_is_named_in_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "monitor.db"
    database.touch(mode=0o644)
    database.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="monitor.store.engine"):
        store = await Store.open(f"sqlite+aiosqlite:///{database}")
        await store.close()
    assert f"database file {database} is readable by others (mode 644)" in caplog.text
