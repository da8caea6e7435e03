"""The monitor's own HTTP server as something attackers reach (issue 11): reads protected by
default, the Host allow-list, security headers without a version banner, JSON 400s for
hostile input instead of 500s, the separate metrics listener, and idle connections that can
neither exhaust the process's descriptors nor keep /healthz from answering."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from monitor.app import Running, running_monitor
from monitor.config import load_config, load_config_text
from monitor.config.models import MonitorConfig
from monitor.http_guard import (
    SERVED_WHEN_SHORT,
    ConnectionGuard,
    GuardedSite,
    open_descriptors,
)
from tests.helpers import Target, eventually, free_port

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "reader-token"


def make_config(
    database_url: str, target_url: str, *, api: dict[str, Any], **server: Any
) -> MonitorConfig:
    document = {
        "database": {"url": database_url},
        "server": {"port": 0, **server},
        "defaults": {"interval": "1s", "timeout": "2s"},
        "api": api,
        "clients": [
            {"id": "acme", "sites": [{"id": "shop", "url": target_url, "checks": [{"id": "home"}]}]}
        ],
    }
    return load_config_text(json.dumps(document))


@pytest.fixture
async def target_url(aiohttp_server: Any) -> str:
    server = await aiohttp_server(Target().app())
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
async def running(tmp_path: Path, target_url: str) -> AsyncIterator[Running]:
    config = make_config(
        f"sqlite+aiosqlite:///{tmp_path}/m.db",
        target_url,
        api={"token": TOKEN},
        allowed_hosts=["Monitor.Agency.Internal", "FD00::9"],
    )
    async with running_monitor(config) as running:
        yield running


async def call(
    url: str, method: str = "GET", *, token: str | None = TOKEN, **kwargs: Any
) -> tuple[int, Any, aiohttp.typedefs.LooseHeaders]:
    headers = dict(kwargs.pop("headers", {}))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, headers=headers, **kwargs) as response,
    ):
        text = await response.text()
        body = json.loads(text) if response.content_type == "application/json" else text
        return response.status, body, response.headers


# --- reads protected by default ---------------------------------------------------------


def test_the_model_and_the_shipped_config_protect_reads() -> None:
    shipped = load_config(ROOT / "config" / "monitor.yaml", environ={})
    assert shipped.api.protect_reads is True
    assert shipped.api.token is None  # no MONITOR_API_TOKEN: every /api call is refused


async def test_without_a_configured_token_changes_and_reads_get_401(
    tmp_path: Path, target_url: str
) -> None:
    config = make_config(f"sqlite+aiosqlite:///{tmp_path}/m.db", target_url, api={})
    async with running_monitor(config) as running:
        window = {"site": "acme/shop", "starts_at": "2026-12-01T00:00:00Z", "by": "x"}
        window["ends_at"] = "2026-12-01T01:00:00Z"
        # Any bearer value at all: with no token configured nothing may match it.
        for token in (None, "", "anything"):
            status, body, _ = await call(
                f"{running.url}/api/maintenance", "POST", token=token, json=window
            )
            assert status == 401 and "no API token is configured" in body["error"], token
            status, body, _ = await call(f"{running.url}/api/incidents", token=token)
            assert status == 401 and "no API token is configured" in body["error"], token
        assert (
            await running.store.list_maintenance(
                site=None, include_past=True, now=datetime.now(UTC)
            )
            == []
        )


async def test_reads_need_the_token_unless_protect_reads_is_false(
    tmp_path: Path, target_url: str
) -> None:
    config = make_config(
        f"sqlite+aiosqlite:///{tmp_path}/m.db",
        target_url,
        api={"token": TOKEN, "protect_reads": False},
    )
    async with running_monitor(config) as running:
        status, body, _ = await call(f"{running.url}/api/incidents", token=None)
        assert status == 200 and body == {"incidents": []}
        status, body, _ = await call(
            f"{running.url}/api/incidents/1/acknowledge", "POST", token=None, json={"by": "x"}
        )
        assert status == 401


# --- Host allow-list, headers -------------------------------------------------------------


async def test_api_answers_only_its_own_host_names(running: Running) -> None:
    port = running.url.rsplit(":", 1)[1]
    for host in (
        "localhost",
        f"127.0.0.1:{port}",
        f"[::1]:{port}",
        "monitor.agency.internal",
        "[fd00::9]:80",
    ):
        status, _, _ = await call(f"{running.url}/api/queue", headers={"Host": host})
        assert status == 200, host
    # What a browser sends after DNS rebinding: the attacker's name, pointing at 127.0.0.1.
    for host in (f"rebind.attacker.example:{port}", "127.0.0.1.attacker.example", ""):
        status, body, _ = await call(f"{running.url}/api/queue", headers={"Host": host})
        assert status == 421 and "server.allowed_hosts" in body["error"], host
    # Prometheus scrapes by address, whatever it is: /metrics and /healthz have no Host check.
    for path in ("/metrics", "/healthz"):
        status, _, _ = await call(f"{running.url}{path}", headers={"Host": "10.1.2.3:9464"})
        assert status == 200, path


async def test_every_answer_has_security_headers_and_no_version_banner(running: Running) -> None:
    for path in ("/metrics", "/healthz", "/api/queue", "/api/nothing-here", "/nothing-here"):
        _, _, headers = await call(f"{running.url}{path}")
        assert headers["Server"] == "agency-monitor", path
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["X-Frame-Options"] == "DENY", path
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], path
        assert headers["Cache-Control"] == "no-store", path


# --- hostile input: 400 or 404 with JSON, never 500 ---------------------------------------


@pytest.fixture
async def on_each_database(database_url: str, target_url: str) -> AsyncIterator[Running]:
    config = make_config(database_url, target_url, api={"token": TOKEN})
    async with running_monitor(config) as running:
        yield running


async def test_out_of_range_ids_and_control_characters_get_json_errors(
    on_each_database: Running,
) -> None:
    base = f"{on_each_database.url}/api"
    # Beyond PostgreSQL's integer column: no such incident, not an overflow.
    for path in ("/incidents/99999999999", "/incidents/999999999999999999"):
        status, body, _ = await call(base + path)
        assert status == 404 and body == {"error": f"no incident {path.rsplit('/', 1)[1]}"}
        status, body, _ = await call(f"{base}{path}/acknowledge", "POST", json={"by": "x"})
        assert status == 404 and "no incident" in body["error"]
    status, body, _ = await call(f"{base}/maintenance/99999999999", "DELETE", json={"by": "x"})
    assert status == 404 and body == {"error": "no maintenance window 99999999999"}
    status, body, _ = await call(f"{base}/incidents/1234567890123456789012")
    assert status == 404 and body == {"error": "not found"}
    for query in ("site=%00", "site=a%01b", "%00=x"):
        status, body, _ = await call(f"{base}/maintenance?{query}")
        assert status == 400 and "control characters" in body["error"], query
    window = {"site": "acme/shop", "by": "a\x00b", "starts_at": "2026-12-01T00:00:00Z"}
    window["ends_at"] = "2026-12-01T01:00:00Z"
    status, body, _ = await call(f"{base}/maintenance", "POST", json=window)
    assert status == 400 and "control characters" in body["error"]
    assert (
        await on_each_database.store.list_maintenance(
            site=None, include_past=True, now=datetime.now(UTC)
        )
        == []
    )


async def test_deep_json_and_dates_out_of_range_get_400(running: Running) -> None:
    url = f"{running.url}/api/maintenance"
    window = {"site": "acme/shop", "by": "x", "starts_at": "2026-12-01T00:00:00Z"}
    window["ends_at"] = "2026-12-01T01:00:00Z"
    for depth in (9, 30_000):  # just past the cap; past Python's recursion limit
        nested = "[" * depth + "]" * depth
        body = json.dumps(window)[:-1] + f', "reason": {nested}}}'
        status, answer, _ = await call(
            url, "POST", data=body, headers={"Content-Type": "application/json"}
        )
        assert status == 400 and "nested at most 8 levels" in answer["error"], depth
    for name, value in (
        ("starts_at", "0001-01-01T00:00:00+01:00"),
        ("starts_at", "0001-01-01T00:00:00Z"),
        ("ends_at", "9999-12-31T23:59:59-01:00"),
        ("ends_at", "3000-01-01T00:00:00Z"),
    ):
        status, answer, _ = await call(url, "POST", json={**window, name: value})
        assert status == 400 and "between the years 2000 and 2999" in answer["error"], value
    status, answer, _ = await call(url, "POST", data=b"x" * (65 * 1024))
    assert status == 413 and "error" in answer
    status, answer, _ = await call(url, "POST", json=window)
    assert status == 201, answer


# --- the metrics listener -------------------------------------------------------------------


async def test_metrics_listen_serves_metrics_and_health_but_no_api(
    tmp_path: Path, target_url: str
) -> None:
    port = free_port()
    config = make_config(
        f"sqlite+aiosqlite:///{tmp_path}/m.db",
        target_url,
        api={"token": TOKEN},
        metrics_listen=f"127.0.0.1:{port}",
    )
    async with running_monitor(config) as running:
        metrics_url = f"http://127.0.0.1:{port}"
        status, text, headers = await call(f"{metrics_url}/metrics", token=None)
        assert status == 200 and "monitor_config_last_load_timestamp_seconds" in text
        assert headers["Server"] == "agency-monitor"
        status, health, _ = await call(f"{metrics_url}/healthz", token=None)
        assert status in (200, 503) and "status" in health
        # Not even with the right token and Host: the API is not on this listener at all.
        status, _, _ = await call(f"{metrics_url}/api/incidents", headers={"Host": "localhost"})
        assert status == 404
        status, _, _ = await call(f"{running.url}/api/incidents")
        assert status == 200


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("0.0.0.0:9465", True),
        ("[::]:9465", True),
        ("9465", False),
        ("host:", False),
        ("host:70000", False),
    ],
)
def test_metrics_listen_must_be_host_and_port(value: str, accepted: bool) -> None:
    document = {"server": {"metrics_listen": value}, "clients": [_CLIENT]}
    if accepted:
        assert load_config_text(json.dumps(document)).server.metrics_listen == value
    else:
        with pytest.raises(Exception, match="server.metrics_listen: must be host:port"):
            load_config_text(json.dumps(document))


_CLIENT = {
    "id": "acme",
    "sites": [{"id": "shop", "url": "http://127.0.0.1:1", "checks": [{"id": "home"}]}],
}


# --- idle connections under a low open-file limit ------------------------------------------

FILE_LIMIT = 256
IDLE_SOCKETS = 400  # more than the whole file limit of the monitor
IDLE_TIMEOUT = 1.0


def _low_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FILE_LIMIT, FILE_LIMIT))


async def test_idle_connections_cannot_exhaust_descriptors_or_silence_healthz(
    tmp_path: Path,
) -> None:
    port = free_port()
    config = tmp_path / "monitor.yaml"
    # The monitor watches its own /healthz: a probe that needs a descriptor of its own.
    config.write_text(
        f"""
