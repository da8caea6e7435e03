"""The monitor's own faults never become a client's outage, and a target's bytes never make
its outage unrecordable: local errnos and a dead resolver are discarded and reported, a store
outage is survived by counting in memory, NUL characters are stored without."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import aiohttp
import aiohttp.web
import pytest
import yaml
from aiohttp.test_utils import TestServer
from sqlalchemy.engine import make_url

from checks.classify import failure_cause
from checks.http import HttpCheckSpec, probe_http
from checks.lean_http import CannotConnect, LeanTransport
from checks.page import PageCheckSpec, probe_page
from checks.result import Evidence, FailureCause, Outcome, ProbeResult
from incidents.model import TimelineEntry, TimelineKind
from incidents.severity import Severity
from monitor.app import Running, running_monitor
from monitor.clock import SystemClock
from monitor.config.models import configured_checks
from monitor.confirm import Confirmer
from monitor.events import EventKind, MonitorEvent
from monitor.http_guard import FILES_KEPT_FREE, SERVED_WHEN_SHORT
from monitor.local_faults import RESOLVER_DOWN_HOSTS, LocalFaults
from monitor.ownership import Identity
from monitor.store import Store
from tests.helpers import Target, eventually, free_port
from tests.test_end_to_end import make_config
from tests.test_store_shared import open_incident

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Handler], Awaitable[int]]]:
    """Start loopback servers that answer with whatever bytes a test writes; their port."""
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> int:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def _open_incidents(running: Running) -> list[Any]:
    return await running.store.list_incidents(open_only=True)


# --- NUL bytes ---------------------------------------------------------------------------


async def test_a_nul_in_the_reason_phrase_opens_an_incident_on_every_database(
    raw_server: Callable[[Handler], Awaitable[int]], database_url: str
) -> None:
    async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 500 Bad\x00Thing\r\nX-Trace: a\x00b\r\nContent-Length: 9\r\n\r\n"
            b"oops\x00\x01end"
        )
        await writer.drain()
        writer.close()

    port = await raw_server(broken)
    config = make_config(
        site_url=f"http://127.0.0.1:{port}",
        database_url=database_url,
        checks=[{"id": "home", "url": "/"}],
    )
    async with running_monitor(config) as running:
        [incident] = await eventually(lambda: _open_incidents(running))
        assert incident.severity is Severity.CRITICAL
        opened = (await running.store.timeline(incident.id))[0]
        assert opened.kind is TimelineKind.OPENED and opened.evidence is not None

        # Stored without the NUL (and the other control character), the rest kept: the probe
        # turns a control character into a space, the store drops any that get past it.
        def squeezed(text: str) -> str:
            assert "\x00" not in text and "\x01" not in text
            return text.replace(" ", "")

        assert squeezed(opened.evidence["error"]) == "HTTP500BadThing"
        assert squeezed(opened.evidence["body_excerpt"]) == "oopsend"
        assert squeezed(opened.evidence["headers"]["x-trace"]) == "ab"
        [latest, *_] = await running.store.recent_results("acme/shop/home")
        assert latest.error is not None and squeezed(latest.error).startswith("HTTP500BadThing")
        assert running.registry.get_sample_value("monitor_store_errors_total") == 0


# --- telling our own faults from the target's --------------------------------------------


def test_local_errnos_and_resolver_failures_are_told_apart_from_the_targets() -> None:
    def connector_error(os_error: OSError) -> aiohttp.ClientConnectorError:
        return aiohttp.ClientConnectorError(_ConnectionKey(), os_error)

    emfile = OSError(errno.EMFILE, "Too many open files")
    wrapped = CannotConnect("Cannot connect to host shop.example:443 [Too many open files]")
    wrapped.__cause__ = emfile
    assert failure_cause(wrapped) is FailureCause.LOCAL_RESOURCE
    assert failure_cause(connector_error(emfile)) is FailureCause.LOCAL_RESOURCE
    for code in (errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL):
        assert failure_cause(OSError(code, "x")) is FailureCause.LOCAL_RESOURCE
    # The resolver could not even open its socket: ours, not the name's.
    assert failure_cause(socket.gaierror(socket.EAI_SYSTEM, "System error")) is (
        FailureCause.LOCAL_RESOURCE
    )
    nxdomain = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert failure_cause(nxdomain) is FailureCause.NAME_RESOLUTION
    dns = aiohttp.ClientConnectorDNSError(_ConnectionKey(), nxdomain)
    assert failure_cause(dns) is FailureCause.NAME_RESOLUTION
    # What the target or the network did.
    for code in (errno.ECONNREFUSED, errno.ECONNRESET, errno.EHOSTUNREACH):
        assert failure_cause(OSError(code, "x")) is None
        assert failure_cause(connector_error(OSError(code, "x"))) is None
    assert failure_cause(TimeoutError()) is None


class _ConnectionKey:
    """What aiohttp's connector errors print of the connection: enough for their str()."""

    host = "shop.example"
    port = 443
    ssl = True


