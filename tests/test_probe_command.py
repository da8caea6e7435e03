"""`monitor probe --config FILE CLIENT/SITE/CHECK [--json]`: one check, once, with the
config's settings, printed with its evidence; exit 0 ok, 1 failure, 2 config error or unknown
check. Real processes against a loopback target, and a heartbeat's pings in a real store."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from checks.heartbeat import PingKind
from monitor.clock import SystemClock
from monitor.config import load_config_text
from monitor.probing import UnknownCheck, probe_now
from monitor.store import Store
from tests.helpers import Target, run_monitor_cli
from tests.monitor_yaml import acme_shop_yaml

CHECKS = """          - id: home
            url: /
            body_contains: [Welcome]
          - id: admin
            url: /admin
          - id: backup
            kind: heartbeat
            period: 1h
"""


def config_yaml(*, site_url: str, database: Path) -> str:
    return (
        f'database: {{url: "sqlite+aiosqlite:///{database}"}}\n'
        "heartbeat: {secret: probe-test-secret}\n"
        + acme_shop_yaml(
            url=site_url,
            checks=CHECKS,
            contact=None,
            name=None,
            site_name=None,
            business_hours=False,
        )
    )


@pytest.fixture
async def site(aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[tuple[Target, Path]]:
    target = Target()
    target.set("/", body="<h1>Welcome</h1>")
    target.set("/admin", status=500, reason="Internal Server Error", body="Traceback: boom")
    server: TestServer = await aiohttp_server(target.app())
    config = tmp_path / "monitor.yaml"
    site_url = str(server.make_url("")).rstrip("/")
    config.write_text(config_yaml(site_url=site_url, database=tmp_path / "monitor.db"))
    yield target, config


async def test_a_passing_check_prints_its_verdict_and_phases_and_exits_0(
    site: tuple[Target, Path],
) -> None:
    target, config = site
    code, out, err = await run_monitor_cli("probe", "--config", str(config), "acme/shop/home")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("acme/shop/home: ok (HTTP 200, ")
    timings = next(line for line in lines if line.strip().startswith("timings"))
    for phase in ("resolve", "connect", "tls", "processing", "transfer", "total"):
        assert f"{phase} " in timings
    assert target.hits["/"] == 1  # once, and nothing recorded


async def test_a_failing_check_prints_the_evidence_and_exits_1(site: tuple[Target, Path]) -> None:
    _, config = site
    code, out, _ = await run_monitor_cli(
        "probe", "--config", str(config), "acme/shop/admin", "--json"
    )
    assert code == 1
    document = json.loads(out)
    assert document["check"] == "acme/shop/admin"
    assert document["outcome"] == "http_5xx" and document["ok"] is False
    assert document["evidence"]["status"] == 500
    assert "Traceback: boom" in document["evidence"]["body_excerpt"]
    code, text, _ = await run_monitor_cli("probe", "--config", str(config), "acme/shop/admin")
    assert code == 1
    assert "  status    500" in text and "  body      Traceback: boom" in text


async def test_an_unknown_check_or_a_bad_config_exits_2(
    site: tuple[Target, Path], tmp_path: Path
) -> None:
    _, config = site
    code, _, err = await run_monitor_cli("probe", "--config", str(config), "acme/shop/hme")
    assert code == 2
    assert "no check 'acme/shop/hme'" in err and "did you mean acme/shop/home" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text(config.read_text().replace("period: 1h", "period: hourly"))
    code, _, err = await run_monitor_cli("probe", "--config", str(bad), "acme/shop/home")
    assert code == 2
    line = bad.read_text().splitlines().index("            period: hourly") + 1
    assert f"{bad}:{line}: clients[0].sites[0].checks[2].period: must be a duration" in err


async def test_a_heartbeat_is_judged_from_the_stored_pings(
    site: tuple[Target, Path], tmp_path: Path
) -> None:
    _, path = site
    config = load_config_text(path.read_text(), filename=str(path), environ={})
    with pytest.raises(UnknownCheck):
        await probe_now(config, "acme/shop/nothing", clock=SystemClock())
    never = await probe_now(config, "acme/shop/backup", clock=SystemClock())
    assert never.outcome == "heartbeat_missed"
    store = await Store.open(config.database.url)
    try:
        await store.record_ping(
            check_key="acme/shop/backup", kind=PingKind.SUCCESS, at=datetime.now(UTC)
        )
    finally:
        await store.close()
    code, out, err = await run_monitor_cli("probe", "--config", str(path), "acme/shop/backup")
    assert code == 0, err
    assert out.startswith("acme/shop/backup: ok")
