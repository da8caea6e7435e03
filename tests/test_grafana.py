"""Issue 5: the Grafana dashboards and the Prometheus alert rules, proven against the monitor.

The JSON is checked for structure; the rules go through promtool; then every PromQL
expression of every panel, variable and rule runs on a real Prometheus scraping a real,
in-process monitor whose loopback targets produce every metric: each must parse and return
data, so a metric or label we do not export fails here, not on an operator's screen. The
monitor runs every kind of series the panels draw: an https site, a slow one, a down one, a
domain check against a loopback RDAP server, heartbeats pinged (one run timed, one failed), an
on-call rotation whose escalation pages at once, and a chat channel (Apprise `json://` to a
loopback receiver) that a page reaches."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry
from yarl import URL

from monitor.app import Running, running_monitor
from monitor.config import load_config_text
from monitor.metrics import Metrics
from tests.channel_helpers import Receiver
from tests.helpers import ShiftedClock, Target, eventually, free_port, skip_unless_required

GRAFANA = Path(__file__).resolve().parent.parent / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
ALERTS = GRAFANA / "prometheus" / "alerts.yaml"
ALERTS_TEST = GRAFANA / "prometheus" / "alerts_test.yaml"
JOB = "agency-monitor"
TOKEN = "grafana-test-token"
# Heartbeat ping tokens (secrets: the config names them by ${ENV}).
PING_TOKENS = {
    "GRAFANA_BACKUP_PING": "backup-ping-token-0123456789",
    "GRAFANA_IMPORT_PING": "import-ping-token-0123456789",
}

# Grafana's own variables, filled in by Grafana itself (not from `templating`).
BUILTIN_VARIABLES = {
    "__rate_interval": "1m",
    "__range": "5m",
    "__interval": "15s",
}
VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")
# A comparison with a number (`> 0`, `== 0`); label matchers (`="x"`, `!~"y"`) never match.
SCALAR_COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)(?!\s*bool)(\s*)(?=[-\d.])")
LABEL_VALUES = re.compile(r"^label_values\((.+),\s*(\w+)\)$")

# Monday 23 November 2026, 10:00 in London: the SLA clocks start in business hours.
MONDAY_10 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
# What the loopback registry says of acme.example: healthy, 60 days to go.
DOMAIN_EXPIRES = MONDAY_10 + timedelta(days=60)


def load_dashboard(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those folded inside collapsed rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def panel_exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (f"{dashboard['title']} / {panel['title']} / {target['refId']}", target["expr"])
        for panel in all_panels(dashboard)
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def variable_exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """Query variables' `label_values(selector, label)` as the PromQL Grafana asks for."""
    found = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        match = LABEL_VALUES.match(text)
        assert match, f"{dashboard['title']}: variable {variable['name']}: {text!r}"
        selector, label = match.groups()
        found.append(
            (f"{dashboard['title']} / ${variable['name']}", f"count by ({label}) ({selector})")
        )
    return found


def rule_exprs() -> list[tuple[str, str]]:
    """Each rule's expression with its threshold turned into `bool`, so it returns data
    whether or not the alert would fire (a healthy monitor fires none of them)."""
    rules = yaml.safe_load(ALERTS.read_text())
    return [
        (f"rule {rule['alert']}", SCALAR_COMPARISON.sub(r"\1 bool\2", rule["expr"]))
        for group in rules["groups"]
        for rule in group["rules"]
    ]


