"""Processes sharing one database: who is alive, and which process probes which site.

Every `monitor run` process is a worker with an id and a location name. It renews its row in
`workers` (`heartbeat`) and holds leases on sites ("client/site") in `site_leases`
(`claim_sites`): the owner of a site's lease alone probes its checks and writes their state
and the site's incident, each such write fenced by the lease (`fence`).

A site_leases row:

    free (owner NULL) ---------------claim by W------> held by W until expires_at
    held by W ------------claim_sites by W (renew)----> held by W, expires_at moved on
    held by W, expires_at <= now ----claim by V------> held by V (W's writes now fail)
    held by W -----------release_sites / retire W----> free

A lease is renewed as long as its row still names the owner, even after expires_at: nobody
else can have written the site's rows in between, since writing needs the lease first. So a
site a worker held at its previous call and holds after this one was held throughout; one it
lost and took back in between is reported as acquired (`SiteLeases.acquired`), which tells
the caller to reload the site's state from the database.

Expiry compares `expires_at` with the caller's `now`: the processes' clocks must agree to
well within a lease period (NTP), or a fast clock takes leases early. Fencing needs no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from monitor.store.errors import LeaseLost
from monitor.store.tables import site_leases, workers

# Sites per statement: well under the bind-parameter limits of SQLite and asyncpg (32766).
CHUNK = 500


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A live worker, as its last heartbeat left it."""

    id: str
    location: str
    started_at: datetime  # first heartbeat of its current run
    heartbeat_at: datetime
    expires_at: datetime  # considered dead from then on unless it heartbeats again


@dataclass(frozen=True, slots=True)
class SiteLeases:
    """The sites a worker holds after `claim_sites`."""

    held: frozenset[str]  # every site this worker holds now (acquired included)
    # Taken by this call, not held continuously since the previous one: the site's check
    # states and incident may have been written by another worker, so reload them.
    acquired: frozenset[str]


def worker_from_row(row: RowMapping) -> WorkerInfo:
    return WorkerInfo(
        id=row["id"],
        location=row["location"],
        started_at=row["started_at"],
        heartbeat_at=row["heartbeat_at"],
        expires_at=row["expires_at"],
    )


