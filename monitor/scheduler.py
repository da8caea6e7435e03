"""Runs every check on its interval, spread out, capped, never overlapping itself.

One dispatcher task keeps a heap of due times instead of one sleeping task per check, so tens
of thousands of checks cost one timer. Each check runs at a stable phase of its interval (a
hash of its key) on the monotonic clock, so a thousand checks with the same interval do not
fire at once, and a restart, or another process taking a check over, keeps the same phase.

Cheap per run, since one process dispatches hundreds of runs a second: heap entries are plain
tuples, the caps are counters (a run waits in a queue, not in a task, until a slot frees), and
the dispatcher sleeps on one timer, woken early only when an earlier run is booked.

When the process falls behind (the dispatcher wakes late because the event loop is busy, or
runs wait for a free slot under `max_concurrency`), it sheds runs that would start more than
`late_limit` (at most half their interval) after their due time (`on_shed`) instead of
running them late in a burst: the next regular run is booked as usual. Once a run starts, or
would have, more than `overload_lag` late, it says it is overloaded (`overloaded`,
`on_overload`) until `overload_window` passes without that. Runs held back by `per_host`
alone (one slow site, while slots are free) are not the process's doing: they wait their
turn.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import sys
import zlib
from array import array
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)


class Schedulable(Protocol):
    @property
    def key(self) -> str: ...

    @property
    def host(self) -> str: ...

    @property
    def interval_seconds(self) -> float: ...


T = TypeVar("T", bound=Schedulable)

# The generation of a heap entry booked by run_soon: an extra run, which books no next one.
_EXTRA = -1
# The dispatcher sleeps at most this long, so an overload that ended is noticed while idle.
_MAX_SLEEP = 1.0
# Event loop timers have millisecond resolution (uvloop truncates a delay to whole ms, and its
# clock is read once per loop iteration): a run due within this much is dispatched now, and
# the dispatcher sleeps whole milliseconds, instead of waking again and again for nothing.
_TICK = 0.001


def phase_offset(key: str, interval: float) -> float:
    """A stable offset in [0, interval) for a check: the same key lands on the same phase."""
    return (zlib.crc32(key.encode()) % 1_000_000) / 1_000_000 * interval


def next_at_phase(now: float, *, phase: float, interval: float) -> float:
    """The earliest time >= now that is `phase` plus a whole number of intervals."""
    return phase + math.ceil((now - phase) / interval) * interval


class Scheduler(Generic[T]):
    """Calls `run(item, due_at)` for each active item every `interval_seconds`.

    `monotonic` comes from the injected clock. `on_lag` receives how late each run started
    (after waiting for the caps); `on_skip` is told when an item's previous run is still in
    flight (or waiting for a slot) at its next due time (that tick is skipped, not queued);
    `on_shed` when a run is dropped because the process is too far behind (with how late it
    was); `on_overload` when the overload state changes (with a reason, "" when it ends).
    """

    def __init__(
        self,
        items: Sequence[T],
        *,
        run: Callable[[T, float], Awaitable[None]],
        monotonic: Callable[[], float],
        max_concurrency: int,
        per_host: int,
        on_lag: Callable[[float], None] = lambda lag: None,
        on_skip: Callable[[T], None] = lambda item: None,
        on_in_flight: Callable[[int], None] = lambda n: None,
        on_shed: Callable[[T, float], None] = lambda item, late: None,
        on_overload: Callable[[bool, str], None] = lambda overloaded, reason: None,
        late_limit: float = 2.0,
        overload_lag: float = 0.5,
        overload_window: float = 10.0,
    ) -> None:
        self._items = list(items)
        self._index_of = {item.key: index for index, item in enumerate(self._items)}
        self._run = run
        self._monotonic = monotonic
        self._max_concurrency = max_concurrency
        self._per_host = per_host
        self._on_lag = on_lag
        self._on_skip = on_skip
        self._on_in_flight = on_in_flight
        self._on_shed = on_shed
        self._on_overload = on_overload
        self._overload_lag = overload_lag
        self._overload_window = overload_window
        # Per item, read on every dispatch: computed once, compactly (50,000 items).
        self._interval = array("d", (item.interval_seconds for item in self._items))
        self._phase = array(
            "d", (phase_offset(item.key, item.interval_seconds) for item in self._items)
        )
        self._host = [sys.intern(item.host) for item in self._items]  # a few hosts, shared
        # A run this late is shed; at most half an interval, so it never meets the next one.
        self._late_limit_base = late_limit
        self._late_limit = array(
            "d", (min(late_limit, interval / 2) for interval in self._interval)
        )
        # Places of items taken out by `update` (a config reload): never dispatched again.
        self._gone: set[int] = set()
        # set_active: which items are dispatched; a heap entry whose generation is not its
        # item's current one is stale (the item was switched off, or on again) and dropped.
        self._active = bytearray(b"\x01" * len(self._items))
        self._active_count = len(self._items)
        self._generation = [0] * len(self._items)
        self._first_due: dict[int, float] = {}  # "soon" first runs asked for before run()
        self._heap: list[tuple[float, int, int, int]] = []  # (at, seq, index, generation)
        self._seq = 0
        self._busy: set[int] = set()  # items running or waiting for a slot
        self._running = 0
        self._host_running: dict[str, int] = {}  # slots held, running or about to
        # (index, due, crowded): crowded when every slot was taken as it began to wait, so
        # its wait is ours too, not only its site's (see _free_host_slot).
        self._host_waiting: dict[str, deque[tuple[int, float, bool]]] = {}
        self._slot_waiting: deque[tuple[int, float, float]] = deque()  # (index, due, since)
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = False
        self._stopping = False
        self._waiter: asyncio.Future[None] | None = None
        self._overloaded = False
        self._late_seen = -math.inf  # when a run last started more than overload_lag late
        self._late_reason = ""
        self._shed_seen = -math.inf  # when a run was last shed
        self._shed_reason = ""
        self._shed_recent = 0  # runs shed since the overload began

    # -- read side -------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Runs started and not finished."""
        return self._running

    @property
    def waiting(self) -> int:
        """Runs due and held back by the caps."""
        return len(self._busy) - self._running

    @property
    def active_count(self) -> int:
        return self._active_count

    @property
    def booked(self) -> int:
        """Runs booked, stale ones (of items switched off) not yet dropped included."""
        return len(self._heap)

    @property
    def overloaded(self) -> bool:
        """Whether, within the last `overload_window` seconds, a run started (or was shed
        instead of starting) more than `overload_lag` late for want of the process's own time
        or slots."""
        since = self._monotonic() - self._overload_window
        return self._late_seen > since or self._shed_seen > since

    @property
    def overload_reason(self) -> str:
        """Why the scheduler is overloaded, in a sentence (shedding first); "" when it is
        not."""
        since = self._monotonic() - self._overload_window
        if self._shed_seen > since:
            return self._shed_reason
        return self._late_reason if self._late_seen > since else ""

    # -- changing what runs ----------------------------------------------------------------

    def set_active(self, keys: Collection[str] | None, *, soon: float = 0.0) -> None:
        """Dispatch only the items whose key is in `keys` (None: all of them).

        An item newly made active next runs at its next phase-aligned due time, or within
        `soon` seconds when that is earlier and soon > 0 (a check taken over from a process
        that died). An item made inactive is not dispatched again; a run of it in flight
        finishes. Unknown keys are ignored.
        """
        wanted: set[int] | None = None
        if keys is not None:
            index_of = self._index_of
            wanted = {index_of[key] for key in keys if key in index_of}
        now = self._monotonic()
        active = self._active
        earliest = math.inf
        gone = self._gone
        for index in range(len(self._items)):
            want = (wanted is None or index in wanted) and index not in gone
            if want == bool(active[index]):
                continue
            self._generation[index] += 1
            if want:
                active[index] = 1
                self._active_count += 1
                at = self._first_at(index, now, soon=soon)
                if self._started:
                    self._push(at, index, self._generation[index])
                    earliest = min(earliest, at)
                elif soon > 0:
                    self._first_due[index] = at
            else:
                active[index] = 0
                self._active_count -= 1
                self._first_due.pop(index, None)
        if len(self._heap) > 2 * self._active_count + 1024:
            self._drop_stale()
        if earliest < math.inf and self._heap and self._heap[0][0] >= earliest:
            self._wake()

    def update(self, items: Sequence[T]) -> None:
        """Take the items of a reloaded configuration, matched by key.

        An item whose key was there already keeps its place and phase, and its next run
        takes the new item. One whose interval or host changed runs from now on at the new
        interval's phase (its place is taken anew: a run of it in flight finishes under the
        old one). A new key is added switched off (`set_active` switches it on, at its
        phase, so new items spread over their interval); a key no longer given is switched
        off for good.
        """
        given = {item.key: item for item in items}
        for key in [key for key in self._index_of if key not in given]:
            self._retire(self._index_of.pop(key))
        now = self._monotonic()
        earliest = math.inf
        for key, item in given.items():
            index = self._index_of.get(key)
            if index is None:
                self._index_of[key] = self._append(item)
                continue
            if (
                item.interval_seconds == self._interval[index]
                and sys.intern(item.host) == self._host[index]
            ):
                self._items[index] = item
                continue
            was_active = bool(self._active[index])
            self._retire(index)
            index = self._index_of[key] = self._append(item)
            if was_active:
                self._active[index] = 1
                self._active_count += 1
                at = self._first_at(index, now, soon=0.0)
                if self._started:
                    self._push(at, index, self._generation[index])
                    earliest = min(earliest, at)
        if earliest < math.inf and self._heap and self._heap[0][0] >= earliest:
            self._wake()

    def _append(self, item: T) -> int:
        """A new place for `item`, switched off."""
        index = len(self._items)
        self._items.append(item)
        interval = item.interval_seconds
        self._interval.append(interval)
        self._phase.append(phase_offset(item.key, interval))
        self._host.append(sys.intern(item.host))
        self._late_limit.append(min(self._late_limit_base, interval / 2))
        self._active.append(0)
        self._generation.append(0)
        return index

    def _retire(self, index: int) -> None:
        """Switch the item at `index` off for good; its booked runs are dropped as stale."""
        self._gone.add(index)
        self._generation[index] += 1
        self._first_due.pop(index, None)
        if self._active[index]:
            self._active[index] = 0
            self._active_count -= 1

    def run_soon(self, key: str, *, delay: float = 0.0) -> None:
        """Schedule an extra run of an active item (e.g. a re-probe), unless it is running
        then."""
        index = self._index_of.get(key)
        if index is not None and self._active[index]:
            self._push(self._monotonic() + delay, index, _EXTRA)
            self._wake()

    def stop(self) -> None:
        self._stopping = True
        self._wake()

    # -- the dispatcher --------------------------------------------------------------------

    async def run(self) -> None:
        """Dispatch until stop() is called; then wait for the runs in flight to finish."""
        loop = asyncio.get_running_loop()
        now = self._monotonic()
        self._started = True
        for index in range(len(self._items)):
            if self._active[index]:
                at = self._first_due.get(index)
                if at is None:
                    at = self._first_at(index, now, soon=0.0)
                self._push(at, index, self._generation[index])
        self._first_due.clear()
        heap = self._heap
        while not self._stopping:
            now = self._monotonic()
            while heap and heap[0][0] <= now + _TICK:
                at, _, index, generation = heapq.heappop(heap)
                self._dispatch(at, index, generation, now)
            if self._overloaded and not self.overloaded:
                self._set_overload(False, "")
            delay = min(heap[0][0] - now - _TICK, _MAX_SLEEP) if heap else _MAX_SLEEP
            delay = math.ceil(max(delay, 0.0) / _TICK) * _TICK or _TICK
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(delay, _release, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        # Runs still waiting for a slot are not started once stopping (see _start_waiting).
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _first_at(self, index: int, now: float, *, soon: float) -> float:
        at = next_at_phase(now, phase=self._phase[index], interval=self._interval[index])
        return min(at, now + soon) if soon > 0 else at

    def _drop_stale(self) -> None:
        """Rebuild the heap without the entries of items switched off since they were booked
        (switching to and fro would otherwise grow it)."""
        active, generations = self._active, self._generation
        self._heap[:] = [
            entry
            for entry in self._heap
            if active[entry[2]] and entry[3] in (_EXTRA, generations[entry[2]])
        ]
        heapq.heapify(self._heap)

    def _push(self, at: float, index: int, generation: int) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, index, generation))

    def _wake(self) -> None:
        if self._waiter is not None:
            _release(self._waiter)

    def _dispatch(self, at: float, index: int, generation: int, now: float) -> None:
        if generation == _EXTRA:
            if not self._active[index]:
                return
        elif generation != self._generation[index]:
            return  # switched off (or off and on again) since this run was booked
        else:
            # The next regular run is booked from the due time, not from now, so lag never
            # accumulates into drift. Extra runs (run_soon) book nothing.
            self._push(at + self._interval[index], index, generation)
        if index in self._busy:
            self._on_skip(self._items[index])
            return
        late = now - at
        if late > self._late_limit[index]:
            self._shed(index, late, "the event loop was too busy to start it", now)
            return
        if late > self._overload_lag:
            self._late(now, f"probes start {late:.2f} s late: the event loop is too busy")
        self._busy.add(index)
        host = self._host[index]
        held = self._host_running.get(host, 0)
        if held >= self._per_host:
            crowded = self._running >= self._max_concurrency
            self._host_waiting.setdefault(host, deque()).append((index, at, crowded))
            return
        self._host_running[host] = held + 1
        if self._running >= self._max_concurrency:
            self._slot_waiting.append((index, at, at))
            return
        self._start(index, at)

    def _start(self, index: int, at: float) -> None:
        self._running += 1
        self._on_in_flight(self._running)
        task = asyncio.create_task(self._guarded(index, at))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, index: int, at: float) -> None:
        item = self._items[index]
        try:
            self._on_lag(max(0.0, self._monotonic() - at))
            await self._run(item, at)
        except Exception:  # a bug in one probe must not stop the scheduler
            log.exception("check %s crashed", item.key)
        finally:
            self._finished(index)

    def _finished(self, index: int) -> None:
        self._busy.discard(index)
        self._running -= 1
        now = self._monotonic()
        self._free_host_slot(self._host[index], now)
        self._start_waiting(now)
        self._on_in_flight(self._running)

    def _free_host_slot(self, host: str, now: float) -> None:
        """Give the host's slot to the next run waiting for that host, if any."""
        waiting = self._host_waiting.get(host)
        while waiting:
            index, at, crowded = waiting.popleft()
            late = now - at
            if not self._active[index]:
                self._busy.discard(index)
            elif crowded and late > self._late_limit[index] and not self._stopping:
                # Every slot was taken too: we are the bottleneck, as much as its site.
                self._busy.discard(index)
                self._shed(index, late, "every probe slot (max_concurrency) was taken", now)
            else:
                # Otherwise it waited for its own site, not for us (per_host keeps a slow
                # site from getting more probes at once): it runs, late, and its lateness
                # as a wait for a slot counts from now on.
                self._slot_waiting.append((index, at, now))
                return
        if waiting is not None:
            del self._host_waiting[host]
        held = self._host_running[host] - 1
        if held:
            self._host_running[host] = held
        else:
            del self._host_running[host]

    def _start_waiting(self, now: float) -> None:
        queue = self._slot_waiting
        while queue and self._running < self._max_concurrency:
            index, at, since = queue.popleft()
            late = now - since
            if self._active[index] and late <= self._late_limit[index] and not self._stopping:
                if late > self._overload_lag:
                    self._late(
                        now, f"probes wait {late:.2f} s for a slot: max_concurrency is reached"
                    )
                self._start(index, at)
                continue
            self._busy.discard(index)
            if self._active[index] and not self._stopping:
                self._shed(index, late, "every probe slot (max_concurrency) was taken", now)
            self._free_host_slot(self._host[index], now)

    # -- overload --------------------------------------------------------------------------

    def _shed(self, index: int, late: float, why: str, now: float) -> None:
        self._on_shed(self._items[index], late)
        if late <= self._overload_lag:
            return  # a short interval's run, a moment late: shed, but no overload
        self._shed_recent += 1
        self._shed_seen = now
        self._shed_reason = (
            f"probes shed: one would have started {late:.2f} s late ({why}); "
            f"{self._shed_recent} shed since the overload began"
        )
        self._overload(self._shed_reason)

    def _late(self, now: float, reason: str) -> None:
        self._late_seen = now
        self._late_reason = reason
        self._overload(reason)

    def _overload(self, reason: str) -> None:
        if not self._overloaded:
            self._set_overload(True, reason)

    def _set_overload(self, overloaded: bool, reason: str) -> None:
        self._overloaded = overloaded
        if not overloaded:
            self._shed_recent = 0
        self._on_overload(overloaded, reason)


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
