"""Crash safety of chat channels: `monitor run` killed with SIGKILL after a Severity 1's chat
messages were written (their receivers down) but before any was sent delivers each exactly
once after a restart, to a JSON webhook, a Mattermost and an ntfy endpoint on loopback."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from monitor.store import Channel, OutboxItem, OutboxStatus, Store
from tests.channel_helpers import channel_environ, channels_yaml, shop_yaml, three_receivers
from tests.helpers import Target, eventually
from tests.test_crash_delivery import monitor_process


async def chat_rows(store: Store) -> list[OutboxItem]:
    rows: list[OutboxItem] = []
    for incident in await store.list_incidents():
        assert incident.id is not None
        rows += [
            item
            for item in await store.outbox_for_incident(incident.id)
            if item.channel is Channel.CHAT
        ]
    return rows


async def test_chat_messages_written_before_a_sigkill_go_out_exactly_once_after_restart(
    aiohttp_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = Target()
    shop.set("/", status=500)
    server: TestServer = await aiohttp_server(shop.app())
    receivers = three_receivers()  # not started: every message stays in the outbox
    database = tmp_path / "monitor.db"
    config = tmp_path / "monitor.yaml"
    config.write_text(
        shop_yaml(
            site_url=str(server.make_url("")).rstrip("/"),
            database=f"sqlite+aiosqlite:///{database}",
            outbox=tmp_path / "outbox",
            extra=channels_yaml(receivers),
        )
    )
    for name, url in channel_environ(receivers).items():
        monkeypatch.setenv(name, url)  # the monitor processes read the URLs from there
    store = await Store.open(f"sqlite+aiosqlite:///{database}")

    async def tried_once() -> list[OutboxItem] | None:
        rows = await chat_rows(store)
        return rows if len(rows) == 3 and all(row.attempts >= 1 for row in rows) else None

    async def all_sent() -> list[OutboxItem] | None:
        rows = await chat_rows(store)
        return rows if rows and all(row.status is OutboxStatus.SENT for row in rows) else None

    with (tmp_path / "monitor.log").open("wb") as log:
        try:
            async with monitor_process(config, log) as first:
                written = await eventually(tried_once, timeout=20)
                first.send_signal(signal.SIGKILL)
                await first.wait()
            assert all(row.status is OutboxStatus.PENDING for row in await chat_rows(store))
            assert all(not receiver.received for receiver in receivers)

            for receiver in receivers:
                await receiver.start()
            async with monitor_process(config, log) as second:
                sent = await eventually(all_sent, timeout=20)
                # Many more outbox polls (100 ms) while the site keeps failing: nothing again.
                hits = shop.hits["/"]
                await eventually(lambda: shop.hits["/"] >= hits + 15, timeout=20)
                second.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(second.wait(), 20) == 0
            assert sorted(row.id for row in sent) == sorted(row.id for row in written)
            assert [len(receiver.received) for receiver in receivers] == [1, 1, 1]
            for receiver in receivers:
                [text] = receiver.texts()
                assert "PAGE Severity 1" in text
            assert len(await store.list_incidents()) == 1
            # The URLs' tokens never reached the log, though every failure was logged.
            logged = (tmp_path / "monitor.log").read_text(errors="replace")
            assert "not delivered" in logged
            for secret in ("k3y0fmattermost", "oncall-topic"):
                assert secret not in logged
        finally:
            for receiver in receivers:
                await receiver.stop()
            await store.close()
