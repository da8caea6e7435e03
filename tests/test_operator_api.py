"""The operator side of issue 3 against a running monitor: the HTTP API (resolve by hand,
maintenance windows, validation, protected reads, notifications), on-call notices in and out
of business hours, the triage queue, and the CLI commands that call the API."""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from checks.result import Outcome
from incidents.model import Incident, TimelineKind
from monitor.app import Running, running_monitor
from monitor.config import MonitorConfig, load_config_text
from monitor.events import EventKind, MonitorEvent
from monitor.operator_cli import TOKEN_ENV, URL_ENV
from monitor.serialize import iso
from monitor.store import Store
from tests.helpers import ShiftedClock, Target, eventually, free_port, run_monitor_cli
from tests.smtp_helpers import Inbox, mails, smtpd

TOKEN = "operator-token"
CLIENT = "ops@acme.example"
ONCALL = "oncall@agency.example"
FAILURES_TO_OPEN = 2
# Saturday 28 November 2026, 03:00 in London (GMT = UTC): the office is closed until Monday.
SATURDAY_03 = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
MONDAY_09 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)

NewTarget = Callable[[], Awaitable[tuple[Target, str]]]


# --- configuration ------------------------------------------------------------------------


def site(site_id: str, url: str, **check: Any) -> dict[str, Any]:
    return {
        "id": site_id,
        "name": f"{site_id}.acme.example",
        "url": url,
        "checks": [{"id": "home", "url": "/", **check}],
    }


def client(
    client_id: str,
    *sites: dict[str, Any],
    plan: str = "standard",
    contacts: tuple[str, ...] = (CLIENT,),
) -> dict[str, Any]:
    return {
        "id": client_id,
        "name": f"{client_id.title()} Ltd",
        "plan": plan,
        "contacts": list(contacts),
        "business_hours": {"timezone": "Europe/London"},
        "sites": list(sites),
    }


def make_config(
    tmp_path: Path,
    *clients: dict[str, Any],
    smtp_port: int | None = None,
    protect_reads: bool = True,
    **defaults: Any,
) -> MonitorConfig:
    notifications: dict[str, Any] = {
        "sender": "Agency Support <support@agency.example>",
        "outbox_dir": str(tmp_path / "outbox"),
        "retry_initial": "100ms",
        "retry_max": "500ms",
        "poll_interval": "100ms",
    }
    if smtp_port is not None:
        notifications["smtp"] = {
            "host": "127.0.0.1",
            "port": smtp_port,
            "security": "none",
            "timeout": "2s",
        }
    document = {
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path}/monitor.db"},
        "server": {"port": 0},
        "scheduler": {"sla_tick": "100ms"},
        "defaults": {
            "interval": "100ms",
            "timeout": "2s",
            "failures_to_open": FAILURES_TO_OPEN,
            "successes_to_resolve": 2,
            **defaults,
        },
        "notifications": notifications,
        "oncall": {"emails": [ONCALL]},
        "api": {"token": TOKEN, "protect_reads": protect_reads},
        "clients": list(clients),
    }
    # JSON is YAML: the document goes through the same loader as an operator's file.
    return load_config_text(json.dumps(document))


# --- fixtures and helpers -----------------------------------------------------------------


@pytest.fixture
def new_target(aiohttp_server: Any) -> NewTarget:
    async def start() -> tuple[Target, str]:
        target = Target()
        server: TestServer = await aiohttp_server(target.app())
        return target, str(server.make_url("")).rstrip("/")

    return start


@pytest.fixture
async def mail_server() -> AsyncIterator[tuple[Inbox, int]]:
    inbox = Inbox()
    async with smtpd(inbox) as port:
        yield inbox, port


