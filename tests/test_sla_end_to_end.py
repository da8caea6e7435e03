"""Issue 3 end to end: a failing site, a real SMTP server, on-call paging, SLA reminders with
the clock moved forward, operator actions through the API, and delivery that loses nothing."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from incidents.model import TimelineKind
from monitor.app import Running, running_monitor
from monitor.config import load_config_text
from tests.helpers import ShiftedClock, Target, eventually, free_port
from tests.monitor_yaml import head_yaml, notifications_yaml
from tests.smtp_helpers import Inbox, mails, smtpd

TOKEN = "s3cret-token"
# Monday 23 November 2026, 10:00 in London (GMT = UTC): inside business hours.
MONDAY_10 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def config_yaml(
    *, sites: dict[str, str], database: str, smtp_port: int, hook_url: str, outbox: str
) -> str:
    site_yaml = "".join(
        f"""
      - id: {site}
        name: {site}.acme.example
        url: {url}
        checks:
          - id: home
            url: /
"""
        for site, url in sites.items()
    )
    return (
        head_yaml(database=database, sla_tick="100ms")
        + notifications_yaml(smtp_port=smtp_port, outbox=outbox)
        + f"""  webhook: {{url: "{hook_url}", headers: {{Authorization: "Bearer pager-token"}}}}
api: {{token: {TOKEN}}}
clients:
  - id: acme
    name: Acme Ltd
    plan: standard
    contacts: [ops@acme.example]
    business_hours: {{timezone: Europe/London}}
    sites:{site_yaml}
