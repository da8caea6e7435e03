"""200 journeys in a row through one pool: memory and processes stay flat after the warm-up
(no context, page or renderer outlives its journey; nothing of ours grows per run)."""

from __future__ import annotations

import asyncio
import os
import statistics
from typing import Any

import pytest

from checks.result import Outcome
from monitor.browser_pool import BrowserPool
from monitor.demo.shop_state import ShopFaults
from monitor.proc_tree import descendants, pss_bytes
from tests.browser_helpers import CHECKOUT_STEPS, journey, pool, spec, test_shop_app

__all__ = ["pool"]  # fixtures

pytestmark = pytest.mark.timeout(600)
JOURNEYS = 200
WARM_UP = 40
SAMPLE_EVERY = 20
# A context or page kept per journey costs Chromium 10 MB or more: 160 of them would be
# gigabytes. This leaves room for the allocator's ups and downs (PSS ranged over 82 MB in
# one 200-journey bench run, warm-up included; medians of three samples are compared).
MAX_GROWTH = 128 * 1024 * 1024


async def test_two_hundred_journeys_leave_memory_flat_after_the_warm_up(
    aiohttp_server: Any, pool: BrowserPool
) -> None:
    server = await aiohttp_server(test_shop_app(ShopFaults()))
    check = spec(str(server.make_url("/")), CHECKOUT_STEPS)
    pss: list[int] = []  # this process (the pool's thread), Playwright's driver and Chromium
    processes: list[int] = []
    done = 0

    async def worker() -> None:
        nonlocal done
        while done < JOURNEYS:
            done += 1
            result = await journey(pool, check)
            assert result.outcome is Outcome.OK, result.evidence.error
            if done >= WARM_UP and done % SAMPLE_EVERY == 0:
                tree = descendants(os.getpid())
                pss.append(pss_bytes(tree))
                processes.append(len(tree))

    await asyncio.gather(worker(), worker())  # max_pages 2: both pages busy throughout

    assert len(pss) >= 8
    early, late = statistics.median(pss[:3]), statistics.median(pss[-3:])
    assert late - early < MAX_GROWTH, [round(value / 2**20) for value in pss]
    # Renderers come and go with their contexts: no more of them at the end than early on.
    assert max(processes[-3:]) <= max(processes[:3]) + 2, processes
