"""Fixtures shared by the whole suite.

`database_url` runs a test once on SQLite (a file in tmp_path) and once on PostgreSQL when
MONITOR_TEST_POSTGRES_URL is set (CI: postgresql+asyncpg://postgres@127.0.0.1:5432/test).
Test runs share that database, so each PostgreSQL test gets a fresh schema of its own, named
in the URL's libpq-style `options` (see monitor.store.engine), and dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, async_playwright
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from incidents.outgoing import OutgoingEmail
from monitor.delivery import mail
from monitor.demo.shop import ShopFaults, ShopJournal, start_shop
from monitor.store import Store
from tests.client_mail_scan import client_text_faults
from tests.helpers import Target, serve_target, skip_unless_required

POSTGRES_ENV = "MONITOR_TEST_POSTGRES_URL"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/monitor.db"
        return
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        skip_unless_required(f"set {POSTGRES_ENV} to run PostgreSQL tests")
    url = make_url(base)
    schema = f"t_{uuid.uuid4().hex}"
    asyncio.run(_run_sql(url, f'CREATE SCHEMA "{schema}"'))
    try:
        yield url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    finally:
        asyncio.run(_run_sql(url, f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture(autouse=True)
def scan_client_mails(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[OutgoingEmail]]:
    """Every client mail a test's mailers build (SMTP or .eml) keeps the client wording rules
    (tests.client_mail_scan); a new end-to-end test cannot send one unchecked."""
    built: list[OutgoingEmail] = []
    build = mail.build_email

    def recording(message: OutgoingEmail, *args: Any, **kwargs: Any) -> Any:
        mime = build(message, *args, **kwargs)
        built.append(message)  # only what was built: a refused one was never sent
        return mime

    monkeypatch.setattr(mail, "build_email", recording)
    yield built
    if request.node.get_closest_marker("raw_client_text") is None:
        faults = [f"{m.subject!r}: {fault}" for m in built for fault in client_text_faults(m)]
        assert not faults, "client mails break the wording rules:\n" + "\n".join(faults)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """An open store on a fresh database, closed after the test."""
    opened = await Store.open(database_url)
    try:
        yield opened
    finally:
        await opened.close()


async def _run_sql(url: URL, sql: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            # Fail rather than hang if a test left a connection holding locks in the schema.
            await connection.execute(text("SET lock_timeout = '10s'"))
            await connection.execute(text(sql))
    finally:
        await engine.dispose()


@pytest.fixture
def journal() -> ShopJournal:
    """What the demo shop saw; `shop` records into it."""
    return ShopJournal()


@pytest.fixture
async def shop(faults: ShopFaults, journal: ShopJournal) -> AsyncIterator[str]:
    """The demo shop on a free loopback port; each test module defines its `faults`."""
    runner, base_url = await start_shop(faults, journal=journal)
    try:
        yield base_url
    finally:
        await runner.cleanup()


@pytest.fixture
async def target(aiohttp_server: Any) -> AsyncIterator[tuple[Target, str]]:
    """A controllable loopback site (tests.helpers.Target) and its base URL."""
    yield await serve_target(aiohttp_server)


# Debian's Chromium driven by Playwright, for the tests of pages (status pages, console).
CHROMIUM = os.environ.get("MONITOR_TEST_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        skip_unless_required(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            await launched.close()