def fill_in(expr: str, values: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        return values[match.group(1) or match.group(2)]

    return VARIABLE.sub(value, expr)


# ---------------------------------------------------------------------------- JSON structure


def test_there_are_three_dashboards() -> None:
    titles = {load_dashboard(path)["title"] for path in DASHBOARDS}
    assert titles == {
        "Agency monitor: uptime overview",
        "Agency monitor: incidents and SLA",
        "Agency monitor: monitor health",
    }


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.stem)
def test_dashboard_structure(path: Path) -> None:
    dashboard = load_dashboard(path)
    assert dashboard["uid"] and dashboard["schemaVersion"] >= 36
    panels = list(all_panels(dashboard))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {path.name}"

    defined = {variable["name"] for variable in dashboard["templating"]["list"]}
    assert "DS_PROMETHEUS" in defined
    for panel in panels:
        if panel["type"] == "row":
            continue
        where = f"{path.name}: panel {panel['id']} {panel['title']!r}"
        assert panel.get("datasource", {}).get("uid") in ("${DS_PROMETHEUS}", "prometheus"), where
        assert panel.get("description"), where
        assert panel["targets"], where
        for target in panel["targets"]:
            assert target.get("expr", "").strip(), where
            assert target["datasource"] == panel["datasource"], where
            used = {a or b for a, b in VARIABLE.findall(target["expr"])}
            assert used <= defined | BUILTIN_VARIABLES.keys(), f"{where}: {used - defined}"

    # The panels' layout must not overlap, or Grafana moves them around on load.
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        area = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not area & cells, f"{path.name}: panel {panel['title']!r} overlaps another"
        cells |= area


def panels_by_title(name: str) -> dict[str, dict[str, Any]]:
    dashboard = load_dashboard(GRAFANA / "dashboards" / f"{name}.json")
    return {panel["title"]: panel for panel in all_panels(dashboard) if panel["type"] != "row"}


def test_the_panels_of_domains_heartbeats_phases_paging_and_channels_exist() -> None:
    """Where an operator finds them; their queries run on the real Prometheus below."""
    uptime = panels_by_title("uptime-overview")
    domains = uptime["Domain registration days left"]
    assert domains["type"] == "table"
    assert domains["targets"][0]["expr"].startswith("sort((probe_domain_expiry_timestamp_seconds")
    assert domains["options"]["sortBy"] == [{"displayName": "Days left", "desc": False}]
    assert "monitor_heartbeat_run_seconds" in uptime["Heartbeat run time"]["targets"][0]["expr"]
    missed = " ".join(t["expr"] for t in uptime["Heartbeats missed or failed"]["targets"])
    for outcome in ('outcome="heartbeat_missed"', 'outcome="heartbeat_failed"'):
        assert outcome in missed
    # One row per check: every query keeps exactly the labels (client, site, check).
    assert missed.count("by (client, site, check)") == 3
    phases = uptime["HTTP phases of $check"]
    assert phases["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"] == "normal"
    assert 'check="$check"' in phases["targets"][0]["expr"]
    variables = {
        v["name"]: v
        for v in load_dashboard(GRAFANA / "dashboards" / "uptime-overview.json")["templating"][
            "list"
        ]
    }
    assert variables["check"]["multi"] is False  # one check's phases, stacked

    incidents = panels_by_title("incidents-sla")
    oncall = incidents["On call now"]
    assert oncall["type"] == "stat" and oncall["options"]["textMode"] == "name"
    assert oncall["targets"][0]["expr"] == "max by (person) (monitor_oncall_person)"
    assert "by (level)" in incidents["Pages per level"]["targets"][0]["expr"]
    per_channel = incidents["Notifications per channel in range"]
    channels = " ".join(t["expr"] for t in per_channel["targets"])
    for metric in ("notifications_sent", "notifications_failed", "notification_retries"):
        assert f"sum by (channel) (increase(monitor_{metric}_total[$__range]))" in channels
    health = panels_by_title("monitor-health")
    pings = health["Heartbeat pings by answer"]["targets"][0]["expr"]
    assert "monitor_heartbeat_pings_total" in pings
    reload = health["Last config reload"]["targets"][0]["expr"]
    assert reload == "min(monitor_config_last_reload_successful)"
    browser = " ".join(
        target["expr"]
        for title in ("Browser checks: pages", "Browser scheduler lag p50 / p99")
        for target in health[title]["targets"]
    )
    for metric in ("checks_in_flight", "pages_in_use", "pages_waiting", "scheduler_lag_seconds"):
        assert f"monitor_browser_{metric}" in browser
    restarts = health["Chromium restarts"]["targets"][0]["expr"]
    assert "increase(monitor_browser_restarts_total" in restarts


def test_pages_pings_and_restarts_exist_at_zero_so_increase_counts_the_first() -> None:
    """The panels draw increase() of monitor_pages_total, monitor_heartbeat_pings_total and
    monitor_browser_restarts_total; a series born at 1 would hide the first one."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    policies = load_config_text(
        """
