"""The `monitor` command as an operator runs it: real processes, signals, exit codes."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from incidents.model import TimelineKind
from monitor.app import running_monitor
from monitor.browser_pool import find_chromium
from monitor.config import load_config_text
from monitor.store import Store
from tests.client_mail_scan import eml_faults
from tests.helpers import (
    Target,
    eventually,
    promtool_accepts,
    run_monitor_cli,
    start_monitor_cli,
)
from tests.monitor_yaml import acme_shop_yaml, head_yaml


def _config_yaml(*, site_url: str, database: Path, port: int = 0) -> str:
    return head_yaml(database=f"sqlite+aiosqlite:///{database}", port=port) + acme_shop_yaml(
        url=site_url, name=None, site_name=None, contact=None, business_hours=False
    )


async def test_check_config_accepts_the_shipped_config_and_rejects_a_bad_one(
    tmp_path: Path,
) -> None:
    code, out, _ = await run_monitor_cli("check-config", "config/monitor.yaml")
    assert code == 0, out
    assert "OK" in out

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "clients:\n  - id: acme\n    sites:\n      - id: shop\n        url: http://x\n"
        "        checks:\n          - id: home\n            interval: 5 minutes\n"
    )
    code, out, err = await run_monitor_cli("check-config", str(bad))
    assert code == 2
    assert f"{bad}:8: clients[0].sites[0].checks[0].interval: must be a duration" in err
    assert "Traceback" not in err


# A browser check up to `steps:` (line 9); each test appends the steps it is about.
BROWSER_CHECK = (
    "clients:\n  - id: acme\n    sites:\n      - id: shop\n        url: http://x\n"
    "        checks:\n          - id: checkout\n            kind: browser\n"
    "            steps:\n"
)


async def test_check_config_names_file_and_line_of_bad_browser_steps(tmp_path: Path) -> None:
    bad = tmp_path / "browser.yaml"
    bad.write_text(
        BROWSER_CHECK + "              - {name: open, goto: /express}\n"
        "              - name: pay\n                click: '#pay'\n                fill: '#card'\n"
        "              - name: done\n                wait_for: {selector: '#a', text: b}\n"
    )
    code, _, err = await run_monitor_cli("check-config", str(bad))
    assert code == 2
    assert (
        f"{bad}:11: clients[0].sites[0].checks[0].steps[1]: step 'pay': give exactly one "
        "action of goto, click, fill" in err
    )
    assert f"{bad}:15: clients[0].sites[0].checks[0].steps[2].wait_for: give exactly one" in err
    assert "Traceback" not in err
    # Across steps: a value used before any step saves it.
    bad.write_text(
        BROWSER_CHECK
        + "              - {name: cancel, goto: '/cancel?o={{order}}', always: true}\n"
    )
    code, _, err = await run_monitor_cli("check-config", str(bad))
    assert code == 2
    assert "steps[0] (cancel): uses {{order}} which no earlier step saves" in err


async def test_run_refuses_an_invalid_config_without_starting(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("clients: [\n")
    code, _, err = await run_monitor_cli("run", "--config", str(bad))
    assert code == 2
    assert str(bad) in err and "Traceback" not in err


async def test_run_refuses_a_bad_location_flag_without_starting() -> None:
    code, _, err = await run_monitor_cli(
        "run", "--config", "config/monitor.yaml", "--location", "EU west"
    )
    assert code == 2
    assert "--location" in err and "pattern" in err and "Traceback" not in err


async def test_kill_and_restart_mid_incident_continues_the_same_incident(
    target: tuple[Target, str], tmp_path: Path
) -> None:
    shop, url = target
    shop.set("/", status=500)
    database = tmp_path / "monitor.db"
    config = tmp_path / "monitor.yaml"
    config.write_text(_config_yaml(site_url=url, database=database))
    store = await Store.open(f"sqlite+aiosqlite:///{database}")
    try:
        first = await start_monitor_cli("run", "--config", str(config))
        [incident] = await eventually(lambda: store.list_incidents(open_only=True), timeout=20)
        first.kill()  # SIGKILL: no chance to clean up
        await first.wait()

        hits_before_restart = shop.hits["/"]
        second = await start_monitor_cli("run", "--config", str(config))
        # The restarted monitor keeps probing the failing site...
        await eventually(lambda: shop.hits["/"] >= hits_before_restart + 5, timeout=20)
        # ...and has not opened a second incident for it.
        assert [i.id for i in await store.list_incidents()] == [incident.id]

        shop.set("/", status=200)
        resolved = await eventually(lambda: _resolved(store, incident.id), timeout=20)
        second.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.wait(), 20) == 0

        assert [i.id for i in await store.list_incidents()] == [incident.id]
        kinds = [entry.kind for entry in await store.timeline(resolved.id)]
        assert kinds.count(TimelineKind.OPENED) == 1
        assert kinds[-1] is TimelineKind.RESOLVED
    finally:
        await store.close()


async def _resolved(store: Store, incident_id: int | None) -> Any:
    assert incident_id is not None
    incident = await store.get_incident(incident_id)
    return incident if incident is not None and not incident.is_open else None


async def test_sigterm_finishes_in_flight_work_and_exits_0_with_json_logs(
    target: tuple[Target, str], tmp_path: Path
) -> None:
    shop, url = target
    shop.set("/", status=503)
    config = tmp_path / "monitor.yaml"
    config.write_text(_config_yaml(site_url=url, database=tmp_path / "m.db"))
    process = await start_monitor_cli("--log-format", "json", "run", "--config", str(config))
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    try:
        await eventually(lambda: store.list_incidents(open_only=True), timeout=20)
        # A probe that is in flight when the signal arrives still completes and is recorded.
        hits = shop.hits["/"]
        shop.set("/", delay=0.5)
        await eventually(lambda: shop.hits["/"] > hits)  # the slow probe has reached the target
        process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(process.communicate(), 20)
        [last] = await store.recent_results("acme/shop/home", limit=1)
    finally:
        await store.close()
    assert process.returncode == 0
    assert last.latency is not None and last.latency >= 0.5  # the slow, in-flight probe
    lines = [json.loads(line) for line in err.decode().splitlines() if line.strip()]
    events = [line.get("event") for line in lines]
    assert "config_loaded" in events
    assert "incident_opened" in events
    assert lines[-1]["message"] == "stopped"
    assert all("Traceback" not in json.dumps(line) for line in lines)


async def test_incidents_command_lists_open_incidents_as_table_and_json(
    target: tuple[Target, str], tmp_path: Path
) -> None:
    shop, url = target
    shop.set("/", status=500)
    database = tmp_path / "m.db"
    config = load_config_text(_config_yaml(site_url=url, database=database))
    async with running_monitor(config, serve=False) as running:
        [incident] = await eventually(lambda: running.store.list_incidents(open_only=True))

    code, out, _ = await run_monitor_cli(
        "incidents", "--database", f"sqlite+aiosqlite:///{database}"
    )
    assert code == 0
    assert incident.ref in out and "open" in out and "is down" in out

    code, out, _ = await run_monitor_cli(
        "incidents", "--open", "--json", "--database", f"sqlite+aiosqlite:///{database}"
    )
    assert code == 0
    listed = json.loads(out)["incidents"]
    assert [(i["id"], i["severity"], i["status"]) for i in listed] == [(incident.id, 1, "open")]


async def test_metrics_pass_promtool_check_metrics(
    target: tuple[Target, str], tmp_path: Path
) -> None:
    shop, url = target
    shop.set("/", status=500)
    config = load_config_text(_config_yaml(site_url=url, database=tmp_path / "m.db"))
    async with running_monitor(config) as running:
        await eventually(lambda: running.store.list_incidents(open_only=True))
        import aiohttp

        async with aiohttp.ClientSession() as http, http.get(f"{running.url}/metrics") as response:
            exposition = await response.read()
    await promtool_accepts(exposition)
    assert b"probe_duration_seconds_bucket" in exposition


@pytest.mark.timeout(120)
async def test_demo_runs_its_script_and_summarises_the_incidents(tmp_path: Path) -> None:
    code, out, err = await run_monitor_cli(
        "demo", "--speed", "3", "--keep", str(tmp_path), timeout=100
    )
    assert code == 0, err
    assert "── outage" in out and "── down while slow" in out
    assert "incident opened INC-1 Severity 1" in out
    assert "incident opened INC-2 Severity 2" in out
    # Slow pages are named (whichever confirmed first, or both), never "down".
    [slow] = [line for line in out.splitlines() if "incident opened INC-2" in line]
    # 1.5 s measured; 1.6 when the demo's Chromium (browser check) shares the two cores.
    assert re.search(r"loads? slowly \(1\.[56] s, target 1 s\)", slow), slow
    assert "incident escalated INC-2 to Severity 1" in out
    # A broken checkout (payment fails, every page answers 200) opens a Severity 1 while the
    # home page is up, and a missing product image a Severity 3.
    assert (
        "incident opened INC-3 Severity 1 (Critical) demo/shop: demo-shop.local: Checkout is "
        "failing (the pay step" in out
    )
    assert "incident opened INC-4 Severity 3 (Moderate)" in out and "broken_asset" in out
    # The admin panel answering 500 while the shop works: named, and the shop is not "down".
    admin = "demo-shop.local: Admin panel unreachable (HTTP 500)"
    assert f"incident opened INC-5 Severity 2 (Major) demo/shop: {admin}" in out
    # With Chromium, the browser check catches the script error that no http check sees.
    browser = find_chromium() is not None
    if browser:
        journey = "demo-shop.local: Express checkout is failing (the page has an error at the"
        assert f"incident opened INC-6 Severity 1 (Critical) demo/shop: {journey}" in out
        assert f"[INC-6] PAGE Severity 1: {journey}" in out
    else:
        assert "browser checks are skipped: no Chromium found" in out
    incidents = 6 if browser else 5
    summary = out[out.index(f"Incidents ({incidents}):") :]
    assert summary.count("resolved") == incidents
    # The emails, written as .eml files since the demo has no SMTP server.
    # Every page fails at once: the opening names whichever check confirmed first; once the
    # home page (the availability scope) is confirmed too, the title says the site is down.
    assert "owner@demo-shop.example  [INC-1] Severity 1: demo-shop.local" in summary
    assert "owner@demo-shop.example  [INC-1] Resolved: demo-shop.local is down" in summary
    assert "oncall@agency.example    [INC-1] PAGE Severity 1" in summary
    assert "[INC-1] Resolved:" in summary and "[INC-2] Escalated to Severity 1" in summary
    assert "[INC-3] PAGE Severity 1" in summary and "[INC-4] New Severity 3" in summary
    assert f"owner@demo-shop.example  [INC-5] Severity 2: {admin}" in summary
    assert f"owner@demo-shop.example  [INC-5] Resolved: {admin}" in summary
    # Only the outage is "down" (its resolution subject carries the title it ended with).
    down = [line for line in summary.splitlines() if "is down" in line]
    assert down and all("[INC-1]" in line or line.startswith("INC-1 ") for line in down)
    # Opened with a part's title, the client hears once that the whole site is down, in the
    # thread, before the resolution; opened by the home page, the opening said so already.
    opened_down = "[INC-1] Severity 1: demo-shop.local is down" in summary
    told_down = "owner@demo-shop.example  [INC-1] Now the whole site: demo-shop.local is down"
    assert summary.count(told_down) == (0 if opened_down else 1)
    if not opened_down:
        assert summary.index(told_down) < summary.index("[INC-1] Resolved:")
    # INC-1: opened, page, the whole site down (unless opened so), resolved; INC-2: opened,
    # notify, escalated, page, resolved; INC-3: opened, page, resolved; INC-4 (Severity 3: no
    # client mail): notify; INC-5: opened, notify, resolved; INC-6 (the browser check):
    # opened, page, resolved.
    mails = (15 if opened_down else 16) + (3 if browser else 0)
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == mails
    # Written by the demo's process, so the suite-wide scan of built mails never saw them.
    assert eml_faults(tmp_path / "outbox", contact="owner@demo-shop.example") == []
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}")
    try:
        incidents = await store.list_incidents()
    finally:
        await store.close()
    assert sorted((i.id, int(i.severity), str(i.status)) for i in incidents) == [
        (1, 1, "resolved"),
        (2, 1, "resolved"),
        (3, 1, "resolved"),
        (4, 3, "resolved"),
        (5, 2, "resolved"),
    ] + ([(6, 1, "resolved")] if browser else [])
