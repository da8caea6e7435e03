"""The store on SQLite and PostgreSQL: migrations, round trips, restarts, constraints, bounds."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from checks.result import Evidence, Outcome, ProbeResult
from incidents.model import (
    CheckState,
    Incident,
    IncidentStatus,
    TimelineEntry,
    TimelineKind,
    Transition,
)
from incidents.severity import Severity
from monitor.store import (
    DuplicateOpenIncident,
    HistoryRow,
    Store,
    StoreError,
    StoreUnavailable,
)
from monitor.store.codec import EVIDENCE_MAX_CHARS
from monitor.store.tables import metadata
from tests.helpers import eventually, head_revision

REPO_ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2024, 6, 3, 10, 0, tzinfo=UTC)
HOME = "acme/shop/home"
CHECKOUT = "acme/shop/checkout"
SITE = "acme/shop"


def probe(
    outcome: Outcome, at: datetime, *, status: int | None = 500, latency: float | None = 0.25
) -> ProbeResult:
    error = None if outcome is Outcome.OK else outcome.value
    evidence = Evidence(
        url="https://shop.acme.example/",
        status=status,
        error=error,
        body_excerpt="<h1>Internal Server Error</h1>",
        headers={"content-type": "text/html"},
        timings={"total": latency or 0.0},
    )
    return ProbeResult(outcome=outcome, started_at=at, latency=latency, evidence=evidence)


def failing_state(key: str, at: datetime) -> CheckState:
    return CheckState(
        key=key,
        recent=(Severity.CRITICAL, Severity.CRITICAL, Severity.CRITICAL),
        successes=0,
        failing=True,
        severity=Severity.CRITICAL,
        last_outcome=Outcome.HTTP_5XX,
        last_result_at=at,
        since=at - timedelta(minutes=2),
    )


def new_incident(*, at: datetime, site: str = SITE) -> Incident:
    return Incident(
        id=None,
        client="acme",
        site=site,
        title="shop.acme.example is down",
        severity=Severity.MAJOR,
        status=IncidentStatus.OPEN,
        opened_at=at,
        failing_checks=frozenset({HOME}),
        checks=frozenset({HOME}),
    )


def entry(
    kind: TimelineKind, at: datetime, *, check: str | None = HOME, **extra: Any
) -> TimelineEntry:
    return TimelineEntry(
        at=at, kind=kind, message=f"{check or SITE}: {kind.value}", check=check, **extra
    )


async def open_incident(store: Store, *, at: datetime = T0, site: str = SITE) -> Incident:
    key = f"{site}/home"
    incident = await store.record(
        check_key=key,
        result=probe(Outcome.HTTP_5XX, at),
        transition=Transition(
            state=failing_state(key, at),
            incident=new_incident(at=at, site=site),
            incident_changed=True,
            timeline=(entry(TimelineKind.OPENED, at, check=key),),
        ),
        previous_state=CheckState(key=key),
    )
    assert incident is not None
    return incident


@contextmanager
def statements(store: Store) -> Iterator[list[str]]:
    """The SQL the store sends while the block runs."""
    seen: list[str] = []

    def capture(_conn: Connection, _cursor: Any, sql: str, *_rest: Any) -> None:
        seen.append(sql)

    sa.event.listen(store.engine.sync_engine, "before_cursor_execute", capture)
    try:
        yield seen
    finally:
        sa.event.remove(store.engine.sync_engine, "before_cursor_execute", capture)


async def test_migrations_create_the_schema_and_reopening_changes_nothing(
    database_url: str,
) -> None:
    store = await Store.open(database_url)
    try:
        assert await store.count_rows() == {
            "incidents": 0,
            "timeline": 0,
            "check_state": 0,
            "check_history": 0,
            "outbox": 0,
            "maintenance_windows": 0,
            "workers": 0,
            "site_leases": 0,
            "confirmations": 0,
            "daily_rollups": 0,
            "incident_spans": 0,
            "heartbeat_pings": 0,
        }
        await open_incident(store)
    finally:
        await store.close()

    store = await Store.open(database_url)
    try:
        async with store.engine.connect() as conn:
            diffs = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
            version = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).all()
        assert diffs == []
        assert version == [(head_revision(),)]
        assert (await store.count_rows())["incidents"] == 1
    finally:
        await store.close()


OPEN_ON_GO = """
import asyncio, sys
from monitor.store import Store