def chunks(items: Sequence[str], size: int = CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def upsert_for(conn: AsyncConnection) -> Callable[[sa.Table], Any]:
    """The dialect's INSERT, which has ON CONFLICT on both backends."""
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


async def heartbeat(
    conn: AsyncConnection, *, worker: str, location: str, now: datetime, ttl: float
) -> list[WorkerInfo]:
    """Mark `worker` alive until now + ttl; return the live workers (itself included)."""
    _positive(ttl=ttl)
    until = now + timedelta(seconds=ttl)
    # Forget the dead, skipping rows another heartbeat is deleting (no waits, no deadlocks).
    dead = (
        sa.select(workers.c.id)
        .where(workers.c.expires_at <= now, workers.c.id != worker)
        .with_for_update(skip_locked=True)
    )
    await conn.execute(sa.delete(workers).where(workers.c.id.in_(dead.scalar_subquery())))
    insert = upsert_for(conn)(workers).values(
        id=worker, location=location, started_at=now, heartbeat_at=now, expires_at=until
    )
    # A worker whose own row expired keeps its started_at: only a retired one starts afresh.
    changed = {name: insert.excluded[name] for name in ("location", "heartbeat_at", "expires_at")}
    await conn.execute(insert.on_conflict_do_update(index_elements=[workers.c.id], set_=changed))
    live = sa.select(workers).where(workers.c.expires_at > now).order_by(workers.c.id)
    return [worker_from_row(row) for row in (await conn.execute(live)).mappings()]


async def retire(conn: AsyncConnection, *, worker: str) -> None:
    """Forget `worker` and free its leases, so others take its sites at once."""
    await conn.execute(sa.delete(workers).where(workers.c.id == worker))
    await conn.execute(sa.update(site_leases).where(site_leases.c.owner == worker).values(_FREE))


async def claim(
    conn: AsyncConnection,
    *,
    worker: str,
    location: str,
    sites: Sequence[str],
    now: datetime,
    lease: float,
    limit: int,
    known: Collection[str] = (),
) -> SiteLeases:
    """Renew this worker's leases among `sites`, free its others, then take free or expired
    ones among `sites` until it holds `limit` (never more; holding more already releases
    nothing: that is `release`'s job). `known`: sites whose rows are known to exist (rows
    are never deleted), so the caller's every round does not look them up again."""
    _positive(lease=lease)
    if limit < 0:
        raise ValueError(f"limit must be 0 or more (got {limit})")
    wanted = sorted(set(sites))
    await _ensure_rows(conn, [site for site in wanted if site not in known])
    held_before = set(await owned(conn, worker))
    # A site no longer among `sites` (e.g. removed from this process's configuration) is
    # one this worker cannot probe: holding it would keep it from everyone.
    await release(conn, worker=worker, sites=sorted(held_before.difference(wanted)))
    until = now + timedelta(seconds=lease)
    renew = (
        sa.update(site_leases)
        .where(site_leases.c.owner == worker)
        .values(expires_at=until, location=location)
        .returning(site_leases.c.site)
    )
    renewed = set((await conn.execute(renew)).scalars())
    acquired: set[str] = set()
    for chunk in chunks(wanted):
        room = limit - len(renewed) - len(acquired)
        if room <= 0:
            break
        acquired.update(
            await _take(
                conn, chunk, worker=worker, location=location, now=now, until=until, room=room
            )
        )
    return SiteLeases(held=frozenset(renewed | acquired), acquired=frozenset(acquired))


async def release(conn: AsyncConnection, *, worker: str, sites: Iterable[str]) -> set[str]:
    """Free the leases `worker` holds among `sites`; returns the sites freed."""
    freed: set[str] = set()
    for chunk in chunks(sorted(set(sites))):
        stmt = (
            sa.update(site_leases)
            .where(site_leases.c.owner == worker, site_leases.c.site.in_(chunk))
            .values(_FREE)
            .returning(site_leases.c.site)
        )
        freed.update((await conn.execute(stmt)).scalars())
    return freed


async def fence(conn: AsyncConnection, *, site: str, owner: str) -> None:
    """Raise LeaseLost unless `owner` holds the lease on `site`; otherwise keep it from
    changing hands until the caller's transaction ends.

    The lease row is share-locked (PostgreSQL; SQLite's BEGIN IMMEDIATE serialises writers
    anyway): a claim or release of it waits for this transaction, and one that came first
    is seen. No expiry test: while the row names `owner`, nobody else has taken the site.
    """
    held = (
        sa.select(site_leases.c.site)
        .where(site_leases.c.site == site, site_leases.c.owner == owner)
        .with_for_update(read=True)
    )
    if (await conn.execute(held)).first() is None:
        raise LeaseLost(site, owner)


async def owned(conn: AsyncConnection, worker: str) -> list[str]:
    """The sites whose lease names `worker`, expired or not."""
    query = (
        sa.select(site_leases.c.site)
        .where(site_leases.c.owner == worker)
        .order_by(site_leases.c.site)
    )
    return list((await conn.execute(query)).scalars())


async def _ensure_rows(conn: AsyncConnection, sites: Sequence[str]) -> None:
    # Read first, insert only what is missing: a worker calls this every few seconds with
    # every site, and an INSERT of existing keys would still wait on rows others update.
    existing: set[str] = set()
    for chunk in chunks(sites):
        query = sa.select(site_leases.c.site).where(site_leases.c.site.in_(chunk))
        existing.update((await conn.execute(query)).scalars())
    missing = [site for site in sites if site not in existing]
    # Sorted, so two workers inserting the same new sites wait on each other in one order.
    for chunk in chunks(missing):
        insert = upsert_for(conn)(site_leases).values([{"site": site} for site in chunk])
        await conn.execute(insert.on_conflict_do_nothing(index_elements=[site_leases.c.site]))


async def _take(
    conn: AsyncConnection,
    sites: Sequence[str],
    *,
    worker: str,
    location: str,
    now: datetime,
    until: datetime,
    room: int,
) -> set[str]:
    table = site_leases
    # SKIP LOCKED: rows another worker is claiming right now are left to it, so concurrent
    # claims split the sites instead of queueing; ordered by site, each takes the next free.
    free = (
        sa.select(table.c.site)
        .where(
            table.c.site.in_(sites),
            sa.or_(
                table.c.owner.is_(None), table.c.expires_at.is_(None), table.c.expires_at <= now
            ),
        )
        .order_by(table.c.site)
        .limit(room)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        sa.update(table)
        .where(table.c.site.in_(free.scalar_subquery()))
        .values(owner=worker, location=location, expires_at=until, acquired_at=now)
        .returning(table.c.site)
    )
    return set((await conn.execute(stmt)).scalars())


_FREE: dict[str, Any] = {"owner": None, "location": None, "expires_at": None, "acquired_at": None}


def _positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be a positive number of seconds (got {value!r})")
