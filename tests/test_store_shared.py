"""Processes sharing one database, on SQLite and PostgreSQL: site leases, fencing, incident
versions, outbox claims, confirmation requests and the migration that adds them.

"Processes" are Store instances with engines of their own on one database; on PostgreSQL
their claims run at the same moment (asyncio.gather over separate connections), so only the
database's locking keeps them apart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from aiosmtpd.smtp import SMTP, Envelope, Session
from prometheus_client import CollectorRegistry

from checks.result import Evidence, Outcome, ProbeResult
from incidents.model import (
    CheckState,
    Incident,
    IncidentStatus,
    TimelineEntry,
    TimelineKind,
    Transition,
)
from incidents.outgoing import Audience, MessageKind, Outgoing, OutgoingEmail
from incidents.severity import Severity
from monitor.delivery.mail import SmtpMailer, SmtpSettings
from monitor.metrics import Metrics
from monitor.outbox_worker import OutboxWorker
from monitor.store import (
    LeaseLost,
    OutboxItem,
    OutboxStatus,
    SiteLeases,
    StaleIncident,
    Store,
    leases,
)
from monitor.store.engine import SQLITE_BEGIN
from monitor.store.tables import outbox
from tests.helpers import ShiftedClock, eventually
from tests.migration_helpers import database_at, old_open_incident
from tests.smtp_helpers import Inbox, smtpd

T0 = datetime(2024, 6, 3, 10, 0, tzinfo=UTC)
SITE = "acme/shop"
HOME = "acme/shop/home"
LEASE = 30.0
SITES = sorted(f"client{n % 7}/site{n:02d}" for n in range(60))


def later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
async def stores(database_url: str) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores on one database, as two processes would have them."""
    first = await Store.open(database_url)
    second = await Store.open(database_url)
    try:
        yield first, second
    finally:
        await second.close()
        await first.close()


# --- incidents, results and notifications to work with ---


def probe(at: datetime, outcome: Outcome = Outcome.HTTP_5XX) -> ProbeResult:
    evidence = Evidence(url="https://shop.acme.example/", status=500, error=outcome.value)
    return ProbeResult(outcome=outcome, started_at=at, latency=0.2, evidence=evidence)


def failing(key: str, at: datetime) -> CheckState:
    return CheckState(
        key=key,
        recent=(Severity.CRITICAL,) * 3,
        failing=True,
        severity=Severity.CRITICAL,
        last_outcome=Outcome.HTTP_5XX,
        last_result_at=at,
        since=at,
    )


def opening(key: str, at: datetime) -> Transition:
    site = key.rpartition("/")[0]
    incident = Incident(
        id=None,
        client=site.partition("/")[0],
        site=site,
        title=f"{site} is down",
        severity=Severity.CRITICAL,
        status=IncidentStatus.OPEN,
        opened_at=at,
        failing_checks=frozenset({key}),
        checks=frozenset({key}),
    )
    return Transition(
        state=failing(key, at),
        incident=incident,
        incident_changed=True,
        timeline=(TimelineEntry(at=at, kind=TimelineKind.OPENED, message="opened", check=key),),
    )


async def open_incident(store: Store, key: str = HOME, *, owner: str | None = None) -> Incident:
    stored = await store.record(
        check_key=key,
        result=probe(T0),
        transition=opening(key, T0),
        previous_state=CheckState(key=key),
        owner=owner,
    )
    assert stored is not None and stored.id is not None
    return stored


def ack(at: datetime) -> tuple[TimelineEntry]:
    return (TimelineEntry(at=at, kind=TimelineKind.ACKNOWLEDGED, message="taken"),)


def email(incident_id: int, tag: str) -> OutgoingEmail:
    root = f"<incident-{incident_id}.client@agency.example>"
    return OutgoingEmail(
        kind=MessageKind.UPDATE,
        audience=Audience.CLIENT,
        incident_id=incident_id,
        to=("ops@acme.example",),
        subject=f"[INC-{incident_id}] update {tag}",
        text=f"Update {tag}.",
        html=f"<p>Update {tag}.</p>",
        message_id=f"<incident-{incident_id}.{tag}@agency.example>",
        in_reply_to=root,
        references=(root,),
    )


