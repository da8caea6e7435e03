"""Which sites this process probes, when several `monitor run` processes share one database.

The unit of ownership is the site: a site's incident is built from all of its checks, so all of
them are probed, and its incident changed, by the one process holding the site's lease. Every
quarter of a lease period each process, in one round:

1. heartbeats (its row in `workers` says it is alive, and where);
2. renews the leases it holds and claims free or expired ones (`FOR UPDATE SKIP LOCKED`), up
   to its fair share: the sites divided by the live processes, rounded up;
3. gives back what it holds beyond that share, so a process that joins gets work at once.

Heartbeats and leases are granted for three quarters of the lease period, so they survive two
missed rounds. A process that dies stops renewing: its heartbeat and leases run out at most
three quarters of a lease after it died, and the others, now counting one process fewer,
claim its sites at their next round, a quarter later at most: within one lease period. Writes
are fenced by the lease (see `Store.record`), so a process that was paused past its lease can
no longer change a site someone else has taken.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from monitor.clock import Clock
from monitor.store import Store, WorkerInfo

log = logging.getLogger(__name__)

# Rounds per lease period; each grant lasts GRANTED_ROUNDS of them (see the module docstring).
ROUNDS_PER_LEASE = 4
GRANTED_ROUNDS = 3


@dataclass(frozen=True, slots=True)
class Identity:
    """Who this process is among those sharing the database."""

    worker: str
    location: str


class SiteOwnership:
    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        identity: Identity,
        sites: Sequence[str],
        lease: float,
        on_gained: Callable[[set[str]], Awaitable[None]],
        on_lost: Callable[[set[str]], None],
    ) -> None:
        self._store = store
        self._clock = clock
        self.identity = identity
        self._sites = sorted(set(sites))
        self._lease = lease
        self._on_gained = on_gained
        self._on_lost = on_lost
        self.held: set[str] = set()
        self.workers: list[WorkerInfo] = []
        self._round_lock = asyncio.Lock()

    @property
    def round_seconds(self) -> float:
        return self._lease / ROUNDS_PER_LEASE

    @property
    def _granted(self) -> float:
        return self.round_seconds * GRANTED_ROUNDS

    def other_locations(self) -> set[str]:
        """Locations of the other live processes (from the last heartbeat)."""
        return {w.location for w in self.workers if w.location != self.identity.location}

    async def other_locations_now(self) -> set[str]:
        """`other_locations`, asking the database again when the last round saw none: a
        process may have joined since, and a second opinion is worth one query."""
        if not self.other_locations():
            self.workers = await self._store.heartbeat(
                worker=self.identity.worker,
                location=self.identity.location,
                now=self._clock.now(),
                ttl=self._granted,
            )
        return self.other_locations()

    async def sync(self) -> None:
        """One round: heartbeat, renew, claim up to the fair share, give back the excess."""
        async with self._round_lock:
            now = self._clock.now()
            self.workers = await self._store.heartbeat(
                worker=self.identity.worker,
                location=self.identity.location,
                now=now,
                ttl=self._granted,
            )
            share = math.ceil(len(self._sites) / max(1, len(self.workers)))
            leases = await self._store.claim_sites(
                worker=self.identity.worker,
                location=self.identity.location,
                sites=self._sites,
                now=now,
                lease=self._granted,
                limit=share,
            )
            held = set(leases.held)
            # Held here but taken afresh (our lease had run out meanwhile): another process
            # may have changed them, so they are adopted again from the database.
            self._lose(set(leases.acquired) & self.held)
            if len(held) > share:
                # Give back the ones we would claim last, so the split is stable.
                excess = set(sorted(held)[share:])
                # Stop using them before the database lets anyone else have them.
                self._lose(excess & self.held)
                await self._store.release_sites(worker=self.identity.worker, sites=excess)
                held -= excess
            lost = self.held - held
            gained = held - self.held
            self._lose(lost)
            if gained:
                await self._on_gained(gained)
                self.held |= gained
                log.info(
                    "%s (%s) now holds %d of %d sites (%d live processes)",
                    self.identity.worker,
                    self.identity.location,
                    len(self.held),
                    len(self._sites),
                    len(self.workers),
                )

    async def use_sites(self, sites: Sequence[str]) -> None:
        """The configured sites changed (a reload): hand back the ones that went away at once,
        then claim the new ones in a round now rather than at the next."""
        async with self._round_lock:
            self._sites = sorted(set(sites))
            gone = self.held - set(self._sites)
            self._lose(gone)
            if gone:
                await self._store.release_sites(worker=self.identity.worker, sites=gone)
        await self.sync()

    def lost(self, site: str) -> None:
        """A write found our lease on `site` gone: stop probing it now, not at the next round."""
        self._lose({site})

    def _lose(self, sites: set[str]) -> None:
        sites = sites & self.held
        if not sites:
            return
        self.held -= sites
        self._on_lost(sites)
        log.info("%s gave up %d site(s): %s", self.identity.worker, len(sites), _some(sites))

    async def run(self, *, stopping: asyncio.Event) -> None:
        """Rounds until `stopping` is set; a failed round (the database away) is retried at
        the next one, and our leases simply run out if that goes on."""
        while not stopping.is_set():
            try:
                await asyncio.wait_for(stopping.wait(), timeout=self.round_seconds)
                return
            except TimeoutError:
                pass
            try:
                await self.sync()
            except Exception as exc:  # noqa: BLE001 - the database may be away for a while
                log.error("lease round failed: %s: %s", type(exc).__name__, exc)

    async def retire(self) -> None:
        """A clean stop: hand every site back at once rather than after the lease runs out."""
        try:
            await self._store.retire_worker(worker=self.identity.worker)
        except Exception as exc:  # noqa: BLE001 - the leases then expire on their own
            log.warning("could not hand the sites back: %s: %s", type(exc).__name__, exc)
        self._lose(set(self.held))


def _some(sites: set[str], shown: int = 5) -> str:
    names = sorted(sites)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
