"""Is it them or us? The own-connectivity guard, as small state machines fed with results and
`now` (no clock of their own, no I/O).

When the monitor's own network goes, every site looks down at once; opening an incident and
mailing every client would be the worst thing it could do. Two guards, one per configuration:

`CanaryWatch` (when `canaries:` are configured: URLs outside every client's hosting). Its
state is a `Connectivity`:

    UNKNOWN --every canary's latest probe failed--> LOST     (page on-call once: LOST)
    UP      --every canary's latest probe failed--> LOST     (page on-call once: LOST)
    LOST    --any canary passes-------------------> UP       (note to on-call: RESTORED)
    UNKNOWN --any canary passes-------------------> UP

While LOST, failures elsewhere open nothing and count towards nothing (the runtime discards
them); successes still count.

`MassFailureWatch` (without canaries): a site *starts failing* when its first check fails
while none of its checks was failing. When at least `policy.sites` sites, and at least half of
all sites, start failing within `policy.window`, a mass failure is detected (MASS_FAILURE:
on-call is asked once): for `policy.hold` from then, client mails about those sites (and any
that start failing meanwhile) are held back until the hold ends, not dropped, so a real mass
outage still reaches every client, only later.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from incidents.outgoing import Audience, MessageKind, Outgoing, OutgoingEmail


class Connectivity(enum.StrEnum):
    UNKNOWN = "unknown"  # no canary probed yet: failures elsewhere count as usual
    UP = "up"  # some canary passed its latest probe
    LOST = "lost"  # every canary failed its latest probe: failures elsewhere are not counted


@dataclass(frozen=True, slots=True)
class ConnectivityLost:
    """Every canary failed: on-call is paged once per episode (its key is `since`)."""

    since: datetime  # when the first canary of the episode failed its probe
    canaries: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ConnectivityRestored:
    since: datetime  # the episode's start, as in its ConnectivityLost
    at: datetime
    canary: str  # the one that passed


class CanaryWatch:
    """The state of the monitor's own connectivity, from its canaries' latest results."""

    def __init__(self, canaries: Iterable[str]) -> None:
        self._latest: dict[str, bool] = dict.fromkeys(canaries, True)
        if not self._latest:
            raise ValueError("a canary watch needs at least one canary")
        self._seen: set[str] = set()
        # When each canary started failing (its first failure since it last passed).
        self._failing_since: dict[str, datetime] = {}
        self.state = Connectivity.UNKNOWN
        self.lost_since: datetime | None = None

    @property
    def lost(self) -> bool:
        return self.state is Connectivity.LOST

    def latest(self) -> dict[str, bool | None]:
        """Each canary's latest result: True passed, False failed, None not probed yet."""
        return {name: (ok if name in self._seen else None) for name, ok in self._latest.items()}

    def resume_lost(self, since: datetime) -> None:
        """Start LOST, as an episode that was already paged before a restart: a failing
        canary then pages nobody again, a passing one restores."""
        self.state = Connectivity.LOST
        self.lost_since = since

    def observe(
        self, canary: str, *, ok: bool, now: datetime
    ) -> ConnectivityLost | ConnectivityRestored | None:
        """Record one canary result; returns what on-call must hear of, if anything."""
        if canary not in self._latest:
            raise KeyError(f"unknown canary {canary!r}")
        self._latest[canary] = ok
        self._seen.add(canary)
        if ok:
            self._failing_since.pop(canary, None)
            if self.state is Connectivity.LOST:
                since = self.lost_since or now
                self.state, self.lost_since = Connectivity.UP, None
                return ConnectivityRestored(since=since, at=now, canary=canary)
            self.state = Connectivity.UP
            return None
        self._failing_since.setdefault(canary, now)
        if self.state is Connectivity.LOST or any(self._latest.values()):
            return None
        self.state = Connectivity.LOST
        self.lost_since = min(self._failing_since.values())
        return ConnectivityLost(since=self.lost_since, canaries=tuple(self._latest))


