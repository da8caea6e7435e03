"""Several `monitor run` processes sharing one PostgreSQL database (issue 6).

Real processes, a real database, a real SMTP server and a loopback target that tells the
processes apart by the source address each one probes from (`--source-address`): the test can
see who probed what. One process is killed with SIGKILL mid-run; its sites must move to the
others within a lease period, and no incident or email may be lost or duplicated.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestServer

from incidents.model import Incident, IncidentStatus, TimelineKind
from monitor.app import running_monitor
from monitor.config import MonitorConfig
from monitor.store import Store
from monitor.store.tables import confirmations, outbox, site_leases, workers
from tests.helpers import Target, eventually
from tests.smtp_helpers import Inbox, smtpd

ROOT = Path(__file__).resolve().parent.parent
CLIENT = "ops@acme.example"
ONCALL = "oncall@agency.example"
LEASE = 2.0

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


@dataclass
class PeerTarget:
    """A loopback site that records which source address asked for which path, and fails
    a path (500) for everyone or for chosen source addresses only."""

    failing: dict[str, set[str] | None] = field(default_factory=dict)  # path -> peers / all
    seen: list[tuple[float, str, str]] = field(default_factory=list)  # (time, path, peer)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        peer = request.remote or "?"
        self.seen.append((time.monotonic(), request.path, peer))
        if request.path in self.failing:
            peers = self.failing[request.path]
            if peers is None or peer in peers:
                return web.Response(status=500, text="broken")
        return web.Response(text="ok")

    def peers_of(self, path: str, *, since: float) -> set[str]:
        return {peer for at, p, peer in self.seen if p == path and at >= since}


def config_yaml(
    *, database_url: str, site_url: str, smtp_port: int, outbox_dir: Path, sites: int
) -> str:
    site_yaml = "".join(
        f"""
      - id: s{i}
        url: {site_url}/s{i}
        checks:
          - {{id: home, url: /s{i}}}"""
        for i in range(sites)
    )
    return f"""
database: {{url: "{database_url}"}}
server: {{port: 0}}
scheduler: {{sla_tick: 100ms}}
cluster: {{lease: {LEASE:g}s}}
defaults: {{interval: 100ms, timeout: 2s, failures_to_open: 2, successes_to_resolve: 2}}
notifications:
  sender: "Agency Support <support@agency.example>"
  smtp: {{host: 127.0.0.1, port: {smtp_port}, security: none, timeout: 2s}}
  outbox_dir: {outbox_dir}
  retry_initial: 100ms
  retry_max: 500ms
  poll_interval: 100ms
oncall:
  emails: [{ONCALL}]
clients:
  - id: acme
    contacts: [{CLIENT}]
    sites:{site_yaml}
