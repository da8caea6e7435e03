"""Reloading the config in place: checks added, changed and removed, a broken file, SIGHUP to
a real `monitor run`, POST /api/reload; real loopback targets, aiosmtpd, SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from incidents.flow import REMOVED_FROM_CONFIGURATION
from incidents.model import IncidentStatus, TimelineKind
from monitor import runtime
from monitor.app import Running, running_monitor
from monitor.config import MonitorConfig, load_config
from monitor.config.channels import ChannelConfig
from monitor.reports import report_message_id
from tests.helpers import ShiftedClock, Target, eventually, free_port
from tests.monitor_yaml import CHECKOUT_CHECK, CONTACT, HOME_CHECK, shop_monitor_yaml
from tests.smtp_helpers import Inbox, mails, smtpd
from tests.test_crash_delivery import monitor_process

TOKEN_ENV = "RELOAD_TEST_API_TOKEN"


def config_yaml(
    *,
    url: str,
    database: str,
    checks: str,
    extra_sites: str = "",
    smtp_port: int | None = None,
    port: int = 0,
    api: str = "",
) -> str:
    return (
        shop_monitor_yaml(database=database, url=url, checks=checks, smtp_port=smtp_port, port=port)
        + f"{extra_sites}\n{api}\n"
    )


HOME = HOME_CHECK
EXTRA = """          - id: extra
            url: /extra
"""


def sqlite_files(tmp_path: Path) -> tuple[str, Path]:
    """A SQLite database URL and the config file's path, both in `tmp_path`."""
    return f"sqlite+aiosqlite:///{tmp_path / 'monitor.db'}", tmp_path / "monitor.yaml"


def reload_metric(running: Running, name: str) -> float | None:
    return running.registry.get_sample_value(f"monitor_config_last_reload_{name}")


async def test_a_check_added_by_a_reload_starts_probing(
    target: tuple[Target, str], database_url: str, tmp_path: Path
) -> None:
    shop, url = target
    path = tmp_path / "monitor.yaml"
    path.write_text(config_yaml(url=url, database=database_url, checks=HOME))
    async with running_monitor(load_config(path), config_path=path) as running:
        await eventually(lambda: shop.hits.get("/", 0) >= 2)
        assert shop.hits.get("/extra", 0) == 0
        path.write_text(config_yaml(url=url, database=database_url, checks=HOME + EXTRA))

        result = await running.reloader.reload(trigger="test")

        assert result.ok and result.applied is not None
        assert result.applied.added == ["acme/shop/extra"]
        assert result.applied.removed == [] and result.needs_restart == []
        await eventually(lambda: shop.hits.get("/extra", 0) >= 3)
        assert [check.key for check in running.monitor.checks] == [
            "acme/shop/home",
            "acme/shop/extra",
        ]
        assert reload_metric(running, "successful") == 1
        assert running.registry.get_sample_value("monitor_checks_configured") == 2


async def test_a_changed_interval_takes_effect_from_the_next_run(
    target: tuple[Target, str], tmp_path: Path
) -> None:
    shop, url = target
    database, path = sqlite_files(tmp_path)
    hourly = HOME + "          - id: slow\n            url: /slow\n            interval: 1h\n"
    path.write_text(config_yaml(url=url, database=database, checks=hourly))
    async with running_monitor(load_config(path), config_path=path) as running:
        await eventually(lambda: shop.hits.get("/", 0) >= 2)
        before = shop.hits.get("/slow", 0)  # at most its one run of the hour
        home_state = running.monitor.check_state("acme/shop/home")
        path.write_text(
            config_yaml(url=url, database=database, checks=hourly.replace("1h", "100ms"))
        )

        result = await running.reloader.reload(trigger="test")

        assert result.ok and result.applied is not None
        assert result.applied.changed == ["acme/shop/slow"]
        # Hourly, three more runs would take three hours; at 100 ms they take a moment.
        await eventually(lambda: shop.hits.get("/slow", 0) >= before + 3, timeout=5)
        # The unchanged check kept its state: its run of successes began before the reload
        # (a state started afresh would date it after).
        assert home_state is not None and home_state.since is not None
        now = running.monitor.check_state("acme/shop/home")
        assert now is not None and now.last_result_at != home_state.last_result_at
        assert now.since == home_state.since