@dataclass(frozen=True, slots=True)
class MassFailurePolicy:
    sites: int = 5  # at least this many sites start failing...
    hold: timedelta = timedelta(minutes=5)  # ...client mails wait this long
    window: timedelta = timedelta(minutes=1)  # ...within this (one check interval)

    def __post_init__(self) -> None:
        if self.sites < 1:
            raise ValueError(f"mass_failure.sites must be at least 1 (got {self.sites})")
        if self.hold < timedelta(0) or self.window <= timedelta(0):
            raise ValueError("mass_failure.hold must not be negative, the window must be positive")


@dataclass(frozen=True, slots=True)
class MassFailure:
    """Many sites started failing at once: on-call is asked, client mails wait."""

    detected_at: datetime
    hold_until: datetime
    sites: tuple[str, ...]  # the sites that started failing within the window, sorted
    total_sites: int
    window: timedelta


@dataclass
class _Episode:
    failure: MassFailure
    sites: set[str] = field(default_factory=set)


class MassFailureWatch:
    """Detects many sites starting to fail within one window, and holds their client mails."""

    def __init__(self, *, policy: MassFailurePolicy, total_sites: int) -> None:
        self.policy = policy
        self.total_sites = total_sites
        self._failing: dict[str, set[str]] = {}  # site -> its failing checks
        self._started: dict[str, datetime] = {}  # site -> when it started failing, in window
        # The same starts oldest first, to drop those that left the window in O(1) each: a
        # real outage of 50,000 sites must not cost a pass over all of them per site.
        self._starts: deque[tuple[datetime, str]] = deque()
        self._episode: _Episode | None = None

    def observe(
        self, site: str, check: str, *, ok: bool, now: datetime, was_failing: bool = False
    ) -> MassFailure | None:
        """Record one counted result; returns a MassFailure when this one completes it.

        `was_failing`: the check's previous result (kept from before a restart) failed too,
        so its site did not start failing now."""
        if ok:
            failing = self._failing.get(site)
            if failing is not None:
                failing.discard(check)
                if not failing:
                    del self._failing[site]
            return None
        failing = self._failing.setdefault(site, set())
        started = not failing and not was_failing
        failing.add(check)
        if not started:
            return None
        episode = self._current(now)
        if episode is not None:
            episode.sites.add(site)  # fails during the hold: its mails wait for it too
            return None
        self._started[site] = now
        self._starts.append((now, site))
        horizon = now - self.policy.window
        while self._starts and self._starts[0][0] <= horizon:
            at, old = self._starts.popleft()
            if self._started.get(old) == at:  # not started again since
                del self._started[old]
        count = len(self._started)
        if count < self.policy.sites or 2 * count < self.total_sites:
            return None
        failure = MassFailure(
            detected_at=now,
            hold_until=now + self.policy.hold,
            sites=tuple(sorted(self._started)),
            total_sites=self.total_sites,
            window=self.policy.window,
        )
        self._episode = _Episode(failure=failure, sites=set(self._started))
        # Those starts are this episode's; only new ones can make the next.
        self._started.clear()
        self._starts.clear()
        return failure

    def hold_until(self, site: str, now: datetime) -> datetime | None:
        """Until when client mails about `site` wait; None when they go at once."""
        episode = self._current(now)
        if episode is None or site not in episode.sites:
            return None
        return episode.failure.hold_until

    @property
    def holding(self) -> MassFailure | None:
        return self._episode.failure if self._episode is not None else None

    def _current(self, now: datetime) -> _Episode | None:
        if self._episode is not None and now >= self._episode.failure.hold_until:
            self._episode = None
        return self._episode


def held(messages: Iterable[Outgoing], *, until: datetime) -> list[Outgoing]:
    """`messages` with every client mail the monitor wrote on its own held back until `until`.
    On-call's go at once, and so does an update an operator wrote to the client: a person
    who looked has decided."""
    return [
        replace(message, not_before=until)
        if isinstance(message, OutgoingEmail)
        and message.audience is Audience.CLIENT
        and message.kind is not MessageKind.UPDATE
        else message
        for message in messages
    ]
