"""Issue 11, own-connectivity guard, end to end: real loopback targets and a canary that stop
at once, a real SMTP server, the clock moved past a mass failure's hold."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from monitor.app import Running, running_monitor
from monitor.config import MonitorConfig, load_config_text
from monitor.store import OutboxStatus
from tests.helpers import ShiftedClock, Target, eventually, free_port
from tests.smtp_helpers import Inbox, mails, smtpd

# Monday 23 November 2026, 10:00 in London: inside business hours.
MONDAY_10 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
ONCALL = "oncall@agency.example"
CLIENT = "ops@acme.example"


class Loopback:
    """A Target served on a fixed 127.0.0.1 port that can be stopped (connections refused)
    and started again on the same port."""

    def __init__(self) -> None:
        self.target = Target()
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._runner = web.AppRunner(self.target.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@asynccontextmanager
async def loopbacks(count: int) -> AsyncIterator[list[Loopback]]:
    servers = [Loopback() for _ in range(count)]
    await asyncio.gather(*(server.start() for server in servers))
    try:
        yield servers
    finally:
        await asyncio.gather(*(server.stop() for server in servers))


def config_yaml(
    *,
    sites: list[str],
    database: str,
    smtp_port: int,
    tmp_path: Path,
    canary: str | None = None,
    hook_url: str | None = None,
    hold: str = "5m",
) -> str:
    site_yaml = "".join(
        f"""
      - id: s{index}
        url: {url}
        checks:
          - id: home
"""
        for index, url in enumerate(sites)
    )
    canaries = (
        f"canaries:\n  - {{name: uplink, url: '{canary}/', interval: 200ms, timeout: 1s}}\n"
        if canary
        else ""
    )
    return f"""
database: {{url: "{database}"}}
server: {{port: 0}}
scheduler: {{sla_tick: 100ms}}
defaults: {{interval: 100ms, timeout: 1s, failures_to_open: 2, successes_to_resolve: 2}}
notifications:
  sender: "Agency Support <support@agency.example>"
  smtp: {{host: 127.0.0.1, port: {smtp_port}, security: none, timeout: 2s}}
  outbox_dir: {tmp_path / "outbox"}
  retry_initial: 100ms
  retry_max: 500ms
  poll_interval: 100ms
oncall:
  emails: [{ONCALL}]
{f'  webhook: {{url: "{hook_url}"}}' if hook_url else ""}
mass_failure: {{sites: 5, hold: {hold}}}
{canaries}clients:
  - id: acme
    name: Acme Ltd
    plan: standard
    contacts: [{CLIENT}]
    business_hours: {{timezone: Europe/London}}
    sites:{site_yaml}
"""


async def healthz(running: Running) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{running.url}/healthz") as response,
    ):
        body: dict[str, Any] = await response.json()
        return body


def sample(running: Running, name: str, labels: dict[str, str] | None = None) -> float:
    return running.registry.get_sample_value(name, labels or {}) or 0.0


def discarded(running: Running) -> float:
    return sample(running, "monitor_probe_results_discarded_total", {"reason": "connectivity"})


async def all_healthy(running: Running) -> bool:
    states = [running.monitor.check_state(check.key) for check in running.monitor.checks]
    return all(state is not None and state.last_outcome == "ok" for state in states)


async def outbox_settled(running: Running) -> bool:
    return (await running.store.outbox_counts())["pending"] == 0


# --- canaries -------------------------------------------------------------------------------


@pytest.fixture
async def pager(aiohttp_server: Any) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
    """The on-call webhook: on the test's own server, which the canary outage leaves up."""
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append({"body": await request.json(), "key": request.headers["Idempotency-Key"]})
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", hook)
    server: TestServer = await aiohttp_server(app)
    yield received, str(server.make_url("/hook"))


def events(pages: list[dict[str, Any]]) -> list[str]:
    return [page["body"]["event"] for page in pages]