def _result(url: str, outcome: Outcome, cause: FailureCause | None = None) -> ProbeResult:
    status = 200 if outcome is Outcome.OK else None
    return ProbeResult(
        outcome=outcome,
        started_at=datetime.now(UTC),
        latency=None,
        evidence=Evidence(url=url, status=status, error=f"{outcome} of {url}"),
        cause=cause,
    )


def test_a_resolver_that_fails_for_every_name_is_ours_after_three_hosts() -> None:
    now = [0.0]
    faults = LocalFaults(monotonic=lambda: now[0])
    unresolved = FailureCause.NAME_RESOLUTION
    failed = Outcome.CONNECTION_ERROR

    def judge(host: str, outcome: Outcome = failed, cause: FailureCause | None = unresolved) -> Any:
        now[0] += 1
        return faults.judge(_result(f"https://{host}/", outcome, cause))

    # One host, again and again: that site's own DNS, always counted.
    assert [judge("a.example") for _ in range(5)] == [None] * 5
    assert judge("b.example") is None
    first = judge("c.example")  # the third distinct name in a row
    assert first is not None and (first.reason, first.first) == ("local_resolver", True)
    later = judge("a.example")
    assert later is not None and not later.first
    assert faults.reasons() and "local_resolver" in faults.reasons()[0]
    # A name that resolves (any answer from a named host) ends it at once.
    assert judge("d.example", Outcome.HTTP_5XX, None) is None
    assert judge("a.example") is None
    # IP literals need no resolver: they neither build the run nor end it.
    assert judge("b.example") is None
    assert judge("127.0.0.1", Outcome.OK, None) is None
    assert judge("c.example") is not None
    # Failures spread wider than the window never add up to a dead resolver.
    now[0] += 3600
    spread = []
    for host in ("x.example", "y.example", "z.example"):
        spread.append(judge(host))
        now[0] += 61
    assert spread == [None, None, None]
    assert RESOLVER_DOWN_HOSTS == 3
    # Recent faults are what /healthz reports; an hour later, nothing.
    now[0] += 3600
    assert faults.reasons() == []


def test_a_local_resource_fault_is_discarded_and_reported_once_per_run() -> None:
    now = [0.0]
    faults = LocalFaults(monotonic=lambda: now[0])
    local = FailureCause.LOCAL_RESOURCE
    runs = []
    for step in (1, 1, 1, 120, 1):
        now[0] += step
        judged = faults.judge(_result("http://127.0.0.1:1/", Outcome.CONNECTION_ERROR, local))
        assert judged is not None and judged.reason == "local_resource"
        runs.append(judged.first)
    # Logged at the start of a run, and again only after a quiet FAULT_HOLD.
    assert runs == [True, False, False, True, False]


