"""Escalation end to end (issue 14): a Severity 1 on a real failing site, the clock moved
forward, pages mailed through a real SMTP server (aiosmtpd) to the person on call, then the
secondary, then nothing once acknowledged; each page once, across a restart too, on SQLite and
PostgreSQL. And a policy that repeats every 30 minutes while nobody acknowledges."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import aiohttp

from incidents.model import Incident, TimelineKind
from monitor.app import Running, running_monitor
from monitor.config import load_config_text
from tests.helpers import ShiftedClock, Target, eventually
from tests.monitor_yaml import acme_shop_yaml, head_yaml, notifications_yaml
from tests.smtp_helpers import Inbox, mails, smtpd

TOKEN = "s3cret-token"
# Monday 23 November 2026, 10:00 UTC (11:00 in Berlin): alice's week (hand-over Mon 09:00).
MONDAY_10 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)

TWO_LEVELS = """
  1:
    levels:
      - {after: 0m, notify: [oncall]}
      - {after: 15m, notify: [bob]}
      - {after: 30m, notify: [lead]}
"""
REPEATING = """
  1:
    levels:
      - {after: 0m, notify: [oncall]}
    repeat: 30m
"""


def config_yaml(
    *,
    url: str,
    database: str,
    smtp_port: int,
    outbox: str,
    escalation: str,
    sla_tick: str = "100ms",
) -> str:
    return (
        head_yaml(database=database, sla_tick=sla_tick)
        + "agency: {timezone: Europe/Berlin}\n"
        + notifications_yaml(smtp_port=smtp_port, outbox=outbox, oncall="team@agency.example")
        + f"""  rotation:
    every: week
    handover: mon 09:00
    start: 2026-11-23
    people: [alice, carol]
people:
  - {{name: alice, email: alice@agency.example}}
  - {{name: carol, email: carol@agency.example}}
  - {{name: bob, email: bob@agency.example}}
  - {{name: lead, email: lead@agency.example}}