async def test_everything_unreachable_at_once_pages_oncall_once_and_opens_nothing(
    tmp_path: Path, pager: tuple[list[dict[str, Any]], str]
) -> None:
    pages, hook_url = pager
    inbox = Inbox()
    database = f"sqlite+aiosqlite:///{tmp_path}/m.db"
    async with smtpd(inbox) as smtp_port, loopbacks(4) as servers:
        canary, *targets = servers
        config = load_config_text(
            config_yaml(
                sites=[t.url for t in targets],
                database=database,
                smtp_port=smtp_port,
                tmp_path=tmp_path,
                canary=canary.url,
                hook_url=hook_url,
            )
        )
        async with running_monitor(config, clock=ShiftedClock(MONDAY_10)) as running:
            await eventually(lambda: all_healthy(running))
            await eventually(
                lambda: sample(running, "monitor_canary_up", {"canary": "uplink"}) == 1
            )
            assert (await healthz(running))["connectivity"] == "up"

            # The monitor's uplink goes: every target and the canary at the same moment.
            await asyncio.gather(*(server.stop() for server in servers))
            [page] = await eventually(lambda: mails(inbox, to=ONCALL, subject="lost connect"))
            await eventually(lambda: events(pages) == ["connectivity_lost"])
            health = await eventually(
                lambda: _when(healthz(running), lambda h: h["status"] == "degraded")
            )
            assert health["connectivity"] == "lost"
            assert health["canaries"] == {"uplink": False}
            assert "connectivity lost: every canary fails" in health["reasons"]
            assert sample(running, "monitor_connectivity_lost") == 1
            assert sample(running, "monitor_canary_up", {"canary": "uplink"}) == 0

            # Many rounds of failures (failures_to_open is 2) are discarded, none counted.
            await eventually(lambda: discarded(running) >= 10 * len(targets))
            assert await running.store.list_incidents() == []
            assert all(
                (state := running.monitor.check_state(check.key)) is not None
                and state.last_outcome == "ok"
                for check in running.monitor.checks
            )

            # The uplink returns: one note to on-call, and the sites are simply healthy.
            await asyncio.gather(*(server.start() for server in servers))
            [note] = await eventually(lambda: mails(inbox, to=ONCALL, subject="is back"))
            assert note["In-Reply-To"] == page["Message-ID"]
            await eventually(lambda: _when(healthz(running), lambda h: h["status"] == "ok"))
            before = sum(t.target.hits.get("/", 0) for t in targets)
            await eventually(
                lambda: sum(t.target.hits.get("/", 0) for t in targets) >= before + 3 * 3
            )
            await eventually(lambda: outbox_settled(running))
            assert await running.store.list_incidents() == []
            assert mails(inbox, to=CLIENT) == []
            assert len(mails(inbox, to=ONCALL)) == 2  # the page and the note, nothing else
            assert events(pages) == ["connectivity_lost", "connectivity_restored"]
            assert sample(running, "monitor_connectivity_lost") == 0


async def test_a_restart_while_connectivity_is_lost_does_not_page_again(tmp_path: Path) -> None:
    inbox = Inbox()
    database = f"sqlite+aiosqlite:///{tmp_path}/m.db"
    async with smtpd(inbox) as smtp_port, loopbacks(2) as servers:
        canary, target = servers
        config = load_config_text(
            config_yaml(
                sites=[target.url],
                database=database,
                smtp_port=smtp_port,
                tmp_path=tmp_path,
                canary=canary.url,
            )
        )
        async with running_monitor(config, clock=ShiftedClock(MONDAY_10)) as running:
            await eventually(lambda: all_healthy(running))
            await asyncio.gather(canary.stop(), target.stop())
            [page] = await eventually(lambda: mails(inbox, to=ONCALL, subject="lost connect"))

        # Started again, still without connectivity: it knows it paged already.
        async with running_monitor(config, clock=ShiftedClock(MONDAY_10)) as running:
            assert (await healthz(running))["connectivity"] == "lost"
            await eventually(lambda: discarded(running) >= 5)
            await eventually(
                lambda: (
                    sample(running, "monitor_canary_up", {"canary": "uplink"}) == 0
                    and discarded(running) >= 10
                )
            )
            await eventually(lambda: outbox_settled(running))
            assert len(mails(inbox, to=ONCALL, subject="lost connect")) == 1
            await asyncio.gather(canary.start(), target.start())
            [note] = await eventually(lambda: mails(inbox, to=ONCALL, subject="is back"))
            assert note["In-Reply-To"] == page["Message-ID"]
            assert await running.store.list_incidents() == []


# --- mass failure without canaries ----------------------------------------------------------


async def six_targets(aiohttp_server: Any) -> list[tuple[Target, str]]:
    out = []
    for _ in range(6):
        target = Target()
        server: TestServer = await aiohttp_server(target.app())
        out.append((target, str(server.make_url("")).rstrip("/")))
    return out


def six_sites_config(
    targets: list[tuple[Target, str]], *, smtp_port: int, tmp_path: Path
) -> MonitorConfig:
    """A site per target and no canaries, so that mass failures are told by their number."""
    return load_config_text(
        config_yaml(
            sites=[url for _, url in targets],
            database=f"sqlite+aiosqlite:///{tmp_path}/m.db",
            smtp_port=smtp_port,
            tmp_path=tmp_path,
        )
    )


def fail_every_site(targets: list[tuple[Target, str]]) -> None:
    for target, _ in targets:
        target.set("/", status=500)