people: [{name: alice, email: alice@agency.example}]
escalation:
  1: {levels: [{after: 0m, notify: [oncall]}, {after: 15m, notify: [alice]}]}
  2: {levels: [{after: 1h, notify: [alice]}]}
clients: [{id: acme, sites: [{id: shop, url: "https://shop.example/", checks: [{id: home}]}]}]
"""
    ).escalation
    metrics.add_escalation_levels(policies)
    metrics.add_heartbeat_pings()
    pages = {
        (sample.labels["severity"], sample.labels["level"]): sample.value
        for family in registry.collect()
        if family.name == "monitor_pages"
        for sample in family.samples
        if sample.name == "monitor_pages_total"
    }
    assert pages == {("1", "1"): 0.0, ("1", "2"): 0.0, ("2", "1"): 0.0}
    for result in ("start", "success", "fail", "unknown", "limited", "error"):
        value = registry.get_sample_value("monitor_heartbeat_pings_total", {"result": result})
        assert value == 0.0, result
    for reason in ("crashed", "unresponsive"):
        value = registry.get_sample_value("monitor_browser_restarts_total", {"reason": reason})
        assert value == 0.0, reason


def test_down_degraded_and_ok_cover_every_outcome() -> None:
    """The "Down and degraded" tables split every failure, so down + degraded + ok = 100 %
    whatever kinds of check a site has (dns, domain, heartbeat outcomes included)."""
    panels = panels_by_title("uptime-overview")
    for window in ("24h", "7d", "30d"):
        down, degraded = (t["expr"] for t in panels[f"Down and degraded {window}"]["targets"])
        [down_outcomes] = re.findall(r'outcome=~"([^"]+)"', down)
        [not_degraded] = re.findall(r'outcome!~"([^"]+)"', degraded)
        assert not_degraded == f"ok|{down_outcomes}"
        assert "dns_error" in down_outcomes.split("|")


def test_uptime_and_incident_dashboards_filter_by_client_and_site() -> None:
    for name in ("uptime-overview", "incidents-sla"):
        dashboard = load_dashboard(GRAFANA / "dashboards" / f"{name}.json")
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        client = variables["client"]["query"]["query"]
        assert client == "label_values(probe_success, client)"
        site = variables["site"]["query"]["query"]
        assert site == 'label_values(probe_success{client=~"$client"}, site)'
    uptime = load_dashboard(GRAFANA / "dashboards" / "uptime-overview.json")
    exprs = " ".join(expr for _, expr in panel_exprs(uptime))
    # The uptime panels show the one uptime (incidents.uptime), as the status page does.
    for window in ("24h", "7d", "30d", "90d"):
        assert (
            'max by (client, site) (monitor_site_uptime_ratio{client=~"$client", '
            f'site=~"$site", window="{window}"}})'
        ) in exprs
    assert "avg_over_time(probe_success" not in exprs


# ---------------------------------------------------------------------------- promtool


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        skip_unless_required("promtool is not installed (Debian: apt-get install prometheus)")
    return found


def test_promtool_checks_the_rules() -> None:
    run = subprocess.run(
        [promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS: 8 rules found" in run.stdout


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    run = subprocess.run(
        [promtool(), "test", "rules", str(ALERTS_TEST)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ALERTS_TEST.parent,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_promtool_accepts_the_example_scrape_config() -> None:
    run = subprocess.run(
        [promtool(), "check", "config", "scrape.yaml"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=GRAFANA / "prometheus",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    config = yaml.safe_load((GRAFANA / "prometheus" / "scrape.yaml").read_text())
    assert [job["job_name"] for job in config["scrape_configs"]] == [JOB]


def test_provisioning_files_name_the_data_source_and_the_dashboards() -> None:
    provisioning = GRAFANA / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
    assert [(s["uid"], s["type"]) for s in sources["datasources"]] == [("prometheus", "prometheus")]
    boards = yaml.safe_load((provisioning / "dashboards" / "agency-monitor.yaml").read_text())
    [provider] = boards["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


def test_every_alert_has_unit_tests() -> None:
    rules = yaml.safe_load(ALERTS.read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert alerts == {
        "MonitorDown",
        "OutboxStuck",
        "SchedulerLagHigh",
        "ClientUpdateOverdue",
        "Sev1Unresponded",
        "MonitorStoreFailing",
        "MonitorConnectivityLost",
        "ClientMailsHeld",
    }
    cases = yaml.safe_load(ALERTS_TEST.read_text())["tests"]
    for alert in alerts:
        evals = [
            check
            for case in cases
            for check in case["alert_rule_test"]
            if check["alertname"] == alert
        ]
        assert any(check["exp_alerts"] for check in evals), f"{alert} never shown firing"
        assert any(not check["exp_alerts"] for check in evals), f"{alert} never shown silent"


# ---------------------------------------------------------------------------- real Prometheus


def monitor_config(
    *, shop: URL, blog: str, api: str, rdap: URL, channel: Receiver, tmp_path: Path
) -> str:
    return f"""
