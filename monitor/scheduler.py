"""Runs every check on its interval, spread out, capped, never overlapping itself.

One dispatcher task keeps a heap of due times instead of one sleeping task per check, so tens
of thousands of checks cost one timer. Each check's first run is offset by a stable fraction
of its interval (a hash of its key), so a thousand checks with the same interval do not fire
at once, and a restart keeps the same phase.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
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


def phase_offset(key: str, interval: float) -> float:
    """A stable offset in [0, interval) for a check: the same key lands on the same phase."""
    return (zlib.crc32(key.encode()) % 1_000_000) / 1_000_000 * interval


@dataclass(order=True)
class _Due:
    at: float
    seq: int
    index: int = field(compare=False)
    regular: bool = field(default=True, compare=False)  # False for an extra run (run_soon)


class Scheduler(Generic[T]):
    """Calls `run(item, due_at)` for each item every `interval_seconds`.

    `monotonic` and `sleep` come from the injected clock. `on_lag` receives how late each
    probe started (after waiting for the concurrency caps); `on_skip` is told when a check's
    previous run is still in flight at its next due time (that tick is skipped, not queued).
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
    ) -> None:
        self._items = list(items)
        self._index_of = {item.key: index for index, item in enumerate(self._items)}
        self._run = run
        self._monotonic = monotonic
        self._global = asyncio.Semaphore(max_concurrency)
        self._per_host_limit = per_host
        self._per_host: dict[str, asyncio.Semaphore] = {}
        self._on_lag = on_lag
        self._on_skip = on_skip
        self._on_in_flight = on_in_flight
        self._running: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._heap: list[_Due] = []
        self._seq = 0

    @property
    def in_flight(self) -> int:
        return len(self._running)

    def run_soon(self, key: str, *, delay: float = 0.0) -> None:
        """Schedule an extra run of a check (e.g. a re-probe), unless it is running now."""
        index = self._index_of.get(key)
        if index is not None:
            self._push(self._monotonic() + delay, index, regular=False)
            self._wake.set()

    def _push(self, at: float, index: int, *, regular: bool = True) -> None:
        self._seq += 1
        heapq.heappush(self._heap, _Due(at, self._seq, index, regular))

    async def run(self) -> None:
        """Dispatch until stop() is called; then wait for the probes in flight to finish."""
        start = self._monotonic()
        for index, item in enumerate(self._items):
            self._push(start + phase_offset(item.key, item.interval_seconds), index)
        while not self._stopping.is_set():
            now = self._monotonic()
            while self._heap and self._heap[0].at <= now:
                due = heapq.heappop(self._heap)
                self._dispatch(due)
            delay = (self._heap[0].at - now) if self._heap else 3600.0
            self._wake.clear()
            waiters = [
                asyncio.ensure_future(self._stopping.wait()),
                asyncio.ensure_future(self._wake.wait()),
            ]
            await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def stop(self) -> None:
        self._stopping.set()

    def _dispatch(self, due: _Due) -> None:
        item = self._items[due.index]
        # The next regular run is booked from the due time, not from now, so lag never
        # accumulates into drift. Extra runs (run_soon) book nothing.
        if due.regular:
            self._push(due.at + item.interval_seconds, due.index)
        if due.index in self._running:
            self._on_skip(item)
            return
        self._running.add(due.index)
        self._on_in_flight(len(self._running))
        task = asyncio.create_task(self._guarded(item, due))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, item: T, due: _Due) -> None:
        host_cap = self._per_host.get(item.host)
        if host_cap is None:
            host_cap = self._per_host[item.host] = asyncio.Semaphore(self._per_host_limit)
        try:
            async with self._global, host_cap:
                self._on_lag(max(0.0, self._monotonic() - due.at))
                await self._run(item, due.at)
        except Exception:  # a bug in one probe must not stop the scheduler
            log.exception("check %s crashed", item.key)
        finally:
            self._running.discard(due.index)
            self._on_in_flight(len(self._running))