async def test_a_probe_out_of_file_descriptors_reports_a_local_fault(
    raw_server: Callable[[Handler], Awaitable[int]],
) -> None:
    async def healthy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    port = await raw_server(healthy)
    spec = HttpCheckSpec.model_validate({"url": f"http://127.0.0.1:{port}/", "timeout": "2s"})
    transport = LeanTransport()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        # This process may open no more descriptor (a new one takes the lowest free number,
        # and the limit is below it): the probe's socket() fails with EMFILE, as it does in
        # a monitor whose descriptors were all taken.
        resource.setrlimit(resource.RLIMIT_NOFILE, (_lowest_free_descriptor(), hard))
        starved = await probe_http(spec, transport=transport, now=lambda: datetime.now(UTC))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    healthy_result = await probe_http(spec, transport=transport, now=lambda: datetime.now(UTC))
    await transport.close()
    assert starved.outcome is Outcome.CONNECTION_ERROR
    assert starved.cause is FailureCause.LOCAL_RESOURCE
    assert starved.evidence.error is not None and "Too many open files" in starved.evidence.error
    assert (healthy_result.outcome, healthy_result.cause) == (Outcome.OK, None)


def _lowest_free_descriptor() -> int:
    probe = os.dup(0)
    os.close(probe)
    return probe


# --- a monitor out of file descriptors ----------------------------------------------------

# `monitor run` needs about 20 descriptors; without the server's connection cap a flood of
# idle connections to its own port takes every one left, its probes fail with EMFILE and its
# accept() with them, so /healthz cannot answer.
_FLOOD_FILE_LIMIT = 64
_FLOOD_CONNECTIONS = 100


async def test_a_flood_under_a_low_file_limit_opens_no_incident_and_healthz_says_degraded(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    target = Target()
    target.set("/", body="healthy")
    port = free_port()
    config, database = await _flood_config(tmp_path, aiohttp_server, target=target, port=port)
    log_path = tmp_path / "monitor.log"
    base = f"http://127.0.0.1:{port}"
    flood: list[asyncio.StreamWriter] = []
    with log_path.open("wb") as log_file:
        process = _run_with_low_file_limit(config, log_file)
        try:
            async with aiohttp.ClientSession() as session:
                health = await eventually(lambda: _get(session, f"{base}/healthz"), timeout=20)
                assert health["status"] == "ok"
                await eventually(lambda: target.hits.get("/", 0) >= 3)
                for _ in range(_FLOOD_CONNECTIONS):
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    flood.append(writer)  # connected, and never a byte sent
                # While the flood holds its connections: /healthz answers, and says degraded.
                during = await _get(session, f"{base}/healthz")
                assert during is not None, "/healthz did not answer during the flood"
                assert during["status"] == "degraded"
                assert any("HTTP server full" in reason for reason in during["reasons"])
                hits = target.hits.get("/", 0)
                await eventually(lambda: target.hits.get("/", 0) >= hits + 3)  # still probing
                assert during["open_incidents"] == 0
                assert (await _get(session, f"{base}/healthz") or {}).get("open_incidents") == 0
        finally:
            for writer in flood:
                writer.close()
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=30) == 0
    log = log_path.read_text()
    assert "Too many open files" not in log and "out of system resource" not in log, log
    await _assert_no_incident_and_every_probe_ok(database)


# Descriptors the monitor inherits and never uses: with them fewer than FILES_KEPT_FREE are
# free from the start, so the quarter-of-the-limit cap (16) would take all that is left.
_TAKEN_ELSEWHERE = 36


