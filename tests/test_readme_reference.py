"""The README's reference tables against the code: every command and option of the CLI, every
metric the monitor exports (with its type and labels), every HTTP route it serves and every
top-level config section has its row, and no row names something that does not exist. A
feature that adds one of these fails here until the README says so."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from monitor.app import running_monitor
from monitor.cli import _parser
from monitor.config import load_config_text
from monitor.config.models import MonitorConfig
from monitor.passwords import hash_password
from monitor.server import create_app

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
PING_TOKEN = "readme-reference-token"
# The console is served when operators are configured; its secret comes from ${ENV}.
CONSOLE_ENVIRON = {"README_CONSOLE_SECRET": "s" * 40}
# `$$` is a literal `$` in the config's YAML.
PASSWORD_HASH = hash_password("a long enough passphrase").replace("$", "$$")
# Options every operator command takes, explained once in the prose under the table.
OPERATOR_OPTIONS = {"--config", "--url", "--token", "--tz"}


def section(heading: str) -> str:
    """The text under `heading` up to the next heading of the same or a higher level."""
    level = heading.split(" ", 1)[0]
    start = README.index(f"\n{heading}\n") + 1
    following = re.compile(rf"^#{{1,{len(level)}}} ", re.MULTILINE)
    end = following.search(README, start + len(heading))
    return README[start : end.start() if end else len(README)]


def table(text: str) -> list[list[str]]:
    """The cells of every row of the first table in `text` (header and rule left out)."""
    lines = text[text.index("\n|") + 1 :].splitlines()
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def monitor_config(tmp_path: Path) -> str:
    return f"""
database: {{url: "sqlite+aiosqlite:///{tmp_path}/m.db"}}
server: {{port: 0}}
notifications: {{outbox_dir: {tmp_path / "outbox"}}}
people:
  - {{name: alice, email: alice@agency.example}}
oncall:
  emails: [oncall@agency.example]
  rotation: {{every: week, handover: mon 09:00, start: 2026-11-02, people: [alice]}}
escalation:
  1: {{levels: [{{after: 0m, notify: [oncall]}}]}}
canaries:
  - {{name: uplink, url: "http://127.0.0.1:9/", interval: 1h}}
operators:
  - {{name: alice, email: alice@agency.example, password_hash: "{PASSWORD_HASH}"}}
console: {{secret: "${{README_CONSOLE_SECRET}}"}}
clients:
  - id: acme
    status_page: {{public: true, domain: status.acme.example}}
    sites:
      - id: jobs
        url: https://jobs.acme.example/
        checks:
          - {{id: backup, kind: heartbeat, period: 1d, token: {PING_TOKEN}}}
"""


# ---------------------------------------------------------------------------- commands


def test_every_command_and_option_is_in_the_commands_table() -> None:
    text = section("### Commands")
    rows = [cells[0] for cells in table(text)]
    [commands] = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    for name, command in commands.choices.items():
        own = " ".join(row for row in rows if re.match(rf"`monitor {re.escape(name)}[ `]", row))
        assert own, f"monitor {name} has no row in the README's Commands table"
        flags = {flag for action in command._actions for flag in action.option_strings}
        operator = "--tz" in flags
        for flag in sorted(flags - {"-h", "--help"}):
            if operator and flag in OPERATOR_OPTIONS:
                assert f"`{flag}`" in text, f"the operator commands' {flag} is not explained"
                continue
            assert flag in own, f"monitor {name} {flag} is missing from its row"
    documented = {re.match(r"`monitor ([a-z-]+)", row)[1] for row in rows}  # type: ignore[index]
    assert documented == set(commands.choices)
    for flag in ("--log-format", "--log-level"):
        assert f"`{flag}" in text


# ---------------------------------------------------------------------------- metrics


async def test_every_exported_metric_is_in_the_metrics_table_with_its_type_and_labels(
    tmp_path: Path,
) -> None:
    rows = {cells[0].strip("`"): cells for cells in table(section("## Metrics"))}
    config = load_config_text(monitor_config(tmp_path), environ=CONSOLE_ENVIRON)
    async with (
        running_monitor(config) as running,
        aiohttp.ClientSession() as http,
        http.get(f"{running.url}/metrics") as response,
    ):
        exposition = await response.text()
    types = dict(re.findall(r"^# TYPE (\w+) (\w+)$", exposition, re.MULTILINE))
    ours = {
        name: kind for name, kind in types.items() if not name.startswith(("process_", "python_"))
    }
    assert len(ours) > 40
    for name, kind in ours.items():
        assert name in rows, f"{name} ({kind}) has no row in the README's Metrics table"
        assert rows[name][1] == kind, f"{name}: the README says {rows[name][1]}, it is a {kind}"
    assert set(rows) - {"process_*`, `python_*"} == set(ours), "rows for metrics not exported"
    # Each label a sample carries is named in its row ("le" is every histogram's own).
    for name, labels in re.findall(r"^(\w+)\{([^}]*)\}", exposition, re.MULTILINE):
        family = re.sub(r"_(bucket|count|sum)$", "", name)
        if family not in ours:
            continue
        for label in re.findall(r'(\w+)="', labels):
            assert label == "le" or label in rows[family][2], f"{family}: label {label}"


# ---------------------------------------------------------------------------- HTTP endpoints


async def test_every_route_is_in_the_endpoints_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    heading = "### HTTP endpoints (`server.host`:`server.port`, default 127.0.0.1:9464)"
    first_cells = " ".join(cells[0] for cells in table(section(heading)))
    # The application monitor.app really serves (API, reload, status pages, pings, console),
    # kept as it is made.
    served: list[web.Application] = []

    def keep(**kwargs: Any) -> web.Application:
        app = create_app(**kwargs)
        served.append(app)
        return app

    monkeypatch.setattr("monitor.app.create_app", keep)
    config = load_config_text(monitor_config(tmp_path), environ=CONSOLE_ENVIRON)
    async with running_monitor(config):
        [app] = served
        routes = {
            (route.method, route.resource.canonical)
            for route in app.router.routes()
            if route.resource is not None and route.method != "HEAD"
        }
    # `/status/{client}/` and `/ui/` are the same pages as without the slash.
    routes = {(method, path) for method, path in routes if path == "/" or not path.endswith("/")}
    assert len(routes) > 40
    for method, path in sorted(routes):
        written = re.compile(rf"`{method} {re.escape(path)}[`?]")
        assert written.search(first_cells), f"{method} {path} has no row in HTTP endpoints"
    listed = set(re.findall(r"`(GET|POST|DELETE) ([^`?]+)[`?]", first_cells))
    assert listed == routes, "rows for routes the monitor does not serve"


# ---------------------------------------------------------------------------- configuration


def test_every_top_level_config_section_is_in_the_overview() -> None:
    text = section("## Configuration")
    rows = table(text[text.index("**Top-level sections**") :])
    assert [cells[0].strip("`") for cells in rows] == list(MonitorConfig.model_fields)
