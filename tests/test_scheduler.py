"""The scheduler on a real event loop: spreading, intervals, no overlap, caps, lag."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest

from monitor.loop_lag import LoopLagMonitor
from monitor.scheduler import Scheduler, phase_offset
from tests.helpers import eventually


@dataclass(frozen=True)
class Item:
    key: str
    host: str = "a.example"
    interval_seconds: float = 0.2


def test_phase_offsets_are_stable_and_spread_over_the_interval() -> None:
    offsets = [phase_offset(f"client/site/check{i}", 60.0) for i in range(1000)]
    assert offsets == [phase_offset(f"client/site/check{i}", 60.0) for i in range(1000)]
    assert all(0 <= offset < 60 for offset in offsets)
    # Spread: every 6-second tenth of the interval holds roughly a tenth of the checks.
    tenths = [sum(1 for o in offsets if k * 6 <= o < (k + 1) * 6) for k in range(10)]
    assert min(tenths) > 60 and max(tenths) < 140, tenths


async def _run_for(scheduler: Scheduler[Item], seconds: float) -> None:
    task = asyncio.create_task(scheduler.run())
    await asyncio.sleep(seconds)  # the scheduler under test needs wall time to pass
    scheduler.stop()
    await asyncio.wait_for(task, 5)


async def test_each_check_runs_every_interval_without_drift() -> None:
    runs: dict[str, list[float]] = {"a": [], "b": []}

    async def run(item: Item, due: float) -> None:
        runs[item.key].append(due)

    scheduler = Scheduler(
        [Item("a"), Item("b")], run=run, monotonic=time.monotonic, max_concurrency=10, per_host=10
    )
    await _run_for(scheduler, 1.1)
    for dues in runs.values():
        assert 4 <= len(dues) <= 6
        gaps = [later - earlier for earlier, later in zip(dues, dues[1:], strict=False)]
        assert all(gap == pytest.approx(0.2, abs=1e-9) for gap in gaps)  # booked from due time


async def test_a_check_never_overlaps_itself_and_skips_are_reported() -> None:
    running = 0
    most = 0
    skipped: list[str] = []

    async def run(item: Item, due: float) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.5)  # a slow probe, longer than the 0.1 s interval
        running -= 1

    scheduler = Scheduler(
        [Item("slow", interval_seconds=0.1)],
        run=run,
        monotonic=time.monotonic,
        max_concurrency=10,
        per_host=10,
        on_skip=lambda item: skipped.append(item.key),
    )
    await _run_for(scheduler, 0.8)
    assert most == 1
    assert len(skipped) >= 3


async def test_per_host_and_global_caps_hold() -> None:
    in_flight: dict[str, int] = {}
    most: dict[str, int] = {}
    total_most = 0

    async def run(item: Item, due: float) -> None:
        nonlocal total_most
        in_flight[item.host] = in_flight.get(item.host, 0) + 1
        most[item.host] = max(most.get(item.host, 0), in_flight[item.host])
        total_most = max(total_most, sum(in_flight.values()))
        await asyncio.sleep(0.05)
        in_flight[item.host] -= 1

    items = [Item(f"x{i}", host="x", interval_seconds=0.1) for i in range(20)]
    items += [Item(f"y{i}", host="y", interval_seconds=0.1) for i in range(20)]
    scheduler = Scheduler(items, run=run, monotonic=time.monotonic, max_concurrency=5, per_host=3)
    await _run_for(scheduler, 0.5)
    assert most["x"] == 3 and most["y"] == 3
    assert total_most == 5


async def test_lag_is_reported_when_the_caps_hold_probes_back() -> None:
    lags: list[float] = []

    async def run(item: Item, due: float) -> None:
        await asyncio.sleep(0.1)

    items = [Item(f"c{i}", interval_seconds=3600.0) for i in range(4)]
    scheduler = Scheduler(
        items, run=run, monotonic=time.monotonic, max_concurrency=1, per_host=1, on_lag=lags.append
    )
    task = asyncio.create_task(scheduler.run())
    for item in items:  # all four due now, whatever their phase in the hour
        scheduler.run_soon(item.key)
    await eventually(lambda: len(lags) == 4, timeout=5)
    scheduler.stop()
    await task
    # Four probes of 0.1 s through a cap of one: the last waited for the three before it.
    assert max(lags) >= 0.2


async def test_run_soon_adds_an_extra_run_without_changing_the_schedule() -> None:
    dues: list[float] = []

    async def run(item: Item, due: float) -> None:
        dues.append(due)

    scheduler = Scheduler(
        [Item("a", interval_seconds=3600.0)],
        run=run,
        monotonic=time.monotonic,
        max_concurrency=1,
        per_host=1,
    )
    task = asyncio.create_task(scheduler.run())
    scheduler.run_soon("a")
    await eventually(lambda: len(dues) == 1)
    scheduler.stop()
    await task
    assert len(dues) == 1


async def test_loop_lag_monitor_sees_a_stall_during_a_span() -> None:
    lag = LoopLagMonitor(monotonic=time.monotonic, period=0.01)
    task = asyncio.create_task(lag.run())
    await lag.next_sample()
    start = time.monotonic()
    time.sleep(0.2)  # a deliberate stall of the event loop: what we are measuring
    end = time.monotonic()
    await lag.next_sample()
    assert lag.max_lag_between(start, end) >= 0.15
    quiet_start = time.monotonic()
    await lag.next_sample()
    await lag.next_sample()
    assert lag.max_lag_between(quiet_start, time.monotonic()) < 0.1
    lag.stop()
    await task