async def test_a_flood_while_descriptors_are_short_leaves_probes_theirs_and_healthz_answers(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    target = Target()
    target.set("/", body="healthy")
    port = free_port()
    config, database = await _flood_config(tmp_path, aiohttp_server, target=target, port=port)
    log_path = tmp_path / "monitor.log"
    base = f"http://127.0.0.1:{port}"
    flood: list[asyncio.StreamWriter] = []
    taken = [os.open(os.devnull, os.O_RDONLY) for _ in range(_TAKEN_ELSEWHERE)]
    try:
        with log_path.open("wb") as log_file:
            process = _run_with_low_file_limit(config, log_file, pass_fds=taken)
    finally:
        for fd in taken:
            os.close(fd)
    try:
        async with aiohttp.ClientSession() as session:
            await eventually(lambda: _get(session, f"{base}/healthz"), timeout=20)
            await eventually(lambda: target.hits.get("/", 0) >= 3)
        before = len(os.listdir(f"/proc/{process.pid}/fd"))
        assert _FLOOD_FILE_LIMIT - before < FILES_KEPT_FREE  # short before the flood
        for _ in range(_FLOOD_CONNECTIONS):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            flood.append(writer)  # connected, and never a byte sent
        # While the flood holds its connections: /healthz answers (a new connection, as a
        # load balancer's check makes one) and says why the server turns connections away.
        async with aiohttp.ClientSession() as session:
            during = await eventually(lambda: _get(session, f"{base}/healthz"), timeout=10)
        assert during["status"] == "degraded"
        assert any(
            f"fewer than {FILES_KEPT_FREE} of {_FLOOD_FILE_LIMIT} descriptors free" in reason
            for reason in during["reasons"]
        ), during
        hits = target.hits.get("/", 0)
        await eventually(lambda: target.hits.get("/", 0) >= hits + 3)  # still probing
        # The server held only a few of the flood's connections: the rest stayed free.
        assert len(os.listdir(f"/proc/{process.pid}/fd")) <= before + SERVED_WHEN_SHORT
    finally:
        for writer in flood:
            writer.close()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    log = log_path.read_text()
    assert "Too many open files" not in log and "out of system resource" not in log, log
    assert "local_resource" not in log
    await _assert_no_incident_and_every_probe_ok(database)


async def _flood_config(
    tmp_path: Path, aiohttp_server: Any, *, target: Target, port: int
) -> tuple[Path, str]:
    """`target` served on loopback, and a monitor.yaml of one check of it every 100 ms,
    opening an incident on its first failure, its server on `port`; and its database URL."""
    server: TestServer = await aiohttp_server(target.app())
    database = f"sqlite+aiosqlite:///{tmp_path}/m.db"
    config = tmp_path / "monitor.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": {"url": database},
                "server": {"host": "127.0.0.1", "port": port},
                "defaults": {"interval": "100ms", "timeout": "2s", "failures_to_open": 1},
                "clients": [
                    {
                        "id": "acme",
                        "sites": [
                            {
                                "id": "shop",
                                "url": str(server.make_url("/")),
                                "checks": [{"id": "home", "url": "/"}],
                            }
                        ],
                    }
                ],
            }
        )
    )
    return config, database


def _run_with_low_file_limit(
    config: Path, log_file: IO[bytes], *, pass_fds: Sequence[int] = ()
) -> subprocess.Popen[bytes]:
    """`monitor run` in a process of its own, its file limit _FLOOD_FILE_LIMIT."""

    def low_file_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (_FLOOD_FILE_LIMIT, _FLOOD_FILE_LIMIT))

    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "--config", str(config)],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        pass_fds=pass_fds,
        preexec_fn=low_file_limit,  # noqa: PLW1509 - the limit is the point of the test
    )


async def _assert_no_incident_and_every_probe_ok(database: str) -> None:
    store = await Store.open(database)
    try:
        assert await store.list_incidents() == []
        history = await store.recent_results("acme/shop/home")
        assert history and all(row.outcome is Outcome.OK for row in history)
    finally:
        await store.close()


async def _get(session: aiohttp.ClientSession, url: str) -> dict[str, Any] | None:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
            return dict(await response.json())
    except (aiohttp.ClientError, TimeoutError):
        return None


# --- a store that goes away ---------------------------------------------------------------