database: {{url: "sqlite+aiosqlite:///{tmp_path}/m.db"}}
server: {{port: 0}}
scheduler: {{sla_tick: 100ms, uptime_refresh: 200ms}}
defaults: {{interval: 200ms, timeout: 2s, failures_to_open: 2, successes_to_resolve: 2}}
notifications:
  outbox_dir: {tmp_path / "outbox"}
  poll_interval: 100ms
people:
  - {{name: alice, email: alice@agency.example, channels: [{channel.name}]}}
  - {{name: bob, email: bob@agency.example}}
oncall:
  emails: [oncall@agency.example]
  rotation: {{every: week, handover: mon 09:00, start: 2026-11-23, people: [alice, bob]}}
escalation:
  1: {{levels: [{{after: 0m, notify: [oncall]}}]}}
channels:
  {channel.name}: {{url: "${{GRAFANA_CHANNEL_URL}}", timeout: 2s}}
rdap:
  servers: {{example: "{rdap}"}}
api: {{token: {TOKEN}}}
clients:
  - id: acme
    name: Acme Ltd
    plan: standard
    contacts: [ops@acme.example]
    business_hours: {{timezone: Europe/London}}
    sites:
      - id: shop
        url: "{shop}"
        checks:
          - {{id: home, url: /, verify_tls: false}}
      - id: blog
        url: "{blog}"
        checks:
          - {{id: home, url: /, slow_after: 100ms}}
      - id: api
        url: "{api}"
        checks:
          - {{id: health, url: /health}}
      - id: registration
        url: https://www.acme.example/
        checks:
          - {{id: domain, kind: domain, interval: 200ms}}
      - id: jobs
        url: https://jobs.acme.example/
        checks:
          - id: backup
            kind: heartbeat
            period: 1d
            grace: 1h
            interval: 200ms
            token: ${{GRAFANA_BACKUP_PING}}
          - id: import
            kind: heartbeat
            period: 1d
            grace: 1h
            interval: 200ms
            token: ${{GRAFANA_IMPORT_PING}}
"""


def prometheus_config(*, monitor: URL, tmp_path: Path) -> Path:
    rules = tmp_path / "alerts.yaml"
    shutil.copy(ALERTS, rules)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "scrape_configs": [
                    {
                        "job_name": JOB,
                        "metrics_path": "/metrics",
                        "static_configs": [{"targets": [f"{monitor.host}:{monitor.port}"]}],
                    }
                ],
            }
        )
    )
    return config


@pytest.fixture
async def https_shop(aiohttp_server: Any) -> URL:
    """A healthy https site, so the certificate expiry metric exists."""
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", not_after=datetime.now(UTC) + timedelta(days=40))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    server: TestServer = await aiohttp_server(Target().app(), ssl=context)
    return server.make_url("")


@pytest.fixture
async def rdap_server(aiohttp_server: Any) -> URL:
    """A registry's RDAP server on loopback: every domain expires on DOMAIN_EXPIRES."""

    async def domain(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "ldhName": request.match_info["name"],
                "events": [
                    {
                        "eventAction": "expiration",
                        "eventDate": DOMAIN_EXPIRES.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    }
                ],
            }
        )

    app = web.Application()
    app.router.add_get("/domain/{name}", domain)
    server: TestServer = await aiohttp_server(app)
    return server.make_url("/")


