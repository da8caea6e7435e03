"""Browser checks when things break on our side: Chromium killed mid-journey (retried, or
discarded as our own fault), and the monitor SIGKILLed (no Chromium may outlive it)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from checks.result import FailureCause, Outcome, ProbeResult
from monitor.browser_pool import BrowserPool
from monitor.demo.shop_state import ShopFaults
from monitor.proc_tree import alive, descendants
from tests.browser_helpers import (
    CHECKOUT_STEPS,
    HERO_HITS,
    chromium_or_skip,
    journey,
    pool,
    spec,
    test_shop_app,
)
from tests.helpers import eventually

__all__ = ["pool"]  # fixtures

pytestmark = pytest.mark.timeout(300)
ROOT = Path(__file__).resolve().parent.parent


async def _kill_chromium_mid_step(pool: BrowserPool, hits: list[float], *, nth: int) -> int:
    """Kill Chromium once the journey's page waits for the shop's slow script (its nth)."""
    await eventually(lambda: len(hits) >= nth, timeout=30)
    pid = pool.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    return pid


async def _journey_to_the_slow_hero(
    aiohttp_server: Any, pool: BrowserPool
) -> tuple[list[float], str, asyncio.Task[ProbeResult]]:
    """A journey started (as a task) to the shop's page whose script takes 1.5 s: the hits
    of that script, the shop's base URL and the task."""
    app = test_shop_app(ShopFaults(), hero_delay=1.5)
    server = await aiohttp_server(app)
    base = str(server.make_url("/"))
    check = spec(base, [{"name": "home", "goto": "/hero"}], step_timeout="10s")
    return app[HERO_HITS], base, asyncio.create_task(journey(pool, check))


async def test_chromium_killed_mid_journey_is_restarted_and_the_journey_retried(
    aiohttp_server: Any, pool: BrowserPool
) -> None:
    hits, base, running = await _journey_to_the_slow_hero(aiohttp_server, pool)
    killed = await _kill_chromium_mid_step(pool, hits, nth=1)
    result = await running
    # Retried in a new Chromium: the site was fine, so the journey passes.
    assert result.outcome is Outcome.OK, result.evidence.error
    assert pool.restarts == 1
    assert pool.pid is not None and pool.pid != killed
    # And the next run works as ever.
    again = await journey(pool, spec(base, CHECKOUT_STEPS))
    assert again.outcome is Outcome.OK, again.evidence.error


async def test_chromium_killed_in_both_tries_is_our_fault_not_the_sites(
    aiohttp_server: Any, pool: BrowserPool
) -> None:
    hits, base, running = await _journey_to_the_slow_hero(aiohttp_server, pool)
    await _kill_chromium_mid_step(pool, hits, nth=1)
    await _kill_chromium_mid_step(pool, hits, nth=2)
    result = await running
    # The monitor discards a local_resource failure instead of counting it (no incident).
    assert result.outcome.is_failure
    assert result.cause is FailureCause.LOCAL_RESOURCE
    ok = await journey(pool, spec(base, CHECKOUT_STEPS))
    assert ok.outcome is Outcome.OK, ok.evidence.error


async def test_a_chromium_that_stops_answering_is_restarted(aiohttp_server: Any) -> None:
    pool = BrowserPool(executable=chromium_or_skip(), max_pages=1, ping_timeout=2.0)
    try:
        server = await aiohttp_server(test_shop_app(ShopFaults()))
        check = spec(str(server.make_url("/")), CHECKOUT_STEPS)
        first = await journey(pool, check)
        assert first.outcome is Outcome.OK, first.evidence.error
        stuck = pool.pid
        assert stuck is not None
        os.kill(stuck, signal.SIGSTOP)  # alive, but answers nothing
        try:
            result = await journey(pool, check)
        finally:
            if alive(stuck):
                os.kill(stuck, signal.SIGCONT)
        assert result.outcome is Outcome.OK, result.evidence.error
        assert pool.restarts == 1 and pool.pid != stuck
        await eventually(lambda: not alive(stuck), timeout=10)  # the hung one was killed
    finally:
        await pool.close()


async def test_no_chromium_outlives_a_sigkilled_monitor(aiohttp_server: Any) -> None:
    chromium = chromium_or_skip()
    server = await aiohttp_server(test_shop_app(ShopFaults()))
    victim = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.browser_victim",
        chromium,
        str(server.make_url("/")),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert victim.stdout is not None
        line = await asyncio.wait_for(victim.stdout.readline(), timeout=60)
        chromium_pid = int(line)
        await eventually(lambda: len(descendants(chromium_pid)) >= 3, timeout=30)
        family = descendants(victim.pid)
        assert chromium_pid in family
        victim.kill()  # SIGKILL: no handler, no cleanup of ours runs
        await victim.wait()
        started = time.monotonic()
        await eventually(lambda: not any(alive(pid) for pid in family), timeout=5)
        assert time.monotonic() - started < 5
    finally:
        if victim.returncode is None:
            victim.kill()
            await victim.wait()


# 200 journeys with memory flat after warm-up: measured by bench/browser_journeys.py
# (--soak), which takes minutes on a shared 2-core machine.