async def queue_mails(store: Store, count: int, *, at: datetime = T0) -> list[int]:
    """Open an incident and queue `count` client mails about it; returns their outbox ids."""
    incident = await open_incident(store)
    assert incident.id is not None
    incident_id = incident.id

    def notify(current: Incident) -> tuple[Incident, Sequence[Outgoing]]:
        return current, [email(incident_id, f"m{n}") for n in range(count)]

    await store.save_incident(incident, timeline=ack(at), notify=notify, now=at)
    return [item.id for item in await store.outbox_for_incident(incident_id)]


# --- site leases ---


async def test_concurrent_claims_split_the_sites_and_cover_them_all(
    stores: tuple[Store, Store],
) -> None:
    workers = [(f"w{n}", stores[n % 2]) for n in range(6)]
    share = math.ceil(len(SITES) / len(workers))

    async def claim(worker: str, store: Store, at: datetime) -> SiteLeases:
        return await store.claim_sites(
            worker=worker, location="eu", sites=SITES, now=at, lease=LEASE, limit=share
        )

    held: dict[str, frozenset[str]] = {}
    # Rounds, as processes run them; a claim that lost a race for a row comes back with
    # fewer than its share, and the next round fills it in.
    for round_ in range(5):
        at = later(round_)
        results = await asyncio.gather(*(claim(worker, store, at) for worker, store in workers))
        held = {worker: result.held for (worker, _), result in zip(workers, results, strict=True)}
        every = [site for sites in held.values() for site in sites]
        assert len(every) == len(set(every)), "a site is held by two workers"
        assert all(len(sites) <= share for sites in held.values())
        if set(every) == set(SITES):
            break
    assert set().union(*held.values()) == set(SITES)
    assert all(len(sites) == share for sites in held.values())

    # What each was told is what the database says.
    for worker, store in workers:
        assert await store.held_sites(worker=worker) == held[worker]

    # A renewal round changes nothing and acquires nothing.
    results = await asyncio.gather(*(claim(worker, store, later(10)) for worker, store in workers))
    for (worker, _), result in zip(workers, results, strict=True):
        assert result == SiteLeases(held=held[worker], acquired=frozenset())