database: {{url: "sqlite+aiosqlite:///{tmp_path}/m.db"}}
server: {{port: {port}, header_timeout: {IDLE_TIMEOUT}s, idle_timeout: {IDLE_TIMEOUT}s}}
defaults: {{interval: 200ms, timeout: 2s}}
clients:
  - id: self
    sites:
      - id: monitor
        url: http://127.0.0.1:{port}
        checks: [{{id: health, url: /healthz}}]
"""
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "run",
        "--config",
        str(config),
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=_low_file_limit,
    )
    healthz = f"http://127.0.0.1:{port}/healthz"
    writers: list[asyncio.StreamWriter] = []
    try:
        await eventually(lambda: _answers(healthz), timeout=20)
        readers = []
        for index in range(IDLE_SOCKETS):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            if index % 2:  # half send a request header they never finish (slowloris)
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            readers.append(reader)
            writers.append(writer)
        opened = time.monotonic()
        assert await _answers(healthz, within=5.0), "/healthz did not answer under the flood"
        # Every socket is closed by the monitor: evicted at once, or after a timeout.
        await asyncio.wait_for(asyncio.gather(*(_closed(r) for r in readers)), timeout=15)
        closed_after = time.monotonic() - opened
        assert closed_after < IDLE_TIMEOUT + 10
        # The monitor never ran short of descriptors while it held the flood off.
        assert await _answers(healthz, within=5.0)
        assert _open_files(process.pid) < FILE_LIMIT // 2
    finally:
        for writer in writers:
            writer.close()
        process.terminate()
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    log = stderr.decode()
    assert "Too many open files" not in log and "out of system resource" not in log, log
    assert "at its limit of 64 connections (server.max_connections)" in log


async def _answers(url: str, *, within: float = 2.0) -> bool:
    try:
        timeout = aiohttp.ClientTimeout(total=within)
        async with aiohttp.ClientSession(timeout=timeout) as http, http.get(url) as response:
            return response.status in (200, 503) and "status" in await response.json()
    except (aiohttp.ClientError, TimeoutError):
        return False


async def _closed(reader: asyncio.StreamReader) -> None:
    try:
        while await reader.read(65536):
            pass
    except ConnectionError:
        pass


def _open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def test_a_full_server_closes_the_quietest_idle_connection_never_one_in_a_request() -> None:
    release = asyncio.Event()
    inside = 0

    async def slow(request: web.Request) -> web.Response:
        nonlocal inside
        inside += 1
        await release.wait()
        return web.Response(text="done")

    guard = ConnectionGuard(2, header_timeout=60)
    app = web.Application(middlewares=[guard.middleware])
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = GuardedSite(runner, "127.0.0.1", 0, guard=guard)
    await site.start()
    request = b"GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n"
    connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        connections.append(await asyncio.open_connection("127.0.0.1", site.port))
        return connections[-1]

    try:
        busy_reader, busy = await connect()
        busy.write(request)
        await eventually(lambda: inside == 1)
        idle_reader, _ = await connect()
        await eventually(lambda: guard.open_connections == 2)
        second_reader, second = await connect()  # the idle one makes room, not the busy one
        await asyncio.wait_for(_closed(idle_reader), timeout=5)
        assert guard.evicted == 1 and guard.open_connections == 2
        second.write(request)
        await eventually(lambda: inside == 2)
        refused_reader, _ = await connect()  # every slot is inside a request: refused
        await asyncio.wait_for(_closed(refused_reader), timeout=5)
        assert guard.refused == 1 and guard.open_connections == 2
        release.set()
        for reader in (busy_reader, second_reader):
            answer = await asyncio.wait_for(reader.readuntil(b"done"), timeout=5)
            assert answer.startswith(b"HTTP/1.1 200")
    finally:
        for _, writer in connections:
            writer.close()
        await runner.cleanup()


async def test_short_of_descriptors_the_server_keeps_a_few_connections_and_evicts_idle_ones() -> (
    None
):
    release = asyncio.Event()
    inside = 0

    async def slow(request: web.Request) -> web.Response:
        nonlocal inside
        inside += 1
        await release.wait()
        return web.Response(text="done")

    open_now = open_descriptors()
    if open_now is None:
        pytest.skip("no /proc/self/fd to count descriptors")
    # Far below the connection limit, but every connection leaves fewer than 40 free.
    guard = ConnectionGuard(100, header_timeout=60, files=open_now + 40, keep_free=40)
    app = web.Application(middlewares=[guard.middleware])
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = GuardedSite(runner, "127.0.0.1", 0, guard=guard)
    await site.start()
    request = b"GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n"
    connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        connections.append(await asyncio.open_connection("127.0.0.1", site.port))
        return connections[-1]

    try:
        busy = []
        while len(busy) < SERVED_WHEN_SHORT:
            reader, writer = await connect()
            writer.write(request)
            busy.append(reader)
            await eventually(lambda: inside == len(busy))
        refused_reader, _ = await connect()  # short, and every connection inside a request
        await asyncio.wait_for(_closed(refused_reader), timeout=5)
        assert (guard.refused, guard.open_connections) == (1, SERVED_WHEN_SHORT)
        reason = guard.full_reason()
        assert reason is not None and f"fewer than 40 of {open_now + 40} descriptors" in reason
        release.set()
        for reader in busy:
            answer = await asyncio.wait_for(reader.readuntil(b"done"), timeout=5)
            assert answer.startswith(b"HTTP/1.1 200")
        # Answered, the connections are idle: a new one closes the quietest of them.
        await connect()
        await asyncio.wait_for(_closed(busy[0]), timeout=5)
        assert (guard.evicted, guard.open_connections) == (1, SERVED_WHEN_SHORT)
    finally:
        for _, writer in connections:
            writer.close()
        await runner.cleanup()


async def test_a_slow_header_is_dropped_while_an_idle_connection_waits_its_turn() -> None:
    guard = ConnectionGuard(10, header_timeout=0.3)
    app = web.Application(middlewares=[guard.middleware])
    app.router.add_get("/", _ok)
    runner = web.AppRunner(app, keepalive_timeout=60)
    await runner.setup()
    site = GuardedSite(runner, "127.0.0.1", 0, guard=guard)
    await site.start()
    try:
        slow_reader, slow = await asyncio.open_connection("127.0.0.1", site.port)
        idle_reader, idle = await asyncio.open_connection("127.0.0.1", site.port)
        slow.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n")  # and never the blank line
        await asyncio.wait_for(_closed(slow_reader), timeout=10)
        # The idle connection, which had not begun a request, is still there and served.
        idle.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        answer = await asyncio.wait_for(idle_reader.readuntil(b"ok"), timeout=5)
        assert answer.startswith(b"HTTP/1.1 200")
        # A complete request on a kept-alive connection cancels the timer: still open after it.
        await asyncio.sleep(0.5)  # longer than header_timeout, the thing under test
        idle.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        answer = await asyncio.wait_for(idle_reader.readuntil(b"ok"), timeout=5)
        assert answer.startswith(b"HTTP/1.1 200")
        slow.close()
        idle.close()
    finally:
        await runner.cleanup()


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def test_a_body_trickled_in_gets_408_instead_of_holding_its_slot(
    tmp_path: Path, target_url: str
) -> None:
    config = make_config(
        f"sqlite+aiosqlite:///{tmp_path}/m.db",
        target_url,
        api={"token": TOKEN},
        header_timeout="500ms",
    )
    async with running_monitor(config) as running:
        port = int(running.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = (
            "POST /api/maintenance HTTP/1.1\r\nHost: localhost\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
            "Content-Length: 100\r\n\r\n"
        )
        writer.write(head.encode() + b'{"site": ')  # and the other 91 bytes never come
        answer = await asyncio.wait_for(reader.readuntil(b"}"), timeout=10)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408")
    assert b'{"error": "the body did not arrive in time"}' in answer