async def api(
    running: Running,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str = TOKEN,
    data: bytes | None = None,
) -> tuple[int, Any]:
    """One call to the monitor's API; the answer must be JSON whatever its status."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if data is not None:
        headers["Content-Type"] = "application/json"
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method,
            f"{running.url}{path}",
            json=body if data is None else None,
            data=data,
            headers=headers,
        ) as response,
    ):
        assert response.content_type == "application/json", await response.text()
        return response.status, await response.json()


async def open_incidents(running: Running, count: int = 1) -> list[Incident] | None:
    found = await running.store.list_incidents(open_only=True)
    return found if len(found) >= count else None


async def open_incident_of(running: Running, site_key: str) -> Incident | None:
    found = await running.store.list_incidents(open_only=True)
    return next((i for i in found if i.site == site_key), None)


def incident_id(incident: Incident) -> int:
    assert incident.id is not None
    return incident.id


async def timeline_kinds(store: Store, incident: Incident) -> list[TimelineKind]:
    return [entry.kind for entry in await store.timeline(incident_id(incident))]


async def probe_failures(running: Running, outcome: str) -> float:
    """monitor_probe_results_total{outcome=...} as a scrape of /metrics shows it."""
    async with aiohttp.ClientSession() as http, http.get(f"{running.url}/metrics") as response:
        exposition = await response.text()
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == "monitor_probe_results_total" and sample.labels["outcome"] == outcome
    )


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- resolve by hand ----------------------------------------------------------------------


async def test_resolve_by_hand_is_refused_while_failing_and_forced_holds_the_check_until_a_pass(
    new_target: NewTarget, mail_server: tuple[Inbox, int], tmp_path: Path
) -> None:
    inbox, port = mail_server
    shop, shop_url = await new_target()
    blog, blog_url = await new_target()
    shop.set("/", status=500)
    config = make_config(
        tmp_path,
        # The blog's failures are Severity 3: its client hears nothing on open.
        client("acme", site("shop", shop_url), site("blog", blog_url, severity=3)),
        smtp_port=port,
    )
    home = "acme/shop/home"
    events: list[MonitorEvent] = []
    async with running_monitor(config, listeners=[events.append]) as running:
        first = await eventually(lambda: open_incident_of(running, "acme/shop"))
        first_id = incident_id(first)
        opened = (await eventually(lambda: mails(inbox, to=CLIENT, subject=f"[{first.ref}]")))[0]

        # Refused while the check still fails, naming it; nothing changes.
        status, body = await api(
            running, "POST", f"/api/incidents/{first_id}/resolve", {"by": "alice"}
        )
        assert status == 409, body
        assert home in body["error"] and "force" in body["error"]
        status, body = await api(
            running, "POST", f"/api/incidents/{first_id}/resolve", {"by": "a", "force": "yes"}
        )
        assert status == 400 and "force" in body["error"]
        still = await running.store.get_incident(first_id)
        assert still is not None and still.is_open

        status, body = await api(
            running,
            "POST",
            f"/api/incidents/{first_id}/resolve",
            {"by": "alice", "note": "restarted php-fpm", "force": True},
        )
        assert status == 200
        assert body["id"] == first_id and body["status"] == "resolved"
        assert body["resolved_at"] is not None
        last = (await running.store.timeline(first_id))[-1]
        assert last.kind is TimelineKind.RESOLVED
        assert last.message == (
            "resolved by hand by alice, forced while home still failed: restarted php-fpm"
        )
        [logged] = [e.message for e in events if e.kind is EventKind.INCIDENT_RESOLVED]
        assert logged.startswith(f"incident resolved {first.ref} acme/shop after ")
        assert logged.endswith(
            "(resolved by hand by alice, forced while home still failed: restarted php-fpm)"
        )

        # The client had the opening mail, so it is asked to confirm, in the same thread.
        resolved = (
            await eventually(lambda: mails(inbox, to=CLIENT, subject=f"[{first.ref}] Resolved:"))
        )[0]
        assert str(resolved["In-Reply-To"]) == str(opened["Message-ID"])
        text = " ".join(resolved.get_body(("plain",)).get_content().split())  # type: ignore[union-attr]
        assert "closed it by hand; our checks still saw the problem" in text
        html = resolved.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert "closed it by hand; our checks still saw the problem" in html
        # Who resolved it is internal; the operator's note is written for the client.
        assert "alice" not in text and "restarted php-fpm" in text

        # The site still fails, but the check was held by the forced resolve: however many
        # failures follow, no incident opens until it has passed once.
        hits = shop.hits["/"]
        await eventually(lambda: shop.hits["/"] >= hits + FAILURES_TO_OPEN + 3 or None)
        assert await open_incident_of(running, "acme/shop") is None
        state = running.monitor.check_state(home)
        assert state is not None and state.held
        stored = (await running.store.load_check_states(keys=[home]))[home]
        assert stored.held  # it survives a restart
        assert len(mails(inbox, to=CLIENT, subject="Resolved")) == 1
        assert len(mails(inbox, to=CLIENT)) == 2  # opened and resolved: no "down" again

        # A resolved incident is never reopened and takes no more actions.
        for path, payload in (
            ("acknowledge", {"by": "bob"}),
            ("updates", {"by": "bob", "text": "Still on it."}),
            ("resolve", {"by": "bob", "force": True}),
        ):
            status, body = await api(running, "POST", f"/api/incidents/{first_id}/{path}", payload)
            assert status == 409, (path, body)
            assert "resolved" in body["error"]
        kinds = await timeline_kinds(running.store, first)
        assert kinds.count(TimelineKind.RESOLVED) == 1
        assert TimelineKind.ACKNOWLEDGED not in kinds
        assert TimelineKind.CLIENT_UPDATE not in kinds

        # One pass releases it; its next confirmed failure opens a new incident.
        shop.set("/", status=200)
        await eventually(lambda: _released(running, home))
        shop.set("/", status=500)
        second = await eventually(
            lambda: _open_other_than(running, site_key="acme/shop", incident_id=first_id)
        )
        assert incident_id(second) > first_id

        # A Severity 3 the client never heard of is resolved without a mail to the client.
        blog.set("/", status=500)
        quiet = await eventually(lambda: open_incident_of(running, "acme/blog"))
        assert int(quiet.severity) == 3
        status, _ = await api(
            running,
            "POST",
            f"/api/incidents/{incident_id(quiet)}/resolve",
            {"by": "alice", "force": True},
        )
        assert status == 200
        # The outbox rows are written with the resolution, so they are final now.
        rows = await running.store.outbox_for_incident(incident_id(quiet))
        assert not [row for row in rows if CLIENT in getattr(row.message, "to", ())]


async def test_resolve_by_hand_without_force_once_the_failing_check_passes_again(
    new_target: NewTarget, tmp_path: Path
) -> None:
    shop, shop_url = await new_target()
    shop.set("/", status=500)
    # Many passes needed to resolve on its own: time for an operator to close it first.
    config = make_config(tmp_path, client("acme", site("shop", shop_url)), successes_to_resolve=50)
    async with running_monitor(config) as running:
        first = await eventually(lambda: open_incident_of(running, "acme/shop"))
        shop.set("/", status=200)
        await eventually(lambda: _released(running, "acme/shop/home"))
        status, body = await api(
            running, "POST", f"/api/incidents/{incident_id(first)}/resolve", {"by": "alice"}
        )
        assert status == 200, body
        last = (await running.store.timeline(incident_id(first)))[-1]
        assert last.message == "resolved by hand by alice"
        assert last.evidence == {"resolved_by": "alice", "forced": False, "still_failing": []}


async def test_a_held_check_stays_held_across_a_restart(
    new_target: NewTarget, tmp_path: Path
) -> None:
    shop, shop_url = await new_target()
    shop.set("/", status=500)
    config = make_config(tmp_path, client("acme", site("shop", shop_url)))
    home = "acme/shop/home"
    async with running_monitor(config) as running:
        first = await eventually(lambda: open_incident_of(running, "acme/shop"))
        status, body = await api(
            running,
            "POST",
            f"/api/incidents/{incident_id(first)}/resolve",
            {"by": "alice", "force": True},
        )
        assert status == 200, body
        # Held from its first failure after the resolve on; that is what is stored.
        await eventually(lambda: _held(running, home))

    async with running_monitor(config) as running:
        hits = shop.hits["/"]
        await eventually(lambda: shop.hits["/"] >= hits + FAILURES_TO_OPEN + 3 or None)
        assert await open_incident_of(running, "acme/shop") is None
        assert _held(running, home)
        shop.set("/", status=200)
        await eventually(lambda: _released(running, home))
        shop.set("/", status=500)
        second = await eventually(lambda: open_incident_of(running, "acme/shop"))
        assert incident_id(second) > incident_id(first)


def _held(running: Running, key: str) -> bool:
    state = running.monitor.check_state(key)
    return state is not None and state.held


def _released(running: Running, key: str) -> bool:
    state = running.monitor.check_state(key)
    return state is not None and not state.held and state.last_outcome is Outcome.OK


async def _open_other_than(running: Running, *, site_key: str, incident_id: int) -> Any:
    found = await open_incident_of(running, site_key)
    return found if found is not None and found.id != incident_id else None


# --- maintenance windows ------------------------------------------------------------------


async def test_a_maintenance_window_opens_no_incident_while_probes_and_metrics_go_on(
    new_target: NewTarget, tmp_path: Path
) -> None:
    shop, url = await new_target()
    config = make_config(tmp_path, client("acme", site("shop", url)))
    async with running_monitor(config) as running:
        starts = datetime.now(UTC).replace(microsecond=0)
        window = {
            "site": "acme/shop",
            "starts_at": iso(starts),
            "ends_at": iso(starts + timedelta(hours=1)),
            "reason": "PHP upgrade",
            "by": "alice",
        }
        assert str(window["starts_at"]).endswith("Z")
        status, added = await api(running, "POST", "/api/maintenance", window)
        assert status == 201, added
        assert added["site"] == "acme/shop" and added["created_by"] == "alice"
        assert (added["starts_at"], added["ends_at"]) == (window["starts_at"], window["ends_at"])

        before = await probe_failures(running, "http_5xx")
        shop.set("/", status=500)
        wanted = FAILURES_TO_OPEN + 3
        await eventually(
            lambda: _grown(probe_failures(running, "http_5xx"), before=before, by=wanted)
        )
        assert shop.hits["/"] >= wanted
        assert await running.store.list_incidents() == []
        status, body = await api(running, "GET", "/api/incidents")
        assert status == 200 and body["incidents"] == []

        status, body = await api(running, "GET", "/api/maintenance")
        assert status == 200 and body["maintenance"] == [added]

        status, body = await api(running, "POST", "/api/maintenance", {**window, "site": "acme/x"})
        assert status == 404 and "acme/x" in body["error"]
        status, body = await api(
            running,
            "POST",
            "/api/maintenance",
            {**window, "ends_at": iso(starts - timedelta(minutes=1))},
        )
        assert status == 400 and "ends_at" in body["error"]
        status, body = await api(
            running, "POST", "/api/maintenance", {**window, "starts_at": "2026-11-28T03:00:00"}
        )
        assert status == 400 and "time zone" in body["error"]
        status, body = await api(running, "POST", "/api/maintenance", window, token="")
        assert status == 401 and "token" in body["error"]
        status, body = await api(running, "GET", "/api/maintenance")
        assert [item["id"] for item in body["maintenance"]] == [added["id"]]


async def _grown(value: Awaitable[float], *, before: float, by: int) -> bool:
    return await value - before >= by


async def test_a_window_added_for_later_takes_effect_when_it_starts_and_ends_on_time(
    new_target: NewTarget, tmp_path: Path
) -> None:
    shop, url = await new_target()
    clock = ShiftedClock(MONDAY_09)
    config = make_config(tmp_path, client("acme", site("shop", url)))
    async with running_monitor(config, clock=clock) as running:
        starts = MONDAY_09 + timedelta(hours=1)
        ends = starts + timedelta(hours=2)
        status, added = await api(
            running,
            "POST",
            "/api/maintenance",
            {"site": "acme/shop", "starts_at": iso(starts), "ends_at": iso(ends), "by": "alice"},
        )
        assert status == 201, added

        # The window's hour comes: the site fails and no incident opens.
        clock.advance(starts - clock.now() + timedelta(minutes=1))
        before = await probe_failures(running, "http_5xx")
        shop.set("/", status=503)
        await eventually(
            lambda: _grown(
                probe_failures(running, "http_5xx"), before=before, by=FAILURES_TO_OPEN + 3
            )
        )
        assert await running.store.list_incidents() == []

        # Once it is over, the same failures open an incident.
        clock.advance(ends - clock.now())
        incident = await eventually(lambda: open_incident_of(running, "acme/shop"))
        assert incident.opened_at >= ends


# --- validation and authentication --------------------------------------------------------


async def test_bad_requests_get_json_errors(new_target: NewTarget, tmp_path: Path) -> None:
    shop, url = await new_target()
    shop.set("/", status=500)
    config = make_config(tmp_path, client("acme", site("shop", url)))
    async with running_monitor(config) as running:
        [incident] = await eventually(lambda: open_incidents(running))
        base = f"/api/incidents/{incident_id(incident)}"

        status, body = await api(running, "POST", f"{base}/acknowledge", data=b"{not json")
        assert status == 400 and "JSON" in body["error"]
        status, body = await api(running, "POST", f"{base}/acknowledge", ["by", "bob"])
        assert status == 400 and "JSON object" in body["error"]
        status, body = await api(running, "POST", f"{base}/acknowledge", {})
        assert status == 400 and "'by'" in body["error"]
        status, body = await api(running, "POST", f"{base}/acknowledge", {"by": "  "})
        assert status == 400 and "'by'" in body["error"]
        status, body = await api(running, "POST", f"{base}/updates", {"by": "bob", "text": ""})
        assert status == 400 and "'text'" in body["error"]
        status, body = await api(running, "POST", f"{base}/updates", {"by": "bob", "text": " "})
        assert status == 400 and "'text'" in body["error"]
        status, body = await api(running, "POST", "/api/incidents/9999/acknowledge", {"by": "b"})
        assert status == 404 and "9999" in body["error"]
        status, body = await api(running, "GET", "/api/incidents/9999")
        assert status == 404 and "9999" in body["error"]
        status, body = await api(running, "POST", f"{base}/acknowledge", {"by": "b"}, token="x")
        assert status == 401

        # None of it changed the incident.
        assert await timeline_kinds(running.store, incident) == [
            TimelineKind.OPENED,
            TimelineKind.ONCALL_PAGED,
        ]
        status, body = await api(running, "GET", base)
        assert status == 200 and body["clocks"]["responded_at"] is None


async def test_protected_reads_need_the_token_but_metrics_and_health_stay_open(
    new_target: NewTarget, tmp_path: Path
) -> None:
    _, url = await new_target()
    config = make_config(tmp_path, client("acme", site("shop", url)), protect_reads=True)
    async with running_monitor(config) as running:
        for path in ("/api/incidents", "/api/queue", "/api/maintenance", "/api/incidents/1"):
            status, body = await api(running, "GET", path, token="")
            assert status == 401 and "token" in body["error"], path
            status, body = await api(running, "GET", path, token="wrong")
            assert status == 401, path
        status, body = await api(running, "GET", "/api/incidents")
        assert status == 200 and body == {"incidents": []}
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{running.url}/metrics") as response:
                assert response.status == 200
                assert "monitor_checks_configured" in await response.text()
            async with http.get(f"{running.url}/healthz") as response:
                assert response.status == 200
                assert (await response.json())["status"] == "ok"


async def test_an_incident_shows_its_clocks_and_each_notification_pending_then_sent(
    new_target: NewTarget, tmp_path: Path
) -> None:
    shop, url = await new_target()
    shop.set("/", status=500)
    smtp_port = free_port()  # nothing listens yet: the mails stay pending
    clock = ShiftedClock(MONDAY_09 + timedelta(hours=1))
    config = make_config(tmp_path, client("acme", site("shop", url)), smtp_port=smtp_port)
    async with running_monitor(config, clock=clock) as running:
        [incident] = await eventually(lambda: open_incidents(running))
        path = f"/api/incidents/{incident_id(incident)}"

        async def attempted() -> Any:
            _, body = await api(running, "GET", path)
            notes = body["notifications"]
            return body if notes and all(n["attempts"] >= 1 for n in notes) else None

        body = await eventually(attempted)
        clocks = dict(body["clocks"])
        # Paged at once: within a moment of the opening (both times are taken as it happens).
        paged_at = parse_iso(clocks.pop("oncall_notified_at"))
        assert (
            timedelta(0)
            <= paged_at - incident.opened_at.replace(microsecond=0)
            < timedelta(seconds=2)
        )
        # Monday 10:00 in business hours: Severity 1 aims at 2 and is due at 4 hours.
        assert clocks == {
            "calendar": "business",
            "response_aim_at": iso(incident.opened_at + timedelta(hours=2)),
            "response_due_at": iso(incident.opened_at + timedelta(hours=4)),
            "responded_at": None,
            "acknowledged_by": None,
            "last_update_at": None,
            "next_update_due_at": None,
            "paused_since": None,
            "paused_until": None,
        }
        assert [t["kind"] for t in body["timeline"]] == ["opened", "oncall_paged"]
        notes = body["notifications"]
        assert sorted(n["kind"] for n in notes) == ["opened", "page"]
        for note in notes:
            assert note["channel"] == "email" and note["status"] == "pending"
            assert note["sent_at"] is None and note["last_error"]

        inbox = Inbox()
        async with smtpd(inbox, port=smtp_port):

            async def sent() -> Any:
                _, body = await api(running, "GET", path)
                notes = body["notifications"]
                return notes if all(n["status"] == "sent" for n in notes) else None

            notes = await eventually(sent)
        assert sorted(n["kind"] for n in notes) == ["opened", "page"]
        assert all(n["sent_at"] is not None for n in notes)
        assert len(inbox.received) == 2


# --- on-call notices and the queue --------------------------------------------------------


async def test_severity_2_out_of_hours_waits_for_monday_while_severity_1_pages_at_once(
    new_target: NewTarget, mail_server: tuple[Inbox, int], tmp_path: Path
) -> None:
    inbox, port = mail_server
    slow, slow_url = await new_target()
    down, down_url = await new_target()
    slow.set("/", delay=0.4)
    down.set("/", status=500)
    clock = ShiftedClock(SATURDAY_03)
    config = make_config(
        tmp_path,
        client("acme", site("slow", slow_url), site("down", down_url)),
        smtp_port=port,
        slow_after="200ms",
    )
    async with running_monitor(config, clock=clock) as running:
        sev1 = await eventually(lambda: open_incident_of(running, "acme/down"))
        sev2 = await eventually(lambda: open_incident_of(running, "acme/slow"))
        assert (int(sev1.severity), int(sev2.severity)) == (1, 2)
        assert sev2.opened_at < MONDAY_09 - timedelta(days=1)

        # Severity 1 pages on-call at once, on a Saturday night.
        page = await eventually(lambda: mails(inbox, to=ONCALL, subject=f"[{sev1.ref}] PAGE"))
        assert len(page) == 1
        _, body = await api(running, "GET", f"/api/incidents/{incident_id(sev1)}")
        paged_at = parse_iso(body["clocks"]["oncall_notified_at"])
        assert paged_at < MONDAY_09 - timedelta(days=1)
        assert "oncall_paged" in [t["kind"] for t in body["timeline"]]

        # Severity 2: the client hears at once, on-call only when the office opens.
        await eventually(lambda: mails(inbox, to=CLIENT, subject=f"[{sev2.ref}] Severity 2"))
        _, body = await api(running, "GET", f"/api/incidents/{incident_id(sev2)}")
        assert body["clocks"]["oncall_notified_at"] is None
        assert body["clocks"]["calendar"] == "business"
        assert body["clocks"]["response_due_at"] == "2026-11-30T17:00:00Z"
        assert [n["kind"] for n in body["notifications"]] == ["opened"]
        assert mails(inbox, to=ONCALL, subject=f"[{sev2.ref}]") == []
        _, queue = await api(running, "GET", "/api/queue")
        assert [item["id"] for item in queue["queue"]] == [sev1.id, sev2.id]

        clock.advance(MONDAY_09 - clock.now())
        notice = await eventually(
            lambda: mails(inbox, to=ONCALL, subject=f"[{sev2.ref}] New Severity 2")
        )
        assert len(notice) == 1
        _, body = await api(running, "GET", f"/api/incidents/{incident_id(sev2)}")
        assert parse_iso(body["clocks"]["oncall_notified_at"]) >= MONDAY_09
        kinds = [t["kind"] for t in body["timeline"]]
        assert kinds.count("oncall_notified") == 1
        # Still waiting for a person: notifying on-call is not a response.
        _, queue = await api(running, "GET", "/api/queue")
        assert [item["id"] for item in queue["queue"]] == [sev1.id, sev2.id]


async def test_the_queue_puts_severity_1_first_then_orders_by_response_due(
    new_target: NewTarget, tmp_path: Path
) -> None:
    blog, blog_url = await new_target()
    admin, admin_url = await new_target()
    shop, shop_url = await new_target()
    clock = ShiftedClock(SATURDAY_03)
    config = make_config(
        tmp_path,
        # Standard plan: a Saturday incident's clocks wait for Monday.
        client("acme", site("blog", blog_url, severity=2), site("shop", shop_url)),
        # Enterprise plan: its clocks run around the clock, so its Severity 2 is due first.
        client("bigco", site("admin", admin_url, severity=2), plan="enterprise"),
    )
    async with running_monitor(config, clock=clock) as running:
        blog.set("/", status=500)
        acme_sev2 = await eventually(lambda: open_incident_of(running, "acme/blog"))
        admin.set("/", status=500)
        bigco_sev2 = await eventually(lambda: open_incident_of(running, "bigco/admin"))
        shop.set("/", status=500)
        sev1 = await eventually(lambda: open_incident_of(running, "acme/shop"))

        status, body = await api(running, "GET", "/api/queue")
        assert status == 200
        queue = body["queue"]
        zones = {item["client"]: item["client_timezone"] for item in queue}
        assert zones == {
            client_id: client_config.business_hours.timezone
            for client_id, client_config in ((c.id, c) for c in config.clients)
        }
        assert [(item["id"], item["severity"]) for item in queue] == [
            (sev1.id, 1),
            (bigco_sev2.id, 2),
            (acme_sev2.id, 2),
        ]
        # Severity 1 is first though it opened last and falls due after the enterprise one.
        due = [parse_iso(item["clocks"]["response_due_at"]) for item in queue]
        assert due[1] < due[0] < due[2]
        assert sev1.opened_at > bigco_sev2.opened_at > acme_sev2.opened_at

        status, _ = await api(
            running, "POST", f"/api/incidents/{incident_id(sev1)}/acknowledge", {"by": "bob"}
        )
        assert status == 200
        _, body = await api(running, "GET", "/api/queue")
        assert [item["id"] for item in body["queue"]] == [bigco_sev2.id, acme_sev2.id]


# --- the CLI against the running monitor --------------------------------------------------


async def cli(
    *args: str, timeout: float = 30, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    # The token and the URL are given on the command line (or in `env`), never inherited.
    inherited = {
        name: value for name, value in os.environ.items() if name not in (TOKEN_ENV, URL_ENV)
    }
    return await run_monitor_cli(*args, timeout=timeout, env={**inherited, **(env or {})})


async def test_cli_queue_ack_and_update_call_the_running_monitor(
    new_target: NewTarget, tmp_path: Path
) -> None:
    shop, url = await new_target()
    shop.set("/", status=500)
    config = make_config(tmp_path, client("acme", site("shop", url)))
    async with running_monitor(config) as running:
        [incident] = await eventually(lambda: open_incidents(running))
        number = str(incident_id(incident))
        where = ("--url", running.url, "--token", TOKEN, "--tz", "Europe/Berlin")

        code, out, err = await cli("queue", *where)
        assert code == 0, err
        header, row = out.splitlines()[:2]
        assert header.split()[:2] == ["ID", "SEV"] and "LEFT" in header
        assert row.split()[:2] == [incident.ref, "1"]
        assert "acme/shop" in row
        # The response is due in the client's business hours: some time from now, in Berlin.
        due = incident.response_due_at
        assert due is not None
        assert f"{due.astimezone(ZoneInfo('Europe/Berlin')):%H:%M} CE" in row
        # No config here: the client's zone (London) comes with the API's incident JSON.
        london = due.astimezone(ZoneInfo("Europe/London"))
        assert f"{london:%H:%M} {london:%Z}" in row
        assert re.search(r"  in \d+ (d|h|min)", row), row

        code, out, err = await cli("ack", incident.ref, "--by", "bob", "--url", running.url)
        assert code == 2 and "401" in err and f"set {TOKEN_ENV}" in err
        code, out, err = await cli(
            "update", number, "--by", "bob", "--text", "x", "--url", running.url, "--token", "no"
        )
        assert code == 2 and "401" in err and "Traceback" not in err
        code, out, err = await cli("ack", "INC-x1", "--by", "bob", *where)
        assert code == 2 and "'INC-x1' is not an incident: write INC-42 or 42" in err
        assert await timeline_kinds(running.store, incident) == [
            TimelineKind.OPENED,
            TimelineKind.ONCALL_PAGED,
        ]

        # The ref as the queue, the logs and the mails write it; one line back.
        code, out, err = await cli("ack", incident.ref.lower(), "--by", "bob", *where)
        assert code == 0, err
        acked = await running.store.get_incident(incident_id(incident))
        assert acked is not None and acked.acknowledged_by == "bob"
        assert acked.responded_at is not None
        at = acked.responded_at.astimezone(ZoneInfo("Europe/Berlin"))
        assert out.splitlines()[0] == f"{incident.ref} acknowledged by bob at {at:%H:%M} CET"
        code, out, err = await cli("ack", incident.ref, "--by", "eve", "--json", *where)
        assert code == 0, err
        assert json.loads(out)["clocks"]["acknowledged_by"] == "bob"

        text = "We found the failing plugin and are rolling it back."
        code, out, err = await cli("update", incident.ref, "--by", "bob", "--text", text, *where)
        assert code == 0, err
        assert (
            out.startswith(f"{incident.ref} updated by bob at ") and "next client update due" in out
        )
        assert len(out.splitlines()) == 1
        [update] = [
            entry
            for entry in await running.store.timeline(incident_id(incident))
            if entry.kind is TimelineKind.CLIENT_UPDATE
        ]
        assert update.evidence == {"text": text, "by": "bob"}

        code, out, err = await cli("queue", *where)
        assert code == 0, err
        assert "the queue is empty" in out


async def _hostile(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A site whose reason phrase clears the screen, then retitles the terminal window (our
    own test server refuses to send control characters, so these are raw bytes)."""
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 500 Down \x1b[2J\x1b]0;pwned\x07 now\r\n"
            b"Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass  # the probe gave up first
    finally:
        writer.close()


