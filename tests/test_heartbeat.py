"""Heartbeat (push) checks: the pure judgement (tables of fixed datetimes), pings through the
real /ping routes into SQLite and PostgreSQL, a monitor that opens and resolves incidents as
pings arrive, fail and come late (injected clock), and two monitors sharing one PostgreSQL
database where a ping to either counts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from checks.heartbeat import (
    HeartbeatCheckSpec,
    PingKind,
    PingState,
    apply_ping,
    derived_token,
    judge_heartbeat,
)
from checks.result import Outcome
from incidents.model import Incident
from monitor.app import Running, running_monitor
from monitor.config.models import MonitorConfig, with_cluster_overrides
from monitor.heartbeat_tokens import ping_tokens, ping_urls
from monitor.store import Store
from monitor.web.ping import PingRoutes, parse_action
from tests.helpers import ShiftedClock, eventually, promtool_accepts

T0 = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
SPEC = HeartbeatCheckSpec.model_validate({"period": "1h", "grace": "5m"})
SECRET = "heartbeat-secret-for-tests"
KEY = "acme/shop/backup"
TOKEN = derived_token(SECRET, KEY)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def pings(*events: tuple[float, PingKind] | tuple[float, PingKind, int]) -> PingState | None:
    state: PingState | None = None
    for event in events:
        minute, kind, *code = event
        state = apply_ping(state, kind=kind, at=at(minute), exit_code=code[0] if code else None)
    return state


S, F, START = PingKind.SUCCESS, PingKind.FAIL, PingKind.START

# (pings so far, minutes since T0 when judged, expected outcome); the monitor watches from T0.
JUDGEMENTS = [
    ((), 64, Outcome.OK),  # never pinged, but period + grace has not passed since watching
    ((), 66, Outcome.HEARTBEAT_MISSED),
    (((10, S),), 74, Outcome.OK),  # 64 minutes after the success: within grace
    (((10, S),), 75.5, Outcome.HEARTBEAT_MISSED),
    (((10, S), (70, S)), 130, Outcome.OK),
    (((10, S), (20, F)), 21, Outcome.HEARTBEAT_FAILED),
    (((10, S), (20, F, 3)), 21, Outcome.HEARTBEAT_FAILED),
    (((10, F), (20, S)), 21, Outcome.OK),  # a success after a failure clears it
    (((10, S), (20, START)), 24, Outcome.OK),  # running, within grace
    (((10, S), (20, START)), 25.5, Outcome.HEARTBEAT_MISSED),  # started, never finished
    (((10, S), (20, START), (23, S)), 60, Outcome.OK),
    (((10, S), (20, START), (23, F)), 60, Outcome.HEARTBEAT_FAILED),
]


@pytest.mark.parametrize(("events", "minutes", "outcome"), JUDGEMENTS)
def test_judgement_is_a_function_of_now_and_the_pings(
    events: tuple[Any, ...], minutes: float, outcome: Outcome
) -> None:
    result = judge_heartbeat(SPEC, now=at(minutes), watching_since=T0, state=pings(*events))
    assert result.outcome is outcome
    assert (result.evidence.error is None) is (outcome is Outcome.OK)
    assert TOKEN not in str(result.evidence.to_dict())


def test_evidence_says_what_was_missed_and_the_exit_code() -> None:
    late = judge_heartbeat(SPEC, now=at(80), watching_since=T0, state=pings((10, S)))
    assert late.evidence.error == "last success 1h 10m ago; expected every 1h (grace 5m)"
    failed = judge_heartbeat(SPEC, now=at(21), watching_since=T0, state=pings((20, F, 3)))
    assert failed.evidence.error == "the job reported exit code 3 1m ago"
    never = judge_heartbeat(SPEC, now=at(1), watching_since=None, state=None)
    assert never.outcome is Outcome.HEARTBEAT_MISSED  # a one-off probe: nothing to wait for


def test_the_run_from_start_to_success_is_measured() -> None:
    state = pings((20, START), (21.5, S))
    assert state is not None and state.run_seconds == 90.0 and state.started_at is None
    result = judge_heartbeat(SPEC, now=at(22), watching_since=T0, state=state)
    assert result.evidence.timings["run"] == 90.0
    # A later success without a start keeps the last run's duration.
    assert apply_ping(state, kind=S, at=at(30)).run_seconds == 90.0


@pytest.mark.parametrize(
    ("action", "parsed"),
    [
        ("", (PingKind.SUCCESS, None)),
        ("0", (PingKind.SUCCESS, None)),
        ("start", (PingKind.START, None)),
        ("fail", (PingKind.FAIL, None)),
        ("1", (PingKind.FAIL, 1)),
        ("255", (PingKind.FAIL, 255)),
        ("256", (None, None)),
    ],
)
def test_ping_actions(action: str, parsed: tuple[PingKind | None, int | None]) -> None:
    assert parse_action(action) == parsed


def test_derived_tokens_are_stable_url_safe_and_per_check() -> None:
    assert derived_token(SECRET, KEY) == TOKEN
    assert derived_token(SECRET, "acme/shop/other") != TOKEN
    assert derived_token("another-secret", KEY) != TOKEN
    assert len(TOKEN) == 32 and TOKEN.replace("-", "").replace("_", "").isalnum()


# --- the /ping routes against a real store -----------------------------------------------


@pytest.fixture
def counted() -> list[str]:
    return []


@pytest.fixture
async def ping_server(
    store: Store, counted: list[str]
) -> AsyncIterator[tuple[str, list[str], ShiftedClock]]:
    clock = ShiftedClock(T0)
    arrived: list[str] = []
    routes = PingRoutes(
        tokens={TOKEN: KEY},
        store=store,
        clock=clock,
        on_ping=arrived.append,
        count=counted.append,
        per_minute=5,
    )
    app = web.Application()
    routes.add_routes(app)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")), arrived, clock
    finally:
        await server.close()


async def test_pings_are_stored_with_their_kind_and_run_time(
    ping_server: tuple[str, list[str], ShiftedClock], store: Store
) -> None:
    base, arrived, clock = ping_server
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/ping/{TOKEN}/start") as answer:
            assert answer.status == 200
        clock.advance(timedelta(seconds=90))
        # POST with a body, as `curl -d @log` sends one: the body is never read.
        async with http.post(f"{base}/ping/{TOKEN}", data=b"x" * 10_000) as answer:
            assert answer.status == 200 and await answer.text() == "OK\n"
        state = (await store.ping_states([KEY]))[KEY]
        assert state.success_at is not None and state.run_seconds is not None
        assert 90 <= state.run_seconds < 95
        async with http.get(f"{base}/ping/{TOKEN}/7") as answer:
            assert answer.status == 200
        state = (await store.ping_states([KEY]))[KEY]
        assert state.exit_code == 7 and state.failure_at is not None
        assert state.failure_at > state.success_at
    assert arrived == [KEY, KEY, KEY]


async def test_unknown_tokens_are_404_and_a_flood_is_429(
    ping_server: tuple[str, list[str], ShiftedClock], counted: list[str]
) -> None:
    base, arrived, _ = ping_server
    async with aiohttp.ClientSession() as http:
        for path in (f"/ping/{TOKEN[:-1]}x", f"/ping/{TOKEN}/999", f"/ping/{TOKEN}/stop"):
            async with http.get(base + path) as answer:
                assert answer.status == 404, path
        statuses = []
        for _ in range(7):
            async with http.get(f"{base}/ping/{TOKEN}") as answer:
                statuses.append(answer.status)
    assert statuses == [200] * 5 + [429] * 2
    assert len(arrived) == 5
    # (/stop matches no route at all: the router's own 404, before any handler.)
    assert counted == ["unknown"] * 2 + ["success"] * 5 + ["limited"] * 2


# --- a monitor judging its heartbeats ------------------------------------------------------


def heartbeat_config(database_url: str, tmp_path: Path, **cluster: str) -> MonitorConfig:
    config = MonitorConfig.model_validate(
        {
            "database": {"url": database_url},
            "server": {"port": 0},
            "notifications": {"outbox_dir": str(tmp_path / "outbox")},
            "oncall": {"emails": ["oncall@agency.example"]},
            "heartbeat": {"secret": SECRET},
            "clients": [
                {
                    "id": "acme",
                    "contacts": ["ops@acme.example"],
                    "sites": [
                        {
                            "id": "shop",
                            "name": "Shop",
                            "url": "http://127.0.0.1:9/",
                            "checks": [
                                {
                                    "id": "backup",
                                    "name": "Nightly backup",
                                    "kind": "heartbeat",
                                    "period": "1h",
                                    "grace": "5m",
                                    "interval": "100ms",
                                }
                            ],
                        }
                    ],
                }
            ],
        }
    )
    return with_cluster_overrides(config, **cluster)


def open_incident(running: Running) -> Incident | None:
    incidents = running.monitor.open_incidents()
    return incidents[0] if incidents else None


def last_outcome(running: Running) -> Outcome | None:
    state = running.monitor.check_state(KEY)
    return None if state is None else state.last_outcome


async def ping(http: aiohttp.ClientSession, running: Running, action: str = "") -> None:
    suffix = f"/{action}" if action else ""
    async with http.get(f"{running.url}/ping/{TOKEN}{suffix}") as answer:
        assert answer.status == 200


async def test_a_monitor_opens_and_resolves_as_pings_come_late_fail_and_arrive(
    database_url: str, tmp_path: Path
) -> None:
    clock = ShiftedClock(T0)
    config = heartbeat_config(database_url, tmp_path)
    assert ping_tokens(config) == {TOKEN: KEY}
    async with running_monitor(config, clock=clock) as running, aiohttp.ClientSession() as http:
        await eventually(lambda: last_outcome(running) is Outcome.OK)
        await ping(http, running, "start")
        clock.advance(timedelta(minutes=2))
        await ping(http, running)
        await eventually(lambda: last_outcome(running) is Outcome.OK)

        clock.advance(timedelta(minutes=66))  # the next ping is late
        incident = await eventually(lambda: open_incident(running))
        assert incident.title == "Shop: Nightly backup did not report in time"
        assert incident.severity == 2

        await ping(http, running)  # it arrives after all
        await eventually(lambda: open_incident(running) is None)

        await ping(http, running, "3")  # the job fails with exit code 3
        incident = await eventually(lambda: open_incident(running))
        assert incident.title == "Shop: Nightly backup reported a failure"
        await ping(http, running, "0")
        await eventually(lambda: open_incident(running) is None)
        # "Probe now" through the running monitor judges the same pings, counting nothing.
        assert (await running.monitor.probe_now(KEY)).outcome is Outcome.OK

        async with http.get(f"{running.url}/metrics") as answer:
            metrics = await answer.text()
        run_line = next(
            line for line in metrics.splitlines() if line.startswith("monitor_heartbeat_run")
        )
        assert 120.0 <= float(run_line.split()[-1]) < 125.0  # the start-to-success run
        assert 'monitor_heartbeat_pings_total{result="start"} 1.0' in metrics
        assert 'monitor_heartbeat_pings_total{result="fail"} 1.0' in metrics
    await promtool_accepts(metrics)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_ping_to_either_of_two_processes_counts(database_url: str, tmp_path: Path) -> None:
    clock = ShiftedClock(T0)
    async with AsyncExitStack() as stack:
        owner = await stack.enter_async_context(
            running_monitor(heartbeat_config(database_url, tmp_path, worker_id="a"), clock=clock)
        )
        await eventually(lambda: owner.monitor.ownership.held == {"acme/shop"})
        other = await stack.enter_async_context(
            running_monitor(heartbeat_config(database_url, tmp_path, worker_id="b"), clock=clock)
        )
        http = await stack.enter_async_context(aiohttp.ClientSession())
        assert other.monitor.ownership.held == set()

        clock.advance(timedelta(minutes=66))  # no ping since both started watching
        incident = await eventually(lambda: open_incident(owner))
        assert incident.title == "Shop: Nightly backup did not report in time"

        await ping(http, other)  # to the process that does not hold the site
        await eventually(lambda: open_incident(owner) is None)
        assert last_outcome(owner) is Outcome.OK


def test_heartbeat_urls_use_the_public_url(tmp_path: Path) -> None:
    config = heartbeat_config("sqlite+aiosqlite:///x.db", tmp_path)
    assert [(u.check_key, u.url) for u in ping_urls(config)] == [(KEY, f"/ping/{TOKEN}")]
    public = config.model_copy(
        update={"server": config.server.model_copy(update={"public_url": "https://m.example"})}
    )
    assert ping_urls(public)[0].url == f"https://m.example/ping/{TOKEN}"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_heartbeat_added_by_a_reload_is_watched_from_then(
    database_url: str, tmp_path: Path
) -> None:
    # Not from the monitor's start: the job has not had a period to ping yet, and the client
    # must not be told that it missed one.
    clock = ShiftedClock(T0)
    full = heartbeat_config(database_url, tmp_path)
    site = full.clients[0].sites[0]
    weekly = site.checks[0].model_copy(update={"id": "weekly", "period": timedelta(days=30)})
    before = full.model_copy(
        update={
            "clients": [
                full.clients[0].model_copy(
                    update={"sites": [site.model_copy(update={"checks": [weekly]})]}
                )
            ]
        }
    )
    reloaded: list[MonitorConfig] = []
    async with running_monitor(before, clock=clock, load=lambda: reloaded[0]) as running:
        await eventually(lambda: running.monitor.check_state("acme/shop/weekly") is not None)
        clock.advance(timedelta(hours=3))
        reloaded.append(
            full.model_copy(
                update={
                    "clients": [
                        full.clients[0].model_copy(
                            update={
                                "sites": [
                                    site.model_copy(update={"checks": [weekly, site.checks[0]]})
                                ]
                            }
                        )
                    ]
                }
            )
        )
        result = await running.reloader.reload(trigger="test")
        assert result.ok and result.applied is not None and result.applied.added == [KEY]
        await eventually(lambda: last_outcome(running) is not None)
        assert last_outcome(running) is Outcome.OK
        assert open_incident(running) is None
        clock.advance(timedelta(minutes=66))  # a period and its grace since the reload
        incident = await eventually(lambda: open_incident(running))
        assert incident.title == "Shop: Nightly backup did not report in time"
