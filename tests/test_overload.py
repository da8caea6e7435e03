"""A monitor that cannot keep up says so (a metric, a log line, /healthz) and sheds probes,
and never records a healthy site as slow because of its own stalls."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from monitor.app import running_monitor
from monitor.config.models import MonitorConfig
from tests.helpers import Target, eventually

CHECKS = ("home", "cart", "search", "login")


@pytest.fixture
async def shop(aiohttp_server: Any) -> AsyncIterator[str]:
    target = Target()
    for check in CHECKS:
        target.set(f"/{check}", delay=0.02)  # healthy: far under slow_after
    server: TestServer = await aiohttp_server(target.app())
    yield str(server.make_url("")).rstrip("/")


def _config(url: str, tmp_path: Any) -> MonitorConfig:
    return MonitorConfig.model_validate(
        {
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path}/m.db"},
            "server": {"host": "127.0.0.1", "port": 0},
            "defaults": {
                "interval": "200ms",
                "timeout": "2s",
                "slow_after": "150ms",
                "failures_to_open": 1,  # one wrong verdict would open an incident
            },
            "clients": [
                {
                    "id": "acme",
                    "sites": [
                        {
                            "id": "shop",
                            "url": url,
                            "checks": [{"id": c, "url": f"/{c}"} for c in CHECKS],
                        }
                    ],
                }
            ],
        }
    )


async def test_a_monitor_that_cannot_keep_up_says_so_and_never_calls_a_healthy_site_slow(
    shop: str, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="monitor.runtime")
    config = _config(shop, tmp_path)
    async with running_monitor(config) as running, aiohttp.ClientSession() as http:
        registry = running.registry
        await eventually(lambda: all(running.monitor.check_state(f"acme/shop/{c}") for c in CHECKS))
        assert registry.get_sample_value("monitor_scheduler_overloaded") is not None

        # The monitor's own work blocks its event loop, again and again, longer than the
        # checks' interval (what too many checks for one process look like).
        for _ in range(3):
            time.sleep(0.7)
            await asyncio.sleep(0.05)

        assert registry.get_sample_value("monitor_scheduler_overloaded") == 1
        shed = registry.get_sample_value("monitor_probes_skipped_total", {"reason": "overload"})
        assert shed is not None and shed > 0
        async with http.get(f"{running.url}/healthz") as response:
            assert response.status == 503
            health = await response.json()
        assert health["status"] == "degraded" and health["overloaded"] is True
        assert any(reason.startswith("overloaded: probes shed") for reason in health["reasons"])
        warnings = [r for r in caplog.records if "monitor overloaded" in r.getMessage()]
        assert len(warnings) == 1  # one line for the whole episode, not one per probe

        # Probing goes on, on schedule, and nothing was recorded but ok.
        counted = running.monitor.check_state("acme/shop/home")
        assert counted is not None and counted.last_result_at is not None
        before = counted.last_result_at
        await eventually(
            lambda: (
                (state := running.monitor.check_state("acme/shop/home")) is not None
                and state.last_result_at is not None
                and state.last_result_at > before
            )
        )
        for check in CHECKS:
            labels = {"client": "acme", "site": "shop", "check": check}
            for outcome in ("slow", "timeout"):
                counted_bad = registry.get_sample_value(
                    "monitor_probe_results_total", {**labels, "outcome": outcome}
                )
                assert not counted_bad, (check, outcome)
            history = await running.store.recent_results(f"acme/shop/{check}", limit=1000)
            assert history and {str(row.outcome) for row in history} == {"ok"}
        assert await running.store.list_incidents() == []
