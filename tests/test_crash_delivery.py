"""Crash safety of the outbox: `monitor run` killed with SIGKILL after an incident's mails were
written but before any could be sent delivers each of them exactly once after a restart, and
a later restart sends nothing again."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

from aiohttp.test_utils import TestServer

from incidents.outgoing import OutgoingEmail
from monitor.store import Channel, OutboxItem, OutboxStatus, Store
from tests.helpers import Target, eventually, free_port
from tests.monitor_yaml import acme_shop_yaml, head_yaml, notifications_yaml
from tests.smtp_helpers import Inbox, smtpd

ROOT = Path(__file__).resolve().parent.parent
CLIENT = "ops@acme.example"
ONCALL = "oncall@agency.example"


def config_yaml(*, site_url: str, database: Path, smtp_port: int, outbox: Path) -> str:
    return (
        head_yaml(database=f"sqlite+aiosqlite:///{database}", sla_tick="100ms")
        + notifications_yaml(smtp_port=smtp_port, outbox=outbox, oncall=ONCALL)
        + acme_shop_yaml(url=site_url, contact=CLIENT, name=None, business_hours=False)
    )


@asynccontextmanager
async def monitor_process(config: Path, log: IO[bytes]) -> AsyncIterator[Any]:
    """`monitor run` in its own process; killed at the end should the test not have."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "run",
        "--config",
        str(config),
        cwd=ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=log,
        stderr=log,  # a file, not a pipe nobody reads: a full pipe would stall the monitor
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def email_rows(store: Store) -> list[OutboxItem]:
    incidents = await store.list_incidents()
    return [
        item
        for incident in incidents
        if incident.id is not None
        for item in await store.outbox_for_incident(incident.id)
        if item.channel is Channel.EMAIL
    ]


def email(row: OutboxItem) -> OutgoingEmail:
    assert isinstance(row.message, OutgoingEmail)
    return row.message


def when(
    rows: Callable[[], Awaitable[list[OutboxItem]]], test: Callable[[list[OutboxItem]], bool]
) -> Callable[[], Awaitable[list[OutboxItem] | None]]:
    async def check() -> list[OutboxItem] | None:
        found = await rows()
        return found if found and test(found) else None

    return check


async def test_mails_written_before_a_sigkill_go_out_exactly_once_after_restart(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    shop = Target()
    shop.set("/", status=500)
    server: TestServer = await aiohttp_server(shop.app())
    smtp_port = free_port()  # nothing listens there yet: every mail stays in the outbox
    database = tmp_path / "monitor.db"
    config = tmp_path / "monitor.yaml"
    config.write_text(
        config_yaml(
            site_url=str(server.make_url("")).rstrip("/"),
            database=database,
            smtp_port=smtp_port,
            outbox=tmp_path / "outbox",
        )
    )
    inbox = Inbox()
    # Created (and migrated) before any monitor starts, so the processes never race to do it.
    store = await Store.open(f"sqlite+aiosqlite:///{database}")
    with (tmp_path / "monitor.log").open("wb") as log:
        try:
            async with monitor_process(config, log) as first:
                # The opening mail to the client and the page to on-call, each tried and failed.
                pending = await eventually(
                    when(
                        lambda: email_rows(store),
                        lambda rows: len(rows) >= 2 and all(row.attempts >= 1 for row in rows),
                    )
                )
                first.send_signal(signal.SIGKILL)
                await first.wait()
            [incident] = await store.list_incidents()
            written = await email_rows(store)
            assert [row.id for row in written] == [row.id for row in pending]
            assert all(row.status is OutboxStatus.PENDING for row in written)
            assert {email(row).to for row in written} == {(CLIENT,), (ONCALL,)}

            async with smtpd(inbox, port=smtp_port):
                async with monitor_process(config, log) as second:
                    sent = await eventually(
                        when(
                            lambda: email_rows(store),
                            lambda rows: all(row.status is OutboxStatus.SENT for row in rows),
                        )
                    )
                    second.send_signal(signal.SIGKILL)
                    await second.wait()
                # Every mail arrived exactly once, and they are the ones written before the
                # crash: same Message-IDs, nothing new, the same incident continued.
                ids = [str(message["Message-ID"]) for message in inbox.messages()]
                assert sorted(ids) == sorted(email(row).message_id for row in written)
                assert [row.id for row in sent] == [row.id for row in written]
                assert (await store.outbox_counts()).get("pending", 0) == 0
                assert [i.id for i in await store.list_incidents()] == [incident.id]

                # A third start, with the mail server still up, sends nothing again: it runs
                # many outbox polls (100 ms) while probing the still-failing site.
                hits = shop.hits["/"]
                async with monitor_process(config, log) as third:
                    await eventually(lambda: shop.hits["/"] >= hits + 15)
                    assert len(inbox.received) == len(written)
                    counts = await store.outbox_counts()
                    assert counts.get("pending", 0) == 0
                    assert counts["sent"] == len(written)
                    third.send_signal(signal.SIGTERM)
                    assert await asyncio.wait_for(third.wait(), 20) == 0
                assert len(inbox.received) == len(written)
                assert [i.id for i in await store.list_incidents()] == [incident.id]
        finally:
            await store.close()