async def test_six_sites_failing_at_once_hold_client_mails_until_the_hold_ends(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    targets = await six_targets(aiohttp_server)
    inbox = Inbox()
    clock = ShiftedClock(MONDAY_10)
    async with smtpd(inbox) as smtp_port:
        config = six_sites_config(targets, smtp_port=smtp_port, tmp_path=tmp_path)
        async with running_monitor(config, clock=clock) as running:
            await eventually(lambda: all_healthy(running))
            fail_every_site(targets)
            incidents = await eventually(
                lambda: _when(running.store.list_incidents(), lambda found: len(found) == 6)
            )
            # On-call is asked once, and paged for each Severity 1 incident as usual.
            [asked] = await eventually(lambda: mails(inbox, to=ONCALL, subject="Is it us?"))
            assert "5 of 6 sites started failing within 0.1 s" in str(asked["Subject"])
            await eventually(lambda: len(mails(inbox, to=ONCALL, subject="PAGE")) == 6)
            health = await healthz(running)
            hold_until = datetime.fromisoformat(health["client_mails_held_until"])
            assert timedelta(minutes=4) < hold_until - clock.now() <= timedelta(minutes=5)
            assert sample(running, "monitor_mass_failure_holding") == 1

            # The client mails wait in the outbox, due when the hold ends.
            held = [
                item
                for incident in incidents
                for item in await running.store.outbox_for_incident(incident.id)  # type: ignore[arg-type]
                if item.kind == "opened"
            ]
            assert len(held) == 6
            assert {item.next_attempt_at for item in held} == {hold_until}
            assert all(item.status is OutboxStatus.PENDING for item in held)
            assert mails(inbox, to=CLIENT) == []

            # A real mass outage: after the hold every client mail goes out, once each.
            clock.advance(timedelta(minutes=5))
            await eventually(lambda: len(mails(inbox, to=CLIENT)) == 6)
            await eventually(lambda: outbox_settled(running))
            opened = mails(inbox, to=CLIENT)
            assert len({m["Message-ID"] for m in opened}) == 6
            assert sorted(str(m["Subject"]).split("]")[0] for m in opened) == sorted(
                f"[INC-{incident.id}" for incident in incidents
            )
            assert len(mails(inbox, to=ONCALL, subject="Is it us?")) == 1
            assert sample(running, "monitor_mass_failure_holding") == 0


async def test_a_restart_during_a_mass_failure_asks_nobody_again_and_keeps_the_hold(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    targets = await six_targets(aiohttp_server)
    inbox = Inbox()
    clock = ShiftedClock(MONDAY_10)
    async with smtpd(inbox) as smtp_port:
        config = six_sites_config(targets, smtp_port=smtp_port, tmp_path=tmp_path)
        async with running_monitor(config, clock=clock) as running:
            await eventually(lambda: all_healthy(running))
            fail_every_site(targets)
            await eventually(lambda: len(mails(inbox, to=ONCALL, subject="PAGE")) == 6)
            assert len(mails(inbox, to=ONCALL, subject="Is it us?")) == 1

        # Started again while the sites still fail: they did not start failing now.
        async with running_monitor(config, clock=clock) as running:
            hits = sum(target.hits.get("/", 0) for target, _ in targets)
            await eventually(
                lambda: sum(target.hits.get("/", 0) for target, _ in targets) >= hits + 5 * 6
            )
            assert len(mails(inbox, to=ONCALL, subject="Is it us?")) == 1
            assert "client_mails_held_until" not in await healthz(running)
            # The held client mails wait in the outbox for the end of their hold all the same.
            assert mails(inbox, to=CLIENT) == []
            clock.advance(timedelta(minutes=5))
            await eventually(lambda: len(mails(inbox, to=CLIENT)) == 6)


async def test_a_single_site_failing_is_never_held(aiohttp_server: Any, tmp_path: Path) -> None:
    targets = await six_targets(aiohttp_server)
    inbox = Inbox()
    async with smtpd(inbox) as smtp_port:
        config = six_sites_config(targets, smtp_port=smtp_port, tmp_path=tmp_path)
        async with running_monitor(config, clock=ShiftedClock(MONDAY_10)) as running:
            await eventually(lambda: all_healthy(running))
            targets[0][0].set("/", status=500)
            [incident] = await eventually(lambda: running.store.list_incidents())
            [opened] = await eventually(lambda: mails(inbox, to=CLIENT))
            assert str(opened["Subject"]).startswith(f"[INC-{incident.id}]")
            assert mails(inbox, to=ONCALL, subject="Is it us?") == []
            assert "client_mails_held_until" not in await healthz(running)


async def _when(value: Any, predicate: Any) -> Any:
    """`value` awaited, if `predicate` holds for it (for `eventually`)."""
    result = await value
    return result if predicate(result) else None
