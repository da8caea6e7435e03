"""Faults of the monitor's own machine, told apart from the sites' outages.

Every kind (the two below, and `event_loop_lag`: a slow or timeout verdict our own stall could
explain, judged by the runtime) is discarded, counted by reason, logged at the start of a run
of them, and reported by /healthz until `FAULT_HOLD` seconds pass without one.

A probe that failed because this process ran out of file descriptors, buffers, memory or local
ports (`FailureCause.LOCAL_RESOURCE`, see `checks.classify.failure_cause`) says nothing about
its target: the runtime discards it (`monitor_probe_results_discarded_total{reason=
"local_resource"}`), logs the first of a run of them, and /healthz says degraded.

Our own resolver failing is harder to tell from a site's DNS failing, so the rule is simple
and errs towards the site's outage: the resolver counts as down once names of at least
`RESOLVER_DOWN_HOSTS` distinct hosts failed to resolve within `RESOLVER_WINDOW` seconds with no
named host resolving in between (any answer, refusal or reset from a named host is a name that
resolved). While it is down, results that failed name resolution are discarded
(`reason="local_resolver"`); the first name that resolves again ends it. The failures that
built the run are counted as usual: a single site whose name does not resolve is that site's
outage, and at most `RESOLVER_DOWN_HOSTS - 1` results count before the rule holds.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from checks.result import FailureCause, Outcome, ProbeResult

LOCAL_RESOURCE = "local_resource"
LOCAL_RESOLVER = "local_resolver"
EVENT_LOOP_LAG = "event_loop_lag"

# A run of local faults ends (and /healthz is ok again) after this long without one.
FAULT_HOLD = 60.0
RESOLVER_DOWN_HOSTS = 3
RESOLVER_WINDOW = 60.0

# Failures that happen after a name resolved: proof that the resolver answered.
_AFTER_RESOLUTION = frozenset(
    {Outcome.CONNECTION_ERROR, Outcome.TLS_ERROR, Outcome.TOO_LARGE, Outcome.HTTP_5XX}
)


@dataclass(frozen=True, slots=True)
class Discard:
    """A result to discard: why, and whether it is the first of its run (log it)."""

    reason: str
    first: bool


class LocalFaults:
    """Which results are the monitor's own faults, and whether any were seen recently."""

    def __init__(self, *, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._last: dict[str, tuple[float, str]] = {}  # reason -> (when, error) of the latest
        self._unresolved: dict[str, float] = {}  # host -> when its name last failed

    def judge(self, result: ProbeResult) -> Discard | None:
        """Whether `result` is to be discarded as a fault of our own (see the module)."""
        now = self._monotonic()
        reason = self._reason(result, now)
        if reason is None:
            return None
        first = self.seen(reason, result.evidence.error or str(result.outcome))
        return Discard(reason=reason, first=first)

    def seen(self, reason: str, detail: str) -> bool:
        """Note a fault of ours (`detail` is what /healthz shows of it); True when it is the
        first of a run, to be logged."""
        now = self._monotonic()
        last = self._last.get(reason)
        self._last[reason] = (now, detail)
        return last is None or now - last[0] > FAULT_HOLD

    def _reason(self, result: ProbeResult, now: float) -> str | None:
        if result.cause is FailureCause.LOCAL_RESOURCE:
            return LOCAL_RESOURCE
        host = _named_host(result.evidence.url)
        if host is None:
            return None
        if result.cause is FailureCause.NAME_RESOLUTION:
            self._unresolved[host] = now
            for stale in [h for h, at in self._unresolved.items() if now - at > RESOLVER_WINDOW]:
                del self._unresolved[stale]
            return LOCAL_RESOLVER if len(self._unresolved) >= RESOLVER_DOWN_HOSTS else None
        if result.evidence.status is not None or result.outcome in _AFTER_RESOLUTION:
            self._unresolved.clear()
        return None

    def reasons(self) -> list[str]:
        """What /healthz says while faults of our own are recent: one line per kind."""
        now = self._monotonic()
        said = []
        for reason, (at, error) in sorted(self._last.items()):
            if now - at <= FAULT_HOLD:
                said.append(
                    f"monitor-side fault ({reason}) {now - at:.0f} s ago, probes discarded: {error}"
                )
        return said


def _named_host(url: str) -> str | None:
    """The URL's host when it is a name (an IP literal needs no resolver), else None."""
    host = urlsplit(url).hostname
    if not host:
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host
    return None
