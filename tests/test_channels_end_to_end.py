"""Issue 14, channels, end to end: a Severity 1 reaches a JSON webhook, a Mattermost endpoint
and an ntfy endpoint (loopback aiohttp servers, through Apprise URLs), each exactly once; a
receiver that is down gets its message once it is back; a channel that keeps failing is
given up, recorded on the incident and counted. Nothing leaves 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from monitor.app import Running, running_monitor
from monitor.config import load_config_text
from monitor.operator_text import Zones, incident_details
from monitor.store import Channel, OutboxItem, OutboxStatus
from tests.channel_helpers import (
    Receiver,
    channel_environ,
    channels_yaml,
    shop_yaml,
    three_receivers,
)
from tests.helpers import Target, eventually


@pytest.fixture
async def shop(aiohttp_server: Any) -> AsyncIterator[str]:
    target = Target()
    target.set("/", status=500)  # Severity 1 from the first probes
    server: TestServer = await aiohttp_server(target.app())
    yield str(server.make_url("")).rstrip("/")


def config_for(
    receivers: list[Receiver], *, shop: str, tmp_path: Path, max_attempts: int = 50
) -> Any:
    text = shop_yaml(
        site_url=shop,
        database=f"sqlite+aiosqlite:///{tmp_path / 'monitor.db'}",
        outbox=tmp_path / "outbox",
        extra=channels_yaml(receivers, max_attempts=max_attempts),
    )
    return load_config_text(text, environ={**os.environ, **channel_environ(receivers)})


async def chat_rows(running: Running) -> list[OutboxItem]:
    rows = []
    for incident in await running.store.list_incidents():
        assert incident.id is not None
        rows += [
            item
            for item in await running.store.outbox_for_incident(incident.id)
            if item.channel is Channel.CHAT
        ]
    return rows


def counter(running: Running, name: str, channel: str) -> float:
    value = running.registry.get_sample_value(f"monitor_{name}_total", {"channel": channel})
    return value or 0.0


async def incident_json(running: Running, incident_id: int) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{running.url}/api/incidents/{incident_id}",
            headers={"Authorization": "Bearer reader"},
        ) as response,
    ):
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


async def test_a_severity_1_reaches_every_channel_exactly_once(shop: str, tmp_path: Path) -> None:
    receivers = three_receivers()
    for receiver in receivers:
        await receiver.start()
    try:
        config = config_for(receivers, shop=shop, tmp_path=tmp_path)
        async with running_monitor(config) as running:
            await eventually(lambda: all(r.received for r in receivers))
            rows = await eventually(
                lambda: _when_all(chat_rows(running), lambda r: len(r) == 3, OutboxStatus.SENT)
            )
            # Many more outbox polls (100 ms) while the site still fails: nothing again.
            probes = running.monitor.check_state("acme/shop/home")
            assert probes is not None
            await eventually(lambda: _later(running, probes.last_result_at, seconds=1.0))
            [incident] = await running.store.list_incidents()
            assert incident.id is not None
            api = await incident_json(running, incident.id)
            for receiver in receivers:
                assert counter(running, "notifications_sent", receiver.name) == 1
            metrics = running.registry
        for receiver in receivers:
            assert len(receiver.received) == 1, receiver.name
            [text] = receiver.texts()
            assert f"[INC-{incident.id}] PAGE Severity 1" in text
            assert "Acme Ltd" in text and "shop.acme.example" in text
        assert receivers[0].received[0]["path"] == "/hook"
        assert receivers[1].received[0]["path"] == "/hooks/k3y0fmattermost"
        assert receivers[2].received[0]["body"]["topic"] == "oncall-topic"
        assert sorted(row.destination for row in rows) == ["chat", "hooks", "phones"]
        # The incident shows each channel by name; no URL or token anywhere in the API.
        shown = {(n["channel"], n["status"]) for n in api["notifications"]}
        assert {("hooks", "sent"), ("chat", "sent"), ("phones", "sent")} <= shown
        assert "k3y0fmattermost" not in str(api)
        assert not any(f":{r.port}" in str(api) for r in receivers)
        assert metrics.get_sample_value("monitor_outbox_pending") == 0
    finally:
        for receiver in receivers:
            await receiver.stop()


async def test_a_receiver_down_for_a_while_gets_its_message_once_back(
    shop: str, tmp_path: Path
) -> None:
    receivers = three_receivers()
    down = receivers[2]
    for receiver in receivers[:2]:
        await receiver.start()
    try:
        config = config_for(receivers, shop=shop, tmp_path=tmp_path)
        async with running_monitor(config) as running:
            # ntfy's port is closed: its row is retried with backoff (100 ms .. 300 ms).
            await eventually(
                lambda: _when(
                    chat_rows(running),
                    lambda rows: any(r.destination == "phones" and r.attempts >= 2 for r in rows),
                )
            )
            assert counter(running, "notification_retries", "phones") >= 2
            assert all(len(r.received) == 1 for r in receivers[:2])
            await down.start()
            await eventually(lambda: down.received)
            await eventually(
                lambda: _when_all(chat_rows(running), lambda r: len(r) == 3, OutboxStatus.SENT)
            )
            assert counter(running, "notifications_sent", "phones") == 1
            assert counter(running, "notifications_failed", "phones") == 0
        assert [len(r.received) for r in receivers] == [1, 1, 1]
    finally:
        for receiver in receivers:
            await receiver.stop()


async def test_a_channel_that_keeps_failing_is_given_up_recorded_and_counted(
    shop: str, tmp_path: Path
) -> None:
    failing = Receiver(name="broken", scheme="json", path="hook-t0ken-abc", status=500)
    await failing.start()
    try:
        config = config_for([failing], shop=shop, tmp_path=tmp_path, max_attempts=3)
        async with running_monitor(config) as running:
            [row] = await eventually(
                lambda: _when_all(chat_rows(running), lambda r: len(r) == 1, OutboxStatus.FAILED)
            )
            assert counter(running, "notifications_failed", "broken") == 1
            assert counter(running, "notification_retries", "broken") == 2
            assert counter(running, "notifications_sent", "broken") == 0
            assert row.attempts == 3
            assert row.last_error is not None
            assert "channel 'broken' (JSON" in row.last_error
            assert "gave up after 3 attempts" in row.last_error
            assert row.incident_id is not None
            api = await incident_json(running, row.incident_id)
        assert len(failing.received) == 3
        [shown] = [n for n in api["notifications"] if n["channel"] == "broken"]
        assert (shown["status"], shown["attempts"]) == ("failed", 3)
        assert "hook-t0ken-abc" not in str(api) and "hook-t0ken-abc" not in str(row.last_error)
        # `monitor show` lists it with why it failed.
        utc = Zones(operator=ZoneInfo("UTC"))
        shown_text = incident_details(api, zones=utc, now=row.created_at)
        [line] = [line for line in shown_text.splitlines() if line.startswith("  broken")]
        assert line.split()[:6] == ["broken", "page", "FAILED", "after", "3", "attempts:"]
        assert "channel 'broken' (JSON" in line and "error=500" in line
    finally:
        await failing.stop()


async def _when(rows: Any, test: Any) -> Any:
    found = await rows
    return found if found and test(found) else None


async def _when_all(rows: Any, test: Any, status: OutboxStatus) -> Any:
    found = await rows
    if found and test(found) and all(row.status is status for row in found):
        return found
    return None


def _later(running: Running, since: Any, *, seconds: float) -> bool:
    state = running.monitor.check_state("acme/shop/home")
    if state is None or state.last_result_at is None or since is None:
        return False
    return bool((state.last_result_at - since).total_seconds() >= seconds)


async def test_monitor_health_follows_the_routes_to_a_channel(shop: str, tmp_path: Path) -> None:
    hooks = Receiver(name="hooks", scheme="json", path="health")
    await hooks.start()
    canary = Receiver(name="canary", scheme="http", path="")  # answers 200 to the probes
    await canary.start()
    try:
        routes = (
            f"canaries:\n  - {{name: uplink, url: 'http://127.0.0.1:{canary.port}/', "
            "interval: 100ms, timeout: 1s}\n"
            "routes:\n  - {channels: [hooks], events: [monitor_health]}\n"
        )
        text = shop_yaml(
            site_url=shop,
            database=f"sqlite+aiosqlite:///{tmp_path / 'monitor.db'}",
            outbox=tmp_path / "outbox",
            extra=channels_yaml([hooks]) + routes,
        )
        config = load_config_text(text, environ={**os.environ, **channel_environ([hooks])})
        async with running_monitor(config) as running:
            await eventually(lambda: canary.received)
            await _lost_and_back(canary, hooks)
            await eventually(lambda: _settled(running))
            # The shop's Severity 1 is not a monitor-health event: routes gave it no channel.
            assert await chat_rows(running) == []
    finally:
        await hooks.stop()
        await canary.stop()


async def _lost_and_back(canary: Receiver, hooks: Receiver) -> None:
    """Every canary fails (the monitor lost its connectivity), then answers again: `hooks`
    hears of both, once each."""
    await canary.stop()
    await eventually(lambda: hooks.received)
    await canary.start()
    await eventually(lambda: len(hooks.received) == 2)
    lost, back = hooks.texts()
    assert "PAGE: the monitor lost connectivity" in lost
    assert "connectivity is back" in back


async def _settled(running: Running) -> bool:
    return (await running.store.outbox_counts()).get("pending", 0) == 0


async def test_monitor_health_follows_routes_and_channels_a_reload_added(
    shop: str, tmp_path: Path
) -> None:
    # The connectivity guard read its routes once at start: a channel and route added by a
    # reload never heard that the monitor lost its connectivity (and a removed one still did).
    hooks = Receiver(name="hooks", scheme="json", path="health")
    await hooks.start()
    canary = Receiver(name="canary", scheme="http", path="")
    await canary.start()
    try:
        canaries = (
            f"canaries:\n  - {{name: uplink, url: 'http://127.0.0.1:{canary.port}/', "
            "interval: 100ms, timeout: 1s}\n"
        )
        routes = "routes:\n  - {channels: [hooks], events: [monitor_health]}\n"

        def config(extra: str) -> Any:
            text = shop_yaml(
                site_url=shop,
                database=f"sqlite+aiosqlite:///{tmp_path / 'monitor.db'}",
                outbox=tmp_path / "outbox",
                extra=extra,
            )
            return load_config_text(text, environ={**os.environ, **channel_environ([hooks])})

        reloaded = config(channels_yaml([hooks]) + canaries + routes)
        async with running_monitor(config(canaries), load=lambda: reloaded) as running:
            await eventually(lambda: canary.received)
            assert (await running.reloader.reload(trigger="test")).ok
            await _lost_and_back(canary, hooks)
    finally:
        await hooks.stop()
        await canary.stop()