escalation:{escalation}
api: {{token: {TOKEN}}}
"""
        + acme_shop_yaml(url=url)
    )


def pages(inbox: Inbox, to: str) -> list[EmailMessage]:
    return mails(inbox, to=to, subject="PAGE")


def paged(inbox: Inbox) -> list[str]:
    """Who got a page mail, in order of arrival."""
    return [
        str(m["To"]).split("@")[0]
        for m in inbox.messages()
        if "agency.example" in str(m["To"]) and "PAGE" in str(m["Subject"]).upper()
    ]


async def entries(running: Running, incident: Incident) -> list[str]:
    assert incident.id is not None
    timeline = await running.store.timeline(incident.id)
    return [e.message for e in timeline if e.kind is TimelineKind.PAGED]


async def metric(running: Running, line_start: str) -> float | None:
    async with aiohttp.ClientSession() as http, http.get(f"{running.url}/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


@contextlib.asynccontextmanager
async def monitor(
    *,
    url: str,
    database: str,
    smtp_port: int,
    tmp_path: Any,
    clock: ShiftedClock,
    escalation: str,
    sla_tick: str = "100ms",
) -> AsyncIterator[Running]:
    config = load_config_text(
        config_yaml(
            url=url,
            database=database,
            smtp_port=smtp_port,
            outbox=str(tmp_path / "outbox"),
            escalation=escalation,
            sla_tick=sla_tick,
        )
    )
    async with running_monitor(config, clock=clock) as running:
        yield running


@contextlib.asynccontextmanager
async def on_sqlite(
    url: str, inbox: Inbox, tmp_path: Any, clock: ShiftedClock, **options: str
) -> AsyncIterator[Running]:
    """The monitor on a SQLite file, mailing through a real SMTP server into `inbox`."""
    database = f"sqlite+aiosqlite:///{tmp_path}/m.db"
    async with (
        smtpd(inbox) as smtp_port,
        monitor(
            url=url,
            database=database,
            smtp_port=smtp_port,
            tmp_path=tmp_path,
            clock=clock,
            **options,
        ) as running,
    ):
        yield running


async def test_primary_at_once_secondary_at_15_min_nothing_after_an_ack_at_20_min(
    target: tuple[Target, str], database_url: str, tmp_path: Any
) -> None:
    shop, url = target
    inbox = Inbox()
    clock = ShiftedClock(MONDAY_10)
    args = {"url": url, "database": database_url, "tmp_path": tmp_path, "clock": clock}
    async with smtpd(inbox) as smtp_port:
        async with monitor(**args, smtp_port=smtp_port, escalation=TWO_LEVELS) as running:
            assert await metric(running, 'monitor_oncall_person{person="alice"}') == 1.0
            shop.set("/", status=500)
            [incident] = await eventually(lambda: running.store.list_incidents(open_only=True))
            # Primary at once: alice is on call this week; the team address hears nothing.
            await eventually(lambda: pages(inbox, "alice@"), timeout=15)
            assert await entries(running, incident) == ["paged alice (level 1, at once)"]
            assert await metric(running, 'monitor_pages_total{level="1",severity="1"}') == 1.0
        # A restart before the next level: the page already made is not made again.
        async with monitor(**args, smtp_port=smtp_port, escalation=TWO_LEVELS) as running:
            clock.advance(timedelta(minutes=15))
            [bob] = await eventually(lambda: pages(inbox, "bob@"), timeout=15)
            text = bob.get_body(("plain",))
            assert text is not None
            assert "Escalation level 2: 15 min without acknowledgement." in text.get_content()
            assert await entries(running, incident) == [
                "paged alice (level 1, at once)",
                "paged bob (level 2, 15 min without acknowledgement)",
            ]
            clock.advance(timedelta(minutes=5))  # 20 min: bob acknowledges
            assert incident.id is not None
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    f"{running.url}/api/incidents/{incident.id}/acknowledge",
                    json={"by": "bob"},
                    headers={"Authorization": f"Bearer {TOKEN}"},
                ) as response,
            ):
                assert response.status == 200, await response.text()
            clock.advance(timedelta(minutes=60))  # the lead's 30 min and more go by
            # Run the clocks now: whatever is due by then is written when this returns.
            await running.monitor.desk.tick()
            assert await entries(running, incident) == [
                "paged alice (level 1, at once)",
                "paged bob (level 2, 15 min without acknowledgement)",
            ]
            queued = await running.store.outbox_for_incident(incident.id)
            assert [r.message.to for r in queued if r.kind.value == "page"] == [
                ("alice@agency.example",),
                ("bob@agency.example",),
            ]
    assert paged(inbox) == ["alice", "bob"]  # each once; the lead never
    assert not pages(inbox, "lead@") and not pages(inbox, "team@")


async def test_the_page_repeats_every_30_min_while_nobody_acknowledges(
    target: tuple[Target, str], tmp_path: Any
) -> None:
    shop, url = target
    inbox = Inbox()
    clock = ShiftedClock(MONDAY_10)
    async with on_sqlite(url, inbox, tmp_path, clock, escalation=REPEATING) as running:
        shop.set("/", status=500)
        [incident] = await eventually(lambda: running.store.list_incidents(open_only=True))
        await eventually(lambda: len(pages(inbox, "alice@")) == 1, timeout=15)
        clock.advance(timedelta(minutes=29))
        await running.monitor.desk.tick()
        assert len(await entries(running, incident)) == 1
        for repeat in (1, 2, 3):
            clock.advance(timedelta(minutes=30 if repeat > 1 else 1))
            await eventually(lambda n=repeat: len(pages(inbox, "alice@")) == n + 1, timeout=15)
        assert await entries(running, incident) == [
            "paged alice (level 1, at once)",
            "paged alice (level 1, repeat 1, 30 min without acknowledgement)",
            "paged alice (level 1, repeat 2, 1 h without acknowledgement)",
            "paged alice (level 1, repeat 3, 1 h 30 min without acknowledgement)",
        ]
        assert await metric(running, 'monitor_pages_total{level="1",severity="1"}') == 4.0
        # Every step of the clocks went through (a failed one is counted here and logged).
        assert await metric(running, "monitor_store_errors_total") == 0.0


async def test_the_clocks_wake_at_the_next_page_not_at_the_next_tick(
    target: tuple[Target, str], tmp_path: Any
) -> None:
    """With the SLA tick at an hour, the secondary 2 s after the opening still goes at 2 s."""
    shop, url = target
    inbox = Inbox()
    soon = TWO_LEVELS.replace("after: 15m", "after: 2s").replace("after: 30m", "after: 1h")
    clock = ShiftedClock(MONDAY_10)
    async with on_sqlite(url, inbox, tmp_path, clock, escalation=soon, sla_tick="1h") as running:
        shop.set("/", status=500)
        await eventually(lambda: pages(inbox, "alice@"), timeout=15)
        await eventually(lambda: pages(inbox, "bob@"), timeout=15)
        [incident] = await running.store.list_incidents(open_only=True)
        assert (await entries(running, incident))[1] == (
            "paged bob (level 2, 2 s without acknowledgement)"
        )