"""
    )


@pytest.fixture
async def pager(aiohttp_server: Any) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer pager-token"
        received.append({"body": await request.json(), "key": request.headers["Idempotency-Key"]})
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", hook)
    server: TestServer = await aiohttp_server(app)
    yield received, str(server.make_url("/hook"))


async def api(
    running: Running, method: str, path: str, body: Any = None, token: str = TOKEN
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, f"{running.url}{path}", json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


@contextlib.asynccontextmanager
async def shop_monitor(
    url: str, hook_url: str, tmp_path: Any, inbox: Inbox, clock: ShiftedClock
) -> AsyncIterator[Running]:
    """The monitor on one site, `shop` at `url`, on the shifted `clock`, mailing through a
    real SMTP server into `inbox` and paging `hook_url`."""
    async with smtpd(inbox) as smtp_port:
        config = load_config_text(
            config_yaml(
                sites={"shop": url},
                database=f"sqlite+aiosqlite:///{tmp_path}/m.db",
                smtp_port=smtp_port,
                hook_url=hook_url,
                outbox=str(tmp_path / "outbox"),
            )
        )
        async with running_monitor(config, clock=clock) as running:
            yield running


async def test_incident_life_cycle_with_sla_clocks_and_emails(
    target: tuple[Target, str], pager: tuple[list[dict[str, Any]], str], tmp_path: Any
) -> None:
    shop, url = target
    hooks, hook_url = pager
    inbox = Inbox()
    clock = ShiftedClock(MONDAY_10)
    async with shop_monitor(url, hook_url, tmp_path, inbox, clock) as running:
        shop.set("/", status=500)
        [incident] = await eventually(lambda: running.store.list_incidents(open_only=True))
        assert incident.response_due_at == MONDAY_10.replace(hour=14) or (
            incident.response_due_at is not None
            and incident.response_due_at - incident.opened_at == timedelta(hours=4)
        )

        # The client hears at once, and on-call is paged by mail and by webhook.
        opened = (await eventually(lambda: mails(inbox, to="ops@acme.example")))[0]
        assert str(opened["Subject"]).startswith(f"[INC-{incident.id}] Severity 1:")
        page = (await eventually(lambda: mails(inbox, to="oncall@agency.example")))[0]
        assert "PAGE" in str(page["Subject"])
        await eventually(lambda: hooks)
        assert hooks[0]["body"]["incident_id"] == incident.id
        assert hooks[0]["body"]["severity"] == 1

        # Changes need the token.
        status, body = await api(
            running, "POST", f"/api/incidents/{incident.id}/acknowledge", {"by": "x"}, token=""
        )
        assert status == 401 and "token" in body["error"]
        status, body = await api(
            running,
            "POST",
            f"/api/incidents/{incident.id}/acknowledge",
            {"by": "wrong"},
            token="nope",
        )
        assert status == 401

        # The queue holds it until someone responds.
        status, body = await api(running, "GET", "/api/queue")
        assert [item["id"] for item in body["queue"]] == [incident.id]
        status, acked = await api(
            running, "POST", f"/api/incidents/{incident.id}/acknowledge", {"by": "alice"}
        )
        assert status == 200 and acked["clocks"]["acknowledged_by"] == "alice"
        status, body = await api(running, "GET", "/api/queue")
        assert body["queue"] == []
        sev1 = {"client": "acme", "severity": "1"}
        responded = running.registry.get_sample_value(
            "monitor_incident_time_to_respond_seconds_count", sev1
        )
        assert responded == 1
        due = datetime.fromisoformat(acked["clocks"]["next_update_due_at"].replace("Z", "+00:00"))
        responded = datetime.fromisoformat(acked["clocks"]["responded_at"].replace("Z", "+00:00"))
        assert due - responded == timedelta(hours=4)  # Sev1: every 4 business hours

        # 35 minutes before the update falls due, on-call is reminded; at the due time the
        # update is overdue, recorded once on the timeline and mailed to on-call.
        clock.advance(due - clock.now() - timedelta(minutes=29))
        await eventually(lambda: mails(inbox, to="oncall@agency.example", subject="Reminder"))
        clock.advance(timedelta(minutes=30))
        await eventually(lambda: mails(inbox, to="oncall@agency.example", subject="OVERDUE"))
        kinds = [e.kind for e in await running.store.timeline(incident.id)]  # type: ignore[arg-type]
        assert kinds.count(TimelineKind.UPDATE_OVERDUE) == 1
        assert kinds.count(TimelineKind.UPDATE_REMINDER) == 1

        # An operator's update is mailed to the client and resets the cadence.
        status, updated = await api(
            running,
            "POST",
            f"/api/incidents/{incident.id}/updates",
            {
                "by": "alice",
                "text": "We found the failing payment plugin and are rolling back.",
            },
        )
        assert status == 200
        new_due = datetime.fromisoformat(
            updated["clocks"]["next_update_due_at"].replace("Z", "+00:00")
        )
        assert new_due > due
        update_mail = (
            await eventually(lambda: mails(inbox, to="ops@acme.example", subject="Update"))
        )[0]
        assert "rolling back" in update_mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]

        # Recovery resolves it and the client is asked to confirm.
        shop.set("/", status=200)
        await eventually(lambda: mails(inbox, to="ops@acme.example", subject="Resolved"))

        resolved_count = running.registry.get_sample_value(
            "monitor_incident_time_to_resolve_seconds_count", sev1
        )
        assert resolved_count == 1

        # Every client mail is in one thread: the opening mail is its root.
        client_mails = mails(inbox, to="ops@acme.example")
        assert len(client_mails) == 3
        root = str(opened["Message-ID"])
        opened_utc = incident.opened_at.astimezone(UTC)
        assert root == f"<incident-{incident.id}.{opened_utc:%Y%m%dT%H%M%SZ}.client@agency.example>"
        for later in client_mails[1:]:
            assert str(later["In-Reply-To"]) == root
            assert root in str(later["References"])
        assert len({str(m["Message-ID"]) for m in inbox.messages()}) == len(inbox.messages())


async def test_smtp_down_while_three_incidents_open_loses_nothing_and_sends_once(
    aiohttp_server: Any, pager: tuple[list[dict[str, Any]], str], tmp_path: Any
) -> None:
    hooks, hook_url = pager
    sites: dict[str, str] = {}
    for name in ("shop", "blog", "portal"):
        target = Target()
        target.set("/", status=503)
        server: TestServer = await aiohttp_server(target.app())
        sites[name] = str(server.make_url("")).rstrip("/")
    smtp_port = free_port()  # nothing listens yet: the SMTP server is down
    clock = ShiftedClock(MONDAY_10)
    config = load_config_text(
        config_yaml(
            sites=sites,
            database=f"sqlite+aiosqlite:///{tmp_path}/m.db",
            smtp_port=smtp_port,
            hook_url=hook_url,
            outbox=str(tmp_path / "outbox"),
        )
    )
    inbox = Inbox()
    async with running_monitor(config, clock=clock) as running:
        incidents = await eventually(
            lambda: _at_least(running.store.list_incidents(open_only=True), 3)
        )
        # Each incident: the client's opening mail and on-call's page, both pending.
        await eventually(lambda: _outbox_attempted(running, minimum=6))
        # Only the three webhook pages could go out (the pager is up).
        await eventually(lambda: _sent(running, 3))
        assert len(hooks) == 3
        counts = await running.store.outbox_counts()
        assert counts["pending"] >= 6

        async with smtpd(inbox, port=smtp_port):
            await eventually(lambda: _all_sent(running), timeout=20)
            expected = [
                item
                for incident in incidents
                for item in await running.store.outbox_for_incident(incident.id)
                if item.channel == "email"
            ]
            assert len(inbox.received) == len(expected) >= 6
            ids = [str(m["Message-ID"]) for m in inbox.messages()]
            assert len(set(ids)) == len(ids)  # exactly once each


async def test_a_two_hour_window_pauses_an_open_incidents_clocks_and_its_reminders(
    target: tuple[Target, str], pager: tuple[list[dict[str, Any]], str], tmp_path: Any
) -> None:
    shop, url = target
    _, hook_url = pager
    inbox = Inbox()
    clock = ShiftedClock(MONDAY_10)
    async with shop_monitor(url, hook_url, tmp_path, inbox, clock) as running:
        desk = running.monitor.desk
        shop.set("/", status=500)
        [incident] = await eventually(lambda: running.store.list_incidents(open_only=True))
        status, acked = await api(
            running, "POST", f"/api/incidents/{incident.id}/acknowledge", {"by": "alice"}
        )
        assert status == 200
        stored = await running.store.get_incident(incident.id)  # type: ignore[arg-type]
        assert stored is not None and stored.next_update_due_at is not None
        due = stored.next_update_due_at  # about 14:00: 4 business hours on
        starts, ends = MONDAY_10 + timedelta(hours=3), MONDAY_10 + timedelta(hours=5)
        assert starts < due - timedelta(minutes=30) and due < ends  # reminder and due inside
        status, window = await api(
            running,
            "POST",
            "/api/maintenance",
            {
                "site": "acme/shop",
                "starts_at": _z(starts),
                "ends_at": _z(ends),
                "reason": "PHP upgrade",
                "by": "alice",
            },
        )
        assert status == 201, window

        async def timeline() -> list[Any]:
            return await running.store.timeline(incident.id)  # type: ignore[arg-type]

        # The window begins: the clocks pause, the timeline says so.
        clock.advance(starts + timedelta(seconds=30) - clock.now())
        await desk.tick()
        started = [e for e in await timeline() if e.kind is TimelineKind.MAINTENANCE_STARTED]
        assert [e.at for e in started] == [starts]
        status, body = await api(running, "GET", f"/api/incidents/{incident.id}")
        assert body["clocks"]["paused_since"] == _z(starts)
        assert body["clocks"]["paused_until"] == _z(ends)

        # Past the reminder and the old due time, inside the window: nothing fires.
        clock.advance(due + timedelta(minutes=10) - clock.now())
        await desk.tick()
        kinds = [e.kind for e in await timeline()]
        assert TimelineKind.UPDATE_REMINDER not in kinds
        assert TimelineKind.UPDATE_OVERDUE not in kinds
        sev1 = {"client": "acme", "severity": "1"}
        assert not running.registry.get_sample_value("monitor_incident_updates_overdue", sev1)

        # The window ends: the due time has moved by the 2 paused hours.
        clock.advance(ends + timedelta(seconds=30) - clock.now())
        await desk.tick()
        entries = await timeline()
        ended = [e for e in entries if e.kind is TimelineKind.MAINTENANCE_ENDED]
        assert [e.at for e in ended] == [ends]
        resumed = await running.store.get_incident(incident.id)  # type: ignore[arg-type]
        assert resumed is not None and resumed.paused_since is None
        assert resumed.next_update_due_at == due + timedelta(hours=2)
        assert not mails(inbox, to="oncall@agency.example", subject="Reminder")

        # The moved reminder fires at its new time, once.
        clock.advance(due + timedelta(hours=2) - timedelta(minutes=29) - clock.now())
        await eventually(lambda: mails(inbox, to="oncall@agency.example", subject="Reminder"))
        kinds = [e.kind for e in await timeline()]
        assert kinds.count(TimelineKind.UPDATE_REMINDER) == 1
        assert TimelineKind.UPDATE_OVERDUE not in kinds


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _at_least(listing: Any, n: int) -> Any:
    items = await listing
    return items if len(items) >= n else None


async def _outbox_attempted(running: Running, *, minimum: int) -> bool:
    incidents = await running.store.list_incidents()
    items = [i for inc in incidents for i in await running.store.outbox_for_incident(inc.id)]  # type: ignore[arg-type]
    emails = [i for i in items if i.channel == "email"]
    return len(emails) >= minimum and all(i.attempts >= 1 for i in emails)


async def _sent(running: Running, n: int) -> bool:
    return (await running.store.outbox_counts())["sent"] == n


async def _all_sent(running: Running) -> bool:
    counts = await running.store.outbox_counts()
    return counts["pending"] == 0 and counts["sent"] > 0
