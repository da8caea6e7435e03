"""Watches how late the event loop runs timers, so a probe timed while we were busy is known.

A probe's latency is measured on the same event loop that runs everything else; when the loop
is overloaded, callbacks run late and a healthy site would look slow. The sentinel wakes every
`period` seconds and records how late it woke; the runtime asks for the worst lag seen during
a probe's span before trusting a `slow` or `timeout` verdict.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

# The evidence timing in which a probe run on another event loop (the browser checks' own)
# reports that loop's worst lag during the run, when it was worth noting.
STALL_TIMING = "loop_stall"


class LoopLagMonitor:
    def __init__(
        self,
        *,
        monotonic: Callable[[], float],
        period: float = 0.05,
        window: float = 120.0,
        on_sample: Callable[[float], None] = lambda lag: None,
    ) -> None:
        self._monotonic = monotonic
        self._period = period
        self._samples: deque[tuple[float, float]] = deque(maxlen=max(1, int(window / period)))
        self._on_sample = on_sample
        self._stopping = asyncio.Event()
        self._sampled = asyncio.Event()

    async def next_sample(self) -> None:
        """Wait for the sample after now: it sees a stall that ended just before the call."""
        if self._stopping.is_set():
            return
        event = self._sampled
        try:
            await asyncio.wait_for(event.wait(), timeout=self._period * 4)
        except TimeoutError:
            pass

    async def run(self) -> None:
        while not self._stopping.is_set():
            expected = self._monotonic() + self._period
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self._period)
            except TimeoutError:
                pass
            now = self._monotonic()
            lag = max(0.0, now - expected)
            self._samples.append((now, lag))
            self._on_sample(lag)
            self._sampled.set()
            self._sampled = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    def max_lag_between(self, start: float, end: float) -> float:
        """The worst lag of samples taken in [start, end + period] (a late wake-up that covers
        the end of the span is noticed by the first sample after it)."""
        worst = 0.0
        limit = end + self._period * 2
        for at, lag in reversed(self._samples):
            if at < start:
                break
            if at <= limit:
                worst = max(worst, lag)
        return worst

    def current(self) -> float:
        return self._samples[-1][1] if self._samples else 0.0