@pytest.fixture
async def chat_receiver() -> AsyncIterator[Receiver]:
    """A chat channel's service (a JSON webhook via Apprise's json://) on loopback."""
    receiver = Receiver(name="team-chat", scheme="json", path="hook")
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture
async def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        skip_unless_required("prometheus is not installed (Debian: apt-get install prometheus)")
    return found


@pytest.fixture
async def plain_target(aiohttp_server: Any) -> AsyncIterator[tuple[Target, str]]:
    target = Target()
    server: TestServer = await aiohttp_server(target.app())
    yield target, str(server.make_url("")).rstrip("/")


async def start_prometheus(
    binary: str, *, config: Path, tmp_path: Path
) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    return process, f"http://127.0.0.1:{port}"


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout=5)
    except TimeoutError:
        process.kill()
        await process.wait()


async def query(http: aiohttp.ClientSession, base: str, expr: str) -> dict[str, Any]:
    async with http.get(f"{base}/api/v1/query", params={"query": expr}) as response:
        body: dict[str, Any] = await response.json()
        return body


async def values(http: aiohttp.ClientSession, base: str, expr: str, label: str) -> dict[str, float]:
    """An instant query's answer as {value of `label`: value}."""
    answer = await query(http, base, expr)
    assert answer["status"] == "success", answer
    return {
        series["metric"].get(label, ""): float(series["value"][1])
        for series in answer["data"]["result"]
    }


