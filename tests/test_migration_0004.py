"""Revision 0004 (held checks, paused clocks) upgrades a database at 0003 with rows in place,
on SQLite and PostgreSQL, and the new columns round-trip."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from checks.result import Evidence, Outcome, ProbeResult
from incidents.model import CheckState, TimelineEntry, TimelineKind, Transition
from monitor.store import Store
from tests.migration_helpers import database_at, old_open_incident

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SITE = "acme/shop"
HOME = "acme/shop/home"

CHECK_STATE_0003 = sa.table(
    "check_state",
    sa.column("check_key", sa.Text),
    sa.column("recent", sa.JSON),
    sa.column("successes", sa.Integer),
    sa.column("failing", sa.Boolean),
    sa.column("severity", sa.Integer),
    sa.column("last_outcome", sa.Text),
)


async def test_0004_upgrades_a_database_at_0003_with_rows_in_place(database_url: str) -> None:
    state_0003 = {
        "check_key": HOME,
        "recent": [1, 1],
        "successes": 0,
        "failing": True,
        "severity": 1,
        "last_outcome": "http_5xx",
    }
    await database_at(
        database_url, "0003", old_open_incident(5, opened_at=T0), (CHECK_STATE_0003, state_0003)
    )

    store = await Store.open(database_url)
    try:
        old = await store.load_open_incident(SITE)
        assert old is not None and old.paused_since is None and old.paused_until is None
        state = (await store.load_check_states(keys=[HOME]))[HOME]
        assert state.failing and not state.held

        # The new columns are written and read back.
        paused = replace(old, paused_since=T0, paused_until=T0 + timedelta(hours=2))
        entry = TimelineEntry(at=T0, kind=TimelineKind.MAINTENANCE_STARTED, message="paused")
        saved = await store.save_incident(paused, timeline=(entry,), now=T0)
        again = await store.load_open_incident(SITE)
        assert again is not None and again.version == saved.version
        assert (again.paused_since, again.paused_until) == (T0, T0 + timedelta(hours=2))

        held = CheckState(
            key=HOME,
            last_outcome=Outcome.HTTP_5XX,
            last_result_at=T0,
            since=T0,
            held=True,
        )
        result = ProbeResult(
            outcome=Outcome.HTTP_5XX,
            started_at=T0,
            latency=0.1,
            evidence=Evidence(url="https://shop.acme.example/", status=500),
        )
        await store.record(
            check_key=HOME,
            result=result,
            transition=Transition(state=held, incident=None),
            previous_state=state,
        )
        assert (await store.load_check_states(keys=[HOME]))[HOME] == held
    finally:
        await store.close()
