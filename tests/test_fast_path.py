"""The runtime's fast path for a healthy check that stays healthy (no engine, no site lock)
gives the same stored result as the full path: proven on the pure function against the
engine, then on two monitors fed the same results, one of them kept on the full path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from checks.result import Evidence, Outcome, ProbeResult
from incidents.engine import apply_result, settled_success
from incidents.model import CheckRef, CheckState, Incident, IncidentStatus
from incidents.severity import Severity
from monitor.config.models import ConfiguredCheck, MonitorConfig
from monitor.metrics import Metrics
from monitor.runtime import Monitor
from monitor.store import Store

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
REF = CheckRef(key="acme/shop/home", client="acme", site="acme/shop", site_label="shop")

_times = st.one_of(st.none(), st.sampled_from([T0, T0 + timedelta(minutes=5)]))
_severities = st.one_of(st.none(), st.sampled_from(list(Severity)))


@st.composite
def _states(draw: st.DrawFn) -> CheckState:
    return CheckState(
        key=REF.key,
        recent=tuple(draw(st.lists(_severities, max_size=3))),
        successes=draw(st.integers(min_value=0, max_value=3)),
        failing=draw(st.booleans()),
        severity=draw(_severities),
        last_outcome=draw(st.one_of(st.none(), st.sampled_from(list(Outcome)))),
        last_result_at=draw(_times),
        since=draw(_times),
    )


def _ok(at: datetime, latency: float = 0.05) -> ProbeResult:
    return ProbeResult(
        outcome=Outcome.OK,
        started_at=at,
        latency=latency,
        evidence=Evidence(url="https://shop.example/", status=200),
    )


@settings(max_examples=500)
@given(
    state=_states(),
    failures_to_open=st.integers(min_value=1, max_value=3),
    successes_to_resolve=st.integers(min_value=1, max_value=3),
)
def test_settled_success_is_what_the_engine_returns(
    state: CheckState, failures_to_open: int, successes_to_resolve: int
) -> None:
    check = CheckRef(
        key=REF.key,
        client=REF.client,
        site=REF.site,
        site_label=REF.site_label,
        failures_to_open=failures_to_open,
        successes_to_resolve=successes_to_resolve,
    )
    now = T0 + timedelta(minutes=10)
    result = _ok(now)
    settled = settled_success(now=now, state=state, result=result, incident=None)
    full = apply_result(
        now=now, check=check, result=result, severity=None, state=state, incident=None
    )
    if state.last_outcome is Outcome.OK:
        assert settled is not None
        assert full.state == settled
        assert full.incident is None and not full.incident_changed and full.timeline == ()
    else:
        assert settled is None  # the first result, or a recovery: the engine decides


@given(state=_states())
def test_no_shortcut_for_failures_or_a_site_with_an_incident(state: CheckState) -> None:
    incident = Incident(
        id=1,
        client="acme",
        site="acme/shop",
        title="down",
        severity=Severity.CRITICAL,
        status=IncidentStatus.OPEN,
        opened_at=T0,
    )
    ok = _ok(T0)
    assert settled_success(now=T0, state=state, result=ok, incident=incident) is None
    failed = ProbeResult(
        outcome=Outcome.HTTP_5XX, started_at=T0, latency=0.1, evidence=Evidence(url="u")
    )
    assert settled_success(now=T0, state=state, result=failed, incident=None) is None


# ------------------------------------------------------------------ two monitors, one path each


@dataclass
class StepClock:
    at: datetime = T0

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return (self.at - T0).total_seconds()

    async def sleep(self, seconds: float) -> None:
        raise AssertionError("nothing sleeps: the test drives process() itself")


class FastCounting(Monitor):
    fast = 0

    def _settled(
        self, check: ConfiguredCheck, result: ProbeResult, previous: CheckState
    ) -> CheckState | None:
        settled = super()._settled(check, result, previous)
        self.fast += settled is not None
        return settled


class FullPathOnly(Monitor):
    def _settled(
        self, check: ConfiguredCheck, result: ProbeResult, previous: CheckState
    ) -> CheckState | None:
        return None


def _config(database_url: str) -> MonitorConfig:
    return MonitorConfig.model_validate(
        {
            "database": {"url": database_url},
            "cluster": {"lease": "10m"},
            "defaults": {"failures_to_open": 2, "successes_to_resolve": 2},
            "clients": [
                {
                    "id": "acme",
                    "sites": [
                        {
                            "id": "shop",
                            "url": "https://shop.example",
                            "checks": [{"id": "home", "url": "/"}, {"id": "cart", "url": "/c"}],
                        }
                    ],
                }
            ],
        }
    )


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _monitor(
    kind: type[Monitor], url: str, clock: StepClock, session: aiohttp.ClientSession
) -> tuple[Monitor, Store]:
    store = await Store.open(url)
    monitor = kind(
        config=_config(url),
        store=store,
        clock=clock,
        metrics=Metrics(CollectorRegistry()),
        session=session,
    )
    await monitor.ownership.sync()  # takes the site's lease, as `run` would
    assert monitor.ownership.held == {"acme/shop"}
    return monitor, store


async def _stored(store: Store, keys: list[str]) -> dict[str, Any]:
    incidents = await store.list_incidents(limit=1000)
    return {
        "states": await store.load_check_states(),
        "history": {key: await store.recent_results(key, limit=1000) for key in keys},
        "incidents": incidents,
        "timelines": [await store.timeline(i.id) for i in incidents if i.id is not None],
        "rows": await store.count_rows(),
    }


async def test_both_paths_store_the_same_results(
    tmp_path: Any, session: aiohttp.ClientSession
) -> None:
    clock = StepClock()
    fast, fast_store = await _monitor(
        FastCounting, f"sqlite+aiosqlite:///{tmp_path}/fast.db", clock, session
    )
    full, full_store = await _monitor(
        FullPathOnly, f"sqlite+aiosqlite:///{tmp_path}/full.db", clock, session
    )
    home, cart = fast.checks
    assert (home.check_id, cart.check_id) == ("home", "cart")
    failing = ProbeResult(
        outcome=Outcome.HTTP_5XX,
        started_at=T0,
        latency=0.2,
        evidence=Evidence(url="https://shop.example/", status=500),
    )
    # (home, cart) per step, a minute apart: healthy; home fails (an incident opens) and
    # recovers (it resolves); cart fails once in a maintenance window; healthy again.
    script = ["ok ok"] * 3 + ["500 ok"] * 3 + ["ok ok"] * 4
    script += ["ok ok", "ok 500", "ok ok"]  # steps 10 to 12: in the maintenance window
    script += ["ok ok"] * 3
    window_from, window_until = 10, 13
    try:
        for monitor, store in ((fast, fast_store), (full, full_store)):
            await store.add_maintenance(
                site="acme/shop",
                starts_at=T0 + timedelta(minutes=window_from),
                ends_at=T0 + timedelta(minutes=window_until),
                reason="upgrade",
                created_by="test",
                now=T0,
            )
            await monitor.desk.refresh_maintenance()
        for step, line in enumerate(script):
            clock.at = T0 + timedelta(minutes=step, seconds=1)
            for monitor in (fast, full):
                await monitor.ownership.sync()  # renews the lease, as `run` would
            for check, word in zip((home, cart), line.split(), strict=True):
                result = _ok(clock.at) if word == "ok" else _with_time(failing, clock.at)
                for monitor in (fast, full):
                    by_key = {c.key: c for c in monitor.checks}
                    await monitor.process(by_key[check.key], result)
                assert fast.check_state(check.key) == full.check_state(check.key), step
        keys = [home.key, cart.key]
        assert await _stored(fast_store, keys) == await _stored(full_store, keys)
        assert len((await _stored(fast_store, keys))["incidents"]) == 1
        assert isinstance(fast, FastCounting) and fast.fast >= 10  # the shortcut was taken
    finally:
        await fast_store.close()
        await full_store.close()


def _with_time(result: ProbeResult, at: datetime) -> ProbeResult:
    return ProbeResult(
        outcome=result.outcome, started_at=at, latency=result.latency, evidence=result.evidence
    )