async def until(predicate: Callable[[], Awaitable[bool]], *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, f"condition not met within {timeout}s"
        await asyncio.sleep(0.1)


def sent_emails(running: Running) -> float:
    return (
        running.registry.get_sample_value("monitor_notifications_sent_total", {"channel": "email"})
        or 0.0
    )


@pytest.mark.timeout(90)
async def test_every_dashboard_and_rule_query_returns_data_on_a_real_prometheus(
    prometheus_binary: str,
    https_shop: URL,
    plain_target: tuple[Target, str],
    rdap_server: URL,
    chat_receiver: Receiver,
    tmp_path: Path,
) -> None:
    target, base = plain_target
    target.set("/", delay=0.3)  # the blog: slow_after 100ms
    target.set("/health", status=500)  # the api: down
    config = load_config_text(
        monitor_config(
            shop=https_shop,
            blog=f"{base}/",
            api=base,
            rdap=rdap_server,
            channel=chat_receiver,
            tmp_path=tmp_path,
        ),
        environ={**os.environ, **PING_TOKENS, "GRAFANA_CHANNEL_URL": chat_receiver.url},
    )
    clock = ShiftedClock(MONDAY_10)
    async with (
        running_monitor(config, clock=clock) as running,
        aiohttp.ClientSession() as http,
    ):
        process, prometheus = await start_prometheus(
            prometheus_binary,
            config=prometheus_config(monitor=URL(running.url), tmp_path=tmp_path),
            tmp_path=tmp_path,
        )
        try:
            # The down api and the slow blog open incidents; emails go out as .eml files.
            await eventually(
                lambda: (
                    len(
                        [
                            i
                            for i in running.monitor.open_incidents()
                            if i.site in ("acme/api", "acme/blog")
                        ]
                    )
                    == 2
                ),
                timeout=15,
            )
            await eventually(lambda: sent_emails(running) > 0, timeout=15)
            # The api's Severity 1 pages whoever is on call (alice), by mail and on her chat
            # channel.
            await eventually(lambda: chat_receiver.received, timeout=15)
            # The backup job runs (start, then success: a run time); the import reports failure.
            backup = PING_TOKENS["GRAFANA_BACKUP_PING"]
            import_ = PING_TOKENS["GRAFANA_IMPORT_PING"]
            for path in (f"{backup}/start", backup, f"{import_}/fail"):
                async with http.post(f"{running.url}/ping/{path}") as response:
                    assert response.status == 200, await response.text()
            # The slow blog's incident is acknowledged, which starts its client update
            # cadence; the api's Severity 1 stays in the queue, with its response due.
            [blog] = [i for i in running.monitor.open_incidents() if i.site == "acme/blog"]
            async with http.post(
                f"{running.url}/api/incidents/{blog.id}/acknowledge",
                json={"by": "alice"},
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as response:
                assert response.status == 200, await response.text()
            # Two days later, the blog's daily client update is overdue and the api's response
            # target breached.
            clock.advance(timedelta(days=2))

            substitutions = [
                {"client": ".*", "site": ".*", "check": "home", **BUILTIN_VARIABLES},
                # As Grafana writes a multi-value selection into a regex.
                {
                    "client": "(acme)",
                    "site": "(api|blog|shop|registration|jobs)",
                    "check": "health",
                    **BUILTIN_VARIABLES,
                },
            ]
            exprs = [
                (f"{name} {values['client']}/{values['site']}", fill_in(expr, values))
                for dashboard in map(load_dashboard, DASHBOARDS)
                for name, expr in panel_exprs(dashboard) + variable_exprs(dashboard)
                for values in substitutions
            ] + rule_exprs()
            assert len(exprs) > 60

            async def ready() -> bool:
                try:
                    async with http.get(f"{prometheus}/-/ready") as response:
                        return response.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await until(ready, timeout=15)

            # Every expression must parse at once; data may take a few scrapes (rate() needs
            # two samples, the breach a tick after the clock moved), hence the deadline.
            pending = dict(exprs)
            deadline = time.monotonic() + 30
            while True:
                for name, expr in list(pending.items()):
                    answer = await query(http, prometheus, expr)
                    assert answer["status"] == "success", f"{name}: {expr}: {answer}"
                    if answer["data"]["result"]:
                        del pending[name]
                if not pending or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)  # the next scrape comes within a second
            assert not pending, "queries without data:\n" + "\n".join(
                f"{name}: {expr}" for name, expr in pending.items()
            )

            # The state was the one described: SLA breaches and overdue updates were recorded.
            breaches = await query(http, prometheus, "sum(monitor_sla_breaches_total)")
            assert float(breaches["data"]["result"][0]["value"][1]) > 0
            overdue = await query(http, prometheus, "sum(monitor_incident_updates_overdue)")
            assert float(overdue["data"]["result"][0]["value"][1]) > 0

            # The new panels saw what happened: alice on call and paged at level 1, the chat
            # channel's delivery, about 60 days left on the domain, the failed import, and no
            # guessed ping token (a counter that exists at 0).
            async def by(label: str, expr: str) -> dict[str, float]:
                return await values(http, prometheus, expr, label)

            oncall = await by("person", "max by (person) (monitor_oncall_person)")
            assert oncall == {"alice": 1.0}
            pages = await by("level", "sum by (level) (monitor_pages_total)")
            assert pages.get("1", 0) > 0
            sent = await by("channel", "sum by (channel) (monitor_notifications_sent_total)")
            assert sent.get("team-chat", 0) > 0
            days = await by("check", "(probe_domain_expiry_timestamp_seconds - time()) / 86400")
            # An absolute time: Prometheus's time() is the real one, not the monitor's clock.
            expected = (DOMAIN_EXPIRES - datetime.now(UTC)).total_seconds() / 86400
            assert days["domain"] == pytest.approx(expected, abs=0.1)
            failing = await by(
                "check",
                "(1 - probe_success) and on (client, site, check) "
                'monitor_probe_results_total{outcome=~"heartbeat_missed|heartbeat_failed"}',
            )
            assert failing.get("import") == 1.0
            unknown = await by("result", 'monitor_heartbeat_pings_total{result="unknown"}')
            assert unknown == {"unknown": 0.0}

            # Prometheus loaded the rules and evaluates them without error; the overdue update
            # makes ClientUpdateOverdue fire for real.
            async with http.get(f"{prometheus}/api/v1/rules") as response:
                groups = (await response.json())["data"]["groups"]
            rules = [rule for group in groups for rule in group["rules"]]
            assert len(rules) == 8
            assert all(rule["health"] == "ok" for rule in rules), rules

            async def firing() -> set[str]:
                async with http.get(f"{prometheus}/api/v1/alerts") as response:
                    alerts = (await response.json())["data"]["alerts"]
                return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}

            async def overdue_alert_fires() -> bool:
                return "ClientUpdateOverdue" in await firing()

            await until(overdue_alert_fires, timeout=10)
            assert not {"MonitorDown", "MonitorStoreFailing"} & await firing()
        finally:
            await stop(process)