class CuttableProxy:
    """A TCP proxy on loopback in front of the database, that a test can cut (every
    connection dropped, new ones refused) and restore on the same port."""

    def __init__(self, *, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        if self._server is not None and self._server.is_serving():
            return
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        await self.cut()

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()  # refused from now on
        for writer in list(self._open):
            writer.transport.abort()  # both sides see the connection reset
        self._open.clear()
        await self._server.wait_closed()

    async def _pipe(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self._upstream)
        except OSError:
            client_w.transport.abort()
            return
        self._open |= {client_w, server_w}

        async def copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except OSError:
                pass
            finally:
                writer.transport.abort()
                self._open.discard(writer)

        await asyncio.gather(copy(client_r, server_w), copy(server_r, client_w))


@pytest.fixture
async def target_url(aiohttp_server: Any) -> tuple[Target, str]:
    target = Target()
    server: TestServer = await aiohttp_server(target.app())
    return target, str(server.make_url("")).rstrip("/")


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_store_outage_degrades_healthz_and_counting_goes_on_in_memory(
    database_url: str, target_url: tuple[Target, str]
) -> None:
    target, url = target_url
    direct = make_url(database_url)
    proxy = CuttableProxy(upstream=(direct.host or "127.0.0.1", direct.port or 5432))
    await proxy.start()
    proxied = direct.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    interval = 1.0
    config = make_config(
        site_url=url,
        database_url=proxied,
        checks=[{"id": "home", "url": "/"}],
        interval=f"{interval}s",
        timeout="1s",
        failures_to_open=2,
    )
    # Leases granted for 1.5 s: the outage below outlasts them. Nobody else took the site,
    # so the lease still names this process when the database returns, and what it counted
    # meanwhile stands.
    cluster = config.cluster.model_copy(update={"lease": timedelta(seconds=2)})
    config = config.model_copy(update={"cluster": cluster})
    key = "acme/shop/home"
    events: list[MonitorEvent] = []
    async with (
        running_monitor(config, listeners=[events.append]) as running,
        aiohttp.ClientSession() as session,
        _restored_at_exit(proxy),
    ):
        health_url = f"{running.url}/healthz"
        await eventually(lambda: running.monitor.check_state(key))

        await proxy.cut()
        cut_at = time.monotonic()
        target.set("/", status=500)

        async def degraded_by_the_store() -> dict[str, Any] | None:
            health = await _get(session, health_url)
            reasons = (health or {}).get("reasons", [])
            return health if any("store unavailable" in r for r in reasons) else None

        health = await eventually(degraded_by_the_store)
        assert health["status"] == "degraded"
        # Every failure while the database is away counts, in memory: enough to open.
        # (and the outage lasts past the 1.5 s the leases were granted for).
        await eventually(
            lambda: len(_failures(running, key)) >= 2 and time.monotonic() - cut_at > 2.0,
            timeout=10,
        )
        assert running.registry.get_sample_value("monitor_store_available") == 0
        assert running.monitor.open_incidents() == []

        await proxy.start()
        back = time.monotonic()
        [incident] = await eventually(lambda: _open_incidents(running), timeout=10)
        took = time.monotonic() - back
        # The first failure written after the return opens it: within one interval (and the
        # probe's own time), not after failures_to_open more.
        assert took <= interval + 1.0, f"incident opened {took:.2f}s after the store returned"
        health = await eventually(lambda: _healthy(session, health_url))
        assert running.registry.get_sample_value("monitor_store_available") == 1
        # Told once for the whole outage; the metric counts every result not written.
        told = [e for e in events if e.kind is EventKind.STORE_ERROR]
        assert len(told) == 1 and "store is unavailable" in told[0].message
        errors = running.registry.get_sample_value("monitor_store_errors_total")
        assert errors is not None and errors >= 2

    await proxy.close()
    store = await Store.open(database_url)
    try:
        assert len(await store.list_incidents()) == 1
        entries = await store.timeline(incident.id)
        kinds = [entry.kind for entry in entries]
        assert kinds.count(TimelineKind.OPENED) == 1
        assert len({(e.at, e.kind, e.check) for e in entries}) == len(entries)  # nothing twice
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def _restored_at_exit(proxy: CuttableProxy) -> AsyncIterator[None]:
    """Should the test fail while the database is cut off, the monitor can still stop."""
    try:
        yield
    finally:
        await proxy.start()


def _failures(running: Running, key: str) -> tuple[Any, ...]:
    state = running.monitor.check_state(key)
    return tuple(s for s in state.recent if s is not None) if state is not None else ()


async def _healthy(session: aiohttp.ClientSession, url: str) -> bool:
    health = await _get(session, url)
    return health is not None and not any("store" in reason for reason in health.get("reasons", []))


# --- our own event loop stalls ------------------------------------------------------------


async def test_a_timeout_measured_while_our_own_loop_stalled_is_discarded(
    raw_server: Callable[[Handler], Awaitable[int]], tmp_path: Path
) -> None:
    hold: list[asyncio.StreamWriter] = []
    connected = asyncio.Queue[None]()

    async def never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hold.append(writer)
        connected.put_nowait(None)

    port = await raw_server(never_answers)
    events: list[MonitorEvent] = []
    config = make_config(
        site_url=f"http://127.0.0.1:{port}",
        database_url=f"sqlite+aiosqlite:///{tmp_path}/m.db",
        checks=[{"id": "home", "url": "/"}],
        timeout="1s",
        interval="5s",
        failures_to_open=1,
    )
    timeouts = {"client": "acme", "site": "shop", "check": "home", "outcome": "timeout"}
    stalls = {"reason": "event_loop_lag"}
    try:
        async with (
            running_monitor(config, listeners=[events.append]) as running,
            aiohttp.ClientSession() as session,
        ):
            registry = running.registry
            for stall in (1, 2):
                await asyncio.wait_for(connected.get(), 10)
                # The probe waits for an answer; the monitor's own loop now stalls for 400 ms,
                # 40% of the timeout's budget: the target did not get its whole second.
                time.sleep(0.4)
                await eventually(
                    lambda stall=stall: (
                        registry.get_sample_value("monitor_probe_results_discarded_total", stalls)
                        == stall
                    ),
                    timeout=5,
                )
                assert not registry.get_sample_value("monitor_probe_results_total", timeouts)
            # Logged once for the run of stalls; /healthz says so.
            [discarded] = [e for e in events if e.kind is EventKind.PROBE_DISCARDED]
            assert discarded.fields["outcome"] == "timeout"
            assert "event loop stalled" in discarded.message
            health = await _get(session, f"{running.url}/healthz")
            assert health is not None and health["status"] == "degraded"
            assert any("(event_loop_lag)" in reason for reason in health["reasons"])
            # The re-probe a second later, unstalled, is a timeout that counts.
            counted = await eventually(
                lambda: registry.get_sample_value("monitor_probe_results_total", timeouts)
            )
            assert counted == 1
            [incident] = await eventually(lambda: _open_incidents(running))
            assert incident.severity is Severity.CRITICAL
    finally:
        for writer in hold:
            writer.close()


async def test_an_open_incident_the_monitor_did_not_know_of_is_joined_not_duplicated(
    database_url: str, target_url: tuple[Target, str]
) -> None:
    # What a commit whose answer was lost leaves behind (the incident is stored, the monitor
    # heard an error): the next attempt to open finds it and continues from it.
    target, url = target_url
    config = make_config(
        site_url=url, database_url=database_url, checks=[{"id": "home", "url": "/"}]
    )
    async with running_monitor(config) as running:
        await eventually(lambda: running.monitor.check_state("acme/shop/home"))
        stored = await open_incident(running.store, "acme/shop/other")
        assert running.monitor.open_incidents() == []  # the monitor has not heard of it
        target.set("/", status=500)

        async def joined() -> Any:
            [incident] = running.monitor.open_incidents() or [None]
            return incident if incident and "acme/shop/home" in incident.failing_checks else None

        incident = await eventually(joined)
        assert incident.id == stored.id
        assert [i.id for i in await running.store.list_incidents()] == [stored.id]
        kinds = [entry.kind for entry in await running.store.timeline(stored.id)]
        assert kinds.count(TimelineKind.OPENED) == 1
        assert TimelineKind.CHECK_FAILED in kinds


async def test_the_lean_transport_names_a_failed_lookup_and_a_resolver_of_ours_that_broke() -> None:
    async def nxdomain(host: str, port: int, family: int) -> list[tuple[int, str]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def no_socket(host: str, port: int, family: int) -> list[tuple[int, str]]:
        raise socket.gaierror(socket.EAI_SYSTEM, "System error")

    spec = HttpCheckSpec.model_validate({"url": "http://shop.invalid/", "timeout": "2s"})
    causes = []
    for resolver in (nxdomain, no_socket):
        transport = LeanTransport(resolver=resolver)
        result = await probe_http(
            spec, transport=transport, now=lambda: datetime.now(UTC), retry_wait=0.0
        )
        await transport.close()
        assert result.outcome is Outcome.CONNECTION_ERROR
        causes.append(result.cause)
    assert causes == [FailureCause.NAME_RESOLUTION, FailureCause.LOCAL_RESOURCE]


async def test_a_confirmation_probe_that_failed_on_our_machine_gives_no_verdict(
    store: Store,
) -> None:
    url = "http://127.0.0.1:9/"
    config = make_config(site_url=url, database_url="sqlite://", checks=[{"id": "home"}])
    [check] = configured_checks(config)
    results = {
        "local": _result(url, Outcome.CONNECTION_ERROR, FailureCause.LOCAL_RESOURCE),
        "refused": _result(url, Outcome.CONNECTION_ERROR),
    }
    answers = {}
    for name, result in results.items():

        async def probe(_: Any, result: ProbeResult = result) -> ProbeResult:
            return result

        confirmer = Confirmer(
            store=store,
            clock=SystemClock(),
            identity=Identity(worker=f"us-{name}", location="us"),
            checks={check.key: check},
            probe=probe,
            other_locations=_no_locations,
        )
        request_id = await store.request_confirmation(
            check_key=check.key, worker="eu-1", location="eu", now=datetime.now(UTC), ttl=30
        )
        stopping = asyncio.Event()
        serving = asyncio.create_task(confirmer.serve(stopping=stopping))
        answer = await eventually(lambda r=request_id: store.confirmation_answer(r))
        stopping.set()
        await serving
        answers[name] = answer.answer["outcome"]
    assert answers == {"local": None, "refused": "connection_error"}


async def _no_locations() -> set[str]:
    return set()


async def test_a_page_whose_asset_our_machine_could_not_fetch_is_a_local_fault(
    aiohttp_server: Any,
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    async def page(request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        response = aiohttp.web.Response(text='<img src="/mug.png">', content_type="text/html")
        await response.prepare(request)
        await response.write_eof()
        # The page is out; from now on this process can open no descriptor at all, so the
        # probe's connection for the image fails with EMFILE.
        resource.setrlimit(resource.RLIMIT_NOFILE, (3, hard))
        return response

    app = aiohttp.web.Application()
    app.router.add_get("/", page)
    server: TestServer = await aiohttp_server(app)
    spec = PageCheckSpec.model_validate({"kind": "page", "url": str(server.make_url("/"))})
    # The page check parses HTML in a worker thread: that pool exists before the descriptors
    # run out (importing it then would need one), as it does in a monitor that has run a while.
    await asyncio.to_thread(lambda: None)
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        try:
            result = await probe_page(
                spec, session=session, now=lambda: datetime.now(UTC), retry_wait=0.0
            )
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert result.outcome is Outcome.BROKEN_ASSET
    assert result.cause is FailureCause.LOCAL_RESOURCE
    assert result.evidence.error == "1 of 1 assets failed: /mug.png (monitor-side fault)"


async def test_nul_and_control_characters_are_dropped_wherever_text_is_stored(
    store: Store,
) -> None:
    opened = await open_incident(store, "acme/shop/home")
    assert opened.id is not None
    now = datetime.now(UTC)
    entry = TimelineEntry(
        at=now,
        kind=TimelineKind.ACKNOWLEDGED,
        message="taken\x00 by\x07 al\tice\n",
        evidence={"head\x00er": ["a\x00b", {"c": "d\x1b"}], "n": 1},
    )
    acknowledged = replace(opened, acknowledged_by="al\x00ice", responded_at=now)
    await store.save_incident(acknowledged, timeline=[entry], now=now)
    stored = await store.get_incident(opened.id)
    assert stored is not None and stored.acknowledged_by == "alice"
    [_, kept] = await store.timeline(opened.id)
    assert kept.message == "taken by al\tice\n"  # tab and line breaks stay
    assert kept.evidence == {"header": ["ab", {"c": "d"}], "n": 1}
    window = await store.add_maintenance(
        site="acme/shop",
        starts_at=now,
        ends_at=now + timedelta(hours=1),
        reason="db\x00 upgrade",
        created_by="b\x00ob",
        now=now,
    )
    assert (window.reason, window.created_by) == ("db upgrade", "bob")