def client_mails(inbox: Inbox) -> list[EmailMessage]:
    return mails(inbox, to=CONTACT)


def subject(mail: EmailMessage) -> str:
    return " ".join(str(mail["Subject"]).split())


BLOG = """      - id: blog
        name: blog.acme.example
        url: {url}
        checks:
          - id: home
            url: /blog
"""


async def test_removing_the_checks_of_an_open_incident_resolves_it_without_a_client_mail(
    target: tuple[Target, str], database_url: str, tmp_path: Path
) -> None:
    shop, url = target
    inbox = Inbox()
    path = tmp_path / "monitor.yaml"
    async with smtpd(inbox) as smtp_port:

        def write(checks: str) -> None:
            path.write_text(
                config_yaml(
                    url=url,
                    database=database_url,
                    checks=checks,
                    extra_sites=BLOG.format(url=url),
                    smtp_port=smtp_port,
                )
            )

        write(HOME + CHECKOUT_CHECK)
        async with running_monitor(load_config(path), config_path=path) as running:
            shop.set("/checkout", status=500)
            shop.set("/blog", status=500)
            await eventually(lambda: len(client_mails(inbox)) >= 2, timeout=15)
            opened = {i.site: i for i in await running.store.list_incidents(open_only=True)}
            assert set(opened) == {"acme/shop", "acme/blog"}

            write(HOME)  # the checkout check goes; the shop's home stays
            result = await running.reloader.reload(trigger="test")

            assert result.ok and result.applied is not None
            assert result.applied.removed == ["acme/shop/checkout"]
            shop_incident = opened["acme/shop"]
            assert result.applied.resolved == [shop_incident.ref]
            assert shop_incident.id is not None
            stored = await running.store.get_incident(shop_incident.id)
            assert stored is not None and stored.status is IncidentStatus.RESOLVED
            last = (await running.store.timeline(shop_incident.id))[-1]
            assert last.kind is TimelineKind.RESOLVED
            assert REMOVED_FROM_CONFIGURATION in last.message
            # The blog's incident was not touched by the reload and resolves as usual; its
            # resolution mail, sent after, shows the outbox had nothing else for the client.
            assert [i.ref for i in running.monitor.open_incidents()] == [opened["acme/blog"].ref]
            shop.set("/blog", status=200)
            await eventually(lambda: len(client_mails(inbox)) >= 3, timeout=15)
            # The checkout still answers 500: nobody probes it, so no new incident opens.
            hits = shop.hits.get("/checkout", 0)
            await eventually(lambda: shop.hits.get("/", 0) >= 5)
            assert shop.hits.get("/checkout", 0) <= hits + 1  # at most one probe in flight
            assert len(await running.store.list_incidents()) == 2
            assert await running.store.list_incidents(open_only=True) == []
    subjects = sorted(subject(m) for m in client_mails(inbox))
    assert len(subjects) == 3, subjects
    assert sum("Resolved" in s for s in subjects) == 1
    assert any("Resolved: blog.acme.example" in s for s in subjects), subjects


BROKEN = """          - id: home
            url: /
            interval: 5 minutes
          - id: other
            url: /other
            timeout: never
"""


