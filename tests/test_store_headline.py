"""The incident's headline and first-failure time on SQLite and PostgreSQL: written, read
back, and added by migration 0005 to a database at 0003 without touching its incidents."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import sqlalchemy as sa

from checks.result import Outcome
from incidents.model import CheckState, Headline, TimelineKind, Transition
from monitor.store import Store
from tests.helpers import head_revision
from tests.migration_helpers import database_at, old_open_incident
from tests.test_store import HOME, SITE, T0, entry, failing_state, new_incident, probe

BEFORE = T0 - timedelta(minutes=3)  # the first failure, before the incident opened
HEADLINE = Headline(
    site_label="Trail Outfitters",
    check="acme/shop/checkout",
    part="Checkout",
    availability=False,
    outcome=Outcome.SLOW,
    status=200,
    step="pay",
    latency=7.25,
    slow_after=5.0,
)


async def test_the_headline_and_first_failure_are_stored_and_read_back(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        incident = new_incident(at=T0)
        written = await store.record(
            check_key=HOME,
            result=probe(Outcome.SLOW, T0),
            transition=Transition(
                state=failing_state(HOME, T0),
                incident=replace(incident, headline=HEADLINE, failing_since=BEFORE),
                incident_changed=True,
                timeline=(entry(TimelineKind.OPENED, T0),),
            ),
            previous_state=CheckState(key=HOME),
        )
        assert written is not None
        loaded = await store.load_open_incident(SITE)
        assert loaded is not None
        assert loaded.headline == HEADLINE
        assert loaded.failing_since == BEFORE
        assert loaded == written
    finally:
        await store.close()


async def test_0005_adds_the_columns_and_keeps_older_incidents_without_a_headline(
    database_url: str,
) -> None:
    await database_at(database_url, "0003", old_open_incident(7, opened_at=T0))

    store = await Store.open(database_url)  # migrates to the head
    try:
        old = await store.load_open_incident(SITE)
        assert old is not None and old.id == 7
        assert (old.title, old.headline, old.failing_since) == ("shop is down", None, None)
        async with store.engine.connect() as conn:
            version = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).all()
            columns = await conn.run_sync(
                lambda sync: {c["name"] for c in sa.inspect(sync).get_columns("incidents")}
            )
        assert version == [(head_revision(),)]
        assert {"headline", "failing_since"} <= columns
    finally:
        await store.close()
