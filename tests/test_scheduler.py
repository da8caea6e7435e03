"""The scheduler on a real event loop: spreading, intervals, no overlap, caps, lag."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from monitor.loop_lag import LoopLagMonitor
from monitor.scheduler import Scheduler, next_at_phase, phase_offset
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


def test_next_at_phase_is_the_first_phase_aligned_time_not_before_now() -> None:
    table = [
        # (now, phase, interval, expected)
        (100.0, 5.0, 30.0, 125.0),
        (125.0, 5.0, 30.0, 125.0),  # due exactly now
        (125.5, 5.0, 30.0, 155.0),
        (0.0, 29.0, 30.0, 29.0),
        (-1.0, 0.0, 10.0, 0.0),
    ]
    for now, phase, interval, expected in table:
        assert next_at_phase(now, phase=phase, interval=interval) == expected


def _clock_just_after_phase(key: str, interval: float) -> Callable[[], float]:
    """A monotonic clock at which `key` has just run: its next phase is a whole interval away."""
    base = time.monotonic()
    shift = phase_offset(key, interval) + 0.5 - base
    return lambda: time.monotonic() + shift


async def test_only_active_items_are_dispatched() -> None:
    runs: list[str] = []

    async def run(item: Item, due: float) -> None:
        runs.append(item.key)

    items = [Item("a", interval_seconds=0.05), Item("b", interval_seconds=0.05), Item("c")]
    scheduler = Scheduler(items, run=run, monotonic=time.monotonic, max_concurrency=10, per_host=10)
    assert scheduler.active_count == 3  # all, by default
    scheduler.set_active({"a", "unknown"})
    assert scheduler.active_count == 1
    task = asyncio.create_task(scheduler.run())
    await eventually(lambda: runs.count("a") >= 3)
    assert set(runs) == {"a"}

    scheduler.set_active(["b"])
    assert scheduler.active_count == 1
    await eventually(lambda: runs.count("b") >= 3)
    a_runs = runs.count("a")
    await eventually(lambda: runs.count("b") >= 6)
    assert runs.count("a") == a_runs  # switched off: not dispatched again
    assert "c" not in runs

    scheduler.set_active(None)
    assert scheduler.active_count == 3
    await eventually(lambda: runs.count("a") > a_runs)
    scheduler.stop()
    await asyncio.wait_for(task, 5)


async def test_a_newly_active_item_runs_within_soon_or_at_its_phase() -> None:
    ran: dict[str, float] = {}

    async def run(item: Item, due: float) -> None:
        ran[item.key] = due

    interval = 3600.0
    monotonic = _clock_just_after_phase("taken-over", interval)
    items = [Item("taken-over", interval_seconds=interval)]
    scheduler = Scheduler(items, run=run, monotonic=monotonic, max_concurrency=10, per_host=10)
    scheduler.set_active(())
    task = asyncio.create_task(scheduler.run())
    asked = monotonic()
    scheduler.set_active(["taken-over"], soon=0.1)
    await eventually(lambda: "taken-over" in ran, timeout=5)
    assert ran["taken-over"] == pytest.approx(asked + 0.1, abs=0.05)

    # Without `soon`, the next phase-aligned due time, which is far away for "taken-over".
    scheduler.set_active(())
    scheduler.set_active(["taken-over"])
    first = ran["taken-over"]
    await asyncio.sleep(0.3)  # wall time for a wrongly booked run to show up
    assert ran["taken-over"] == first
    scheduler.stop()
    await asyncio.wait_for(task, 5)


async def test_soon_given_before_the_scheduler_starts_is_kept() -> None:
    ran: list[str] = []

    async def run(item: Item, due: float) -> None:
        ran.append(item.key)

    monotonic = _clock_just_after_phase("x", 3600.0)
    scheduler = Scheduler(
        [Item("x", interval_seconds=3600.0)],
        run=run,
        monotonic=monotonic,
        max_concurrency=1,
        per_host=1,
    )
    scheduler.set_active(["x"])  # already active: nothing changes
    scheduler.set_active(())
    scheduler.set_active(["x"], soon=0.05)
    task = asyncio.create_task(scheduler.run())
    await eventually(lambda: ran == ["x"], timeout=5)
    scheduler.stop()
    await asyncio.wait_for(task, 5)


async def test_a_run_in_flight_when_made_inactive_finishes() -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    finished: list[str] = []
    runs = 0

    async def run(item: Item, due: float) -> None:
        nonlocal runs
        runs += 1
        started.set()
        await release.wait()
        finished.append(item.key)

    scheduler = Scheduler(
        [Item("a", interval_seconds=0.05)],
        run=run,
        monotonic=time.monotonic,
        max_concurrency=1,
        per_host=1,
    )
    task = asyncio.create_task(scheduler.run())
    await asyncio.wait_for(started.wait(), 5)
    scheduler.set_active(())
    assert scheduler.in_flight == 1 and scheduler.active_count == 0
    release.set()
    await eventually(lambda: finished == ["a"])
    await eventually(lambda: scheduler.in_flight == 0)
    await asyncio.sleep(0.2)  # four intervals: a run wrongly dispatched would show up
    assert runs == 1
    scheduler.stop()
    await asyncio.wait_for(task, 5)


async def test_switching_fifty_thousand_items_is_cheap_and_keeps_the_heap_bounded() -> None:
    async def run(item: Item, due: float) -> None:
        pass

    items = [Item(f"c/s/{i}", interval_seconds=60.0) for i in range(50_000)]
    scheduler = Scheduler(items, run=run, monotonic=time.monotonic, max_concurrency=1, per_host=1)
    scheduler.set_active(())
    task = asyncio.create_task(scheduler.run())
    await asyncio.sleep(0)
    evens = [item.key for item in items[::2]]
    odds = [item.key for item in items[1::2]]
    spent = time.process_time()
    for _ in range(5):
        scheduler.set_active(evens, soon=30.0)
        assert scheduler.active_count == 25_000
        scheduler.set_active(odds)
    spent = time.process_time() - spent
    assert scheduler.active_count == 25_000
    # Stale entries are dropped lazily, but never pile up past a few times the active ones.
    assert scheduler.booked <= 3 * 25_000 + 1024
    assert spent < 5.0  # ten switches of 50,000 items: well under a second on a slow machine
    scheduler.stop()
    await asyncio.wait_for(task, 5)


async def test_a_stalled_loop_sheds_late_runs_and_reports_the_overload() -> None:
    shed: list[tuple[str, float]] = []
    states: list[tuple[bool, str]] = []
    runs: list[str] = []

    async def run(item: Item, due: float) -> None:
        runs.append(item.key)

    items = [Item(f"c{i}", interval_seconds=0.2) for i in range(10)]
    scheduler = Scheduler(
        items,
        run=run,
        monotonic=time.monotonic,
        max_concurrency=100,
        per_host=100,
        on_shed=lambda item, late: shed.append((item.key, late)),
        on_overload=lambda overloaded, reason: states.append((overloaded, reason)),
        late_limit=0.05,
        overload_lag=0.02,
        overload_window=0.3,
    )
    task = asyncio.create_task(scheduler.run())
    await eventually(lambda: len(runs) >= 10)
    assert not scheduler.overloaded and scheduler.overload_reason == ""
    time.sleep(0.5)  # the event loop stalls (what an overloaded monitor does to itself)
    await eventually(lambda: shed)
    assert all(late > 0.05 for _, late in shed)
    assert scheduler.overloaded
    assert "shed" in scheduler.overload_reason
    assert states[0][0] is True and "late" in states[0][1]
    # Once the loop is free again the overload ends within the window, and runs go on.
    await eventually(lambda: states[-1] == (False, ""), timeout=5)
    assert not scheduler.overloaded
    count = len(runs)
    await eventually(lambda: len(runs) > count + 10)
    scheduler.stop()
    await asyncio.wait_for(task, 5)


@pytest.mark.parametrize("same_host", [False, True], ids=["other hosts", "same host"])
async def test_runs_waiting_too_long_for_a_slot_are_shed(same_host: bool) -> None:
    # On the same host they wait for the host's slot too, but every slot being taken makes
    # the wait the monitor's own: they are shed all the same.
    shed: list[str] = []
    runs: list[str] = []
    release = asyncio.Event()

    async def run(item: Item, due: float) -> None:
        runs.append(item.key)
        if item.key == "hog":
            await release.wait()

    # Regular runs a billion seconds apart: only the run_soon ones happen during the test.
    items = [Item("hog", host="h1", interval_seconds=1e9)]
    items += [
        Item(f"w{i}", host="h1" if same_host else f"h{i + 2}", interval_seconds=1e9)
        for i in range(3)
    ]
    scheduler = Scheduler(
        items,
        run=run,
        monotonic=time.monotonic,
        max_concurrency=1,
        per_host=1,
        on_shed=lambda item, late: shed.append(item.key),
        late_limit=0.1,
        overload_lag=0.05,
    )
    task = asyncio.create_task(scheduler.run())
    scheduler.run_soon("hog")
    await eventually(lambda: runs == ["hog"])
    for i in range(3):
        scheduler.run_soon(f"w{i}")
    await eventually(lambda: scheduler.waiting == 3)
    await asyncio.sleep(0.2)  # they wait past late_limit for the one slot
    release.set()
    await eventually(lambda: len(shed) == 3)
    assert runs == ["hog"]
    assert scheduler.overloaded and "max_concurrency" in scheduler.overload_reason
    assert scheduler.waiting == 0 and scheduler.in_flight == 0
    scheduler.stop()
    await asyncio.wait_for(task, 5)


async def test_runs_held_back_by_their_own_host_wait_their_turn_without_overload() -> None:
    runs: list[str] = []
    shed: list[str] = []

    async def run(item: Item, due: float) -> None:
        runs.append(item.key)
        await asyncio.sleep(0.15)  # a slow site

    items = [Item(f"s{i}", host="slow.example", interval_seconds=1e9) for i in range(3)]
    scheduler = Scheduler(
        items,
        run=run,
        monotonic=time.monotonic,
        max_concurrency=10,
        per_host=1,
        on_shed=lambda item, late: shed.append(item.key),
        late_limit=0.1,
    )
    task = asyncio.create_task(scheduler.run())
    for item in items:
        scheduler.run_soon(item.key)
    await eventually(lambda: len(runs) == 3, timeout=5)
    assert shed == []
    assert not scheduler.overloaded
    scheduler.stop()
    await asyncio.wait_for(task, 5)


async def test_a_short_intervals_run_a_moment_late_is_shed_without_an_overload() -> None:
    shed: list[float] = []
    runs: list[str] = []

    async def run(item: Item, due: float) -> None:
        runs.append(item.key)

    scheduler = Scheduler(
        [Item("quick", interval_seconds=0.1)],
        run=run,
        monotonic=time.monotonic,
        max_concurrency=1,
        per_host=1,
        on_shed=lambda item, late: shed.append(late),
    )
    task = asyncio.create_task(scheduler.run())
    await eventually(lambda: runs)
    time.sleep(0.2)  # a hiccup of the event loop: two intervals, far under overload_lag
    await eventually(lambda: shed)
    assert all(late > 0.05 for late in shed)  # more than half its interval late: shed
    assert not scheduler.overloaded
    count = len(runs)
    await eventually(lambda: len(runs) > count)
    scheduler.stop()
    await asyncio.wait_for(task, 5)