async def test_a_broken_file_keeps_the_old_config_running(
    target: tuple[Target, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shop, url = target
    database, path = sqlite_files(tmp_path)
    path.write_text(config_yaml(url=url, database=database, checks=HOME))
    async with running_monitor(load_config(path), config_path=path) as running:
        loaded_at = reload_metric(running, "success_timestamp_seconds")
        assert loaded_at is not None and loaded_at > 0
        assert reload_metric(running, "successful") == 1
        path.write_text(config_yaml(url=url, database=database, checks=BROKEN))
        lines = path.read_text().splitlines()
        interval_line = lines.index("            interval: 5 minutes") + 1
        timeout_line = lines.index("            timeout: never") + 1

        with caplog.at_level(logging.ERROR, logger="monitor.reload"):
            result = await running.reloader.reload(trigger="test")

        assert not result.ok and result.applied is None
        assert len(result.errors) == 2
        assert result.errors[0].startswith(f"{path}:{interval_line}: ")
        assert "clients[0].sites[0].checks[0].interval" in result.errors[0]
        assert result.errors[1].startswith(f"{path}:{timeout_line}: ")
        logged = [r.getMessage() for r in caplog.records if r.name == "monitor.reload"]
        for error in result.errors:
            assert any(error in message for message in logged), (error, logged)
        assert reload_metric(running, "successful") == 0
        assert reload_metric(running, "success_timestamp_seconds") == loaded_at
        # The old config goes on: its check keeps being probed at its old interval.
        hits = shop.hits.get("/", 0)
        await eventually(lambda: shop.hits.get("/", 0) >= hits + 3, timeout=5)
        assert [check.key for check in running.monitor.checks] == ["acme/shop/home"]
        assert shop.hits.get("/other", 0) == 0


async def test_post_api_reload_needs_the_token_and_reads_the_environment_again(
    target: tuple[Target, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = target
    database, path = sqlite_files(tmp_path)
    api = f'api: {{token: "${{{TOKEN_ENV}}}"}}'
    path.write_text(config_yaml(url=url, database=database, checks=HOME, api=api))
    monkeypatch.setenv(TOKEN_ENV, "first-token-123")
    async with (
        running_monitor(load_config(path), config_path=path) as running,
        aiohttp.ClientSession() as http,
    ):

        async def post(token: str | None) -> tuple[int, dict[str, Any]]:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with http.post(f"{running.url}/api/reload", headers=headers) as response:
                return response.status, await response.json()

        assert (await post(None))[0] == 401
        assert (await post("wrong-token-456"))[0] == 401
        # The token rotates: the file names the variable, whose value is read at reload.
        monkeypatch.setenv(TOKEN_ENV, "second-token-789")
        path.write_text(
            config_yaml(url=url, database=database, checks=HOME + EXTRA, api=api, port=9999)
        )
        status, body = await post("first-token-123")
        assert status == 200, body
        assert body["ok"] is True and body["applied"]["added"] == ["acme/shop/extra"]
        assert body["needs_restart"] == ["server.port"]
        assert running.reloader.current.server.port == 0  # kept until a restart
        assert (await post("first-token-123"))[0] == 401
        assert "second-token-789" not in str(body)

        path.write_text("clients: [\n")
        status, body = await post("second-token-789")
        assert status == 422
        assert body["ok"] is False and body["errors"]
        assert all(error.startswith(f"{path}:") for error in body["errors"])


async def _metrics(http: aiohttp.ClientSession, url: str) -> str:
    try:
        async with http.get(f"{url}/metrics") as response:
            return await response.text() if response.status == 200 else ""
    except aiohttp.ClientError:
        return ""


async def test_sighup_reloads_a_running_monitor_process(
    target: tuple[Target, str], tmp_path: Path
) -> None:
    shop, url = target
    database = tmp_path / "monitor.db"
    port = free_port()
    path = tmp_path / "monitor.yaml"

    def write(checks: str) -> None:
        path.write_text(
            config_yaml(
                url=url, database=f"sqlite+aiosqlite:///{database}", checks=checks, port=port
            )
        )

    write(HOME)
    log_path = tmp_path / "monitor.log"
    base = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log_file:
        async with (
            monitor_process(path, log_file) as process,
            aiohttp.ClientSession() as http,
        ):
            await eventually(lambda: shop.hits.get("/", 0) >= 2, timeout=30)
            text = await eventually(lambda: _metrics(http, base), timeout=10)
            assert "monitor_config_last_reload_successful 1.0" in text

            write(HOME + EXTRA)
            process.send_signal(signal.SIGHUP)
            await eventually(lambda: shop.hits.get("/extra", 0) >= 3, timeout=15)

            path.write_text(path.read_text().replace("url: /extra", "url: /extra\n    bad: 1"))
            process.send_signal(signal.SIGHUP)

            async def failed() -> bool:
                return "monitor_config_last_reload_successful 0.0" in await _metrics(http, base)

            await eventually(failed, timeout=15)
            # Still the same process, still probing both checks.
            hits = shop.hits.get("/extra", 0)
            await eventually(lambda: shop.hits.get("/extra", 0) >= hits + 3, timeout=10)
            assert process.returncode is None
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), 30)
    log = log_path.read_text()
    assert code == 0, log
    assert "config reloaded (SIGHUP): 1 checks added" in log
    assert "config reload (SIGHUP) refused" in log and f"{path}:" in log
    assert "Traceback" not in log


async def test_a_changed_calendar_recomputes_open_clocks_and_says_so(
    target: tuple[Target, str], database_url: str, tmp_path: Path
) -> None:
    shop, url = target
    path = tmp_path / "monitor.yaml"
    london = config_yaml(url=url, database=database_url, checks=HOME)
    path.write_text(london)
    async with running_monitor(load_config(path), config_path=path) as running:
        shop.set("/", status=500)
        [incident] = await eventually(lambda: running.monitor.open_incidents(), timeout=15)
        assert incident.id is not None and incident.response_due_at is not None

        path.write_text(  # no calendar change
            config_yaml(url=url, database=database_url, checks=HOME + EXTRA)
        )
        quiet = await running.reloader.reload(trigger="test")
        assert quiet.applied is not None and quiet.applied.recomputed == []

        path.write_text(
            config_yaml(url=url, database=database_url, checks=HOME + EXTRA).replace(
                "Europe/London", "Pacific/Auckland"
            )
        )
        result = await running.reloader.reload(trigger="test")

        assert result.ok and result.applied is not None
        assert result.applied.recomputed == [incident.ref]
        [now_open] = running.monitor.open_incidents()
        assert now_open.id == incident.id
        assert now_open.response_due_at != incident.response_due_at
        notes = [
            entry
            for entry in await running.store.timeline(incident.id)
            if entry.kind is TimelineKind.INTERNAL_NOTE
        ]
        assert len(notes) == 1
        assert notes[0].message.startswith(
            "SLA clocks recomputed: the client's calendar changed in the configuration"
        )
        stored = await running.store.get_incident(incident.id)
        assert stored is not None and stored.response_due_at == now_open.response_due_at


async def test_the_watched_file_reloads_when_its_content_changes(
    target: tuple[Target, str], tmp_path: Path
) -> None:
    shop, url = target
    database, path = sqlite_files(tmp_path)

    def write(checks: str) -> None:
        text = config_yaml(url=url, database=database, checks=checks)
        path.write_text(
            text.replace(
                "server: {port: 0}", "server: {port: 0, watch_config: true, watch_interval: 100ms}"
            )
        )

    write(HOME)
    async with running_monitor(load_config(path), config_path=path) as running:
        write(HOME + EXTRA)
        await eventually(lambda: shop.hits.get("/extra", 0) >= 2, timeout=10)
        assert [check.key for check in running.monitor.checks] == [
            "acme/shop/home",
            "acme/shop/extra",
        ]
        assert running.reloader.current.server.watch_config


async def test_a_removed_check_s_incident_is_mailed_to_the_client_when_configured(
    target: tuple[Target, str], tmp_path: Path
) -> None:
    shop, url = target
    inbox = Inbox()
    database, path = sqlite_files(tmp_path)
    async with smtpd(inbox) as smtp_port:

        def write(checks: str) -> None:
            text = config_yaml(url=url, database=database, checks=checks, smtp_port=smtp_port)
            path.write_text(
                text.replace(
                    "  poll_interval: 100ms",
                    "  poll_interval: 100ms\n  mail_on_removed_check: true",
                )
            )

        write(HOME + CHECKOUT_CHECK)
        async with running_monitor(load_config(path), config_path=path) as running:
            shop.set("/checkout", status=500)
            [opening] = await eventually(lambda: client_mails(inbox), timeout=15)
            write(HOME)
            result = await running.reloader.reload(trigger="test")
            assert result.applied is not None and len(result.applied.resolved) == 1
            await eventually(lambda: len(client_mails(inbox)) >= 2, timeout=15)
    first, resolved = client_mails(inbox)
    [ref] = result.applied.resolved
    assert subject(resolved).startswith(f"[{ref}] Resolved: ")
    body = resolved.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "Our team closed it by hand." in text
    assert "configuration" not in text  # the team's wording, not ours
    assert resolved["In-Reply-To"] == first["Message-ID"] == opening["Message-ID"]


async def test_reloads_during_an_incident_lose_and_duplicate_nothing(
    target: tuple[Target, str], database_url: str, tmp_path: Path
) -> None:
    shop, url = target
    inbox = Inbox()
    path = tmp_path / "monitor.yaml"
    async with smtpd(inbox) as smtp_port:

        def write(checks: str) -> None:
            path.write_text(
                config_yaml(url=url, database=database_url, checks=checks, smtp_port=smtp_port)
            )

        write(HOME)
        async with running_monitor(load_config(path), config_path=path) as running:
            shop.set("/", status=500)
            [opening] = await eventually(lambda: client_mails(inbox), timeout=15)
            [incident] = running.monitor.open_incidents()
            # Reload after reload while it is open: the same file, another interval, a check
            # added and removed again, a broken file.
            for checks in (
                HOME,
                HOME.replace("url: /", "url: /\n            interval: 150ms"),
                HOME + EXTRA,
                HOME,
                "  - broken: [",
                HOME,
            ):
                write(checks)
                await running.reloader.reload(trigger="test")
                assert [i.id for i in running.monitor.open_incidents()] == [incident.id]
            hits = shop.hits.get("/", 0)
            await eventually(lambda: shop.hits.get("/", 0) >= hits + 3)
            shop.set("/", status=200)
            await eventually(lambda: len(client_mails(inbox)) >= 2, timeout=15)
            assert [i.id for i in await running.store.list_incidents()] == [incident.id]
            assert incident.id is not None
            kinds = [entry.kind for entry in await running.store.timeline(incident.id)]
            assert kinds.count(TimelineKind.OPENED) == 1 and kinds.count(TimelineKind.RESOLVED) == 1
    first, resolved = client_mails(inbox)
    assert first["Message-ID"] == opening["Message-ID"]
    assert subject(resolved).startswith(f"[{incident.ref}] Resolved: ")


def cluster_yaml(*, database_url: str, url: str, worker: str, sites: list[str]) -> str:
    listed = "".join(
        f"""
      - id: {site}
        url: {url}
        checks:
          - {{id: home, url: /{site}}}"""
        for site in sites
    )
    return f"""
database: {{url: "{database_url}"}}
server: {{port: 0}}
scheduler: {{sla_tick: 100ms}}
cluster: {{worker_id: {worker}, lease: 2s}}
defaults: {{interval: 100ms, timeout: 2s, failures_to_open: 2, successes_to_resolve: 2}}
clients:
  - id: acme
    sites:{listed}
"""


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_processes_sharing_postgresql_each_reload_their_own_file(
    target: tuple[Target, str], database_url: str, tmp_path: Path
) -> None:
    shop, url = target
    paths = {worker: tmp_path / f"{worker}.yaml" for worker in ("a", "b")}

    def write(sites: list[str]) -> None:
        for worker, path in paths.items():
            path.write_text(
                cluster_yaml(database_url=database_url, url=url, worker=worker, sites=sites)
            )

    write(["s0", "s1"])
    shop.set("/s0", status=500)
    async with (
        running_monitor(load_config(paths["a"]), config_path=paths["a"]) as a,
        running_monitor(load_config(paths["b"]), config_path=paths["b"]) as b,
    ):
        processes = (a, b)

        def held() -> dict[str, set[str]]:
            return {r.monitor.identity.worker: set(r.monitor.ownership.held) for r in processes}

        [incident] = await eventually(
            lambda: a.monitor.open_incidents() or b.monitor.open_incidents(), timeout=15
        )
        write(["s1", "s2"])  # s0 goes (with its open incident), s2 comes
        results = await asyncio.gather(*(r.reloader.reload(trigger="test") for r in processes))
        assert all(result.ok for result in results)
        resolved = [ref for result in results if result.applied for ref in result.applied.resolved]
        assert resolved == [incident.ref]  # by the process that owned it, once

        await eventually(lambda: shop.hits.get("/s2", 0) >= 3, timeout=10)
        # Every site held by exactly one process, s0 by none.
        await eventually(
            lambda: (
                sorted(site for sites in held().values() for site in sites)
                == ["acme/s1", "acme/s2"]
            ),
            timeout=10,
        )
        hits, later = shop.hits.get("/s0", 0), shop.hits.get("/s2", 0) + 10
        await eventually(lambda: shop.hits.get("/s2", 0) >= later, timeout=10)
        assert shop.hits.get("/s0", 0) <= hits + 2  # at most the probes in flight
        stored = await a.store.list_incidents()
        assert [(i.id, i.is_open) for i in stored] == [(incident.id, False)]


async def test_clients_and_status_pages_follow_a_reload(
    target: tuple[Target, str], tmp_path: Path
) -> None:
    shop, url = target
    inbox = Inbox()
    database, path = sqlite_files(tmp_path)
    async with smtpd(inbox) as smtp_port:
        first = config_yaml(url=url, database=database, checks=HOME, smtp_port=smtp_port)
        path.write_text(first)
        async with (
            running_monitor(load_config(path), config_path=path) as running,
            aiohttp.ClientSession() as http,
        ):
            async with http.get(f"{running.url}/status/acme") as response:
                assert response.status == 404  # no status page yet
            # A new contact, a new name and a public status page, all without a restart.
            path.write_text(
                first.replace(f"contacts: [{CONTACT}]", "contacts: [desk@acme.example]")
                .replace("name: Acme Ltd", "name: Acme Group")
                .replace("    sites:", "    status_page: {public: true}\n    sites:", 1)
            )
            result = await running.reloader.reload(trigger="test")
            assert result.ok
            async with http.get(f"{running.url}/status/acme") as response:
                assert response.status == 200
                assert "Acme Group" in await response.text()

            shop.set("/", status=500)
            [opening] = await eventually(
                lambda: [m for m in inbox.messages() if "desk@acme.example" in str(m["To"])],
                timeout=15,
            )
            body = opening.get_body(("plain",))
            assert body is not None and "Hello Acme Group," in body.get_content()
    assert client_mails(inbox) == []  # the old contact heard nothing


async def test_monthly_reports_switched_on_by_a_reload_are_queued(
    target: tuple[Target, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = target
    # How often the report loop looks: seconds here instead of minutes.
    monkeypatch.setattr(runtime, "REPORT_CHECK_SECONDS", 0.1)
    database, path = sqlite_files(tmp_path)
    text = config_yaml(url=url, database=database, checks=HOME)
    path.write_text(text)
    # Tuesday 1 December 2026, 09:00 in London: the first working day, a report is due.
    clock = ShiftedClock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    november = report_message_id("acme", "2026-11", "agency.example")
    async with running_monitor(load_config(path), config_path=path, clock=clock) as running:
        await eventually(lambda: running.monitor.check_state("acme/shop/home"))
        assert not await running.store.notice_queued(november)
        path.write_text("reports: {monthly: true}\n" + text)
        assert (await running.reloader.reload(trigger="test")).ok
        await eventually(lambda: running.store.notice_queued(november), timeout=30)


async def test_the_outbox_knows_new_channels_before_the_incidents_route_to_them(
    tmp_path: Path,
) -> None:
    # Monitor.apply gives the desk the new routes and channels, with awaits in between, before
    # ordinary subscribers run: a message routed to a new channel in that moment met an
    # outbox that did not know it ("no such channel": failed for good, the page lost).
    database, path = sqlite_files(tmp_path)
    path.write_text(config_yaml(url="http://127.0.0.1:9", database=database, checks=HOME))
    config = load_config(path)
    team = ChannelConfig(url=SecretStr("json://127.0.0.1:9/hook"))
    new = config.model_copy(update={"channels": {"team": team}})
    seen: list[tuple[str, bool]] = []

    def outbox_knows_team(applied: MonitorConfig) -> None:
        chats = running.outbox.chats
        seen.append(("outbox", chats is not None and chats.service("team") is not None))
        seen.append(("monitor applied", running.monitor.config is applied))

    async with running_monitor(config, load=lambda: new) as running:
        running.reloader.subscribe(outbox_knows_team, first=True)
        assert (await running.reloader.reload(trigger="test")).ok
    assert seen == [("outbox", True), ("monitor applied", False)]
