"""Reload and the sections merged beside it: a chat channel, a route and an escalation added by
a reload are used by the next page, without a restart (real ntfy-shaped receiver on loopback,
Apprise, SQLite)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from incidents.model import TimelineKind
from monitor.app import running_monitor
from monitor.config import load_config
from tests.channel_helpers import Receiver, channel_environ, channels_yaml, shop_yaml
from tests.helpers import Target, eventually

ESCALATION = """people:
  - {name: bob, email: bob@agency.example, channels: [phones]}
escalation:
  1:
    levels:
      - {after: 0m, notify: [bob]}
"""


async def test_a_channel_and_escalation_added_by_a_reload_hear_the_next_page(
    aiohttp_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = Target()
    server: TestServer = await aiohttp_server(target.app())
    receiver = Receiver(name="phones", scheme="ntfy", path="oncall-topic")
    await receiver.start()
    for name, value in channel_environ([receiver]).items():
        monkeypatch.setenv(name, value)  # the reload reads the environment again
    path = tmp_path / "monitor.yaml"
    common = {
        "site_url": str(server.make_url("")).rstrip("/"),
        "database": f"sqlite+aiosqlite:///{tmp_path / 'monitor.db'}",
        "outbox": tmp_path / "outbox",
    }
    path.write_text(shop_yaml(**common))
    try:
        async with running_monitor(load_config(path), config_path=path) as running:
            await eventually(lambda: target.hits.get("/", 0) >= 2)
            path.write_text(shop_yaml(**common, extra=channels_yaml([receiver]) + ESCALATION))

            result = await running.reloader.reload(trigger="test")

            assert result.ok, result.errors
            sent = {"channel": "phones"}
            assert running.registry.get_sample_value("monitor_notifications_sent_total", sent) == 0
            target.set("/", status=500)
            [incident] = await eventually(running.store.list_incidents)
            assert incident.id is not None
            await eventually(lambda: receiver.received)
            timeline = await running.store.timeline(incident.id)
            paged = [entry.message for entry in timeline if entry.kind is TimelineKind.PAGED]
            assert paged == ["paged bob (level 1, at once)"]
            await eventually(
                lambda: running.registry.get_sample_value("monitor_notifications_sent_total", sent)
            )
        # Bob's own channel heard the page once (and the routes' default: pages go to every
        # channel, so the team's page would have come too had escalation not replaced it).
        assert len(receiver.received) == 1
        [text] = receiver.texts()
        assert f"[INC-{incident.id}] PAGE Severity 1" in text
    finally:
        await receiver.stop()
