"""Browser checks when things break on our side: Chromium killed mid-journey (retried, or
discarded as our own fault), and the monitor SIGKILLed (no Chromium may outlive it)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from checks.result import FailureCause, Outcome, ProbeResult
from monitor.browser_pool import BrowserPool, own_folder, sweep_stale_folders
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
        pid_text, folder_text = line.decode().split()
        chromium_pid, folder = int(pid_text), Path(folder_text)
        # Chromium's profile and temporary files are in the pool's own folder.
        await eventually(lambda: any(folder.glob("playwright_chromiumdev_profile-*")), timeout=10)
        await eventually(lambda: len(descendants(chromium_pid)) >= 3, timeout=30)
        family = descendants(victim.pid)
        assert chromium_pid in family
        victim.kill()  # SIGKILL: no handler, no cleanup of ours runs
        await victim.wait()
        started = time.monotonic()
        await eventually(lambda: not any(alive(pid) for pid in family), timeout=5)
        assert time.monotonic() - started < 5
        # Only files stay behind, in the pool's folder (Chromium's profile too, when the
        # driver dies before it can remove it): the next pool to start removes the folder
        # (its owner is gone), while a live monitor's folder stays.
        assert (folder / "owner").exists()
        mine = own_folder(folder.parent)
        try:
            assert not folder.exists()
            assert mine.exists()
            assert sweep_stale_folders(folder.parent) == []  # ours: its owner runs
            assert mine.exists()
        finally:
            shutil.rmtree(mine)
    finally:
        if victim.returncode is None:
            victim.kill()
            await victim.wait()


def _niceness_of_threads(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            stat = task.read_text()
        except OSError:
            continue  # a thread that ended meanwhile
        found.append(int(stat[stat.rindex(")") + 2 :].split()[16]))
    return found


def _cap_sys_nice_in(pid: int, field: str) -> bool:
    """Is CAP_SYS_NICE (23) in `field` (CapPrm, CapBnd, CapAmb...) of `pid`?"""
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith(field + ":"))
    return bool(int(line.split()[1], 16) & (1 << 23))


async def test_the_browser_side_runs_below_the_monitor_and_cannot_climb_back(
    aiohttp_server: Any, pool: BrowserPool
) -> None:
    # Chromium raises its UI threads to nice -8 when allowed (as root it is): it would then
    # go before the monitor's own loop, whose timings the http checks' verdicts rest on.
    server = await aiohttp_server(test_shop_app(ShopFaults()))
    result = await journey(pool, spec(str(server.make_url("/")), CHECKOUT_STEPS))
    assert result.outcome is Outcome.OK, result.evidence.error
    below = min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)
    chromium = pool.pid
    assert chromium is not None
    family = [pid for pid in descendants(os.getpid()) if pid != os.getpid()]
    assert chromium in family and len(family) >= 4  # the driver, Chromium and its helpers
    checked = 0
    for pid in family:
        niceness = _niceness_of_threads(pid)
        if niceness:  # else a helper that ended meanwhile
            assert min(niceness) >= below, (pid, niceness)
            checked += 1
    assert checked >= 4
    # Root (CI runs as root) holds CAP_SYS_NICE; Chromium must hold it in no set, nor be
    # able to get it back through exec (the bounding set).
    assert _cap_sys_nice_in(os.getpid(), "CapPrm") == (os.geteuid() == 0)
    for pid in descendants(chromium):
        for field in ("CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert not _cap_sys_nice_in(pid, field), (pid, field)


async def test_closing_the_pool_ends_a_running_journey_and_its_chromium(
    aiohttp_server: Any, pool: BrowserPool
) -> None:
    hits, _, running = await _journey_to_the_slow_hero(aiohttp_server, pool)
    await eventually(lambda: len(hits) >= 1, timeout=30)
    chromium = pool.pid
    assert chromium is not None
    family = descendants(chromium)
    await asyncio.wait_for(pool.close(), 30)
    # Its caller is not left waiting on a loop that stopped.
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(running, 5)
    await eventually(lambda: not any(alive(pid) for pid in family), timeout=10)
