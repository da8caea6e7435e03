"""monitor.connectivity with a real loopback canary and a real store: failures share one
canary round, a lost canary is not probed per failure, a slow canary still counts as up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from checks.lean_http import LeanTransport
from checks.result import Evidence, Outcome, ProbeResult
from incidents.connectivity import Connectivity
from incidents.outgoing import NoticeKind
from monitor.clients import message_context
from monitor.clock import SystemClock
from monitor.config import load_config_text
from monitor.config.models import ConfiguredCheck, configured_checks
from monitor.connectivity import ConnectivityGuard
from monitor.metrics import Metrics
from monitor.store import Store
from tests.helpers import Target


def guard_for(canary_url: str, store: Store, transport: LeanTransport) -> ConnectivityGuard:
    config = load_config_text(
        f"""
canaries:
  - {{name: uplink, url: "{canary_url}/", interval: 1h, timeout: 1s, slow_after: 100ms}}
oncall: {{emails: [oncall@agency.example]}}
clients:
  - id: acme
    sites:
      - id: shop
        url: http://127.0.0.1:1
        checks: [{{id: home}}]
""",
        environ={},
    )
    return ConnectivityGuard(
        config=config,
        checks=configured_checks(config),
        store=store,
        clock=SystemClock(),
        metrics=Metrics(CollectorRegistry()),
        transport=transport,
        messages=message_context(config),
        on_outbox=lambda: None,
    )


@pytest.fixture
async def canary(aiohttp_server: Any) -> AsyncIterator[tuple[Target, TestServer]]:
    target = Target()
    server: TestServer = await aiohttp_server(target.app())
    yield target, server


@pytest.fixture
async def transport() -> AsyncIterator[LeanTransport]:
    lean = LeanTransport()
    yield lean
    await lean.close()


async def test_failures_at_once_share_one_canary_round(
    canary: tuple[Target, TestServer], store: Store, transport: LeanTransport
) -> None:
    target, server = canary
    guard = guard_for(str(server.make_url("")).rstrip("/"), store, transport)
    since = time.monotonic()
    answers = await asyncio.gather(*(guard.counts_failure(since=since) for _ in range(200)))
    assert answers == [True] * 200
    assert target.hits["/"] == 1
    # A failure of a probe that started before that round passed needs no new round...
    assert await guard.counts_failure(since=since)
    assert target.hits["/"] == 1
    # ...one that started after it does.
    assert await guard.counts_failure(since=time.monotonic())
    assert target.hits["/"] == 2


async def test_a_lost_canary_is_not_probed_again_for_every_failure(
    canary: tuple[Target, TestServer], store: Store, transport: LeanTransport
) -> None:
    target, server = canary
    guard = guard_for(str(server.make_url("")).rstrip("/"), store, transport)
    target.set("/", status=503)
    assert not await guard.counts_failure(since=time.monotonic())
    assert guard.canaries is not None and guard.canaries.state is Connectivity.LOST
    probed = target.hits["/"]
    answers = await asyncio.gather(
        *(guard.counts_failure(since=time.monotonic()) for _ in range(50))
    )
    assert answers == [False] * 50
    assert target.hits["/"] == probed
    assert guard.health()["connectivity"] == "lost"
    # Stopping lets the page being queued land before the store closes.
    stopping = asyncio.Event()
    stopping.set()
    await guard.run(stopping=stopping)
    [page] = await store.latest_notices([NoticeKind.CONNECTIVITY_LOST])
    assert page.incident_id is None


async def test_a_slow_canary_still_counts_as_connected(
    canary: tuple[Target, TestServer], store: Store, transport: LeanTransport
) -> None:
    target, server = canary
    guard = guard_for(str(server.make_url("")).rstrip("/"), store, transport)
    target.set("/", delay=0.3)  # slow_after is 100ms: the outcome is `slow`
    assert await guard.counts_failure(since=time.monotonic())
    assert guard.canaries is not None and guard.canaries.state is Connectivity.UP


def guard_without_canaries(
    *, sites: int, probed: int, store: Store, transport: LeanTransport
) -> tuple[ConnectivityGuard, list[ConfiguredCheck]]:
    site_yaml = "".join(
        f"\n      - {{id: s{i}, url: 'http://127.0.0.1:1', checks: [{{id: home}}]}}"
        for i in range(sites)
    )
    # No on-call addresses: the detection alone, no notice to queue.
    config = load_config_text(
        f"oncall: {{emails: []}}\nclients:\n  - id: acme\n    sites:{site_yaml}\n", environ={}
    )
    checks = configured_checks(config)
    guard = ConnectivityGuard(
        config=config,
        checks=checks,
        store=store,
        clock=SystemClock(),
        metrics=Metrics(CollectorRegistry()),
        transport=transport,
        messages=message_context(config),
        on_outbox=lambda: None,
        sites_probed=lambda: probed,
    )
    return guard, checks


@pytest.mark.parametrize(("probed", "held"), [(10, True), (11, False)])
async def test_half_means_half_of_the_sites_this_process_probes(
    probed: int, held: bool, store: Store, transport: LeanTransport
) -> None:
    # 12 sites configured; in a cluster this process probes only `probed` of them.
    guard, checks = guard_without_canaries(
        sites=12, probed=probed, store=store, transport=transport
    )
    failure = ProbeResult(
        outcome=Outcome.CONNECTION_ERROR,
        started_at=datetime.now(UTC),
        latency=None,
        evidence=Evidence(url="http://127.0.0.1:1/"),
    )
    for check in checks[:5]:
        guard.observe(check, failure)
    assert (guard.held_until() is not None) is held