async def test_a_dead_workers_sites_are_taken_after_its_lease_and_renewal_keeps_them(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    sites = SITES[:5]

    async def claim(store: Store, worker: str, at: datetime) -> SiteLeases:
        return await store.claim_sites(
            worker=worker, location=worker, sites=sites, now=at, lease=LEASE, limit=10
        )

    first = await claim(a, "a", T0)
    assert first == SiteLeases(held=frozenset(sites), acquired=frozenset(sites))
    assert (await claim(b, "b", later(10))).held == frozenset()
    # Renewed at 20 s: good until 50 s, past the first lease's end at 30 s.
    assert await claim(a, "a", later(20)) == SiteLeases(held=frozenset(sites), acquired=frozenset())
    assert (await claim(b, "b", later(40))).held == frozenset()

    # "a" stops renewing (it died): one lease period after its last renewal, "b" takes all.
    assert (await claim(b, "b", later(49.9))).held == frozenset()
    taken = await claim(b, "b", later(50))
    assert taken == SiteLeases(held=frozenset(sites), acquired=frozenset(sites))
    # "a" comes back to life: everything is held by a live lease of "b".
    assert await claim(a, "a", later(51)) == SiteLeases(held=frozenset(), acquired=frozenset())


async def test_an_expired_lease_nobody_took_is_renewed_but_one_taken_back_is_acquired(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    site = [SITE]

    async def claim(store: Store, worker: str, at: datetime) -> SiteLeases:
        return await store.claim_sites(
            worker=worker, location="eu", sites=site, now=at, lease=LEASE, limit=1
        )

    await claim(a, "a", T0)
    # Paused past its lease, but nobody took the site: nobody else wrote it, so it is still
    # held throughout, not acquired again.
    assert await claim(a, "a", later(100)) == SiteLeases(held=frozenset(site), acquired=frozenset())
    # Paused again; this time "b" took the site, then died too. "a" takes it back between
    # two of its rounds: acquired, so it reloads what "b" wrote.
    assert (await claim(b, "b", later(200))).acquired == frozenset(site)
    assert await claim(a, "a", later(300)) == SiteLeases(
        held=frozenset(site), acquired=frozenset(site)
    )


async def test_release_and_retire_free_sites_at_once(stores: tuple[Store, Store]) -> None:
    a, b = stores
    sites = SITES[:6]
    await a.heartbeat(worker="a", location="eu", now=T0, ttl=LEASE)
    await a.claim_sites(worker="a", location="eu", sites=sites, now=T0, lease=LEASE, limit=6)

    assert await a.release_sites(worker="a", sites=[*sites[:2], "not/held"]) == set(sites[:2])
    # Long before the lease would end.
    got = await b.claim_sites(
        worker="b", location="us", sites=sites, now=later(1), lease=LEASE, limit=6
    )
    assert got.held == frozenset(sites[:2])
    assert await b.release_sites(worker="b", sites=sites[2:]) == set()  # not its to free

    await a.retire_worker(worker="a")
    got = await b.claim_sites(
        worker="b", location="us", sites=sites, now=later(2), lease=LEASE, limit=6
    )
    assert got == SiteLeases(held=frozenset(sites), acquired=frozenset(sites[2:]))
    live = await b.heartbeat(worker="b", location="us", now=later(2), ttl=LEASE)
    assert [w.id for w in live] == ["b"]


async def test_claiming_respects_the_limit_and_drops_sites_no_longer_wanted(
    stores: tuple[Store, Store],
) -> None:
    a, _ = stores
    got = await a.claim_sites(
        worker="a", location="eu", sites=SITES[:10], now=T0, lease=LEASE, limit=4
    )
    assert got.held == frozenset(SITES[:4])  # the first by site key
    # More than the limit is never released by a claim (release_sites does that)...
    got = await a.claim_sites(
        worker="a", location="eu", sites=SITES[:10], now=later(1), lease=LEASE, limit=2
    )
    assert got.held == frozenset(SITES[:4])
    # ...but a site gone from `sites` (e.g. from the configuration) is given up.
    got = await a.claim_sites(
        worker="a", location="eu", sites=SITES[1:10], now=later(2), lease=LEASE, limit=3
    )
    assert got.held == frozenset(SITES[1:4])
    assert await a.held_sites(worker="a") == set(SITES[1:4])
    with pytest.raises(ValueError, match="lease"):
        await a.claim_sites(worker="a", location="eu", sites=SITES, now=T0, lease=0, limit=1)


async def test_heartbeats_list_the_live_workers_and_forget_the_dead(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    await a.heartbeat(worker="a", location="eu", now=T0, ttl=10)
    live = await b.heartbeat(worker="b", location="us", now=later(5), ttl=10)
    assert [(w.id, w.location) for w in live] == [("a", "eu"), ("b", "us")]
    assert live[0].expires_at == later(10) and live[1].started_at == later(5)

    live = await a.heartbeat(worker="a", location="eu", now=later(12), ttl=10)
    assert [w.id for w in live] == ["a", "b"]
    assert live[0].started_at == T0 and live[0].heartbeat_at == later(12)  # one run
    live = await a.heartbeat(worker="a", location="eu", now=later(16), ttl=10)
    assert [w.id for w in live] == ["a"]  # "b" last beat at 5 s
    assert (await a.count_rows())["workers"] == 1


# --- fencing writes by the lease ---


async def test_writes_fenced_by_a_lost_lease_write_nothing(stores: tuple[Store, Store]) -> None:
    a, b = stores
    await a.claim_sites(worker="a", location="eu", sites=[SITE], now=T0, lease=LEASE, limit=1)
    incident = await open_incident(a, owner="a")
    assert incident.version == 1

    # "a" stalls past its lease; "b" takes the site over.
    await b.claim_sites(
        worker="b", location="us", sites=[SITE], now=later(LEASE), lease=LEASE, limit=1
    )
    before = await a.count_rows()
    checkout = f"{SITE}/checkout"
    with pytest.raises(LeaseLost) as lost:
        await a.record(
            check_key=checkout,
            result=probe(later(31)),
            transition=Transition(state=failing(checkout, later(31)), incident=incident),
            previous_state=CheckState(key=checkout),
            owner="a",
        )
    assert (lost.value.site, lost.value.owner) == (SITE, "a")
    with pytest.raises(LeaseLost):
        await a.save_incident(incident, timeline=ack(later(31)), now=later(31), owner="a")
    assert await a.count_rows() == before
    assert await a.load_check_states([checkout]) == {}
    assert await a.get_incident(incident.id or 0) == incident

    # The new owner writes; a write without an owner is not fenced at all.
    saved = await b.save_incident(incident, timeline=ack(later(32)), now=later(32), owner="b")
    assert saved.version == 2
    other = await open_incident(a, "beta/blog/home")
    assert other.site == "beta/blog"
    with pytest.raises(ValueError, match="client/site/check"):
        await b.record(
            check_key="nosite",
            result=probe(T0),
            transition=Transition(state=CheckState(key="nosite"), incident=None),
            previous_state=CheckState(key="nosite"),
            owner="b",
        )


async def backends_blocked_by(store: Store, pid: int) -> int:
    async with store.engine.connect() as conn:
        query = sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"
        )
        return int((await conn.execute(query, {"pid": pid})).scalar_one())


async def test_a_takeover_and_a_fenced_write_exclude_each_other(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    postgres = a.engine.dialect.name == "postgresql"
    await a.claim_sites(worker="a", location="eu", sites=[SITE], now=T0, lease=1, limit=1)
    checkout = f"{SITE}/checkout"

    # 1. "b" takes the expired lease in a transaction still open when "a" writes: the write
    # waits for it, then finds the lease gone.
    async with b.engine.connect() as conn:
        await conn.execution_options(**{SQLITE_BEGIN: "BEGIN IMMEDIATE"})
        async with conn.begin():
            taken = await leases.claim(
                conn, worker="b", location="us", sites=[SITE], now=later(100), lease=1, limit=1
            )
            assert taken.acquired == {SITE}
            writing = asyncio.create_task(
                a.record(
                    check_key=checkout,
                    result=probe(later(100)),
                    transition=Transition(state=failing(checkout, later(100)), incident=None),
                    previous_state=CheckState(key=checkout),
                    owner="a",
                )
            )
            if postgres:
                pid = (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
                await eventually(lambda: backends_blocked_by(b, pid))
            assert not writing.done()
    with pytest.raises(LeaseLost):
        await writing
    assert await a.load_check_states([checkout]) == {}

    # 2. "a" holds its lease again and is writing when "b" tries to take it (expired): on
    # PostgreSQL the claim skips the locked row at once; on SQLite it waits for the write.
    await b.release_sites(worker="b", sites=[SITE])
    await a.claim_sites(worker="a", location="eu", sites=[SITE], now=later(200), lease=1, limit=1)
    async with a.engine.connect() as conn:
        await conn.execution_options(**{SQLITE_BEGIN: "BEGIN IMMEDIATE"})
        async with conn.begin():
            await leases.fence(conn, site=SITE, owner="a")
            claiming = asyncio.create_task(
                b.claim_sites(
                    worker="b", location="us", sites=[SITE], now=later(300), lease=1, limit=1
                )
            )
            if postgres:
                assert (await claiming).held == frozenset()
            else:
                assert not claiming.done()
    if not postgres:
        assert (await claiming).held == {SITE}  # after the write, which it waited for
    else:
        again = await b.claim_sites(
            worker="b", location="us", sites=[SITE], now=later(300), lease=1, limit=1
        )
        assert again.held == {SITE}


# --- incident versions (compare-and-set) ---


async def test_two_saves_from_one_stale_copy_the_second_is_refused(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    opened = await open_incident(a)
    assert opened.version == 1

    acked = dataclasses.replace(opened, acknowledged_by="alice", responded_at=later(60))
    saved = await a.save_incident(acked, timeline=ack(later(60)), now=later(60))
    assert saved.version == 2
    assert (await b.load_open_incident(SITE) or opened).version == 2

    before = await b.count_rows()
    stale = dataclasses.replace(opened, acknowledged_by="bob", responded_at=later(61))
    with pytest.raises(StaleIncident) as refused:
        await b.save_incident(stale, timeline=ack(later(61)), now=later(61))
    assert (refused.value.incident_id, refused.value.version) == (opened.id, 1)
    # record() of a result against the stale copy is refused the same way, state included.
    resolved = dataclasses.replace(
        opened, status=IncidentStatus.RESOLVED, resolved_at=later(62), failing_checks=frozenset()
    )
    with pytest.raises(StaleIncident):
        await b.record(
            check_key=HOME,
            result=probe(later(62), Outcome.OK),
            transition=Transition(
                state=CheckState(key=HOME, recent=(None,), successes=2),
                incident=resolved,
                incident_changed=True,
            ),
            previous_state=failing(HOME, T0),
        )
    assert await b.count_rows() == before
    current = await b.get_incident(opened.id or 0)
    assert current is not None and current.acknowledged_by == "alice" and current.is_open
    assert (await b.load_check_states([HOME]))[HOME] == failing(HOME, T0)


async def test_concurrent_saves_from_one_copy_let_exactly_one_through(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    opened = await open_incident(a)

    async def save(store: Store, who: str) -> str:
        changed = dataclasses.replace(opened, acknowledged_by=who, responded_at=later(5))
        try:
            await store.save_incident(changed, timeline=ack(later(5)), now=later(5))
        except StaleIncident:
            return "stale"
        return who

    results = await asyncio.gather(*(save((a, b)[n % 2], f"op{n}") for n in range(8)))
    winners = [r for r in results if r != "stale"]
    assert len(winners) == 1
    stored = await a.get_incident(opened.id or 0)
    assert stored is not None and (stored.acknowledged_by, stored.version) == (winners[0], 2)
    assert len(await a.timeline(opened.id or 0)) == 2  # opened + the one acknowledgement


async def test_the_open_incident_and_chosen_states_load_for_an_adopted_site(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    opened = await open_incident(a)
    await open_incident(a, "beta/blog/home")
    assert await b.load_open_incident(SITE) == opened
    assert await b.load_open_incident("gamma/none") is None
    keys = [HOME, "beta/blog/home", "acme/shop/missing"]
    assert set(await b.load_check_states(keys)) == {HOME, "beta/blog/home"}
    assert set(await b.load_check_states([HOME])) == {HOME}
    assert await b.load_check_states([]) == {}
    many = [f"x/y/c{n}" for n in range(1200)] + [HOME]  # more than one statement's worth
    assert set(await b.load_check_states(many)) == {HOME}


# --- outbox claims ---


async def test_concurrent_outbox_claims_are_disjoint(stores: tuple[Store, Store]) -> None:
    a, b = stores
    ids = await queue_mails(a, 30)
    assert len(ids) == 30

    async def claim(n: int) -> list[OutboxItem]:
        store = (a, b)[n % 2]
        return await store.claim_outbox(worker=f"w{n}", now=later(1), limit=4, claim_for=60)

    batches = await asyncio.gather(*(claim(n) for n in range(10)))
    claimed = [item.id for batch in batches for item in batch]
    assert len(claimed) == len(set(claimed)) == 30
    assert set(claimed) == set(ids)
    for n, batch in enumerate(batches):
        assert all(item.claimed_by == f"w{n}" for item in batch)
        assert all(item.claimed_until == later(61) for item in batch)
        assert [i.id for i in batch] == sorted(i.id for i in batch)  # oldest due first
    assert await a.claim_outbox(worker="late", now=later(2), limit=50, claim_for=60) == []


async def test_expired_outbox_claims_return_and_marks_end_claims(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    first, second, third = await queue_mails(a, 3)
    taken = await a.claim_outbox(worker="a", now=later(1), limit=10, claim_for=10)
    assert [i.id for i in taken] == [first, second, third]

    # "a" renews what it still works on; a renewal by another worker renews nothing.
    assert await a.extend_outbox_claims(
        worker="a", item_ids=[first, second], now=later(9), claim_for=10
    ) == {first, second}
    assert (
        await b.extend_outbox_claims(worker="b", item_ids=[first], now=later(9), claim_for=10)
        == set()
    )
    await a.mark_sent(first, at=later(9))
    sent = await a.outbox_for_incident(taken[0].incident_id)
    assert (sent[0].status, sent[0].claimed_by, sent[0].claimed_until) == (
        OutboxStatus.SENT,
        None,
        None,
    )

    # At 11 s only the unrenewed claim has run out ("a" died while sending it).
    again = await b.claim_outbox(worker="b", now=later(11), limit=10, claim_for=10)
    assert [i.id for i in again] == [third]
    assert (
        await a.extend_outbox_claims(worker="a", item_ids=[third], now=later(12), claim_for=10)
        == set()
    )
    assert [
        i.id for i in await b.claim_outbox(worker="b", now=later(20), limit=10, claim_for=10)
    ] == [second]

    # A retried row is due later and unclaimed; retiring hands claims back at once.
    await b.mark_retry(third, error="421", next_attempt_at=later(30))
    assert await a.claim_outbox(worker="a", now=later(21), limit=10, claim_for=10) == []
    await b.retire_worker(worker="b")
    assert [
        i.id for i in await a.claim_outbox(worker="a", now=later(21), limit=10, claim_for=10)
    ] == [second]
    assert [
        i.id for i in await a.claim_outbox(worker="c", now=later(30), limit=10, claim_for=10)
    ] == [third]


async def test_two_outbox_workers_deliver_each_mail_once(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    ids = await queue_mails(a, 12, at=datetime.now(UTC) - timedelta(seconds=1))
    queued = await a.due_outbox(now=datetime.now(UTC))
    assert sorted(item.id for item in queued) == sorted(ids)
    inbox = Inbox()
    clock = ShiftedClock(datetime.now(UTC))
    async with smtpd(inbox) as port:
        workers = [
            outbox_worker(store, port=port, clock=clock, worker=f"w{n}", batch=3)
            for n, store in enumerate((a, b, a, b))
        ]

        async def all_sent() -> bool:
            await asyncio.gather(*(worker.deliver_due() for worker in workers))
            counts = await a.outbox_counts()
            return counts["sent"] == len(ids)

        await eventually(all_sent)
    received = sorted(str(m["Message-ID"]) for m in inbox.messages())
    assert received == sorted(_message_id(item) for item in queued)  # each exactly once


def _message_id(item: OutboxItem) -> str:
    assert isinstance(item.message, OutgoingEmail)
    return item.message.message_id


class HeldInbox(Inbox):
    """Accepts mail only once `release` is set: a send that takes as long as the test says."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.arrived = asyncio.Event()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.arrived.set()
        await self.release.wait()
        return await super().handle_DATA(server, session, envelope)


async def test_a_long_send_keeps_its_claim_and_a_dead_workers_claim_runs_out(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    [item_id] = await queue_mails(a, 1, at=datetime.now(UTC) - timedelta(seconds=1))
    inbox = HeldInbox()
    clock = ShiftedClock(datetime.now(UTC))
    async with smtpd(inbox) as port:
        slow = outbox_worker(a, port=port, clock=clock, worker="slow", claim_for=0.3)
        other = outbox_worker(b, port=port, clock=clock, worker="other", claim_for=0.3)
        sending = asyncio.create_task(slow.deliver_due())
        await asyncio.wait_for(inbox.arrived.wait(), 10)
        [claimed] = await a.due_outbox(now=clock.now())
        assert claimed.claimed_by == "slow" and claimed.claimed_until is not None
        first_until = claimed.claimed_until

        async def renewed_past_a_claim_period() -> bool:
            assert await other.deliver_due() == 0  # never taken from a live sender
            [row] = await b.due_outbox(now=clock.now())
            assert row.claimed_until is not None
            return row.claimed_until > first_until + timedelta(seconds=0.6)

        await eventually(renewed_past_a_claim_period)
        inbox.release.set()
        assert await sending == 1
        assert len(inbox.received) == 1

        # A worker that claims and dies: its row waits for the claim to run out, no longer.
        ids = await queue_more(a, ["late"])
        dead = await a.claim_outbox(worker="dead", now=clock.now(), limit=10, claim_for=60)
        assert [i.id for i in dead] == ids
        assert await other.deliver_due() == 0
        clock.advance(timedelta(seconds=61))
        assert await other.deliver_due() == 1
    assert len(inbox.received) == 2
    assert [i.status for i in await a.outbox_for_incident(dead[0].incident_id)] == [
        OutboxStatus.SENT,
        OutboxStatus.SENT,
    ]
    assert item_id not in ids


async def test_a_worker_never_sends_a_row_whose_claim_ran_out_mid_batch(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    first, second = await queue_mails(a, 2, at=datetime.now(UTC) - timedelta(seconds=1))
    inbox = HeldInbox()
    clock = ShiftedClock(datetime.now(UTC))
    async with smtpd(inbox) as port:
        # Renewals come every 20 s: none within this test, so the claim simply runs out.
        slow = outbox_worker(a, port=port, clock=clock, worker="slow", claim_for=60)
        sending = asyncio.create_task(slow.deliver_due())
        await asyncio.wait_for(inbox.arrived.wait(), 10)  # the first mail, held mid-send
        # The sender stalls past its claim, and another worker takes the rows meanwhile.
        clock.advance(timedelta(seconds=61))
        taken = await b.claim_outbox(worker="other", now=clock.now(), limit=10, claim_for=60)
        assert second in {item.id for item in taken}
        inbox.release.set()
        assert await sending == 2
    assert len(inbox.received) == 1  # the second is the other worker's to send, not ours
    rows = {item.id: item for item in await a.outbox_for_incident(taken[0].incident_id)}
    assert rows[first].status is OutboxStatus.SENT
    assert (rows[second].status, rows[second].claimed_by) == (OutboxStatus.PENDING, "other")


async def queue_more(store: Store, tags: list[str]) -> list[int]:
    [incident] = (await store.load_open_incidents()).values()
    assert incident.id is not None
    incident_id = incident.id
    known = {item.id for item in await store.outbox_for_incident(incident_id)}

    def notify(current: Incident) -> tuple[Incident, Sequence[Outgoing]]:
        return current, [email(incident_id, tag) for tag in tags]

    now = datetime.now(UTC) - timedelta(seconds=1)
    await store.save_incident(incident, timeline=ack(now), notify=notify, now=now)
    return [i.id for i in await store.outbox_for_incident(incident_id) if i.id not in known]


def outbox_worker(
    store: Store,
    *,
    port: int,
    clock: ShiftedClock,
    worker: str,
    batch: int = 50,
    claim_for: float = 5.0,
) -> OutboxWorker:
    settings = SmtpSettings(
        host="127.0.0.1",
        port=port,
        security="none",
        username=None,
        password=None,
        timeout=5.0,
        sender="Agency Support <support@agency.example>",
    )
    return OutboxWorker(
        store=store,
        mailer=SmtpMailer(settings),
        webhooks=None,
        clock=clock,
        metrics=Metrics(CollectorRegistry()),
        batch=batch,
        worker=worker,
        claim_for=claim_for,
    )


# --- confirmations ---


async def test_confirmations_go_to_other_locations_and_come_back(
    stores: tuple[Store, Store],
) -> None:
    eu, us = stores
    request_id = await eu.request_confirmation(
        check_key=HOME, worker="eu-1", location="eu", now=T0, ttl=60
    )
    # Not to a worker of the asking location, whichever store it uses.
    assert (
        await us.claim_confirmations(
            worker="eu-2", location="eu", now=later(1), limit=10, claim_for=20
        )
        == []
    )
    [request] = await us.claim_confirmations(
        worker="us-1", location="us", now=later(1), limit=10, claim_for=20
    )
    assert (request.id, request.check_key, request.requested_by) == (request_id, HOME, "eu-1")
    assert (request.requested_location, request.expires_at) == ("eu", later(60))
    assert request.claimed_until == later(21)
    # Claimed: nobody else takes it until the claim runs out.
    assert (
        await eu.claim_confirmations(
            worker="us-2", location="us", now=later(2), limit=10, claim_for=20
        )
        == []
    )
    assert await eu.confirmation_answer(request_id) is None

    [again] = await eu.claim_confirmations(
        worker="us-2", location="us", now=later(21), limit=10, claim_for=20
    )
    assert again.id == request_id
    seen = {"outcome": "ok", "latency": 0.12, "status": 200, "error": None, "location": "us"}
    assert await us.answer_confirmation(
        request_id=request_id, worker="us-1", answer=seen, now=later(22)
    )
    late = {**seen, "outcome": "timeout"}
    assert not await eu.answer_confirmation(
        request_id=request_id, worker="us-2", answer=late, now=later(23)
    )
    answer = await eu.confirmation_answer(request_id)
    assert answer is not None
    assert (answer.request_id, answer.check_key, answer.answered_by) == (request_id, HOME, "us-1")
    assert (answer.answered_at, answer.answer) == (later(22), seen)
    # Answered requests are not handed out again.
    assert (
        await us.claim_confirmations(
            worker="us-3", location="us", now=later(50), limit=10, claim_for=20
        )
        == []
    )
    with pytest.raises(ValueError, match="JSON"):
        await us.answer_confirmation(
            request_id=request_id, worker="us-1", answer={"at": T0}, now=later(22)
        )


async def test_confirmation_claims_are_disjoint_expire_and_are_purged(
    stores: tuple[Store, Store],
) -> None:
    eu, us = stores
    asked = [
        await eu.request_confirmation(
            check_key=f"{SITE}/c{n}", worker="eu-1", location="eu", now=later(n), ttl=60
        )
        for n in range(12)
    ]

    async def claim(n: int) -> list[int]:
        store = (eu, us)[n % 2]
        got = await store.claim_confirmations(
            worker=f"us-{n}", location="us", now=later(30), limit=3, claim_for=10
        )
        return [r.id for r in got]

    batches = await asyncio.gather(*(claim(n) for n in range(6)))
    claimed = [i for batch in batches for i in batch]
    assert len(claimed) == len(set(claimed)) == 12 and set(claimed) == set(asked)

    # Past its expiry a request is not handed out, and purging deletes it.
    await us.retire_worker(worker="us-0")  # its claims go back to pending
    assert [
        r.id
        for r in await us.claim_confirmations(
            worker="ap-1", location="ap", now=later(31), limit=10, claim_for=10
        )
    ] == sorted(batches[0])
    assert (
        await us.claim_confirmations(
            worker="ap-1", location="ap", now=later(200), limit=10, claim_for=10
        )
        == []
    )
    assert await eu.purge_confirmations(before=later(65)) == 5  # expired at 60..64 s
    assert (await eu.count_rows())["confirmations"] == 7
    # A retiring asker takes its requests with it: nobody will read the answers.
    await eu.retire_worker(worker="eu-1")
    assert (await eu.count_rows())["confirmations"] == 0


# --- the migration ---


async def test_0003_upgrades_a_database_at_0002_and_versions_its_incidents(
    database_url: str,
) -> None:
    await database_at(database_url, "0002", old_open_incident(3, opened_at=T0))

    store = await Store.open(database_url)
    try:
        old = await store.load_open_incident(SITE)
        assert old is not None and (old.id, old.version) == (3, 1)
        saved = await store.save_incident(old, timeline=ack(later(1)), now=later(1))
        assert saved.version == 2
        async with store.engine.connect() as conn:
            claims = await conn.execute(sa.select(outbox.c.claimed_by, outbox.c.claimed_until))
            assert claims.all() == []
    finally:
        await store.close()