async def test_cli_show_prints_the_clocks_and_timeline_without_a_targets_escape_codes(
    tmp_path: Path,
) -> None:
    server = await asyncio.start_server(_hostile, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    config = make_config(tmp_path, client("acme", site("shop", url)))
    async with server, running_monitor(config) as running:
        [incident] = await eventually(lambda: open_incidents(running))
        zones = tmp_path / "zones.yaml"  # the client's zone, which the API does not carry
        zones.write_text("clients:\n  - id: acme\n    business_hours: {timezone: Europe/London}\n")
        where = ("--url", running.url, "--token", TOKEN, "--tz", "Asia/Kolkata")
        where += ("--config", str(zones))
        code, out, err = await cli("show", f"INC-{incident_id(incident)}", *where)
        assert code == 0, err
        assert "\x1b" not in out and "\x07" not in out
        lines = out.splitlines()
        assert lines[0].split() == [incident.ref, "Severity", "1", "(Critical)", "open"]
        assert lines[1] == incident.title
        opened = incident.opened_at.astimezone(ZoneInfo("Asia/Kolkata"))
        london = incident.opened_at.astimezone(ZoneInfo("Europe/London"))
        # The operator's zone first, the client's beside it where it differs.
        assert f"{opened:%H:%M} IST" in out and f"client: {london:%H:%M} GMT" in out
        assert re.search(r"^response due +.*, in \d", out, re.M), out
        assert "failing       acme/shop/home" in out
        timeline = lines[lines.index("timeline") + 1 :]
        assert [line.split()[2] for line in timeline] == ["opened", "oncall"]
        assert "HTTP 500 Down [2J ]0;pwned now" in timeline[0]

        code, out, err = await cli("show", str(incident_id(incident)), "--json", *where)
        assert code == 0, err
        body = json.loads(out)
        assert body["ref"] == incident.ref and len(body["timeline"]) == len(timeline)
        code, out, err = await cli("show", "INC-999", *where)
        assert code == 2 and "404" in err and "999" in err


async def test_cli_finds_the_server_from_the_config_without_its_secrets_or_from_env(
    new_target: NewTarget, tmp_path: Path
) -> None:
    _, url = await new_target()
    config = make_config(tmp_path, client("acme", site("shop", url)))
    async with running_monitor(config) as running:
        port = running.url.rsplit(":", 1)[1]
        operator_file = tmp_path / "monitor.yaml"
        # The monitor's own file: the CLI reads its server block and agency zone; the SMTP
        # password and the site URL come from variables an operator's shell does not have.
        operator_file.write_text(
            f"server:\n  port: {port}\n"
            "agency:\n  timezone: America/New_York\n"
            "notifications:\n  smtp:\n    host: mail.example\n"
            "    password: ${SMTP_PASSWORD_NOT_SET}\n"
            "api:\n  token: ${MONITOR_API_TOKEN}\n"
            "clients:\n  - id: acme\n    sites:\n      - id: shop\n"
            "        url: ${SHOP_URL_NOT_SET}\n        checks: [{id: home}]\n"
        )
        environment = {"TZ": "", TOKEN_ENV: TOKEN}
        code, out, err = await cli("queue", "--config", str(operator_file), env=environment)
        assert code == 0, err
        assert out.startswith("the queue is empty")
        code, _, err = await cli("check-config", str(operator_file), env=environment)
        assert code == 2 and "SMTP_PASSWORD_NOT_SET" in err  # the whole file would need it

        # $MONITOR_URL names the server when there is no config at hand.
        code, out, err = await cli("queue", env={**environment, URL_ENV: running.url})
        assert code == 0 and out.startswith("the queue is empty"), err

        # A problem in the server block itself is the operator's to fix, with its line.
        operator_file.write_text("server:\n  port: ${MONITOR_PORT_NOT_SET}\n")
        code, _, err = await cli("queue", "--config", str(operator_file), env=environment)
        assert code == 2
        assert f"{operator_file}:2: server.port: environment variable MONITOR_PORT_NOT_SET" in err


async def test_cli_maintenance_add_list_cancel_and_resolve_force(
    new_target: NewTarget, tmp_path: Path
) -> None:
    shop, url = await new_target()
    shop.set("/", status=500)
    config = make_config(tmp_path, client("acme", site("shop", url)))
    async with running_monitor(config) as running:
        [incident] = await eventually(lambda: open_incidents(running))
        number = str(incident_id(incident))
        where = ("--url", running.url, "--token", TOKEN)
        now = datetime.now(UTC).replace(microsecond=0)

        # The add form of before still works; the open incident's clocks pause at once.
        code, out, err = await cli(
            "maintenance",
            "acme/shop",
            "--from",
            iso(now),
            "--until",
            iso(now + timedelta(hours=1)),
            "--reason",
            "PHP upgrade",
            "--by",
            "alice",
            *where,
        )
        assert code == 0, err
        window_id = json.loads(out)["id"]
        paused = await eventually(lambda: _paused(running, incident_id(incident)))
        assert paused.paused_until == now + timedelta(hours=1)
        code, out, err = await cli(
            "maintenance",
            "add",
            "acme/shop",
            "--from",
            iso(now + timedelta(days=1)),
            "--until",
            iso(now + timedelta(days=1, hours=2)),
            "--by",
            "bob",
            *where,
        )
        assert code == 0, err
        later_id = json.loads(out)["id"]

        code, out, err = await cli("maintenance", "list", *where)
        assert code == 0, err
        header, first, second = out.splitlines()
        assert header.split()[:4] == ["ID", "SITE", "STARTS", "(UTC)"]
        assert first.split()[:2] == [str(window_id), "acme/shop"] and "PHP upgrade" in first
        assert second.split()[:2] == [str(later_id), "acme/shop"]
        code, out, err = await cli("maintenance", "list", "--json", "--site", "acme/x", *where)
        assert code == 0 and json.loads(out) == {"maintenance": []}

        # Mistakes are told, with exit 2; the command alone lists what it can do.
        code, out, err = await cli("maintenance")
        assert code == 2 and "cancel ID --by NAME" in err and "list [--site SITE]" in err
        code, out, err = await cli("maintenance", "cancel", "x", "--by", "alice", *where)
        assert code == 2 and "ID" in err
        code, out, err = await cli("maintenance", "cancel", str(window_id), *where)
        assert code == 2 and "--by" in err
        code, out, err = await cli("maintenance", "cancel", "999", "--by", "alice", *where)
        assert code == 2 and "404" in err and "999" in err
        code, out, err = await cli("maintenance", "acme/shop", "--by", "alice", *where)
        assert code == 2 and "--from, --until" in err
        status, body = await api(
            running, "DELETE", f"/api/maintenance/{window_id}", {"by": "x"}, token=""
        )
        assert status == 401

        # Cancelling the window in force ends the pause now, on the timeline too.
        code, out, err = await cli("maintenance", "cancel", str(window_id), "--by", "alice", *where)
        assert code == 0, err
        assert json.loads(out)["cancelled"] is True
        await eventually(lambda: _resumed(running, incident_id(incident)))
        kinds = await timeline_kinds(running.store, incident)
        assert kinds.count(TimelineKind.MAINTENANCE_STARTED) == 1
        assert kinds.count(TimelineKind.MAINTENANCE_ENDED) == 1
        status, body = await api(running, "GET", "/api/maintenance")
        assert [item["id"] for item in body["maintenance"]] == [later_id]

        # Resolve: refused while the check fails, done with --force.
        code, out, err = await cli("resolve", number, "--by", "carol", *where)
        assert code == 2 and "409" in err and "acme/shop/home" in err
        code, out, err = await cli(
            "resolve", number, "--by", "carol", "--force", *where, "--tz", "Europe/Berlin"
        )
        assert code == 0, err
        resolved = await running.store.get_incident(incident_id(incident))
        assert resolved is not None and resolved.resolved_at is not None
        at = resolved.resolved_at.astimezone(ZoneInfo("Europe/Berlin"))
        assert out == f"{incident.ref} resolved by carol at {at:%H:%M} CET\n"


async def _paused(running: Running, number: int) -> Incident | None:
    found = await running.store.get_incident(number)
    return found if found is not None and found.paused_since is not None else None


async def _resumed(running: Running, number: int) -> bool:
    kinds = [entry.kind for entry in await running.store.timeline(number)]
    return TimelineKind.MAINTENANCE_ENDED in kinds


SLA_CONFIG = """
clients:
  - id: acme
    plan: standard
    sites: [{id: shop, url: "http://127.0.0.1:9", checks: [{id: home}]}]
  - id: rich
    plan: retainer
    sites: [{id: shop, url: "http://127.0.0.1:9", checks: [{id: home}]}]
"""


@pytest.mark.parametrize(
    ("client_id", "severity", "expected"),
    [
        # Saturday 03:00 UTC, standard plan: the clocks start at Monday 09:00 (UTC hours).
        (
            "acme",
            1,
            '{"calendar": "business", "response_aim_at": "2026-11-30T11:00:00Z", '
            '"response_due_at": "2026-11-30T13:00:00Z", '
            '"next_update_due_at": "2026-11-30T13:00:00Z"}',
        ),
        # A retainer covers Severity 1 around the clock.
        (
            "rich",
            1,
            '{"calendar": "24x7", "response_aim_at": "2026-11-28T05:00:00Z", '
            '"response_due_at": "2026-11-28T07:00:00Z", '
            '"next_update_due_at": "2026-11-28T07:00:00Z"}',
        ),
        # ...but not Severity 2: one working day is Monday's 8 hours.
        (
            "rich",
            2,
            '{"calendar": "business", "response_aim_at": "2026-11-30T17:00:00Z", '
            '"response_due_at": "2026-11-30T17:00:00Z", '
            '"next_update_due_at": "2026-11-30T17:00:00Z"}',
        ),
        # Severity 4 has no update cadence: updates come on completion.
        (
            "acme",
            4,
            '{"calendar": "business", "response_aim_at": "2026-12-02T17:00:00Z", '
            '"response_due_at": "2026-12-04T17:00:00Z", "next_update_due_at": null}',
        ),
    ],
)
async def test_sla_command_prints_the_clocks_as_stable_json(
    tmp_path: Path, client_id: str, severity: int, expected: str
) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text(SLA_CONFIG)
    code, out, err = await cli(
        "sla",
        "--config",
        str(config),
        "--client",
        client_id,
        "--severity",
        str(severity),
        "--at",
        "2026-11-28T03:00:00Z",
    )
    assert code == 0, err
    assert out == expected + "\n"
    assert list(json.loads(out)) == [
        "calendar",
        "response_aim_at",
        "response_due_at",
        "next_update_due_at",
    ]


async def test_sla_command_rejects_an_unknown_client(tmp_path: Path) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text(SLA_CONFIG)
    code, out, err = await cli(
        "sla",
        "--config",
        str(config),
        "--client",
        "nobody",
        "--severity",
        "1",
        "--at",
        "2026-11-28T03:00:00Z",
    )
    assert code == 2 and out == ""
    assert "no client 'nobody'" in err and "acme" in err and "Traceback" not in err