"""


@asynccontextmanager
async def monitor_process(
    config: Path, log: IO[bytes], *, worker: str, location: str, source: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "run",
        "--config",
        str(config),
        "--worker-id",
        worker,
        "--location",
        location,
        "--source-address",
        source,
        cwd=ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=log,
        stderr=log,  # a file: a full pipe nobody reads would stall the monitor
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def owners(store: Store) -> dict[str, str | None]:
    """site -> the worker holding a live lease on it (None when free or expired)."""
    async with store.engine.connect() as conn:
        rows = (await conn.execute(sa.select(site_leases))).mappings().all()
    now = time.time()
    return {
        row["site"]: (
            row["owner"]
            if row["owner"] and row["expires_at"] and row["expires_at"].timestamp() > now
            else None
        )
        for row in rows
    }


async def _healthz(log: Path) -> dict[str, object]:
    """The /healthz of the process whose log this is (it names the URL it serves on)."""
    found = re.search(r"serving .* on (http://\S+)", log.read_text())
    assert found, _tail(log)
    async with aiohttp.ClientSession() as session:
        async with session.get(found.group(1) + "/healthz") as response:
            body: dict[str, object] = await response.json()
            return body


async def all_sent(store: Store) -> bool:
    """Some notifications were queued, and every one of them is sent."""
    async with store.engine.connect() as conn:
        rows = (await conn.execute(sa.select(outbox.c.status))).scalars().all()
    return bool(rows) and all(status == "sent" for status in rows)


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


@dataclass
class Cluster:
    target: PeerTarget
    inbox: Inbox
    store: Store
    processes: dict[str, asyncio.subprocess.Process]


@asynccontextmanager
async def cluster(
    database_url: str,
    tmp_path: Path,
    *,
    sites: int,
    members: dict[str, tuple[str, str]],  # worker -> (location, source address)
    confirm: bool = False,
) -> AsyncIterator[Cluster]:
    """A target, an SMTP server, the shared store and one `monitor run` per member; each
    process logs to tmp_path/<worker>.log."""
    target, inbox = PeerTarget(), Inbox()
    async with AsyncExitStack() as stack:
        server = TestServer(target.app(), host="127.0.0.1")
        await server.start_server()
        stack.push_async_callback(server.close)
        smtp_port = await stack.enter_async_context(smtpd(inbox))
        text = config_yaml(
            database_url=database_url,
            site_url=str(server.make_url("")).rstrip("/"),
            smtp_port=smtp_port,
            outbox_dir=tmp_path / "outbox",
            sites=sites,
        )
        if confirm:
            text = text.replace(
                "successes_to_resolve: 2}",
                "successes_to_resolve: 2, confirm_from_other_location: true}",
            )
        config = tmp_path / "monitor.yaml"
        config.write_text(text)
        store = await Store.open(database_url)
        stack.push_async_callback(store.close)
        processes = {}
        for worker, (location, source) in members.items():
            log = stack.enter_context((tmp_path / f"{worker}.log").open("wb"))
            processes[worker] = await stack.enter_async_context(
                monitor_process(config, log, worker=worker, location=location, source=source)
            )
        yield Cluster(target=target, inbox=inbox, store=store, processes=processes)


async def test_processes_share_sites_and_a_killed_one_loses_nothing(
    database_url: str, tmp_path: Path
) -> None:
    sites = 6
    workers = {"w1": "127.0.0.11", "w2": "127.0.0.12", "w3": "127.0.0.13"}
    members = {worker: ("here", source) for worker, source in workers.items()}
    async with cluster(database_url, tmp_path, sites=sites, members=members) as running:
        target, inbox, store = running.target, running.inbox, running.store
        processes = running.processes

        # 1. The sites are split evenly, and each site is probed from one address only.
        async def balanced() -> dict[str, str | None] | None:
            held = await owners(store)
            counts = Counter(held.values())
            fair = len(held) == sites and all(counts[w] == sites // len(workers) for w in workers)
            return held if fair else None

        try:
            held = await eventually(balanced, timeout=30)
        except AssertionError:
            logs = "\n".join(f"--- {w}\n{_tail(tmp_path / f'{w}.log')}" for w in workers)
            raise AssertionError(f"sites never balanced: {await owners(store)}\n{logs}") from None
        for worker in workers:
            # The lease row commits before the process has adopted the site: wait for it.
            async def adopted(log: Path = tmp_path / f"{worker}.log") -> dict[str, object]:
                health = await _healthz(log)
                return health if health["sites_held"] == sites // len(workers) else {}

            health = await eventually(adopted, timeout=10)
            assert health["worker"] == worker and health["location"] == "here", health
            assert health["sites_held"] == sites // len(workers), health
        settled = time.monotonic()
        await eventually(
            lambda: all(target.peers_of(f"/s{i}", since=settled) for i in range(sites))
        )
        for i in range(sites):
            site = f"acme/s{i}"
            owner = held[site]
            assert owner is not None
            assert target.peers_of(f"/s{i}", since=settled) == {workers[owner]}, site

        # 2. Two sites break: one incident each, mails out.
        target.failing["/s0"] = None
        target.failing["/s1"] = None

        async def open_for(names: set[str]) -> bool:
            found = {i.site for i in await store.list_incidents(open_only=True)}
            return found == names

        await eventually(lambda: open_for({"acme/s0", "acme/s1"}), timeout=20)
        # The opening mails are delivered and marked sent before the kill. (A kill in the
        # millisecond between the SMTP server's "250 accepted" and marking the row sent
        # makes another process send that row again after its claim runs out, with the same
        # Message-ID: at-least-once is the most SMTP allows; see README.)
        await eventually(lambda: all_sent(store), timeout=20)

        # 3. SIGKILL the owner of s0 mid-run: its sites move within a lease period.
        victim = held["acme/s0"]
        assert victim is not None
        victim_sites = {site for site, owner in held.items() if owner == victim}
        processes[victim].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        await processes[victim].wait()

        async def taken_over() -> bool:
            now_held = await owners(store)
            return all(now_held.get(site) not in (None, victim) for site in victim_sites)

        await eventually(taken_over, timeout=4 * LEASE, interval=0.05)
        takeover = time.monotonic() - killed_at
        print(f"takeover of {len(victim_sites)} sites after SIGKILL: {takeover:.2f}s")
        # The lease is at most two thirds spent when the owner dies; the next claim comes
        # within a third of it. A little slack for the test's own polling.
        assert takeover <= LEASE + 0.5, f"takeover took {takeover:.2f}s (lease {LEASE}s)"
        moved_at = time.monotonic()
        await eventually(
            lambda: (
                target.peers_of("/s0", since=moved_at)
                and workers[victim] not in target.peers_of("/s0", since=moved_at)
            )
        )

        # 4. Recovery: both incidents resolve, by whoever owns the sites now.
        target.failing.clear()
        await eventually(lambda: open_for(set()), timeout=20)

        await eventually(lambda: all_sent(store), timeout=20)

        # 5. Exactly one incident per broken site, each opened and resolved once; every
        #    notification written once and received once.
        incidents = await store.list_incidents()
        assert sorted(i.site for i in incidents) == ["acme/s0", "acme/s1"]
        for incident in incidents:
            assert incident.status is IncidentStatus.RESOLVED
            assert incident.id is not None
            kinds = Counter(entry.kind.value for entry in await store.timeline(incident.id))
            assert kinds["opened"] == 1 and kinds["resolved"] == 1, kinds
        async with store.engine.connect() as conn:
            rows = (await conn.execute(sa.select(outbox))).mappings().all()
        ids = [m["Message-ID"] for m in inbox.messages()]
        assert len(ids) == len(set(ids)), Counter(ids).most_common(3)
        emails = [row for row in rows if row["channel"] == "email"]
        assert len(ids) == len(emails)
        subjects = [m["Subject"] for m in inbox.messages()]
        assert sum("resolved" in s.lower() for s in subjects) >= 2, subjects
        for worker, process in processes.items():
            if worker != victim:
                assert process.returncode is None, _tail(tmp_path / f"{worker}.log")
                process.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(process.wait(), 15) == 0


async def test_a_failure_seen_from_one_location_only_opens_nothing(
    database_url: str, tmp_path: Path
) -> None:
    addresses = {"east": "127.0.0.21", "west": "127.0.0.22"}
    members = {f"w-{location}": (location, source) for location, source in addresses.items()}
    async with cluster(database_url, tmp_path, sites=1, members=members, confirm=True) as running:
        target, inbox, store = running.target, running.inbox, running.store
        held = await eventually(lambda: _owner_of(store, "acme/s0"), timeout=30)
        owner_location = held.removeprefix("w-")
        other = next(loc for loc in addresses if loc != owner_location)
        # Both processes must be up before the site breaks, or nobody could confirm.
        await eventually(lambda: _workers_alive(store, 2), timeout=30)

        # Broken as seen from the owner's address only: the other location says it is fine.
        target.failing["/s0"] = {addresses[owner_location]}

        async def answered(count: int) -> bool:
            async with store.engine.connect() as conn:
                query = sa.select(sa.func.count()).where(confirmations.c.status == "answered")
                return (await conn.execute(query.select_from(confirmations))).scalar_one() >= count

        await eventually(lambda: answered(3), timeout=30)
        assert await store.list_incidents() == []
        assert inbox.received == []
        log_text = (tmp_path / f"w-{owner_location}.log").read_text()
        assert "discarded" in log_text and other in log_text

        # Broken for everyone: the other location confirms and the incident opens.
        target.failing["/s0"] = None
        incidents = await eventually(lambda: store.list_incidents(open_only=True), timeout=30)
        timeline = await store.timeline(incidents[0].id or 0)
        errors = " ".join(str((entry.evidence or {}).get("error")) for entry in timeline)
        assert f"confirmed from {other}" in errors, errors


async def _owner_of(store: Store, site: str) -> str | None:
    return (await owners(store)).get(site)


async def _workers_alive(store: Store, count: int) -> bool:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(sa.select(workers.c.expires_at))).scalars().all()
    return sum(1 for expires in rows if expires and expires.timestamp() > time.time()) >= count


async def test_an_action_through_a_process_that_does_not_own_the_site_is_kept(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An operator acknowledges through process B an incident that process A manages. A's
    copy is then stale: its next write (the resolution) must be refused by the row's
    version, redone on the stored incident, and keep the acknowledgement."""
    caplog.set_level(logging.INFO, logger="monitor")
    target = Target()
    target.set("/", status=500)
    server = TestServer(target.app(), host="127.0.0.1")
    await server.start_server()

    def config(worker: str) -> MonitorConfig:
        return MonitorConfig.model_validate(
            {
                "database": {"url": database_url},
                "server": {"port": 0},
                "scheduler": {"sla_tick": "100ms"},
                "cluster": {"worker_id": worker, "lease": "2s"},
                "defaults": {"interval": "100ms", "failures_to_open": 2},
                "notifications": {"outbox_dir": str(tmp_path / "outbox")},
                "clients": [
                    {
                        "id": "acme",
                        "contacts": ["ops@acme.example"],
                        "sites": [
                            {
                                "id": "shop",
                                "url": str(server.make_url("/")),
                                "checks": [{"id": "home", "url": "/"}],
                            }
                        ],
                    }
                ],
            }
        )

    try:
        async with running_monitor(config("a")) as a, running_monitor(config("b")) as b:
            assert a.monitor.ownership.held == {"acme/shop"}
            assert b.monitor.ownership.held == set()
            opened = await eventually(lambda: a.monitor.open_incidents(), timeout=10)
            incident_id = opened[0].id
            assert incident_id is not None
            # B answers for every site: the queue comes from the database.
            assert [i.id for i in await b.monitor.desk.queue()] == [incident_id]

            acked = await b.monitor.desk.acknowledge(incident_id, by="sam")
            assert acked.acknowledged_by == "sam"

            target.set("/", status=200)

            async def resolved() -> Incident | None:
                stored = await a.store.get_incident(incident_id)
                return stored if stored and not stored.is_open else None

            final = await eventually(resolved, timeout=10)
            assert final.acknowledged_by == "sam"
            assert final.responded_at == acked.responded_at
            kinds = [entry.kind for entry in await a.store.timeline(incident_id)]
            assert kinds.count(TimelineKind.ACKNOWLEDGED) == 1
            assert kinds.count(TimelineKind.RESOLVED) == 1
            assert "was changed elsewhere" in caplog.text
    finally:
        await server.close()