async def main() -> None:
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    store = await Store.open(sys.argv[1])
    await store.close()

asyncio.run(main())
"""


async def test_several_processes_opening_at_once_migrate_once(database_url: str) -> None:
    # Real processes, released together once each has imported everything, so that their
    # migrations overlap; only the database's own locking can keep them apart.
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            OPEN_ON_GO,
            database_url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=REPO_ROOT,  # `python -c` imports from the working directory
        )
        for _ in range(4)
    ]
    for child in children:
        assert child.stdout is not None
        assert await child.stdout.readline() == b"ready\n"
    outputs = await asyncio.gather(*(child.communicate(b"go\n") for child in children))
    assert [
        (child.returncode, err.decode()) for child, (_, err) in zip(children, outputs, strict=True)
    ] == [(0, "")] * 4

    store = await Store.open(database_url)
    try:
        await open_incident(store)
        assert len(await store.list_incidents()) == 1
    finally:
        await store.close()


async def test_opening_a_new_sqlite_file_waits_while_another_connection_writes_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # What a process switching the same new file to WAL does. SQLite fails the switch at once
    # instead of waiting on the busy timeout, so the store has to wait for it itself.
    path = tmp_path / "monitor.db"
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        caplog.set_level(logging.DEBUG, logger="monitor.store.engine")
        opening = asyncio.create_task(Store.open(f"sqlite+aiosqlite:///{path}"))
        await eventually(lambda: "retrying the switch to WAL" in caplog.text or opening.done())
        other.execute("COMMIT")
    finally:
        other.close()

    store = await opening
    try:
        await open_incident(store)
        async with store.engine.connect() as connection:
            mode = await connection.exec_driver_sql("PRAGMA journal_mode")
            assert mode.scalar() == "wal"
    finally:
        await store.close()


async def test_an_incident_round_trips_from_open_to_resolved(store: Store) -> None:
    # 1. A first failure: state changes, no incident yet.
    first = CheckState(
        key=HOME,
        recent=(Severity.CRITICAL,),
        last_outcome=Outcome.HTTP_5XX,
        last_result_at=T0,
        since=T0,
    )
    nothing = await store.record(
        check_key=HOME,
        result=probe(Outcome.HTTP_5XX, T0),
        transition=Transition(state=first, incident=None),
        previous_state=CheckState(key=HOME),
    )
    assert nothing is None

    # 2. Confirmed: the incident opens and gets its id from the database.
    t1 = T0 + timedelta(minutes=2)
    evidence = probe(Outcome.HTTP_5XX, t1).evidence.to_dict()
    berlin = timezone(timedelta(hours=2))
    opened_entry = entry(
        TimelineKind.OPENED,
        t1.astimezone(berlin),  # any aware time in; UTC out
        outcome=Outcome.HTTP_5XX,
        severity=Severity.MAJOR,
        evidence=evidence,
    )
    draft = new_incident(at=t1)
    opened = await store.record(
        check_key=HOME,
        result=probe(Outcome.HTTP_5XX, t1),
        transition=Transition(
            state=failing_state(HOME, t1),
            incident=draft,
            incident_changed=True,
            timeline=(opened_entry,),
        ),
        previous_state=first,
    )
    assert opened is not None and isinstance(opened.id, int)
    assert opened == dataclasses.replace(draft, id=opened.id)

    # 3. A second check fails: severity rises, the incident is updated.
    t2 = t1 + timedelta(minutes=5)
    escalated = dataclasses.replace(
        opened,
        severity=Severity.CRITICAL,
        failing_checks=frozenset({HOME, CHECKOUT}),
        checks=frozenset({HOME, CHECKOUT}),
    )
    failed_entry = entry(TimelineKind.CHECK_FAILED, t2, check=CHECKOUT, outcome=Outcome.TIMEOUT)
    escalated_entry = entry(TimelineKind.ESCALATED, t2, check=CHECKOUT, severity=Severity.CRITICAL)
    stored_escalated = await store.record(
        check_key=CHECKOUT,
        result=probe(Outcome.TIMEOUT, t2, status=None, latency=None),
        transition=Transition(
            state=failing_state(CHECKOUT, t2),
            incident=escalated,
            incident_changed=True,
            timeline=(failed_entry, escalated_entry),
        ),
        previous_state=CheckState(key=CHECKOUT),
    )
    assert stored_escalated == escalated
    assert stored_escalated is not None and stored_escalated.version == opened.version + 1

    # 4. Both recover: resolved.
    t3 = t2 + timedelta(minutes=30)
    resolved = dataclasses.replace(
        stored_escalated, status=IncidentStatus.RESOLVED, resolved_at=t3, failing_checks=frozenset()
    )
    closing = (
        entry(TimelineKind.CHECK_RECOVERED, t3),
        entry(TimelineKind.RESOLVED, t3, check=None),
    )
    recovered = CheckState(key=HOME, recent=(None,), successes=2, last_outcome=Outcome.OK)
    await store.record(
        check_key=HOME,
        result=probe(Outcome.OK, t3, status=200),
        transition=Transition(
            state=recovered, incident=resolved, incident_changed=True, timeline=closing
        ),
        previous_state=failing_state(HOME, t1),
    )

    assert await store.get_incident(opened.id) == resolved
    assert await store.get_incident(opened.id + 1000) is None
    assert await store.list_incidents() == [resolved]
    assert await store.list_incidents(open_only=True) == []
    assert await store.load_open_incidents() == {}

    stored = await store.timeline(opened.id)
    assert stored == [opened_entry, failed_entry, escalated_entry, *closing]
    assert all(e.at.tzinfo is UTC for e in stored)
    assert stored[0].evidence == evidence
    assert type(stored[0].kind) is TimelineKind
    assert type(stored[0].outcome) is Outcome
    assert type(stored[0].severity) is Severity

    reread = await store.get_incident(opened.id)
    assert reread is not None
    assert reread.opened_at.tzinfo is UTC and reread.resolved_at is not None
    assert reread.resolved_at.tzinfo is UTC
    assert type(reread.severity) is Severity and type(reread.status) is IncidentStatus

    assert await store.load_check_states() == {
        HOME: recovered,
        CHECKOUT: failing_state(CHECKOUT, t2),
    }
    assert await store.recent_results(CHECKOUT) == [
        HistoryRow(at=t2, outcome=Outcome.TIMEOUT, latency=None, status=None, error="timeout")
    ]
    history = await store.recent_results(HOME)
    assert [row.at for row in history] == [t3, t1, T0]  # newest first
    assert history[0] == HistoryRow(at=t3, outcome=Outcome.OK, latency=0.25, status=200, error=None)
    assert all(row.at.tzinfo is UTC for row in history)


async def test_state_and_open_incidents_survive_a_restart(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        incident = await open_incident(store)
        other = await open_incident(store, site="globex/www")
    finally:
        await store.close()

    store = await Store.open(database_url)
    try:
        assert await store.load_check_states() == {
            f"{SITE}/home": failing_state(f"{SITE}/home", T0),
            "globex/www/home": failing_state("globex/www/home", T0),
        }
        assert await store.load_open_incidents() == {SITE: incident, "globex/www": other}
    finally:
        await store.close()


async def test_the_database_refuses_a_second_open_incident_for_a_site(store: Store) -> None:
    first = await open_incident(store)
    before = await store.count_rows()

    with pytest.raises(DuplicateOpenIncident) as raised:
        await open_incident(store, at=T0 + timedelta(minutes=1))
    assert raised.value.site == SITE
    assert isinstance(raised.value, StoreError)
    assert await store.count_rows() == before  # the whole record was rolled back

    # Once resolved, the site may open a new incident: the index only covers open ones.
    resolved = dataclasses.replace(first, status=IncidentStatus.RESOLVED, resolved_at=T0)
    state = failing_state(f"{SITE}/home", T0)
    await store.record(
        check_key=state.key,
        result=probe(Outcome.OK, T0, status=200),
        transition=Transition(state=state, incident=resolved, incident_changed=True),
        previous_state=state,
    )
    second = await open_incident(store, at=T0 + timedelta(hours=1))
    assert second.id != first.id
    assert await store.load_open_incidents() == {SITE: second}


async def test_history_stays_bounded(database_url: str) -> None:
    store = await Store.open(database_url, history_per_check=50, history_trim_every=10)
    try:
        state = CheckState(key=HOME, last_outcome=Outcome.OK)
        times = [T0 + timedelta(seconds=30 * i) for i in range(500)]
        for at in times:
            await store.record(
                check_key=HOME,
                result=probe(Outcome.OK, at, status=200),
                transition=Transition(state=state, incident=None),
                previous_state=state,
            )
        await store.record(
            check_key=CHECKOUT,
            result=probe(Outcome.OK, T0, status=200),
            transition=Transition(state=CheckState(key=CHECKOUT), incident=None),
            previous_state=CheckState(key=CHECKOUT),
        )
        # Results that change nothing else are buffered and written in one batch; the batch
        # trims HOME after its inserts, so exactly the newest 50 remain (bound: 59).
        assert store.history_bound == 59
        assert (await store.count_rows())["check_history"] == 50 + 1
        recent = await store.recent_results(HOME, limit=50)
        assert [row.at for row in recent] == times[::-1][:50]
        assert len(await store.recent_results(CHECKOUT)) == 1
    finally:
        await store.close()

    # A restart trims on the first insert, whatever the last process left behind.
    store = await Store.open(database_url, history_per_check=50, history_trim_every=10)
    try:
        await store.record(
            check_key=HOME,
            result=probe(Outcome.OK, times[-1] + timedelta(seconds=30), status=200),
            transition=Transition(state=state, incident=None),
            previous_state=state,
        )
        assert len(await store.recent_results(HOME, limit=1000)) == 50
    finally:
        await store.close()


async def test_trimming_every_insert_keeps_exactly_the_limit(database_url: str) -> None:
    store = await Store.open(database_url, history_per_check=5, history_trim_every=1)
    try:
        state = CheckState(key=HOME)
        for i in range(20):
            await store.record(
                check_key=HOME,
                result=probe(Outcome.SLOW, T0 + timedelta(seconds=i), status=200),
                transition=Transition(state=state, incident=None),
                previous_state=state,
            )
            assert (await store.count_rows())["check_history"] == min(i + 1, 5)
    finally:
        await store.close()


async def test_an_unchanged_state_is_not_written(store: Store) -> None:
    state = CheckState(key=HOME, recent=(None,), successes=1, last_outcome=Outcome.OK)
    changed = dataclasses.replace(state, successes=2, last_result_at=T0)

    with statements(store) as unchanged_sql:
        await store.record(
            check_key=HOME,
            result=probe(Outcome.OK, T0, status=200),
            transition=Transition(state=state, incident=None),
            previous_state=state,
        )
    with statements(store) as changed_sql:
        await store.record(
            check_key=HOME,
            result=probe(Outcome.OK, T0, status=200),
            transition=Transition(state=changed, incident=None),
            previous_state=state,
        )

    assert [sql for sql in unchanged_sql if "check_state" in sql] == []
    assert len([sql for sql in changed_sql if "check_state" in sql]) == 1
    assert await store.load_check_states() == {HOME: changed}


async def test_a_check_first_seen_healthy_writes_no_state_row_until_something_counts(
    store: Store,
) -> None:
    """At 50,000 checks a row per first healthy result would be 50,000 transactions at
    start; a missing row already reads as a check with nothing against it."""
    first = CheckState(key=HOME, last_outcome=Outcome.OK, last_result_at=T0, since=T0)
    with statements(store) as first_sql:
        await store.record(
            check_key=HOME,
            result=probe(Outcome.OK, T0, status=200),
            transition=Transition(state=first, incident=None),
            previous_state=CheckState(key=HOME),
        )
    assert [sql for sql in first_sql if "check_state" in sql] == []
    assert await store.load_check_states() == {}

    # A failure counts against it: that is written, and so is the recovery after it.
    failed = CheckState(
        key=HOME, recent=(Severity.CRITICAL,), last_outcome=Outcome.HTTP_5XX, since=T0
    )
    await store.record(
        check_key=HOME,
        result=probe(Outcome.HTTP_5XX, T0),
        transition=Transition(state=failed, incident=None),
        previous_state=first,
    )
    assert await store.load_check_states() == {HOME: failed}
    await store.record(
        check_key=HOME,
        result=probe(Outcome.OK, T0, status=200),
        transition=Transition(state=first, incident=None),
        previous_state=failed,
    )
    assert await store.load_check_states() == {HOME: first}


async def test_oversized_evidence_is_cut_to_a_bound(store: Store) -> None:
    huge = {
        "url": "https://shop.acme.example/",
        "status": 500,
        "body_excerpt": "x" * 100_000,
        "headers": {f"x-header-{i}": "v" * 500 for i in range(1000)},
    }
    incident = await store.record(
        check_key=HOME,
        result=probe(Outcome.HTTP_5XX, T0),
        transition=Transition(
            state=failing_state(HOME, T0),
            incident=new_incident(at=T0),
            incident_changed=True,
            timeline=(entry(TimelineKind.OPENED, T0, evidence=huge),),
        ),
        previous_state=CheckState(key=HOME),
    )
    assert incident is not None and incident.id is not None
    [stored] = await store.timeline(incident.id)
    assert stored.evidence is not None
    assert len(json.dumps(stored.evidence)) <= EVIDENCE_MAX_CHARS
    assert stored.evidence["truncated"] is True
    assert stored.evidence["url"] == huge["url"] and stored.evidence["status"] == 500


async def test_naive_datetimes_are_refused(store: Store) -> None:
    naive = datetime(2024, 6, 3, 10, 0)
    state = CheckState(key=HOME)
    with pytest.raises(StoreError, match="naive datetime"):
        await store.record(
            check_key=HOME,
            result=probe(Outcome.OK, naive, status=200),
            transition=Transition(state=state, incident=None),
            previous_state=state,
        )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://db/monitor", "unsupported database 'mysql'"),
        ("sqlite+pysqlite:///x.db", r"use sqlite\+aiosqlite"),
        ("postgresql+asyncpg://u@127.0.0.1/db?options=search_path", "options must be"),
    ],
)
async def test_unusable_urls_say_how_to_fix_them(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        await Store.open(url)


async def test_a_sqlite_file_gets_its_directory_on_first_run(tmp_path: Path) -> None:
    path = tmp_path / "var" / "lib" / "monitor.db"
    store = await Store.open(f"sqlite:///{path}")  # the sync driver name is accepted too
    try:
        await open_incident(store)
    finally:
        await store.close()
    assert path.is_file()


async def test_an_unreachable_database_is_reported_as_unavailable() -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    with pytest.raises(StoreUnavailable, match="127.0.0.1:1"):
        await Store.open("postgresql://monitor:secret@127.0.0.1:1/monitor")
