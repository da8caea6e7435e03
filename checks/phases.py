"""Where the time of one HTTP probe went, phase by phase, as blackbox_exporter splits it.

    resolve     the DNS lookup (0 for an IP literal or a cached name)
    connect     the TCP handshake
    tls         the TLS handshake (0 for plain http)
    processing  from the request sent to the first byte of the answer
    transfer    from the first byte to the end of the body

A `PhaseClock` is moved from one phase to the next by the transport as things happen; the
time between two moves belongs to the phase that was running. Redirect hops add to the same
phases. Because every instant belongs to exactly one phase, the phases of a probe add up to
its duration, and a probe cut short by its timeout charges the wait to the phase it was in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Phase = Literal["resolve", "connect", "tls", "processing", "transfer"]
PHASES: tuple[Phase, ...] = ("resolve", "connect", "tls", "processing", "transfer")

# How an on-call reader names each phase in an evidence line ("TLS handshake took 4.1 s").
PHASE_WORDS: dict[str, str] = {
    "resolve": "DNS lookup",
    "connect": "TCP connect",
    "tls": "TLS handshake",
    "processing": "waiting for the first byte",
    "transfer": "reading the body",
}


def _zeros() -> dict[str, float]:
    return dict.fromkeys(PHASES, 0.0)


@dataclass(slots=True)
class PhaseClock:
    """The running split of one probe attempt; `mark` is when the current phase began (the
    clock of the probe, e.g. time.perf_counter)."""

    mark: float
    current: Phase = "resolve"
    spent: dict[str, float] = field(default_factory=_zeros)

    def enter(self, phase: Phase, now: float) -> None:
        """The running phase ended at `now` and `phase` began."""
        self.spent[self.current] += now - self.mark
        self.current = phase
        self.mark = now

    def enter_from(self, before: Phase, phase: Phase, now: float) -> None:
        """`enter(phase)` only while `before` runs: of several connections raced to one
        target (Happy Eyeballs), the first to get there moves the clock."""
        if self.current == before:
            self.enter(phase, now)

    def stop(self, now: float) -> dict[str, float]:
        """The phases in seconds, the running one charged up to `now`."""
        self.enter(self.current, now)
        return dict(self.spent)


def where_time_went(phases: Mapping[str, float]) -> str | None:
    """The phase that took longest, in words: "TLS handshake took 4.1 s"; None without phases."""
    known = [(phases[name], name) for name in PHASES if name in phases]
    if not known:
        return None
    seconds, name = max(known)
    shown = f"{round(seconds * 1000)} ms" if seconds < 1 else f"{seconds:.1f} s"
    return f"{PHASE_WORDS[name]} took {shown}"
